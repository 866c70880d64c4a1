"""Latency lookup tables: measured latency of every operation, summed to predict a network.

A :class:`LatencyTable` maps every :class:`~netadapt.resources.ops.Op` a search space can
produce to its measured :class:`~netadapt.resources.timing.Timing`.  The latency of an
architecture is predicted as

    scale × sum over its operations of (entry − overhead)
      + param_cost × parameters (millions) + constant

where ``overhead`` is the time the backend takes to run an empty operation by itself (the call
into the runtime — paid once per network, not once per layer), and ``scale``, ``param_cost``
and ``constant`` are fitted at build time from whole-network measurements of a few
sub-networks (``fit="weights"``; ``"linear"`` leaves out the parameters, ``"offset"`` fits the
constant alone).  At 224×224 a whole network runs ~10% slower than its operations timed one by
one, and more so the more weights it has: an operation timed by itself finds its weights in the
cache, inside a network they were evicted by the layers before it; at 32×32 the operations
add up (``docs/resources.md``).  Entries and measurements use
one statistic of their timings, the table's ``statistic`` (minimum or median).

Tables built on a coarser channel grid (NetAdaptV1 measured channel steps of 8) hold entries only
at grid points; other points are interpolated multilinearly between the surrounding grid points.

The file format is versioned JSON (``"format": "netadapt.latency_table"``); building is done by
:mod:`netadapt.resources.lut_build`.
"""

from __future__ import annotations

import bisect
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netadapt.arch.space import Architecture
from netadapt.errors import NetAdaptError
from netadapt.io import load_json, save_json
from netadapt.model.supernet import SuperNet
from netadapt.resources.counting import count_params
from netadapt.resources.ops import Op, OpPlan
from netadapt.resources.timing import Timing, check_statistic

__all__ = ["LUT_FORMAT", "LUT_VERSION", "LatencyTable", "LatencyTableMetric", "load_table"]

LUT_FORMAT = "netadapt.latency_table"
LUT_VERSION = 1


