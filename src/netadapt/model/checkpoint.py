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
from netadapt.io import save_torch
from netadapt.model.supernet import SuperNet, build_supernet

__all__ = ["SUPERNET_FORMAT", "load_supernet", "save_supernet", "supernet_from_build"]

SUPERNET_FORMAT = "netadapt.supernet"
SUPERNET_VERSION = 1


def supernet_from_build(build: dict) -> SuperNet:
    """Rebuild a super-network (random weights) from :meth:`SuperNet.build_config`."""
    try:
        return build_supernet(
            build["model"],
            num_classes=build["num_classes"],
            input_size=build["input_size"],
            in_channels=build.get("in_channels", 3),
            width_mult=build.get("width_mult"),
            **build.get("options", {}),
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


def load_supernet(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[SuperNet, dict[str, Any]]:
    """Read a super-network file; returns the network and the file's ``extra`` metadata."""
    path = Path(path)
    if not path.is_file():
        raise NetAdaptError(f"super-network file {path} does not exist")
    try:
        data = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # torch raises many types for corrupt files
        raise NetAdaptError(f"{path} is not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != SUPERNET_FORMAT:
        raise NetAdaptError(f"{path} is not a netadapt super-network file")
    if data.get("version") != SUPERNET_VERSION:
        raise NetAdaptError(f"{path}: super-network file version {data.get('version')!r} is not supported")
    net = supernet_from_build(data["build"])
    try:
        net.load_state_dict(data["state_dict"])
    except RuntimeError as exc:
        raise NetAdaptError(f"{path}: weights do not match {data['build']['model']}: {str(exc).splitlines()[0]}") from None
    return net, data.get("extra", {})
