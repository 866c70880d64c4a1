"""What a new image folder holds, measured: classes, image counts, sizes, colour, mean and std.

``netadapt run --data FOLDER`` needs no config: it reads the folder's layout (``FOLDER/train/<class>/*``
and ``FOLDER/val/<class>/*`` or ``FOLDER/test/<class>/*``) and a seeded sample of its training
images, and chooses from them:

* **input size** — the median shorter side of the sampled images.  Up to 64 pixels the images are
  used at that size with the ``cifar`` preset (pad by S/8, random crop, flip; evaluation: the image
  resized to S×S) and a zoo model for small inputs; above 64 the input is the largest multiple of
  32 not above the median, at most 224 (the ImageNet networks' size, where more pixels cost MACs
  without helping most data), with the ``imagenet`` preset (random-resized crop; evaluation: resize
  the shorter side to S/0.875, centre crop S).
* **channels** — the networks take three channels.  Grayscale files (and any other mode) are
  decoded to RGB, so a grayscale image becomes three equal channels; the profile says whether every
  sampled image was grayscale.  The extra input channels cost only the first layer's MACs.
* **mean and std** — per channel, over every pixel of the sampled images as the network sees them
  (after the evaluation transform), in [0, 1] units.
"""

from __future__ import annotations

import logging
import random
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from netadapt.data.sources import FolderSource, UnreadableImage
from netadapt.data.transforms import make_transforms
from netadapt.errors import NetAdaptError

__all__ = ["SMALL_IMAGE_LIMIT", "DataProfile", "choose_input", "data_config_of", "profile_folder"]

log = logging.getLogger(__name__)

#: Images up to this size (median shorter side, pixels) are used at their own size.
SMALL_IMAGE_LIMIT = 64


@dataclass(frozen=True)
class DataProfile:
    """What :func:`profile_folder` measured of an image folder."""

    root: str
    classes: tuple[str, ...]
    train_images: int  # every image of the training folder (the held-out ones included)
    val_dir: str | None  # "val" or "test"; None: no validation folder
    val_images: int
    median_height: int  # of the sampled training images
    median_width: int
    grayscale: bool  # every sampled image has three equal channels
    image_size: int  # the chosen input size S (S×S)
    preset: str  # the chosen augmentation preset ("cifar" or "imagenet")
    mean: tuple[float, float, float]  # per channel, [0, 1] units
    std: tuple[float, float, float]
    sampled: int  # images the numbers above were measured on

    @property
    def small(self) -> bool:
        """Whether the images are small (≤ 64 px): a zoo model for 32×32-like inputs fits them."""
        return self.preset == "cifar"

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        """One paragraph a person can check against the folder."""
        colour = "grayscale (used as 3 equal channels)" if self.grayscale else "colour"
        val = f"{self.val_images:,} validation images in {self.val_dir}/" if self.val_dir else "no validation folder"
        names = ", ".join(self.classes[:6]) + (", …" if len(self.classes) > 6 else "")
        return (
            f"{self.root}: {len(self.classes)} classes ({names}), {self.train_images:,} training images, {val}; "
            f"median image {self.median_height}x{self.median_width} {colour}; input {self.image_size}x{self.image_size} "
            f"({self.preset} preset); mean {_fmt3(self.mean)}, std {_fmt3(self.std)} over {self.sampled} training images"
        )


def _fmt3(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.3f}" for v in values) + ")"


def choose_input(short_side: int) -> tuple[int, str]:
    """(input size, preset) for images whose median shorter side is ``short_side`` pixels (see
    the module docstring)."""
    if short_side < 8:
        raise NetAdaptError(f"the images are {short_side} pixels on their shorter side; at least 8 are needed")
    if short_side <= SMALL_IMAGE_LIMIT:
        return short_side, "cifar"
    return min(224, short_side // 32 * 32), "imagenet"


def profile_folder(root: str | Path, *, sample: int = 500, seed: int = 0, decoder: str = "auto") -> DataProfile:
    """Measure the image folder ``root`` on ``sample`` training images drawn with ``random.Random(seed)``."""
    root = Path(root)
    if not root.is_dir():
        raise NetAdaptError(f"data folder {root} does not exist")
    if not (root / "train").is_dir():
        raise NetAdaptError(
            f"data folder {root} has no train/ folder: expected {root}/train/<class>/<images> "
            f"and {root}/val/<class>/<images> (or test/) for validation"
        )
    train = FolderSource(root / "train", decoder=decoder)
    if len({train.targets[i] for i in range(len(train))}) < 2:
        raise NetAdaptError(f"data folder {train.root} holds images of one class; a classifier needs at least 2")
    val_dir = next((name for name in ("val", "test") if (root / name).is_dir()), None)
    val_images = len(FolderSource(root / val_dir, classes=train.classes, decoder=decoder)) if val_dir else 0
    if val_dir is None:
        log.warning("%s has no val/ or test/ folder: the trained networks get no validation numbers", root)

    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(len(train)), min(sample, len(train))))
    images = []
    for i in chosen:
        try:
            images.append(train.load(i))
        except UnreadableImage as exc:
            log.warning("skipped unreadable image while measuring the data: %s", exc)
    if not images:
        raise NetAdaptError(f"none of the {len(chosen)} sampled images of {train.root} could be read")
    heights = [int(img.shape[-2]) for img in images]
    widths = [int(img.shape[-1]) for img in images]
    short = round(statistics.median(min(h, w) for h, w in zip(heights, widths, strict=True)))
    size, preset = choose_input(short)
    grayscale = all(bool(torch.equal(img[0], img[1]) and torch.equal(img[1], img[2])) for img in images)
    # Mean and std of what the network sees: the evaluation transform's pixels, in [0, 1].
    _, evaluate = make_transforms(preset, size)
    total = torch.zeros(3, dtype=torch.float64)
    square = torch.zeros(3, dtype=torch.float64)
    count = 0
    for img in images:
        x = evaluate.pixels(img).to(torch.float64) / 255.0  # (3, S, S)
        total += x.sum((1, 2))
        square += (x * x).sum((1, 2))
        count += x.shape[1] * x.shape[2]
    mean = total / count
    std = (square / count - mean * mean).clamp(min=0).sqrt().clamp(min=1e-3)  # a constant channel must not divide by 0
    return DataProfile(
        root=str(root),
        classes=tuple(train.classes),
        train_images=len(train),
        val_dir=val_dir,
        val_images=val_images,
        median_height=round(statistics.median(heights)),
        median_width=round(statistics.median(widths)),
        grayscale=grayscale,
        image_size=size,
        preset=preset,
        mean=tuple(round(float(v), 4) for v in mean),
        std=tuple(round(float(v), 4) for v in std),
        sampled=len(images),
    )


def data_config_of(profile: DataProfile) -> dict:
    """The ``data`` mapping of a training config for the profiled folder (measured values only)."""
    return {
        "dataset": "folder",
        "root": profile.root,
        "val_dir": profile.val_dir or "",
        "preset": profile.preset,
        "image_size": profile.image_size,
        "mean": list(profile.mean),
        "std": list(profile.std),
    }
