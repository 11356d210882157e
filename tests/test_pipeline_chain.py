"""`nasviz pipeline`: the chain runs, stops at a failing step, resumes, refuses foreign inputs
and is reproducible."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbconvert import HTMLExporter

from nasviz import ConfigError, PipelineError
from nasviz.pipeline import STEPS, begin_step, read_manifest, run_pipeline

# non-default parameters, small enough for CI (the default run is measured in bench/)
FAST = {
    "seed": 1,
    "epochs": 2,
    "budget": 10,
    "strategy": "random",
    "n_best": 1,
    "sparsity": 0.25,
    "finetune_epochs": 1,
}
TABLES = ("results.csv", "pareto.csv", "compressed.csv", "training.csv")
EARLIER = ("supernet.pt", "training.csv", "results.csv", "pareto.csv", "search.journal")


def _stamps(folder: Path) -> dict[str, tuple[int, bytes]]:
    """name -> (mtime_ns, content) of every file in ``folder``."""
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir() if p.is_file()}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Run ``a`` straight through; run ``b`` fails in step 3 first, then resumes with the fix."""
    a, b = tmp_path_factory.mktemp("run_a"), tmp_path_factory.mktemp("run_b")
    assert run_pipeline(a, FAST) == [s.name for s in STEPS]
    with pytest.raises(PipelineError) as failure:
        run_pipeline(b, {**FAST, "sparsity": 1.5})  # only compress_best uses sparsity
    after_failure = _stamps(b)
    resumed = run_pipeline(b, FAST)
    return a, b, {"error": str(failure.value), "after": after_failure, "resumed": resumed}


@pytest.mark.notebook
def test_same_parameters_and_seed_give_identical_tables(two_runs):
    a, b, _ = two_runs  # b was interrupted and resumed: the same tables all the same
    for table in TABLES:
        pd.testing.assert_frame_equal(
            pd.read_csv(a / table), pd.read_csv(b / table), check_exact=True, obj=table
        )
    compressed = pd.read_csv(a / "compressed.csv")
    assert set(compressed.method) == {"subnet", "channels 25%"}  # the non-default sparsity
    assert read_manifest(a)["run_id"] != read_manifest(b)["run_id"]
    for step in STEPS:  # executed notebooks and provenance land beside the outputs
        assert (a / step.notebook).is_file()
        prov = json.loads((a / f"{step.notebook[:-6]}.provenance.json").read_text())
        assert prov["status"] == "completed" and prov["parameters"]["out_dir"] == str(a)


