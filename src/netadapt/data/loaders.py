"""Building the data sets and loaders of a :class:`DataConfig`.

:func:`build_datasets` opens the training and validation images, draws (or re-uses) the
held-out split and returns three data sets: training images minus the held-out ones (with
training augmentation), the held-out images and the validation images (both with evaluation
transforms).  :func:`build_search_loaders` gives the search the held-out loader and a loader of
calibration batches (a seeded subset of the training images, for BatchNorm recalibration).

The depth data sets (``nyu``, ``synthetic_depth``) go through the same functions: their sources
and samples come from :mod:`netadapt.data.depth` (imported only then), their batches are
:class:`~netadapt.data.depth.DepthBatch` es (images, depth maps, kept, skipped), and their
held-out split is the same ``heldout.json``, stratified by scene.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from netadapt.config import config_from_dict
from netadapt.data.batches import SampleDataset, ShardSampler, TrainBatchSampler, collate, derive_seed
from netadapt.data.config import DataConfig
from netadapt.data.sources import FolderSource, ImageSource, load_digits, load_torchvision_cifar
from netadapt.data.split import HeldoutSplit, load_heldout, make_heldout
from netadapt.data.transforms import make_transforms
from netadapt.errors import NetAdaptError

__all__ = [
    "DataSets",
    "build_datasets",
    "build_search_loaders",
    "calibration_set",
    "collate_fn",
    "make_eval_loader",
    "make_train_loader",
    "open_sources",
]


@dataclass
class DataSets:
    """The data sets of one configuration (see :func:`build_datasets`)."""

    config: DataConfig
    train_source: ImageSource
    split: HeldoutSplit
    # SampleDataset for classification, netadapt.data.depth.DepthSamples for depth (same keys).
    train: SampleDataset  # training images minus the held-out ones, augmented
    heldout: SampleDataset  # the reserved images, evaluation transform
    val: SampleDataset | None  # the validation images, evaluation transform
    calibration_pool: tuple[int, ...]  # positions of ``train`` usable for BN calibration

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.train_source.classes)

    @property
    def num_classes(self) -> int:
        return len(self.train_source.classes)

    @property
    def image_size(self) -> int:
        return self.config.resolved_size()


def collate_fn(config: DataConfig) -> Callable[[list], Any]:
    """The function that stacks a batch of ``config``'s samples."""
    if config.task == "depth":
        from netadapt.data.depth import collate_depth

        return collate_depth
    return collate


def open_sources(config: DataConfig) -> tuple[ImageSource, ImageSource | None]:
    """(training source, validation source or ``None``) of ``config``."""
    config.validate()
    if config.task == "depth":
        from netadapt.data.depth import open_depth_sources

        return open_depth_sources(config)
    if config.dataset == "digits":
        return load_digits(config.resolved_size(), test_fraction=config.digits_test_fraction, seed=config.seed)
    if config.dataset in ("cifar10_torchvision", "cifar100_torchvision"):
        classes = 10 if config.dataset == "cifar10_torchvision" else 100
        train, test = load_torchvision_cifar(config.root, classes=classes, download=config.download)
        return train, (None if config.val_dir == "" else test)
    root = Path(config.root)
    if not root.is_dir():
        raise NetAdaptError(f"data folder {root} does not exist")
    train = FolderSource(root / config.train_dir, decoder=config.decoder)
    labels = sorted({train.classes[t] for t in train.targets})
    if len(labels) < 2:
        raise NetAdaptError(
            f"data folder {train.root} holds images of one class ({labels[0]!r}); a classifier needs at least 2 classes"
        )
    val = None
    if config.val_dir is None:
        for name in ("val", "test"):
            if (root / name).is_dir():
                val = FolderSource(root / name, classes=train.classes, decoder=config.decoder)
                break
    elif config.val_dir:
        val = FolderSource(root / config.val_dir, classes=train.classes, decoder=config.decoder)
    return train, val