@dataclass
class LatencyTable:
    """A latency lookup table for one super-network's search space on one backend."""

    model: str
    space: str  # the search space's fingerprint
    build: dict[str, Any]  # SuperNet.build_config(): rebuilds the network the table describes
    environment: dict[str, Any]  # device, backend, threads, library versions
    measure: dict[str, Any] = field(default_factory=dict)  # warm-up and timing settings
    grid: int | None = None  # channel step of a coarse table; None = every reachable point
    entries: dict[Op, Timing] = field(default_factory=dict)
    overhead: Timing | None = None
    statistic: str = "min"  # which timing statistic the entries and the fit use
    scale: float = 1.0  # factor on the sum of the entries (1 with fit="offset")
    constant: float = 0.0  # ms, fitted per-network constant
    param_cost: float = 0.0  # ms per million parameters of the network (fit="weights")
    calibration: dict[str, Any] | None = None
    complete: bool = False
    path: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        check_statistic(self.statistic)
        self._costs: dict[Op, float] = {}
        self._grids: dict[str, tuple[list[int], ...]] = {}

    # -- identity -----------------------------------------------------------------------------
    @property
    def backend(self) -> str:
        return str(self.environment.get("backend", "unknown"))

    @property
    def threads(self) -> int:
        return int(self.environment.get("threads", 1))

    def _where(self) -> str:
        return f"latency table {self.path}" if self.path is not None else "latency table"

    def check_supernet(self, supernet: SuperNet) -> None:
        """Raise :class:`NetAdaptError` unless the table was built for this network and space."""
        if self.model != supernet.name:
            raise NetAdaptError(f"{self._where()} was built for model {self.model}, not {supernet.name}")
        if self.space != supernet.space.fingerprint:
            from netadapt.config import config_differences, flatten_mapping

            mine, theirs = flatten_mapping(self.build), flatten_mapping(supernet.build_config())
            named = [f"{k}={mine.get(k)}, the network has {theirs.get(k)}" for k in config_differences(mine, theirs, {})]
            why = "; ".join(named) if named else f"space {self.space}, this one is {supernet.space.fingerprint}"
            raise NetAdaptError(
                f"{self._where()} was built for another search space of {self.model} ({why}); rebuild it with the "
                "network's settings (netadapt lut build --width-mult/--option, or from the super-network file)"
            )
        for key in ("input_size", "in_channels", "num_classes"):
            mine, theirs = self.build.get(key), getattr(supernet, key)
            if mine is not None and mine != theirs:
                raise NetAdaptError(f"{self._where()} was built for {key}={mine}, the network has {key}={theirs}")

    # -- lookup ---------------------------------------------------------------------------------
    def cost(self, op: Op) -> float:
        """Latency (ms) of one operation inside a network: its entry minus the per-call overhead."""
        value = self._costs.get(op)
        if value is None:
            overhead = self.overhead.value(self.statistic) if self.overhead else 0.0
            value = self._costs[op] = self._lookup(op) - overhead
        return value

    def _lookup(self, op: Op) -> float:
        timing = self.entries.get(op)
        if timing is not None:
            return timing.value(self.statistic)
        if self.grid is None or not op.dims:
            raise self._missing(op)
        return self._interpolate(op)

    def _missing(self, op: Op) -> NetAdaptError:
        state = "" if self.complete else " (the build did not finish: rerun `netadapt lut build` with the same --out)"
        return NetAdaptError(f"{self._where()} has no entry for {op.key}{state}")

    def _grid(self, family: str) -> tuple[list[int], ...]:
        grid = self._grids.get(family)
        if grid is None:
            points = [op.dims for op in self.entries if op.family == family]
            grid = tuple(sorted({p[i] for p in points}) for i in range(len(points[0]))) if points else ()
            self._grids[family] = grid
        return grid

    def _interpolate(self, op: Op) -> float:
        """Multilinear interpolation between the grid points around ``op.dims``."""
        grid = self._grid(op.family)
        if len(grid) != len(op.dims):
            raise self._missing(op)
        brackets = []  # per dim: (lo, hi, weight of hi)
        for values, v in zip(grid, op.dims, strict=True):
            i = bisect.bisect_left(values, v)
            if i < len(values) and values[i] == v:
                brackets.append((v, v, 0.0))
            elif 0 < i < len(values):
                lo, hi = values[i - 1], values[i]
                brackets.append((lo, hi, (v - lo) / (hi - lo)))
            else:
                raise self._missing(op)  # outside the measured range: never extrapolate
        total = 0.0
        for corner in itertools.product((0, 1), repeat=len(brackets)):
            weight = 1.0
            dims = []
            for (lo, hi, w), side in zip(brackets, corner, strict=True):
                weight *= w if side else 1.0 - w
                dims.append(hi if side else lo)
            if weight == 0.0:
                continue
            timing = self.entries.get(Op(op.family, tuple(dims)))
            if timing is None:
                raise self._missing(op)
            total += weight * timing.value(self.statistic)
        return total

    def predict_ops(self, ops: list[Op], params: int = 0) -> float:
        """Predicted latency (ms) of a network made of ``ops`` with ``params`` parameters."""
        return self.scale * self.summed(ops) + self.param_cost * params / 1e6 + self.constant

    def summed(self, ops: list[Op]) -> float:
        """Sum of the entries of ``ops`` minus the per-call overhead: the additive model alone."""
        return sum(self.cost(op) for op in ops)

    def predict(self, supernet: SuperNet, arch: Architecture) -> float:
        """Predicted latency (ms) of ``arch`` (builds an :class:`OpPlan`; use
        :class:`LatencyTableMetric` inside loops)."""
        return LatencyTableMetric(self, supernet)(arch)

    # -- serialization ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": LUT_FORMAT,
            "version": LUT_VERSION,
            "model": self.model,
            "space": self.space,
            "build": self.build,
            "environment": self.environment,
            "unit": "ms",
            "measure": self.measure,
            "grid": self.grid,
            "interpolation": "multilinear" if self.grid else "none",
            "complete": self.complete,
            "overhead": self.overhead.to_dict() if self.overhead else None,
            "statistic": self.statistic,
            "scale": self.scale,
            "constant": self.constant,
            "param_cost": self.param_cost,
            "calibration": self.calibration,
            "entries": {op.key: _rounded(t.to_dict()) for op, t in sorted(self.entries.items())},
        }

    @classmethod
    def from_dict(cls, d: Any, *, path: Path | None = None) -> LatencyTable:
        where = f"{path}" if path is not None else "latency table"
        if not isinstance(d, dict) or d.get("format") != LUT_FORMAT:
            raise NetAdaptError(f'{where} is not a netadapt latency table (expected "format": "{LUT_FORMAT}")')
        if d.get("version") != LUT_VERSION:
            raise NetAdaptError(f"{where}: latency table version {d.get('version')!r} is not supported (expected {LUT_VERSION})")
        try:
            entries = {Op.from_key(k): Timing.from_dict(v) for k, v in d["entries"].items()}
            table = cls(
                model=str(d["model"]),
                space=str(d["space"]),
                build=dict(d["build"]),
                environment=dict(d["environment"]),
                measure=dict(d.get("measure") or {}),
                grid=None if d.get("grid") is None else int(d["grid"]),
                entries=entries,
                overhead=Timing.from_dict(d["overhead"]) if d.get("overhead") else None,
                statistic=str(d.get("statistic", "median")),
                scale=float(d.get("scale", 1.0)),
                constant=float(d.get("constant", 0.0)),
                param_cost=float(d.get("param_cost", 0.0)),
                calibration=d.get("calibration"),
                complete=bool(d.get("complete", False)),
                path=path,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise NetAdaptError(f"{where}: malformed latency table ({type(exc).__name__}: {exc})") from None
        grid = 1 if table.grid is None else table.grid
        bad = [f"{name} must be positive" for name, value in (("grid", grid), ("scale", table.scale)) if not value > 0]
        bad += [f"entry {op.key} is negative" for op, t in table.entries.items() if not t.value(table.statistic) >= 0][:1]
        if not isinstance(table.calibration, dict | None):
            bad.append("calibration is not a mapping")
        if bad:
            raise NetAdaptError(f"{where}: malformed latency table ({bad[0]}); rebuild it with netadapt lut build")
        return table

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the table atomically (to ``path`` or where it was loaded from)."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise NetAdaptError("no path to save the latency table to")
        save_json(target, self.to_dict(), indent=None)
        self.path = target
        return target

    def invalidate(self) -> None:
        """Forget derived lookups (entry minus overhead, grids) after entries or overhead changed."""
        self._costs.clear()
        self._grids.clear()


def _rounded(d: dict) -> dict:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in d.items()}


