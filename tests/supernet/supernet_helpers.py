"""Small, seeded supernets for the supernet tests (imported by name, like search_helpers)."""

from __future__ import annotations

import torch

from nasviz.supernet import ElasticCNN, ElasticMLP, ElasticTransformer


def _perturb_bn(net: torch.nn.Module, seed: int = 0) -> None:
    """Gives BN layers non-trivial running statistics and affine parameters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)


def make_net(family: str):
    torch.manual_seed(0)
    if family == "mlp":
        return ElasticMLP(), torch.randn(16, 64)
    if family == "cnn":
        net = ElasticCNN()
        _perturb_bn(net)
        return net, torch.randn(16, 1, 8, 8)
    if family == "cnn-transform":
        net = ElasticCNN(kernel_transform=True)
        _perturb_bn(net)
        with torch.no_grad():
            for p in net.parameters():
                if p.ndim == 2 and p.shape[0] == p.shape[1]:  # kernel transforms: off identity
                    p.add_(torch.randn(p.shape) * 0.05)
        return net, torch.randn(16, 1, 8, 8)
    if family == "transformer":
        return ElasticTransformer(40, 12, 2), torch.randint(0, 40, (8, 12))
    if family == "moe":
        return ElasticTransformer(40, 12, 2, moe=True), torch.randint(0, 40, (8, 12))
    raise ValueError(family)


FAMILIES = ("mlp", "cnn", "cnn-transform", "transformer", "moe")
