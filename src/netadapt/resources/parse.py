"""Metrics from the command line: ``macs``, ``params``, ``latency:LUT.json``,
``measured:BACKEND[:THREADS]``, ``command:'CMD {model}'``."""

from __future__ import annotations

import os

from netadapt.errors import NetAdaptError
from netadapt.model.supernet import SuperNet
from netadapt.resources.command import CommandMetric
from netadapt.resources.latency import MeasuredLatencyMetric
from netadapt.resources.lut import LatencyTableMetric
from netadapt.resources.metrics import MacsMetric, Metric, ParamsMetric
from netadapt.resources.timing import BACKENDS

__all__ = ["METRIC_HELP", "parse_metric"]

METRIC_HELP = (
    "macs | params | latency:TABLE.json | measured:onnxruntime|torch|cuda[:THREADS] | "
    "command:'CMD {model}' (CMD prints the value alone, or {\"value\": N}, on its last line; "
    "{arch} gives the architecture JSON)"
)


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def parse_metric(
    spec: str,
    supernet: SuperNet,
    *,
    export_format: str = "onnx",
    timeout: float = 600.0,
    retries: int = 2,
    cache: str | os.PathLike | None = None,
) -> Metric:
    """The metric named by ``spec`` for ``supernet`` (see :data:`METRIC_HELP`).

    ``export_format``, ``timeout`` and ``retries`` apply to ``command:`` metrics; ``cache`` is
    the JSON cache file of ``command:`` and ``measured:`` metrics.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise NetAdaptError(f"empty metric; use {METRIC_HELP}")
    kind, sep, arg = spec.strip().partition(":")
    kind = kind.strip().lower()
    if kind in ("macs", "params") and not sep:
        return MacsMetric(supernet) if kind == "macs" else ParamsMetric(supernet)
    if kind == "latency" and arg.strip():
        return LatencyTableMetric(_unquote(arg), supernet)
    if kind == "measured" and arg.strip():
        backend, _, threads = arg.strip().partition(":")
        if backend not in BACKENDS:
            raise NetAdaptError(f"unknown latency backend {backend!r} in metric {spec!r}; choose one of {', '.join(BACKENDS)}")
        try:
            n = int(threads) if threads else 1
        except ValueError:
            raise NetAdaptError(f"thread count {threads!r} in metric {spec!r} is not an integer") from None
        return MeasuredLatencyMetric(supernet, backend, n, cache=cache)
    if kind == "command" and arg.strip():
        return CommandMetric(supernet, _unquote(arg), export_format=export_format, timeout=timeout, retries=retries, cache=cache)
    raise NetAdaptError(f"unknown metric {spec!r}; use {METRIC_HELP}")
