"""Training checkpoints: everything needed to continue a run exactly where it stopped.

Format (a ``torch.save`` mapping, always written atomically)::

    {"format": "netadapt.train-checkpoint", "version": 1, "stage": "supernet",
     "build": SuperNet.build_config(), "classes": [...], "data_fingerprint": str,
     "config": the resolved config, "model": state_dict, "ema": ModelEma state or None,
     "optimizer": state_dict, "scaler": GradScaler state or None,
     "epoch": int, "step_in_epoch": int, "global_step": int,
     "meters": partial sums of the running epoch, "history": per-epoch metric records,
     "rng": {"torch", "python"}}

Only tensors and plain data are unpickled on resume (``weights_only``): a crafted checkpoint
in a run folder cannot run code.

Randomness of the data order, augmentation, ordered dropout and dropout is derived from
(seed, epoch, step, rank), so the position (``epoch``, ``step_in_epoch``) fixes it for every
process; the global generator states are stored as well, for completeness.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import torch

from netadapt.errors import NetAdaptError
from netadapt.io import save_torch

__all__ = ["CHECKPOINT_FILE", "CHECKPOINT_FORMAT", "load_checkpoint", "rng_state", "save_checkpoint"]

CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_FORMAT = "netadapt.train-checkpoint"
CHECKPOINT_VERSION = 1


def rng_state() -> dict[str, Any]:
    """The global random generator states (torch CPU, CUDA when present, Python)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def save_checkpoint(path: str | os.PathLike, stage: str, state: dict[str, Any]) -> Path:
    """Write ``state`` atomically as a checkpoint of training stage ``stage``."""
    return save_torch(path, {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "stage": stage, **state})


def load_checkpoint(path: str | os.PathLike, stage: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint of ``stage``; a corrupt or foreign file is a one-line :class:`NetAdaptError`.

    Only tensors and plain Python data are unpickled (``weights_only``), never code."""
    path = Path(path)
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise NetAdaptError(f"checkpoint {path} does not exist") from None
    except Exception as exc:  # torch raises many types for corrupt files
        raise NetAdaptError(
            f"checkpoint {path} is corrupt or unreadable ({type(exc).__name__}); delete it to start over"
        ) from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise NetAdaptError(f"{path} is not a netadapt training checkpoint")
    if data.get("version") != CHECKPOINT_VERSION:
        raise NetAdaptError(f"{path}: checkpoint version {data.get('version')!r} is not supported")
    if data.get("stage") != stage:
        raise NetAdaptError(f"{path} is a checkpoint of stage {data.get('stage')!r}, not {stage!r}")
    missing = [k for k in ("build", "classes", "model", "optimizer", "epoch", "step_in_epoch", "global_step") if k not in data]
    if missing:
        raise NetAdaptError(f"{path}: checkpoint lacks {missing[0]!r}")
    return data
