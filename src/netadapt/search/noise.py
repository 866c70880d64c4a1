"""Are the search's choices signal or noise?  (paper §2.4: samples are compared on held-out images)

Every iteration keeps the best of its samples.  A score measured on ``n`` held-out images has a
standard error: for top-1 accuracy ``p`` it is ``sqrt(p (1 - p) / n)`` (about 1.0 point at 70%
on 2,000 images).  When the best and the second-best sample of an iteration differ by less than
that, the choice between them is decided by which images happen to be held out, not by the
architectures.  :func:`selection_noise` reads a search's ``history.jsonl`` records and reports,
per iteration, the gap between the best and the second-best sample and the score's standard
error, and how many iterations chose by a gap smaller than one standard error.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from netadapt.search.records import record_score

__all__ = ["IterationNoise", "NoiseSummary", "selection_noise", "top1_standard_error"]


def top1_standard_error(accuracy: float, images: int) -> float:
    """Binomial standard error of a top-1 accuracy measured on ``images`` images."""
    if images < 1:
        raise ValueError(f"need at least one image, got {images}")
    p = min(max(accuracy, 0.0), 1.0)
    return math.sqrt(p * (1 - p) / images)


@dataclass(frozen=True)
class IterationNoise:
    """One iteration: the chosen sample's score, the runner-up's, and the score's standard error."""

    iteration: int
    samples: int
    best: float
    second: float | None
    standard_error: float

    @property
    def gap(self) -> float | None:
        return None if self.second is None else abs(self.best - self.second)

    @property
    def within_noise(self) -> bool:
        """The best beat the runner-up by less than one standard error."""
        return self.gap is not None and self.gap < self.standard_error


@dataclass(frozen=True)
class NoiseSummary:
    """Every iteration's :class:`IterationNoise` and the share chosen within noise."""

    iterations: list[IterationNoise]
    images: int

    @property
    def within_noise(self) -> int:
        return sum(i.within_noise for i in self.iterations)

    @property
    def compared(self) -> int:
        return sum(i.second is not None for i in self.iterations)

    def median(self, attribute: str) -> float | None:
        values = sorted(v for v in (getattr(i, attribute) for i in self.iterations) if v is not None)
        return values[len(values) // 2] if values else None

    def to_dict(self) -> dict:
        return {
            "heldout_images": self.images,
            "iterations_compared": self.compared,
            "chosen_within_one_standard_error": self.within_noise,
            "median_gap": self.median("gap"),
            "median_standard_error": self.median("standard_error"),
            "per_iteration": [
                {
                    "iteration": i.iteration,
                    "samples": i.samples,
                    "best": i.best,
                    "second": i.second,
                    "gap": i.gap,
                    "standard_error": i.standard_error,
                }
                for i in self.iterations
            ],
        }

    def describe(self) -> str:
        """One line for logs and reports."""
        if not self.compared:
            return "no iteration compared two samples"
        return (
            f"{self.within_noise} of {self.compared} iterations chose a sample that beat the runner-up by less than "
            f"one standard error of the score (median gap {100 * (self.median('gap') or 0):.2f} points, standard "
            f"error {100 * (self.median('standard_error') or 0):.2f} points on {self.images} held-out images)"
        )


def selection_noise(records: Iterable[dict], images: int, *, higher_is_better: bool = True) -> NoiseSummary:
    """Per-iteration selection noise of top-1 scores from ``history.jsonl`` records (iteration 0,
    the initial network, is skipped).  ``images``: the number of held-out images."""
    by_iteration: dict[int, dict[tuple, float]] = {}
    for r in records:
        score = record_score(r)  # "accuracy" in the history of earlier versions
        if r.get("iteration", 0) > 0 and not r.get("discarded") and score is not None:
            layers = r["arch"]["layers"]
            key = tuple((row["filters"], row["kernel"]) for row in layers)  # two proposals may make one sample
            by_iteration.setdefault(int(r["iteration"]), {})[key] = score
    out = []
    for iteration in sorted(by_iteration):
        scores = sorted(by_iteration[iteration].values(), reverse=higher_is_better)
        best = scores[0]
        out.append(IterationNoise(iteration, len(by_iteration[iteration]), best, scores[1] if len(scores) > 1 else None,
                                  top1_standard_error(best, images)))  # fmt: skip
    return NoiseSummary(out, images)
