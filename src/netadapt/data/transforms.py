"""Image transforms on tensors, with every random choice drawn from an explicit generator.

Images arrive as ``uint8`` tensors of shape (3, H, W) and leave as normalized ``float32``
tensors of shape (3, S, S), in two steps: :meth:`ImageTransform.pixels` does every resize, crop
and flip on the ``uint8`` pixels of one image, :meth:`ImageTransform.normalize` converts to
float and normalizes — one image, or a whole (B, 3, S, S) batch at once, which is how the
loaders call it (:mod:`netadapt.data.loaders`).  Cropping before converting touches only the
pixels that are kept, and a uint8 image is a quarter of the bytes to copy.  Randomness comes
only from the ``torch.Generator`` passed to :meth:`ImageTransform.pixels`; the data pipeline
seeds one per image from (seed, epoch, position), so augmentation does not depend on the number
of loader workers or processes and a resumed run sees exactly the augmentations it would have
seen.

Crops, flips and zero padding commute exactly with the per-pixel normalization (padding is
zero in pixel space, i.e. black, as before).  Resizing a uint8 image rounds its result to whole
levels: within 1/255 of resizing the float image (what torchvision and Pillow do as well).

Presets (standard per data set):

* ``imagenet`` — training: random-resized-crop to S (scale 0.08–1, aspect 3/4–4/3) and a
  horizontal flip; evaluation: resize the shorter side to S/0.875 (256 for 224), centre crop S.
* ``cifar`` — training: zero-pad by S/8 (4 for 32) and random-crop S, horizontal flip;
  evaluation: the image itself (resized to S if it has another size).
* ``none`` — resize to S if needed and normalize, nothing random.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PRESETS",
    "ImageTransform",
    "center_crop",
    "make_transforms",
    "pad_random_crop",
    "random_flip",
    "random_resized_crop",
    "resize",
    "resize_shorter",
]

PRESETS = ("imagenet", "cifar", "none")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _uniform(generator: torch.Generator | None, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _randint(generator: torch.Generator | None, high: int) -> int:
    """A random integer in ``[0, high]`` (inclusive)."""
    return int(torch.randint(high + 1, (), generator=generator))


def resize(img: Tensor, height: int, width: int) -> Tensor:
    """Bilinear, antialiased resize of a uint8 or float (C, H, W) image (same dtype out).

    A uint8 image is resized channels-last, the layout of PyTorch's vectorized uint8 kernel
    (2–3× faster than the float kernel); the result is then a channels-last view.
    """
    if img.shape[-2:] == (height, width):
        return img
    x = img[None]  # (1, C, H, W)
    if img.dtype == torch.uint8:
        x = x.contiguous(memory_format=torch.channels_last)
    return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)[0]


def resize_shorter(img: Tensor, size: int) -> Tensor:
    """Resize so that the shorter side is ``size``, keeping the aspect ratio."""
    h, w = img.shape[-2:]
    if h <= w:
        return resize(img, size, max(1, round(w * size / h)))
    return resize(img, max(1, round(h * size / w)), size)


def center_crop(img: Tensor, size: int) -> Tensor:
    """The central ``size``×``size`` window (zero-padded first if the image is smaller)."""
    h, w = img.shape[-2:]
    if h < size or w < size:
        ph, pw = max(0, size - h), max(0, size - w)
        img = F.pad(img, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        h, w = img.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return img[..., top : top + size, left : left + size]


def random_resized_crop(
    img: Tensor,
    size: int,
    generator: torch.Generator | None,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> Tensor:
    """Inception-style crop: a window of random area and aspect ratio, resized to ``size``.

    Same sampling as torchvision's ``RandomResizedCrop`` (ten tries, then a centre crop of
    the clamped aspect ratio).
    """
    h, w = img.shape[-2:]
    area = h * w
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * _uniform(generator, *scale)
        aspect = math.exp(_uniform(generator, *log_ratio))
        cw = round(math.sqrt(target * aspect))
        ch = round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            top, left = _randint(generator, h - ch), _randint(generator, w - cw)
            return resize(img[..., top : top + ch, left : left + cw], size, size)
    in_ratio = w / h
    if in_ratio < ratio[0]:
        cw, ch = w, round(w / ratio[0])
    elif in_ratio > ratio[1]:
        ch, cw = h, round(h * ratio[1])
    else:
        cw, ch = w, h
    top, left = (h - ch) // 2, (w - cw) // 2
    return resize(img[..., top : top + ch, left : left + cw], size, size)


def pad_random_crop(img: Tensor, size: int, padding: int, generator: torch.Generator | None) -> Tensor:
    """Zero-pad by ``padding`` pixels on every side, then take a random ``size`` window."""
    img = F.pad(img, (padding, padding, padding, padding))
    h, w = img.shape[-2:]
    top, left = _randint(generator, h - size), _randint(generator, w - size)
    return img[..., top : top + size, left : left + size]


def random_flip(img: Tensor, generator: torch.Generator | None) -> Tensor:
    """Mirror left-right with probability 1/2."""
    return img.flip(-1) if float(torch.rand((), generator=generator)) < 0.5 else img


@dataclass(frozen=True)
class ImageTransform:
    """One preset's training or evaluation transform.

    ``random`` says whether the transform draws from its generator (training presets other than
    ``none``); a deterministic transform ignores the generator.
    """

    preset: str
    train: bool
    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    flip: bool = True

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        if self.size < 1:
            raise ValueError(f"image size must be positive, got {self.size}")

    @property
    def random(self) -> bool:
        return self.train and self.preset != "none"

    def __call__(self, img: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """uint8 (C, H, W) → normalized float32 (C, size, size): :meth:`pixels`, then :meth:`normalize`."""
        return self.normalize(self.pixels(img, generator))

    def pixels(self, img: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """uint8 (C, H, W) → uint8 (C, size, size): every resize, crop and flip, nothing else.

        The result may be a strided view; stacking a batch makes it contiguous.
        """
        x = img
        s = self.size
        if self.preset == "imagenet":
            # Evaluation: shorter side to s / 0.875 (256 for 224), then the central s×s.
            x = random_resized_crop(x, s, generator) if self.train else center_crop(resize_shorter(x, round(s / 0.875)), s)
        elif self.preset == "cifar":
            x = resize(x, s, s)
            if self.train:
                x = pad_random_crop(x, s, max(1, s // 8), generator)
        else:
            x = resize(x, s, s)
        if self.random and self.flip:
            x = random_flip(x, generator)
        return x

    def normalize(self, x: Tensor, *, out: Tensor | None = None) -> Tensor:
        """uint8 pixels (…, C, H, W) → float32 ``(x / 255 - mean) / std``; one image or a batch.

        Computed as a conversion and two in-place operations, ``x · (1 / (255 std)) - mean /
        std``, which differs from the formula in the last bit (≤ 1e-6) and does not allocate the
        temporaries of the literal expression.  A float input is taken to be in [0, 1] already.
        ``out``: a float32 tensor of ``x``'s shape to write the result into (e.g. in shared memory).
        """
        std = torch.tensor(self.std, dtype=torch.float64)[:, None, None]  # (C, 1, 1)
        mean = torch.tensor(self.mean, dtype=torch.float64)[:, None, None]
        scale = 1.0 / std if x.is_floating_point() else 1.0 / (255.0 * std)
        if out is None:
            out = torch.empty(x.shape, dtype=torch.float32)
        out.copy_(x)
        return out.mul_(scale.float()).sub_((mean / std).float())


def make_transforms(
    preset: str,
    size: int,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    *,
    flip: bool = True,
) -> tuple[ImageTransform, ImageTransform]:
    """(training transform, evaluation transform) of ``preset`` producing ``size``×``size`` images."""
    return (
        ImageTransform(preset, True, size, tuple(mean), tuple(std), flip),
        ImageTransform(preset, False, size, tuple(mean), tuple(std), flip),
    )
