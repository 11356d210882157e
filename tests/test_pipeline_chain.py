"""`nasviz pipeline`: the chain runs, resumes, refuses foreign inputs and is reproducible."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from nasviz import ConfigError, PipelineError
from nasviz.pipeline import STEPS, begin_step, read_manifest, run_pipeline

FAST = {
    "seed": 1,
    "epochs": 2,
    "budget": 10,
    "strategy": "random",
    "n_best": 1,
    "finetune_epochs": 1,
}
TABLES = ("results.csv", "pareto.csv", "compressed.csv", "training.csv")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    a, b = tmp_path_factory.mktemp("run_a"), tmp_path_factory.mktemp("run_b")
    assert run_pipeline(a, FAST) == [s.name for s in STEPS]
    assert run_pipeline(b, FAST) == [s.name for s in STEPS]
    return a, b


@pytest.mark.notebook
def test_same_parameters_and_seed_give_identical_tables(two_runs):
    a, b = two_runs
    for table in TABLES:
        pd.testing.assert_frame_equal(
            pd.read_csv(a / table), pd.read_csv(b / table), check_exact=True, obj=table
        )
    assert read_manifest(a)["run_id"] != read_manifest(b)["run_id"]
    for step in STEPS:  # executed notebooks and provenance land beside the outputs
        assert (a / step.notebook).is_file()
        assert (a / f"{step.notebook[:-6]}.provenance.json").is_file()


@pytest.mark.notebook
def test_rerun_resumes_from_the_first_missing_output(two_runs):
    a, _ = two_runs
    assert run_pipeline(a, FAST) == []  # everything up to date
    (a / "compressed.csv").unlink()
    assert run_pipeline(a, FAST) == ["compress_best", "report"]
    assert run_pipeline(a, {**FAST, "budget": 11}) == ["search", "compress_best", "report"]


@pytest.mark.notebook
def test_inputs_from_another_run_are_refused(two_runs, tmp_path):
    a, b = two_runs
    mixed = tmp_path / "mixed"
    shutil.copytree(a, mixed)
    shutil.copy(b / "results.csv", mixed / "results.csv")
    with pytest.raises(
        PipelineError,
        match=r"step 'report' cannot start: results.csv in .* was changed or comes from another run",
    ):
        begin_step(mixed, "report")
    before = sorted(p.name for p in mixed.iterdir())
    assert sorted(p.name for p in mixed.iterdir()) == before  # nothing deleted


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
def test_a_failing_step_stops_the_chain_and_keeps_its_notebook(tmp_path):
    with pytest.raises(
        PipelineError,
        match=r"pipeline step 'train_supernet' failed: .*ValueError: family must be one of",
    ):
        run_pipeline(tmp_path, {**FAST, "family": "ResNet"})
    assert (tmp_path / "1_train_supernet.ipynb").is_file()  # the executed notebook, with the error
    assert not (tmp_path / "2_search.ipynb").exists()
