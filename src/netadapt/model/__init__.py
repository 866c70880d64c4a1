"""Super-network: elastic layers, blocks, the model zoo, the builder and extraction."""

from netadapt.model import zoo  # noqa: F401  (registers the zoo's networks)
from netadapt.model.builder import BuildOptions
from netadapt.model.layers import Choice, LayerCost
from netadapt.model.registry import MODELS, get_definition, list_models, register_model
from netadapt.model.supernet import CompactNet, SuperNet, build_supernet, extract

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
    "register_model",
]
