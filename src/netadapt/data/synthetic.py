"""A synthetic depth data set: procedurally generated rooms rendered by ray casting, exact depth.

Each scene is a box-shaped room seen from inside (floor, ceiling, side walls, back wall 4–9 m
away) holding one to four spheres and boxes, seen by a pinhole camera with a little random yaw
and pitch.  Every pixel's depth is the exact z-distance (metres, along the optical axis, as in
NYU Depth V2) of the first surface its ray hits.  Colours are flat surface colours, a
checkerboard floor, Lambertian shading from a light at the camera and a distance fall-off, so
that the RGB image carries the cues a network can learn depth from (shading, occlusion, the
floor's perspective, brightness fading with distance).

Scene ``i`` of a data set with seed ``s`` is rendered on the fly from a generator seeded by
``(s, i)``: no files, the same pixels on every machine, in any order.  The data set is named
``"synthetic"`` wherever it is shown, so that its numbers are never mistaken for NYU's.
"""

from __future__ import annotations

import hashlib
import math

import torch
from torch import Tensor

from netadapt.data.batches import derive_seed
from netadapt.errors import NetAdaptError

__all__ = ["SYNTHETIC_NAME", "SyntheticDepth", "render_scene", "synthetic_splits"]

SYNTHETIC_NAME = "synthetic"
_FOCAL = 0.9  # focal length in image widths: about 58° horizontal field of view, like NYU's Kinect
_INF = math.inf


def _uniform(g: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=g, dtype=torch.float64))


def _rotation(yaw: float, pitch: float) -> Tensor:
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    r_yaw = torch.tensor([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]], dtype=torch.float64)
    r_pitch = torch.tensor([[1, 0, 0], [0, cp, -sp], [0, sp, cp]], dtype=torch.float64)
    return r_yaw @ r_pitch


def _hit_room(d: Tensor, low: Tensor, high: Tensor) -> tuple[Tensor, Tensor]:
    """Ray parameter and normal where rays from the origin leave the box [low, high] (inside it)."""
    bound = torch.where(d > 0, high, low)  # (P, 3) the wall each axis is heading to
    t_axis = torch.where(d != 0, bound / d, torch.full_like(d, _INF))  # (P, 3)
    t, axis = t_axis.min(1)
    normal = torch.zeros_like(d)
    normal.scatter_(1, axis[:, None], -torch.sign(d.gather(1, axis[:, None])))  # facing the camera
    return t, normal


def _hit_sphere(d: Tensor, centre: Tensor, radius: float) -> tuple[Tensor, Tensor]:
    a = (d * d).sum(1)
    b = (d * centre).sum(1)
    c = float(centre @ centre) - radius**2
    disc = b * b - a * c
    t = (b - disc.clamp(min=0).sqrt()) / a
    t = torch.where((disc >= 0) & (t > 0), t, torch.full_like(t, _INF))
    normal = (t[:, None] * d - centre) / radius
    return t, normal


def _hit_box(d: Tensor, low: Tensor, high: Tensor) -> tuple[Tensor, Tensor]:
    inv = torch.where(d != 0, 1 / d, torch.full_like(d, 1e30))
    t1, t2 = low * inv, high * inv  # (P, 3)
    t_near_axis = torch.minimum(t1, t2)
    t_near, axis = t_near_axis.max(1)
    t_far = torch.maximum(t1, t2).min(1).values
    t = torch.where((t_near <= t_far) & (t_near > 0), t_near, torch.full_like(t_near, _INF))
    normal = torch.zeros_like(d)
    normal.scatter_(1, axis[:, None], -torch.sign(d.gather(1, axis[:, None])))
    return t, normal


