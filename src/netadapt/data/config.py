"""The typed configuration of a data set and its loaders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from netadapt.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from netadapt.errors import NetAdaptError

__all__ = ["DATASETS", "DEPTH_DATASETS", "DataConfig"]

#: Depth-estimation data sets (paper §4.2); the others are image classification.
DEPTH_DATASETS = ("nyu", "synthetic_depth")
DATASETS = ("digits", "folder", "cifar10_torchvision", "cifar100_torchvision", *DEPTH_DATASETS)

# Per-data-set defaults: (preset, image size, mean, std).
_CIFAR_MEAN, _CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
_DEFAULTS = {
    # Digits: 16×16 is the demo's size (the 8×8 originals upscaled twice); no augmentation,
    # because flips and shifts change what a hand-written digit is at this scale.
    "digits": ("none", 16, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "folder": ("imagenet", None, IMAGENET_MEAN, IMAGENET_STD),
    "cifar10_torchvision": ("cifar", 32, _CIFAR_MEAN, _CIFAR_STD),
    "cifar100_torchvision": ("cifar", 32, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    # Depth: FastDepth's own transforms (netadapt.data.depth_transforms) on [0, 1] RGB without
    # normalization; 224 is FastDepth's input, 64 the size the synthetic scenes render fast at.
    "nyu": ("none", 224, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    "synthetic_depth": ("none", 64, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}
_PRESET_SIZE = {"imagenet": 224, "cifar": 32, "none": 32}


@dataclass
class DataConfig:
    """Which images, how they are augmented and how they are batched.

    ``batch_size`` is the *global* training batch: images per optimizer step over all
    processes and accumulation steps (the paper's 1024), so the training does not change with
    the number of GPUs.  ``heldout`` training images are reserved, stratified by class, for the
    search to compare samples on (paper §4.1.1: 10K of ImageNet; §4.2.1: 2K of NYU).

    ``nyu`` and ``synthetic_depth`` are depth-estimation data (:mod:`netadapt.data.depth`): (RGB, depth)
    pairs with FastDepth's transforms; ``preset``, ``mean``, ``std`` and ``flip`` do not apply to
    them, and their "classes" are NYU's scenes (the held-out split is stratified by scene).
    """

    dataset: Literal["digits", "folder", "cifar10_torchvision", "cifar100_torchvision", "nyu", "synthetic_depth"] = (
        "digits"  # digits: built in; folder: train/ and val/ (or test/) of class folders
    )
    root: str | None = None  # folder: holds train/ and val/ (or test/); torchvision: its root; nyu: the nyudepthv2 folder
    train_dir: str = "train"  # folder: the training images' folder under root
    val_dir: str | None = None  # None: "val" if present, else "test"; "" for no validation set
    preset: Literal["imagenet", "cifar", "none"] | None = None  # None: the data set's standard
    image_size: int | None = None  # None: the preset's (imagenet 224, cifar 32, digits 16)
    mean: tuple[float, float, float] | None = None  # None: the data set's
    std: tuple[float, float, float] | None = None  # None: the data set's
    flip: bool = True  # horizontal flips in the augmenting presets
    decoder: Literal["auto", "torchvision", "pillow"] = "auto"  # folder images; auto: torchvision.io if installed
    batch_size: int = 128  # global training batch (all processes, all accumulation steps)
    eval_batch_size: int | None = None  # per process; None: the training batch size
    workers: int = 0  # loader worker processes per training process
    pin_memory: bool | None = None  # None: on when training on a GPU
    persistent_workers: bool = True  # keep workers between epochs (only with workers > 0)
    heldout: int = 300  # training images reserved for the search (never trained on)
    seed: int = 0  # seeds the held-out split and the digits train/test split
    download: bool = False  # torchvision data sets only: download when missing
    digits_test_fraction: float = 0.2  # digits: the share of the 1,797 images that validates
    subset: int | None = None  # train on at most this many training images (a seeded subset; quick trials, tests)
    val_subset: int | None = None  # validate on at most this many validation images (None: all of them)
    check: Literal["shapes", "values", "none"] = "shapes"  # nyu: how the .h5 files are checked when opened
    synthetic_train: int = 1000  # synthetic_depth: training scenes (held-out ones included)
    synthetic_val: int = 200  # synthetic_depth: validation scenes

    @property
    def task(self) -> str:
        """``"depth"`` for the depth data sets, else ``"classification"``."""
        return "depth" if self.dataset in DEPTH_DATASETS else "classification"

    def validate(self) -> None:
        if self.dataset in ("folder", "cifar10_torchvision", "cifar100_torchvision", "nyu") and not self.root:
            raise NetAdaptError(f"data.root is required for data set {self.dataset!r}")
        if self.image_size is not None and self.image_size < 8:
            raise NetAdaptError(f"data.image_size must be at least 8, got {self.image_size}")
        if self.std is not None and not min(self.std) > 0:
            raise NetAdaptError(f"data.std must be positive in every channel, got {list(self.std)}")
        if self.batch_size < 1:
            raise NetAdaptError(f"data.batch_size must be positive, got {self.batch_size}")
        if self.eval_batch_size is not None and self.eval_batch_size < 1:
            raise NetAdaptError(f"data.eval_batch_size must be positive, got {self.eval_batch_size}")
        if self.workers < 0:
            raise NetAdaptError(f"data.workers must be 0 or more, got {self.workers}")
        if self.heldout < 0:
            raise NetAdaptError(f"data.heldout must be 0 or more, got {self.heldout}")
        for name in ("subset", "val_subset"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise NetAdaptError(f"data.{name} must be positive or null, got {value}")
        if not 0 < self.digits_test_fraction < 1:
            raise NetAdaptError(f"data.digits_test_fraction must be in (0, 1), got {self.digits_test_fraction}")
        if self.decoder not in ("auto", "torchvision", "pillow"):
            raise NetAdaptError(f"data.decoder must be auto, torchvision or pillow, got {self.decoder!r}")
        if self.synthetic_train < 1 or self.synthetic_val < 0:
            raise NetAdaptError("data.synthetic_train must be at least 1 and data.synthetic_val at least 0")

    # -- resolved values -----------------------------------------------------------------------
    def resolved_preset(self) -> str:
        return self.preset or _DEFAULTS[self.dataset][0]

    def resolved_size(self) -> int:
        if self.image_size is not None:
            return self.image_size
        return _DEFAULTS[self.dataset][1] or _PRESET_SIZE[self.resolved_preset()]

    def resolved_mean_std(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        _, _, mean, std = _DEFAULTS[self.dataset]
        return tuple(self.mean or mean), tuple(self.std or std)
