"""The block view (latency tables): blocks chain into the export, choices follow their dims."""

from __future__ import annotations

import pytest
import torch
from supernet_helpers import FAMILIES, make_net

from nasviz.errors import ConfigError, ShapeError
from nasviz.space import Arch


@pytest.mark.parametrize("family", FAMILIES)
def test_blocks_chain_into_the_export_for_random_archs(family):
    net, x = make_net(family)
    net.eval()
    blocks = {b.name: b for b in net.block_space()}
    shape = tuple(x.shape)
    for arch in [net.smallest(), net.largest(), *net.sample(1, n=6)]:
        h = x
        with torch.no_grad():
            for name, choice in net.block_choices(arch):
                assert choice in blocks[name].choices
                assert tuple(h.shape) == net.block_input_shape(name, choice, shape)
                h = net.export_block(name, choice)(h)  # (shape of the next block's input)
            expected = net.export(arch)(x)
        torch.testing.assert_close(h, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_blocks_choice_depends_only_on_its_dims(family):
    net, _ = make_net(family)
    space = net.space.to_dict()
    for arch in net.sample(2, n=8):
        chosen = dict(net.block_choices(arch))
        for block in net.block_space():
            for name in space:
                if name in block.dims:
                    continue
                for value in space[name]:  # any change outside the block's dims
                    other = dict(net.block_choices(arch.replace(**{name: value})))
                    assert other.get(block.name) == chosen.get(block.name), (block.name, name)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_listed_choice_is_taken_by_some_arch(family):
    net, _ = make_net(family)
    taken: dict[str, set] = {}
    for arch in net.sample(3, n=3000):
        for name, choice in net.block_choices(arch):
            taken.setdefault(name, set()).add(choice)
    for block in net.block_space():
        assert taken[block.name] == set(block.choices), block.name
        assert block.fixed == (block.choices == (Arch(),))


def test_unknown_blocks_and_choices_are_config_errors():
    net, _ = make_net("cnn")
    with pytest.raises(ConfigError, match=r"has no block 'stage9\.0'; its blocks: \['stem'"):
        net.export_block("stage9.0", {})
    with pytest.raises(ConfigError, match=r"block 'stage0\.0' .* has no choice \{'kernel': 4"):
        net.export_block("stage0.0", {"kernel": 4, "expand": 3})
    with pytest.raises(ShapeError, match="ElasticCNN expects images"):
        net.block_input_shape("stem", {}, (2, 3, 8, 8))
