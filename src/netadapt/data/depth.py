"""Depth data: (RGB, depth) sources, samples and batches for :func:`netadapt.data.build_datasets`.

The depth data sets (``nyu``, ``synthetic_depth``) go through :mod:`netadapt.data.loaders` like
the image ones; this module holds what differs for a dense target: a *source* (:class:`~netadapt.data.nyu.NYUSource`
or :class:`~netadapt.data.synthetic.SyntheticDepth`) lists frames and loads (uint8 RGB, depth)
pairs; :class:`DepthSamples` applies a seeded :class:`~netadapt.data.depth_transforms.DepthTransform`
and accepts the same keys as :class:`netadapt.data.SampleDataset` (a position, or
``(position, augmentation seed)`` from :class:`netadapt.data.TrainBatchSampler`), so the
training loop's batch order, resumption and sharding work unchanged; :func:`collate_depth`
stacks a batch and drops unreadable frames, naming them; :func:`open_depth_sources` and
:func:`depth_transforms` open a :class:`~netadapt.data.DataConfig`'s sources and transforms.

The held-out split is :mod:`netadapt.data.split`'s: drawn once, stratified by scene, seeded,
written to ``heldout.json`` (paper §4.2.1: 2K NYU training images reserved for comparing
samples), and re-read and checked against the data by the search.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor
from torch.utils.data import Dataset

from netadapt.data.batches import Unreadable, derive_seed
from netadapt.data.config import DataConfig
from netadapt.data.depth_transforms import DepthTransform
from netadapt.data.nyu import NYUSource
from netadapt.data.sources import UnreadableImage
from netadapt.data.synthetic import SyntheticDepth, synthetic_splits
from netadapt.errors import NetAdaptError

__all__ = ["DepthBatch", "DepthSamples", "collate_depth", "depth_transforms", "open_depth_sources"]

log = logging.getLogger(__name__)

DepthSource = NYUSource | SyntheticDepth


class DepthBatch(NamedTuple):
    """A collated depth batch; fields 0 and 1 are (inputs, targets) like :class:`netadapt.data.Batch`."""

    images: Tensor  # (B, 3, S, S)
    depths: Tensor  # (B, 1, S, S) metres, 0 = no measurement
    kept: Tensor  # (B,) long, positions in the nominal batch
    skipped: tuple[str, ...]  # descriptions of unreadable frames


class DepthSamples(Dataset):
    """Frames ``indices`` of ``source`` through ``transform``; keys ``i`` or ``(i, seed)``."""

    def __init__(self, source: DepthSource, indices: Sequence[int], transform: DepthTransform) -> None:
        self.source = source
        self.indices = list(indices)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Tensor, Tensor] | Unreadable:
        position, seed = key if isinstance(key, tuple) else (key, None)
        index = self.indices[position]
        try:
            rgb, depth = self.source.load_pair(index)
        except UnreadableImage as exc:
            return Unreadable(self.source.describe(index), str(exc))
        gen = None
        if self.transform.random:
            gen = torch.Generator().manual_seed(derive_seed("augment", index) if seed is None else int(seed))
        return self.transform(rgb, depth, gen)


def collate_depth(samples: Sequence[tuple[Tensor, Tensor] | Unreadable]) -> DepthBatch:
    """Stack readable samples; unreadable ones are dropped, named in ``skipped`` and logged."""
    images, depths, kept, skipped = [], [], [], []
    for position, sample in enumerate(samples):
        if isinstance(sample, Unreadable):
            skipped.append(sample.name)
            log.warning("skipped %s: %s", sample.name, sample.reason)
            continue
        images.append(sample[0])
        depths.append(sample[1])
        kept.append(position)
    if images:
        return DepthBatch(torch.stack(images), torch.stack(depths), torch.tensor(kept, dtype=torch.long), tuple(skipped))
    return DepthBatch(torch.empty(0), torch.empty(0), torch.zeros(0, dtype=torch.long), tuple(skipped))


def depth_transforms(config: DataConfig) -> tuple[DepthTransform, DepthTransform]:
    """(training, evaluation) transforms of a depth data set's ``config``: FastDepth's NYU
    geometry for ``nyu``, none for the synthetic scenes, at ``config.resolved_size()``."""
    preset = "nyu" if config.dataset == "nyu" else "none"
    size = config.resolved_size()
    return DepthTransform(preset, True, size), DepthTransform(preset, False, size)


def open_depth_sources(config: DataConfig) -> tuple[DepthSource, DepthSource | None]:
    """(training source, validation source or ``None``) of a depth data set's ``config``."""
    config.validate()
    if config.task != "depth":
        raise NetAdaptError(f"data set {config.dataset!r} holds no depth maps")
    if config.dataset == "synthetic_depth":
        train, val = synthetic_splits(
            config.synthetic_train, max(1, config.synthetic_val), size=config.resolved_size(), seed=config.seed
        )
        return train, (val if config.synthetic_val > 0 and config.val_dir != "" else None)
    root = Path(config.root)
    if not root.is_dir():
        raise NetAdaptError(f"NYU Depth V2 folder {root} does not exist")
    val_dir = "val" if config.val_dir is None else config.val_dir
    train = NYUSource(root / config.train_dir, check=config.check)
    val = NYUSource(root / val_dir, check=config.check) if val_dir else None
    return train, val
