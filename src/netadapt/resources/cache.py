"""A per-architecture cache of metric values, optionally kept in a JSON file.

Slow metrics (a user's command measuring on a phone, a whole-network timing) are worth
computing once per architecture; the search revisits architectures across iterations and
across resumed runs.  The file is rewritten atomically after every new value, merged with what
another process may have written meanwhile, so it is never half-written.
"""

from __future__ import annotations

import os
from pathlib import Path

from netadapt.arch.space import Architecture
from netadapt.errors import NetAdaptError
from netadapt.io import load_json, save_json

__all__ = ["CACHE_FORMAT", "MetricCache", "arch_key"]

CACHE_FORMAT = "netadapt.metric_cache"
CACHE_VERSION = 1


def arch_key(arch: Architecture) -> str:
    """A compact, stable text key of an architecture: space, filters and kernels."""
    return f"{arch.space}/{','.join(map(str, arch.filters))}/{','.join(map(str, arch.kernels))}"


class MetricCache:
    """Values of one metric by architecture; ``path=None`` keeps them in memory only.

    ``metric`` identifies what the values measure (for a command metric: its template and
    export format); a file holding another metric's values is rejected rather than reused.
    """

    def __init__(self, path: str | os.PathLike | None, *, metric: str) -> None:
        self.path = Path(path) if path is not None else None
        self.metric = metric
        self._values: dict[str, float] = self._read() if self.path is not None else {}

    def _read(self) -> dict[str, float]:
        assert self.path is not None
        if not self.path.exists():
            return {}
        try:
            data = load_json(self.path)
        except (OSError, ValueError) as exc:
            raise NetAdaptError(f"metric cache {self.path} is not readable JSON ({type(exc).__name__}); delete it") from None
        if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not isinstance(data.get("values"), dict):
            raise NetAdaptError(f"{self.path} is not a netadapt metric cache")
        if data.get("version") != CACHE_VERSION:
            raise NetAdaptError(f"{self.path}: metric cache version {data.get('version')!r} is not supported")
        if data.get("metric") != self.metric:
            raise NetAdaptError(
                f"metric cache {self.path} holds values of another metric ({data.get('metric')!r}); use another cache file"
            )
        try:
            return {str(k): float(v) for k, v in data["values"].items()}
        except (TypeError, ValueError):
            raise NetAdaptError(f"metric cache {self.path} holds a value that is not a number; delete it") from None

    def get(self, arch: Architecture) -> float | None:
        return self._values.get(arch_key(arch))

    def put(self, arch: Architecture, value: float) -> None:
        """Store ``value`` and, with a file, rewrite the file atomically."""
        self._values[arch_key(arch)] = float(value)
        if self.path is not None:
            merged = {**self._read(), **self._values}  # keep values another process added
            self._values = merged
            save_json(self.path, {"format": CACHE_FORMAT, "version": CACHE_VERSION, "metric": self.metric, "values": merged})

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, arch: Architecture) -> bool:
        return arch_key(arch) in self._values
