"""Whole-zoo consistency check: every super-network against its extracted sub-networks."""

from __future__ import annotations

import random
import time

import torch

from netadapt.model.supernet import build_supernet
from netadapt.model.zoo import list_models

__all__ = ["check_zoo", "randomize_norm_"]


def check_zoo(models: list[str] | None = None, samples: int = 3, seed: int = 0) -> list[dict]:
    """Build each zoo super-network, extract random sub-networks and compare them.

    For every model: the full network's analytic MACs and parameters, and for ``samples``
    random architectures (plus the full and the smallest one) the largest difference between
    the super-network run at the architecture and the extracted compact network (eval mode,
    randomised BatchNorm statistics so that the comparison is not trivially zero).
    """
    results = []
    rng = random.Random(seed)
    for name in models or list_models():
        start = time.perf_counter()
        reference = build_supernet(name)
        # Large inputs make the check slow without testing anything more: check at <= 96 px.
        size = reference.input_size if reference.input_size <= 64 else (64 if reference.task == "depth" else 96)
        net = build_supernet(name, input_size=size)
        randomize_norm_(net, torch.Generator().manual_seed(seed))
        net.eval()
        smallest = net.space.make(
            [layer.widths[0] for layer in net.space.layers], [layer.kernels[0] for layer in net.space.layers]
        )
        archs = [net.space.full(), smallest] + [net.space.sample(rng) for _ in range(samples)]
        x = torch.randn(2, net.in_channels, size, size, generator=torch.Generator().manual_seed(seed))
        worst = 0.0
        with torch.no_grad():
            for arch in archs:
                ref = net(x, arch)
                out = net.extract(arch)(x)
                worst = max(worst, float((ref - out).abs().max() / ref.abs().max().clamp_min(1e-12)))
        costs = reference.costs()
        results.append(
            {
                "model": name,
                "input_size": reference.input_size,
                "macs": sum(c.macs for c in costs),
                "params": sum(c.params for c in costs),
                "layers": len(reference.space),
                "checked_at": size,
                "archs": len(archs),
                "max_rel_diff": worst,
                "seconds": time.perf_counter() - start,
            }
        )
    return results


def randomize_norm_(net: torch.nn.Module, generator: torch.Generator) -> None:
    """Give every BatchNorm random statistics and affine parameters (tests and checks only)."""
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                m.bias.copy_(torch.rand(n, generator=generator) - 0.5)
