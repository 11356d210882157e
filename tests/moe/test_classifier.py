"""The teaching example: a small MoE classifier on data.tasks() whose experts specialize by task."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nasviz import data
from nasviz.errors import ConfigError, ShapeError
from nasviz.moe import MoEClassifier, RoutingRecorder, RoutingStats, train_moe


@pytest.mark.slow
def test_trained_experts_specialize_by_task():
    dataset = data.tasks(n_per_task=200, seed=0)
    torch.manual_seed(0)
    model = MoEClassifier.for_data(dataset)
    history = train_moe(model, dataset, epochs=4, seed=0)
    assert history.val_accuracy.iloc[-1] > 65.0  # chance is 50%
    test = dataset.test
    with torch.no_grad(), RoutingRecorder(model, labels={"task": test.extras["task"]}) as rec:
        model(test.X)
    stats = rec.stats()
    shuffled = RoutingStats(
        stats.recording.with_labels(task=np.random.default_rng(0).permutation(test.extras["task"]))
    )
    for layer in range(2):
        mi, baseline = (
            stats.mutual_information("task", layer),
            shuffled.mutual_information("task", layer),
        )
        assert mi > 0.05 and mi > 10 * baseline, (layer, mi, baseline)
    # and in some layer every task's favourite expert is first choice for well over a uniform share
    share = np.max(
        [stats.by_label("task", layer=i, first_choice=True).max(axis=1) for i in range(2)], axis=0
    )
    assert (share > 1.2 / 4).all(), share


def test_for_dataset_is_the_old_name_of_for_data():
    tasks = data.tasks(n_per_task=20, seed=0)
    with pytest.warns(FutureWarning, match=r"MoEClassifier.for_dataset\(\) is now for_data\(\)"):
        old = MoEClassifier.for_dataset(tasks, dim=8, hidden=8, num_layers=1)
    assert isinstance(old, MoEClassifier) and old.seq_len == tasks.input_shape[0]


def test_arguments_follow_elastic_transformers_names_and_old_positional_calls_warn():
    new = MoEClassifier(20, seq_len=8, num_classes=3, dim=8, hidden=8, num_layers=1)
    assert new.seq_len == 8 and new.head[-1].out_features == 3
    with pytest.warns(
        FutureWarning, match=r"MoEClassifier: pass num_classes=\.\.\., seq_len=\.\.\."
    ):
        old = MoEClassifier(20, 3, 8, dim=8, hidden=8, num_layers=1)  # the previous order
    assert old.seq_len == 8 and old.head[-1].out_features == 3


def test_history_and_shapes():
    dataset = data.tasks(n_per_task=20, seq_len=8, tokens_per_task=4)
    torch.manual_seed(0)
    model = MoEClassifier.for_data(dataset, dim=8, hidden=8, num_layers=1)
    history = train_moe(model, dataset, epochs=2, batch_size=16)
    assert history.columns.tolist() == ["epoch", "loss", "aux_loss", "val_accuracy"]
    assert history.epoch.tolist() == [1, 2] and (history.aux_loss >= 1.0 - 1e-6).all()
    assert model(dataset.test.X).shape == (len(dataset.test), 2)
    with pytest.raises(ShapeError):
        model(torch.zeros(2, 9, dtype=torch.long))
    with pytest.raises(ConfigError):
        train_moe(model, dataset, epochs=0)
    with pytest.raises(ConfigError):
        MoEClassifier.for_data(data.digits())
