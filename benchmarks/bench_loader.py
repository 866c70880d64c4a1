"""Training-loader images/s: netadapt's data path against a plain torchvision pipeline.

Both read the same folder of JPEGs (ImageFolder layout) with the same augmentation, batch size
and number of worker processes, in the same run; every file is read once first so that both
find it in the page cache (the figure is decoding and augmentation, not the disk).  Rounds
alternate between the two so that load changes on a shared machine affect both alike; the
figure is the median over rounds of each round's ratio.

* *netadapt*: ``build_datasets`` + ``make_train_loader`` of a ``folder`` data set, i.e. the
  loader ``netadapt train-supernet`` uses (per-image seeded augmentation, skipped-image
  bookkeeping included).
* *torchvision*: ``torchvision.datasets.ImageFolder`` (Pillow decoding) and a ``DataLoader``
  with ``shuffle=True``, transforms from ``torchvision.transforms.v2`` in the order its
  documentation recommends: ``ToImage``, the crop, ``RandomHorizontalFlip``,
  ``ToDtype(float32, scale=True)``, ``Normalize``.

Cases: ``cifar`` (32×32: zero-pad 4 and ``RandomCrop(32)``, flip) and ``imagenet`` (224:
``RandomResizedCrop(224)``, flip).  Without ``--data`` a folder of random JPEGs is generated
(32×32 for ``cifar``, 500×375 for ``imagenet``, the size of a typical ImageNet photo).

    python benchmarks/bench_loader.py --data /work/data/cifar10-jpg/train --case cifar
    python benchmarks/bench_loader.py --case imagenet --workers 2

Goal (issue 20): netadapt ≥ 1.5× the plain torchvision pipeline's images/s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from netadapt.data import DataConfig, TrainBatchSampler, build_datasets, make_train_loader
from netadapt.resources.timing import cpu_name

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CASES = {"cifar": (32, (32, 32)), "imagenet": (224, (500, 375))}  # output size, generated image size


def generate_folder(root: Path, images: int, size: tuple[int, int], *, classes: int = 10, seed: int = 0) -> Path:
    """``images`` random smooth JPEGs of ``size`` (width, height) in ``classes`` class folders."""
    rng = np.random.default_rng(seed)
    w, h = size
    for i in range(images):
        folder = root / f"class{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        # Low-frequency noise upscaled: compresses like a photo, unlike white noise.
        small = rng.integers(0, 256, (max(1, h // 8), max(1, w // 8), 3), dtype=np.uint8)
        Image.fromarray(small).resize((w, h), Image.BILINEAR).save(folder / f"{i:06d}.jpg", quality=90)
    return root


def warm_page_cache(root: Path) -> int:
    """Read every file below ``root`` once; returns the number of bytes read."""
    total = 0
    for path in root.rglob("*"):
        if path.is_file():
            total += len(path.read_bytes())
    return total


def netadapt_loader(root: Path, case: str, batch: int, workers: int) -> Iterable:
    size = CASES[case][0]
    config = DataConfig(
        dataset="folder", root=str(root.parent), train_dir=root.name, val_dir="", preset=case, image_size=size,
        mean=MEAN, std=STD, batch_size=batch, workers=workers, heldout=0, persistent_workers=False,
    )  # fmt: skip
    sets = build_datasets(config)
    batches = TrainBatchSampler(len(sets.train), batch, seed=0)
    return make_train_loader(sets.train, batches, config)


def torchvision_loader(root: Path, case: str, batch: int, workers: int) -> Iterable:
    from torchvision import datasets
    from torchvision.transforms import v2

    size = CASES[case][0]
    crop = v2.RandomCrop(size, padding=size // 8) if case == "cifar" else v2.RandomResizedCrop(size)
    transform = v2.Compose(
        [v2.ToImage(), crop, v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]
    )
    dataset = datasets.ImageFolder(str(root), transform=transform)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip


def images_per_s(loader: Iterable, batches: int) -> float:
    """Images/s over ``batches`` batches, after the batches the workers prepare before the first
    one is asked for (``num_workers × prefetch_factor``; counted, they would inflate a short
    run's rate)."""
    it = iter(loader)
    workers = getattr(loader, "num_workers", 0)
    for _ in range(max(1, workers * (getattr(loader, "prefetch_factor", None) or 2))):
        next(it)
    count, t0 = 0, time.perf_counter()
    for _ in range(batches):
        x = next(it)[0]
        count += x.shape[0]
    rate = count / (time.perf_counter() - t0)
    del it  # shuts the workers down
    return rate


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help="a folder with one sub-folder of JPEGs per class (default: generated)")
    p.add_argument("--case", choices=tuple(CASES), default="cifar")
    p.add_argument("--generate", type=int, default=0, help="images to generate without --data (0: 4000 / 600)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--batches", type=int, default=0, help="timed batches per round (0: 20 cifar, 8 imagenet)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch threads of this process (workers use 1)")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    batches = args.batches or (20 if args.case == "cifar" else 8)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data
        if root is None:
            count = args.generate or (4000 if args.case == "cifar" else 1000)
            root = generate_folder(Path(tmp) / "train", count, CASES[args.case][1])
        warm_page_cache(root)
        rates: dict[str, list[float]] = {"netadapt": [], "torchvision": []}
        for _ in range(args.rounds):
            for name, make in (("torchvision", torchvision_loader), ("netadapt", netadapt_loader)):
                rates[name].append(images_per_s(make(root, args.case, args.batch, args.workers), batches))
    ours, theirs = statistics.median(rates["netadapt"]), statistics.median(rates["torchvision"])
    ratios = [a / b for a, b in zip(rates["netadapt"], rates["torchvision"], strict=True)]
    result = {
        "case": args.case,
        "data": str(args.data) if args.data else "generated",
        "batch": args.batch,
        "workers": args.workers,
        "threads": args.threads,
        "machine": f"{cpu_name()}, {torch.get_num_threads()} torch threads, {_cpus()} CPUs",
        "netadapt_images_per_s": round(ours, 1),
        "torchvision_images_per_s": round(theirs, 1),
        "ratio": round(statistics.median(ratios), 3),
        "ratio_of_medians": round(ours / theirs, 3),
        "rounds": {k: [round(v, 1) for v in vs] for k, vs in rates.items()},
    }
    print(json.dumps(result))
    return result


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


if __name__ == "__main__":
    main()
