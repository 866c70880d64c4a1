"""Where images come from: a folder in the ImageFolder layout, or images held in memory.

A source lists its images (``targets`` holds one class index per image, ``classes`` the class
names) and loads one image at a time as a ``uint8`` (3, H, W) tensor.  An image that cannot be
decoded raises :class:`UnreadableImage`; the data pipeline turns that into a skipped sample.

Image files are decoded by :func:`read_image`: with ``torchvision.io`` when torchvision is
installed (2–3.5× faster than Pillow on JPEGs, the same pixels: both use libjpeg-turbo), with
Pillow for the formats torchvision does not read and for files it rejects.

Built-in sources needing no download: scikit-learn's bundled hand-written digits (1,797 8×8
grayscale images, 10 classes), upscaled and repeated to 3 channels.  CIFAR-10/100 come through
torchvision's classes (imported only when asked for; download only with ``download=True``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import logging
import os
import random
from collections import Counter
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from netadapt.errors import NetAdaptError

__all__ = [
    "DECODERS",
    "IMAGE_EXTENSIONS",
    "FolderSource",
    "ImageSource",
    "TensorSource",
    "UnreadableImage",
    "load_digits",
    "load_torchvision_cifar",
    "read_image",
    "stratified_sample",
]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
DECODERS = ("auto", "torchvision", "pillow")  # auto: torchvision.io when importable, else Pillow
_TORCHVISION_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")  # what torchvision.io decodes; the rest go to Pillow


class UnreadableImage(Exception):
    """An image file that could not be decoded (corrupt, truncated, not an image)."""


class ImageSource(Protocol):
    """Images with class labels (the protocol both sources implement)."""

    name: str
    classes: tuple[str, ...]
    targets: list[int]  # class index of every image

    def __len__(self) -> int: ...

    def load(self, index: int) -> Tensor:
        """Image ``index`` as a uint8 (3, H, W) tensor; raises :class:`UnreadableImage`."""
        ...

    def describe(self, index: int) -> str:
        """A human-readable name of image ``index`` (its path, or its position)."""
        ...

    @property
    def fingerprint(self) -> str:
        """A short hash identifying the images and labels."""
        ...


class FolderSource:
    """Images in ``root/<class>/**/<file>`` (torchvision's ImageFolder layout).

    Class names are the sorted sub-folder names (or ``classes`` when given, e.g. a validation
    folder that must use the training folder's labels).  Files are listed once and decoded by
    :func:`read_image` with ``decoder``.  The fingerprint hashes the sorted (relative path,
    label) list.

    Symbolic links: a class folder may be a link, and so may an image file (it is labelled by the
    class folder it lies in), but links to folders *inside* a class folder are not followed — a
    link into another class or out of the data root would give its images the wrong label, and a
    link loop would never end; they are counted in a warning.  Two class folders that are the
    same folder (or one inside the other) are an error.
    """

    def __init__(self, root: str | os.PathLike, classes: Sequence[str] | None = None, *, decoder: str = "auto") -> None:
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}")
        self.root = Path(root)
        self.name = str(self.root)
        self.decoder = decoder
        if not self.root.is_dir():
            raise NetAdaptError(f"data folder {self.root} does not exist")
        found = sorted(e.name for e in os.scandir(self.root) if e.is_dir() and not e.name.startswith("."))
        if not found:
            raise NetAdaptError(f"data folder {self.root} is empty: expected one sub-folder of images per class")
        if classes is not None:
            extra = sorted(set(found) - set(classes))
            if extra:
                raise NetAdaptError(f"data folder {self.root} has classes {extra[:3]} that the training data lacks")
            found = list(classes)
        self.classes = tuple(found)
        _check_distinct_folders(self.root, self.classes)
        self.paths: list[str] = []
        self.targets = []
        links: list[str] = []
        for label, name in enumerate(self.classes):
            folder = self.root / name
            files = sorted(_list_images(folder, links)) if folder.is_dir() else []
            self.paths.extend(files)
            self.targets.extend([label] * len(files))
        if links:
            log.warning(
                "data folder %s: %d symbolic link(s) to folders inside class folders not followed (e.g. %s)",
                self.root,
                len(links),
                links[0],
            )
        if not self.paths:
            raise NetAdaptError(f"data folder {self.root} holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
        counts = Counter(self.targets)
        empty = [name for label, name in enumerate(self.classes) if not counts[label]]
        if empty and classes is None:  # the training folder: its sub-folders are the network's classes
            raise NetAdaptError(
                f"data folder {self.root}: class folder(s) {', '.join(empty[:3])}{' …' if len(empty) > 3 else ''} hold no "
                "images; add images or remove the folder (every sub-folder is a class of the network)"
            )
        if empty:
            log.warning("data folder %s: no images of class(es) %s", self.root, ", ".join(empty[:5]))

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> Tensor:
        return read_image(os.path.join(self.name, self.paths[index]), decoder=self.decoder)

    def describe(self, index: int) -> str:
        return str(self.root / self.paths[index])

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for path, label in zip(self.paths, self.targets, strict=True):
            h.update(f"{path}\t{label}\n".encode())
        return h.hexdigest()[:16]


def read_image(path: str | os.PathLike, *, decoder: str = "auto") -> Tensor:
    """The pixels of an image file as a uint8 (3, H, W) tensor (RGB; grey, CMYK, alpha converted).

    ``decoder="auto"`` decodes JPEG, PNG and WebP files with ``torchvision.io`` when torchvision
    can be imported and everything else (or a file torchvision rejects, or a 16-bit PNG) with
    Pillow; ``"torchvision"`` does the same but raises when torchvision cannot be imported;
    ``"pillow"`` always uses Pillow.  The tensor may be a strided view of an (H, W, 3)
    buffer: crop before calling ``.contiguous()``.  Raises :class:`UnreadableImage` when the file
    cannot be decoded.
    """
    path = os.fspath(path)
    if decoder != "pillow" and path.lower().endswith(_TORCHVISION_EXTENSIONS):
        decode = _torchvision_decoder()
        if decode is not None:
            try:
                img = decode(path)
            except (RuntimeError, ValueError, OSError):
                img = None  # let Pillow decide: it reads some files libjpeg/libpng reject, and names the error
            if img is not None and img.dtype == torch.uint8:
                return img
        elif decoder == "torchvision":
            raise NetAdaptError("decoder 'torchvision' needs torchvision's image extension (pip install torchvision)")
    return _read_with_pillow(path)


@cache
def _torchvision_decoder():
    """A function ``path -> (3, H, W) uint8`` using ``torchvision.io``, or ``None`` without it.

    Imported on first use, so that ``import netadapt`` never imports torchvision.
    """
    try:
        from torchvision.io import ImageReadMode, decode_image, image
    except ImportError:
        return None
    if not getattr(image, "_has_image_ops", lambda: True)():  # torchvision built without libjpeg/libpng
        return None

    def decode(path: str) -> Tensor:
        with open(path, "rb", buffering=0) as f:  # unbuffered: one read of the whole file
            data = torch.frombuffer(bytearray(f.readall()), dtype=torch.uint8)  # a bytearray is writable
        return decode_image(data, mode=ImageReadMode.RGB)  # (3, H, W), a view of an (H, W, 3) buffer

    return decode


def _read_with_pillow(path: str) -> Tensor:
    from PIL import Image  # Pillow is a dependency; imported here to keep `import netadapt` light

    try:
        with Image.open(path) as im:
            array = np.asarray(im.convert("RGB"), dtype=np.uint8)  # (H, W, 3), owns its converted buffer
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UnreadableImage(f"{path}: {type(exc).__name__}: {exc}") from None
    return torch.from_numpy(array.copy() if not array.flags.writeable else array).permute(2, 0, 1)  # (3, H, W) view


def _check_distinct_folders(root: Path, classes: Sequence[str]) -> None:
    """Raise when two class folders resolve to the same folder or one lies inside another."""
    # Sorted by path components, a folder comes just before the folders it holds.
    real = sorted((Path(os.path.realpath(root / name)).parts, name) for name in classes if (root / name).is_dir())
    for (a, name_a), (b, name_b) in itertools.pairwise(real):
        if b[: len(a)] == a:
            raise NetAdaptError(
                f"data folder {root}: class folders {name_a!r} and {name_b!r} hold the same images "
                "(a symbolic link); each class needs its own folder"
            )


def _list_images(folder: Path, links: list[str]) -> list[str]:
    """Image files below ``folder``, relative to its parent (``class/…/file``), hidden ones
    skipped; symbolic links to folders are not followed but appended to ``links``."""
    out = []
    base = folder.parent
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        links.extend(os.path.join(dirpath, d) for d in dirnames if os.path.islink(os.path.join(dirpath, d)))
        # one relpath per folder: one per file was 5x slower (CIFAR-10's 50,000 training files: 0.24 s)
        rel = os.path.relpath(dirpath, base)
        out.extend(os.path.join(rel, f) for f in filenames if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS))
    return out


class TensorSource:
    """Images held in memory as one uint8 (N, 3, H, W) tensor."""

    def __init__(self, name: str, images: Tensor, targets: Sequence[int], classes: Sequence[str]) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be a uint8 (N, 3, H, W) tensor, got {images.dtype} {tuple(images.shape)}")
        if len(targets) != images.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {len(targets)} labels")
        self.name = name
        self.images = images
        self.targets = [int(t) for t in targets]
        self.classes = tuple(classes)

    def __len__(self) -> int:
        return len(self.targets)

    def load(self, index: int) -> Tensor:
        return self.images[index]

    def describe(self, index: int) -> str:
        return f"{self.name}[{index}]"

    def subset(self, indices: Sequence[int], name: str) -> TensorSource:
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        return TensorSource(name, self.images[idx], [self.targets[i] for i in indices], self.classes)

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha256(self.images.numpy().tobytes())
        h.update(np.asarray(self.targets, dtype=np.int64).tobytes())
        return h.hexdigest()[:16]


def stratified_sample(targets: Sequence[int], size: int, seed: int) -> list[int]:
    """``size`` indices drawn without replacement, each class in proportion to its frequency.

    Per-class quotas use the largest-remainder rule, so they sum to ``size`` exactly; the draw
    is seeded (``random.Random(seed)``).  Returns sorted indices.
    """
    n = len(targets)
    if not 0 <= size <= n:
        raise NetAdaptError(f"cannot reserve {size} of {n} images")
    by_class: dict[int, list[int]] = {}
    for i, t in enumerate(targets):
        by_class.setdefault(int(t), []).append(i)
    labels = sorted(by_class)
    exact = {c: size * len(by_class[c]) / n for c in labels}
    quota = {c: int(exact[c]) for c in labels}
    # Largest remainders first; ties broken by class label so the split is reproducible.
    for c in sorted(labels, key=lambda c: (-(exact[c] - quota[c]), c))[: size - sum(quota.values())]:
        quota[c] += 1
    rng = random.Random(seed)
    chosen: list[int] = []
    for c in labels:
        chosen.extend(rng.sample(by_class[c], quota[c]))
    return sorted(chosen)


def load_digits(size: int = 16, *, test_fraction: float = 0.2, seed: int = 0) -> tuple[TensorSource, TensorSource]:
    """scikit-learn's bundled digits as (train, test) sources of 3-channel ``size``×``size`` images.

    The 8×8 images (values 0–16) are scaled to 0–255, upscaled bilinearly to ``size`` and
    repeated to 3 channels so that the RGB networks of the zoo take them unchanged.  The test
    split is stratified and seeded.  Nothing is downloaded: the data ship with scikit-learn.
    """
    if size < 8:
        raise NetAdaptError(f"digits image size must be at least 8, got {size}")
    if not 0 < test_fraction < 1:
        raise NetAdaptError(f"digits test fraction must be in (0, 1), got {test_fraction}")
    pixels, labels = _read_digits()
    x = torch.as_tensor(pixels, dtype=torch.float32).reshape(-1, 1, 8, 8) * (255.0 / 16.0)  # (N, 1, 8, 8)
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    images = x.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()  # (N, 3, S, S)
    targets = [int(t) for t in labels]
    full = TensorSource("digits", images, targets, [str(c) for c in range(10)])
    test = set(stratified_sample(targets, round(len(targets) * test_fraction), seed))
    train_idx = [i for i in range(len(targets)) if i not in test]
    return full.subset(train_idx, "digits/train"), full.subset(sorted(test), "digits/test")


def _read_digits() -> tuple[np.ndarray, np.ndarray]:
    """(pixels (N, 64), labels (N,)) of scikit-learn's bundled digits.

    The CSV file shipped inside scikit-learn is read directly: importing ``sklearn.datasets``
    costs seconds (it imports most of scikit-learn), the file is the same.  The public API is
    the fallback if the file ever moves.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise NetAdaptError("the digits data set needs scikit-learn (pip install scikit-learn)")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    if path.is_file():
        data = np.loadtxt(path, delimiter=",", dtype=np.float32)
        return data[:, :-1], data[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    return bunch.data, bunch.target


def load_torchvision_cifar(
    root: str | os.PathLike, *, classes: int = 10, download: bool = False
) -> tuple[TensorSource, TensorSource]:
    """CIFAR-10 or CIFAR-100 through torchvision's dataset classes, as (train, test) sources."""
    try:
        from torchvision import datasets
    except ImportError:
        raise NetAdaptError("the cifar*_torchvision data sets need torchvision (pip install torchvision)") from None
    cls = {10: datasets.CIFAR10, 100: datasets.CIFAR100}[classes]
    out = []
    for train in (True, False):
        try:
            ds = cls(str(root), train=train, download=download)
        except RuntimeError as exc:
            hint = "" if download else "; set data.download=true to download it"
            raise NetAdaptError(f"CIFAR-{classes} not found in {root} ({str(exc).splitlines()[0]}){hint}") from None
        images = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()  # (N, 3, 32, 32)
        out.append(TensorSource(f"cifar{classes}/{'train' if train else 'test'}", images, ds.targets, ds.classes))
    return out[0], out[1]
