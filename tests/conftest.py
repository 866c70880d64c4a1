"""Shared fixtures.  Tests run on CPU with small inputs; every test asserts."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import torch

from netadapt.model.checks import randomize_norm_


@pytest.fixture(autouse=True)
def _deterministic():
    """Seeded, on one thread (the CI machine has two cores; tests are small), restored after."""
    torch.manual_seed(0)
    random.seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def shared_data_dir() -> Path | None:
    """The shared data folder (holding cifar10-jpg.tar.gz), from NETADAPT_SHARED_DATA."""
    value = os.environ.get("NETADAPT_SHARED_DATA")
    return Path(value) if value and Path(value).is_dir() else None


def pytest_collection_modifyitems(config, items):
    if shared_data_dir() is None:
        skip = pytest.mark.skip(reason="NETADAPT_SHARED_DATA is not set to the shared data folder")
        for item in items:
            if "shared_data" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def randomized():
    """Put a network in eval mode with random BatchNorm statistics, so comparisons are not trivial."""

    def apply(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
        randomize_norm_(net, torch.Generator().manual_seed(seed))
        return net.eval()

    return apply
