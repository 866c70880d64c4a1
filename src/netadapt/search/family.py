"""The family: the best architecture at each budget met along one search (paper appendix A.2's
"architecture trajectory"; one search serves several devices or budgets)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from netadapt.arch.space import Architecture

__all__ = ["FamilyMember", "TrajectoryPoint", "build_family"]


@dataclass(frozen=True)
class TrajectoryPoint:
    """The best sample of one iteration (iteration 0 is the initial network)."""

    iteration: int
    arch: Architecture
    resources: dict[str, float]
    resource: float  # the constrained resource
    score: float  # the sample's score: top-1, or a depth metric such as RMSE (SearchResult.score_name names it)
    reduction: float  # asked of this iteration (0 for iteration 0)
    required: float  # the resource every sample of this iteration had to reach


@dataclass(frozen=True)
class FamilyMember:
    """The architecture chosen for one budget."""

    budgets: tuple[float, ...]  # the budgets it serves; () when the family is every iteration's best
    point: TrajectoryPoint


def build_family(
    trajectory: Sequence[TrajectoryPoint],
    budgets: Sequence[float] = (),
    *,
    higher_is_better: bool = True,
) -> list[FamilyMember]:
    """Pareto-monotone members of a search trajectory, largest resource first.

    The per-iteration bests lie on a decreasing resource path, but their shared-weight score
    need not get worse along it; a point is dropped when a point of lower-or-equal resource
    scores at least as well (it is dominated: that one serves the same budget better; better is
    higher, or lower with ``higher_is_better=False``, e.g. RMSE).  Equal resources keep one
    point, so the members' resources strictly decrease.  With ``budgets``, each budget gets the
    best-scoring surviving point whose resource fits it (budgets nothing fits are left out).
    """
    sign = 1.0 if higher_is_better else -1.0
    front: list[TrajectoryPoint] = []
    best_below = float("-inf")  # best signed score among points of smaller-or-equal resource
    for point in sorted(trajectory, key=lambda p: (p.resource, -sign * p.score, p.iteration)):
        if sign * point.score > best_below:
            front.append(point)
            best_below = sign * point.score
    # front: resource ascending and score strictly improving; drop equal-resource repeats
    unique: list[TrajectoryPoint] = []
    for point in front:
        if unique and unique[-1].resource == point.resource:
            continue  # the first one at this resource scores better
        unique.append(point)
    unique.reverse()  # largest resource first
    if not budgets:
        return [FamilyMember((), p) for p in unique]
    served: dict[int, list[float]] = {}  # index into unique → budgets it serves
    for budget in sorted(set(budgets), reverse=True):
        fitting = [i for i, p in enumerate(unique) if p.resource <= budget]
        if fitting:  # the largest fitting point scores best
            served.setdefault(fitting[0], []).append(budget)
    # several budgets served by one point make one member, so resources stay strictly decreasing
    return [FamilyMember(tuple(served[i]), unique[i]) for i in sorted(served)]
