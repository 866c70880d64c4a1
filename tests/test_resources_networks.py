"""Whole networks timed in interleaved rounds (``resources/networks.py``): order of the windows,
one preparation per pass, chunks, the statistic over all windows, the window length."""

from __future__ import annotations

import random

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from netadapt import NetAdaptError, build_supernet, count_macs
from netadapt.resources.networks import measure_network, measure_networks
from netadapt.resources.timing import Measurer, Timing


@pytest.fixture(scope="module")
def net():
    return build_supernet("mobilenet_v1_cifar", width_mult=0.25, input_size=16, num_classes=10, num_widths=3)


def distinct_archs(net, count: int, seed: int = 0):
    """``count`` sub-networks with different MAC counts, so a fake timer can tell them apart."""
    rng, archs, seen = random.Random(seed), [], set()
    while len(archs) < count:
        arch = net.space.sample(rng)
        if count_macs(net, arch) not in seen:
            seen.add(count_macs(net, arch))
            archs.append(arch)
    return archs


def macs_of(module) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(torch.zeros(1, 3, 16, 16))
    return counter.get_total_flops() // 2


class Recorder:
    """A fake MeasureFn: records every module it is given and returns preset times per network."""

    def __init__(self, net, archs, times: dict[int, list[float]] | None = None) -> None:
        self.index = {count_macs(net, a): i for i, a in enumerate(archs)}
        self.modules: list[torch.nn.Module] = []
        self.order: list[int] = []
        self.times = {i: iter(v) for i, v in (times or {}).items()}

    def __call__(self, module, inputs) -> Timing:
        i = self.index[macs_of(module)]
        self.modules.append(module)
        self.order.append(i)
        return Timing.exact(next(self.times[i]) if i in self.times else 1.0)


def test_rounds_interleave_networks_prepared_once_per_pass(net):
    archs = distinct_archs(net, 3)
    rec = Recorder(net, archs)
    measure_networks(net, archs, rec, statistic="min", passes=2, rounds=2)
    assert rec.order == [0, 1, 2, 0, 1, 2] * 2  # each round visits every network in turn
    m = rec.modules
    assert m[0] is m[3] and m[1] is m[4]  # prepared once per pass, timed in every round
    assert m[6] is not m[0] and m[6] is m[9]  # a new pass prepares afresh


def test_chunks_mix_the_list_and_bound_what_is_prepared(net):
    archs = distinct_archs(net, 5)
    rec = Recorder(net, archs)
    measure_networks(net, archs, rec, statistic="min", passes=1, rounds=2, chunk=2)
    assert rec.order == [0, 3, 0, 3, 1, 4, 1, 4, 2, 2]  # three chunks of every third network


def test_statistic_over_all_windows_and_passes(net):
    archs = distinct_archs(net, 2)
    times = {0: [5.0, 3.0, 4.0, 9.0, 2.0, 8.0], 1: [1.0, 1.0, 7.0, 7.0, 7.0, 1.0]}
    fastest = measure_networks(net, archs, Recorder(net, archs, times), statistic="min", passes=2, rounds=3)
    assert fastest == [2.0, 1.0]
    typical = measure_networks(net, archs, Recorder(net, archs, times), statistic="median", passes=2, rounds=3)
    assert typical == [4.5, 4.0]


class WindowRecorder(Measurer):
    """A real Measurer (PyTorch backend, so nothing is exported) that records each window's
    ``min_time`` instead of timing."""

    def time(self, run) -> Timing:
        run()
        WINDOWS.append(self.min_time)
        return Timing.exact(1.0)


WINDOWS: list[float] = []


def test_measurer_time_is_split_into_windows(net):
    WINDOWS.clear()
    archs = distinct_archs(net, 2)
    got = measure_networks(net, archs, WindowRecorder(backend="torch", min_time=1.2), statistic="min", passes=2, rounds=4)
    assert got == [1.0, 1.0]
    assert len(WINDOWS) == 2 * 4 * 2 and all(w == pytest.approx(0.3) for w in WINDOWS)


def test_real_timing_and_bad_settings(net):
    arch = distinct_archs(net, 1)[0]
    measure = Measurer(backend="torch", threads=1, warmup=1, min_time=0.01)
    (value,) = measure_networks(net, [arch], measure, statistic="min", passes=1, rounds=2)
    assert 0.0 < value <= measure_network(net, arch, measure).median * 10
    for bad in ({"passes": 0}, {"rounds": 0}, {"chunk": 0}):
        with pytest.raises(NetAdaptError, match="at least 1"):
            measure_networks(net, [arch], measure, statistic="min", **bad)
