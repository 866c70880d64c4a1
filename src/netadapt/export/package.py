"""The discovered network as a file of its own: weights + architecture + how to build it.

``save_compact`` writes a torch file loadable in one call by :func:`load_compact`, without the
super-network file::

    {"format": "netadapt.compact", "version": 1, "build": SuperNet.build_config(),
     "architecture": Architecture.to_dict(space), "state_dict": ..., "extra": {...}}

``extra["metadata"]`` holds the :class:`~netadapt.export.metadata.ModelMetadata` (preprocessing,
class names, MACs) when the file was written with it, as ``netadapt run`` does.

Loading rebuilds the super-network's *structure* (randomly initialised, never trained), extracts
the architecture to get the compact module's shape, and loads the saved weights into it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from netadapt.arch.space import Architecture
from netadapt.errors import NetAdaptError
from netadapt.export.metadata import ModelMetadata
from netadapt.io import load_torch_file, save_torch
from netadapt.model.checkpoint import supernet_from_build
from netadapt.model.supernet import CompactNet

__all__ = ["COMPACT_FORMAT", "load_compact", "save_compact"]

COMPACT_FORMAT = "netadapt.compact"
COMPACT_VERSION = 1


def save_compact(
    path: str | os.PathLike,
    model: CompactNet,
    arch: Architecture,
    build: dict,
    extra: dict[str, Any] | None = None,
    *,
    metadata: ModelMetadata | None = None,
) -> Path:
    """Write the compact network ``model`` of ``arch`` (``build``: ``SuperNet.build_config()``),
    with ``metadata`` (stored as ``extra["metadata"]``) when given."""
    space = supernet_from_build(build).space
    space.validate(arch)
    extra = dict(extra or {})
    if metadata is not None:
        extra["metadata"] = metadata.to_dict()
    return save_torch(
        path,
        {
            "format": COMPACT_FORMAT,
            "version": COMPACT_VERSION,
            "build": build,
            "architecture": arch.to_dict(space),
            "state_dict": model.state_dict(),
            "extra": extra,
        },
    )


def load_compact(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> CompactNet:
    """Load a network written by :func:`save_compact` (eval mode).

    Attached to the module: ``architecture``; ``metadata``, the
    :class:`~netadapt.export.metadata.ModelMetadata` (``None`` when the file has none) with the
    preprocessing (``metadata.preprocess(images)``) and ``classes``, also as ``model.classes``;
    ``netadapt_extra``, the file's other ``extra`` entries."""
    data = load_torch_file(path, fmt=COMPACT_FORMAT, version=COMPACT_VERSION, what="model file", map_location=map_location)
    supernet = supernet_from_build(data["build"])
    arch = Architecture.from_dict(data["architecture"])
    model = supernet.extract(arch)
    try:
        model.load_state_dict(data["state_dict"])
    except RuntimeError as exc:
        raise NetAdaptError(f"{path}: weights do not match the architecture: {str(exc).splitlines()[0]}") from None
    extra = dict(data.get("extra", {}))
    stored = extra.pop("metadata", None)
    metadata = None if stored is None else ModelMetadata.from_dict(stored, where=str(path))
    model.architecture = arch
    model.metadata = metadata
    model.classes = None if metadata is None else metadata.classes
    model.netadapt_extra = extra
    return model.eval()
