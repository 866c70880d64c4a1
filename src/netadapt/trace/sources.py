"""Where a traced network comes from: a named torchvision or timm model, or the user's factory.

A *source* is a string the command line, config files and super-network files share:

* ``torchvision:resnet50`` — ``torchvision.models.get_model("resnet50", weights=None)``;
* ``timm:efficientnet_b0`` — ``timm.create_model("efficientnet_b0", pretrained=False)``;
* ``module:path/to/file.py:factory`` (or ``path/to/file.py:factory``) — the function
  ``factory`` of a Python file; ``module:package.module:factory`` — of an importable module.

Sources never download weights: a trained network comes from the user's factory (which loads
its own weights) or from a state-dict file loaded afterwards (``weights_only``).  A file source
is recorded with the file's SHA-256; rebuilding it from a super-network file refuses a file that
changed since (:func:`check_source`).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path

from torch import nn

from netadapt.errors import NetAdaptError

__all__ = ["check_source", "is_library", "is_source", "load_source", "source_digest"]

_LIBRARIES = ("torchvision", "timm")


def is_source(name: str) -> bool:
    """Whether a model name is a source to trace rather than a zoo model (zoo names have no colon)."""
    return ":" in name


def is_library(name: str) -> bool:
    """Whether a source names a torchvision or timm model (built with a ``num_classes`` argument)."""
    return name.partition(":")[0] in _LIBRARIES


def _split(spec: str) -> tuple[str, str, str]:
    """(kind, location, factory): kind is torchvision, timm, file or module."""
    kind, _, rest = spec.partition(":")
    if kind in _LIBRARIES:
        if not rest:
            raise NetAdaptError(f"model source {spec!r} names no model (e.g. {kind}:resnet50)")
        return kind, rest, ""
    if kind == "module":
        spec = rest
    location, sep, factory = spec.rpartition(":")
    if not sep or not location or not factory.isidentifier():
        raise NetAdaptError(
            f"model source {spec!r} is not torchvision:NAME, timm:NAME or module:FILE.py:FACTORY "
            "(a Python file or module and the name of a function in it returning the nn.Module)"
        )
    return ("file" if location.endswith(".py") else "module"), location, factory


def source_digest(spec: str) -> str | None:
    """SHA-256 of a file source's Python file (``None`` for library and module sources)."""
    kind, location, _ = _split(spec)
    if kind != "file":
        return None
    path = Path(location)
    if not path.is_file():
        raise NetAdaptError(f"model file {location} does not exist")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_source(spec: str, digest: str | None) -> None:
    """Refuse to run a file source whose file changed since the super-network was traced."""
    if digest is not None and source_digest(spec) != digest:
        raise NetAdaptError(
            f"{_split(spec)[1]} changed since this super-network was traced from it (SHA-256 differs); "
            "trace the model again, or restore the file"
        )


def _factory(kind: str, location: str, name: str):
    if kind == "file":
        path = Path(location)
        if not path.is_file():
            raise NetAdaptError(f"model file {location} does not exist")
        module_name = f"netadapt_user_model_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses and pickling look their module up here
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(location)
        except ImportError as exc:
            hint = ""
            here, top = os.getcwd(), location.split(".")[0]
            local = Path(here, top).exists() or Path(here, top + ".py").exists()  # a module here, not importable
            if isinstance(exc, ModuleNotFoundError) and local and here not in sys.path and "" not in sys.path:
                file = location.replace(".", "/") + ".py"
                hint = f" (the current folder is not on the import path: run with PYTHONPATH=. or name the file, module:{file}:{name})"
            raise NetAdaptError(f"cannot import {location}: {exc}{hint}") from None
    factory = getattr(module, name, None)
    if not callable(factory):
        raise NetAdaptError(f"{location} has no function {name}")
    return factory


def load_source(spec: str, *, num_classes: int | None = None) -> nn.Module:
    """Build the (randomly initialised, or factory-loaded) model a source names.

    ``num_classes`` goes to torchvision and timm, and to a factory that takes the argument."""
    kind, location, name = _split(spec)
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    if kind == "torchvision":
        try:
            import torchvision
        except ImportError:
            raise NetAdaptError("torchvision is not installed (pip install torchvision)") from None
        try:
            model = torchvision.models.get_model(location, weights=None, **kwargs)
        except ValueError as exc:
            raise NetAdaptError(f"torchvision has no model {location!r}: {exc}") from None
    elif kind == "timm":
        try:
            import timm
        except ImportError:
            raise NetAdaptError("timm is not installed (pip install timm)") from None
        if not timm.is_model(location):
            raise NetAdaptError(f"timm has no model {location!r} (see timm.list_models())")
        model = timm.create_model(location, pretrained=False, **kwargs)
    else:
        factory = _factory(kind, location, name)
        if "num_classes" not in inspect.signature(factory).parameters:
            kwargs = {}  # the factory decides; the caller checks the classes of the traced network
        model = factory(**kwargs)
    if not isinstance(model, nn.Module):
        raise NetAdaptError(f"{spec} returned a {type(model).__name__}, not an nn.Module")
    return model
