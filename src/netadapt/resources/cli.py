"""``netadapt lut build`` and ``netadapt lut check``: latency lookup tables."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from netadapt.errors import NetAdaptError
from netadapt.io import save_json
from netadapt.model.checkpoint import load_supernet, supernet_from_build
from netadapt.model.cli import add_option_argument, option_values
from netadapt.model.supernet import SuperNet, build_supernet
from netadapt.resources.lut import load_table
from netadapt.resources.lut_build import FITS, build_table, check_table
from netadapt.resources.networks import NETWORK_CHUNK, NETWORK_MIN_TIME, NETWORK_ROUNDS
from netadapt.resources.timing import BACKENDS, STATISTICS, Measurer

__all__ = ["register"]

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    lut = sub.add_parser("lut", help="latency lookup tables: build one by measurement, check its predictions")
    lut_sub = lut.add_subparsers(dest="lut_command", metavar="ACTION", required=True)

    p = lut_sub.add_parser("build", help="measure every layer configuration of a model's search space")
    p.add_argument("model", help="zoo model name, or a super-network file (.pt) whose search space to use")
    p.add_argument("--out", type=Path, required=True, help="table file (JSON); an unfinished one is resumed")
    p.add_argument("--backend", choices=BACKENDS, default="onnxruntime", help="where to measure (default: onnxruntime)")
    p.add_argument("--threads", type=int, default=1, help="fixed thread count (default: 1)")
    p.add_argument(
        "--statistic", choices=STATISTICS, default="min",
        help="timing statistic of entries and fit: min (steady on a shared machine, default) or median",
    )  # fmt: skip
    p.add_argument("--input-size", type=int, help="input resolution (default: the model's)")
    p.add_argument("--num-classes", type=int, help="number of classes (default: the model's)")
    p.add_argument("--width-mult", type=float, help="width multiplier (MobileNet models)")
    add_option_argument(p)
    p.add_argument("--grid", type=int, help="measure channel counts on a grid of this step and interpolate (e.g. 8)")
    p.add_argument("--warmup", type=int, default=5, help="warm-up runs per measurement (default: 5)")
    p.add_argument("--min-time", type=float, default=0.05, help="seconds of timed runs per layer (default: 0.05)")
    p.add_argument("--calibrate", type=int, default=20, help="whole networks measured for the fit (default: 20)")
    _network_options(p, "--network-time", "--network-rounds", "--network-chunk", "calibration network")
    p.add_argument(
        "--fit", choices=FITS, default="weights",
        help="weights: scale, cost per parameter and constant (default); linear: scale and constant; offset: constant only",
    )  # fmt: skip
    p.add_argument("--passes", type=int, default=1, help="measure every entry this many times, keep the fastest (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the calibration networks")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_build)

    p = lut_sub.add_parser("check", help="predicted against measured latency of random sub-networks")
    p.add_argument("table", type=Path, help="latency table file")
    p.add_argument("--samples", type=int, default=100, help="random sub-networks (default: 100)")
    p.add_argument("--seed", type=int, default=1, help="seed of the sampled sub-networks (default: 1)")
    _network_options(p, "--min-time", "--rounds", "--chunk", "network")
    p.add_argument(
        "--passes", type=int, default=2,
        help="measure every network in this many passes, each with a fresh session (default: 2)",
    )  # fmt: skip
    p.add_argument(
        "--refit", action="store_true",
        help="refit the table to its calibration networks measured with the check, and save it (the machine's speed drifts)",
    )  # fmt: skip
    p.add_argument(
        "--no-drift", action="store_true",
        help="do not measure the table's calibration networks again to report how the machine's speed changed",
    )  # fmt: skip
    p.add_argument("--tolerance", type=float, default=0.10, help="relative error counted as accurate (default: 0.10)")
    p.add_argument("--require", type=float, help="exit with status 1 if the share within tolerance is below this")
    p.add_argument("--out", type=Path, help="also write every row and the summary to this JSON file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_check)


def _network_options(p: argparse.ArgumentParser, time_flag: str, rounds_flag: str, chunk_flag: str, what: str) -> None:
    """How whole networks are timed (:func:`~netadapt.resources.networks.measure_networks`)."""
    p.add_argument(
        time_flag, type=float, default=NETWORK_MIN_TIME,
        help=f"seconds of timed runs per {what} and pass (default: {NETWORK_MIN_TIME})",
    )  # fmt: skip
    p.add_argument(
        rounds_flag, type=int, default=NETWORK_ROUNDS,
        help=f"windows each {what}'s time is split into, interleaved with the others (default: {NETWORK_ROUNDS})",
    )  # fmt: skip
    p.add_argument(
        chunk_flag, type=int, default=NETWORK_CHUNK,
        help=f"networks kept ready at once; lower it if memory runs short (default: {NETWORK_CHUNK})",
    )  # fmt: skip


def _supernet(args: argparse.Namespace) -> SuperNet:
    path = Path(args.model)
    if path.suffix in (".pt", ".pth") or path.is_file():
        if any(v is not None for v in (args.input_size, args.num_classes, args.width_mult, args.option)):
            raise NetAdaptError(
                "--input-size, --num-classes, --width-mult and --option apply to zoo models, not super-network files"
            )
        net, _ = load_supernet(path)
        return net
    return build_supernet(
        args.model, num_classes=args.num_classes, input_size=args.input_size, width_mult=args.width_mult,
        **option_values(args.option),
    )  # fmt: skip


def _cmd_build(args: argparse.Namespace) -> int:
    if args.grid is not None and args.grid < 1:
        raise NetAdaptError(f"--grid must be a positive channel step, got {args.grid}")
    if args.min_time <= 0:
        raise NetAdaptError(f"--min-time must be positive, got {args.min_time}")
    net = _supernet(args)
    measurer = Measurer(backend=args.backend, threads=args.threads, warmup=args.warmup, min_time=args.min_time)
    table = build_table(
        net, args.out, measure=measurer, grid=args.grid, statistic=args.statistic, calibrate=args.calibrate, fit=args.fit,
        passes=args.passes, seed=args.seed, network_time=args.network_time, network_rounds=args.network_rounds,
        network_chunk=args.network_chunk,
        progress=not args.no_progress,
    )  # fmt: skip
    print(
        f"{args.out}: {len(table.entries)} entries for {table.model} on {table.backend} "
        f"({table.threads} thread(s), {table.environment.get('device')}); fitted scale {table.scale:.3f}, "
        f"{table.param_cost:.4f} ms per million parameters, per-network constant {table.constant:+.4f} ms "
        f"({table.statistic} timings)"
    )
    full = table.predict(net, net.space.full())
    print(f"predicted latency of the full network: {full:.3f} ms")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    table = load_table(args.table)
    net = supernet_from_build(table.build)  # weights do not change the time: random ones will do
    measurer = Measurer(backend=table.backend, threads=table.threads, min_time=args.min_time)
    result = check_table(
        table,
        net,
        samples=args.samples,
        seed=args.seed,
        measure=measurer,
        passes=args.passes,
        rounds=args.rounds,
        chunk=args.chunk,
        tolerance=args.tolerance,
        calibration_networks=not args.no_drift,
        refit=args.refit,
        progress=not args.no_progress,
    )
    print(f"{'#':>4} {'predicted ms':>13} {'measured ms':>12} {'error':>8}")
    for i, row in enumerate(result.rows):
        print(f"{i:>4} {row.predicted:>13.3f} {row.measured:>12.3f} {row.error:>+8.1%}")
    print(
        f"{table.model} on {table.backend} ({table.threads} thread(s)): {result.within:.1%} of {len(result.rows)} "
        f"sub-networks within ±{result.tolerance:.0%}; mean absolute error {result.mae:.3f} ms ({result.mape:.1%})"
    )
    if result.drift is not None:
        print(
            f"the table's calibration networks now run {result.drift:.3f}x their time at calibration (median); "
            + (
                f"the table was refit to them: scale {table.scale:.3f}, {table.param_cost:.4f} ms per million parameters, "
                f"constant {table.constant:+.4f} ms"
                if args.refit
                else "a ratio far from 1 means the machine's speed changed since the fit: --refit fits the table to the new measurements"
            )
        )
    if args.refit:
        table.save()
    if args.out is not None:
        save_json(args.out, {"table": str(args.table), "environment": table.environment, **result.to_dict()})
    if args.require is not None and result.within < args.require:
        print(f"below the required {args.require:.1%}")
        return 1
    return 0
