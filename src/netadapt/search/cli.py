"""``netadapt search`` and ``netadapt search-timing``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from netadapt.config import config_from_dict, merge_mappings, parse_overrides, read_yaml_mapping
from netadapt.errors import NetAdaptError

__all__ = ["register"]

log = logging.getLogger(__name__)

METRIC_HELP = (
    "macs | params | latency:LUT.json | measured:onnxruntime|torch|cuda[:THREADS] | "
    "command:'CMD {model}' (CMD prints the value alone on its last line)"
)


def _samples(text: str) -> int | None:
    if text in ("per-layer", "layers"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of samples or 'per-layer', got {text!r}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
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
    p.add_argument("--supernet", metavar="FILE", help="super-network file written by train-supernet")
    p.add_argument("--metric", help=f"resource to reduce: {METRIC_HELP} (default macs)")
    p.add_argument(
        "--metric-timeout",
        type=float,
        metavar="SECONDS",
        help="command: metric: seconds one run may take before its processes are killed and it is retried (default 600)",
    )
    p.add_argument("--score", help="how samples are compared: top1 (classification); rmse, rel, delta1-3, mae (depth)")
    p.add_argument("--target", type=float, help="target: a fraction of the initial resource (default 0.5)")
    p.add_argument("--absolute", action="store_true", help="--target is in the metric's unit (MACs, ms, ...)")
    p.add_argument(
        "--samples",
        type=_samples,
        default=argparse.SUPPRESS,  # absent unless given: 'per-layer' is None
        metavar="J",
        help="samples per iteration, or 'per-layer' (one per layer, appendix D.2) (default 200)",
    )
    p.add_argument("--layers", type=int, metavar="L", help="layers shrunk per sample (default 10)")
    p.add_argument("--reduction", type=float, help="first iteration's reduction, fraction of the initial resource (0.03)")
    p.add_argument("--decay", type=float, help="reduction decay per iteration (0.98)")
    p.add_argument("--optimizer", choices=("mcd", "scd"), help="mcd (NetAdaptV2) or scd (NetAdaptV1, one sample per layer)")
    p.add_argument("--selection", choices=("accuracy", "ratio"), help="best accuracy, or NetAdaptV1's accuracy/resource ratio")
    p.add_argument(
        "--shrink", choices=("any", "filters"), help="what a shrunk layer loses: filters and/or kernel size, or filters only"
    )
    p.add_argument("--budgets", type=float, nargs="+", metavar="B", help="family budgets (same unit as --target)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--run-dir", help="output folder (default: 'search' beside the super-network file)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--workers", type=int, help="evaluate samples in this many worker processes")
    p.add_argument("--batch-size", type=int, help="held-out batch size (default 256)")
    p.add_argument("--calibration-images", type=int, help="images for BatchNorm recalibration (default 2000)")
    p.add_argument("--no-recalibrate", action="store_true", help="keep the super-network's BatchNorm statistics")
    p.add_argument("--eval-mode", choices=("extract", "masked"), help="run samples extracted (default) or masked")
    p.add_argument("--data-root", help="the data folder, when it moved since training")
    p.add_argument("--finetune-steps", type=int, help="NetAdaptV1 baseline: fine-tune each sample this many batches")
    p.add_argument("--supernet-hours", type=float, help="super-network training time, when the file does not record it")
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

    flags = {
        "supernet": args.supernet,
        "metric": args.metric,
        "metric_timeout": args.metric_timeout,
        "score": args.score,
        "run_dir": args.run_dir,
        "seed": args.seed,
        "device": args.device,
        "batch_size": args.batch_size,
        "data_root": args.data_root,
        "finetune_steps": args.finetune_steps,
        "supernet_hours": args.supernet_hours,
    }
    search = {
        "target": args.target,
        "target_mode": "absolute" if args.absolute else None,
        "layers": args.layers,
        "initial_reduction": args.reduction,
        "decay": args.decay,
        "optimizer": args.optimizer,
        "selection": args.selection,
        "shrink": args.shrink,
        "budgets": list(args.budgets) if args.budgets else None,
    }
    evaluation = {
        "workers": args.workers,
        "calibration_images": args.calibration_images,
        "mode": args.eval_mode,
        "recalibrate_bn": False if args.no_recalibrate else None,
    }
    given = {k: v for k, v in flags.items() if v is not None}
    given["search"] = {k: v for k, v in search.items() if v is not None}
    if hasattr(args, "samples"):  # None = one sample per layer
        given["search"]["samples"] = args.samples
    given["eval"] = {k: v for k, v in evaluation.items() if v is not None}
    data = read_yaml_mapping(args.config) if args.config else {}
    data = merge_mappings(merge_mappings(data, parse_overrides(args.set)), given)
    return config_from_dict(SearchRunConfig, data)


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
    print(f"held-out {result.score or 'accuracy'}: {initial.accuracy:.4f} -> {result.accuracy:.4f}")
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
