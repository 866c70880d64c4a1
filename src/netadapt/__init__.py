"""netadapt: NetAdaptV2 (Yang, Liao, Sze, CVPR 2021) for PyTorch.

Train a network once as a super-network with ordered dropout and channel-level bypass, search
its sub-networks with the multi-layer coordinate descent optimizer (``mcd``) against any
resource (MACs, measured latency, a lookup table, your own script), then train and export the
result.  Bring your own CNN with ``supernet_from_module`` (torch.fx tracing, weights kept).
"""

import importlib
import logging
from typing import Any

from netadapt.arch import Architecture, SearchSpace
from netadapt.errors import NetAdaptError
from netadapt.model import CompactNet, SuperNet, build_supernet, extract, list_models, register_model
from netadapt.model.pretrained import load_torchvision_weights
from netadapt.resources import count_macs, count_params

# Imported here also because it registers the builder of model sources ("torchvision:resnet50")
# with netadapt.model.registry: every netadapt import runs this file first.
from netadapt.trace import supernet_from_module
from netadapt.version import __version__

logging.getLogger(__name__).addHandler(logging.NullHandler())

# Loaded on first use, so that ``import netadapt`` does not load training, the search, the
# tasks and the depth package: name -> (module, attribute or None for the module itself).
_LAZY = {
    # the search's optimizer (multi-layer coordinate descent, paper §2.4), a plain function:
    # netadapt.mcd(space, initial, resource_fn, evaluate_fn, config, rng_seed=...)
    "mcd": ("netadapt.search.driver", "search"),
    "search": ("netadapt.search", None),  # the subpackage: run_search, SearchConfig, evaluators
    "train_supernet": ("netadapt.train", "train_supernet"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'netadapt' has no attribute {name!r}")
    module, attribute = _LAZY[name]
    value = importlib.import_module(module)
    return value if attribute is None else getattr(value, attribute)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Architecture",
    "CompactNet",
    "NetAdaptError",
    "SearchSpace",
    "SuperNet",
    "__version__",
    "build_supernet",
    "count_macs",
    "count_params",
    "extract",
    "list_models",
    "load_torchvision_weights",
    "mcd",
    "register_model",
    "search",
    "supernet_from_module",
    "train_supernet",
]
