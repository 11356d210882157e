"""Tiny seeded supernets for the hardware tests (imported by name)."""

from __future__ import annotations

import hashlib

import torch

from nasviz.supernet import ElasticCNN, ElasticMLP, ElasticTransformer


def tiny_cnn() -> ElasticCNN:
    torch.manual_seed(0)
    return ElasticCNN(
        1, 3, 8, stem_channels=4, stage_channels=(4, 6), strides=(2, 1), kernels=(3, 5),
        expands=(1, 2), depths=(1, 2),
    ).eval()  # fmt: skip


def tiny_mlp() -> ElasticMLP:
    torch.manual_seed(0)
    return ElasticMLP(12, 3, widths=(4, 8), depths=(1, 2)).eval()


def tiny_transformer(moe: bool = False) -> ElasticTransformer:
    torch.manual_seed(0)
    return ElasticTransformer(
        16, 6, 3, dim=8, head_dim=4, layers=(1, 2), heads=(1, 2), ffn_widths=(8, 16), moe=moe,
        experts=(2, 3), top_ks=(1, 2),
    ).eval()  # fmt: skip


def state_hash(model: torch.nn.Module) -> str:
    """A hash of every parameter and buffer (to check a model was left as it was)."""
    h = hashlib.sha1()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
