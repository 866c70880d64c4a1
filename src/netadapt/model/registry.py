"""Where :func:`netadapt.build_supernet` finds a model by name.

A name with a colon is a *model source* (``"torchvision:resnet50"``, ``"timm:efficientnet_b0"``,
``"module:my_model.py:build"``): a network to trace.  Tracing lives in :mod:`netadapt.trace`, a
layer above this one (``docs/design.md``), so the trace package registers its builder here when
it is imported (``import netadapt`` does) instead of this package importing it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from netadapt.errors import NetAdaptError

__all__ = ["build_source", "is_source_name", "register_source_builder"]

# builder(source, *, num_classes, input_size, in_channels, digest=None, **options) -> super-network
_source_builder: Callable[..., nn.Module] | None = None


def register_source_builder(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Make ``builder`` the function that turns a model source into a super-network."""
    global _source_builder
    _source_builder = builder
    return builder


def is_source_name(name: str) -> bool:
    """Whether ``name`` is a model source rather than a zoo name (zoo names have no colon)."""
    return ":" in name


def build_source(source: str, **kwargs: Any) -> nn.Module:
    """The super-network of model source ``source`` (keyword arguments go to the builder)."""
    if _source_builder is None:
        raise NetAdaptError(f"model {source!r} is a source to trace: import netadapt.trace first")
    return _source_builder(source, **kwargs)
