"""``netadapt depth check`` and ``netadapt depth init-encoder``: NYU data and the FastDepth encoder."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from netadapt.data.nyu import scan_h5
from netadapt.depth.pretrained import load_encoder_
from netadapt.errors import NetAdaptError
from netadapt.io import save_json
from netadapt.model.checkpoint import save_supernet
from netadapt.model.supernet import build_supernet

__all__ = ["register"]

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    depth = sub.add_parser("depth", help="depth estimation: check NYU Depth V2 files, initialise FastDepth's encoder")
    depth_sub = depth.add_subparsers(dest="depth_command", metavar="ACTION", required=True)

    p = depth_sub.add_parser("check", help="check every HDF5 file of an NYU Depth V2 folder (keys, shapes, depth values)")
    p.add_argument("folder", type=Path, help="a folder of .h5 files, e.g. nyudepthv2/train")
    p.add_argument("--shapes-only", action="store_true", help="check keys and shapes only, without reading the depth maps")
    p.add_argument("--out", type=Path, help="also write the usable and the bad files (with reasons) to this JSON file")
    p.set_defaults(func=_cmd_check)

    p = depth_sub.add_parser(
        "init-encoder", help="a fastdepth super-network file whose encoder holds an ImageNet MobileNetV1's weights"
    )
    p.add_argument("checkpoint", type=Path, help="MobileNetV1 weights: netadapt file, state_dict, or FastDepth's imagenet layout")
    p.add_argument("--out", type=Path, required=True, help="super-network file to write (.pt)")
    p.add_argument("--input-size", type=int, default=224, help="input resolution of the super-network (default: 224)")
    p.set_defaults(func=_cmd_init_encoder)


def _cmd_check(args: argparse.Namespace) -> int:
    if not args.folder.is_dir():
        raise NetAdaptError(f"folder {args.folder} does not exist")
    report = scan_h5(args.folder, values=not args.shapes_only)
    if report.total == 0:
        raise NetAdaptError(f"folder {args.folder} holds no HDF5 files")
    for rel, why in report.bad.items():
        log.warning("bad file %s: %s", rel, why)
    log.info("%s", report.summary())
    if args.out:
        save_json(args.out, {"root": report.root, "usable": report.good, "bad": report.bad})
    return 0 if report.good else 1


def _cmd_init_encoder(args: argparse.Namespace) -> int:
    supernet = build_supernet("fastdepth", input_size=args.input_size)
    load_encoder_(supernet, args.checkpoint)
    save_supernet(args.out, supernet, {"encoder_init": str(args.checkpoint), "stage": "encoder-init"})
    log.info("wrote %s", args.out)
    return 0
