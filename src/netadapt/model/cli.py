"""``netadapt zoo``, ``netadapt describe`` and ``netadapt check-zoo``."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from netadapt.arch.files import NAMED_ARCHITECTURES, check_layer_names, load_architecture, read_architecture_file
from netadapt.arch.space import Architecture
from netadapt.errors import NetAdaptError
from netadapt.io import load_json
from netadapt.model.checkpoint import load_supernet, supernet_from_build
from netadapt.model.checks import check_zoo
from netadapt.model.describe import describe, format_table
from netadapt.model.supernet import SuperNet, build_supernet
from netadapt.model.zoo import MODELS, list_models
from netadapt.trace.elastic import GraphSuperNet
from netadapt.trace.report import COLUMNS, describe_traced
from netadapt.trace.sources import is_source
from netadapt.trace.weights import load_weights_

__all__ = ["register"]

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("zoo", help="list the models of the zoo")
    p.set_defaults(func=_cmd_zoo)

    p = sub.add_parser(
        "describe",
        help="MACs, parameters and a per-layer table of a model or architecture",
        description=(
            "MACs, parameters and a per-layer table (the paper's Table 8 columns). An architecture file written by "
            "netadapt run or search carries its model's build and needs nothing else; the paper's Tables 8-10 ship "
            "as files named table8, table9 and table10. A model to trace (torchvision:NAME, timm:NAME, "
            "module:FILE.py:FACTORY) lists its searchable and fixed layers, with why."
        ),
    )
    p.add_argument(
        "model",
        nargs="?",
        help="zoo model name (see `netadapt zoo`), a model to trace (torchvision:NAME, timm:NAME, module:FILE.py:FACTORY) "
        "or a super-network file; optional with --arch FILE or --run",
    )
    p.add_argument("--model", dest="model_option", metavar="MODEL", help="the same as the positional MODEL")
    p.add_argument("--weights", type=Path, help="state-dict file loaded into a traced model (weights_only)")
    p.add_argument(
        "--arch",
        help=f"architecture JSON file, or a shipped one: {', '.join(NAMED_ARCHITECTURES)} (default: the full network)",
    )
    p.add_argument("--run", type=Path, metavar="RUN_DIR", help="describe the network a `netadapt run` folder discovered")
    p.add_argument("--input-size", type=int, help="input resolution (default: the model's, or the file's)")
    p.add_argument("--num-classes", type=int, help="number of classes (default: the model's, or the file's)")
    p.add_argument("--width-mult", type=float, help="width multiplier (MobileNet models)")
    add_option_argument(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_describe)

    p = sub.add_parser(
        "check-zoo",
        help="build every zoo super-network, extract random sub-networks and check they agree",
    )
    p.add_argument("--samples", type=int, default=3, help="random architectures per model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", nargs="*", help="models to check (default: all)")
    p.set_defaults(func=_cmd_check_zoo)


def _cmd_zoo(args: argparse.Namespace) -> int:
    width = max(len(n) for n in MODELS)
    for name in list_models():
        print(f"{name.ljust(width)}  {MODELS[name][1]}")
    print()
    print("architectures shipped with netadapt (netadapt describe --arch NAME):")
    for short in NAMED_ARCHITECTURES:
        _, data = read_architecture_file(short)
        print(f"{short.ljust(width)}  {data.get('title', '')} ({data.get('model')})")
    return 0


def _describe_target(args: argparse.Namespace) -> tuple[SuperNet, Architecture | None, str | None]:
    """(super-network, architecture or None, title) that ``describe``'s arguments name."""
    build: dict | None = None
    arch = title = where = None
    data: dict = {}
    if args.run is not None and args.arch is not None:
        raise NetAdaptError("give --arch FILE or --run RUN_DIR, not both")
    if args.run is not None:
        # a run folder's layout: netadapt.layout
        final, build_file = args.run / "search" / "final_arch.json", args.run / "build.json"
        if not final.is_file():
            raise NetAdaptError(f"{args.run} holds no finished search ({final} is missing)")
        arch, data = read_architecture_file(final)
        where = final
        build = data.get("build") or (load_json(build_file) if build_file.is_file() else None)
        if build is None:
            raise NetAdaptError(f"{args.run} has no build.json; it is not a `netadapt run` folder")
        title = f"discovered network of {args.run}"
    elif args.arch is not None:
        arch, data = read_architecture_file(args.arch)
        where = args.arch
        build = data.get("build")
        title = data.get("title")
    if build is not None:
        if args.model is not None and args.model != build.get("model"):
            raise NetAdaptError(f"the architecture is of {build.get('model')}, not {args.model}")
        if args.option or args.width_mult is not None:
            raise NetAdaptError("the architecture file says how its network is built; --option and --width-mult do not apply")
        build = {**build}
        if args.input_size is not None:
            build["input_size"] = args.input_size
        if args.num_classes is not None:
            build["num_classes"] = args.num_classes
        try:
            net = supernet_from_build(build)
        except NetAdaptError as exc:
            raise NetAdaptError(f"architecture file {where}: {exc}") from None
    else:
        if args.model is None:
            raise NetAdaptError("name a model (see `netadapt zoo`), an architecture file (--arch) or a run folder (--run)")
        options = option_values(args.option)
        net = build_supernet(
            args.model, num_classes=args.num_classes, input_size=args.input_size, width_mult=args.width_mult, **options
        )
    if arch is not None:
        try:
            if arch.space == net.space.fingerprint:  # (another space's file is refused as such by validate)
                check_layer_names(data, net.space)
            arch = net.space.validate(arch)
        except NetAdaptError as exc:
            raise NetAdaptError(f"architecture file {where}: {exc}") from None
    return net, arch, title


