"""Search-time accounting per step, in wall-clock and device-hours (paper Table 1 breakdown).

The paper reports search time as device-hours split into three steps: training the
super-network, training and evaluating samples, and training the discovered DNN, written
``total (supernet, samples, final)`` — e.g. "397 (167, 24, 206)" GPU-hours in Table 1.
Each stage records its own step in the run's ``timing.json`` with :func:`record_step`;
:func:`format_timing_table` prints the breakdown.  Device-hours are wall-clock hours times the number of devices used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from netadapt.errors import NetAdaptError
from netadapt.io import load_json, save_json

__all__ = ["STEPS", "StepTime", "format_timing_table", "load_timing", "record_step", "step_from_metadata"]

TIMING_FORMAT = "netadapt.timing"
TIMING_VERSION = 1

#: The paper's three steps, in its order (Tables 1-3).
STEPS = ("supernet_training", "sample_evaluation", "final_training")
STEP_TITLES = {
    "supernet_training": "training the super-network",
    "sample_evaluation": "training and evaluating samples",
    "final_training": "training the discovered DNN",
}


@dataclass(frozen=True)
class StepTime:
    """Time spent on one step."""

    wall_seconds: float
    devices: int = 1

    @property
    def device_hours(self) -> float:
        return self.wall_seconds * self.devices / 3600.0

    def to_dict(self) -> dict:
        return {"wall_seconds": self.wall_seconds, "devices": self.devices, "device_hours": self.device_hours}

    @classmethod
    def from_dict(cls, d: dict) -> StepTime:
        try:
            return cls(float(d["wall_seconds"]), int(d.get("devices", 1)))
        except (KeyError, TypeError, ValueError) as exc:
            raise NetAdaptError(f"malformed timing entry {d!r}: {exc}") from None


def load_timing(path: str | os.PathLike) -> dict[str, StepTime]:
    """The steps recorded in a ``timing.json`` (empty when the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return {}
    data = load_json(path)
    if not isinstance(data, dict) or data.get("format") != TIMING_FORMAT or not isinstance(data.get("steps", {}), dict):
        raise NetAdaptError(f"{path} is not a netadapt timing file")
    return {name: StepTime.from_dict(d) for name, d in data.get("steps", {}).items()}


def record_step(path: str | os.PathLike, step: str, time: StepTime) -> dict[str, StepTime]:
    """Set ``step`` in the ``timing.json`` at ``path`` (created if needed, written atomically);
    returns every recorded step.  Later stages (final training, the end-to-end pipeline) call
    this with their own step name."""
    steps = load_timing(path)
    steps[step] = time
    ordered = {name: steps[name] for name in [*STEPS, *sorted(set(steps) - set(STEPS))] if name in steps}
    save_json(
        path,
        {
            "format": TIMING_FORMAT,
            "version": TIMING_VERSION,
            "steps": {name: t.to_dict() for name, t in ordered.items()},
            "total_device_hours": sum(t.device_hours for t in ordered.values()),
        },
    )
    return ordered


def step_from_metadata(meta: object) -> StepTime | None:
    """A step's time from another stage's metadata, e.g. a super-network file's ``extra``.

    Accepted forms: ``{"timing": {"wall_seconds": s, "devices": n}}``, or
    ``{"wall_seconds": s, "devices": n}`` itself; anything else gives ``None`` (unknown)."""
    if not isinstance(meta, dict):
        return None
    if isinstance(meta.get("timing"), dict):
        meta = meta["timing"]
    if "wall_seconds" not in meta:
        return None
    return StepTime.from_dict(meta)


def format_timing_table(steps: dict[str, StepTime]) -> str:
    """A text table of the breakdown, ending with the paper's one-line form
    ``total (supernet, samples, final)`` in device-hours (unknown steps shown as "-")."""
    lines = [f"{'step':<34} {'wall (h)':>9} {'devices':>7} {'device-h':>9}"]
    for name in [*STEPS, *sorted(set(steps) - set(STEPS))]:
        t = steps.get(name)
        title = STEP_TITLES.get(name, name)
        if t is None:
            lines.append(f"{title:<34} {'-':>9} {'-':>7} {'-':>9}")
        else:
            lines.append(f"{title:<34} {t.wall_seconds / 3600:>9.3f} {t.devices:>7d} {t.device_hours:>9.3f}")
    total = sum(t.device_hours for t in steps.values())
    parts = ", ".join(f"{steps[s].device_hours:.3g}" if s in steps else "-" for s in STEPS)
    lines.append(f"{'total':<34} {'':>9} {'':>7} {total:>9.3f}")
    lines.append(f"search time: {total:.3g} device-hours ({parts})")
    return "\n".join(lines)
