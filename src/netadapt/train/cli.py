"""``netadapt train-supernet``: train a super-network from a YAML config."""

from __future__ import annotations

import argparse

from netadapt.config import load_config
from netadapt.train.config import SupernetTrainConfig
from netadapt.train.loop import train_supernet

__all__ = ["register", "run_train_supernet"]


def run_train_supernet(args: argparse.Namespace) -> int:
    """Handler of ``train-supernet``: load the config, apply overrides, train; exit code 0."""
    overrides = list(args.set or [])
    if args.run_dir is not None:
        overrides.append(f"run_dir={args.run_dir}")
    config = load_config(SupernetTrainConfig, args.config, overrides)
    path = train_supernet(config)
    print(path)  # the result, for scripts: the one line on standard output
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train-supernet`` subcommand."""
    p = subparsers.add_parser(
        "train-supernet",
        help="train a super-network with ordered dropout (resumes when rerun)",
        description=(
            "Train a super-network with ordered dropout (paper §2.3). Rerunning the same command resumes "
            "from the last checkpoint. Multi-GPU: torchrun --nproc_per_node N -m netadapt train-supernet ..."
        ),
    )
    p.add_argument(
        "--config", metavar="FILE.yaml", help="training config (see configs/supernet_*.yaml); default: built-in digits"
    )
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a config value, e.g. --set epochs=3 (repeatable)"
    )
    p.add_argument("--run-dir", metavar="DIR", help="run folder (overrides run_dir of the config)")
    p.set_defaults(func=run_train_supernet)
