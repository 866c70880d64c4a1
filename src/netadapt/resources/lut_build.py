"""Building a latency lookup table by measurement, and checking it against whole networks.

:func:`build_table` enumerates every operation the search space can produce
(:meth:`OpPlan.reachable`), measures each one by itself on a backend, and writes the table as
it grows: an interrupted build continues where it stopped when run again with the same output
file.  Afterwards a few whole sub-networks are measured to fit a scale on the sum, a cost per
parameter and a per-network constant (:func:`fit_calibration`).

:func:`check_table` measures random sub-networks whole and compares them with the table's
prediction: the accuracy figure of ``netadapt lut check`` and ``benchmarks/bench_lut_accuracy.py``.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn
from tqdm import tqdm

from netadapt.arch.space import Architecture
from netadapt.errors import NetAdaptError
from netadapt.model.supernet import SuperNet
from netadapt.resources.counting import count_params
from netadapt.resources.lut import LatencyTable, LatencyTableMetric, load_table
from netadapt.resources.networks import NETWORK_CHUNK, NETWORK_MIN_TIME, NETWORK_ROUNDS, measure_networks
from netadapt.resources.ops import Op, OpMaker, OpPlan
from netadapt.resources.timing import MeasureFn, Measurer, check_statistic, environment

__all__ = [
    "FITS",
    "CheckResult",
    "CheckRow",
    "Fit",
    "build_table",
    "calibration_archs",
    "calibration_settings",
    "check_archs",
    "check_result",
    "check_table",
    "fit_calibration",
    "grid_points",
    "set_calibration",
]

log = logging.getLogger(__name__)

FITS = ("offset", "linear", "weights")


def grid_points(ops: dict[Op, OpMaker], step: int) -> dict[Op, OpMaker]:
    """The grid points a coarse table measures so that every op in ``ops`` can be interpolated.

    Per family and channel dimension the grid is every reachable value that is a multiple of
    ``step`` plus the smallest and largest reachable values (so nothing is extrapolated).  Each
    op needs the grid values just below and above it in every dimension: the corners of its
    interpolation cell.
    """
    if step < 1:
        raise NetAdaptError(f"grid step must be positive, got {step}")
    by_family: dict[str, list[Op]] = {}
    for op in ops:
        by_family.setdefault(op.family, []).append(op)
    points: dict[Op, OpMaker] = {}
    for family, members in by_family.items():
        maker = ops[members[0]]
        dims = len(members[0].dims)
        grids = []
        for i in range(dims):
            values = {op.dims[i] for op in members}
            grids.append(sorted({v for v in values if v % step == 0} | {min(values), max(values)}))
        for op in members:
            sides = []
            for grid, v in zip(grids, op.dims, strict=True):
                lo = max(g for g in grid if g <= v)
                hi = min(g for g in grid if g >= v)
                sides.append(sorted({lo, hi}))
            for corner in itertools.product(*sides):
                points.setdefault(Op(family, tuple(corner)), maker)
    return points


def _null_op() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """The smallest operation there is: its time is the backend's per-call overhead."""
    return nn.ReLU(), (torch.zeros(1, 1, 1, 1),)


def _measure_settings(measure: MeasureFn) -> dict:
    return (
        measure.settings() if isinstance(measure, Measurer) else {"measure": getattr(measure, "__name__", type(measure).__name__)}
    )


def _env(measure: MeasureFn) -> dict:
    if isinstance(measure, Measurer):
        return environment(measure.backend, measure.threads)
    return {
        "device": "injected",
        "backend": getattr(measure, "backend", "custom"),
        "threads": getattr(measure, "threads", 1),
        "versions": {},
    }


