"""FastDepth's NYU Depth V2 transforms, written as one affine warp in torch.

FastDepth (Wofk et al. 2019, ``dataloaders/nyu.py``, inherited from sparse-to-dense) prepares a
480×640 NYU frame as follows:

* training: resize to height 250 → rotate by r ∈ [−5°, 5°] → scale by s ∈ [1, 1.5] (and divide
  the depth by s, so that the zoomed scene looks nearer and stays geometrically consistent) →
  centre crop 228×304 → horizontal flip with probability ½ → resize to 224×224 → colour jitter
  (brightness, contrast, saturation, each ±0.4) on the RGB image;
* validation: resize to height 250 → centre crop 228×304 → resize to 224×224.

The geometric steps are all linear maps of pixel coordinates, so here they are composed into a
single affine map from output pixels to input pixels and applied with one ``grid_sample``: the
same geometry, one resampling instead of five.  The RGB image is sampled bilinearly, the depth
map with nearest neighbours (FastDepth uses nearest neighbours throughout), so that a missing
depth (0) is never blended into a measured one; pixels that the rotation brings in from outside
the frame get depth 0 (invalid) as in FastDepth.  As in FastDepth the RGB image is scaled to
[0, 1] and not normalized (``mean``/``std`` optionally normalize it).

Every random draw comes from the ``torch.Generator`` passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["DEPTH_PRESETS", "DepthTransform", "affine_theta", "color_jitter", "warp_pair"]

DEPTH_PRESETS = ("nyu", "none")


def _uniform(generator: torch.Generator | None, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def affine_theta(
    in_hw: tuple[int, int], crop_hw: tuple[float, float], *, angle: float = 0.0, scale: float = 1.0, flip: bool = False
) -> Tensor:
    """The (2, 3) ``affine_grid`` matrix taking output coordinates to input coordinates.

    ``crop_hw`` is the centre crop in input pixels before zooming; ``scale`` > 1 zooms in,
    ``angle`` rotates (degrees), ``flip`` mirrors left-right.  Coordinates are normalized to
    [−1, 1] on both sides (``align_corners=False``).
    """
    h, w = in_hw
    ch, cw = crop_hw
    a = math.radians(angle)
    rot = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64)
    # output normalized (x, y) → crop pixels (centred) → flip → zoom → rotate → input normalized
    to_crop = torch.diag(torch.tensor([cw / 2 * (-1.0 if flip else 1.0), ch / 2], dtype=torch.float64)) / scale
    to_input = torch.diag(torch.tensor([2.0 / w, 2.0 / h], dtype=torch.float64))
    linear = to_input @ rot @ to_crop
    return torch.cat([linear, torch.zeros(2, 1, dtype=torch.float64)], dim=1).float()


def warp_pair(rgb: Tensor, depth: Tensor, theta: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Resample a float (3, H, W) image bilinearly and an (H, W) depth map with nearest
    neighbours through ``theta``; returns (3, h, w) and (1, h, w), outside pixels 0."""
    grid = F.affine_grid(theta[None], [1, 1, *size], align_corners=False)  # (1, h, w, 2)
    x = F.grid_sample(rgb[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    d = F.grid_sample(depth[None, None], grid, mode="nearest", padding_mode="zeros", align_corners=False)[0]
    return x, d


def _gray(img: Tensor) -> Tensor:
    """ITU-R 601 luma of a (3, H, W) image, (1, H, W)."""
    r, g, b = img.unbind(0)
    return (0.299 * r + 0.587 * g + 0.114 * b)[None]


def color_jitter(img: Tensor, strength: float, generator: torch.Generator | None) -> Tensor:
    """Brightness, contrast and saturation each scaled by a factor in [1 − strength, 1 + strength],
    in a random order (torchvision's ``ColorJitter(s, s, s)`` as FastDepth uses it), on [0, 1] images."""
    factors = [_uniform(generator, max(0.0, 1 - strength), 1 + strength) for _ in range(3)]
    for op in torch.randperm(3, generator=generator).tolist():
        f = factors[op]
        if op == 0:  # brightness
            img = img * f
        elif op == 1:  # contrast: blend with the mean grey level
            img = (img - _gray(img).mean()) * f + _gray(img).mean()
        else:  # saturation: blend with the grey image
            img = (img - _gray(img)) * f + _gray(img)
        img = img.clamp(0, 1)
    return img


@dataclass(frozen=True)
class DepthTransform:
    """Training or evaluation transform of an (RGB, depth) pair.

    ``preset="nyu"``: FastDepth's transforms (module docstring), for 480×640 NYU frames (other
    sizes are handled the same way, relative to their height).  ``preset="none"``: resize to
    ``size``×``size`` (RGB bilinear, depth nearest) and, when training, a random flip — for the
    synthetic scenes, which are rendered at the network's size.
    """

    preset: str = "nyu"
    train: bool = False
    size: int = 224  # the network's input (FastDepth: 224×224)
    resize_height: int = 250  # FastDepth: first resize 480 → 250 rows
    crop: tuple[int, int] = (228, 304)  # FastDepth's centre crop, rows × columns at height 250
    rotation: float = 5.0  # degrees, ±
    scale: tuple[float, float] = (1.0, 1.5)
    jitter: float = 0.4  # colour jitter strength (brightness, contrast, saturation)
    flip: bool = True
    mean: tuple[float, float, float] | None = None  # None: FastDepth's plain [0, 1] input
    std: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.preset not in DEPTH_PRESETS:
            raise ValueError(f"unknown depth preset {self.preset!r}; choose one of {', '.join(DEPTH_PRESETS)}")
        if self.size < 8:
            raise ValueError(f"depth image size must be at least 8, got {self.size}")
        if (self.mean is None) != (self.std is None):
            raise ValueError("give both mean and std, or neither")

    @property
    def random(self) -> bool:
        """Whether the transform draws from its generator."""
        return self.train and (self.preset == "nyu" or self.flip)

    def __call__(self, rgb: Tensor, depth: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """uint8 (3, H, W) and float (H, W) metres → float32 (3, S, S) and (1, S, S) metres."""
        x = rgb.float() / 255.0
        depth = depth.float()
        s = self.size
        if self.preset == "nyu":
            h, w = x.shape[-2:]
            k = h / self.resize_height  # input pixels per pixel of the height-250 image
            crop = (self.crop[0] * k, self.crop[1] * k)
            if self.train:
                angle = _uniform(generator, -self.rotation, self.rotation)
                zoom = _uniform(generator, *self.scale)
                flip = self.flip and float(torch.rand((), generator=generator)) < 0.5
            else:
                angle, zoom, flip = 0.0, 1.0, False
            x, d = warp_pair(x, depth, affine_theta((h, w), crop, angle=angle, scale=zoom, flip=flip), (s, s))
            # Zooming by s makes the scene look s times nearer: depth / s keeps it consistent.
            d = d / zoom
            if self.train and self.jitter > 0:
                x = color_jitter(x, self.jitter, generator)
        else:
            d = depth[None]
            if x.shape[-2:] != (s, s):
                x = F.interpolate(x[None], size=(s, s), mode="bilinear", align_corners=False, antialias=True)[0]
                d = F.interpolate(d[None], size=(s, s), mode="nearest")[0]
            if self.train and self.flip and float(torch.rand((), generator=generator)) < 0.5:
                x, d = x.flip(-1), d.flip(-1)
        if self.mean is not None and self.std is not None:
            x = (x - torch.tensor(self.mean)[:, None, None]) / torch.tensor(self.std)[:, None, None]
        return x.contiguous(), d.contiguous()
