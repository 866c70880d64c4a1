"""Depth data sets and loaders: (RGB, depth) samples, batches, the held-out split.

Mirrors :mod:`netadapt.data` for a dense target: a *source* (:class:`~netadapt.data.nyu.NYUSource`
or :class:`~netadapt.data.synthetic.SyntheticDepth`) lists frames and loads (uint8 RGB, depth)
pairs; :class:`DepthSamples` applies a seeded :class:`~netadapt.data.depth_transforms.DepthTransform`
and accepts the same keys as :class:`netadapt.data.SampleDataset` (a position, or
``(position, augmentation seed)`` from :class:`netadapt.data.TrainBatchSampler`), so the
training loop's batch order, resumption and sharding work unchanged; :func:`collate_depth`
stacks a batch and drops unreadable frames, naming them.

The held-out split is :mod:`netadapt.data.split`'s: drawn once, stratified by scene, seeded,
written to ``heldout.json`` (paper §4.2.1: 2K NYU training images reserved for comparing
samples), and re-read and checked against the data by the search.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from netadapt.data.batches import Unreadable, derive_seed
from netadapt.data.depth_transforms import DepthTransform
from netadapt.data.nyu import NYUSource
from netadapt.data.sources import UnreadableImage
from netadapt.data.split import HeldoutSplit, make_heldout
from netadapt.data.synthetic import SyntheticDepth, synthetic_splits
from netadapt.errors import NetAdaptError

__all__ = [
    "DEPTH_DATASETS",
    "DepthBatch",
    "DepthDataConfig",
    "DepthDataSets",
    "DepthSamples",
    "build_depth_datasets",
    "collate_depth",
    "depth_loader",
    "open_depth_sources",
]

log = logging.getLogger(__name__)

DEPTH_DATASETS = ("nyu", "synthetic")
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


@dataclass
class DepthDataConfig:
    """Which depth data, how it is transformed and how much is reserved for the search."""

    dataset: Literal["nyu", "synthetic"] = "synthetic"
    root: str | None = None  # nyu: the nyudepthv2 folder holding train/ and val/
    train_dir: str = "train"
    val_dir: str = "val"  # "" for no validation set
    check: Literal["shapes", "values", "none"] = "shapes"  # nyu: how files are checked when opened
    image_size: int | None = None  # None: 224 for nyu (FastDepth), 64 for synthetic
    heldout: int | None = None  # frames reserved for the search; None: 2000 for nyu (paper §4.2.1), 10% of synthetic
    seed: int = 0  # seeds the held-out split (and the synthetic scenes)
    synthetic_train: int = 1000  # synthetic scenes for training (held-out ones included)
    synthetic_val: int = 200
    batch_size: int = 16  # paper §4.2.1: batch size 16 on NYU
    eval_batch_size: int | None = None
    workers: int = 0

    def validate(self) -> None:
        if self.dataset == "nyu" and not self.root:
            raise NetAdaptError("data.root is required for the nyu data set (the nyudepthv2 folder)")
        if self.image_size is not None and self.image_size < 8:
            raise NetAdaptError(f"data.image_size must be at least 8, got {self.image_size}")
        if (self.heldout is not None and self.heldout < 0) or self.batch_size < 1 or self.workers < 0:
            raise NetAdaptError("data.heldout and data.workers must be >= 0 and data.batch_size >= 1")
        if self.synthetic_train < 1 or self.synthetic_val < 0:
            raise NetAdaptError("data.synthetic_train must be >= 1 and data.synthetic_val >= 0")

    def resolved_heldout(self) -> int:
        if self.heldout is not None:
            return self.heldout
        return 2000 if self.dataset == "nyu" else self.synthetic_train // 10

    def resolved_size(self) -> int:
        return self.image_size or (224 if self.dataset == "nyu" else 64)

    def transforms(self) -> tuple[DepthTransform, DepthTransform]:
        """(training, evaluation) transforms."""
        preset = "nyu" if self.dataset == "nyu" else "none"
        size = self.resolved_size()
        return DepthTransform(preset, True, size), DepthTransform(preset, False, size)


@dataclass
class DepthDataSets:
    """The depth data sets of one configuration (see :func:`build_depth_datasets`)."""

    config: DepthDataConfig
    train_source: DepthSource
    split: HeldoutSplit
    train: DepthSamples  # training frames minus the held-out ones, augmented
    heldout: DepthSamples  # the reserved frames, evaluation transform
    val: DepthSamples | None  # validation frames, evaluation transform


def open_depth_sources(config: DepthDataConfig) -> tuple[DepthSource, DepthSource | None]:
    """(training source, validation source or ``None``) of ``config``."""
    config.validate()
    if config.dataset == "synthetic":
        train, val = synthetic_splits(
            config.synthetic_train, max(1, config.synthetic_val), size=config.resolved_size(), seed=config.seed
        )
        return train, (val if config.synthetic_val > 0 and config.val_dir != "" else None)
    root = Path(config.root)
    if not root.is_dir():
        raise NetAdaptError(f"NYU Depth V2 folder {root} does not exist")
    train = NYUSource(root / config.train_dir, check=config.check)
    val = NYUSource(root / config.val_dir, check=config.check) if config.val_dir else None
    return train, val


def build_depth_datasets(config: DepthDataConfig, split: HeldoutSplit | None = None) -> DepthDataSets:
    """Open the data of ``config`` and reserve ``config.heldout`` training frames (stratified by
    scene, seeded) unless ``split`` (re-read from a run folder) is given; a given split is
    checked against the data."""
    train_source, val_source = open_depth_sources(config)
    if split is None:
        split = make_heldout(train_source, config.resolved_heldout(), config.seed, asdict(config))
    else:
        split.check(train_source)
    train_tf, eval_tf = config.transforms()
    reserved = set(split.indices)
    return DepthDataSets(
        config=config,
        train_source=train_source,
        split=split,
        train=DepthSamples(train_source, [i for i in range(len(train_source)) if i not in reserved], train_tf),
        heldout=DepthSamples(train_source, split.indices, eval_tf),
        val=DepthSamples(val_source, range(len(val_source)), eval_tf) if val_source is not None else None,
    )


def depth_loader(
    dataset: Dataset,
    *,
    batch_size: int | None = None,
    batch_sampler: Sampler | None = None,
    sampler: Sampler | None = None,
    workers: int = 0,
    pin_memory: bool = False,
    seed: int = 0,
) -> DataLoader:
    """A loader of :class:`DepthBatch` es: give ``batch_sampler`` (e.g. a
    :class:`netadapt.data.TrainBatchSampler` for training) or ``batch_size`` (deterministic order)."""
    if batch_sampler is not None:
        kwargs: dict = {"batch_sampler": batch_sampler}
    else:
        kwargs = {"batch_size": batch_size or 1, "sampler": sampler, "shuffle": False, "drop_last": False}
    return DataLoader(
        dataset,
        num_workers=workers,
        pin_memory=pin_memory,
        collate_fn=collate_depth,
        # Transforms draw from their own seeded generators; this one only keeps the loader from
        # consuming the global torch RNG when it seeds its workers.
        generator=torch.Generator().manual_seed(derive_seed(seed, "depth-loader")),
        **kwargs,
    )
