"""The documentation site's machinery (``make docs`` builds it in CI): every public name
documented, README sections the guide pages include, notebooks made to render offline."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import nbformat
import pytest

from docs import _api, _notebooks

ROOT = Path(__file__).resolve().parents[1]


def test_every_public_module_has_a_page_and_every_public_name_a_docstring():
    assert _api.problems(_api.load(), _api.documented_pages()) == []


@pytest.fixture
def toy_package(tmp_path):
    """``toy``: a documented module, an undocumented name, a module without a page, a lazy
    module whose page renders its names one by one."""
    pkg = tmp_path / "src" / "toy"
    (pkg / "lazy").mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""Toy."""\n')
    (pkg / "good.py").write_text(
        textwrap.dedent('''
            """Good."""
            __all__ = ["f", "LIMIT", "MODES"]
            LIMIT = 3
            """The limit."""
            #: The modes: a comment above the assignment
            #: documents it too.
            MODES = ("a", "b")
            def f():
                """Does f."""
        ''')
    )
    (pkg / "bad.py").write_text(
        textwrap.dedent('''
            """Bad."""
            __all__ = ["g", "h", "missing", "K"]
            # a plain comment documents nothing
            K = 1
            def g():
                pass
            def h():
                """Documented."""
        ''')
    )
    (pkg / "nopage.py").write_text('"""No page."""\n__all__ = []\n')
    (pkg / "lazy" / "__init__.py").write_text(
        '"""Lazy."""\n_LAZY = {"W": "toy.lazy._w", "V": "toy.lazy._v"}\n__all__ = [*_LAZY]\n'
    )
    (pkg / "lazy" / "_w.py").write_text('class W:\n    """A widget."""\n')
    (pkg / "lazy" / "_v.py").write_text("class V:\n    pass\n")
    pages = tmp_path / "reference"
    pages.mkdir()
    (pages / "good.md").write_text("# good\n\n::: toy.good\n")
    (pages / "bad.md").write_text("# bad\n\n::: toy.bad\n")
    (pages / "lazy.md").write_text(
        "# lazy\n\n::: toy.lazy\n    options:\n      members: false\n\n::: toy.lazy._w.W\n"
    )
    return tmp_path / "src", pages


def test_the_check_names_each_gap(toy_package, monkeypatch):
    src, pages = toy_package
    monkeypatch.syspath_prepend(str(src))  # the lazy module's __all__ is read by importing it
    package = _api.load("toy", src)
    found = _api.problems(package, _api.documented_pages(pages), tolerated=frozenset())
    assert found == [
        "toy.bad.g (in __all__) has no docstring",
        "toy.bad.missing (in __all__) is not on the module's reference page: render it there "
        "with '::: <the path where it is defined>'",
        "toy.bad.K (in __all__) has no docstring",
        "toy.lazy.V (in __all__) is not on the module's reference page: render it there with "
        "'::: <the path where it is defined>'",
        "toy.nopage has no reference page: add docs/reference/nopage.md holding "
        "'# `toy.nopage`' and '::: toy.nopage'",
    ]
    modes = package["good.MODES"].docstring
    assert modes.value == "The modes: a comment above the assignment documents it too."
    tolerated = frozenset({("toy.bad", "g")})
    assert "toy.bad.g (in __all__) has no docstring" not in _api.problems(
        package, _api.documented_pages(pages), tolerated
    )


def test_every_readme_section_a_page_includes_exists():
    readme = (ROOT / "README.md").read_text()
    included = {
        name
        for page in (ROOT / "docs").rglob("*.md")
        for name in re.findall(r'--8<-- "README\.md:([\w-]+)"', page.read_text())
    }
    assert {"intro", "features", "notebooks", "quickstart", "development"} <= included
    for name in included:
        start, end = f"<!-- --8<-- [start:{name}] -->", f"<!-- --8<-- [end:{name}] -->"
        assert readme.count(start) == 1 == readme.count(end), name
        assert readme.index(start) < readme.index(end), name


def _output(data: dict) -> dict:
    return nbformat.v4.new_output("display_data", data=data)


def test_executed_notebooks_are_made_to_render_offline():
    figure = {"data": [{"type": "scatter", "x": [1, 2], "y": [3, 4]}], "layout": {}}
    cdn = '<script charset="utf-8" src="https://cdn.plot.ly/plotly-4.1.1.min.js"></script>'
    view = cdn + '<div id="a"></div><script>Plotly.newPlot("a", [], {})</script>'
    nb = nbformat.v4.new_notebook(metadata={"widgets": {"state": {}}})
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        _output({"text/plain": "df", "text/html": "<table></table>"}),
        _output({_notebooks.PLOTLY: figure}),  # a plotly figure: JSON only
        _output({_notebooks.WIDGET: {"model_id": "m"}, "text/html": view, "text/plain": "V"}),
    ]
    nb.cells = [cell]
    _notebooks.prepare(nb, depth=3)
    table, plot, widget = (o["data"] for o in nb.cells[0].outputs)
    assert table["text/html"] == "<table></table>"  # no figure: untouched
    assert plot["text/html"].startswith('<script src="../../../assets/plotly.min.js"></script>')
    assert "Plotly.newPlot" in plot["text/html"] and plot[_notebooks.PLOTLY] == figure
    assert _notebooks.WIDGET not in widget and "cdn.plot.ly" not in widget["text/html"]
    assert "plotly.min.js" not in widget["text/html"]  # plotly.js is loaded once per page
    assert "widgets" not in nb.metadata


def test_sphinx_roles_in_docstrings_become_optional_links():
    from docs._hooks import on_page_content

    html = "see :class:<code>~nasviz.prune.Masks</code> and :func:<code>nasviz.prune.shrink</code>"
    assert on_page_content(html, page=None, config={}, files=None) == (
        'see <autoref identifier="nasviz.prune.Masks" optional><code>Masks</code></autoref> and '
        '<autoref identifier="nasviz.prune.shrink" optional><code>nasviz.prune.shrink</code>'
        "</autoref>"
    )


def test_shared_args_entries_become_one_entry_per_parameter(tmp_path, caplog):
    """``val, test: text`` documents two parameters: the reference lists both, griffe checks
    each against the signature (no warning for these, one for a misspelt name)."""
    pkg = tmp_path / "shared"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        textwrap.dedent('''
            """Shared."""
            def f(model: object, val: float = 0.1, test: float = 0.1, *, q: int = 1, k: int = 1) -> tuple:
                """Does f.

                Args:
                    model: the model.
                    val, test: fractions held
                        out.
                    q, kk (int): heads.

                Returns:
                    a, b: not parameters.
                """
        ''')
    )
    f = _api.load("shared", tmp_path)["f"]
    with caplog.at_level("WARNING"):
        sections = f.docstring.parse("google")
    (params,) = [s for s in sections if s.kind.value == "parameters"]
    assert [(p.name, p.description) for p in params.value] == [
        ("model", "the model."),
        ("val", "fractions held\nout."),
        ("test", "fractions held\nout."),
        ("q", "heads."),
        ("kk", "heads."),
    ]
    warned = [r.getMessage() for r in caplog.records]
    assert any("'kk' does not appear in the function signature" in w for w in warned), warned
    assert not any("val" in w or "'q'" in w for w in warned), warned
    assert "a, b: not parameters." in f.docstring.value
