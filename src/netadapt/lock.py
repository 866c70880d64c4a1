"""One writer per run folder: an advisory lock file ``RUN_DIR/.lock``.

Two processes writing one run folder would interleave their records (every search sample twice
in ``history.jsonl``) or train the same network twice.  Every stage that writes a run folder
(``train-supernet``, ``search``, ``run``) therefore holds :func:`run_folder_lock` on it while it
works.  The lock is ``fcntl.flock`` on ``.lock``, which holds ``{"pid", "host", "started"}`` of
its owner:

* the kernel releases a ``flock`` when its owner dies, even by ``kill -9``; the next process
  finds the dead owner's record, says so in a warning and takes the lock over;
* a live owner makes the second process stop at once with a one-line error naming its pid and
  host;
* within one process the lock is re-entrant (the pipeline's stages and the search function
  inside ``netadapt search`` lock folders their caller may already hold).

The lock file is removed when its owner finishes, and a run folder that the lock created and
that is still empty (the stage stopped on bad input) is removed too.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from netadapt.errors import NetAdaptError

__all__ = ["LOCK_FILE", "run_folder_lock"]

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"
# How long to wait for a lock still held after its recorded owner died on this host (a worker
# process that inherited the lock and has not yet noticed its parent is gone).
ORPHAN_WAIT_S = 10.0


@dataclass
class _Held:
    fd: int
    count: int
    created: bool  # the lock created the folder (removed on release when left empty)


# Folders this process holds, by real path: what makes the lock re-entrant.  Process-wide by
# nature (flock conflicts between two descriptors of one process too).
_HELD: dict[str, _Held] = {}


@contextmanager
def run_folder_lock(folder: str | os.PathLike, *, what: str = "run folder") -> Iterator[Path]:
    """Hold the lock of ``folder`` (created if missing) for the ``with`` block.

    Raises a one-line :class:`NetAdaptError` when another live process holds it; yields the
    folder's path.
    """
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(folder)
    held = _HELD.get(key)
    if held is not None:
        held.count += 1
    else:
        fd = _acquire(folder, what)
        held = _HELD[key] = _Held(fd, 1, created)
    try:
        yield folder
    finally:
        held.count -= 1
        if held.count == 0:
            del _HELD[key]
            _release(folder, held)


def _owner_record() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}


def _acquire(folder: Path, what: str) -> int:
    path = folder / LOCK_FILE
    deadline = time.monotonic() + ORPHAN_WAIT_S
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_owner(fd)
            os.close(fd)
            if _orphaned(owner) and time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            raise NetAdaptError(_busy_message(folder, what, owner)) from None
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                os.close(fd)
                raise
            log.warning("%s: file locks are not supported here (%s); not locking %s", path, exc.strerror, folder)
            return fd
        if not _same_file(fd, path):  # its previous owner removed it between our open and flock
            os.close(fd)
            continue
        previous = _read_owner(fd)
        if previous:
            log.warning(
                "%s %s: taking over the stale lock of pid %s on %s (started %s), which no longer holds it",
                what,
                folder,
                previous.get("pid", "?"),
                previous.get("host", "?"),
                previous.get("started", "?"),
            )
        record = json.dumps(_owner_record()).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        return fd


def _release(folder: Path, held: _Held) -> None:
    path = folder / LOCK_FILE
    try:
        if _same_file(held.fd, path):
            os.ftruncate(held.fd, 0)
            path.unlink()  # before unlocking: nobody can lock a file that is already gone
    except OSError as exc:
        log.warning("could not remove the lock file %s: %s", path, exc.strerror)
    finally:
        os.close(held.fd)  # releases the flock
    if held.created:
        with suppress(OSError):
            folder.rmdir()  # only succeeds when nothing was written


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _read_owner(fd: int) -> dict:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return True  # unknown: assume it runs
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _orphaned(owner: dict) -> bool:
    """The lock is held, but its recorded owner on this host is dead (a child holds it)."""
    return bool(owner) and owner.get("host") == socket.gethostname() and not _alive(owner.get("pid"))


def _busy_message(folder: Path, what: str, owner: dict) -> str:
    if not owner:
        return f"{what} {folder} is in use by another process; wait for it to finish or use another folder"
    who = f"pid {owner.get('pid', '?')} on {owner.get('host', '?')} (since {owner.get('started', '?')})"
    if _orphaned(owner):
        return (
            f"{what} {folder} is still locked by a process left behind by {who}, which is no longer running; "
            "stop that process or wait"
        )
    return f"{what} {folder} is in use by {who}; wait for it to finish or use another folder"