@pytest.mark.notebook
def test_a_step_failing_midway_keeps_earlier_outputs_and_the_rerun_resumes_there(two_runs):
    _, b, failed = two_runs
    assert failed["error"].startswith(
        "pipeline step 'compress_best' failed: 3_compress_best.ipynb failed in cell In [4] "
        "('steps = finetune_epochs * math.ceil(len(data.train.y) / 64)') with MaskError:"
    )
    assert f"the executed notebook is kept at {b / '3_compress_best.ipynb'}" in failed["error"]
    after = failed["after"]
    assert set(EARLIER) <= set(after)  # the earlier steps' outputs are all kept
    assert "3_compress_best.ipynb" in after and "compressed.csv" not in after
    assert "4_report.ipynb" not in after  # the chain stopped at the failing step
    kept = nbformat.reads(after["3_compress_best.ipynb"][1].decode(), as_version=4)
    errors = [o for c in kept.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert [e.ename for e in errors] == ["MaskError"]
    prov = json.loads(after["3_compress_best.provenance.json"][1])
    assert prov["status"] == "failed" and "MaskError" in prov["error"]
    # the fixed re-run starts at the failed step: steps 1 and 2 did not run again
    assert failed["resumed"] == ["compress_best", "report"]
    now = _stamps(b)
    for name in (*EARLIER, "1_train_supernet.ipynb", "2_search.ipynb"):
        assert now[name] == after[name], f"{name} was rewritten by the resumed run"


@pytest.mark.notebook
def test_the_report_notebook_holds_its_figure(two_runs):
    a, _, _ = two_runs
    report = nbformat.read(a / "4_report.ipynb", as_version=4)
    figures = [
        o.data["application/vnd.plotly.v1+json"]
        for c in report.cells
        for o in c.get("outputs", [])
        if "application/vnd.plotly.v1+json" in o.get("data", {})
    ]
    [figure] = figures
    assert figure["layout"]["title"]["text"].startswith("Searched and compressed subnets")
    names = [trace.get("name") for trace in figure["data"]]
    assert "channels 25%" in names and len(figure["data"]) >= 2
    summary = json.loads((a / "report.json").read_text())
    assert summary["evaluated"] == len(pd.read_csv(a / "results.csv")) - summary["failed"]
    # nbconvert's HTML (no JavaScript, no kernel, offline) shows the figures as images
    for step, count in (("1_train_supernet", 1), ("2_search", 2), ("4_report", 1)):
        page, _ = HTMLExporter().from_notebook_node(nbformat.read(a / f"{step}.ipynb", 4))
        assert page.count('src="data:image/png;base64,') >= count, step
        assert "cdn.plot.ly" not in page, step


@pytest.mark.notebook
def test_rerun_resumes_from_the_first_missing_output_and_keeps_the_journal(two_runs, tmp_path):
    a, _, _ = two_runs
    run = tmp_path / "run"
    shutil.copytree(a, run)
    assert run_pipeline(run, FAST) == []  # everything up to date
    (run / "compressed.csv").unlink()
    assert run_pipeline(run, FAST) == ["compress_best", "report"]
    # the search resumes from its journal: nothing is evaluated again, nothing deleted
    journal = (run / "search.journal").read_bytes()
    results = (run / "results.csv").read_bytes()
    (run / "results.csv").unlink()
    assert run_pipeline(run, FAST) == ["search", "compress_best", "report"]
    assert (run / "search.journal").read_bytes().startswith(journal)
    assert (run / "results.csv").read_bytes() == results
    # other search parameters: a new search; the earlier journal is kept aside, unchanged
    journal = (run / "search.journal").read_bytes()
    assert run_pipeline(run, {**FAST, "budget": 11}, until="search") == ["search"]
    assert (run / "search.1.journal").read_bytes() == journal
    assert len(pd.read_csv(run / "results.csv")) == 11


@pytest.mark.notebook
def test_the_default_strategy_is_reproducible_too(two_runs, tmp_path):
    a, _, _ = two_runs  # reuse a's trained supernet: only the search (nsga2) runs twice
    runs = []
    for name in ("c", "d"):
        shutil.copytree(a, tmp_path / name)
        ran = run_pipeline(tmp_path / name, {**FAST, "strategy": "nsga2"}, until="search")
        assert ran == ["search"]
        runs.append(tmp_path / name)
    for table in ("results.csv", "pareto.csv"):
        pd.testing.assert_frame_equal(
            pd.read_csv(runs[0] / table), pd.read_csv(runs[1] / table), check_exact=True
        )
    prov = json.loads((runs[0] / "2_search.provenance.json").read_text())
    assert prov["parameters"]["strategy"] == "nsga2"


@pytest.mark.notebook
def test_inputs_from_another_run_are_refused(two_runs, tmp_path):
    a, _, _ = two_runs
    mixed = tmp_path / "mixed"
    shutil.copytree(a, mixed)
    other = pd.read_csv(a / "results.csv").head(5)  # as from another, shorter search
    other.to_csv(mixed / "results.csv", index=False)
    before = _stamps(mixed)
    with pytest.raises(
        PipelineError,
        match=r"step 'report' cannot start: results.csv in .* was changed or comes from another run",
    ):
        begin_step(mixed, "report")
    assert _stamps(mixed) == before  # nothing deleted, nothing rewritten


def test_missing_inputs_are_named_before_any_work(tmp_path):
    with pytest.raises(
        PipelineError,
        match=r"step 'search' cannot start: train_supernet has not run .* Run 'train_supernet' first",
    ):
        begin_step(tmp_path, "search")


def test_unknown_or_mistyped_parameters_fail_before_any_kernel(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"no pipeline step has parameter\(s\) \['epoch'\]; parameters by step: train_supernet: seed, family, epochs",
    ):
        run_pipeline(tmp_path / "out", {"epoch": 3})
    with pytest.raises(ConfigError, match=r"parameter 'budget' expects int"):
        run_pipeline(tmp_path / "out", {"budget": "many"})
    assert not (tmp_path / "out").exists()


@pytest.mark.notebook
def test_a_value_the_first_step_refuses_stops_the_chain_before_any_kernel(tmp_path):
    # the parameters cell declares family's choices: checked before any kernel starts
    with pytest.raises(
        ConfigError, match=r"1_train_supernet.ipynb: parameter 'family' must be one of"
    ):
        run_pipeline(tmp_path, {**FAST, "family": "ResNet"})
    assert not (tmp_path / "1_train_supernet.ipynb").exists()  # nothing ran, nothing written
    assert not (tmp_path / "2_search.ipynb").exists()
