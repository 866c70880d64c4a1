"""``netadapt train-supernet``: train a super-network from a YAML config."""

from __future__ import annotations

import argparse
import os

from netadapt.config import load_config
from netadapt.config_flags import Flag, add_flags, flag_overrides
from netadapt.train.config import SupernetTrainConfig
from netadapt.train.loop import train_supernet

__all__ = ["FLAGS", "register", "run_train_supernet"]

FLAGS = (Flag("--run-dir", "run_dir", metavar="DIR", help="run folder, overriding the config's run_dir"),)


def run_train_supernet(args: argparse.Namespace) -> int:
    """Handler of ``train-supernet``: load the config, apply overrides, train; exit code 0."""
    config = load_config(SupernetTrainConfig, args.config, args.set, flags=flag_overrides(args, FLAGS))
    path = train_supernet(config)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one process prints it
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
    add_flags(p, SupernetTrainConfig, FLAGS)
    p.set_defaults(func=run_train_supernet)
