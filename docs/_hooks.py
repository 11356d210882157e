"""MkDocs hooks of nasviz's documentation site (``hooks:`` in mkdocs.yml).

* Reference: every page in ``docs/reference/`` is listed in the navigation (``index.md``
  first), so documenting a new subpackage is one short file: ``docs/reference/quant.md``
  holding ``# `nasviz.quant` `` and ``::: nasviz.quant``. The build fails when a public module
  has no page or a name in an ``__all__`` has no docstring (``docs/_api.py``).
* Notebooks: executed with papermill (cached, ``docs/_notebooks.py``) and rendered as pages by
  mkdocs-jupyter, with their figures, under "Notebooks".
* Benchmarks: ``<!-- nasviz:bench-table -->`` on a page becomes a table of every figure in
  ``bench/results.json`` with where it came from.
* Docstrings written with Sphinx roles (``:class:`~nasviz.prune.Masks` ``) become links where
  the target is documented here, plain code otherwise.
* Warnings from docstrings in files other branches own are tolerated only when listed in
  :data:`TOLERATED` (demoted to INFO, so ``--strict`` does not count them).
"""

from __future__ import annotations

import logging
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from docs import _api, _notebooks  # noqa: E402

log = logging.getLogger("mkdocs.hooks.nasviz")

#: Docstring warnings tolerated in files other branches own: (file, text in the warning). Fix
#: the docstring there, then delete its line here; nothing else is tolerated.
TOLERATED: tuple[tuple[str, str], ...] = ()
BENCH_TABLE = "<!-- nasviz:bench-table -->"
_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):<code>(~?)([\w.]+)(\(\))?</code>")


class _Tolerate(logging.Filter):
    """Demotes the warnings :data:`TOLERATED` lists to INFO (tagged as tolerated)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING:
            message = record.getMessage()
            if any(f" {path}:" in message and text in message for path, text in TOLERATED):
                record.levelno, record.levelname = logging.INFO, "INFO"
                record.msg, record.args = f"(tolerated, see docs/_hooks.py) {message}", ()
        return True


def on_startup(**kwargs: Any) -> None:
    logging.getLogger("mkdocs.plugins.griffe").addFilter(_Tolerate())


def on_config(config: Any) -> Any:
    """Adds the notebooks and the reference pages to the navigation."""
    executed = _notebooks.execute(log=log.info)
    config["nasviz_notebooks"] = _notebooks.site_copies(executed)
    reference = sorted(
        (p for p in (Path(config["docs_dir"]) / "reference").glob("*.md")),
        key=lambda p: (p.stem != "index", p.stem),
    )
    nav = list(config["nav"] or [])
    nav.append({"Notebooks": config["nasviz_notebooks"]})
    nav.append({"API reference": [f"reference/{p.name}" for p in reference]})
    config["nav"] = nav
    return config


def on_pre_build(config: Any) -> None:
    """Fails the build when a public name is not documented."""
    found = _api.problems(
        _api.load(), _api.documented_pages(Path(config["docs_dir"]) / "reference")
    )
    if found:
        raise PluginError("undocumented public API:\n  " + "\n  ".join(found))


@event_priority(100)  # before mkdocs-jupyter turns .ipynb files into pages
def on_files(files: Any, config: Any) -> Any:
    """The executed notebooks and plotly.js join the site's files."""
    for rel in config["nasviz_notebooks"]:
        files.append(
            File(rel, str(_notebooks.OUT), config["site_dir"], config["use_directory_urls"])
        )
    return files


def on_post_build(config: Any) -> None:
    import plotly

    source = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    target = Path(config["site_dir"]) / _notebooks.PLOTLY_JS
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """``<!-- nasviz:bench-table -->`` becomes a table of bench/results.json."""
    if BENCH_TABLE not in markdown:
        return markdown
    from bench._report import made, read_results

    rows = [
        "| figure | value | unit | target | met | made |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for e in read_results(ROOT / "bench" / "results.json"):
        f = e.figure
        met = "" if f.met is None else ("yes" if f.met else "**no**")
        cells = (f"`{f.name}`", f"{f.value:.4g}", f.unit, f.target, met, made(e))
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return markdown.replace(BENCH_TABLE, "\n".join(rows))


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    """Sphinx roles in docstrings -> cross-references (optional: plain code when unresolved);
    links to a folder of notebooks (the README's ``notebooks/pipeline``, which GitHub shows as a
    listing) -> its first notebook's page."""

    def link(match: re.Match) -> str:
        short, path, call = match.groups()
        shown = (path.rpartition(".")[2] if short else path) + (call or "")
        return f'<autoref identifier="{path}" optional><code>{shown}</code></autoref>'

    html = _ROLE.sub(link, html)
    notebooks = config.get("nasviz_notebooks", [])
    for folder in sorted({str(Path(n).parent) for n in notebooks}):
        first = files.get_file_from_path(
            next(n for n in notebooks if str(Path(n).parent) == folder)
        )
        html = html.replace(f'href="{folder}"', f'href="{first.url_relative_to(page.file)}"')
    return html
