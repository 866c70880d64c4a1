"""Super-network files: the weights plus everything needed to rebuild the network.

Format (a ``torch.save`` mapping)::

    {"format": "netadapt.supernet", "version": 1,
     "build": {"model", "num_classes", "input_size", "in_channels", "options"},
     "state_dict": ..., "extra": {...}}

``extra`` is free-form metadata of the stage that wrote the file (training config, data set,
held-out split, class names).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from netadapt.errors import NetAdaptError
from netadapt.io import load_torch_file, save_torch
from netadapt.model.registry import build_source, is_source_name
from netadapt.model.supernet import SuperNet, build_supernet

__all__ = ["SUPERNET_FORMAT", "load_supernet", "load_supernet_extra", "save_supernet", "supernet_from_build"]

SUPERNET_FORMAT = "netadapt.supernet"
SUPERNET_VERSION = 1


def supernet_from_build(build: dict) -> SuperNet:
    """Rebuild a super-network (random weights) from :meth:`SuperNet.build_config`."""
    if not isinstance(build, dict) or not isinstance(build.get("options", {}), dict):
        raise NetAdaptError("the super-network description (build) is not a mapping with a mapping of options")
    if is_source_name(str(build.get("model", ""))):  # a traced network: trace its source again
        try:
            return build_source(
                build["model"],
                num_classes=build.get("num_classes"),
                input_size=build["input_size"],
                in_channels=build.get("in_channels", 3),
                digest=build.get("sha256"),
                **build.get("options", {}),
            )
        except KeyError as exc:
            raise NetAdaptError(f"super-network description lacks {exc}") from None
    # Files written before the ``removal`` option searched depth layer by layer.
    options = {"removal": "layer", **build.get("options", {})}
    try:
        return build_supernet(
            build["model"],
            num_classes=build["num_classes"],
            input_size=build["input_size"],
            in_channels=build.get("in_channels", 3),
            width_mult=build.get("width_mult"),
            **options,
        )
    except KeyError as exc:
        raise NetAdaptError(f"super-network description lacks {exc}") from None


def save_supernet(path: str | os.PathLike, supernet: SuperNet, extra: dict[str, Any] | None = None) -> Path:
    """Write ``supernet`` atomically to ``path``."""
    return save_torch(
        path,
        {
            "format": SUPERNET_FORMAT,
            "version": SUPERNET_VERSION,
            "build": supernet.build_config(),
            "state_dict": supernet.state_dict(),
            "extra": dict(extra or {}),
        },
    )


def _read(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    return load_torch_file(
        path, fmt=SUPERNET_FORMAT, version=SUPERNET_VERSION, what="super-network file", map_location=map_location
    )


def load_supernet_extra(path: str | os.PathLike) -> dict[str, Any]:
    """The ``extra`` metadata of a super-network file, without building the network."""
    extra = _read(path).get("extra", {})
    if not isinstance(extra, dict):
        raise NetAdaptError(f"{path}: damaged super-network file (its metadata is not a mapping)")
    return extra


def load_supernet(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[SuperNet, dict[str, Any]]:
    """Read a super-network file; returns the network and the file's ``extra`` metadata."""
    data = _read(path, map_location)
    build, state, extra = data.get("build"), data.get("state_dict"), data.get("extra", {})
    if not isinstance(state, dict) or not isinstance(extra, dict):
        raise NetAdaptError(f"{path}: damaged super-network file (its weights or metadata are not mappings)")
    try:
        net = supernet_from_build(build)
    except NetAdaptError as exc:
        raise NetAdaptError(f"{path}: {exc}") from None
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise NetAdaptError(f"{path}: weights do not match {build.get('model')}: {state_dict_problem(exc)}") from None
    return net, extra


def state_dict_problem(exc: RuntimeError) -> str:
    """The first of the problems ``load_state_dict`` lists (a missing key, a shape), and how many more."""
    details = [line.strip() for line in str(exc).splitlines()[1:] if line.strip()]
    if not details:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    first = details[0] if len(details[0]) <= 300 else details[0][:297] + "..."
    return first + (f" (and {len(details) - 1} more problem(s))" if len(details) > 1 else "")
