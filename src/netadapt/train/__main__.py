"""``python -m netadapt.train``: the ``train-supernet`` command on its own (also under torchrun:
``torchrun --nproc_per_node N -m netadapt.train --config FILE.yaml``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from netadapt.errors import NetAdaptError
from netadapt.train.cli import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m netadapt.train")
    sub = parser.add_subparsers(dest="command")
    register(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "train-supernet":
        argv = ["train-supernet", *argv]
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    try:
        return args.func(args)
    except NetAdaptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
