"""``netadapt search`` and ``netadapt search-timing``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from netadapt.config import load_config
from netadapt.config_flags import Flag, add_flags, flag_overrides
from netadapt.errors import NetAdaptError

__all__ = ["FLAGS", "register"]

log = logging.getLogger(__name__)

METRIC_HELP = (
    "macs | params | latency:LUT.json | measured:onnxruntime|torch|cuda[:THREADS] | "
    "command:'CMD {model}' (CMD prints the value alone on its last line)"
)


# The flags of ``netadapt search``, each setting one SearchRunConfig key: its type, choices and
# default come from the field, its help from the field's comment unless given here.
FLAGS = (
    Flag("--supernet", "supernet", metavar="FILE"),
    Flag("--metric", "metric", help=f"resource to reduce: {METRIC_HELP}"),
    Flag("--metric-timeout", "metric_timeout", metavar="SECONDS"),
    Flag("--score", "score", help="how samples are compared: top1 (classification); rmse, rel, delta1-3, mae (depth)"),
    Flag("--target", "search.target", help="target: a fraction of the initial resource, or with --absolute in its unit"),
    Flag("--absolute", "search.target_mode", const="absolute", help="--target is in the metric's unit (MACs, ms, ...)"),
    Flag(
        "--samples",
        "search.samples",
        none=("per-layer", "layers"),
        metavar="J",
        help="samples per iteration, or 'per-layer' (one per layer, appendix D.2)",
    ),
    Flag("--layers", "search.layers", metavar="L"),
    Flag("--reduction", "search.initial_reduction", help="first iteration's reduction, a fraction of the initial resource"),
    Flag("--decay", "search.decay"),
    Flag("--optimizer", "search.optimizer", help="mcd (NetAdaptV2) or scd (NetAdaptV1, one sample per layer)"),
    Flag("--selection", "search.selection", help="best score (the paper's rule), or NetAdaptV1's score loss per resource saved"),
    Flag("--shrink", "search.shrink", help="what a shrunk layer loses: filters and/or kernel size, or filters only"),
    Flag("--budgets", "search.budgets", metavar="B", help="family budgets (same unit as --target)"),
    Flag("--seed", "seed"),
    Flag("--run-dir", "run_dir", help="output folder (default: 'search' beside the super-network file)"),
    Flag("--device", "device", help="auto | cpu | cuda | cuda:N"),
    Flag("--workers", "eval.workers"),
    Flag("--batch-size", "batch_size"),
    Flag("--calibration-images", "eval.calibration_images"),
    Flag("--no-recalibrate", "eval.recalibrate_bn", const=False, help="keep the super-network's BatchNorm statistics"),
    Flag("--eval-mode", "eval.mode"),
    Flag("--data-root", "data_root"),
    Flag("--finetune-steps", "finetune_steps", help="NetAdaptV1 baseline: fine-tune each sample this many batches"),
    Flag("--supernet-hours", "supernet_hours"),
)


def register(subparsers: argparse._SubParsersAction) -> None:
    from netadapt.search.run import SearchRunConfig

    p = subparsers.add_parser(
        "search",
        help="search a trained super-network for a sub-network meeting a resource target",
        description=(
            "Multi-layer coordinate descent (NetAdaptV2 §2.4) over a trained super-network: every iteration "
            "makes J samples by shrinking L layers of the previous best until a scheduled resource reduction is "
            "met, scores them on the reserved held-out images with shared weights and keeps the best.  Rerun the "
            "same command to resume an interrupted search."
        ),
    )
    add_flags(p, SearchRunConfig, FLAGS)
    p.add_argument("--config", metavar="YAML", help="a SearchRunConfig YAML file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.set_defaults(func=run_command)

    t = subparsers.add_parser("search-timing", help="print the search-time breakdown of a run folder (paper Table 1)")
    t.add_argument("run_dir", help="a search run folder (holding timing.json)")
    t.set_defaults(func=timing_command)


def config_from_args(args: argparse.Namespace):
    """The resolved :class:`~netadapt.search.run.SearchRunConfig`: defaults, then the YAML file,
    then ``--set`` overrides, then the flags (checked once, after all of them)."""
    from netadapt.search.run import SearchRunConfig

    return load_config(SearchRunConfig, args.config or None, args.set, flags=flag_overrides(args, FLAGS))


def run_command(args: argparse.Namespace) -> int:
    from netadapt.search.run import run_search
    from netadapt.search.timing import format_timing_table, load_timing

    config = config_from_args(args)
    result = run_search(config)
    run_dir = result.run_dir or Path(".")
    initial = result.trajectory[0]
    name = result.constrained
    print(
        f"{'reached' if result.reached_target else 'did not reach'} the target {result.target:g} after "
        f"{len(result.trajectory) - 1} iterations ({result.evaluations} samples evaluated)"
    )
    share = f" ({100 * result.resource / initial.resource:.1f}%)" if initial.resource > 0 else ""
    print(f"{name}: {initial.resource:g} -> {result.resource:g}{share}")
    print(f"held-out {result.score_name or 'score'}: {initial.score:.4f} -> {result.score:.4f}")
    print(f"architecture: {run_dir / 'final_arch.json'}; family of {len(result.family)}: {run_dir / 'family.json'}")
    timing = run_dir / "timing.json"
    if timing.exists():
        print(format_timing_table(load_timing(timing)))
    return 0 if result.reached_target else 1


def timing_command(args: argparse.Namespace) -> int:
    from netadapt.search.timing import format_timing_table, load_timing

    path = Path(args.run_dir) / "timing.json"
    if not path.exists():
        raise NetAdaptError(f"{path} does not exist (not a search run folder?)")
    print(format_timing_table(load_timing(path)))
    return 0
