"""The held-out split: training images reserved for comparing samples during the search.

Paper §4.1.1: "We reserve 10K images in the training set for comparing the accuracy of samples
and train the super-network with the rest of the training images."  The split is drawn once,
stratified by class and seeded, and written to the run folder as ``heldout.json`` together with
the data configuration and the data fingerprint, so that the search evaluates exactly these
images and the super-network never trains on them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netadapt.data.sources import ImageSource, stratified_sample
from netadapt.errors import NetAdaptError
from netadapt.io import load_json, save_json

__all__ = ["HELDOUT_FILE", "HeldoutSplit", "load_heldout", "make_heldout", "save_heldout"]

HELDOUT_FILE = "heldout.json"
HELDOUT_FORMAT = "netadapt.heldout"
HELDOUT_VERSION = 1


@dataclass(frozen=True)
class HeldoutSplit:
    """Indices (into the training source) of the reserved images, and what they belong to."""

    data: dict[str, Any]  # the DataConfig as a mapping
    fingerprint: str  # of the whole training source
    classes: tuple[str, ...]
    seed: int
    indices: tuple[int, ...]
    names: tuple[str, ...]  # file paths (folders) or positions, for people and for checking

    def to_dict(self) -> dict:
        return {
            "format": HELDOUT_FORMAT,
            "version": HELDOUT_VERSION,
            "data": self.data,
            "fingerprint": self.fingerprint,
            "classes": list(self.classes),
            "seed": self.seed,
            "size": len(self.indices),
            "indices": list(self.indices),
            "names": list(self.names),
        }

    @classmethod
    def from_dict(cls, d: object, *, where: str = "held-out split") -> HeldoutSplit:
        if not isinstance(d, dict) or d.get("format") != HELDOUT_FORMAT:
            raise NetAdaptError(f"{where} is not a netadapt held-out split file")
        if d.get("version") != HELDOUT_VERSION:
            raise NetAdaptError(f"{where}: held-out file version {d.get('version')!r} is not supported")
        try:
            return cls(
                data=dict(d["data"]),
                fingerprint=str(d["fingerprint"]),
                classes=tuple(str(c) for c in d["classes"]),
                seed=int(d["seed"]),
                indices=tuple(int(i) for i in d["indices"]),
                names=tuple(str(n) for n in d["names"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise NetAdaptError(f"{where}: malformed held-out split ({exc})") from None

    def check(self, source: ImageSource) -> None:
        """Raise if ``source`` is not the data this split was drawn from."""
        if tuple(source.classes) != self.classes:
            raise NetAdaptError(
                f"the data's classes ({len(source.classes)}: {', '.join(source.classes[:4])}, …) differ from the "
                f"held-out split's ({len(self.classes)}: {', '.join(self.classes[:4])}, …)"
            )
        if source.fingerprint != self.fingerprint:
            raise NetAdaptError(
                f"the training images of {source.name} changed since the held-out split was drawn "
                f"(fingerprint {source.fingerprint}, split {self.fingerprint}); use a new run folder"
            )


def make_heldout(source: ImageSource, size: int, seed: int, data: dict[str, Any]) -> HeldoutSplit:
    """Draw ``size`` images of ``source``, stratified by class, seeded."""
    if size >= len(source):
        raise NetAdaptError(f"data.heldout={size} leaves no training images ({len(source)} in {source.name})")
    indices = stratified_sample(source.targets, size, seed)
    return HeldoutSplit(
        data=data,
        fingerprint=source.fingerprint,
        classes=tuple(source.classes),
        seed=seed,
        indices=tuple(indices),
        names=tuple(source.describe(i) for i in indices),
    )


def save_heldout(run_dir: str | os.PathLike, split: HeldoutSplit) -> Path:
    """Write ``run_dir/heldout.json`` atomically."""
    return save_json(Path(run_dir) / HELDOUT_FILE, split.to_dict(), indent=None)


def load_heldout(run_dir_or_file: str | os.PathLike) -> HeldoutSplit:
    """Read the held-out split of a run folder (or a ``heldout.json`` path)."""
    path = Path(run_dir_or_file)
    if path.is_dir():
        path = path / HELDOUT_FILE
    if not path.is_file():
        raise NetAdaptError(f"held-out split {path} does not exist (train the super-network first)")
    try:
        data = load_json(path)
    except (OSError, ValueError) as exc:
        raise NetAdaptError(f"{path} is not readable JSON ({type(exc).__name__})") from None
    return HeldoutSplit.from_dict(data, where=str(path))
