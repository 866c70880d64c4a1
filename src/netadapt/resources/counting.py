"""MACs and parameters: analytic from the architecture value, or counted on a real module.

Both follow ``../shared/REFERENCE.md``: MACs are the multiply-accumulates of convolutions and
fully connected layers; parameters are weights, biases and BatchNorm's affine parameters, not
running statistics.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from netadapt.arch.space import Architecture
from netadapt.errors import NetAdaptError
from netadapt.model.supernet import SuperNet
from netadapt.trace.elastic import GraphSuperNet

__all__ = ["count_macs", "count_params", "counted_macs", "counted_params"]


def count_macs(
    model: SuperNet | GraphSuperNet | nn.Module, arch: Architecture | None = None, *, input_size: int | None = None
) -> int:
    """MACs of one forward pass of a single image.

    For a :class:`SuperNet` the count is analytic, from ``arch`` (default: the full network),
    fast enough to call inside the search.  For any other module the operations of a real forward
    pass are counted with ``torch.utils.flop_counter`` (``input_size`` or the module's own
    ``input_size`` attribute gives the resolution).
    """
    if isinstance(model, GraphSuperNet):
        return model.macs(arch)
    if isinstance(model, SuperNet):
        return sum(c.macs for c in model.costs(arch))
    if not isinstance(model, nn.Module):
        raise NetAdaptError(f"count_macs counts a super-network or an nn.Module, got {type(model).__name__}")
    if arch is not None:
        raise NetAdaptError("an architecture can only be counted on a SuperNet; pass the super-network")
    return counted_macs(model, input_size=input_size)


def count_params(model: SuperNet | GraphSuperNet | nn.Module, arch: Architecture | None = None) -> int:
    """Parameters of ``arch`` of a super-network (analytic), or of any module (counted)."""
    if isinstance(model, (SuperNet, GraphSuperNet)):
        return sum(c.params for c in model.costs(arch))
    if not isinstance(model, nn.Module):
        raise NetAdaptError(f"count_params counts a super-network or an nn.Module, got {type(model).__name__}")
    if arch is not None:
        raise NetAdaptError("an architecture can only be counted on a SuperNet; pass the super-network")
    return counted_params(model)


def counted_macs(model: nn.Module, *, input_size: int | None = None, in_channels: int | None = None) -> int:
    """MACs counted by ``torch.utils.flop_counter`` on a real forward pass (FLOPs / 2)."""
    size = input_size or getattr(model, "input_size", None)
    if size is None:
        raise NetAdaptError("input_size is needed to count the MACs of this module")
    channels = in_channels or getattr(model, "in_channels", 3)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = torch.zeros(1, channels, size, size, device=device)
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def counted_params(model: nn.Module) -> int:
    """Number of parameters of a module (BatchNorm's running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters())
