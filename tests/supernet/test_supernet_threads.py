"""The active subnet is per thread: concurrent evaluations of different archs do not mix."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from subnet_threads import worst_thread_error
from supernet_helpers import make_net

from nasviz.supernet import recalibrate


@pytest.mark.parametrize("family", ["mlp", "cnn", "cnn-transform", "moe"])
def test_many_threads_get_their_own_subnet(family):
    net, x = make_net(family)
    net.eval()
    distinct = net.sample(7, n=20)
    archs = distinct[:4] * 2 + distinct[4:]  # the first eight: pairs race to prepare one arch
    errors = worst_thread_error(net, x, archs)
    assert errors <= 1e-5


def test_nested_and_per_thread_contexts():
    net, _x = make_net("mlp")
    small, large = net.smallest(), net.largest()
    seen = {}
    with net.subnet(small):
        thread = threading.Thread(target=lambda: seen.setdefault("other", net.active_arch))
        thread.start()
        thread.join()
        with net.subnet(large):
            assert net.active_arch == large
        assert net.active_arch == small
    assert seen["other"] == large  # a new thread does not inherit this thread's subnet


def test_recalibration_is_per_arch_and_thread_safe(digits_data):
    net, _ = make_net("cnn")
    x = digits_data.val.X[:32]
    archs = net.sample(3, n=6)
    # calibrate serially on a copy to get the expected statistics
    expected = {}
    for a in archs:
        expected[a] = recalibrate(net, a, digits_data, samples=300)
    shared_before = {k: v.clone() for k, v in net.state_dict().items()}
    net.clear_calibration()
    with ThreadPoolExecutor(6) as pool:
        got = list(pool.map(lambda a: recalibrate(net, a, digits_data, samples=300), archs))
    for a, stats in zip(archs, got, strict=False):
        for key, (mean, var) in stats.items():
            torch.testing.assert_close(mean, expected[a][key][0])
            torch.testing.assert_close(var, expected[a][key][1])
    after = net.state_dict()
    assert all(torch.equal(shared_before[k], after[k]) for k in after)  # nothing shared written
    net.eval()
    with torch.no_grad():
        for a in archs:
            with net.subnet(a):
                torch.testing.assert_close(net(x), net.export(a)(x), atol=1e-5, rtol=1e-5)
    # re-calibrated statistics differ from the shared running ones and match the data
    key = net.stages[0][0].bn1.key
    mean, var = expected[archs[0]][key]
    hidden = net.config.stem_channels * archs[0]["expand.0"]
    assert mean.shape == (hidden,) and not torch.allclose(
        mean, net.stages[0][0].bn1.running_mean[:hidden]
    )


def test_calibration_inputs_make_eval_use_subnet_statistics(digits_data):
    net, _ = make_net("cnn")
    net.eval()
    arch = net.sample(11)
    x = digits_data.val.X[:16]
    with torch.no_grad(), net.subnet(arch):
        plain = net(x)
    net.calibration_inputs = digits_data.train.X[:300]
    with torch.no_grad(), net.subnet(arch):
        calibrated = net(x)
    assert not torch.allclose(plain, calibrated)
    stats = recalibrate(net, arch)  # same inputs: same statistics as used above
    static = net.export(arch)
    torch.testing.assert_close(static(x), calibrated, atol=1e-5, rtol=1e-5)
    assert stats  # one entry per BN layer of the subnet
