"""NYU Depth V2 as FastDepth distributes it: folders of HDF5 files, one frame per file.

Layout (FastDepth's / sparse-to-dense's ``nyudepthv2`` folder)::

    nyudepthv2/train/<scene>/00001.h5   # 47,584 frames of 249 scenes
    nyudepthv2/val/official/00001.h5    # the 654 official test frames

Each file holds ``rgb`` (uint8, 3×H×W) and ``depth`` (float32, H×W, metres), H×W = 480×640.
:class:`NYUSource` lists the files of one folder; scenes (first-level sub-folders) play the part
of classes, so the held-out split of :mod:`netadapt.data.split` (stratified by class, seeded,
written to ``heldout.json``) reserves images from every scene in proportion.

Bad files are skipped, never fatal: when the folder is opened every file's keys and shapes are
checked (``check="shapes"``, metadata only), and when a frame is loaded its values are checked
(a depth map without a single finite positive value is unusable).  Bad files are counted,
logged with a warning and listed in :attr:`NYUSource.bad`; a folder without any usable file is a
one-line :class:`~netadapt.errors.NetAdaptError`.  h5py is imported only here, when needed.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from netadapt.data.sources import UnreadableImage
from netadapt.errors import NetAdaptError

__all__ = ["H5_SUFFIXES", "NYUSource", "ScanReport", "check_h5", "list_h5", "read_h5", "scan_h5"]

log = logging.getLogger(__name__)

H5_SUFFIXES = (".h5", ".hdf5")
Check = Literal["shapes", "values", "none"]


def _h5py():
    try:
        import h5py
    except ImportError:
        raise NetAdaptError("reading NYU Depth V2 HDF5 files needs h5py (pip install h5py)") from None
    return h5py


def list_h5(root: str | os.PathLike) -> list[str]:
    """HDF5 files below ``root`` (relative paths, sorted; hidden files and folders skipped)."""
    root = Path(root)
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for f in filenames:
            if not f.startswith(".") and f.lower().endswith(H5_SUFFIXES):
                out.append(os.path.relpath(os.path.join(dirpath, f), root))
    return sorted(out)


def _shape_problem(rgb_shape: Sequence[int], depth_shape: Sequence[int]) -> str | None:
    if len(rgb_shape) != 3 or rgb_shape[0] != 3:
        return f"rgb has shape {tuple(rgb_shape)}, expected (3, H, W)"
    if len(depth_shape) != 2:
        return f"depth has shape {tuple(depth_shape)}, expected (H, W)"
    if tuple(rgb_shape[1:]) != tuple(depth_shape):
        return f"rgb is {rgb_shape[1]}x{rgb_shape[2]} but depth is {depth_shape[0]}x{depth_shape[1]}"
    if depth_shape[0] < 2 or depth_shape[1] < 2:
        return f"frame of {depth_shape[0]}x{depth_shape[1]} pixels is too small"
    return None


def check_h5(path: str | os.PathLike, *, values: bool = False) -> str | None:
    """Why file ``path`` is unusable, or ``None``: unreadable, a missing key, mismatched shapes,
    and (``values=True``, reading the data) a depth map with no finite positive value."""
    h5py = _h5py()
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in ("rgb", "depth") if k not in f]
            if missing:
                return f"missing key {' and '.join(repr(k) for k in missing)}"
            problem = _shape_problem(f["rgb"].shape, f["depth"].shape)
            if problem or not values:
                return problem
            depth = np.asarray(f["depth"], dtype=np.float32)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        return f"not a readable HDF5 file ({type(exc).__name__})"
    if not (np.isfinite(depth) & (depth > 0)).any():
        return "depth has no finite positive value (NaN or non-positive everywhere)"
    return None


def read_h5(path: str | os.PathLike) -> tuple[Tensor, Tensor]:
    """One frame as (uint8 (3, H, W) RGB, float32 (H, W) depth in metres).

    Depth values that are NaN, infinite or non-positive become 0, the "no measurement" marker
    of the loss and metrics.  Raises :class:`UnreadableImage` for a bad file.
    """
    h5py = _h5py()
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in ("rgb", "depth") if k not in f]
            if missing:
                raise UnreadableImage(f"{path}: missing key {' and '.join(repr(k) for k in missing)}")
            rgb = np.asarray(f["rgb"])
            depth = np.asarray(f["depth"], dtype=np.float32)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise UnreadableImage(f"{path}: not a readable HDF5 file ({type(exc).__name__})") from None
    problem = _shape_problem(rgb.shape, depth.shape)
    if problem:
        raise UnreadableImage(f"{path}: {problem}")
    valid = np.isfinite(depth) & (depth > 0)
    if not valid.any():
        raise UnreadableImage(f"{path}: depth has no finite positive value (NaN or non-positive everywhere)")
    depth = np.where(valid, depth, np.float32(0))
    if rgb.dtype != np.uint8:
        rgb = np.clip(np.nan_to_num(rgb.astype(np.float64)), 0, 255).round().astype(np.uint8)
    return torch.from_numpy(np.ascontiguousarray(rgb)), torch.from_numpy(np.ascontiguousarray(depth))


@dataclass
class ScanReport:
    """Result of checking a folder's files: the usable ones and why the others are not."""

    root: str
    good: list[str] = field(default_factory=list)  # relative paths
    bad: dict[str, str] = field(default_factory=dict)  # relative path → reason

    @property
    def total(self) -> int:
        return len(self.good) + len(self.bad)

    def summary(self) -> str:
        return f"{self.root}: {len(self.good)} usable of {self.total} HDF5 files, {len(self.bad)} skipped"


