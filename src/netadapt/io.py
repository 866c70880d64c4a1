"""Atomic file writing: a crash never leaves a half-written result, and a rerun resumes.

Every result file is written to a temporary file in the same folder, flushed to disk and
renamed over the target (``os.replace`` is atomic on POSIX and Windows).  A failed write (a
full disk, a read-only folder) removes the temporary file and raises an ``OSError`` that names
the target, which the command line prints as one line.  Reading a corrupt or non-UTF-8 file is
a one-line :class:`NetAdaptError` naming the file.
"""

from __future__ import annotations

import glob
import io
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import torch

from netadapt.errors import NetAdaptError

__all__ = ["append_jsonl", "atomic_write", "load_json", "read_jsonl", "read_text", "save_json", "save_torch"]


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``."""
    path = Path(path)
    with _naming(path):
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
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _with_path(exc, path) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _remove_stale_temporaries(path)
    return path


#: A temporary file of a write this much older than a finished write of the same file is left
#: by a process killed while writing (SIGKILL, power loss): nothing will rename it any more.
STALE_SECONDS = 3600.0


def _remove_stale_temporaries(path: Path) -> None:
    now = time.time()
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if now - stale.stat().st_mtime > STALE_SECONDS:
                stale.unlink()
        except OSError:  # gone already, or not ours to remove
            pass


def _with_path(exc: OSError, path: Path) -> OSError:
    """``exc`` naming ``path`` (a failed ``write`` or ``fsync`` names no file)."""
    if exc.filename is not None or exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror, str(path))


@contextmanager
def _naming(path: Path) -> Iterator[None]:
    """An ``OSError`` raised inside names ``path`` when it named no file."""
    try:
        yield
    except OSError as exc:
        raise _with_path(exc, path) from None


def save_json(path: str | os.PathLike, data: Any, *, indent: int | None = 1) -> Path:
    text = json.dumps(data, indent=indent, sort_keys=False) + "\n"
    return atomic_write(path, lambda f: f.write(text.encode()))


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    """The UTF-8 text of ``path``; a missing, unreadable or non-UTF-8 file is a one-line
    :class:`NetAdaptError` naming ``what`` (e.g. "architecture file")."""
    path = Path(path)
    if path.is_dir():
        raise NetAdaptError(f"{what} {path} is a folder, not a file")
    if not path.is_file():
        raise NetAdaptError(f"{what} {path} does not exist")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise NetAdaptError(f"{what} {path} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise NetAdaptError(f"{what} {path} cannot be read: {exc.strerror}") from None


def load_json(path: str | os.PathLike, expect: type | None = None) -> Any:
    """The JSON value in ``path``; invalid JSON, text that is not UTF-8 or, with ``expect``
    (``dict`` or ``list``), a value of another type is a one-line :class:`NetAdaptError` (a
    missing file stays a ``FileNotFoundError``)."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise NetAdaptError(f"{path} is not UTF-8 text (byte {exc.start}); the file is damaged") from None
    except json.JSONDecodeError as exc:
        raise NetAdaptError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); the file is damaged") from None
    if expect is not None and not isinstance(value, expect):
        wanted = {dict: "a mapping", list: "a list"}.get(expect, expect.__name__)
        raise NetAdaptError(f"{path} holds {type(value).__name__}, not {wanted}; the file is damaged")
    return value


def save_torch(path: str | os.PathLike, obj: Any) -> Path:
    # Serialized in memory first: torch.save into a file on a full disk fails with an
    # unhelpful RuntimeError, a plain write with OSError(ENOSPC) naming the file.
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write(path, lambda f: f.write(buffer.getbuffer()))


def append_jsonl(path: str | os.PathLike, record: Any) -> None:
    """Append one JSON line and flush it.  A torn last line from a crash is skipped by
    :func:`read_jsonl`, so a log can always be resumed."""
    path = Path(path)
    line = json.dumps(record) + "\n"
    with _naming(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def read_jsonl(path: str | os.PathLike, *, bad_lines: list[int] | None = None) -> list[Any]:
    """All complete records of a JSON-lines file (a torn final line is dropped).

    A complete line that is not valid JSON (damage, not a crash) is a one-line
    :class:`NetAdaptError` naming the file and line, unless ``bad_lines`` is given: its
    (1-based) number is then appended there and the line skipped.
    """
    path = Path(path)
    if not path.exists():
        return []
    records = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.endswith(b"\n"):
                break  # torn write from a crash
            try:
                line = raw.decode("utf-8").strip()
                if line:
                    records.append(json.loads(line))
            except ValueError:  # UnicodeDecodeError or JSONDecodeError
                if bad_lines is None:
                    raise NetAdaptError(f"{path}: line {number} is not valid JSON; the file is damaged") from None
                bad_lines.append(number)
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
