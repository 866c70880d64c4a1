"""BatchNorm statistics of a sub-network: recalibration and folding.

The sub-networks of a super-network share BatchNorm layers whose running statistics were
accumulated while ordered dropout mixed many widths in every batch (paper §2.3), so they
describe no single sub-network.  Recomputing them for one sub-network on a fixed set of
training images (as Once-for-All and slimmable networks do) makes its accuracy reflect it; the
search and the validation during training both do so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, fx, nn
from torch.fx.experimental.optimization import fuse
from torch.nn.modules.batchnorm import _BatchNorm

from netadapt.errors import NetAdaptError
from netadapt.model.layers import ElasticConv

__all__ = ["Forward", "fold_bn_", "recalibrate_bn_", "recalibrated_bn"]

Forward = Callable[[Tensor], Tensor]


def _batchnorms(model: nn.Module) -> list[_BatchNorm]:
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


def recalibrate_bn_(model: nn.Module, images: Iterable[Tensor], *, forward: Forward | None = None) -> nn.Module:
    """Recompute every BatchNorm's running statistics of ``model`` in place; leave it in eval mode.

    Statistics are reset and re-estimated as a cumulative average over ``images`` (``momentum =
    None``: every batch weighs the same, whatever the order), with only the BN layers in training
    mode so that dropout and the like stay off.  ``forward`` (default ``model``) runs a batch,
    e.g. ``lambda x: supernet(x, arch)`` for a masked sub-network.
    """
    forward = forward or model
    norms = _batchnorms(model)
    momenta = [bn.momentum for bn in norms]
    model.eval()
    try:
        for bn in norms:
            bn.reset_running_stats()
            bn.momentum = None
            bn.train()
        with torch.no_grad():
            seen = 0
            for x in images:
                forward(x)
                seen += 1
        if seen == 0 and norms:
            raise NetAdaptError("BatchNorm recalibration got no calibration images")
    finally:
        for bn, momentum in zip(norms, momenta, strict=True):
            bn.momentum = momentum
        model.eval()
    return model


@contextmanager
def recalibrated_bn(model: nn.Module, images: Iterable[Tensor], *, forward: Forward | None = None) -> Iterator[nn.Module]:
    """:func:`recalibrate_bn_` for the duration of a ``with`` block: the BatchNorm statistics
    and every module's training mode are restored on exit (for the shared super-network)."""
    norms = _batchnorms(model)
    saved = [(bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone()) for bn in norms]
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield recalibrate_bn_(model, images, forward=forward)
    finally:
        with torch.no_grad():
            for bn, (mean, var, count) in zip(norms, saved, strict=True):
                bn.running_mean.copy_(mean)
                bn.running_var.copy_(var)
                bn.num_batches_tracked.copy_(count)
        for m, training in modes:
            m.training = training


def fold_bn_(net: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm that directly follows a convolution of an
    :class:`~netadapt.model.layers.ElasticConv` into that convolution's weight and bias (in
    place; for an extracted copy whose statistics are final), and return the network.  The
    outputs are unchanged up to rounding; one pass over every activation map is saved per layer.
    A traced network's compact module (a ``torch.fx.GraphModule``, in eval mode) is folded by
    torch.fx's own conv-BatchNorm fusion into a new module, returned, with ``net``'s
    ``input_size`` and ``in_channels``; ``net`` itself is left as it was."""
    if isinstance(net, fx.GraphModule):
        folded = fuse(net, inplace=False, no_trace=True)
        for name in ("input_size", "in_channels"):
            if hasattr(net, name):
                setattr(folded, name, getattr(net, name))
        return folded
    for m in net.modules():
        if isinstance(m, ElasticConv) and m.conv is not None and isinstance(m.bn, nn.BatchNorm2d):
            conv, bn = m.conv, m.bn
            with torch.no_grad():
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (F,)
                bias = bn.bias - bn.running_mean * scale
                if conv.bias is not None:
                    bias = bias + conv.bias * scale
                conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
                conv.bias = nn.Parameter(bias)
            m.bn = None  # ElasticConv skips a missing norm
    return net
