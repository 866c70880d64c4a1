"""The user's trained weights from a state-dict file, into a traced super-network."""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping

import torch

from netadapt.errors import NetAdaptError
from netadapt.trace.elastic import GraphSuperNet

__all__ = ["load_weights_"]


def _state_dict(data: object) -> Mapping[str, torch.Tensor]:
    """The tensors of a state-dict file: a plain mapping, or one under ``state_dict``/``model``
    (the layouts training scripts commonly save)."""
    if isinstance(data, Mapping):
        for key in ("state_dict", "model"):
            inner = data.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                return inner
        if data and all(isinstance(v, torch.Tensor) for v in data.values()):
            return data
    raise NetAdaptError("the weights file holds no state dict (a mapping of names to tensors)")


def load_weights_(net: GraphSuperNet, path: str | os.PathLike) -> GraphSuperNet:
    """Load the model's trained weights from ``path`` (``torch.save(model.state_dict())``;
    unpickled with ``weights_only``) into ``net`` in place.  Every weight of the traced graph must
    be in the file; entries of modules the forward never uses are ignored."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # weights_only refuses a pickled module (torch.save(model))
        raise NetAdaptError(
            f"{path} holds more than weights (a whole pickled model?); save the weights alone with "
            "torch.save(model.state_dict(), path), whose model the factory (module:FILE:FUNCTION) builds"
        ) from None
    except (RuntimeError, EOFError) as exc:
        raise NetAdaptError(f"{path}: not a readable weights file ({str(exc).splitlines()[0]})") from None
    state = dict(_state_dict(data))
    # A file saved from the super-network itself names its weights model.<name>.
    if state and all(k.startswith("model.") for k in state):
        state = {k[len("model.") :]: v for k, v in state.items()}
    try:
        missing, _ = net.model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shapes that do not match
        raise NetAdaptError(f"{path}: weights do not fit {net.name}: {str(exc).splitlines()[-1].strip()}") from None
    if missing:
        raise NetAdaptError(f"{path} lacks {len(missing)} weights of {net.name}, e.g. {missing[0]}")
    return net
