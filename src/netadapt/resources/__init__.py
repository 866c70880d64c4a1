"""Resource metrics: MACs, parameters (and, in later modules, latency)."""

from netadapt.resources.counting import count_macs, count_params, counted_macs, counted_params

__all__ = ["count_macs", "count_params", "counted_macs", "counted_params"]
