"""The resource-metric interface and the simple metrics.

A metric maps an architecture to a number (paper §2.4: the optimizer needs only the value of
the resource, never its gradient, so latency measured on a phone works as well as MACs).  The
search calls every metric as a plain function, ``metric(arch) -> float``; ``name`` and
``unit`` label it in logs and reports.  :class:`MetricSet` evaluates several at once: the
search constrains the first and records the others.

Other metrics: :class:`~netadapt.resources.lut.LatencyTableMetric` (lookup table),
:class:`~netadapt.resources.latency.MeasuredLatencyMetric` (whole network timed on a backend),
:class:`~netadapt.resources.command.CommandMetric` (the user's own script).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from netadapt.arch.space import Architecture
from netadapt.errors import NetAdaptError
from netadapt.model.supernet import SuperNet
from netadapt.resources.counting import count_macs

__all__ = ["CallableMetric", "MacsMetric", "Metric", "MetricSet", "ParamsMetric", "check_value"]


@runtime_checkable
class Metric(Protocol):
    """Anything that maps an architecture to a float, with a name and a unit."""

    name: str
    unit: str

    def __call__(self, arch: Architecture) -> float: ...


def check_value(value: object, what: str) -> float:
    """``value`` as a finite float, or a one-line error naming ``what`` produced it."""
    if isinstance(value, bool):
        raise NetAdaptError(f"{what} returned {value!r}, not a number")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise NetAdaptError(f"{what} returned {value!r}, not a number") from None
    if not math.isfinite(number):
        raise NetAdaptError(f"{what} returned {number}, not a finite number")
    return number


class MacsMetric:
    """Multiply-accumulates of one image, analytic from the architecture (:func:`count_macs`)."""

    name = "macs"
    unit = "MACs"

    def __init__(self, supernet: SuperNet) -> None:
        self.supernet = supernet

    def __call__(self, arch: Architecture) -> float:
        return float(count_macs(self.supernet, arch))


class ParamsMetric:
    """Parameters (weights, biases, BatchNorm affine), analytic from the architecture."""

    name = "params"
    unit = "params"

    def __init__(self, supernet: SuperNet) -> None:
        self.supernet = supernet

    def __call__(self, arch: Architecture) -> float:
        return float(sum(c.params for c in self.supernet.costs(arch)))


class CallableMetric:
    """A Python function ``fn(arch) -> number`` as a metric, cached by architecture.

    The result must be a finite number; anything else is a :class:`NetAdaptError`.
    """

    def __init__(self, fn: Callable[[Architecture], float], *, name: str = "custom", unit: str = "", cache: bool = True) -> None:
        if not callable(fn):
            raise NetAdaptError(f"metric {name}: {fn!r} is not callable")
        self.fn = fn
        self.name = name
        self.unit = unit
        self._cache: dict[Architecture, float] | None = {} if cache else None

    def __call__(self, arch: Architecture) -> float:
        if self._cache is not None and arch in self._cache:
            return self._cache[arch]
        value = check_value(self.fn(arch), f"metric {self.name}")
        if self._cache is not None:
            self._cache[arch] = value
        return value


class MetricSet:
    """Several metrics evaluated together: the first is constrained, all are recorded.

    Calling the set returns the primary metric's value, so the set itself can be passed to
    the search as its resource function; :meth:`record` returns every value by name.
    """

    def __init__(self, primary: Metric, *others: Metric) -> None:
        metrics = (primary, *others)
        names = [m.name for m in metrics]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise NetAdaptError(f"metric names must be unique in a metric set, {duplicates} repeat")
        self.metrics = metrics

    @property
    def primary(self) -> Metric:
        return self.metrics[0]

    @property
    def name(self) -> str:
        return self.primary.name

    @property
    def unit(self) -> str:
        return self.primary.unit

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.metrics)

    @property
    def units(self) -> dict[str, str]:
        return {m.name: m.unit for m in self.metrics}

    def __call__(self, arch: Architecture) -> float:
        return self.primary(arch)

    def record(self, arch: Architecture) -> dict[str, float]:
        """Every metric's value of ``arch``, by name, primary first."""
        return {m.name: m(arch) for m in self.metrics}

    def __len__(self) -> int:
        return len(self.metrics)
