"""Bring your own model: any traceable CNN as a NetAdaptV2 super-network.

:func:`supernet_from_module` traces an ``nn.Module`` with ``torch.fx``, finds which channels
must shrink together (:mod:`netadapt.trace.graph`), and returns a :class:`GraphSuperNet` that
works wherever a zoo super-network does: ``net(x, arch)``, ordered-dropout training with
per-image widths, ``netadapt.extract``, ``count_macs``, the search and export.  The model's
weights are kept: the full architecture computes exactly what the model computed.
"""

from __future__ import annotations

import copy
from dataclasses import asdict

import torch
from torch import Tensor, nn

from netadapt.errors import NetAdaptError
from netadapt.model.registry import register_source_builder
from netadapt.trace.build import TraceOptions, build_space, trace_module
from netadapt.trace.elastic import GraphSuperNet
from netadapt.trace.graph import TracePlan, analyze
from netadapt.trace.sources import check_source, is_source, load_source, source_digest

__all__ = ["GraphSuperNet", "TraceOptions", "TracePlan", "is_source", "supernet_from_module", "supernet_from_source"]


def supernet_from_module(
    model: nn.Module,
    example_input: Tensor,
    *,
    source: str | None = None,
    name: str | None = None,
    **options: object,
) -> GraphSuperNet:
    """``model`` as a super-network, weights kept (the model itself is not modified: it is copied).

    ``example_input``: one batch of the size the network will run at, e.g.
    ``torch.zeros(1, 3, 224, 224)``; costs are computed for that resolution.  ``source``
    (``"torchvision:resnet50"``, ``"timm:…"``, ``"module:file.py:factory"``) lets super-network
    files rebuild the network; without it the super-network cannot be saved.  ``options``:
    :class:`TraceOptions` fields (``num_widths``, ``width_divisor``, ``min_width_fraction``,
    ``removal``, ``superkernel``).
    """
    if not isinstance(model, nn.Module):
        raise NetAdaptError(f"expected an nn.Module, got {type(model).__name__}")
    if not isinstance(example_input, Tensor) or example_input.dim() != 4:
        raise NetAdaptError("example_input must be one (B, C, H, W) image batch")
    opts = TraceOptions.from_options(options)
    model = copy.deepcopy(model)  # the super-network trains its own copy of the weights
    device = next((p.device for p in model.parameters()), example_input.device)
    example = example_input.to(device)
    gm, other_macs = trace_module(model, example)
    other_params = sum(p.numel() for p in gm.parameters())
    plan = analyze(gm, removal=opts.removal == "block")
    model_name = name or source or type(model).__name__
    space, layer_of, group_layer = build_space(plan, model_name, opts)
    build = {
        "model": source,
        "num_classes": None,
        "input_size": int(example.shape[-1]),
        "in_channels": int(example.shape[1]),
        "options": asdict(opts),
    }
    if source is not None:
        digest = source_digest(source)
        if digest is not None:
            build["sha256"] = digest  # a file source is rebuilt only while unchanged
    net = GraphSuperNet(
        gm, plan, space, layer_of, group_layer,
        input_shape=tuple(int(s) for s in example.shape[1:]), options=opts, source=source, build=build,
        other_macs=0, other_params=0,
    )  # fmt: skip
    if source is not None and net.task == "classification":
        net._build["num_classes"] = net.num_classes  # the head the user fine-tuned, not the library's default
    # What the tables do not model (fixed ops such as a matmul, parameters used directly) is the
    # difference between the counted full network and the tables' full network.
    full = net.costs()
    net._tables.other_macs = max(0, other_macs - sum(c.macs for c in full))
    net._tables.other_params = max(0, other_params - sum(c.params for c in full))
    return net


@register_source_builder  # build_supernet("torchvision:resnet50") and super-network files come here
def supernet_from_source(
    source: str,
    *,
    num_classes: int | None = None,
    input_size: int = 224,
    in_channels: int = 3,
    digest: str | None = None,
    **options: object,
) -> GraphSuperNet:
    """Build and trace the model a source names (random or factory-loaded weights).

    ``digest``: the SHA-256 recorded when a file source was first traced; a changed file is refused.
    """
    if digest is not None:
        check_source(source, digest)
    model = load_source(source, num_classes=num_classes)
    model.eval()
    net = supernet_from_module(model, torch.zeros(1, in_channels, input_size, input_size), source=source, **options)
    if num_classes is not None and net.task == "classification" and net.num_classes != num_classes:
        raise NetAdaptError(
            f"{source} has {net.num_classes} outputs but {num_classes} classes were asked for; "
            "give the factory a num_classes argument or build it with that many"
        )
    return net
