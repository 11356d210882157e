"""The notebooks as documentation pages: executed, then made to render offline.

:func:`execute` runs every notebook under ``notebooks/`` with papermill and its default
parameters (the pipeline steps in order, in one folder, as ``nasviz pipeline`` does; the others
each in its own folder; ``jobs`` at once, one torch thread each) into ``build/docs/executed/``.
A notebook is executed again only when it or nasviz's source changed (a digest beside each
copy). :func:`site_copies` then writes copies under ``build/docs/notebooks/`` that render as
static pages without a network (:func:`prepare`): widget outputs fall back to the static figure
every nasviz view leaves, plotly figures get HTML, and plotly.js comes from the site
(``assets/plotly.min.js``) instead of a CDN.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import os
import re
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
#: Executed notebooks go to ``OUT/executed``, their site copies to ``OUT/notebooks`` (their
#: path in the site).
OUT = ROOT / "build" / "docs"
#: plotly.js, copied into the site from the plotly package (no CDN at build or view time).
PLOTLY_JS = "assets/plotly.min.js"
WIDGET = "application/vnd.jupyter.widget-view+json"
PLOTLY = "application/vnd.plotly.v1+json"
_CDN_SCRIPT = re.compile(r'<script[^>]*src="https://cdn\.plot\.ly/[^"]*"[^>]*>\s*</script>')


def sources() -> list[list[Path]]:
    """The notebooks, as chains executed in order in one folder: each standalone notebook
    alone, the pipeline steps together."""
    standalone = [[p] for p in sorted(NOTEBOOKS.glob("*.ipynb"))]
    pipeline = sorted((NOTEBOOKS / "pipeline").glob("*.ipynb"))
    return standalone + ([pipeline] if pipeline else [])


def _code_digest() -> str:
    """A digest of everything an executed notebook depends on besides the notebook itself."""
    h = hashlib.sha256()
    for path in sorted([*(ROOT / "nasviz").rglob("*.py"), *(ROOT / "widgets").rglob("*")]):
        if path.is_file():
            h.update(str(path.relative_to(ROOT)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _target(source: Path, out: Path) -> Path:
    return out / "executed" / source.relative_to(NOTEBOOKS)


def _digest(chain: list[Path], code: str) -> str:
    """The digest of one chain: its notebooks (a later step depends on the earlier ones)."""
    h = hashlib.sha256(code.encode())
    for source in chain:
        h.update(source.read_bytes())
    return h.hexdigest()


def _run_chain(chain: list[Path], out: Path) -> float:
    """Executes a chain of notebooks in one temporary folder (worker process); seconds."""
    import papermill

    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the kernels: jobs share the cores
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nasviz-docs-") as cwd:
        for source in chain:
            target = _target(source, out)
            target.parent.mkdir(parents=True, exist_ok=True)
            papermill.execute_notebook(
                str(source),
                str(target),
                cwd=cwd,
                kernel_name="python3",
                progress_bar=False,
            )
    return time.perf_counter() - t0


def execute(out: Path = OUT, jobs: int = 2, log=print) -> list[Path]:
    """Executes every notebook whose copy under ``out`` is missing or stale; returns every
    executed copy (``out/executed/...``). A notebook that fails raises papermill's error."""
    code = _code_digest()
    todo = []
    for chain in sources():
        stamp = _target(chain[0], out).with_suffix(".digest")
        fresh = stamp.exists() and stamp.read_text() == _digest(chain, code)
        if not (fresh and all(_target(s, out).exists() for s in chain)):
            todo.append((chain, stamp))
    if todo:
        log(f"executing {sum(len(c) for c, _ in todo)} notebook(s) with {jobs} job(s)")
        with cf.ProcessPoolExecutor(jobs) as pool:
            futures = {pool.submit(_run_chain, chain, out): (chain, stamp) for chain, stamp in todo}
            for future in cf.as_completed(futures):
                chain, stamp = futures[future]
                seconds = future.result()
                stamp.write_text(_digest(chain, code))
                log(f"executed {', '.join(s.name for s in chain)} in {seconds:.0f} s")
    return [_target(s, out) for chain in sources() for s in chain]


def prepare(notebook: object, depth: int) -> object:
    """Makes an executed notebook (nbformat) render offline as a static page, in place.

    Args:
        notebook: the executed notebook.
        depth: how many folders below the site root its page is (``notebooks/00_tour/``: 2),
            to reach ``assets/plotly.min.js`` by a relative path.
    """
    import plotly.io as pio

    script = f'<script src="{"../" * depth}{PLOTLY_JS}"></script>'
    notebook.metadata.pop("widgets", None)  # widget state: its renderer would come from a CDN
    loaded = False
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data")
            if not data:
                continue
            if WIDGET in data and "text/html" in data:
                del data[WIDGET]  # no widget state in a static page: the view's static figure
            if PLOTLY in data and "text/html" not in data:
                data["text/html"] = pio.to_html(
                    data[PLOTLY], include_plotlyjs=False, full_html=False, validate=False
                )
            html = data.get("text/html")
            if isinstance(html, list):
                html = "".join(html)
            if html is None or ("Plotly.newPlot" not in html and "cdn.plot.ly" not in html):
                continue
            html = _CDN_SCRIPT.sub("", html)
            if not loaded:  # plotly.js once, before the page's first figure
                html, loaded = script + html, True
            data["text/html"] = html
    return notebook


def site_copies(executed: list[Path], out: Path = OUT) -> list[str]:
    """Writes a :func:`prepare`d copy of each executed notebook under ``out/notebooks``;
    returns their paths relative to ``out`` (their paths in the site)."""
    import nbformat

    paths = []
    for path in executed:
        rel = Path("notebooks") / path.relative_to(out / "executed")
        notebook = prepare(nbformat.read(path, as_version=4), depth=len(rel.parts))
        text = nbformat.writes(notebook)
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_text() != text:  # unchanged: renders from cache
            target.write_text(text)
        paths.append(rel.as_posix())
    return paths