def _resume(path: Path, supernet: SuperNet, env: dict, grid: int | None, statistic: str) -> LatencyTable | None:
    if not path.exists():
        return None
    table = load_table(path)
    table.check_supernet(supernet)
    for key in ("backend", "threads", "device"):
        if table.environment.get(key) != env.get(key):
            raise NetAdaptError(
                f"{path} holds a table measured with {key}={table.environment.get(key)!r}, not {env.get(key)!r}; "
                "choose another --out or delete it"
            )
    if table.grid != grid:
        raise NetAdaptError(f"{path} holds a table with grid {table.grid}, not {grid}; choose another --out or delete it")
    if table.statistic != statistic:  # entries keep both; only the fit must be redone
        table.statistic, table.complete = statistic, False
    log.info("resuming %s: %d entries measured", path, len(table.entries))
    return table


def _check_build_settings(statistic: str, fit: str, passes: int, network_time: float, network_rounds: int) -> None:
    """A one-line error for a setting of :func:`build_table` out of its range."""
    check_statistic(statistic)
    if fit not in FITS:
        raise NetAdaptError(f"unknown calibration fit {fit!r}; choose one of {', '.join(FITS)}")
    if passes < 1:
        raise NetAdaptError(f"passes must be at least 1, got {passes}")
    if network_time <= 0 or network_rounds < 1:
        raise NetAdaptError(
            f"network_time must be positive and network_rounds at least 1, got {network_time} and {network_rounds}"
        )


def _warn_odd_widths(supernet: SuperNet, backend: str) -> None:
    """On ONNX Runtime's CPU kernels channel counts off multiples of 8 measured up to 3x slower
    than the full network (docs/resources.md): say so when the space offers such widths."""
    if backend != "onnxruntime":
        return
    odd = sum(any(w % 8 for w in layer.widths if w > 0) for layer in supernet.space.layers if layer.kind != "se")
    if odd:
        log.warning(
            "%d of %d searchable layers of %s offer channel counts that are not multiples of 8, which ONNX Runtime's "
            "CPU kernels may run far slower; for a latency search there, consider model.options.width_divisor: 8 "
            "(`lut build --option width_divisor=8`; docs/resources.md)",
            odd, len(supernet.space.layers), supernet.name,
        )  # fmt: skip


