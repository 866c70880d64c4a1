"""``netadapt zoo``, ``netadapt describe`` and ``netadapt check-zoo``."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from netadapt.arch.files import load_architecture
from netadapt.errors import NetAdaptError
from netadapt.model.checkpoint import load_supernet
from netadapt.model.checks import check_zoo
from netadapt.model.describe import describe, format_table
from netadapt.model.supernet import build_supernet
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

    p = sub.add_parser("describe", help="MACs, parameters and a per-layer table of a model or architecture")
    p.add_argument(
        "model",
        nargs="?",
        help="zoo model name (see `netadapt zoo`), a model to trace: torchvision:NAME, timm:NAME, "
        "module:FILE.py:FACTORY (its searchable and fixed layers are listed, with why), or a super-network file",
    )
    p.add_argument("--model", dest="model_option", metavar="MODEL", help="the same as the positional MODEL")
    p.add_argument("--weights", type=Path, help="state-dict file loaded into a traced model (weights_only)")
    p.add_argument("--arch", type=Path, help="architecture JSON file (default: the full network)")
    p.add_argument("--input-size", type=int, help="input resolution (default: the model's)")
    p.add_argument("--num-classes", type=int, help="number of classes (default: the model's)")
    p.add_argument("--width-mult", type=float, help="width multiplier (MobileNet models)")
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
    return 0


def _cmd_describe(args: argparse.Namespace) -> int:
    model = args.model_option or args.model
    if model is None or (args.model_option and args.model and args.model_option != args.model):
        raise NetAdaptError("name one model: describe MODEL or describe --model MODEL")
    if Path(model).suffix in (".pt", ".pth") and Path(model).is_file():  # a super-network file
        if any(v is not None for v in (args.input_size, args.num_classes, args.width_mult, args.weights)):
            raise NetAdaptError("--input-size, --num-classes, --width-mult and --weights do not apply to a super-network file")
        net, _ = load_supernet(model)
        return _print_description(net, args)
    if is_source(model):
        return _describe_traced(model, args)
    if args.weights is not None:
        raise NetAdaptError("--weights applies to a traced model (torchvision:, timm:, module:)")
    net = build_supernet(model, num_classes=args.num_classes, input_size=args.input_size, width_mult=args.width_mult)
    return _print_zoo(net, load_architecture(args.arch, net.space) if args.arch else None, args)


def _print_zoo(net, arch, args: argparse.Namespace) -> int:
    info = describe(net, arch)
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    print(f"{info['model']}  input {info['input_size']}x{info['input_size']}  classes {info['num_classes']}")
    print(f"MACs {info['macs']:,}  parameters {info['params']:,}  searchable layers {info['searchable_layers']}")
    print(format_table(info["layers"]))
    return 0


def _describe_traced(model: str, args: argparse.Namespace) -> int:
    if args.width_mult is not None:
        raise NetAdaptError("--width-mult applies to zoo models")
    net = build_supernet(model, num_classes=args.num_classes, input_size=args.input_size)
    if args.weights is not None:
        load_weights_(net, args.weights)
    return _print_description(net, args)


def _print_description(net, args: argparse.Namespace) -> int:
    arch = load_architecture(args.arch, net.space) if args.arch else None
    if not isinstance(net, GraphSuperNet):
        return _print_zoo(net, arch, args)
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
