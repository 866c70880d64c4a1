"""The architecture value and the search space it lives in (paper §2.1, appendix A).

An :class:`Architecture` says, for every searchable layer of a super-network, how many filters
are kept (``0`` = every filter removed, the layer bypassed, paper §2.2) and which kernel size is
used (superkernel choice).  It is frozen, hashable and JSON-serializable, and it is the one value
that flows through super-network forward passes, cost models, the optimizer, extraction and
checkpoints.

A :class:`SearchSpace` lists the searchable layers with their allowed choices: widths (default
nine uniformly spaced values from 0 to the full width, appendix A), odd kernel sizes from 3 to the
layer's full size, the bypass limit ``T`` of channel-level bypass connections, and ties (layers
that must keep the same number of filters) and removal groups (the layers of one block, which
are removed together or not at all: a removed block computes exactly its input).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import torch

from netadapt.errors import NetAdaptError

__all__ = [
    "ARCH_FORMAT",
    "ARCH_VERSION",
    "Architecture",
    "LayerSpec",
    "SearchSpace",
    "kernel_choices",
    "width_choices",
]

ARCH_FORMAT = "netadapt.architecture"
ARCH_VERSION = 1

#: Kinds of searchable layers.  ``conv`` is a regular (or 1x1) convolution, ``depthwise`` a
#: depthwise convolution, ``se`` the hidden width of a squeeze-excitation module (0 = removed).
LAYER_KINDS = ("conv", "depthwise", "se")


def width_choices(full: int, count: int = 9, divisor: int = 1, *, allow_zero: bool = True) -> tuple[int, ...]:
    """``count`` uniformly spaced widths from 0 to ``full``, rounded to multiples of ``divisor``.

    Appendix A: "9 uniformly-spaced layer widths from 0 to the full layer width".  Rounding may
    merge neighbours; duplicates are dropped.  The full width is always kept exactly.  Without
    bypass (``allow_zero=False``) width 0 would disconnect the network and is left out.
    """
    if full < 1:
        raise ValueError(f"full width must be positive, got {full}")
    if count < 2:
        raise ValueError(f"need at least 2 width choices, got {count}")
    if divisor < 1:
        raise ValueError(f"divisor must be positive, got {divisor}")
    values = {full}
    for i in range(count - 1):
        w = round(full * i / (count - 1) / divisor) * divisor
        values.add(min(w, full))
    if not allow_zero:
        values.discard(0)
        if not values:
            values = {full}
    return tuple(sorted(values))


def kernel_choices(full: int) -> tuple[int, ...]:
    """Odd kernel sizes from 3 to ``full`` (appendix A); a 1x1 layer has only ``(1,)``."""
    if full < 3:
        return (full,)
    return tuple(range(3, full + 1, 2)) if full % 2 == 1 else (full,)


@dataclass(frozen=True)
class LayerSpec:
    """One searchable layer of a search space.

    ``bypass`` is the paper's ``T``: how many input channels channel-level bypass may pass
    through; ``None`` means unlimited (∞, used for depthwise layers) and ``0`` means no bypass.
    Layers with the same ``tie`` id must keep the same number of filters.  Layers with the same
    ``block`` id form one removable block: its convolutions keep 0 filters together (the block
    is removed and computes exactly its input) or none of them does; a removed block's
    squeeze-excitation keeps 0 too.  ``None``: not part of a removable block.
    """

    name: str
    kind: str
    max_filters: int
    max_kernel: int
    widths: tuple[int, ...]
    kernels: tuple[int, ...]
    bypass: int | None
    tie: int | None = None
    block: int | None = None

    def to_dict(self) -> dict:
        d = {
            "name": self.name,
            "kind": self.kind,
            "max_filters": self.max_filters,
            "max_kernel": self.max_kernel,
            "widths": list(self.widths),
            "kernels": list(self.kernels),
            "bypass": self.bypass,
            "tie": self.tie,
        }
        if self.block is not None:  # absent otherwise, so that older spaces keep their fingerprint
            d["block"] = self.block
        return d

    @classmethod
    def from_dict(cls, d: dict) -> LayerSpec:
        return cls(
            name=d["name"],
            kind=d["kind"],
            max_filters=int(d["max_filters"]),
            max_kernel=int(d["max_kernel"]),
            widths=tuple(int(w) for w in d["widths"]),
            kernels=tuple(int(k) for k in d["kernels"]),
            bypass=None if d["bypass"] is None else int(d["bypass"]),
            tie=None if d.get("tie") is None else int(d["tie"]),
            block=None if d.get("block") is None else int(d["block"]),
        )


@dataclass(frozen=True)
class Architecture:
    """A sub-network: filters kept and kernel size for every searchable layer, in space order.

    The value is tied to one search space by the space's fingerprint; an architecture from
    another space is rejected wherever it is used.
    """

    model: str
    space: str
    filters: tuple[int, ...]
    kernels: tuple[int, ...]
    version: int = field(default=ARCH_VERSION, compare=False)

    def __post_init__(self) -> None:
        if len(self.filters) != len(self.kernels):
            raise NetAdaptError(f"architecture has {len(self.filters)} filter counts but {len(self.kernels)} kernel sizes")

    def replace(self, *, filters: Sequence[int] | None = None, kernels: Sequence[int] | None = None) -> Architecture:
        """A copy with new filters and/or kernels (the value itself is frozen)."""
        return replace(
            self,
            filters=self.filters if filters is None else tuple(int(f) for f in filters),
            kernels=self.kernels if kernels is None else tuple(int(k) for k in kernels),
        )

    def to_dict(self, space: SearchSpace | None = None, *, build: dict | None = None) -> dict:
        """The JSON mapping; with ``space`` each layer row carries its name, with ``build``
        (``SuperNet.build_config()``) the file says how to rebuild its network, so that it
        describes itself (``netadapt describe --arch FILE``)."""
        names = [layer.name for layer in space.layers] if space is not None else None
        layers = []
        for i, (f, k) in enumerate(zip(self.filters, self.kernels, strict=True)):
            row: dict = {"filters": f, "kernel": k}
            if names is not None:
                row = {"name": names[i], **row}
            layers.append(row)
        out = {
            "format": ARCH_FORMAT,
            "version": self.version,
            "model": self.model,
            "space": self.space,
        }
        if build is not None:
            out["build"] = build
        out["layers"] = layers
        return out

    def to_json(self, space: SearchSpace | None = None, *, indent: int | None = 1, build: dict | None = None) -> str:
        """JSON text; with ``space`` each layer row also carries the layer's name, with ``build``
        the file carries how to rebuild its network (see :meth:`to_dict`)."""
        return json.dumps(self.to_dict(space, build=build), indent=indent)

    @classmethod
    def from_dict(cls, d: object) -> Architecture:
        if not isinstance(d, dict) or d.get("format") != ARCH_FORMAT:
            raise NetAdaptError(f'not a netadapt architecture (expected "format": "{ARCH_FORMAT}")')
        version = d.get("version")
        if version != ARCH_VERSION:
            raise NetAdaptError(f"architecture format version {version!r} is not supported (expected {ARCH_VERSION})")
        try:
            layers = d["layers"]
            filters = tuple(_count(row["filters"], i, "filters") for i, row in enumerate(layers))
            kernels = tuple(_count(row["kernel"], i, "kernel") for i, row in enumerate(layers))
            return cls(model=str(d["model"]), space=str(d["space"]), filters=filters, kernels=kernels)
        except NetAdaptError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise NetAdaptError(f"malformed architecture: missing or invalid field {exc}") from None

    @classmethod
    def from_json(cls, text: str) -> Architecture:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise NetAdaptError(f"architecture is not valid JSON: {exc}") from None
        return cls.from_dict(data)


def _count(value: object, layer: int, key: str) -> int:
    """A filter count or kernel size read from a file: a JSON integer ≥ 0, nothing converted
    (``16.5``, ``"16"`` or ``true`` is an error, not 16 or 1)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise NetAdaptError(f"architecture layer {layer}: {key} must be a whole number, got {value!r}")
    if value < 0:
        raise NetAdaptError(f"architecture layer {layer}: {key} must not be negative, got {value}")
    return value


