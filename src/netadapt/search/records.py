"""The search's run folder: what is written where, atomically or append-only.

=====================  ========================================================================
``search_config.json``  settings, seed, search space fingerprint, initial architecture; a rerun
                        with different ones is refused instead of silently mixing two searches
``space.json``          the search space (so later stages can read the architectures)
``evaluated.jsonl``     one line per evaluated architecture (score, seconds), appended after
                        each ``evaluate_fn`` call: the evaluation cache a restart replays
``history.jsonl``       one line per sample of every finished iteration (architecture, every
                        recorded resource, score, evaluation time, discarded, selected)
``search_state.json``   the last finished iteration and its best sample (the resume point); a
                        damaged one is set aside and the iterations replayed from the cache
``trajectory.json``     the best sample of every iteration (iteration 0 = initial network)
``family.json``         the Pareto-monotone best architecture per budget met along the way
``final_arch.json``     the discovered architecture (``Architecture.to_dict(space)``)
``timing.json``         wall-clock and device-hours per step (see :mod:`netadapt.search.timing`)
=====================  ========================================================================

Damage is never a traceback: a torn last line (a crash mid-append) is cut, a damaged line of the
evaluation cache is dropped with a warning (that sample is evaluated again), and a damaged
settings file or history line is a one-line error.  Paths in the settings (the super-network
file) are stored relative to the run folder, so a moved or copied run resumes.

Every record's score (top-1, or e.g. RMSE) is under ``score``, and what it is under
``score_name`` when the search was told.  Run folders of earlier versions hold the score under
``accuracy`` and its name under ``score``; :func:`record_score` and :func:`record_score_name`
read both, line by line, so such a folder resumes (its old lines kept as they are) and reports.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from netadapt.arch.space import Architecture, SearchSpace
from netadapt.errors import NetAdaptError
from netadapt.io import append_jsonl, atomic_write, load_json, read_jsonl, save_json
from netadapt.search.family import FamilyMember, TrajectoryPoint

__all__ = ["RunFolder", "point_from_dict", "point_to_dict", "record_score", "record_score_name"]

log = logging.getLogger(__name__)

#: Metadata entries holding a path relative to the run folder.
PATH_METADATA = frozenset({"supernet"})

STATE_FORMAT = "netadapt.search_state"
STATE_VERSION = 1

#: The key under which run folders of earlier versions hold a record's score (its name then
#: under ``score``, where this version writes the value).
OLD_SCORE_KEY = "accuracy"


def _score_key(record: dict) -> str:
    """The key of ``record``'s score: ``score``, or ``accuracy`` in a record of an earlier version."""
    return OLD_SCORE_KEY if OLD_SCORE_KEY in record else "score"


def record_score(record: dict) -> float | None:
    """The score of a run-folder record (history line, evaluation, trajectory or family point) of
    this version or an earlier one; None for a discarded sample."""
    value = record.get(_score_key(record))
    return None if value is None else float(value)


def record_score_name(record: dict) -> str | None:
    """What the score of ``record`` is (``"top1"``, ``"rmse"``, …), None when the search was not told."""
    return record.get("score" if OLD_SCORE_KEY in record else "score_name")


def point_to_dict(point: TrajectoryPoint, space: SearchSpace) -> dict:
    return {
        "iteration": point.iteration,
        "arch": point.arch.to_dict(space),
        "resources": point.resources,
        "resource": point.resource,
        "score": point.score,
        "reduction": point.reduction,
        "required": point.required,
    }


def point_from_dict(d: dict) -> TrajectoryPoint:
    """A point written by :func:`point_to_dict` (of this version or an earlier one)."""
    return TrajectoryPoint(
        iteration=int(d["iteration"]),
        arch=Architecture.from_dict(d["arch"]),
        resources={k: float(v) for k, v in d["resources"].items()},
        resource=float(d["resource"]),
        score=float(d[_score_key(d)]),
        reduction=float(d["reduction"]),
        required=float(d["required"]),
    )


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"not a whole number: {value!r}")
    return value


def _same_path(stored: object, current: object, folder: Path) -> bool:
    """``current`` (relative to ``folder``) names the file ``stored`` names: equal, or
    ``stored`` is the absolute path that earlier versions wrote."""
    if stored == current:
        return True
    if not (isinstance(stored, str) and isinstance(current, str) and os.path.isabs(stored)):
        return False
    return os.path.realpath(folder / current) == os.path.realpath(stored)


def _differences(stored: dict, current: dict, folder: Path) -> list[str]:
    """Settings that differ between a run folder's search and this one (metadata by entry)."""
    old, new = dict(stored), dict(current)
    old_meta, new_meta = old.pop("metadata", None), new.pop("metadata", None)
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    if isinstance(old_meta, dict) and isinstance(new_meta, dict):
        for key in sorted(set(old_meta) | set(new_meta)):
            a, b = old_meta.get(key), new_meta.get(key)
            if a != b and not (key in PATH_METADATA and _same_path(a, b, folder)):
                keys.append(f"metadata.{key}")
    elif old_meta != new_meta:
        keys.append("metadata")
    return keys


def _arch_fields(arch: Architecture) -> dict:
    """The compact form of an architecture in ``evaluated.jsonl`` (the space is in the config)."""
    return {"filters": list(arch.filters), "kernels": list(arch.kernels)}