def build_table(
    supernet: SuperNet,
    path: str | os.PathLike,
    *,
    measure: MeasureFn | None = None,
    grid: int | None = None,
    statistic: str = "min",
    calibrate: int = 20,
    fit: str = "weights",
    passes: int = 1,
    seed: int = 0,
    network_time: float = NETWORK_MIN_TIME,
    network_rounds: int = NETWORK_ROUNDS,
    network_chunk: int = NETWORK_CHUNK,
    save_every: float = 10.0,
    progress: bool = True,
) -> LatencyTable:
    """Measure every operation of ``supernet``'s search space and write the table to ``path``.

    ``measure`` times one module (default: ONNX Runtime on the CPU, one thread); inject any
    :data:`~netadapt.resources.timing.MeasureFn` (tests use a deterministic fake).  ``grid``
    measures only channel counts on a grid of that step and interpolates the rest.  The file is
    rewritten atomically every ``save_every`` seconds and at the end, so an interrupted build
    resumes.  ``statistic`` ("min" or "median") is the timing statistic entries and fit use.
    ``calibrate`` whole sub-networks (the full network and random ones from ``seed``) are
    measured to fit a scale, a cost per parameter and a constant (``fit="weights"``), a scale
    and a constant (``"linear"``) or only the constant (``"offset"``), see
    :func:`fit_calibration`.  ``passes`` > 1 measures every entry and
    every calibration network that many times in all, keeping the faster timing (steadier
    tables on a shared machine).  Calibration networks are timed as ``lut check`` times whole
    networks: ``network_time`` seconds each per pass, split into ``network_rounds`` windows
    interleaved with the other networks of a chunk of at most ``network_chunk`` kept ready at
    once (:func:`~netadapt.resources.networks.measure_networks`).
    A whole network's minimum over a few runs (the entries' ``min_time``) sits well above its
    minimum over many, which biased the fit upwards (measured at 224×224: scale 1.24 instead of
    ~1.14).  Rerunning a finished build with other calibration settings refits without measuring
    the entries again.
    """
    measure = measure if measure is not None else Measurer()
    path = Path(path)
    env = _env(measure)
    _check_build_settings(statistic, fit, passes, network_time, network_rounds)
    _warn_odd_widths(supernet, env["backend"])
    table = _resume(path, supernet, env, grid, statistic)
    if table is None:
        table = LatencyTable(
            model=supernet.name, space=supernet.space.fingerprint, build=supernet.build_config(), environment=env,
            measure=_measure_settings(measure), grid=grid, statistic=statistic, path=path,
        )  # fmt: skip
    ops, _ = OpPlan(supernet).reachable()
    wanted = grid_points(ops, grid) if grid else ops
    todo = [(op, maker) for op, maker in wanted.items() if op not in table.entries]
    log.info("%s: %d operations, %d to measure", supernet.name, len(wanted), len(todo))
    if table.overhead is None:
        table.overhead = measure(*_null_op())
    if todo:
        table.complete = False
        _measure_all(table, todo, measure, path, save_every, f"lut {supernet.name}", progress)
    # Later passes re-measure every entry and keep the faster timing: a burst of load from
    # other processes during one entry's measurement then does not stay in the table.
    done = int(table.measure.get("passes_done", 1))
    for n in range(done + 1, passes + 1):
        table.complete = False
        _measure_all(table, list(wanted.items()), measure, path, save_every, f"lut pass {n}/{passes}", progress)
        table.measure["passes_done"] = n
        table.save(path)
    network_measure = replace(measure, min_time=network_time) if isinstance(measure, Measurer) else measure
    wanted_fit = calibration_settings(calibrate, fit, passes, network_rounds, _network_time(network_measure))
    if table.complete and calibrate > 0:
        done = {k: (table.calibration or {}).get(k) for k in wanted_fit}
        if done != wanted_fit:  # other calibration settings: refit, the entries stay
            table.complete = False
    if not table.complete:
        table.invalidate()
        _calibrate(table, supernet, network_measure, calibrate, seed, fit, passes, network_rounds, network_chunk, progress)
        table.complete = True
        table.save(path)
    return table


def _measure_all(
    table: LatencyTable,
    todo: list[tuple[Op, OpMaker]],
    measure: MeasureFn,
    path: Path,
    save_every: float,
    desc: str,
    progress: bool,
) -> None:
    """Measure ``todo`` into ``table`` (keeping an existing entry when it is faster), saving as it goes."""
    last = time.monotonic()
    with torch.no_grad():
        for op, maker in tqdm(todo, desc=desc, unit="op", disable=not progress, dynamic_ncols=True):
            module, inputs = maker(op.dims)
            timing = measure(module.eval(), inputs)
            old = table.entries.get(op)
            if old is None or timing.value(table.statistic) < old.value(table.statistic):
                table.entries[op] = timing
            if time.monotonic() - last > save_every:
                table.save(path)
                last = time.monotonic()
    table.invalidate()
    table.save(path)


def _network_time(measure: MeasureFn) -> float | None:
    return measure.min_time if isinstance(measure, Measurer) else None


def calibration_settings(count: int, fit: str, passes: int, rounds: int, network_time: float | None) -> dict:
    """How a table's calibration networks were measured, as recorded in the table (a rerun of
    :func:`build_table` with other settings refits)."""
    return {"count": count, "requested": fit, "passes": passes, "rounds": rounds, "network_time": network_time}


def calibration_archs(supernet: SuperNet, count: int, seed: int = 0) -> list[Architecture]:
    """The ``count`` whole networks a table's fit is calibrated on: the full network and random
    sub-networks drawn from ``seed``."""
    rng = random.Random(seed)
    return [supernet.space.full()] + [supernet.space.sample(rng) for _ in range(count - 1)]


