"""Initialise FastDepth's encoder from an ImageNet-trained MobileNetV1 (paper §4.2.1, appendix A.2).

"Following FastDepth, we pre-train the encoder of the super-network on ImageNet."  The
super-network's blocks ``b0``–``b13`` are exactly ``mobilenet_v1``'s (stem and thirteen
depthwise-separable pairs), so their weights are copied one to one; the decoder keeps its
random initialisation.  Three checkpoint layouts are understood:

* ``netadapt``: a super-network file (:func:`netadapt.model.checkpoint.save_supernet`) or
  compact-model file (:func:`netadapt.export.save_compact`) of ``mobilenet_v1`` (or of
  ``fastdepth``), or a plain ``state_dict`` of ``netadapt.build_supernet("mobilenet_v1")``;
* ``sequential``: the MobileNetV1 of FastDepth's ``imagenet/mobilenet.py`` (and the many
  PyTorch ImageNet reproductions it comes from): ``model.{i}.{0..5}`` = conv, BN, ReLU, conv,
  BN, ReLU per block, ``fc`` as classifier, possibly saved from ``DataParallel``
  (``module.`` prefix) and wrapped as ``{"state_dict": ...}``.  Tensors are matched in order
  and checked by shape.

Note that FastDepth's ImageNet MobileNetV1 uses ReLU6 where netadapt's uses ReLU; the weights
transfer well enough for fine-tuning, which is what the paper does with them.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from netadapt.errors import NetAdaptError
from netadapt.model.supernet import SuperNet

__all__ = ["ENCODER_BLOCKS", "encoder_keys", "load_encoder_", "read_encoder_state"]

log = logging.getLogger(__name__)

ENCODER_BLOCKS = 14  # b0 (stem) .. b13: MobileNetV1 without its classifier
_ACCEPTED_MODELS = ("mobilenet_v1", "fastdepth")
_BN_ORDER = {"weight": 0, "bias": 1, "running_mean": 2, "running_var": 3}
_SEQUENTIAL_KEY = re.compile(r"^model\.(\d+)\.(\d+)\.(weight|bias|running_mean|running_var)$")


def _is_encoder_key(key: str) -> bool:
    m = re.match(r"^blocks\.(\d+)\.", key)
    return m is not None and int(m.group(1)) < ENCODER_BLOCKS and not key.endswith("num_batches_tracked")


def encoder_keys(supernet: SuperNet) -> list[str]:
    """The state-dict keys of ``supernet``'s encoder blocks b0–b13 (BN step counters left out)."""
    return [k for k in supernet.state_dict() if _is_encoder_key(k)]


def _tensors(obj: object) -> dict[str, Tensor] | None:
    if isinstance(obj, Mapping) and obj and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        return dict(obj)
    return None


def _strip_prefix(state: dict[str, Tensor]) -> dict[str, Tensor]:
    for prefix in ("module.", "_orig_mod."):  # DataParallel/DistributedDataParallel, torch.compile
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def _from_netadapt_file(data: Mapping[str, Any], where: str) -> dict[str, Tensor]:
    build = data.get("build") or {}
    model = build.get("model")
    if model not in _ACCEPTED_MODELS:
        raise NetAdaptError(f"{where} holds a {model} network; the FastDepth encoder is initialised from mobilenet_v1")
    if build.get("width_mult") not in (None, 1.0):
        raise NetAdaptError(f"{where} holds mobilenet_v1 at width {build['width_mult']}; FastDepth's encoder has width 1.0")
    state = _tensors(data.get("state_dict"))
    if state is None:
        raise NetAdaptError(f"{where} has no weights")
    return {k: v for k, v in state.items() if _is_encoder_key(k)}


def _from_sequential(state: dict[str, Tensor], where: str) -> list[Tensor]:
    """Encoder tensors of a ``model.{i}.{j}`` checkpoint, in network order."""
    entries = []
    for key, value in state.items():
        m = _SEQUENTIAL_KEY.match(key)
        if m is not None:
            i, j, name = int(m.group(1)), int(m.group(2)), m.group(3)
            entries.append(((i, j, _BN_ORDER[name]), value))
    if not entries:
        raise NetAdaptError(f"{where} has no model.<block>.<layer> weights")
    return [v for _, v in sorted(entries, key=lambda e: e[0])]


