"""The architecture value and its search space."""

from netadapt.arch.space import Architecture, LayerSpec, SearchSpace, kernel_choices, width_choices

__all__ = ["Architecture", "LayerSpec", "SearchSpace", "kernel_choices", "width_choices"]
