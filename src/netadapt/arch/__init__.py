"""The architecture value and its search space."""

from netadapt.arch.files import check_layer_names, load_architecture
from netadapt.arch.space import Architecture, LayerSpec, SearchSpace, kernel_choices, width_choices

__all__ = [
    "Architecture",
    "LayerSpec",
    "SearchSpace",
    "check_layer_names",
    "kernel_choices",
    "load_architecture",
    "width_choices",
]
