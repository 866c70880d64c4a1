"""The optimizer's settings (paper §2.4, §4.1.1) as one typed, validated dataclass."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from netadapt.config import check_fields
from netadapt.errors import NetAdaptError

__all__ = ["SearchConfig"]


@dataclass(frozen=True)
class SearchConfig:
    """Settings of the coordinate descent search.

    The target is either a fraction of the initial network's resource
    (``target_mode="fraction"``, ``target`` in (0, 1]) or a value in the resource's own unit
    (``target_mode="absolute"``, e.g. 150e6 MACs or 30 ms); nothing is guessed from the size of
    the number.  The per-iteration reduction of iteration ``i`` (1-based) is
    ``initial_reduction × R0 × decay**(i - 1)`` where ``R0`` is the initial network's resource:
    the paper reduces "the latency by 3% in the first iteration" and decays "the resource
    reduction by 0.98 every iteration" (§4.1.1), i.e. an amount fixed in the resource's unit
    that shrinks geometrically, as NetAdaptV1's resource reduction schedule.
    """

    # "scd" makes one sample per layer (tie group) and ignores ``samples`` and ``layers``.
    optimizer: Literal["mcd", "scd"] = "mcd"
    # J: samples per iteration.  200 in §4.1.1; None = one sample per layer (or tie group)
    # that can still shrink, as in appendix D.2 where J = 27 = the number of layers.
    samples: int | None = 200
    # L: layers (tie groups) shrunk per sample; 10 for latency, 15 for MACs (§4.1.1).
    layers: int = 10
    initial_reduction: float = 0.03  # 3% of the initial resource in the first iteration (§4.1.1)
    decay: float = 0.98  # per-iteration decay of the reduction (§4.1.1)
    target: float = 0.5  # the resource to reach: a fraction of the initial network's, or absolute (target_mode)
    target_mode: Literal["fraction", "absolute"] = "fraction"  # absolute: target in the resource's unit (MACs, ms)
    # "accuracy": the sample with the best held-out score (§2.4; the paper's name for the rule,
    # whatever the score: the lowest RMSE for depth); "ratio": NetAdaptV1's smallest score loss
    # per unit of resource drop.
    selection: Literal["accuracy", "ratio"] = "accuracy"
    # What shrinking a layer may change: "any" = fewer filters, a smaller kernel or both, drawn
    # per layer and sample (§2.4); "filters" = filters only (NetAdaptV1).
    shrink: Literal["any", "filters"] = "any"
    # When a removable block (model.options.removal: block) may go: "narrowest" = once a chosen
    # layer of it is at its fewest filters (the next step removes the block); "any" = from any
    # width, a fourth way of shrinking a chosen layer drawn beside the other three (beyond the
    # paper; docs/search.md).
    remove_blocks: Literal["narrowest", "any"] = "narrowest"
    # The last iteration asks for max(previous - reduction, target) so the search stops at the
    # target instead of overshooting it by up to one reduction.
    clip_to_target: bool = True
    higher_is_better: bool = True  # False for error metrics such as depth RMSE (§4.2)
    constrained: str | None = None  # which key of a dict-valued resource the target constrains
    # Budgets of the family (same unit as the target); empty = every iteration's best.
    budgets: tuple[float, ...] = ()
    eval_chunk: int = 0  # archs per evaluate_fn call (0 = the whole iteration); smaller = finer resume
    max_iterations: int = 100_000  # a guard against a schedule that can never reach the target

    def validate(self) -> None:
        """Raise :class:`NetAdaptError` naming the first bad setting."""
        if self.samples is not None and self.samples < 1:
            raise NetAdaptError(f"samples per iteration must be at least 1, got {self.samples}")
        if self.layers < 1:
            raise NetAdaptError(f"layers per sample must be at least 1, got {self.layers}")
        if not (0 < self.initial_reduction < 1) or not math.isfinite(self.initial_reduction):
            raise NetAdaptError(f"initial reduction must be a fraction in (0, 1), got {self.initial_reduction}")
        if not (0 < self.decay <= 1):
            raise NetAdaptError(f"reduction decay must be in (0, 1], got {self.decay}")
        if not math.isfinite(self.target) or self.target <= 0:
            raise NetAdaptError(f"target must be a positive number, got {self.target}")
        if self.target_mode == "fraction" and self.target > 1:
            raise NetAdaptError(
                f"a fractional target must be in (0, 1], got {self.target}; use target_mode='absolute' "
                "(--absolute on the command line) for a value in the resource's unit"
            )
        if self.target_mode not in ("fraction", "absolute"):
            raise NetAdaptError(f"target_mode must be 'fraction' or 'absolute', got {self.target_mode!r}")
        for budget in self.budgets:
            if not math.isfinite(budget) or budget <= 0 or (self.target_mode == "fraction" and budget > 1):
                raise NetAdaptError(f"family budget {budget} is not a valid {self.target_mode} value")
        if self.eval_chunk < 0:
            raise NetAdaptError(f"eval_chunk must be 0 (whole iteration) or positive, got {self.eval_chunk}")
        if self.max_iterations < 1:
            raise NetAdaptError(f"max_iterations must be positive, got {self.max_iterations}")
        if self.optimizer not in ("mcd", "scd"):
            raise NetAdaptError(f"optimizer must be 'mcd' or 'scd', got {self.optimizer!r}")
        if self.selection not in ("accuracy", "ratio"):
            raise NetAdaptError(f"selection must be 'accuracy' or 'ratio', got {self.selection!r}")
        if self.shrink not in ("any", "filters"):
            raise NetAdaptError(f"shrink must be 'any' or 'filters', got {self.shrink!r}")
        if self.remove_blocks not in ("narrowest", "any"):
            raise NetAdaptError(f"remove_blocks must be 'narrowest' or 'any', got {self.remove_blocks!r}")

    def __post_init__(self) -> None:
        check_fields(self)  # a config built in Python skips the file's type checks
        object.__setattr__(self, "budgets", tuple(float(b) for b in self.budgets))
        self.validate()

    def resolve(self, value: float, initial: float) -> float:
        """A target or budget in the resource's unit."""
        return value * initial if self.target_mode == "fraction" else value

    def reduction(self, iteration: int, initial: float) -> float:
        """The resource reduction asked of iteration ``iteration`` (1-based)."""
        return self.initial_reduction * initial * self.decay ** (iteration - 1)

    def expected_iterations(self, initial: float, target: float) -> int | None:
        """Iterations the reduction schedule alone needs to bring ``initial`` down to ``target``
        (both in the resource's unit): the smallest n with Σ_{i≤n} reduction(i) ≥ initial −
        target, capped at ``max_iterations``; ``None`` when the decaying reductions never add up
        to that.  A search may need fewer (a sample can shrink past what was asked of it)."""
        gap = initial - target
        if gap <= 0:
            return 0
        first = self.initial_reduction * initial
        if self.decay == 1:
            return min(self.max_iterations, math.ceil(gap / first - 1e-9))
        # Σ_{i≤n} first·d^(i−1) = first·(1 − d^n)/(1 − d) ≥ gap  ⇔  d^n ≤ 1 − gap·(1 − d)/first
        rest = 1 - gap * (1 - self.decay) / first
        if rest <= 0:
            return None
        return min(self.max_iterations, max(1, math.ceil(math.log(rest) / math.log(self.decay) - 1e-9)))
