"""Where :func:`netadapt.build_supernet` finds a model by name (timm's ``register_model`` /
``list_models`` convention).

A *model* is a function returning a :class:`~netadapt.model.definitions.NetworkDef` (its keyword
arguments, such as ``width_mult``, are the model's options), registered under a name with
:func:`register_model`.  The zoo (:mod:`netadapt.model.zoo`) registers its networks this way;
so can a user's code, before building the network::

    @netadapt.register_model(description="my 32x32 network")
    def my_net(width_mult: float = 1.0) -> NetworkDef: ...

    net = netadapt.build_supernet("my_net")

A name with a colon is a *model source* (``"torchvision:resnet50"``, ``"timm:efficientnet_b0"``,
``"module:my_model.py:build"``): a network to trace.  Tracing lives in :mod:`netadapt.trace`, a
layer above this one (``docs/design.md``), so the trace package registers its builder here when
it is imported (``import netadapt`` does) instead of this package importing it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any, overload

from torch import nn

from netadapt.errors import NetAdaptError
from netadapt.model.definitions import NetworkDef

__all__ = [
    "MODELS",
    "ModelFn",
    "build_source",
    "get_definition",
    "is_source_name",
    "list_models",
    "register_model",
    "register_source_builder",
]

ModelFn = Callable[..., NetworkDef]
#: name -> (definition function, one-line description), in registration order.
MODELS: dict[str, tuple[ModelFn, str]] = {}

# builder(source, *, num_classes, input_size, in_channels, digest=None, **options) -> super-network
_source_builder: Callable[..., nn.Module] | None = None


@overload
def register_model(fn: ModelFn, *, name: str | None = None, description: str | None = None) -> ModelFn: ...
@overload
def register_model(
    fn: None = None, *, name: str | None = None, description: str | None = None
) -> Callable[[ModelFn], ModelFn]: ...
def register_model(
    fn: ModelFn | None = None, *, name: str | None = None, description: str | None = None
) -> ModelFn | Callable[[ModelFn], ModelFn]:
    """Register definition function ``fn`` as model ``name`` (default: the function's name).

    Use it as ``@register_model`` or ``@register_model(name=..., description=...)``; the
    description defaults to the first line of the function's docstring.  The function is
    returned unchanged.  A name already registered, or one with a colon, is an error.
    """

    def register(fn: ModelFn) -> ModelFn:
        key = name or fn.__name__
        if is_source_name(key):
            raise NetAdaptError(f"model name {key!r} has a colon: names with one are model sources")
        if key in MODELS:
            raise NetAdaptError(f"model {key!r} is already registered")
        text = description if description is not None else (fn.__doc__ or "").strip().split("\n")[0]
        MODELS[key] = (fn, text)
        return fn

    return register if fn is None else register(fn)


def list_models(pattern: str | None = None) -> list[str]:
    """Names of the registered models, sorted; with ``pattern`` (``fnmatch``: ``"mobilenet_v3*"``)
    only those matching it."""
    names = sorted(MODELS)
    return names if pattern is None else fnmatch.filter(names, pattern)


def get_definition(name: str, **options: object) -> NetworkDef:
    """The definition of registered model ``name``; ``options`` go to its definition function."""
    if name not in MODELS:
        raise NetAdaptError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
    fn = MODELS[name][0]
    try:
        return fn(**options)
    except TypeError as exc:
        raise NetAdaptError(f"model {name}: {exc}") from None


def register_source_builder(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Make ``builder`` the function that turns a model source into a super-network."""
    global _source_builder
    _source_builder = builder
    return builder


def is_source_name(name: str) -> bool:
    """Whether ``name`` is a model source rather than a registered name (those have no colon)."""
    return ":" in name


def build_source(source: str, **kwargs: Any) -> nn.Module:
    """The super-network of model source ``source`` (keyword arguments go to the builder)."""
    if _source_builder is None:
        raise NetAdaptError(f"model {source!r} is a source to trace: import netadapt.trace first")
    return _source_builder(source, **kwargs)
