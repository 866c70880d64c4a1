"""The baseline users would otherwise take: the initial network shrunk uniformly to a budget.

Comparing a discovered network with a uniformly scaled one is only fair at the same resource
(MACs, latency, …).  The width grid of a search space (nine widths per layer) makes the plain
width multiplier jump between resource levels, so :func:`uniform_matching` picks the multiplier
*and* the rounding of each layer: every layer keeps a width next to ``multiplier × full`` on its
grid (the one below or the one above), and the roundings are chosen so that the network's
resource lands within a tolerance of the budget.

Where no uniformly scaled network lands that close -- a resource that does not fall with the
width, such as latency on kernels that are slow for some channel counts (docs/resources.md) --
:func:`uniform_neighbours` gives the uniform networks just below and just above the budget, to be
trained both and interpolated (and said so).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from netadapt.arch.space import Architecture, SearchSpace
from netadapt.errors import NetAdaptError

__all__ = ["UniformMatch", "uniform_matching", "uniform_neighbours"]


@dataclass(frozen=True)
class UniformMatch:
    """A uniformly scaled architecture and how close its resource is to the budget."""

    arch: Architecture
    multiplier: float
    resource: float
    budget: float

    @property
    def error(self) -> float:
        """Relative resource error, ``resource / budget - 1``."""
        return self.resource / self.budget - 1.0


def _rounded(space: SearchSpace, multiplier: float, up: frozenset[int]) -> Architecture:
    """Every layer (tie group) at the non-zero grid width just below ``multiplier × full``, or
    just above it for the groups in ``up``; kernels at full size."""
    filters = [0] * len(space.layers)
    for g, group in enumerate(space.tie_groups()):
        layer = space.layers[group[0]]
        options = sorted(w for w in layer.widths if w > 0) or list(layer.widths)
        goal = multiplier * layer.max_filters
        below = [w for w in options if w <= goal + 1e-9]
        above = [w for w in options if w >= goal - 1e-9]
        low = below[-1] if below else options[0]
        high = above[0] if above else options[-1]
        for i in group:
            filters[i] = high if g in up else low
    return space.make(filters)


def uniform_matching(
    space: SearchSpace,
    resource: Callable[[Architecture], float],
    budget: float,
    *,
    tolerance: float = 0.02,
    steps: int = 20,
) -> UniformMatch:
    """The uniformly scaled architecture whose resource is closest to ``budget``.

    Bisection finds the largest multiplier whose rounded-down network (every layer at its grid
    width just below ``multiplier × full``) fits the budget; layers are then raised to the width
    just above, those whose rounding lost the most first, as long as the resource stays within
    ``budget × (1 + tolerance)``, and the closest network seen wins.  About ``steps`` + layers
    resource evaluations, so measured latency is affordable.  Raises when no such network lies
    within the tolerance.
    """
    if budget <= 0 or not math.isfinite(budget):
        raise NetAdaptError(f"the budget of a uniform baseline must be a positive number, got {budget}")
    groups = space.tie_groups()
    low, high = 0.0, 1.0
    if resource(_rounded(space, high, frozenset())) <= budget:
        low = high
    else:
        for _ in range(steps):
            mid = (low + high) / 2
            low, high = (mid, high) if resource(_rounded(space, mid, frozenset())) <= budget else (low, mid)
    candidates = [UniformMatch(_rounded(space, high, frozenset()), high, resource(_rounded(space, high, frozenset())), budget)]
    if low > 0:
        arch = _rounded(space, low, frozenset())
        value = resource(arch)
        candidates.append(UniformMatch(arch, low, value, budget))
        gap = [low - arch.filters[group[0]] / space.layers[group[0]].max_filters for group in groups]
        up: set[int] = set()
        for g in sorted(range(len(groups)), key=lambda g: -gap[g]):  # the layers rounding lost most first
            trial = _rounded(space, low, frozenset(up | {g}))
            if trial == arch:
                continue
            v = resource(trial)
            if v > budget * (1 + tolerance):
                continue  # this layer overshoots; a smaller one may still fit
            up.add(g)
            arch, value = trial, v
            candidates.append(UniformMatch(arch, low, value, budget))
            if value >= budget:
                break
    best = min(candidates, key=lambda m: abs(m.error))
    if abs(best.error) > tolerance:
        raise NetAdaptError(
            f"no uniformly scaled network lies within {100 * tolerance:g}% of the budget {budget:g} "
            f"(the closest uses {best.resource:g}, {100 * best.error:+.1f}%)"
        )
    return best


def uniform_neighbours(
    space: SearchSpace, resource: Callable[[Architecture], float], budget: float, *, steps: int = 64
) -> tuple[UniformMatch, UniformMatch]:
    """The uniformly scaled networks (every layer at its grid width just below ``multiplier ×
    full``, multipliers ``1/steps … 1``) whose resources lie closest below and closest above
    ``budget``: (below, above).  No monotonicity assumed; each distinct network is evaluated
    once.  Raises when the budget lies outside the range they cover."""
    if budget <= 0 or not math.isfinite(budget):
        raise NetAdaptError(f"the budget of a uniform baseline must be a positive number, got {budget}")
    seen: dict[Architecture, UniformMatch] = {}
    for k in range(1, steps + 1):
        arch = _rounded(space, k / steps, frozenset())
        if arch not in seen:
            seen[arch] = UniformMatch(arch, k / steps, resource(arch), budget)
    below = [m for m in seen.values() if m.resource <= budget]
    above = [m for m in seen.values() if m.resource > budget]
    if not below or not above:
        values = sorted(m.resource for m in seen.values())
        raise NetAdaptError(f"the budget {budget:g} lies outside the uniform networks' range {values[0]:g}-{values[-1]:g}")
    return max(below, key=lambda m: m.resource), min(above, key=lambda m: m.resource)