def read_encoder_state(source: str | os.PathLike | Mapping[str, Any], keys: list[str]) -> tuple[dict[str, Tensor], str]:
    """The weights of encoder ``keys`` (netadapt naming, see :func:`encoder_keys`) from a
    checkpoint file or a loaded mapping; returns ``(state, layout)`` with layout ``"netadapt"`` or
    ``"sequential"``.  Raises a one-line :class:`NetAdaptError` when the checkpoint does not fit."""
    if isinstance(source, Mapping):
        data, where = source, "the given weights"
    else:
        path = Path(source)
        where = str(path)
        if not path.is_file():
            raise NetAdaptError(f"checkpoint {path} does not exist")
        try:
            # weights_only: a downloaded checkpoint must not run code when it is read.
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for corrupt or unsafe files
            raise NetAdaptError(f"{path} is not a readable weights-only checkpoint ({type(exc).__name__})") from None
    if not isinstance(data, Mapping):
        raise NetAdaptError(f"{where} holds a {type(data).__name__}, not a state_dict or checkpoint mapping")

    if data.get("format") in ("netadapt.supernet", "netadapt.compact"):
        found, layout = _from_netadapt_file(data, where), "netadapt"
    else:
        state = _tensors(data)
        for wrapper in ("state_dict", "model_state_dict", "model"):
            if state is None:
                state = _tensors(data.get(wrapper))
        if state is None:
            raise NetAdaptError(f"{where} holds no state_dict of tensors")
        state = _strip_prefix(state)
        if any(k.startswith("blocks.") for k in state):
            found, layout = {k: v for k, v in state.items() if _is_encoder_key(k)}, "netadapt"
        elif any(_SEQUENTIAL_KEY.match(k) for k in state):
            tensors = _from_sequential(state, where)
            if len(tensors) != len(keys):
                raise NetAdaptError(
                    f"{where} has {len(tensors)} conv/BN tensors under model.*, MobileNetV1 has {len(keys)}: "
                    "is it a MobileNetV1 (width 1.0, convolutions without bias)?"
                )
            found, layout = dict(zip(keys, tensors, strict=True)), "sequential"
        else:
            first = next(iter(state))
            raise NetAdaptError(f"{where}: unknown weight layout (first key {first!r}); expected blocks.* or model.<i>.<j>.*")

    missing = [k for k in keys if k not in found]
    if missing:
        raise NetAdaptError(f"{where} lacks {len(missing)} MobileNetV1 encoder weights (first: {missing[0]})")
    return {k: found[k] for k in keys}, layout


def load_encoder_(supernet: SuperNet, source: str | os.PathLike | Mapping[str, Any]) -> SuperNet:
    """Copy an ImageNet MobileNetV1's weights into ``supernet``'s encoder blocks b0–b13, in place.

    ``supernet`` is a ``fastdepth`` super-network (any input size: the encoder's weights do not
    depend on it).  Every tensor is checked by shape first; nothing is copied on a mismatch.
    Returns ``supernet``.
    """
    keys = encoder_keys(supernet)
    if len(keys) == 0:
        raise NetAdaptError(f"{supernet.name} has no MobileNetV1 encoder blocks")
    state, layout = read_encoder_state(source, keys)
    ours = supernet.state_dict()
    for key in keys:
        if state[key].shape != ours[key].shape:
            raise NetAdaptError(
                f"encoder weight {key} has shape {tuple(state[key].shape)} in the checkpoint but "
                f"{tuple(ours[key].shape)} in {supernet.name}: not a full-width MobileNetV1?"
            )
    with torch.no_grad():
        for key in keys:
            ours[key].copy_(state[key].to(ours[key].dtype))
    log.info("initialised %s's encoder (b0-b%d, %d tensors) from a %s MobileNetV1 checkpoint",
             supernet.name, ENCODER_BLOCKS - 1, len(keys), layout)  # fmt: skip
    return supernet
