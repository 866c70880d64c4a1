"""Making samples: shrinking chosen layers of the previous best until a resource is met.

A *unit* is one tie group of the search space (a single layer when untied): tied layers keep
the same number of filters, so they always move together.  Shrinking a unit by one step means
fewer filters (the next smaller width of ``LayerSpec.widths``, down to 0 where bypass allows
it), a smaller kernel (the next smaller of ``LayerSpec.kernels``, on every layer of the group)
or both (paper §2.4: "shrinking a layer involves removing filters, reducing the kernel size, or
both").  A convolution of a removable block (``SearchSpace.removal_groups``) at its fewest
filters shrinks by removing the whole block; a removed block shrinks no further.  With
``remove_blocks="any"`` (beyond the paper) a chosen unit of a removable block may also be
removed, whole block at once, from any width: a fourth mode, ``"remove"``, drawn beside the
other three, so that a search reaches block removal without passing through the block at its
narrowest widths.

Randomness is derived from strings of (seed, iteration, ...) so a sample can be rebuilt exactly
after a restart, whatever happened before it.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from netadapt.arch.space import Architecture, SearchSpace

__all__ = ["MODES", "REMOVE", "Proposal", "Shrinker", "derive_rng", "describe"]

#: How a chosen unit shrinks in one sample.  A unit whose preferred dimension is exhausted goes
#: on with the other one, so every chosen unit can reach its minimum (fewest filters and
#: smallest kernel) before a sample is given up.
MODES = ("filters", "kernel", "both")
#: The extra mode of ``remove_blocks="any"``: the chosen unit's whole block removed in one step.
REMOVE = "remove"


def derive_rng(seed: int, *keys: object) -> random.Random:
    """A ``random.Random`` determined by ``seed`` and ``keys`` only (string seeding is stable
    across processes and Python runs, unlike ``hash``)."""
    return random.Random(":".join(str(k) for k in (seed, *keys)))


@dataclass(frozen=True)
class Proposal:
    """One sample: the units it shrinks (in the order they are cycled) and how."""

    units: tuple[int, ...]  # indices into Shrinker.units
    modes: tuple[str, ...]


class Shrinker:
    """Shrinking steps of the units of one search space."""

    def __init__(self, space: SearchSpace, *, filters_only: bool = False, remove_blocks: str = "narrowest") -> None:
        if remove_blocks not in ("narrowest", "any"):
            raise ValueError(f"remove_blocks must be 'narrowest' or 'any', got {remove_blocks!r}")
        self.space = space
        self.filters_only = filters_only
        self.remove_any = remove_blocks == "any"
        self.units: list[tuple[int, ...]] = space.tie_groups()
        self._widths = [sorted(layer.widths) for layer in space.layers]
        self._kernels = [sorted(layer.kernels) for layer in space.layers]
        # The removable block of every layer (None outside one), and its convolutions.
        self._block: list[tuple[int, ...] | None] = [None] * len(space.layers)
        for group in space.removal_groups():
            for i in group:
                self._block[i] = group
        self._block_convs = {g: tuple(i for i in g if space.layers[i].kind != "se") for g in space.removal_groups()}

    def unit_name(self, unit: int) -> str:
        return "+".join(self.space.layers[i].name for i in self.units[unit])

    # -- one step ------------------------------------------------------------------------------
    def _smaller(self, options: list[int], value: int) -> int | None:
        smaller = [v for v in options if v < value]
        return smaller[-1] if smaller else None

    def _removed(self, arch: Architecture, i: int) -> bool:
        block = self._block[i]
        return block is not None and all(arch.filters[j] == 0 for j in self._block_convs[block])

    def _fewer_filters(self, arch: Architecture, i: int) -> int | None:
        """Layer ``i``'s next smaller width (0 = remove its block), or ``None``."""
        block = self._block[i]
        if block is None or self.space.layers[i].kind == "se":
            return self._smaller(self._widths[i], arch.filters[i])
        if self._removed(arch, i):
            return None
        smaller = self._smaller([w for w in self._widths[i] if w > 0], arch.filters[i])
        return 0 if smaller is None else smaller

    def can_shrink_filters(self, arch: Architecture, unit: int) -> bool:
        return self._fewer_filters(arch, self.units[unit][0]) is not None

    def can_shrink_kernel(self, arch: Architecture, unit: int) -> bool:
        if self.filters_only:
            return False
        return any(
            not self._removed(arch, i) and self._smaller(self._kernels[i], arch.kernels[i]) is not None for i in self.units[unit]
        )

    def can_remove(self, arch: Architecture, unit: int) -> bool:
        """Whether ``remove_blocks="any"`` lets this unit remove its block now (a convolution of
        a removable block still present)."""
        i = self.units[unit][0]
        return self.remove_any and self._block[i] is not None and self.space.layers[i].kind != "se" and not self._removed(arch, i)

    def feasible_modes(self, arch: Architecture, unit: int) -> tuple[str, ...]:
        f, k = self.can_shrink_filters(arch, unit), self.can_shrink_kernel(arch, unit)
        modes = MODES if f and k else ("filters",) if f else ("kernel",) if k else ()
        return (*modes, REMOVE) if self.can_remove(arch, unit) else modes

    def shrinkable(self, arch: Architecture) -> list[int]:
        """Units of ``arch`` that can still shrink, in space order."""
        return [u for u in range(len(self.units)) if self.feasible_modes(arch, u)]

    def step(self, arch: Architecture, unit: int, mode: str) -> Architecture | None:
        """``arch`` with ``unit`` shrunk one step in ``mode`` (or its other dimension once the
        preferred one is exhausted); ``None`` when the unit is at its minimum."""
        if mode == REMOVE and self.can_remove(arch, unit):
            filters = list(arch.filters)
            for i in self._block[self.units[unit][0]]:
                filters[i] = 0
            return arch.replace(filters=filters)
        shrink_f = self.can_shrink_filters(arch, unit) and mode in ("filters", "both")
        shrink_k = self.can_shrink_kernel(arch, unit) and mode in ("kernel", "both")
        if not (shrink_f or shrink_k):  # the preferred dimension is exhausted: use the other
            shrink_f = self.can_shrink_filters(arch, unit)
            shrink_k = not shrink_f and self.can_shrink_kernel(arch, unit)
        if not (shrink_f or shrink_k):
            return None
        filters, kernels = list(arch.filters), list(arch.kernels)
        fewer = self._fewer_filters(arch, self.units[unit][0]) if shrink_f else None
        for i in self.units[unit]:
            if shrink_f:
                filters[i] = fewer
            if shrink_k:
                kernels[i] = self._smaller(self._kernels[i], kernels[i]) or kernels[i]
        block = self._block[self.units[unit][0]]
        if fewer == 0 and block is not None and self.space.layers[self.units[unit][0]].kind != "se":
            for i in block:  # the block goes whole
                filters[i] = 0
        return arch.replace(filters=filters, kernels=kernels)

    def minimum(self, arch: Architecture) -> Architecture:
        """Every unit shrunk as far as it goes (the smallest architecture reachable)."""
        filters = [w[0] for w in self._widths]
        kernels = list(arch.kernels) if self.filters_only else [k[0] for k in self._kernels]
        return arch.replace(filters=filters, kernels=kernels)

    # -- one sample ----------------------------------------------------------------------------
    def shrink_until(
        self,
        arch: Architecture,
        proposal: Proposal,
        required: float,
        resource: Callable[[Architecture], float],
    ) -> tuple[Architecture, bool]:
        """Shrink the proposal's units of ``arch`` in turn, one step each, until
        ``resource(sample) <= required``.  Returns the sample and whether it met the resource;
        a sample whose units all reached their minimum first is returned with ``False``."""
        active = list(zip(proposal.units, proposal.modes, strict=True))
        turn = 0
        while resource(arch) > required:
            if not active:
                return arch, False
            unit, mode = active[turn % len(active)]
            smaller = self.step(arch, unit, mode)
            if smaller is None:  # this unit is done; the others go on in the same order
                active.pop(turn % len(active))
                continue
            arch = smaller
            turn += 1
        return arch, True

    # -- proposals -----------------------------------------------------------------------------
    def _mode(self, arch: Architecture, unit: int, seed: int, iteration: int, occurrence: int) -> str:
        # Keyed by (unit, occurrence) rather than by sample index so that a sample's modes do
        # not depend on the order in which samples are listed: SCD and MCD with L = 1 and one
        # sample per unit then propose exactly the same samples.
        return derive_rng(seed, iteration, "mode", unit, occurrence).choice(self.feasible_modes(arch, unit))

    def propose_mcd(self, arch: Architecture, seed: int, iteration: int, samples: int | None, layers: int) -> list[Proposal]:
        """J proposals of L distinct units each (multi-layer coordinate descent, §2.4).

        Units are dealt from successive random permutations of the shrinkable units, so within
        an iteration every unit is shrunk in nearly the same number of samples (J·L/U): fewer
        wasted samples than independent draws while each sample is still a random L-subset.
        """
        candidates = self.shrinkable(arch)
        if not candidates:
            return []
        count = len(candidates) if samples is None else samples
        per_sample = min(layers, len(candidates))
        rng = derive_rng(seed, iteration, "layers")
        stream: deque[int] = deque()
        seen: dict[int, int] = {}
        proposals = []
        for _ in range(count):
            chosen: list[int] = []
            deferred: list[int] = []
            while len(chosen) < per_sample:
                if not stream:
                    order = list(candidates)
                    rng.shuffle(order)
                    stream.extend(order)
                unit = stream.popleft()
                (deferred if unit in chosen else chosen).append(unit)
            stream.extendleft(reversed(deferred))  # dealt first to the next sample
            modes = []
            for unit in chosen:
                occurrence = seen.get(unit, 0)
                seen[unit] = occurrence + 1
                modes.append(self._mode(arch, unit, seed, iteration, occurrence))
            proposals.append(Proposal(tuple(chosen), tuple(modes)))
        return proposals

    def propose_scd(self, arch: Architecture, seed: int, iteration: int) -> list[Proposal]:
        """One proposal per shrinkable unit, in space order (single-layer coordinate descent,
        NetAdaptV1 / §2.4: "the k-th sample is generated by shrinking the k-th layer")."""
        return [Proposal((u,), (self._mode(arch, u, seed, iteration, 0),)) for u in self.shrinkable(arch)]


def describe(shrinker: Shrinker, proposal: Proposal) -> list[dict]:
    """The proposal as JSON-ready rows (unit names and modes) for the history."""
    return [{"layers": shrinker.unit_name(u), "mode": m} for u, m in zip(proposal.units, proposal.modes, strict=True)]