def scan_h5(root: str | os.PathLike, *, values: bool = False) -> ScanReport:
    """Check every HDF5 file below ``root`` (see :func:`check_h5`)."""
    return _scan_files(Path(root), list_h5(root), values=values)


def _scan_files(root: Path, files: Sequence[str], *, values: bool) -> ScanReport:
    report = ScanReport(str(root))
    for rel in files:
        problem = check_h5(root / rel, values=values)
        if problem is None:
            report.good.append(rel)
        else:
            report.bad[rel] = problem
    return report


class NYUSource:
    """The frames of one NYU folder (``train/`` or ``val/``): the :class:`ImageSource` protocol of
    :mod:`netadapt.data` plus :meth:`load_pair`.

    ``check``: ``"shapes"`` (default) opens every file once to check keys and shapes (metadata
    only), ``"values"`` also reads
    every depth map, ``"none"`` trusts the listing (bad files are then found when loaded).
    """

    def __init__(self, root: str | os.PathLike, *, check: Check = "shapes") -> None:
        self.root = Path(root)
        self.name = f"nyu:{self.root}"
        if not self.root.is_dir():
            raise NetAdaptError(f"NYU Depth V2 folder {self.root} does not exist")
        if check not in ("shapes", "values", "none"):
            raise NetAdaptError(f"unknown NYU file check {check!r}; choose shapes, values or none")
        files = list_h5(self.root)
        if not files:
            raise NetAdaptError(f"NYU Depth V2 folder {self.root} holds no HDF5 files ({', '.join(H5_SUFFIXES)})")
        self.bad: dict[str, str] = {}
        if check != "none":
            report = _scan_files(self.root, files, values=check == "values")
            self.bad, files = report.bad, report.good
            if self.bad:
                first, why = next(iter(self.bad.items()))
                log.warning("%s; first: %s (%s)", report.summary(), first, why)
                if not files:
                    raise NetAdaptError(f"none of the {report.total} HDF5 files in {self.root} is usable (e.g. {first}: {why})")
        self.paths = files
        self.classes = tuple(sorted({_scene(p) for p in files}))
        index = {s: i for i, s in enumerate(self.classes)}
        self.targets = [index[_scene(p)] for p in files]

    def __len__(self) -> int:
        return len(self.paths)

    def load_pair(self, index: int) -> tuple[Tensor, Tensor]:
        """Frame ``index`` as (uint8 (3, H, W), float32 (H, W) metres, 0 = missing)."""
        return read_h5(self.root / self.paths[index])

    def load(self, index: int) -> Tensor:
        return self.load_pair(index)[0]

    def describe(self, index: int) -> str:
        return str(self.root / self.paths[index])

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for path in self.paths:
            h.update(f"{path}\n".encode())
        return h.hexdigest()[:16]


def _scene(relpath: str) -> str:
    """A file's scene: its first-level folder (``"."`` for files directly in the root)."""
    parts = Path(relpath).parts
    return parts[0] if len(parts) > 1 else "."