class RunFolder:
    """Reads and writes the files of one search run (nothing is written when ``path`` is None
    or ``write`` is False, e.g. on ranks other than 0).  ``score_name``, when given, names the
    metric held under ``score``; it is written as ``score_name`` beside it in every history record
    and trajectory/family point."""

    def __init__(self, path: str | Path | None, *, write: bool = True, score_name: str | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.write = write and self.path is not None
        self.score_name = score_name

    def _named(self, record: dict) -> dict:
        return record if self.score_name is None else {**record, "score_name": self.score_name}

    def _file(self, name: str) -> Path | None:
        return None if self.path is None else self.path / name

    # -- identity ------------------------------------------------------------------------------
    def check_or_write_config(self, settings: dict[str, Any], space: SearchSpace) -> bool:
        """Store ``settings`` for a new run, or check them against a run to resume.

        Returns True when the folder already holds this search (a resume)."""
        path = self._file("search_config.json")
        if path is None:
            return False
        if path.exists():
            stored = load_json(path)
            if not isinstance(stored, dict):
                raise NetAdaptError(f"{path} is not a search settings file; use another run folder")
            # compare through JSON so tuples and lists, ints and floats compare alike
            current = json.loads(json.dumps(settings))
            for key in _differences(stored, current, self.path):
                raise NetAdaptError(
                    f"run folder {self.path} holds a search with a different {key}; "
                    "rerun with the same settings or use another run folder"
                )
            return True
        if self.write:
            save_json(path, settings)
            save_json(self.path / "space.json", space.to_dict())
        return False

    def _repair(self, path: Path) -> None:
        """Cut a torn last line (a crash mid-append) so the next append starts a clean line."""
        if self.write and path.exists():
            raw = path.read_bytes()
            if raw and not raw.endswith(b"\n"):
                whole = raw[: raw.rfind(b"\n") + 1]
                atomic_write(path, lambda f: f.write(whole))

    # -- evaluation cache ----------------------------------------------------------------------
    def load_evaluations(self, space: SearchSpace) -> dict[Architecture, tuple[float, float]]:
        path = self._file("evaluated.jsonl")
        cache: dict[Architecture, tuple[float, float]] = {}
        if path is None:
            return cache
        self._repair(path)
        bad: list[int] = []
        kept = []
        for rec in read_jsonl(path, bad_lines=bad):
            try:
                filters, kernels = (tuple(_count(v) for v in rec[key]) for key in ("filters", "kernels"))
                cache[Architecture(space.model, space.fingerprint, filters, kernels)] = (
                    float(rec[_score_key(rec)]),
                    float(rec["seconds"]),
                )
                kept.append(rec)
            except (KeyError, TypeError, ValueError):
                bad.append(0)
        if bad:
            # Only a cache: the samples of the damaged lines are evaluated again.
            log.warning("%s: dropped %d damaged line(s); those samples are evaluated again", path, len(bad))
            if self.write:
                text = "".join(json.dumps(r) + "\n" for r in kept)
                atomic_write(path, lambda f: f.write(text.encode()))
        return cache

    def append_evaluations(self, rows: Iterable[tuple[Architecture, float, float]]) -> None:
        if not self.write:
            return
        for arch, score, seconds in rows:
            append_jsonl(self.path / "evaluated.jsonl", {**_arch_fields(arch), "score": score, "seconds": seconds})

    # -- iterations ----------------------------------------------------------------------------
    def load_state(self) -> dict | None:
        path = self._file("search_state.json")
        if path is None or not path.exists():
            return None
        try:
            state = load_json(path)
        except NetAdaptError as exc:
            # Rebuilt exactly by replaying the iterations: every sample is in the evaluation
            # cache, and the samples are a function of (seed, iteration).
            log.warning("%s; replaying the search's iterations from evaluated.jsonl", exc)
            if self.write:
                path.replace(path.with_name(path.name + ".damaged"))
            return None
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or state.get("version") != STATE_VERSION:
            raise NetAdaptError(f"{path} is not a search state this version can resume")
        return state

    def truncate_history(self, last_iteration: int) -> None:
        """Drop history lines of iterations after the resume point (written just before a
        crash, before the state that would have counted them)."""
        path = self._file("history.jsonl")
        if not self.write or not path.exists():
            return
        self._repair(path)
        try:
            records = read_jsonl(path)
            kept = [r for r in records if r["iteration"] <= last_iteration]
        except (NetAdaptError, KeyError, TypeError) as exc:
            raise NetAdaptError(
                f"{path} is damaged ({exc}); delete it and search_state.json to replay the search from its evaluation cache"
            ) from None
        if len(kept) != len(records):
            text = "".join(json.dumps(r) + "\n" for r in kept)
            atomic_write(path, lambda f: f.write(text.encode()))
            log.info("history.jsonl: dropped %d record(s) after iteration %d", len(records) - len(kept), last_iteration)

    def append_history(self, records: Iterable[dict]) -> None:
        if not self.write:
            return
        for rec in records:
            append_jsonl(self.path / "history.jsonl", self._named(rec))

    def save_state(self, state: dict) -> None:
        if self.write:
            save_json(self.path / "search_state.json", {"format": STATE_FORMAT, "version": STATE_VERSION, **state})

    # -- results -------------------------------------------------------------------------------
    def save_results(
        self,
        space: SearchSpace,
        trajectory: list[TrajectoryPoint],
        family: list[FamilyMember],
        final: Architecture,
    ) -> None:
        if not self.write:
            return
        save_json(self.path / "trajectory.json", [self._named(point_to_dict(p, space)) for p in trajectory])
        save_json(
            self.path / "family.json",
            [self._named({"budgets": list(m.budgets), **point_to_dict(m.point, space)}) for m in family],
        )
        save_json(self.path / "final_arch.json", final.to_dict(space))
