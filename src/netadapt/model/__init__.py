"""Super-network: elastic layers, blocks, the model zoo, the builder and extraction."""

from netadapt.model.builder import BuildOptions
from netadapt.model.layers import Choice, LayerCost
from netadapt.model.supernet import CompactNet, SuperNet, build_supernet, extract
from netadapt.model.zoo import MODELS, get_definition, list_models

__all__ = [
    "MODELS",
    "BuildOptions",
    "Choice",
    "CompactNet",
    "LayerCost",
    "SuperNet",
    "build_supernet",
    "extract",
    "get_definition",
    "list_models",
]
