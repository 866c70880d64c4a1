"""``netadapt run``, ``netadapt init`` and ``netadapt demo``.

``netadapt run --data FOLDER`` needs no config file: the folder is measured
(:mod:`netadapt.data.profile`), a budget preset (:mod:`netadapt.pipeline.presets`) sets how long
each stage runs, and the resolved config is written to the run folder (``config.yaml``) for editing.
``netadapt init`` writes that config, with a comment on every key, to start from.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from netadapt.config import config_from_dict, load_config, merge_mappings, parse_overrides
from netadapt.config_flags import Flag, add_flags, flag_overrides, flag_values
from netadapt.errors import NetAdaptError

__all__ = ["DATA_FLAGS", "DEMO_FLAGS", "RUN_FLAGS", "register", "summary_lines"]

log = logging.getLogger(__name__)

DEMO_CONFIG = Path(__file__).with_name("demo.yaml")


# ``--data FOLDER``'s choices of the search and the network (typed and documented by the RunConfig
# keys they set): they go into the measured config (presets.run_config_for_data), under --set;
# with --config they are refused, the file says all of it.
DATA_FLAGS = (
    Flag("--target", "search.search.target", help="with --data: the target as a fraction of the initial network's resource"),
    Flag("--metric", "search.metric", help="with --data: macs | params | latency:LUT.json | measured:BACKEND | command:'...'"),
    Flag(
        "--model",
        "supernet.model.name",
        show_default=False,
        help="with --data: zoo model (default: mobilenet_v1_cifar up to 64 px, mobilenet_v1 above)",
    ),
)
RUN_FLAGS = (
    Flag(
        "--run-dir",
        "run_dir",
        show_default=False,
        help="run folder (overrides run_dir; with --data default runs/<folder name>)",
    ),
)
DEMO_FLAGS = (Flag("--run-dir", "run_dir", show_default=False, help="run folder (default: runs/demo)"),)


def _add_data_arguments(p: argparse.ArgumentParser) -> None:
    from netadapt.pipeline.presets import BUDGETS, PUBLIC_BUDGETS
    from netadapt.pipeline.run import RunConfig

    p.add_argument(
        "--data", type=Path, metavar="FOLDER",
        help="an image folder: FOLDER/train/<class>/* and FOLDER/val/<class>/* (or test/); measured, no config needed",
    )  # fmt: skip
    p.add_argument(
        "--budget", choices=tuple(BUDGETS), metavar="{" + ",".join(PUBLIC_BUDGETS) + "}",
        help="with --data: how long each stage runs (default quick: ~30 min on 2 CPU cores for 10k images of 32x32; "
        "docs/configuration.md)",
    )  # fmt: skip
    add_flags(p, RunConfig, DATA_FLAGS)
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    add_flags(p, RunConfig, RUN_FLAGS)


def register(sub: argparse._SubParsersAction) -> None:
    from netadapt.pipeline.run import RunConfig

    p = sub.add_parser(
        "run",
        help="the whole flow: super-network → search → final training → export → report",
        description=(
            "The whole flow on a config file (--config) or on an image folder (--data, no config needed). "
            "Rerunning the same command resumes, skipping finished stages."
        ),
    )
    p.add_argument("--config", type=Path, help="run config (YAML); see configs/ and docs/configuration.md")
    _add_data_arguments(p)
    p.add_argument("--print-config", action="store_true", help="print the config (with comments) and exit without running")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "init",
        help="write a commented run config to start from (measured from an image folder with --data)",
        description="Write a run config with a comment on every key; edit it, then `netadapt run --config FILE`.",
    )
    p.add_argument("--out", type=Path, default=Path("netadapt.yaml"), help="file to write (default: netadapt.yaml)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    _add_data_arguments(p)
    p.set_defaults(func=_cmd_init)

    p = sub.add_parser("demo", help="the whole flow on the built-in digits data with a small network (about 3 minutes on CPU)")
    add_flags(p, RunConfig, DEMO_FLAGS)
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE", help="override a config key")
    p.set_defaults(func=_cmd_demo)


def _load(path: Path, args: argparse.Namespace, flags: tuple[Flag, ...]):
    """The run config of the YAML file at ``path``, then ``--set``, then the flags."""
    from netadapt.pipeline.run import RunConfig

    return load_config(RunConfig, path, args.overrides, flags=flag_overrides(args, flags))


def _from_data(args: argparse.Namespace) -> tuple[Any, Any]:
    """(run config, data profile) of ``--data FOLDER`` with the budget and overrides."""
    from netadapt.data.profile import profile_folder
    from netadapt.pipeline.presets import run_config_for_data
    from netadapt.pipeline.run import RunConfig

    given = flag_values(args, DATA_FLAGS + RUN_FLAGS)
    target = given.get("search.search.target", 0.5)
    if not 0 < target <= 1:
        raise NetAdaptError(f"--target is a fraction of the initial network's resource in (0, 1], got {target}")
    profile = profile_folder(args.data)
    log.info("measured %s", profile.summary())
    data = run_config_for_data(
        profile, args.budget or "quick", target=target, metric=given.get("search.metric", "macs"),
        model=given.get("supernet.model.name"), run_dir=given.get("run_dir"),
    )  # fmt: skip
    data = merge_mappings(data, parse_overrides(args.overrides))
    return config_from_dict(RunConfig, data), profile


def _config(args: argparse.Namespace) -> tuple[Any, Any]:
    """(run config, data profile or None) of ``run``'s or ``init``'s arguments."""
    if getattr(args, "config", None) is not None and args.data is not None:
        raise NetAdaptError("give --config FILE or --data FOLDER, not both (--set changes a config's keys)")
    if args.data is not None:
        return _from_data(args)
    if getattr(args, "config", None) is None:
        raise NetAdaptError("give --data FOLDER (an image folder; no config needed) or --config FILE")
    given = ["--budget"] if args.budget is not None else []
    given += [flag.name for flag in DATA_FLAGS if flag.dest in args]
    if given:  # they build a config from a folder; a config file already says all of it
        raise NetAdaptError(
            f"{', '.join(given)} apply to --data FOLDER; with --config change the file or use --set "
            "(e.g. --set search.search.target=0.3 --set search.metric=params --set supernet.model.name=mobilenet_v2_cifar)"
        )
    return _load(args.config, args, RUN_FLAGS), None


def _commented(config: Any, profile: Any, budget: str | None) -> str:
    from netadapt.config_doc import commented_yaml

    lines = ["netadapt run config: every key of docs/configuration.md, with its default or chosen value."]
    if profile is not None:
        lines += [f"Made by `netadapt run --data` ({budget} budget) from the measured folder:", *_wrap(profile.summary())]
    lines += [
        "The super-network settings (optimizer, schedule, model.options) are the 'small' recipe of",
        "netadapt/train/recipes.py, written out. Run it with: netadapt run --config THIS_FILE",
    ]
    return commented_yaml(config, "\n".join(lines))


def _wrap(text: str) -> list[str]:
    import textwrap

    return ["  " + line for line in textwrap.wrap(text, 94)]


def _cmd_run(args: argparse.Namespace) -> int:
    import torch

    from netadapt.io import load_json, save_json
    from netadapt.layout import RunLayout
    from netadapt.pipeline.run import run_pipeline

    config, profile = _config(args)
    if profile is not None:
        # Half the cores: PyTorch's threads spin while they wait, and on a machine with other
        # work (or data loaders) more threads than free cores made training 10x slower here.
        torch.set_num_threads(int(os.environ.get("NETADAPT_THREADS", max(1, (os.cpu_count() or 1) // 2))))
    if args.print_config:
        print(_commented(config, profile, args.budget or "quick"), end="")
        return 0
    layout = RunLayout(Path(config.run_dir))
    if profile is not None:
        os.makedirs(layout.root, exist_ok=True)
        save_json(layout.root / "data_profile.json", profile.to_dict())
        log.info("run folder %s: the resolved config will be in %s (edit it and run with --config)", layout.root, layout.config)
    report = run_pipeline(config)
    summary = load_json(layout.summary)
    print()
    print("\n".join(summary_lines(summary)))
    print()
    print(f"report: {report}")
    print(f"exported model: {layout.export_dir} (each file carries its preprocessing and class names)")
    return 0


def _cmd_init(args: argparse.Namespace) -> int:
    from netadapt.io import atomic_write

    if args.data is None:  # a template: the quick budget on a folder still to be named
        raise NetAdaptError("give --data FOLDER: the config's input size, mean, std and classes are measured from it")
    if args.out.is_dir():
        raise NetAdaptError(f"{args.out} is a folder; --out names the config file to write (e.g. {args.out / 'run.yaml'})")
    config, profile = _config(args)
    if args.out.exists() and not args.force:
        raise NetAdaptError(f"{args.out} exists; use --force to overwrite it")
    _check_network(config, profile)
    text = _commented(config, profile, args.budget or "quick")
    atomic_write(args.out, lambda f: f.write(text.encode()))
    print(f"wrote {args.out}; run it with: netadapt run --config {args.out}")
    return 0


def _check_network(config: Any, profile: Any) -> None:
    """The config's network builds for the folder's classes and images, and the search's metric
    and score fit it: a config written by ``init`` runs (``run`` checks the same before training)."""
    from netadapt.pipeline.run import check_search
    from netadapt.train.loop import model_for

    size = config.supernet.data.image_size or profile.image_size
    check_search(config, model_for(config.supernet, len(profile.classes), size))


def _cmd_demo(args: argparse.Namespace) -> int:
    import torch

    from netadapt.io import load_json
    from netadapt.layout import RunLayout
    from netadapt.pipeline.run import run_pipeline

    # Two small processes' worth of work on two cores: one thread avoids oversubscription.
    torch.set_num_threads(int(os.environ.get("NETADAPT_THREADS", "1")))
    config = _load(DEMO_CONFIG, args, DEMO_FLAGS)
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
    entries = [(title, summary[key]) for key, title in _ROWS if summary.get(key)]
    # wide enough for a ResNet's billions of MACs and tens of millions of parameters
    macs_w = max([12] + [len(f"{e['macs']:,}") + 2 for _, e in entries])
    params_w = max([10] + [len(f"{e['params']:,}") + 2 for _, e in entries])
    lines.append(header + f"{'MACs':>{macs_w}}{'params':>{params_w}}{'latency ms':>12}")
    for title, entry in entries:
        cells = []
        for (name, _, scale, digits), w in zip(columns, widths, strict=True):
            value = entry.get(name)
            cells.append(f"{'-' if value is None else f'{scale * value:.{digits}f}':>{w}}")
        lat = "-" if entry.get("latency_ms") is None else f"{entry['latency_ms']:.3f}"
        lines.append(f"{title:<25}" + "".join(cells) + f"{entry['macs']:>{macs_w},}{entry['params']:>{params_w},}{lat:>12}")
    images = summary.get("images")
    if images:  # what the numbers are measured on
        where = f" ({images['val_source']})" if images.get("val_source") else ""
        lines.append(
            f"measured on {images.get('val', 0):,} validation images{where}; trained on {images.get('train', 0):,} images, "
            f"{images.get('heldout', 0):,} more held out for the search"
        )
    return lines
