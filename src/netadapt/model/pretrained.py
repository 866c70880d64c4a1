"""Load torchvision's trained MobileNetV2/V3 weights into the matching super-network.

The zoo builds these networks with torchvision's layer order (expansion, depthwise,
squeeze-excitation, projection; classifier hidden layer then output layer), so the two state
dicts correspond entry by entry; each pair is checked by shape.  The classifier's hidden
``Linear`` becomes the super-network's 1x1 convolution (same numbers, other shape).  torchvision
is never imported here: pass a model object or its ``state_dict``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from netadapt.errors import NetAdaptError
from netadapt.model.supernet import SuperNet

__all__ = ["load_torchvision_weights"]


def load_torchvision_weights(supernet: SuperNet, model_or_state_dict: nn.Module | Mapping[str, Tensor]) -> SuperNet:
    """Copy torchvision weights into ``supernet`` in place; the full network then reproduces
    torchvision's outputs.  Returns ``supernet``."""
    expected = supernet.definition.torchvision
    if expected is None:
        raise NetAdaptError(
            f"{supernet.name} has no torchvision counterpart; weights load into mobilenet_v2, "
            "mobilenet_v3_large and mobilenet_v3_small (width 1.0)"
        )
    if not isinstance(model_or_state_dict, nn.Module | Mapping):
        raise NetAdaptError(
            f"give a torchvision {expected} model or its state dict, got {type(model_or_state_dict).__name__} "
            f"(e.g. torchvision.models.{expected}(weights='DEFAULT'))"
        )
    source = model_or_state_dict.state_dict() if isinstance(model_or_state_dict, nn.Module) else dict(model_or_state_dict)
    ours = supernet.state_dict()
    if len(source) != len(ours):
        raise NetAdaptError(
            f"the given weights have {len(source)} entries, {supernet.name} has {len(ours)}: is it a torchvision {expected}?"
        )
    new_state = {}
    for (src_key, src), (dst_key, dst) in zip(source.items(), ours.items(), strict=True):
        if src.shape != dst.shape:
            if src.numel() != dst.numel() or not dst_key.startswith("blocks") or src.dim() != 2:
                raise NetAdaptError(
                    f"weight {src_key} has shape {tuple(src.shape)} but {supernet.name}'s {dst_key} has "
                    f"{tuple(dst.shape)} (different number of classes or not a torchvision {expected}?)"
                )
            src = src.reshape(dst.shape)  # classifier hidden Linear -> 1x1 convolution
        new_state[dst_key] = src.to(dst.dtype)
    with torch.no_grad():
        supernet.load_state_dict(new_state)
    return supernet
