"""Elapsed time and time left, for the log lines of long stages (training, the search)."""

from __future__ import annotations

import time

__all__ = ["Eta", "format_duration"]


def format_duration(seconds: float) -> str:
    """``45s``, ``12m05s`` or ``3h04m``: a duration for a log line."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Eta:
    """Time left for ``total`` units of work at the rate since this object was made (when
    ``done`` units were already done: a resumed run counts only what it did itself)."""

    def __init__(self, total: int, done: int = 0) -> None:
        self.total = total
        self.first = done
        self.began = time.perf_counter()

    def text(self, done: int) -> str:
        """``3m10s elapsed, ETA 12m05s`` after ``done`` units (elapsed only before the first)."""
        elapsed = time.perf_counter() - self.began
        ran = done - self.first
        if ran <= 0:
            return f"{format_duration(elapsed)} elapsed"
        return f"{format_duration(elapsed)} elapsed, ETA {format_duration(max(0, self.total - done) * elapsed / ran)}"
