"""What an exported model needs to be used alone: preprocessing, labels, architecture, cost.

Every exported file carries the same :class:`ModelMetadata`, as JSON text:

=================  ===========================================================================
``model.pt``        ``extra["metadata"]`` of the compact-model file (:func:`load_compact`)
``model.onnx``      ONNX ``metadata_props``: ``netadapt`` (the JSON) and, for tools that show
                    properties, ``classes``, ``mean``, ``std``, ``input_size`` one by one
``model.ts``        the TorchScript archive's extra file ``netadapt.json``
``model.pt2``       the ``torch.export`` archive's extra file ``netadapt.json``
=================  ===========================================================================

:func:`read_metadata` reads it from any of them.  To classify an image::

    meta = read_metadata("model.onnx")
    x = meta.preprocess(netadapt.data.read_image("cat.png"))   # (1, C, S, S) float32
    label = meta.label(logits)                                  # class names of the top-1
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from netadapt.errors import NetAdaptError

__all__ = ["METADATA_FILE", "ModelMetadata", "read_metadata"]

METADATA_FORMAT = "netadapt.model-metadata"
METADATA_VERSION = 1
#: Name of the metadata in TorchScript and torch.export archives (their "extra files").
METADATA_FILE = "netadapt.json"


@dataclass(frozen=True)
class ModelMetadata:
    """How to feed an exported network and read its output.

    Input: an RGB image (grayscale decoded to three equal channels), as uint8 pixels, through
    the evaluation transform of ``preset`` at ``input_size`` (``cifar``/``none``: resized to
    S×S; ``imagenet``: shorter side resized to S/0.875, centre crop S), then
    ``(pixels / 255 - mean) / std`` per channel; a (B, ``in_channels``, S, S) float32 tensor.
    Output: (B, number of classes) logits, class ``i`` named ``classes[i]``.
    """

    model: str  # zoo name of the initial network
    task: str
    classes: tuple[str, ...] | None  # None: unknown (a network exported without its data)
    input_size: int
    in_channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    preset: str  # evaluation transform: "cifar", "imagenet" or "none"
    macs: int
    params: int
    architecture: dict  # Architecture.to_dict(space) of the exported sub-network
    build: dict  # SuperNet.build_config() of the initial network
    grayscale: bool | None = None  # the training images were grayscale (None: not measured)
    metrics: dict[str, float] = field(default_factory=dict)  # e.g. {"val_top1": 0.93}
    netadapt_version: str = ""

    # -- serialization ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": METADATA_FORMAT, "version": METADATA_VERSION, **asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, d: object, *, where: str = "model metadata") -> ModelMetadata:
        if not isinstance(d, dict) or d.get("format") != METADATA_FORMAT:
            raise NetAdaptError(f"{where} holds no netadapt model metadata")
        if d.get("version") != METADATA_VERSION:
            raise NetAdaptError(f"{where}: model metadata version {d.get('version')!r} is not supported")
        try:
            return cls(
                model=str(d["model"]),
                task=str(d["task"]),
                classes=None if d["classes"] is None else tuple(str(c) for c in d["classes"]),
                input_size=int(d["input_size"]),
                in_channels=int(d["in_channels"]),
                mean=tuple(float(v) for v in d["mean"]),
                std=tuple(float(v) for v in d["std"]),
                preset=str(d["preset"]),
                macs=int(d["macs"]),
                params=int(d["params"]),
                architecture=dict(d["architecture"]),
                build=dict(d["build"]),
                grayscale=d.get("grayscale"),
                metrics={str(k): float(v) for k, v in (d.get("metrics") or {}).items() if v is not None},
                netadapt_version=str(d.get("netadapt_version", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise NetAdaptError(f"{where}: malformed model metadata ({type(exc).__name__}: {exc})") from None

    @classmethod
    def from_json(cls, text: str | bytes, *, where: str = "model metadata") -> ModelMetadata:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise NetAdaptError(f"{where}: model metadata is not valid JSON") from None
        return cls.from_dict(data, where=where)

    def onnx_properties(self) -> dict[str, str]:
        """The ONNX ``metadata_props``: everything as ``netadapt``, the common keys one by one."""
        return {
            "netadapt": self.to_json(),
            "classes": json.dumps(list(self.classes) if self.classes is not None else None),
            "mean": json.dumps(list(self.mean)),
            "std": json.dumps(list(self.std)),
            "input_size": str(self.input_size),
        }

    # -- use -------------------------------------------------------------------------------------
    def transform(self):
        """The evaluation transform (:class:`netadapt.data.ImageTransform`): uint8 (3, H, W) in,
        normalized float32 (3, S, S) out."""
        from netadapt.data.transforms import PRESETS, make_transforms

        if self.preset not in PRESETS:  # FastDepth's NYU geometry (netadapt.data.depth_transforms)
            raise NetAdaptError(
                f"preset {self.preset!r} is a depth transform: use netadapt.data.depth_transforms.DepthTransform"
                f"({self.preset!r}, False, {self.input_size})"
            )
        return make_transforms(self.preset, self.input_size, self.mean, self.std)[1]

    def preprocess(self, images: Tensor | Sequence[Tensor]) -> Tensor:
        """uint8 RGB images ((3, H, W) each, or a (B, 3, H, W) tensor) as the network's input:
        a float32 (B, C, S, S) batch."""
        if isinstance(images, Tensor) and images.dim() == 3:
            images = [images]
        transform = self.transform()
        batch = torch.stack([transform.pixels(img) for img in images])  # (B, 3, S, S) uint8
        return transform.normalize(batch)

    def label(self, logits: Tensor) -> list[str]:
        """The class name of each row's largest logit (indices as text when classes are unknown)."""
        top = logits.argmax(-1).reshape(-1).tolist()
        return [self.classes[i] if self.classes is not None else str(i) for i in top]


def read_metadata(path: str | os.PathLike) -> ModelMetadata:
    """The :class:`ModelMetadata` an exported file carries (``.pt``, ``.onnx``, ``.ts``, ``.pt2``)."""
    path = Path(path)
    if not path.is_file():
        raise NetAdaptError(f"model file {path} does not exist")
    suffix = path.suffix.lower()
    where = str(path)
    if suffix == ".onnx":
        try:
            import onnx
        except ImportError:
            raise NetAdaptError("reading ONNX metadata needs onnx (pip install 'netadapt[onnx]')") from None
        try:
            props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        except Exception as exc:  # onnx raises DecodeError and others for damaged files
            raise NetAdaptError(f"{path} is not a readable ONNX model ({type(exc).__name__})") from None
        if "netadapt" not in props:
            raise NetAdaptError(f"{path} carries no netadapt metadata (exported by another tool or an older version)")
        return ModelMetadata.from_json(props["netadapt"], where=where)
    if suffix in (".ts", ".pt2"):
        extra: dict[str, Any] = {METADATA_FILE: ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # TorchScript's deprecation notice
                if suffix == ".ts":
                    torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
                else:
                    torch.export.load(str(path), extra_files=extra)
        except Exception as exc:  # damaged archives raise many types
            raise NetAdaptError(f"{path} is not a readable {suffix[1:]} model ({type(exc).__name__})") from None
        if not extra[METADATA_FILE]:
            raise NetAdaptError(f"{path} carries no netadapt metadata (exported by another tool or an older version)")
        return ModelMetadata.from_json(extra[METADATA_FILE], where=where)
    from netadapt.export.package import load_compact

    metadata = getattr(load_compact(path), "metadata", None)
    if metadata is None:
        raise NetAdaptError(f"{path} carries no netadapt metadata (written by an older version)")
    return metadata