def build_datasets(
    config: DataConfig,
    split: HeldoutSplit | None = None,
    *,
    sources: tuple[ImageSource, ImageSource | None] | None = None,
) -> DataSets:
    """Open the data of ``config``; reserve ``config.heldout`` images unless ``split`` is given.

    A given ``split`` (re-read from a run folder) is checked against the data: same classes,
    same training images.  ``sources`` are already opened (training, validation) sources.
    """
    train_source, val_source = sources if sources is not None else open_sources(config)
    if split is None:
        split = make_heldout(train_source, config.heldout, config.seed, asdict(config))
    else:
        split.check(train_source)
    if config.task == "depth":
        from netadapt.data.depth import DepthSamples, depth_transforms

        samples: Callable[..., Any] = DepthSamples
        train_tf, eval_tf = depth_transforms(config)
    else:
        samples = SampleDataset
        mean, std = config.resolved_mean_std()
        train_tf, eval_tf = make_transforms(config.resolved_preset(), config.resolved_size(), mean, std, flip=config.flip)
    reserved = set(split.indices)
    train_indices = [i for i in range(len(train_source)) if i not in reserved]
    val_indices = list(range(len(val_source))) if val_source is not None else []
    rng = random.Random(derive_seed(config.seed, "subset"))
    if config.subset is not None:  # a seeded subset, in the original order
        train_indices = sorted(rng.sample(train_indices, min(config.subset, len(train_indices))))
    if config.val_subset is not None:
        val_indices = sorted(rng.sample(val_indices, min(config.val_subset, len(val_indices))))
    return DataSets(
        config=config,
        train_source=train_source,
        split=split,
        train=samples(train_source, train_indices, train_tf),
        heldout=samples(train_source, split.indices, eval_tf),
        val=samples(val_source, val_indices, eval_tf) if val_source is not None else None,
        calibration_pool=tuple(range(len(train_indices))),
    )


def _loader(
    dataset: Dataset, config: DataConfig, *, pin_memory: bool, seed: int, workers: int | None = None, **kwargs
) -> DataLoader:
    workers = config.workers if workers is None else workers
    collate_batch = collate_fn(config)
    if isinstance(dataset, SampleDataset) and dataset.normalize:
        # Items as uint8 pixels, normalized once per batch after stacking: a quarter of the
        # bytes to stack and one fused conversion instead of one per image.
        collate_batch = partial(collate, normalize=dataset.transform.normalize)
        dataset = dataset.unnormalized()
    return DataLoader(
        dataset,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=config.persistent_workers and workers > 0,
        collate_fn=collate_batch,
        # Transforms draw from their own seeded generators; this generator only keeps the
        # loader from consuming the global torch RNG when it seeds its workers.
        generator=torch.Generator().manual_seed(derive_seed(seed, "loader")),
        **kwargs,
    )


def make_train_loader(
    dataset: SampleDataset, batches: TrainBatchSampler, config: DataConfig, *, pin_memory: bool = False
) -> DataLoader:
    """A loader yielding this process's micro-batches (:class:`~netadapt.data.batches.Batch`)."""
    return _loader(dataset, config, pin_memory=pin_memory, seed=batches.seed, batch_sampler=batches)


def make_eval_loader(
    dataset: Dataset,
    config: DataConfig,
    *,
    batch_size: int | None = None,
    rank: int = 0,
    world: int = 1,
    pin_memory: bool = False,
    workers: int | None = None,
    sampler: Sampler | None = None,
) -> DataLoader:
    """A deterministic loader over ``dataset`` (this rank's shard of it when ``world > 1``)."""
    return _loader(
        dataset,
        config,
        pin_memory=pin_memory,
        seed=config.seed,
        workers=workers,
        batch_size=batch_size or config.eval_batch_size or config.batch_size,
        sampler=sampler if sampler is not None else ShardSampler(len(dataset), rank, world),
        shuffle=False,
        drop_last=False,
    )


def build_search_loaders(
    run_dir: str | os.PathLike,
    *,
    batch_size: int | None = None,
    calibration_images: int = 2000,
    seed: int = 0,
    root: str | None = None,
    workers: int | None = None,
    pin_memory: bool = False,
) -> tuple[DataLoader, DataLoader]:
    """(held-out loader, calibration loader) for the search, from a super-network run folder.

    The held-out loader serves exactly the images reserved in ``run_dir/heldout.json``.  The
    calibration loader serves ``calibration_images`` training images (never held-out ones),
    chosen with ``random.Random(seed)``, in a fixed order and with the evaluation transform,
    for recalibrating BatchNorm statistics of each sample.  ``root`` overrides the data folder
    recorded in the split (data moved since training).
    """
    split = load_heldout(run_dir)
    data = dict(split.data)
    if root is not None:
        data["root"] = root
    config = config_from_dict(DataConfig, data, prefix="data.")
    sets = build_datasets(config, split)
    calibration = calibration_set(sets, calibration_images, seed)
    kwargs = {"batch_size": batch_size, "workers": workers, "pin_memory": pin_memory}
    return make_eval_loader(sets.heldout, config, **kwargs), make_eval_loader(calibration, config, **kwargs)


def calibration_set(sets: DataSets, images: int, seed: int) -> Dataset:
    """``images`` training images (never held-out ones) chosen with ``random.Random(seed)``, in a
    fixed order and with the evaluation transform: BatchNorm recalibration of sub-networks."""
    pool = sets.calibration_pool
    positions = sorted(random.Random(seed).sample(pool, min(images, len(pool))))
    # the training images' type (SampleDataset or DepthSamples) with the evaluation transform
    return type(sets.heldout)(sets.train_source, [sets.train.indices[p] for p in positions], sets.heldout.transform)
