"""The MoE layer: routing, dispatch, load-balancing loss, capacity, elastic slicing."""

from __future__ import annotations

import copy
import math
import threading

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from nasviz.errors import ConfigError, MoEError, ShapeError
from nasviz.moe import MoE, load_balancing_loss, route


def reference(moe: MoE, x: torch.Tensor, num_experts=None, top_k=None, hidden=None) -> torch.Tensor:
    """Token-by-token loop: the definition the vectorized dispatch must match."""
    E = num_experts or moe.num_experts
    k = top_k or min(moe.top_k, E)
    flat = x.reshape(-1, moe.dim)
    probs = torch.softmax(flat @ moe.router.weight[:E].t() / moe.temperature, dim=-1)
    out = torch.zeros_like(flat)
    for n in range(flat.shape[0]):
        top, idx = probs[n].topk(k)
        for g, e in zip(top / top.sum(), idx, strict=True):
            out[n] += g * moe.experts[int(e)](flat[n : n + 1], hidden)[0]
    return out.reshape(x.shape)


@given(
    st.integers(1, 6),
    st.integers(1, 3),
    st.integers(1, 5),
    st.floats(0.3, 3.0),
    st.integers(0, 10_000),
)
def test_forward_matches_token_loop(num_experts, k, tokens, temperature, seed):
    k = min(k, num_experts)
    torch.manual_seed(seed)
    moe = MoE(6, 5, num_experts, k, temperature=temperature)
    x = torch.randn(2, tokens, 6)
    torch.testing.assert_close(moe(x), reference(moe, x), rtol=1e-5, atol=1e-6)


def test_two_dimensional_input_keeps_shape():
    moe = MoE(4, 8, 3, 2)
    assert moe(torch.randn(7, 4)).shape == (7, 4)
    with pytest.raises(ShapeError):
        moe(torch.randn(7, 5))


@given(st.integers(2, 8), st.integers(1, 4), st.integers(0, 1000))
def test_route_gates_renormalized_and_best_first(num_experts, k, seed):
    k = min(k, num_experts)
    logits = torch.randn(10, num_experts, generator=torch.Generator().manual_seed(seed))
    probs, experts, gates = route(logits, k)
    torch.testing.assert_close(gates.sum(-1), torch.ones(10))
    assert (gates[:, :-1] >= gates[:, 1:]).all()
    torch.testing.assert_close(
        probs.gather(1, experts), probs.sort(-1, descending=True).values[:, :k]
    )


def test_load_balancing_loss_uniform_is_one_and_collapse_is_E():
    E = 4
    uniform = torch.full((8, E), 1 / E)
    assert float(
        load_balancing_loss(uniform, torch.arange(8).remainder(E)[:, None])
    ) == pytest.approx(1.0)
    collapsed = torch.zeros(8, E)
    collapsed[:, 0] = 1
    assert float(
        load_balancing_loss(collapsed, torch.zeros(8, 1, dtype=torch.long))
    ) == pytest.approx(E)


def test_aux_loss_is_per_thread_and_has_gradient():
    torch.manual_seed(0)
    moe = MoE(4, 8, 4, 2)
    moe(torch.randn(5, 4))
    main = moe.aux_loss
    main.backward()
    assert moe.router.weight.grad is not None and moe.router.weight.grad.abs().sum() > 0
    seen = {}
    thread = threading.Thread(target=lambda: seen.setdefault("aux", moe.aux_loss))
    thread.start()
    thread.join()
    assert float(seen["aux"]) == 0.0 and float(main.detach()) > 0


def test_deepcopy_after_backward_keeps_outputs():
    torch.manual_seed(0)
    moe = MoE(4, 8, 4, 2)
    x = torch.randn(3, 4)
    moe(x).sum().backward()
    clone = copy.deepcopy(moe)
    assert torch.equal(clone(x), moe(x))


def _rows_seen(moe: MoE) -> list[list[int]]:
    """Per expert module, how many token rows each of its forwards received."""
    seen: list[list[int]] = [[] for _ in moe.experts]
    for j, expert in enumerate(moe.experts):
        expert.register_forward_pre_hook(lambda m, args, j=j: seen[j].append(args[0].shape[0]))
    return seen


def capacity_reference(moe: MoE, x: torch.Tensor, factor: float) -> torch.Tensor:
    """Token-by-token definition with a capacity: choices are queued first choices of every
    token, then second choices; an expert module takes the first ceil(f * N * k / modules)."""
    flat = x.reshape(-1, moe.dim)
    n, k = flat.shape[0], moe.top_k
    probs = torch.softmax(flat @ moe.router.weight.t() / moe.temperature, dim=-1)
    top, idx = probs.topk(k)
    gates = top / top.sum(-1, keepdim=True)
    module = idx if moe.expert_map is None else moe.expert_map[idx]
    modules = len(
        set(range(moe.num_experts) if moe.expert_map is None else moe.expert_map.tolist())
    )
    capacity = math.ceil(factor * n * k / modules)
    taken = [0] * len(moe.experts)
    out = torch.zeros_like(flat)
    for rank in range(k):
        for t in range(n):
            j = int(module[t, rank])
            if taken[j] < capacity:
                taken[j] += 1
                out[t] += gates[t, rank] * moe.experts[j](flat[t : t + 1])[0]
    return out.reshape(x.shape)


