"""Measured latency: the whole extracted network timed on a backend, cached by architecture.

The most faithful latency metric and the slowest: every new architecture is extracted,
(for ONNX Runtime) exported, and timed for ``min_time`` seconds.  Use it on the device the
network will run on, or use it to check a lookup table (:mod:`netadapt.resources.lut_build`).
"""

from __future__ import annotations

import os

from netadapt.arch.space import Architecture
from netadapt.model.supernet import SuperNet
from netadapt.resources.cache import MetricCache
from netadapt.resources.networks import measure_network
from netadapt.resources.timing import Measurer, check_statistic, environment

__all__ = ["MeasuredLatencyMetric"]


class MeasuredLatencyMetric:
    """Median latency (ms) of the whole compact network of an architecture, batch 1.

    ``backend`` is ``"onnxruntime"`` or ``"torch"`` (CPU) or ``"cuda"``; ``threads`` is fixed
    for every measurement; ``statistic="min"`` reports the fastest block instead of the median
    (steady on a shared machine, see :mod:`netadapt.resources.timing`).  ``cache`` is an optional JSON file that keeps the values.
    """

    unit = "ms"

    def __init__(
        self,
        supernet: SuperNet,
        backend: str = "onnxruntime",
        threads: int = 1,
        *,
        warmup: int = 5,
        min_time: float = 0.2,
        statistic: str = "median",
        cache: str | os.PathLike | None = None,
        name: str = "measured_latency",
    ) -> None:
        self.supernet = supernet
        self.measurer = Measurer(backend=backend, threads=threads, warmup=warmup, min_time=min_time)
        self.statistic = check_statistic(statistic)
        self.name = name
        device = environment(backend, threads)["device"]  # a cache from another machine is another metric
        self.cache = MetricCache(cache, metric=f"measured[{backend}, threads={threads}, {statistic}, {device}]: {supernet.name}")

    def __call__(self, arch: Architecture) -> float:
        self.supernet.space.validate(arch)
        value = self.cache.get(arch)
        if value is None:
            value = measure_network(self.supernet, arch, self.measurer).value(self.statistic)
            self.cache.put(arch, value)
        return value

    def __repr__(self) -> str:
        return f"MeasuredLatencyMetric({self.measurer.backend}, threads={self.measurer.threads})"
