"""``netadapt run --config FILE.yaml`` and ``netadapt demo``."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from netadapt.config import load_config

__all__ = ["register", "summary_lines"]

log = logging.getLogger(__name__)

DEMO_CONFIG = Path(__file__).with_name("demo.yaml")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="the whole flow: super-network → search → final training → export → report")
    p.add_argument("--config", type=Path, required=True, help="run config (YAML); see configs/")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--run-dir", help="run folder (overrides run_dir)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("demo", help="the whole flow on the built-in digits data with a small network (about 3 minutes on CPU)")
    p.add_argument("--run-dir", default="runs/demo", help="run folder (default: runs/demo)")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE", help="override a config key")
    p.set_defaults(func=_cmd_demo)


def _load(path: Path, overrides: list[str] | None, run_dir: str | None):
    from netadapt.pipeline.run import RunConfig

    extra = list(overrides or [])
    if run_dir:
        extra.append(f"run_dir={run_dir}")
    return load_config(RunConfig, path, extra)


def _cmd_run(args: argparse.Namespace) -> int:
    from netadapt.io import load_json
    from netadapt.pipeline.layout import RunLayout
    from netadapt.pipeline.run import run_pipeline

    config = _load(args.config, args.overrides, args.run_dir)
    report = run_pipeline(config)
    summary = load_json(RunLayout(Path(config.run_dir)).summary)
    print()
    print("\n".join(summary_lines(summary)))
    print()
    print(f"report: {report}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import torch

    from netadapt.io import load_json
    from netadapt.pipeline.layout import RunLayout
    from netadapt.pipeline.run import run_pipeline

    # Two small processes' worth of work on two cores: one thread avoids oversubscription.
    torch.set_num_threads(int(os.environ.get("NETADAPT_THREADS", "1")))
    config = _load(DEMO_CONFIG, args.overrides, args.run_dir)
    report = run_pipeline(config)
    layout = RunLayout(Path(config.run_dir))
    summary = load_json(layout.summary)
    print()
    print(f"netadapt demo: {summary['model']} on the built-in digits (scikit-learn), search metric {summary['metric']}")
    print("\n".join(summary_lines(summary)))
    print()
    print(f"results in {layout.root}: report {report}, exported model in {layout.export_dir}")
    return 0


_ROWS = (("initial", "initial network"), ("discovered", "discovered (NetAdaptV2)"), ("baseline", "uniform baseline"))


def summary_lines(summary: dict) -> list[str]:
    """The trained networks of a run's ``summary.json`` as a text table: top-1 accuracy, or for
    depth RMSE, REL and δ1–δ3 (marked "synthetic" when measured on the synthetic scenes)."""
    depth = summary.get("task") == "depth"
    lines = []
    if depth:
        synthetic = summary.get("dataset") == "synthetic_depth"
        where = "SYNTHETIC depth scenes (not NYU Depth V2)" if synthetic else f"{summary.get('dataset')} validation set"
        lines.append(f"{summary.get('model')}: depth metrics on the {where}; search metric {summary.get('metric')}")
        tag = " synth" if synthetic else ""
        columns = (("rmse", f"RMSE m{tag}", 1.0, 3), ("rel", f"REL{tag}", 1.0, 3))
        columns += tuple((f"delta{k}", f"δ{k} %{tag}", 100.0, 1) for k in (1, 2, 3))
    else:
        columns = (("accuracy", "top-1 %", 100.0, 1),)
    widths = [max(9, len(title) + 2) for _, title, _, _ in columns]
    header = f"{'network':<25}" + "".join(f"{t:>{w}}" for (_, t, _, _), w in zip(columns, widths, strict=True))
    lines.append(header + f"{'MACs':>12}{'params':>10}{'latency ms':>12}")
    for key, title in _ROWS:
        entry = summary.get(key)
        if not entry:
            continue
        cells = []
        for (name, _, scale, digits), w in zip(columns, widths, strict=True):
            value = entry.get(name)
            cells.append(f"{'-' if value is None else f'{scale * value:.{digits}f}':>{w}}")
        lat = "-" if entry.get("latency_ms") is None else f"{entry['latency_ms']:.3f}"
        lines.append(f"{title:<25}" + "".join(cells) + f"{entry['macs']:>12,}{entry['params']:>10,}{lat:>12}")
    return lines