def render_scene(size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """One random scene as (uint8 (3, size, size) RGB, float32 (size, size) depth in metres)."""
    g = generator
    # Room: camera at the origin looking down +z, y up.
    low = torch.tensor([-_uniform(g, 1.5, 3.0), -_uniform(g, 1.0, 1.6), -1.0], dtype=torch.float64)
    high = torch.tensor([_uniform(g, 1.5, 3.0), _uniform(g, 1.0, 1.8), _uniform(g, 4.0, 9.0)], dtype=torch.float64)
    rot = _rotation(_uniform(g, -0.3, 0.3), _uniform(g, -0.15, 0.15))

    # Rays in camera coordinates with unit z, so the ray parameter t is the z-depth.
    coords = (torch.arange(size, dtype=torch.float64) + 0.5 - size / 2) / (_FOCAL * size)
    v, u = torch.meshgrid(-coords, coords, indexing="ij")  # (S, S) each; image rows go down
    d_cam = torch.stack([u, v, torch.ones_like(u)], -1).reshape(-1, 3)  # (P, 3)
    d = d_cam @ rot.T  # world directions, (P, 3)

    t, normal = _hit_room(d, low, high)
    albedo = torch.empty(d.shape[0], 3, dtype=torch.float64)
    wall_colour = torch.rand(3, generator=g, dtype=torch.float64) * 0.5 + 0.4
    floor_colour = torch.rand(3, generator=g, dtype=torch.float64) * 0.5 + 0.4
    albedo[:] = wall_colour
    hit = t[:, None] * d
    on_floor = normal[:, 1] > 0.5
    checker = ((hit[:, 0] / 0.5).floor() + (hit[:, 2] / 0.5).floor()).remainder(2)  # 0.5 m tiles
    albedo[on_floor] = floor_colour * (0.65 + 0.35 * checker[on_floor, None])

    for _ in range(int(torch.randint(1, 5, (), generator=g))):
        colour = torch.rand(3, generator=g, dtype=torch.float64) * 0.7 + 0.3
        size_m = _uniform(g, 0.25, 0.7)
        x = _uniform(g, float(low[0]) + size_m, float(high[0]) - size_m)
        z = _uniform(g, 1.2 + size_m, float(high[2]) - size_m)
        if float(torch.rand((), generator=g)) < 0.5:
            y = _uniform(g, float(low[1]) + size_m, float(high[1]) - size_m)
            t_obj, n_obj = _hit_sphere(d, torch.tensor([x, y, z], dtype=torch.float64), size_m)
        else:  # a box standing on the floor
            height = _uniform(g, 0.3, 1.5)
            box_low = torch.tensor([x - size_m, float(low[1]), z - size_m], dtype=torch.float64)
            box_high = torch.tensor([x + size_m, float(low[1]) + height, z + size_m], dtype=torch.float64)
            t_obj, n_obj = _hit_box(d, box_low, box_high)
        nearer = t_obj < t
        t = torch.where(nearer, t_obj, t)
        normal = torch.where(nearer[:, None], n_obj, normal)
        albedo[nearer] = colour

    # Shading: ambient + Lambert from a light at the camera, dimmer with distance.
    ray = d / d.norm(dim=1, keepdim=True)
    lambert = (-(normal * ray).sum(1)).clamp(min=0)
    distance = t * d.norm(dim=1)
    light = (0.25 + 0.75 * lambert) / (1 + (distance / 5.0) ** 2)
    rgb = (albedo * light[:, None]).clamp(0, 1)  # (P, 3)
    rgb = rgb.T.reshape(3, size, size)
    depth = t.reshape(size, size).float()
    return (rgb * 255).round().to(torch.uint8), depth


class SyntheticDepth:
    """``count`` synthetic scenes of ``size``×``size`` pixels (see the module docstring), with the
    source interface of :class:`~netadapt.data.nyu.NYUSource` (``load_pair``, ``describe``,
    ``fingerprint``, one class)."""

    def __init__(self, count: int, *, size: int = 64, seed: int = 0, split: str = "train") -> None:
        if count < 1:
            raise NetAdaptError(f"the synthetic depth data set needs at least one scene, got {count}")
        if size < 8:
            raise NetAdaptError(f"synthetic depth image size must be at least 8, got {size}")
        self.count = count
        self.size = size
        self.seed = seed
        self.split = split
        self.name = f"{SYNTHETIC_NAME}/{split}"
        self.classes = (SYNTHETIC_NAME,)
        self.targets = [0] * count

    def __len__(self) -> int:
        return self.count

    def load_pair(self, index: int) -> tuple[Tensor, Tensor]:
        """Scene ``index`` as (uint8 (3, S, S), float32 (S, S) metres)."""
        if not 0 <= index < self.count:
            raise IndexError(f"scene {index} of {self.count}")
        return render_scene(self.size, torch.Generator().manual_seed(derive_seed(SYNTHETIC_NAME, self.seed, self.split, index)))

    def load(self, index: int) -> Tensor:
        return self.load_pair(index)[0]

    def describe(self, index: int) -> str:
        return f"{self.name}[{index}]"

    @property
    def fingerprint(self) -> str:
        key = f"{SYNTHETIC_NAME}:{self.split}:{self.seed}:{self.size}:{self.count}"
        return hashlib.sha256(key.encode()).hexdigest()[:16]


def synthetic_splits(train: int, val: int, *, size: int = 64, seed: int = 0) -> tuple[SyntheticDepth, SyntheticDepth]:
    """(training, validation) synthetic sets: disjoint scenes drawn from separate seed streams."""
    return SyntheticDepth(train, size=size, seed=seed, split="train"), SyntheticDepth(val, size=size, seed=seed, split="val")