def load_table(path: str | os.PathLike) -> LatencyTable:
    """Read a latency table file; one-line errors for a missing, unreadable or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise NetAdaptError(f"latency table {path} does not exist")
    try:
        data = load_json(path)
    except NetAdaptError as exc:  # not JSON, not UTF-8: it says where and what
        raise NetAdaptError(f"latency table {exc}") from None
    except OSError as exc:
        raise NetAdaptError(f"latency table {path} is not readable ({exc.strerror or type(exc).__name__})") from None
    return LatencyTable.from_dict(data, path=path)


class LatencyTableMetric:
    """Latency (ms) predicted by a lookup table: the search's resource when measuring every
    sample on the device would be too slow (paper §2.4, latency on a Pixel 1 CPU, §4.1.1)."""

    unit = "ms"

    def __init__(self, table: LatencyTable | str | os.PathLike, supernet: SuperNet, *, name: str = "latency") -> None:
        self.table = table if isinstance(table, LatencyTable) else load_table(table)
        self.table.check_supernet(supernet)
        self.supernet = supernet
        self.plan = OpPlan(supernet)
        self.name = name

    def __call__(self, arch: Architecture) -> float:
        params = count_params(self.supernet, arch) if self.table.param_cost else 0
        return self.table.predict_ops(self.plan.trace(arch), params)

    def __repr__(self) -> str:
        return f"LatencyTableMetric({self.table.path or 'in memory'}, {self.table.backend}, threads={self.table.threads})"
