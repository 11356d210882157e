"""Search(devices=[...]): one copy of the supernet per device, evaluations spread over them,
the user's net left where and as it was."""

from __future__ import annotations

import threading

import pytest
import torch

from nasviz.errors import ConfigError
from nasviz.objectives import Objective, accuracy, params
from nasviz.search import Search
from nasviz.supernet import ElasticMLP


def _net() -> ElasticMLP:
    torch.manual_seed(0)
    return ElasticMLP(16, 3, widths=(4, 8), depths=(1, 2)).train()


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(40, 16, generator=g), torch.randint(0, 3, (40,), generator=g)


def _state(net):
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_copies_per_device_give_the_results_of_the_net_itself():
    net, data = _net(), _data()
    before = _state(net)
    seen: set[int] = set()
    lock = threading.Lock()

    def where(model, _arch):
        with lock:
            seen.add(id(model))
        return float(next(model.parameters()).device.type == "cpu")

    objectives = [accuracy(data), params(), Objective("on_cpu", "maximize", where)]
    common = {"objectives": objectives, "strategy": "random", "budget": 8, "seed": 0}
    spread = Search(net, devices=["cpu", "cpu"], storage=":memory:", **common)
    assert spread.run().state == "finished", spread.traceback
    assert len(seen) == 2 and id(net) not in seen  # two copies, never the net itself
    seen.clear()
    plain = Search(net, storage=":memory:", **common)
    assert plain.run().state == "finished", plain.traceback
    assert seen == {id(net)}
    columns = [*net.space.names, "accuracy", "params", "on_cpu"]
    assert spread.results[columns].equals(plain.results[columns])
    assert net.training and all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_devices_are_checked_before_anything_runs():
    net = _net()
    common = {"objectives": [params()], "storage": ":memory:"}
    with pytest.raises(ConfigError, match="devices must be a non-empty list"):
        Search(net, devices="cpu", **common)
    with pytest.raises(ConfigError, match="not available on this machine; available: cpu"):
        Search(net, devices=["cuda:7"], **common)
    with pytest.raises(ConfigError, match="a function search chooses its own device"):
        Search(lambda a: {"params": 1.0}, {"x": [1, 2]}, devices=["cpu"], **common)
    import concurrent.futures as cf

    with cf.ThreadPoolExecutor(1) as pool, pytest.raises(ConfigError, match="not with executor="):
        Search(net, devices=["cpu"], executor=pool, **common)


@pytest.mark.gpu
def test_a_search_on_every_gpu():
    net, data = _net(), _data()
    devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    search = Search(net, objectives=[accuracy(data), params()], strategy="random", budget=6,
                    storage=":memory:", seed=0, devices=devices)  # fmt: skip
    assert search.run().state == "finished", search.traceback
    assert next(net.parameters()).device.type == "cpu"  # the net itself never moved
    cpu = Search(net, objectives=[accuracy(data), params()], strategy="random", budget=6,
                 storage=":memory:", seed=0)  # fmt: skip
    assert cpu.run().state == "finished"
    assert (search.results["accuracy"] - cpu.results["accuracy"]).abs().max() <= 2.5  # 1 of 40
