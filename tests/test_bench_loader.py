"""benchmarks/bench_loader.py: the warm-up leaves the workers' prepared batches out of the timed
window, and a toy run (generated JPEGs, no workers) reports both pipelines and their ratio."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_loader", ROOT / "benchmarks" / "bench_loader.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Prefetching:
    """A loader whose workers hold `num_workers × prefetch_factor` batches ready when it starts."""

    num_workers, prefetch_factor = 2, 3

    def __init__(self) -> None:
        self.taken = 0

    def __iter__(self):
        while True:
            self.taken += 1
            yield (torch.zeros(8, 3, 4, 4),)


def test_the_prepared_batches_are_not_timed():
    loader = Prefetching()
    assert _bench().images_per_s(loader, 5) > 0
    assert loader.taken == 2 * 3 + 5


def test_a_toy_run_compares_both_pipelines():
    pytest.importorskip("torchvision")
    args = ["--case", "cifar", "--generate", "64", "--batch", "8", "--batches", "2", "--workers", "0", "--rounds", "1"]
    result = _bench().main(args)
    assert result["netadapt_images_per_s"] > 0 and result["torchvision_images_per_s"] > 0
    assert result["ratio"] == pytest.approx(result["netadapt_images_per_s"] / result["torchvision_images_per_s"], rel=0.01)
