"""netadapt: NetAdaptV2 (Yang, Liao, Sze, CVPR 2021) for PyTorch.

Train a network once as a super-network with ordered dropout and channel-level bypass, search
its sub-networks with the multi-layer coordinate descent optimizer against any resource (MACs,
measured latency, a lookup table, your own script), then train and export the result.  Bring
your own CNN with ``supernet_from_module`` (torch.fx tracing, weights kept).
"""

import logging

from netadapt import search  # callable: netadapt.search(space, initial, resource_fn, evaluate_fn, config)
from netadapt.arch import Architecture, SearchSpace
from netadapt.errors import NetAdaptError
from netadapt.model import CompactNet, SuperNet, build_supernet, extract, list_models
from netadapt.model.pretrained import load_torchvision_weights
from netadapt.resources import count_macs, count_params
from netadapt.trace import supernet_from_module
from netadapt.train import train_supernet

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

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
    "search",
    "supernet_from_module",
    "train_supernet",
]
