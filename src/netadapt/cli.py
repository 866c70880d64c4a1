"""The ``netadapt`` command line.

Each pipeline stage registers its own subcommands (``register(subparsers)`` in its package's
``cli`` module); this file only assembles them and turns :class:`NetAdaptError` into a one-line
message with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from netadapt import __version__
from netadapt.errors import NetAdaptError

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
    try:
        return int(args.func(args) or 0)
    except NetAdaptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
