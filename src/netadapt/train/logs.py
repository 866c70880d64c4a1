"""What a person watching training sees: a progress bar, per-epoch metric files, TensorBoard.

Per-epoch records are kept in the checkpoint and rewritten atomically to ``metrics.jsonl`` and
``metrics.csv`` after every epoch, so the files always agree with the checkpoint a resumed run
continues from (no duplicated or missing epochs after a crash).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from netadapt.io import atomic_write

__all__ = ["MetricsWriter", "progress_bar"]

log = logging.getLogger(__name__)


def progress_bar(total: int, *, enabled: bool, desc: str, initial: int = 0) -> tqdm:
    """A tqdm bar (loss, accuracy, images/s in its postfix; tqdm adds the ETA), shown only
    when ``enabled`` and standard error is a terminal."""
    show = enabled and sys.stderr.isatty()
    return tqdm(total=total, initial=initial, desc=desc, disable=not show, dynamic_ncols=True, leave=False, unit="step")


class MetricsWriter:
    """Writes the per-epoch history of a run (only where ``enabled``: rank 0)."""

    def __init__(self, run_dir: str | os.PathLike, *, enabled: bool = True, tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self._tb = None
        if enabled and tensorboard:
            try:  # TensorBoard is optional: used when installed, silently skipped when not
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                SummaryWriter = None
            if SummaryWriter is not None:
                self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))

    def write(self, history: list[dict[str, Any]]) -> None:
        """Rewrite ``metrics.jsonl`` and ``metrics.csv`` from ``history``; log the last record to TensorBoard."""
        if not self.enabled:
            return
        text = "".join(json.dumps(r) + "\n" for r in history)
        atomic_write(self.run_dir / "metrics.jsonl", lambda f: f.write(text.encode()))
        columns: list[str] = []
        for record in history:
            columns.extend(k for k in record if k not in columns)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)
        atomic_write(self.run_dir / "metrics.csv", lambda f: f.write(buf.getvalue().encode()))
        if self._tb is not None and history:
            last = history[-1]
            for key, value in last.items():
                if isinstance(value, int | float) and key not in ("epoch", "step"):
                    self._tb.add_scalar(key, value, last.get("step", 0))
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
