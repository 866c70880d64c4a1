"""``netadapt report RUN_DIR``."""

from __future__ import annotations

import argparse
from pathlib import Path

from netadapt.errors import NetAdaptError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write a Markdown report with plots for a run folder")
    p.add_argument("run_dir", type=Path, help="folder of a `netadapt run`")
    p.set_defaults(func=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    from netadapt.report.markdown import write_report

    if not args.run_dir.is_dir():
        raise NetAdaptError(f"run folder {args.run_dir} does not exist")
    path = write_report(args.run_dir)
    print(f"report written to {path}")
    return 0
