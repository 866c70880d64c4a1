"""Samples and batches: seeded per-image augmentation, resumable epoch order, skipped images.

Everything random in the input pipeline is a function of (seed, epoch, step, position):

* the epoch's shuffle is ``randperm`` from a generator seeded with ``derive_seed(seed,
  "shuffle", epoch)``, so a resumed run can skip the first ``k`` batches of an epoch;
* each image's augmentation draws from its own generator, seeded from the step's generator,
  so it does not depend on the number of loader workers or processes.

Distributed training and gradient accumulation share one rule.  A step's *global* batch of
``G`` images is cut into ``world × accumulate`` equal chunks; micro-batch ``m`` of rank ``r``
is chunk ``m·world + r``.  Two processes with one micro-batch each therefore see exactly the
images (and augmentations) that one process sees in two accumulated micro-batches.

An image that cannot be decoded becomes an :class:`Unreadable` marker; :func:`collate` drops
it and reports it, so an epoch never stops on a bad file.

The loaders normalize whole batches: their data sets yield uint8 pixels
(``SampleDataset(..., normalize=False)``) and :func:`collate` stacks them and calls the
transform's ``normalize`` once on the (B, 3, S, S) batch (see :mod:`netadapt.data.transforms`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler, get_worker_info

from netadapt.data.sources import ImageSource, UnreadableImage
from netadapt.data.transforms import ImageTransform
from netadapt.errors import NetAdaptError

__all__ = [
    "Batch",
    "SampleDataset",
    "ShardSampler",
    "TrainBatchSampler",
    "Unreadable",
    "collate",
    "derive_seed",
    "seeded_generator",
]


def derive_seed(*parts: object) -> int:
    """A 63-bit seed that is a pure function of ``parts`` (stable across processes and runs)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def seeded_generator(*parts: object) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``derive_seed(*parts)``."""
    return torch.Generator().manual_seed(derive_seed(*parts))


class Unreadable(NamedTuple):
    """Marker returned in place of a sample whose image could not be decoded."""

    name: str
    reason: str


class Batch(NamedTuple):
    """A collated batch.

    ``kept`` holds the positions (within the nominal batch) of the images that were readable,
    so per-image choices drawn for the nominal batch can be matched to the images present.
    """

    images: Tensor  # (B, 3, S, S)
    labels: Tensor  # (B,)
    kept: Tensor  # (B,) long, positions in the nominal batch
    skipped: tuple[str, ...]  # descriptions of unreadable images


class SampleDataset(Dataset):
    """Images ``indices`` of ``source`` with a transform.

    Keys are either a position ``i`` (deterministic transforms) or a pair ``(i, seed)``: the
    transform then draws from a generator seeded with ``seed``.  Items are (normalized float
    image, label); with ``normalize=False`` the image is the transform's uint8 pixels, for a
    collate function that normalizes the whole batch (``collate(..., normalize=…)``).
    """

    def __init__(self, source: ImageSource, indices: Sequence[int], transform: ImageTransform, *, normalize: bool = True) -> None:
        self.source = source
        self.indices = list(indices)
        self.transform = transform
        self.normalize = normalize

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def targets(self) -> list[int]:
        return [self.source.targets[i] for i in self.indices]

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Tensor, int] | Unreadable:
        position, seed = key if isinstance(key, tuple) else (key, None)
        index = self.indices[position]
        try:
            img = self.source.load(index)
        except UnreadableImage as exc:
            return Unreadable(self.source.describe(index), str(exc))
        gen = None
        if self.transform.random:
            gen = torch.Generator().manual_seed(derive_seed("augment", index) if seed is None else int(seed))
        pixels = self.transform.pixels(img, gen)
        return (self.transform.normalize(pixels) if self.normalize else pixels), self.source.targets[index]

    def unnormalized(self) -> SampleDataset:
        """The same images yielding uint8 pixels (``normalize=False``)."""
        return SampleDataset(self.source, self.indices, self.transform, normalize=False)


def collate(samples: Sequence[tuple[Tensor, int] | Unreadable], normalize: Callable[[Tensor], Tensor] | None = None) -> Batch:
    """Stack readable samples; unreadable ones are dropped and named in ``Batch.skipped``.

    ``normalize`` (e.g. an :class:`~netadapt.data.transforms.ImageTransform`'s) is applied once
    to the stacked (B, 3, S, S) images.
    """
    images, labels, kept, skipped = [], [], [], []
    for position, sample in enumerate(samples):
        if isinstance(sample, Unreadable):
            skipped.append(sample.name)
            continue
        images.append(sample[0])
        labels.append(sample[1])
        kept.append(position)
    # Every image of the batch unreadable: an empty batch, never an exception.
    stacked = torch.stack(images) if images else torch.empty(0)
    if normalize is not None and images:
        stacked = normalize(stacked, out=_batch_tensor(stacked.shape, torch.float32))
    return Batch(stacked, torch.tensor(labels, dtype=torch.long), torch.tensor(kept, dtype=torch.long), tuple(skipped))


def _batch_tensor(shape: torch.Size, dtype: torch.dtype) -> Tensor:
    """An empty tensor for a collated batch: in shared memory inside a loader worker.

    A worker's batch goes to the main process through shared memory; writing it there directly
    saves a copy of the batch (what ``default_collate`` does, with the same storage method).
    """
    if get_worker_info() is not None:
        try:
            storage = torch.empty(0, dtype=dtype)._typed_storage()._new_shared(shape.numel())
            return torch.empty(0, dtype=dtype).new(storage).view(shape)
        except (AttributeError, RuntimeError):  # a private method: fall back to a plain copy later
            pass
    return torch.empty(shape, dtype=dtype)


class TrainBatchSampler(Sampler[list[tuple[int, int]]]):
    """Training batches of one process: its chunks of every step's global batch.

    ``num_samples`` images are shuffled each epoch and cut into ``steps_per_epoch`` global
    batches of ``global_batch`` images (a partial last batch is dropped, so every process runs
    the same number of steps).  Each step yields ``accumulate`` micro-batches of
    ``global_batch / (world × accumulate)`` keys ``(position, augmentation seed)``; micro-batch
    ``m`` of ``rank`` is chunk ``m·world + rank``.

    Call :meth:`set_epoch` before iterating; ``start_step`` skips the steps already done when a
    run resumes mid-epoch.
    """

    def __init__(
        self, num_samples: int, global_batch: int, *, seed: int, rank: int = 0, world: int = 1, accumulate: int = 1
    ) -> None:
        chunks = world * accumulate
        if global_batch % chunks:
            raise NetAdaptError(
                f"data.batch_size={global_batch} is not divisible by {world} processes × {accumulate} accumulation steps"
            )
        self.num_samples = num_samples
        self.global_batch = global_batch
        self.chunk = global_batch // chunks
        self.seed = seed
        self.rank = rank
        self.world = world
        self.accumulate = accumulate
        self.epoch = 0
        self.start_step = 0

    @property
    def steps_per_epoch(self) -> int:
        return self.num_samples // self.global_batch

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.epoch = epoch
        self.start_step = start_step

    def chunk_ids(self) -> list[int]:
        """This process's chunks of a global batch, in micro-batch order."""
        return [m * self.world + self.rank for m in range(self.accumulate)]

    def __len__(self) -> int:
        return max(0, self.steps_per_epoch - self.start_step) * self.accumulate

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = torch.randperm(self.num_samples, generator=seeded_generator(self.seed, "shuffle", self.epoch))
        for step in range(self.start_step, self.steps_per_epoch):
            batch = order[step * self.global_batch : (step + 1) * self.global_batch]
            seeds = torch.randint(2**62, (self.global_batch,), generator=seeded_generator(self.seed, "augment", self.epoch, step))
            for c in self.chunk_ids():
                rows = slice(c * self.chunk, (c + 1) * self.chunk)
                yield list(zip(batch[rows].tolist(), seeds[rows].tolist(), strict=True))


class ShardSampler(Sampler[int]):
    """Positions ``rank, rank + world, …`` of ``num_samples``: a disjoint evaluation shard.

    Unlike ``DistributedSampler`` nothing is padded or repeated, so sums over all shards count
    every image exactly once.
    """

    def __init__(self, num_samples: int, rank: int = 0, world: int = 1) -> None:
        self.num_samples = num_samples
        self.rank = rank
        self.world = world

    def __len__(self) -> int:
        return len(range(self.rank, self.num_samples, self.world))

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.num_samples, self.world))
