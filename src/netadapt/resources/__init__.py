"""Resource metrics for the search: MACs, parameters, latency lookup tables built by measurement,
measured latency and user-supplied metrics (see docs/resources.md)."""

from netadapt.resources.command import CommandMetric
from netadapt.resources.counting import count_macs, count_params, counted_macs, counted_params
from netadapt.resources.latency import MeasuredLatencyMetric
from netadapt.resources.lut import LatencyTable, LatencyTableMetric, load_table
from netadapt.resources.lut_build import build_table, check_table
from netadapt.resources.metrics import CallableMetric, MacsMetric, Metric, MetricSet, ParamsMetric
from netadapt.resources.networks import measure_network, measure_networks
from netadapt.resources.parse import parse_metric
from netadapt.resources.timing import Measurer, Timing

__all__ = [
    "CallableMetric",
    "CommandMetric",
    "LatencyTable",
    "LatencyTableMetric",
    "MacsMetric",
    "MeasuredLatencyMetric",
    "Measurer",
    "Metric",
    "MetricSet",
    "ParamsMetric",
    "Timing",
    "build_table",
    "check_table",
    "count_macs",
    "count_params",
    "counted_macs",
    "counted_params",
    "load_table",
    "measure_network",
    "measure_networks",
    "parse_metric",
]
