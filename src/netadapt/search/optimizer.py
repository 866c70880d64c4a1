"""Coordinate descent over a search space: MCD (NetAdaptV2, paper §2.4) and SCD (NetAdaptV1).

The optimizer is plain Python with two injected functions, so it runs with analytic MACs or a
measured latency, with a shared-weight score or a toy function alike:

* ``resource_fn(arch) -> float`` or a mapping of several named resources (all recorded, the one
  named by ``SearchConfig.constrained`` — default the first — is reduced towards the target);
* ``evaluate_fn(archs) -> list[float]``: the held-out score (top-1, or a task metric such as
  RMSE) of a batch of architectures, so evaluation can be spread over processes or ranks.

Each iteration starts from the previous best, makes samples that each shrink chosen layers until
the sample's resource is at most ``previous - reduction``, evaluates the samples (each distinct
architecture once, ever) and keeps the best.  It stops when the target is met.

:func:`optimize` is that loop and nothing else; :func:`netadapt.search.driver.search` runs it in
a locked run folder, across torch.distributed ranks, and records its time in ``timing.json``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from netadapt.arch.space import Architecture, SearchSpace
from netadapt.errors import NetAdaptError
from netadapt.progress import Eta
from netadapt.search.config import SearchConfig
from netadapt.search.family import FamilyMember, TrajectoryPoint, build_family
from netadapt.search.records import RunFolder, point_from_dict, point_to_dict
from netadapt.search.shrink import Shrinker, describe

__all__ = [
    "EvaluateFn",
    "ResourceFn",
    "SearchResult",
    "check_run_folder",
    "check_search_inputs",
    "compute_here",
    "optimize",
]

log = logging.getLogger(__name__)

ResourceFn = Callable[[Architecture], "float | Mapping[str, float]"]
EvaluateFn = Callable[[list[Architecture]], Sequence[float]]


@dataclass(frozen=True)
class SearchResult:
    """What a search found.  ``trajectory[-1]`` is the final point."""

    final: Architecture
    resources: dict[str, float]
    resource: float
    score: float  # the final score: top-1, or e.g. RMSE (named by ``score_name``; see TrajectoryPoint)
    target: float  # in the resource's unit
    constrained: str  # the name of the constrained resource
    reached_target: bool
    status: str  # "done", "stalled" (no sample met an iteration's reduction) or "max_iterations"
    trajectory: list[TrajectoryPoint]
    family: list[FamilyMember]
    evaluations: int  # distinct architectures evaluated
    run_dir: Path | None
    score_name: str | None = None  # what ``score`` holds (the ``score_name`` argument of :func:`search`)


class _Resources:
    """``resource_fn`` with a cache and a name for every value."""

    def __init__(self, fn: ResourceFn, constrained: str | None) -> None:
        self.fn = fn
        self.constrained = constrained
        self.cache: dict[Architecture, dict[str, float]] = {}

    def __call__(self, arch: Architecture) -> dict[str, float]:
        values = self.cache.get(arch)
        if values is None:
            raw = self.fn(arch)
            values = {k: float(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {"resource": float(raw)}
            if self.constrained is None:
                self.constrained = next(iter(values))
            if self.constrained not in values:
                raise NetAdaptError(f"the resource function returned {sorted(values)}, not the constrained {self.constrained!r}")
            self.cache[arch] = values
        return values

    def value(self, arch: Architecture) -> float:
        return self(arch)[self.constrained]


class _Evaluations:
    """``evaluate_fn`` called once per distinct architecture, results appended to the run folder."""

    def __init__(self, fn: EvaluateFn, cache: dict[Architecture, tuple[float, float]], folder: RunFolder, chunk: int) -> None:
        self.fn = fn
        self.cache = cache
        self.folder = folder
        self.chunk = chunk

    def __call__(self, archs: Sequence[Architecture]) -> None:
        pending = list(dict.fromkeys(a for a in archs if a not in self.cache))
        size = self.chunk or len(pending)
        for start in range(0, len(pending), max(size, 1)):
            part = pending[start : start + size]
            began = time.perf_counter()
            returned = self.fn(part)
            seconds = (time.perf_counter() - began) / len(part)
            if not isinstance(returned, Iterable) or isinstance(returned, str | bytes):
                raise NetAdaptError(f"evaluate_fn must return one score per architecture (a list), got {returned!r}")
            scores = list(returned)
            if len(scores) != len(part):
                raise NetAdaptError(f"evaluate_fn returned {len(scores)} values for {len(part)} architectures")
            rows = [(arch, _number(score), seconds) for arch, score in zip(part, scores, strict=True)]
            for arch, score, s in rows:
                self.cache[arch] = (score, s)
            self.folder.append_evaluations(rows)

    @property
    def seconds(self) -> float:
        return sum(s for _, s in self.cache.values())


def _number(score: object) -> float:
    if not isinstance(score, bool):
        try:
            return float(score)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            pass
    raise NetAdaptError(f"evaluate_fn returned {score!r}; a score is a number")


def _badness(score: float, higher_is_better: bool) -> float:
    """``score`` (top-1, RMSE, …) as a value to minimize."""
    if not math.isfinite(score):
        return math.inf  # a diverged sample is never chosen over a finite one
    return -score if higher_is_better else score


def _select(candidates: list[tuple[int, Architecture, float, float]], prev: TrajectoryPoint, config: SearchConfig) -> int:
    """Index (into ``candidates``) of the chosen sample.

    Ties are broken by resource, then by the architecture itself, never by list position, so the
    choice does not depend on the order in which samples were made (SCD == MCD with L = 1)."""

    def key(c: tuple[int, Architecture, float, float]) -> tuple:
        _, arch, resource, score = c
        bad = _badness(score, config.higher_is_better)
        order = (bad, resource, arch.filters, arch.kernels)
        if config.selection == "accuracy":  # the best score (the paper's rule keeps its name)
            return order
        # NetAdaptV1: the smallest score loss per unit of resource saved
        loss = bad - _badness(prev.score, config.higher_is_better)
        return (loss / (prev.resource - resource), *order)

    return min(range(len(candidates)), key=lambda i: key(candidates[i]))


def _check_resource(res: _Resources, arch: Architecture, what: str) -> float:
    try:
        value = res.value(arch)
    except NetAdaptError:
        raise
    except Exception as exc:  # a user's metric may fail in any way; say where
        raise NetAdaptError(f"the resource metric failed on the {what}: {type(exc).__name__}: {exc}") from None
    if not math.isfinite(value) or value < 0:
        raise NetAdaptError(f"the resource metric gave {value} for the {what}; expected a finite non-negative number")
    return value


def _check_inputs(res: _Resources, shrinker: Shrinker, initial_arch: Architecture, config: SearchConfig) -> tuple[float, float]:
    initial_resource = _check_resource(res, initial_arch, "initial network")
    if initial_resource <= 0:  # targets and reductions are fractions of it
        raise NetAdaptError(f"the resource metric gave {initial_resource} for the initial network; expected a positive number")
    target = config.resolve(config.target, initial_resource)
    if target > initial_resource:
        raise NetAdaptError(f"target {target:g} is above the initial network's resource {initial_resource:g}")
    smallest = _check_resource(res, shrinker.minimum(initial_arch), "smallest architecture of the space")
    if smallest > target:
        raise NetAdaptError(
            f"target {target:g} is unreachable: the smallest architecture of the space has {smallest:g} "
            f"({100 * smallest / initial_resource:.1f}% of the initial {initial_resource:g})"
        )
    return initial_resource, target


def check_search_inputs(
    space: SearchSpace, initial_arch: Architecture, resource_fn: ResourceFn, config: SearchConfig
) -> tuple[float, float]:
    """(initial resource, target in the resource's unit), or a one-line :class:`NetAdaptError`
    when the metric fails on the initial network, the target is above it or the smallest
    architecture of the space cannot reach it.  :func:`search` runs the same checks; call this
    first to fail before loading data."""
    config.validate()
    space.validate(initial_arch)
    shrinker = _shrinker(space, config)
    return _check_inputs(_Resources(resource_fn, config.constrained), shrinker, initial_arch, config)


def _shrinker(space: SearchSpace, config: SearchConfig) -> Shrinker:
    """The shrinking steps ``config`` allows (``shrink``, ``remove_blocks``)."""
    return Shrinker(space, filters_only=config.shrink == "filters", remove_blocks=config.remove_blocks)


def _settings(
    space: SearchSpace, initial_arch: Architecture, config: SearchConfig, rng_seed: int, metadata: dict[str, Any] | None
) -> dict[str, Any]:
    """What identifies a search in its run folder (``search_config.json``)."""
    settings = asdict(config)
    if settings["remove_blocks"] == "narrowest":  # the default: folders written before the option still resume
        del settings["remove_blocks"]
    return {
        "config": settings,
        "rng_seed": rng_seed,
        "space": space.fingerprint,
        "initial_arch": initial_arch.to_dict(space),
        "metadata": metadata or {},
    }


def check_run_folder(
    run_dir: str | Path,
    space: SearchSpace,
    initial_arch: Architecture,
    config: SearchConfig,
    *,
    rng_seed: int,
    metadata: dict[str, Any] | None = None,
) -> bool:
    """True when ``run_dir`` holds this search (a resume), False when it holds none; a one-line
    :class:`NetAdaptError` when it holds another.  Writes nothing: call it before writing
    anything else into the folder (:func:`search` checks again)."""
    settings = _settings(space, initial_arch, config, rng_seed, metadata)
    return RunFolder(run_dir, write=False).check_or_write_config(settings, space)


T = TypeVar("T")


def compute_here(fn: Callable[[], T]) -> T:
    """How a single process agrees on the samples of an iteration: it computes them."""
    return fn()


def optimize(
    space: SearchSpace,
    initial_arch: Architecture,
    resource_fn: ResourceFn,
    evaluate_fn: EvaluateFn,
    config: SearchConfig | None = None,
    *,
    rng_seed: int,
    folder: RunFolder | None = None,
    metadata: dict[str, Any] | None = None,
    score_name: str | None = None,
    on_saved: Callable[[float], None] | None = None,
    compute_once: Callable[[Callable[[], Any]], Any] = compute_here,
) -> SearchResult:
    """The optimizer: shrink ``initial_arch`` until its resource meets ``config.target``.

    Plain Python over the injected ``resource_fn`` and ``evaluate_fn``, seeded by ``rng_seed``
    (each iteration's samples derive from ``(rng_seed, iteration)``).  ``folder`` records the
    search and is where a rerun resumes from (none: nothing is written); ``metadata`` is stored
    with its settings.  ``on_saved(seconds)`` is called after every saved iteration with the
    search's wall-clock seconds over all invocations.  ``compute_once(fn)`` returns the samples
    every process searches with (``fn()`` here; rank 0's under torch.distributed, see
    :func:`netadapt.search.driver.search`, which adds the lock, the ranks and ``timing.json``).
    """
    began = time.perf_counter()
    config = config or SearchConfig()
    if not isinstance(config, SearchConfig):
        raise NetAdaptError(f"config must be a SearchConfig (SearchConfig(**mapping) builds one), got {type(config).__name__}")
    config.validate()
    space.validate(initial_arch)
    folder = folder or RunFolder(None, score_name=score_name)
    shrinker = _shrinker(space, config)
    res = _Resources(resource_fn, config.constrained)

    # -- bad input, before any long work --------------------------------------------------------
    initial_resource, target = _check_inputs(res, shrinker, initial_arch, config)
    resumed = folder.check_or_write_config(_settings(space, initial_arch, config, rng_seed, metadata), space)
    evaluations = _Evaluations(evaluate_fn, folder.load_evaluations(space) if resumed else {}, folder, config.eval_chunk)
    state = folder.load_state() if resumed else None
    save = _Saver(folder, space, evaluations, float(state["seconds"]) if state else 0.0, began, on_saved)
    trajectory = _start(space, initial_arch, initial_resource, res, evaluations, folder, save, state)

    status = "done"
    expected = config.expected_iterations(initial_resource, target)  # for the log lines only
    eta = Eta(expected or 0, trajectory[-1].iteration)
    step = _Step(space, config, shrinker, res, evaluations, folder, rng_seed, initial_resource, target, compute_once)
    while trajectory[-1].resource > target:
        iteration = trajectory[-1].iteration + 1
        if iteration > config.max_iterations:
            status = "max_iterations"
            break
        step_began = time.perf_counter()
        point, made, kept = step(trajectory[-1])
        if point is None:
            status = "stalled"
            break
        trajectory.append(point)
        save(trajectory, "running")
        log.info(
            "iteration %d/~%s: resource %.6g (asked <= %.6g), %s %.4f; %d samples, %d discarded, %.2fs; %s",
            iteration, expected if expected is not None else "?", point.resource, point.required,
            score_name or "score", point.score, made, made - kept, time.perf_counter() - step_began,
            eta.text(iteration) if expected is not None and iteration < expected else "ETA: the target is near",
        )  # fmt: skip

    save(trajectory, status)
    return _result(space, config, trajectory, status, initial_resource, target, res, evaluations, folder, score_name)


def _result(
    space: SearchSpace,
    config: SearchConfig,
    trajectory: list[TrajectoryPoint],
    status: str,
    initial_resource: float,
    target: float,
    res: _Resources,
    evaluations: _Evaluations,
    folder: RunFolder,
    score_name: str | None,
) -> SearchResult:
    """The search's result, its family and final architecture saved in ``folder``."""
    final = trajectory[-1]
    budgets = [config.resolve(b, initial_resource) for b in config.budgets]
    family = build_family(trajectory, budgets, higher_is_better=config.higher_is_better)
    folder.save_results(space, trajectory, family, final.arch)
    return SearchResult(
        final=final.arch,
        resources=final.resources,
        resource=final.resource,
        score=final.score,
        target=target,
        constrained=res.constrained,
        reached_target=final.resource <= target,
        status=status,
        trajectory=trajectory,
        family=family,
        evaluations=len(evaluations.cache),
        run_dir=folder.path,
        score_name=score_name,
    )


@dataclass
class _Saver:
    """Saves ``search_state.json`` after an iteration (the resume point), then calls ``on_saved``."""

    folder: RunFolder
    space: SearchSpace
    evaluations: _Evaluations
    previous_seconds: float  # search time of earlier (interrupted) invocations
    began: float
    on_saved: Callable[[float], None] | None

    def __call__(self, trajectory: list[TrajectoryPoint], status: str) -> None:
        seconds = self.previous_seconds + time.perf_counter() - self.began
        self.folder.save_state(
            {
                "iteration": trajectory[-1].iteration,
                "status": status,
                "best": point_to_dict(trajectory[-1], self.space),
                "trajectory": [point_to_dict(p, self.space) for p in trajectory],
                "seconds": seconds,
                "evaluation_seconds": self.evaluations.seconds,
            }
        )
        if self.on_saved is not None:
            self.on_saved(seconds)


def _start(
    space: SearchSpace,
    initial_arch: Architecture,
    initial_resource: float,
    res: _Resources,
    evaluations: _Evaluations,
    folder: RunFolder,
    save: _Saver,
    state: dict | None,
) -> list[TrajectoryPoint]:
    """The trajectory to continue: the saved one on resume, else iteration 0 (the initial network)."""
    if state is not None:
        trajectory = [point_from_dict(d) for d in state["trajectory"]]
        folder.truncate_history(trajectory[-1].iteration)
        log.info("resuming %s after iteration %d", folder.path, trajectory[-1].iteration)
        return trajectory
    folder.truncate_history(-1)  # a crash before iteration 0 was saved: start the history again
    evaluations([initial_arch])
    score, seconds = evaluations.cache[initial_arch]
    if not math.isfinite(score):  # a later sample may diverge (never chosen); the start must not
        raise NetAdaptError(f"evaluate_fn scored the initial network {score}; the evaluation or the super-network is broken")
    start = TrajectoryPoint(0, initial_arch, res(initial_arch), initial_resource, score, 0.0, initial_resource)
    folder.append_history([_record(space, 0, 0, start.arch, start.resources, start.resource, score, seconds, [], False, True)])
    save([start], "running")
    return [start]


@dataclass
class _Step:
    """One iteration: samples from the previous best, each shrunk until its resource is at most
    ``previous - reduction``, evaluated (each distinct architecture once, ever), the best kept."""

    space: SearchSpace
    config: SearchConfig
    shrinker: Shrinker
    res: _Resources
    evaluations: _Evaluations
    folder: RunFolder
    rng_seed: int
    initial_resource: float
    target: float
    compute_once: Callable[[Callable[[], Any]], Any]

    def __call__(self, best: TrajectoryPoint) -> tuple[TrajectoryPoint | None, int, int]:
        """(the iteration's point, or None when no sample met the reduction; samples made; samples kept)."""
        config, res, evaluations = self.config, self.res, self.evaluations
        iteration = best.iteration + 1
        # Intermediate shrink steps rarely recur across iterations: keep the resource cache to
        # one iteration so a long search does not hold millions of architectures.
        res.cache = {best.arch: best.resources}
        reduction = config.reduction(iteration, self.initial_resource)
        required = best.resource - reduction
        if config.clip_to_target:
            required = max(required, self.target)
        if config.optimizer == "scd":
            proposals = self.shrinker.propose_scd(best.arch, self.rng_seed, iteration)
        else:
            proposals = self.shrinker.propose_mcd(best.arch, self.rng_seed, iteration, config.samples, config.layers)

        def make() -> tuple[list[tuple[Architecture, bool]], list[dict[str, float]]]:
            made = [self.shrinker.shrink_until(best.arch, p, required, res.value) for p in proposals]
            return made, [res(a) for a, _ in made]

        made, resources = self.compute_once(make)
        for (arch, _), values in zip(made, resources, strict=True):
            res.cache[arch] = values
        evaluations([a for a, ok in made if ok])
        candidates = [(j, a, res.value(a), evaluations.cache[a][0]) for j, (a, ok) in enumerate(made) if ok]
        chosen = made_index = None
        if candidates:
            chosen = _select(candidates, best, config)
            made_index = candidates[chosen][0]
        records = [
            _record(self.space, iteration, j, arch, res(arch), res.value(arch),
                    evaluations.cache[arch][0] if ok else None, evaluations.cache[arch][1] if ok else None,
                    describe(self.shrinker, proposal), not ok, j == made_index)
            for j, ((arch, ok), proposal) in enumerate(zip(made, proposals, strict=True))
        ]  # fmt: skip
        self.folder.append_history(records)  # a stalled iteration's: dropped on resume, kept to show why
        if chosen is None:
            log.warning("iteration %d: none of %d samples reached %g (from %g); stopping short of the target %g",
                        iteration, len(made), required, best.resource, self.target)  # fmt: skip
            return None, len(made), 0
        _, arch, resource, score = candidates[chosen]
        point = TrajectoryPoint(iteration, arch, res(arch), resource, score, reduction, required)
        return point, len(made), len(candidates)


def _record(
    space: SearchSpace,
    iteration: int,
    sample: int,
    arch: Architecture,
    resources: dict[str, float],
    resource: float,
    score: float | None,
    seconds: float | None,
    shrunk: list[dict],
    discarded: bool,
    selected: bool,
) -> dict:
    """One ``history.jsonl`` line."""
    return {
        "iteration": iteration,
        "sample": sample,
        "arch": arch.to_dict(space),
        "resources": resources,
        "resource": resource,
        "score": score,
        "eval_seconds": seconds,
        "shrunk": shrunk,
        "discarded": discarded,
        "selected": selected,
    }