def set_calibration(
    table: LatencyTable, supernet: SuperNet, archs: list[Architecture], measured: list[float], fit: str, settings: dict
) -> None:
    """Fit ``measured ≈ scale × summed + param_cost × parameters + constant`` over ``archs``
    (whole networks measured on the table's backend, see :func:`fit_calibration`) and store the
    fit and the networks in ``table``; ``settings`` records how they were measured."""
    plan = OpPlan(supernet)
    table.invalidate()  # entries may have changed since the last lookup; the fit does not enter the sums
    summed = [table.summed(plan.trace(arch)) for arch in archs]
    params = [count_params(supernet, arch) for arch in archs]
    got = fit_calibration(summed, measured, fit, params)
    table.scale, table.param_cost, table.constant = got.scale, got.param_cost, got.constant
    table.calibration = {
        **settings,
        "networks": [
            {"summed": round(s, 6), "params": p, "measured": round(m, 6)}
            for s, p, m in zip(summed, params, measured, strict=True)
        ],
        "fit": got.how,
    }
    log.info(
        "fitted scale %.4f, %.4f ms per million parameters and per-network constant %.4f ms from %d networks",
        table.scale, table.param_cost, table.constant, len(archs),
    )  # fmt: skip


def _calibrate(
    table: LatencyTable,
    supernet: SuperNet,
    measure: MeasureFn,
    count: int,
    seed: int,
    fit: str,
    passes: int,
    rounds: int,
    chunk: int,
    progress: bool,
) -> None:
    """Measure ``count`` whole networks and fit the table's prediction to them."""
    if count <= 0:
        table.scale, table.param_cost, table.constant = 1.0, 0.0, 0.0
        table.calibration = None
        return
    archs = calibration_archs(supernet, count, seed)
    measured = measure_networks(
        supernet,
        archs,
        measure,
        statistic=table.statistic,
        passes=passes,
        rounds=rounds,
        chunk=chunk,
        desc="lut calibration",
        progress=progress,
    )
    set_calibration(
        table,
        supernet,
        archs,
        measured,
        fit,
        {**calibration_settings(count, fit, passes, rounds, _network_time(measure)), "seed": seed},
    )


class Fit(NamedTuple):
    """A calibration: ``measured ≈ scale × summed + param_cost × parameters / 10⁶ + constant``."""

    scale: float
    param_cost: float  # ms per million parameters
    constant: float  # ms
    how: str


def fit_calibration(summed: list[float], measured: list[float], fit: str = "weights", params: list[int] | None = None) -> Fit:
    """Fit the prediction to whole networks: ``summed`` entries, ``params`` parameters and
    ``measured`` latency of each.

    ``fit="offset"``: scale 1 and the median of ``measured − summed`` (robust to a noisy
    network).  ``fit="linear"``: scale and constant by least squares on the *relative*
    residuals (the accuracy goal is relative).  ``fit="weights"`` (default): scale, cost per
    parameter and constant the same way — inside a 224×224 network each layer's weights come
    from beyond the cache, which a layer timed by itself does not pay.  Each falls back to the
    simpler one when the networks cannot tell its terms apart (fewer networks than terms + 1,
    sizes or parameter counts within 5% of each other) or the fit is implausible (scale outside
    0.5-2 or a negative cost per parameter: noise).
    """
    if fit not in FITS:
        raise NetAdaptError(f"unknown calibration fit {fit!r}; choose one of {', '.join(FITS)}")
    offset = statistics.median(m - s for s, m in zip(summed, measured, strict=True))
    only_offset = Fit(1.0, 0.0, offset, "median offset")
    if fit == "offset" or all(abs(m - s - offset) <= 1e-9 * abs(m) for s, m in zip(summed, measured, strict=True)):
        return only_offset
    if fit == "weights" and params is not None and len(summed) >= 4 and _spread(params):
        got = _relative_lstsq([summed, [p / 1e6 for p in params], [1.0] * len(summed)], measured)
        if got is not None and 0.5 <= got[0] <= 2.0 and got[1] >= 0.0:
            return Fit(
                got[0], got[1], got[2], "measured = scale * summed + param_cost * Mparams + constant, least relative squares"
            )
        log.warning("calibration fit with parameters gave %s; measurements too noisy, fitting scale and constant only", got)
    if len(summed) < 3 or not _spread(summed):
        return only_offset
    got = _relative_lstsq([summed, [1.0] * len(summed)], measured)
    if got is None or not 0.5 <= got[0] <= 2.0:
        log.warning("calibration fit gave %s; measurements too noisy, using a constant only", got)
        return only_offset
    return Fit(got[0], 0.0, got[1], "measured = scale * summed + constant, least relative squares")


