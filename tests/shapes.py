"""A small image data set the developers do not have: 28×28 grayscale shapes in four classes.

Seeded and drawn with Pillow: discs, squares, horizontal and vertical stripes at random positions,
sizes and grey levels on a noisy background, written as PNG files in the image-folder layout
(``root/train/<class>/*.png``, ``root/test/<class>/*.png``).
"""

from __future__ import annotations

import random
from pathlib import Path

CLASSES = ("disc", "hstripes", "square", "vstripes")


def _draw(kind: str, rng: random.Random, size: int = 28):
    from PIL import Image, ImageDraw

    background = rng.randint(0, 60)
    img = Image.new("L", (size, size), background)
    pixels = img.load()
    for y in range(size):
        for x in range(size):
            pixels[x, y] = max(0, min(255, background + rng.randint(-12, 12)))
    draw = ImageDraw.Draw(img)
    ink = rng.randint(150, 255)
    if kind in ("disc", "square"):
        r = rng.randint(5, 9)
        cx, cy = rng.randint(r + 1, size - r - 2), rng.randint(r + 1, size - r - 2)
        box = (cx - r, cy - r, cx + r, cy + r)
        (draw.ellipse if kind == "disc" else draw.rectangle)(box, fill=ink)
    else:
        period, offset = rng.randint(4, 7), rng.randint(0, 3)
        for i in range(offset, size, period):
            line = (0, i, size, i + 1) if kind == "hstripes" else (i, 0, i + 1, size)
            draw.rectangle(line, fill=ink)
    return img


def make_shapes_folder(root: Path, *, train_per_class: int = 60, test_per_class: int = 20, seed: int = 0) -> Path:
    """Write the data set under ``root``; returns ``root``."""
    rng = random.Random(seed)
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for kind in CLASSES:
            folder = root / split / kind
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                _draw(kind, rng).save(folder / f"{kind}_{i:04d}.png")
    return root


def make_cifar_like(root: Path, *, train: int = 50, test: int = 10, seed: int = 0) -> Path:
    """A CIFAR-10-shaped JPEG folder (``root/{train,test}/{airplane,cat,ship}/NNNN.jpg``, 32×32 RGB)
    whose classes differ by a learnable colour; returns ``root``."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("test", test)):
        for c, name in enumerate(("airplane", "cat", "ship")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8)
                pixels[..., c] += 150  # a learnable colour per class
                Image.fromarray(pixels).save(folder / f"{i:04d}.jpg", quality=90)
    return root
