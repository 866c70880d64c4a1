"""The ``netadapt`` command line.

Each pipeline stage registers its own subcommands (``register(subparsers)`` in its package's
``cli`` module); this file only assembles them and turns :class:`NetAdaptError` into a one-line
message with exit status 2.  So are the file-system errors a user can fix (a full disk, a
read-only folder, an output folder under a file), naming the file.  SIGTERM is handled like
Ctrl-C: ``finally`` blocks run (a measuring command's processes are ended, its temporary folder
and the run folder's lock removed) and the command exits with status 143.

At start-up the process keeps the memory it frees (:func:`netadapt.allocator.retain_freed_memory`,
faster CPU training steps); ``NETADAPT_MALLOC=system`` leaves glibc's defaults.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from netadapt.allocator import retain_freed_memory
from netadapt.errors import NetAdaptError
from netadapt.version import __version__

__all__ = ["main"]

# Stage modules that contribute subcommands, in the order of the pipeline.
_STAGES = (
    "netadapt.model.cli",
    "netadapt.train.cli",
    "netadapt.resources.cli",
    "netadapt.search.cli",
    "netadapt.depth.cli",
    "netadapt.pipeline.cli",
    "netadapt.report.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netadapt",
        description="NetAdaptV2: shrink a network to a latency, MAC or measured budget while keeping accuracy.",
    )
    parser.add_argument("--version", action="version", version=f"netadapt {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _STAGES:
        importlib.import_module(name).register(sub)
    return parser


# File-system errors that are the user's to fix; printed as one line naming the file.
_FILE_ERRORS = frozenset(
    {
        errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR,
        errno.EEXIST, errno.ENOENT, errno.ENAMETOOLONG, errno.ELOOP,
    }
)  # fmt: skip


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that cleanup runs as after Ctrl-C."""


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (main thread only; restored after)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: object) -> None:
        raise Terminated("terminated")

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def describe_os_error(exc: OSError) -> str:
    """``out/x.json: No space left on device``: the file and the reason, one line."""
    what = exc.strerror or type(exc).__name__
    return f"{exc.filename}: {what}" if exc.filename is not None else what


def out_of_memory(exc: BaseException) -> str | None:
    """A one-line message for PyTorch running out of memory (a GPU's, or the CPU allocator's), else ``None``."""
    text = str(exc)
    torch = sys.modules.get("torch")  # loaded by whatever ran out of memory (this module does not import it)
    gpu = torch is not None and isinstance(exc, torch.OutOfMemoryError)
    if not gpu and "can't allocate memory" not in text:
        return None
    wanted = re.search(r"tried to allocate ([0-9.]+ ?[KMGT]i?B|(\d+) bytes)", text, re.IGNORECASE)
    size = (f"{int(wanted.group(2)) / 2**30:.1f} GiB" if wanted.group(2) else wanted.group(1)) if wanted else None
    return (
        f"out of memory{f' (it tried to allocate {size})' if size else ''}; lower data.batch_size "
        "(or data.eval_batch_size, search.batch_size), data.image_size or the model's width, then rerun the "
        "same command to resume"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    malloc = os.environ.get("NETADAPT_MALLOC", "retained")
    if malloc not in ("retained", "system"):
        print(f"error: NETADAPT_MALLOC must be 'retained' or 'system', got {malloc!r}", file=sys.stderr)
        return 2
    if malloc == "retained":  # training steps fault freed memory back in otherwise (netadapt.allocator)
        retain_freed_memory()
    try:
        with sigterm_as_interrupt():
            return int(args.func(args) or 0)
    except NetAdaptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # an OSError; `netadapt zoo | head`: the reader left; no traceback, no error on exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's flush of stdout at exit would fail again
        return 0
    except OSError as exc:
        if exc.errno not in _FILE_ERRORS:
            raise
        print(f"error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # torch.OutOfMemoryError (a GPU's) is one too
        message = out_of_memory(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
