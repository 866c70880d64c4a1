"""Timing whole networks: one at a time, or many interleaved in rounds.

A lookup table's calibration and its check (:mod:`netadapt.resources.lut_build`) compare the
table with whole networks measured on the backend.  On a shared machine a whole network's speed
wanders: measured on this project's 2-vCPU VM, one 0.5 s minimum of a ``mobilenet_v3_large``
sub-network was on average 6.5% (up to 23%) above its best of six such measurements minutes
apart, and slow spells lasted minutes.  A minimum over one contiguous stretch of runs therefore
records the machine's state at that moment (``docs/resources.md``).

:func:`measure_networks` keeps a chunk of networks ready (extracted and, for ONNX Runtime,
exported with a session open) and times them in turn, ``rounds`` short windows each, so that
every network's minimum (or median) is taken over windows spread across the whole
measurement; ``passes`` repeats this with fresh sessions.  Preparing a network once per pass
instead of once per window also saves the export (~0.4 s per 224×224 network).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import replace

import torch
from tqdm import tqdm

from netadapt.arch.space import Architecture
from netadapt.errors import NetAdaptError
from netadapt.model.supernet import SuperNet
from netadapt.resources.timing import MeasureFn, Measurer, Timing, make_runner

__all__ = ["NETWORK_CHUNK", "NETWORK_MIN_TIME", "NETWORK_ROUNDS", "measure_network", "measure_networks"]

#: Seconds of timed runs per whole network and pass (latency-table calibration, ``lut check``):
#: a few-millisecond network needs hundreds of runs for a steady minimum.
NETWORK_MIN_TIME = 1.2
#: Windows per network and pass (of ``NETWORK_MIN_TIME / NETWORK_ROUNDS`` = 0.1 s), interleaved
#: with the other networks.
NETWORK_ROUNDS = 12
#: Networks kept ready at once.  Windows interleave only within a chunk, and chunks measured
#: minutes apart see the machine in different states (measured here: chunk means 4.5% apart), so
#: the default keeps a 100-network check and its calibration in one chunk; a 224×224
#: ``mobilenet_v3_large`` sub-network held open in ONNX Runtime takes ~30 MB (140: 4.2 GB).
NETWORK_CHUNK = 200


def _network_input(supernet: SuperNet) -> torch.Tensor:
    size = supernet.input_size
    return torch.randn(1, supernet.in_channels, size, size, generator=torch.Generator().manual_seed(0))


def measure_network(supernet: SuperNet, arch: Architecture, measure: MeasureFn) -> Timing:
    """Timing of ``arch``'s whole compact network, batch 1, in one stretch of runs."""
    return measure(supernet.extract(arch).eval(), (_network_input(supernet),))


def _prepare(supernet: SuperNet, arch: Architecture, measure: MeasureFn) -> Callable[[], Timing]:
    """A function that times ``arch``'s network once more on each call; the network is extracted
    (and, for a :class:`Measurer`, its runner built: the ONNX export and session) only here."""
    module, inputs = supernet.extract(arch).eval(), (_network_input(supernet),)
    if isinstance(measure, Measurer):
        run = make_runner(module, inputs, backend=measure.backend, threads=measure.threads)
        return lambda: measure.time(run)
    return lambda: measure(module, inputs)


def _time_chunk(
    supernet: SuperNet, archs: list[Architecture], measure: MeasureFn, rounds: int, statistic: str, bar: tqdm
) -> list[list[float]]:
    """``rounds`` rounds over the networks of one chunk: every network timed once per round."""
    timers = [_prepare(supernet, arch, measure) for arch in archs]
    seen: list[list[float]] = [[] for _ in archs]
    for _ in range(rounds):
        for timer, values in zip(timers, seen, strict=True):
            values.append(timer().value(statistic))
            bar.update()
    return seen


def measure_networks(
    supernet: SuperNet,
    archs: list[Architecture],
    measure: MeasureFn,
    *,
    statistic: str,
    passes: int = 1,
    rounds: int = NETWORK_ROUNDS,
    chunk: int = NETWORK_CHUNK,
    desc: str = "networks",
    progress: bool = False,
) -> list[float]:
    """Whole-network latency (ms) of each architecture, timed in interleaved rounds.

    Each pass splits the networks into chunks of at most ``chunk`` (every k-th network, so a
    chunk mixes the whole list), prepares a chunk's networks once and times them in turn,
    ``rounds`` times over; a :class:`Measurer`'s ``min_time`` is the time per network and
    pass, split evenly over the rounds.  Each network keeps the minimum (statistic ``"min"``)
    or the median of all its windows over all passes.  Any other :data:`MeasureFn` is called
    once per window with the prepared network.
    """
    if passes < 1 or rounds < 1 or chunk < 1:
        raise NetAdaptError(f"passes, rounds and chunk must be at least 1, got {passes}, {rounds} and {chunk}")
    window = replace(measure, min_time=measure.min_time / rounds) if isinstance(measure, Measurer) else measure
    groups = max(1, math.ceil(len(archs) / chunk))
    values: list[list[float]] = [[] for _ in archs]
    with tqdm(total=len(archs) * passes * rounds, desc=desc, unit="run", disable=not progress, dynamic_ncols=True) as bar:
        for _ in range(passes):
            for g in range(groups):
                members = list(range(g, len(archs), groups))
                seen = _time_chunk(supernet, [archs[i] for i in members], window, rounds, statistic, bar)
                for i, got in zip(members, seen, strict=True):
                    values[i].extend(got)
    combine = min if statistic == "min" else statistics.median
    return [combine(v) for v in values]