def _spread(values: list[float] | list[int]) -> bool:
    return max(values) - min(values) > 0.05 * max(values)


def _relative_lstsq(columns: list[list[float]], measured: list[float]) -> list[float] | None:
    """Coefficients minimising ``sum(((X @ c − m) / m)²)``, or None when ``X`` is rank-deficient."""
    m = torch.tensor(measured, dtype=torch.float64)
    x = torch.tensor(columns, dtype=torch.float64).T / m[:, None]
    solution = torch.linalg.lstsq(x, torch.ones_like(m)[:, None], driver="gelsd")
    if int(solution.rank) < len(columns):
        return None
    return solution.solution[:, 0].tolist()


@dataclass(frozen=True)
class CheckRow:
    """One sub-network: predicted and measured latency (ms)."""

    arch: Architecture
    predicted: float
    measured: float

    @property
    def error(self) -> float:
        """Relative error of the prediction, (predicted − measured) / measured."""
        return (self.predicted - self.measured) / self.measured


@dataclass(frozen=True)
class CheckResult:
    """Prediction accuracy of a table over sampled sub-networks."""

    rows: tuple[CheckRow, ...]
    tolerance: float = 0.10
    # the table's calibration networks measured with the check, over their calibration
    # measurement (median): how much the machine's speed changed since the fit
    drift: float | None = None

    @property
    def within(self) -> float:
        """Share of sub-networks predicted within ±``tolerance`` of the measurement."""
        return sum(abs(r.error) <= self.tolerance for r in self.rows) / len(self.rows)

    @property
    def mae(self) -> float:
        """Mean absolute error (ms)."""
        return statistics.fmean(abs(r.predicted - r.measured) for r in self.rows)

    @property
    def mape(self) -> float:
        """Mean absolute relative error."""
        return statistics.fmean(abs(r.error) for r in self.rows)

    def to_dict(self) -> dict:
        return {
            "samples": len(self.rows),
            "tolerance": self.tolerance,
            "within": self.within,
            "mae_ms": self.mae,
            "mape": self.mape,
            "drift": self.drift,
            "rows": [
                {
                    "filters": list(r.arch.filters),
                    "kernels": list(r.arch.kernels),
                    "predicted": r.predicted,
                    "measured": r.measured,
                }
                for r in self.rows
            ],
        }