RandomSource = random.Random | torch.Generator


def _choose(options: Sequence[int], rng: RandomSource) -> int:
    if isinstance(rng, torch.Generator):
        return options[int(torch.randint(len(options), (1,), generator=rng))]
    return options[rng.randrange(len(options))]


@dataclass(frozen=True)
class SearchSpace:
    """The searchable layers of one super-network and their allowed choices."""

    model: str
    layers: tuple[LayerSpec, ...]

    def __post_init__(self) -> None:
        for layer in self.layers:
            if layer.kind not in LAYER_KINDS:
                raise ValueError(f"layer {layer.name}: unknown kind {layer.kind!r}")
            if not layer.widths or not layer.kernels:
                raise ValueError(f"layer {layer.name}: empty choice list")
        for group in self.tie_groups():
            widths = {self.layers[i].widths for i in group}
            if len(widths) != 1:
                raise ValueError(f"tied layers {[self.layers[i].name for i in group]} have different width choices")
            if len({self.layers[i].block for i in group}) != 1:
                raise ValueError(f"tied layers {[self.layers[i].name for i in group]} belong to different removable blocks")
        for group in self.removal_groups():
            for i in group:
                if 0 not in self.layers[i].widths:
                    raise ValueError(f"layer {self.layers[i].name} of a removable block has no width 0")
            if not self._convs(group):
                raise ValueError(f"removable block {[self.layers[i].name for i in group]} has no convolution")

    # -- identity ---------------------------------------------------------------------------
    @cached_property
    def fingerprint(self) -> str:
        """A short hash of the space's definition; architectures carry it."""
        text = json.dumps(self.to_dict(with_fingerprint=False), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[LayerSpec]:
        return iter(self.layers)

    def index(self, name: str) -> int:
        for i, layer in enumerate(self.layers):
            if layer.name == name:
                return i
        raise NetAdaptError(f"search space of {self.model} has no layer named {name!r}")

    def removal_groups(self) -> list[tuple[int, ...]]:
        """Layer indices of every removable block (``LayerSpec.block``), in space order."""
        groups: dict[int, list[int]] = {}
        for i, layer in enumerate(self.layers):
            if layer.block is not None:
                groups.setdefault(layer.block, []).append(i)
        return [tuple(g) for g in groups.values()]

    def _convs(self, group: Sequence[int]) -> tuple[int, ...]:
        """The convolutions of a removable block (its squeeze-excitation may be 0 on its own)."""
        return tuple(i for i in group if self.layers[i].kind != "se")

    def removed_blocks(self, arch: Architecture) -> list[tuple[int, ...]]:
        """The removable blocks that ``arch`` removes (each as its layer indices)."""
        return [g for g in self._removal if all(arch.filters[i] == 0 for i in self._convs(g))]

    def tie_groups(self) -> list[tuple[int, ...]]:
        """Groups of layer indices that must keep equal filters (singletons for untied layers)."""
        groups: dict[object, list[int]] = {}
        for i, layer in enumerate(self.layers):
            key = ("tie", layer.tie) if layer.tie is not None else ("own", i)
            groups.setdefault(key, []).append(i)
        return [tuple(g) for g in groups.values()]

    # -- making architectures ---------------------------------------------------------------
    def _arch(self, filters: Sequence[int], kernels: Sequence[int]) -> Architecture:
        return Architecture(self.model, self.fingerprint, tuple(filters), tuple(kernels))

    def make(self, filters: Sequence[int], kernels: Sequence[int] | None = None) -> Architecture:
        """An architecture of this space (validated); kernels default to the full sizes."""
        if kernels is None:
            kernels = [layer.max_kernel for layer in self.layers]
        arch = self._arch(filters, kernels)
        self.validate(arch)
        return arch

    def full(self) -> Architecture:
        """The initial network: every filter kept, every kernel at its full size."""
        return self._arch([s.max_filters for s in self.layers], [s.max_kernel for s in self.layers])

    def uniform(self, ratio: float) -> Architecture:
        """Every layer shrunk by one width multiplier (the uniform-scaling baseline).

        Each layer keeps the allowed non-zero width nearest to ``ratio × full`` (ties round up),
        so no layer is bypassed; kernels stay at full size.
        """
        if not 0 < ratio <= 1:
            raise NetAdaptError(f"uniform ratio must be in (0, 1], got {ratio}")
        filters = []
        for layer in self.layers:
            options = [w for w in layer.widths if w > 0] or list(layer.widths)
            target = ratio * layer.max_filters
            filters.append(min(options, key=lambda w: (abs(w - target), -w)))
        return self._arch(filters, [s.max_kernel for s in self.layers])

    def smallest(self) -> Architecture:
        """Every layer at its fewest filters and smallest kernel (every removable block removed)."""
        return self._arch([min(s.widths) for s in self.layers], [min(s.kernels) for s in self.layers])

    def sample(self, rng: RandomSource) -> Architecture:
        """A random architecture; ``rng`` is a ``random.Random`` or ``torch.Generator``.

        Every layer (tie group) draws one of its widths uniformly.  A removable block is removed
        with the probability a lone width 0 would have (one in the number of its first
        convolution's widths); otherwise its convolutions draw non-zero widths.
        """
        filters = [0] * len(self.layers)
        for group in self.tie_groups():
            widths = self.layers[group[0]].widths
            if self.layers[group[0]].block is not None and self.layers[group[0]].kind != "se":
                widths = tuple(w for w in widths if w > 0)
            w = _choose(widths, rng)
            for i in group:
                filters[i] = w
        kernels = [_choose(layer.kernels, rng) for layer in self.layers]
        for group in self._removal:
            choices = self.layers[self._convs(group)[0]].widths
            if _choose(range(len(choices)), rng) == 0:
                for i in group:
                    filters[i] = 0
        return self._arch(filters, kernels)

    # -- checking ---------------------------------------------------------------------------
    def validate(self, arch: Architecture) -> Architecture:
        """Return ``arch`` unchanged, or raise :class:`NetAdaptError` naming what is wrong."""
        if not isinstance(arch, Architecture):
            raise NetAdaptError(f"expected an Architecture, got {type(arch).__name__}")
        if arch.space != self.fingerprint:
            if arch.model == self.model:  # same model, built another way: say what differs and how to match it
                raise NetAdaptError(
                    f"architecture belongs to another search space of {self.model} (space {arch.space}; this build's is "
                    f"{self.fingerprint}): the width multiplier or search-space options (model.options, e.g. "
                    "min_width_fraction) differ; build the model as its run did (the run's build.json)"
                )
            raise NetAdaptError(
                f"architecture belongs to another search space ({arch.model}, space {arch.space}); "
                f"this is {self.model}, space {self.fingerprint}"
            )
        if len(arch.filters) != len(self.layers):
            raise NetAdaptError(f"architecture has {len(arch.filters)} layers, the space of {self.model} has {len(self.layers)}")
        allowed = self._allowed
        if not all(f in w and k in ks for (w, ks), f, k in zip(allowed, arch.filters, arch.kernels, strict=True)):
            for layer, f, k in zip(self.layers, arch.filters, arch.kernels, strict=True):
                if f not in layer.widths:
                    raise NetAdaptError(f"layer {layer.name}: {f} filters is not allowed; choose one of {list(layer.widths)}")
                if k not in layer.kernels:
                    raise NetAdaptError(f"layer {layer.name}: kernel {k} is not allowed; choose one of {list(layer.kernels)}")
        for group in self._ties:
            values = {arch.filters[i] for i in group}
            if len(values) > 1:
                names = [self.layers[i].name for i in group]
                raise NetAdaptError(f"tied layers {names} must keep the same number of filters, got {sorted(values)}")
        for group in self._removal:
            convs = self._convs(group)
            zeros = [arch.filters[i] == 0 for i in convs]
            if (any(zeros) and not all(zeros)) or (all(zeros) and any(arch.filters[i] for i in group)):
                names = [self.layers[i].name for i in group]
                kept = [arch.filters[i] for i in group]
                raise NetAdaptError(
                    f"block {names} is removed whole or not at all: it keeps {kept} filters; "
                    "set every one of them to 0, or none of its convolutions"
                )
        return arch

    @cached_property
    def _allowed(self) -> tuple[tuple[frozenset[int], frozenset[int]], ...]:
        return tuple((frozenset(layer.widths), frozenset(layer.kernels)) for layer in self.layers)

    @cached_property
    def _ties(self) -> list[tuple[int, ...]]:
        return [g for g in self.tie_groups() if len(g) > 1]

    @cached_property
    def _removal(self) -> list[tuple[int, ...]]:
        return self.removal_groups()

    # -- serialization ----------------------------------------------------------------------
    def to_dict(self, *, with_fingerprint: bool = True) -> dict:
        d: dict = {"model": self.model, "layers": [layer.to_dict() for layer in self.layers]}
        if with_fingerprint:
            d["fingerprint"] = self.fingerprint
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SearchSpace:
        try:
            space = cls(model=d["model"], layers=tuple(LayerSpec.from_dict(x) for x in d["layers"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise NetAdaptError(f"malformed search space: {exc}") from None
        if "fingerprint" in d and d["fingerprint"] != space.fingerprint:
            raise NetAdaptError("search space fingerprint does not match its layers (edited or corrupt file)")
        return space