@pytest.mark.parametrize("factor", [0.25, 0.5, 1.0, 4.0])
def test_capacity_drops_assignments_and_their_output(factor):
    torch.manual_seed(0)
    moe = MoE(4, 8, 4, 2, capacity_factor=factor)
    with torch.no_grad():
        moe.router.weight[0] += 2.0  # a popular expert, so something overflows
    seen_routing = []
    moe.register_routing_hook(lambda m, r: seen_routing.append(r))
    rows = _rows_seen(moe)
    x = torch.randn(40, 4).abs()
    with torch.no_grad():
        out = moe(x)
        rows = [list(r) for r in rows]  # before the reference calls the experts again
        torch.testing.assert_close(out, capacity_reference(moe, x, factor), rtol=1e-5, atol=1e-6)
    routing = seen_routing[0]
    capacity = math.ceil(factor * 40 * 2 / 4)
    for e in range(4):
        processed = int(((routing.experts == e) & routing.kept).sum())
        assert processed <= capacity and sum(rows[e]) == processed  # the expert saw only those
    assert torch.equal(routing.gates == 0, ~routing.kept)
    if factor < 1:
        assert (~routing.kept).any()
        nothing = (~routing.kept).all(dim=1)  # tokens no expert processed: zero output
        if nothing.any():
            assert (out[nothing] == 0).all()
    else:
        assert factor < 4 or routing.kept.all()


def test_capacity_of_a_merged_layer_counts_per_merged_expert():
    """After merging 4 router slots into 2 expert modules, capacity divides by 2 modules, and
    no module takes more than one capacity whatever slots its tokens came through."""
    torch.manual_seed(1)
    moe = MoE(4, 8, 4, 2, capacity_factor=0.5)
    moe.experts = torch.nn.ModuleList([moe.experts[0], moe.experts[1]])
    moe.expert_map = torch.tensor([0, 0, 1, 1])
    seen_routing = []
    moe.register_routing_hook(lambda m, r: seen_routing.append(r))
    rows = _rows_seen(moe)
    x = torch.randn(30, 4)
    with torch.no_grad():
        out = moe(x)
        rows = [list(r) for r in rows]  # before the reference calls the experts again
        torch.testing.assert_close(out, capacity_reference(moe, x, 0.5), rtol=1e-5, atol=1e-6)
    capacity = math.ceil(0.5 * 30 * 2 / 2)
    module = moe.expert_map[seen_routing[0].experts]
    for j in range(2):
        processed = int(((module == j) & seen_routing[0].kept).sum())
        assert processed == sum(rows[j]) <= capacity
    assert sum(map(sum, rows)) == int(seen_routing[0].kept.sum())


def test_capacity_keeps_gradients_to_the_router():
    torch.manual_seed(0)
    moe = MoE(4, 8, 4, 2, capacity_factor=0.5)
    moe.register_routing_hook(lambda m, r: None)  # an observer must not cut the graph
    moe(torch.randn(20, 4)).sum().backward()
    assert moe.router.weight.grad is not None and moe.router.weight.grad.abs().sum() > 0


@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 8), st.integers(0, 1000))
def test_elastic_forward_equals_sliced_copy(num_experts, k, hidden, seed):
    k = min(k, num_experts)
    torch.manual_seed(seed)
    moe = MoE(6, 8, 4, 2)
    x = torch.randn(2, 3, 6)
    small = moe.sliced(num_experts, k, hidden)
    assert (small.num_experts, small.top_k, small.hidden) == (num_experts, k, hidden)
    torch.testing.assert_close(moe(x, num_experts, k, hidden), small(x))
    torch.testing.assert_close(
        small(x), reference(moe, x, num_experts, k, hidden), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_experts": 0},
        {"num_experts": 5},
        {"top_k": 3, "num_experts": 2},
        {"hidden": 0},
        {"hidden": 9},
    ],
)
def test_bad_elastic_arguments(kwargs):
    with pytest.raises(MoEError):
        MoE(4, 8, 4, 2)(torch.randn(3, 4), **kwargs)


@pytest.mark.parametrize(
    "args", [(4, 8, 0), (4, 8, 2, 3), (4, 8, 2, 1, 0.0), (4, 8, 2, 1, 1.0, -1.0)]
)
def test_bad_constructor_arguments(args):
    with pytest.raises(ConfigError):
        MoE(*args)