def check_table(
    table: LatencyTable,
    supernet: SuperNet,
    *,
    samples: int = 100,
    seed: int = 1,
    measure: MeasureFn | None = None,
    passes: int = 2,
    rounds: int = NETWORK_ROUNDS,
    chunk: int = NETWORK_CHUNK,
    tolerance: float = 0.10,
    calibration_networks: bool = True,
    refit: bool = False,
    progress: bool = True,
) -> CheckResult:
    """Compare the table's predictions with whole-network measurements of random sub-networks.

    ``measure`` defaults to the table's own backend and thread count; the table's statistic
    (minimum or median) is compared on both sides.  Every network is timed in ``rounds``
    windows per pass, interleaved with the other networks, in each of ``passes`` passes, and
    keeps its minimum (or median) over all of them; at most ``chunk`` networks are kept ready at
    once (:func:`~netadapt.resources.networks.measure_networks`): the windows are spread over
    minutes, so a slow spell of the machine during one of them does not decide it.  The seed
    differs from the calibration seed so that the checked networks are not the ones the table
    was fitted on.

    With ``calibration_networks`` the table's calibration networks are measured again among the
    checked ones, and :attr:`CheckResult.drift` says how much slower (> 1) or faster the machine
    runs them now than when the table was fitted: a shared machine's speed wanders by several
    percent within an hour.  ``refit`` then fits the table to these new measurements (the
    caller saves it), so that the check compares the model, not the machine's drift.
    """
    if samples < 1:
        raise NetAdaptError(f"samples must be at least 1, got {samples}")
    table.check_supernet(supernet)
    if measure is None:
        measure = Measurer(backend=table.backend, threads=table.threads, min_time=NETWORK_MIN_TIME)
    fit_on, before = _calibration_networks(table, supernet) if calibration_networks or refit else ([], [])
    if refit and not fit_on:
        raise NetAdaptError(
            f"{table.path or 'the latency table'} keeps no calibration networks to refit; rebuild it with --calibrate N"
        )
    archs = check_archs(supernet, samples, seed)
    measured = measure_networks(
        supernet,
        fit_on + archs,
        measure,
        statistic=table.statistic,
        passes=passes,
        rounds=rounds,
        chunk=chunk,
        desc="lut check",
        progress=progress,
    )
    now, measured = measured[: len(fit_on)], measured[len(fit_on) :]
    drift = statistics.median(n / b for n, b in zip(now, before, strict=True)) if fit_on else None
    if refit:
        requested = str(table.calibration.get("requested", "weights"))  # fit_on came from table.calibration
        settings = calibration_settings(len(fit_on), requested, passes, rounds, _network_time(measure))
        settings.update(seed=table.calibration.get("seed"), measured_with_check=samples)
        set_calibration(table, supernet, fit_on, now, requested, settings)
    return check_result(table, supernet, archs, measured, tolerance, drift)


def _calibration_networks(table: LatencyTable, supernet: SuperNet) -> tuple[list[Architecture], list[float]]:
    """The table's calibration networks and their measurements at calibration, or nothing when
    the table does not say how to draw them again (or they do not sum as recorded)."""
    cal = table.calibration or {}
    networks, count, seed = cal.get("networks") or [], cal.get("count"), cal.get("seed")
    if not isinstance(seed, int) or count != len(networks) or not networks:
        return [], []
    archs = calibration_archs(supernet, count, seed)
    plan = OpPlan(supernet)
    summed = [table.summed(plan.trace(arch)) for arch in archs]
    if any(abs(s - n["summed"]) > 1e-4 * max(abs(s), 1e-9) for s, n in zip(summed, networks, strict=True)):
        log.warning("the table's calibration networks cannot be drawn again (their sums differ); no drift measured")
        return [], []
    return archs, [float(n["measured"]) for n in networks]


def check_archs(supernet: SuperNet, samples: int, seed: int = 1) -> list[Architecture]:
    """The random sub-networks :func:`check_table` checks."""
    rng = random.Random(seed)
    return [supernet.space.sample(rng) for _ in range(samples)]


def check_result(
    table: LatencyTable,
    supernet: SuperNet,
    archs: list[Architecture],
    measured: list[float],
    tolerance: float = 0.10,
    drift: float | None = None,
) -> CheckResult:
    """The table's predictions for ``archs`` against their ``measured`` latencies."""
    predict = LatencyTableMetric(table, supernet)
    rows = [CheckRow(arch, predict(arch), m) for arch, m in zip(archs, measured, strict=True)]
    return CheckResult(tuple(rows), tolerance, drift)
