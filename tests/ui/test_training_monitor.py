"""TrainingMonitor follows a real (tiny) supernet training run."""

from __future__ import annotations

import torch

from nasviz.data import digits
from nasviz.supernet import ElasticMLP, train_supernet
from nasviz.ui import TrainingMonitor
from nasviz.viz._training import loss_info


def test_monitor_draws_losses_and_accuracy_of_a_training_run():
    torch.manual_seed(0)
    data = digits(flat=True)
    run = train_supernet(ElasticMLP(), data, epochs=2, batch_size=256, seed=0)
    monitor = TrainingMonitor(run, rate=50)
    monitor._repr_mimebundle_()  # displayed: its one figure widget exists from now on
    assert monitor.steps_drawn == 0 and not monitor.controls.buttons["start"].disabled
    monitor.controls.press("start")
    run.wait(120)
    monitor.throttle.flush_now()
    history = run.history
    steps = history["step"].nunique()
    assert steps > 0 and monitor.steps_drawn == steps
    assert set(monitor.series) == {"largest", "smallest", "random (mean)"}
    info = loss_info(history)
    assert monitor.series["largest"].values("y") == list(info.losses["largest"])
    assert monitor.series["random (mean)"].values("x") == list(info.steps["random (mean)"])
    evaluations = run.evaluations
    accuracy = {t.name: list(t.y) for t in monitor.accuracy_traces}
    assert accuracy == {  # largest and smallest validation accuracy, on the right-hand axes
        "largest (val)": evaluations["val_largest"].tolist(),
        "smallest (val)": evaluations["val_smallest"].tolist(),
    }
    assert {t.xaxis for t in monitor.accuracy_traces} == {"x2"}
    assert "finished" in monitor.controls.status_line.value
    again = TrainingMonitor(run)  # a finished run draws its whole history at once
    assert again.steps_drawn == steps and again.figure._last_trace_edit_id == 0
    monitor.close()
    again.close()
