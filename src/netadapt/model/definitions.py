"""Network definitions as data: rows of block descriptions decoded by one builder.

Tables in papers become lists of rows here (torchvision's and timm's habit).  A definition says
nothing about search choices; :mod:`netadapt.model.builder` turns it into a super-network and its
search space.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "Conv",
    "Decoder",
    "DepthwiseSeparable",
    "Head",
    "MBConv",
    "NetworkDef",
    "make_divisible",
    "round_up_pow2",
]


def make_divisible(value: float, divisor: int = 8) -> int:
    """torchvision's rounding: nearest multiple of ``divisor``, never more than 10% below."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def round_up_pow2(value: int) -> int:
    """Smallest power of two ≥ ``value`` (appendix A: "round up all layer widths to the power of 2")."""
    return 1 << (int(value) - 1).bit_length()


@dataclass(frozen=True)
class Conv:
    """A standard convolution → BN → activation block (stem, last conv, FastDepth's output)."""

    filters: int
    kernel: int = 3
    stride: int = 1
    act: str = "relu"
    searchable: bool = True


@dataclass(frozen=True)
class DepthwiseSeparable:
    """MobileNetV1 pair: depthwise k×k (stride) → pointwise 1x1, each with BN and activation."""

    filters: int
    stride: int = 1
    kernel: int = 3
    act: str = "relu"


@dataclass(frozen=True)
class MBConv:
    """MobileNetV2/V3 inverted residual.  ``se`` is the squeeze width (0 = no SE)."""

    kernel: int
    expand: int
    filters: int
    se: int
    act: str
    stride: int
    force_expand: bool = False  # keep a 1x1 expansion layer even when expand == input width


@dataclass(frozen=True)
class Decoder:
    """FastDepth NNConv5 stage; ``skip`` names the block whose output is added after upsampling."""

    filters: int
    kernel: int = 5
    skip: int | None = None


@dataclass(frozen=True)
class Head:
    """Classifier: pool → optional 1x1 hidden layer (``hidden`` filters, no BN) → dropout → linear."""

    hidden: int = 0
    act: str = "hswish"
    dropout: float = 0.2


Block = Conv | DepthwiseSeparable | MBConv | Decoder


@dataclass(frozen=True)
class NetworkDef:
    """One network: its blocks in order and how its layers are normalized and bypassed.

    ``bypass_base`` sets the paper's per-resolution ``T`` (appendix B): a layer whose output is
    ``2**d`` times smaller than the input image gets ``T = bypass_base * 2**d / 2``.
    """

    name: str
    blocks: tuple[Block, ...]
    head: Head | None
    task: str = "classification"  # or "depth"
    input_size: int = 224
    num_classes: int = 1000
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    bypass_base: int = 8
    num_widths: int = 9
    torchvision: str | None = None  # torchvision model whose weights load into this network
    notes: str = field(default="", compare=False)
