"""Selection noise of a search: the gap between the best and second-best sample against the
standard error of the score (issue 14, signal against noise)."""

from __future__ import annotations

import math

import pytest

from netadapt.search.noise import selection_noise, top1_standard_error
from tests.old_records import as_before_the_rename


def _record(iteration: int, sample: int, score: float, *, discarded: bool = False) -> dict:
    return {"iteration": iteration, "sample": sample, "score": None if discarded else score, "discarded": discarded,
            "arch": {"layers": [{"filters": sample, "kernel": 3}]}}  # fmt: skip


def test_standard_error_is_binomial() -> None:
    assert top1_standard_error(0.7, 2000) == pytest.approx(math.sqrt(0.21 / 2000))
    assert top1_standard_error(0.7, 2000) == pytest.approx(0.01025, abs=1e-5)  # ~1 point at 70% on 2,000 images
    with pytest.raises(ValueError):
        top1_standard_error(0.5, 0)


def test_iterations_within_noise_are_counted() -> None:
    records = [_record(0, 0, 0.8)]  # the initial network is not a choice
    records += [_record(1, 0, 0.70), _record(1, 1, 0.695), _record(1, 2, 0.5, discarded=True)]  # gap 0.5 pt < SE
    records += [_record(2, 0, 0.60), _record(2, 1, 0.68)]  # gap 8 points: signal
    records += [_record(3, 0, 0.66)]  # one sample: nothing compared
    summary = selection_noise(records, 2000)
    assert [i.iteration for i in summary.iterations] == [1, 2, 3]
    first, second, third = summary.iterations
    assert first.best == 0.70 and first.gap == pytest.approx(0.005) and first.within_noise
    assert second.best == 0.68 and not second.within_noise
    assert third.second is None and not third.within_noise
    assert (summary.compared, summary.within_noise) == (2, 1)
    assert "1 of 2 iterations" in summary.describe()
    data = summary.to_dict()
    assert data["chosen_within_one_standard_error"] == 1 and data["heldout_images"] == 2000
    # the history of earlier versions (the score under "accuracy") reads alike
    assert selection_noise(as_before_the_rename(records), 2000).to_dict() == data
    # an error score (lower is better) ranks the other way
    assert selection_noise(records, 2000, higher_is_better=False).iterations[1].best == 0.60