def add_option_argument(p: argparse.ArgumentParser) -> None:
    """``--option KEY=VALUE`` (repeatable): a search-space option of a zoo model."""
    p.add_argument(
        "--option", action="append", metavar="KEY=VALUE",
        help="search-space option (model.options of a run, e.g. width_divisor=8); repeatable",
    )  # fmt: skip


def option_values(pairs: list[str] | None) -> dict[str, object]:
    """``["a=1", "b=x"]`` → ``{"a": 1, "b": "x"}`` (values read as YAML); a pair without ``=`` is an error."""
    from netadapt.config import text_value

    out: dict[str, object] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise NetAdaptError(f"--option {pair!r} must look like key=value")
        out[key.strip()] = text_value(text)
    return out


def _cmd_describe(args: argparse.Namespace) -> int:
    if args.model_option and args.model and args.model_option != args.model:
        raise NetAdaptError("name one model: describe MODEL or describe --model MODEL")
    args.model = args.model_option or args.model
    model = args.model
    if model is not None and Path(model).suffix in (".pt", ".pth") and Path(model).is_file():  # a super-network file
        if any(v is not None for v in (args.input_size, args.num_classes, args.width_mult, args.weights, args.run)):
            raise NetAdaptError(
                "--input-size, --num-classes, --width-mult, --weights and --run do not apply to a super-network file"
            )
        net, _ = load_supernet(model)
        return _print_description(net, load_architecture(args.arch, net.space) if args.arch else None, None, args)
    if model is not None and is_source(model):
        return _describe_traced(model, args)
    if args.weights is not None:
        raise NetAdaptError("--weights applies to a traced model (torchvision:, timm:, module:)")
    net, arch, title = _describe_target(args)
    return _print_description(net, arch, title, args)


def _print_description(net, arch, title, args: argparse.Namespace) -> int:
    if isinstance(net, GraphSuperNet):
        return _print_traced(net, arch, args)
    info = describe(net, arch)
    if args.json:
        print(json.dumps({**({"title": title} if title else {}), **info}, indent=1))
        return 0
    if title:
        print(title)
    print(f"{info['model']}  input {info['input_size']}x{info['input_size']}  classes {info['num_classes']}")
    print(f"MACs {info['macs']:,}  parameters {info['params']:,}  searchable layers {info['searchable_layers']}")
    print(format_table(info["layers"]))
    for note in info["notes"]:
        print(f"* {note}")
    return 0


def _describe_traced(model: str, args: argparse.Namespace) -> int:
    if args.width_mult is not None:
        raise NetAdaptError("--width-mult applies to zoo models")
    net = build_supernet(model, num_classes=args.num_classes, input_size=args.input_size)
    if args.weights is not None:
        load_weights_(net, args.weights)
    return _print_traced(net, load_architecture(args.arch, net.space) if args.arch else None, args)


def _print_traced(net, arch, args: argparse.Namespace) -> int:
    info = describe_traced(net, arch)
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    print(f"{info['model']}  input {info['input_size']}x{info['input_size']}  classes {info['num_classes']}")
    print(
        f"MACs {info['macs']:,}  parameters {info['params']:,}  searchable layers {info['searchable_layers']}  "
        f"elastic convolutions {info['searchable_convs']}/{info['convs']}  removable blocks {info['removable_blocks']}"
    )
    print(format_table(info["layers"], COLUMNS))
    if info["fixed_ops"]:
        print("operations that fix channels:")
        print(format_table(info["fixed_ops"], ("node", "why")))
    return 0


def _cmd_check_zoo(args: argparse.Namespace) -> int:
    if args.samples < 1:
        raise NetAdaptError(f"--samples must be at least 1, got {args.samples}")
    unknown = [m for m in args.models or [] if m not in MODELS]
    if unknown:
        raise NetAdaptError(f"unknown model {unknown[0]!r}; choose from: {', '.join(list_models())}")
    results = check_zoo(args.models, args.samples, args.seed)
    ok = all(r["max_rel_diff"] < 1e-4 for r in results)
    rows = [
        {
            "model": r["model"],
            "input": r["input_size"],
            "MACs": f"{r['macs'] / 1e6:.2f}M",
            "params": f"{r['params']:,}",
            "layers": r["layers"],
            "archs checked": f"{r['archs']} @ {r['checked_at']}px",
            "supernet vs extracted": f"{r['max_rel_diff']:.1e}",
            "ok": "yes" if r["max_rel_diff"] < 1e-4 else "NO",
        }
        for r in results
    ]
    cols = tuple(rows[0])
    print(format_table(rows, cols))
    print("all sub-networks agree with their extracted networks" if ok else "MISMATCH: see the table above")
    return 0 if ok else 1
