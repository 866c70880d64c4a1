"""Atomic file writing: a crash never leaves a half-written result, and a rerun resumes.

Every result file is written to a temporary file in the same folder, flushed to disk and
renamed over the target (``os.replace`` is atomic on POSIX and Windows).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from netadapt.errors import NetAdaptError

__all__ = ["append_jsonl", "atomic_write", "load_json", "read_jsonl", "save_json", "save_torch"]


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates the file for its owner only; give results the usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_json(path: str | os.PathLike, data: Any, *, indent: int | None = 1) -> Path:
    text = json.dumps(data, indent=indent, sort_keys=False) + "\n"
    return atomic_write(path, lambda f: f.write(text.encode()))


def load_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def save_torch(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write(path, lambda f: torch.save(obj, f))


def append_jsonl(path: str | os.PathLike, record: Any) -> None:
    """Append one JSON line and flush it.  A torn last line from a crash is skipped by
    :func:`read_jsonl`, so a log can always be resumed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | os.PathLike) -> list[Any]:
    """All complete records of a JSON-lines file (a torn final line is dropped)."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break  # torn write from a crash
            line = line.strip()
            if line:
                records.append(json.loads(line))
    return records


def load_torch_file(
    path: str | os.PathLike, *, fmt: str, version: int, what: str, map_location: str | torch.device = "cpu"
) -> dict:
    """Read a netadapt torch file of format ``fmt`` and ``version``; one-line errors name ``what``
    (e.g. "super-network file") for a missing, unreadable, foreign or too-new file.  Only tensors
    and plain data are unpickled (``weights_only``), never code."""
    path = Path(path)
    if not path.is_file():
        raise NetAdaptError(f"{what} {path} does not exist")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise NetAdaptError(f"{path} is not a readable {what} ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise NetAdaptError(f"{path} is not a netadapt {what}")
    if data.get("version") != version:
        raise NetAdaptError(f"{path}: {what} version {data.get('version')!r} is not supported")
    return data
