"""Budget presets of ``netadapt run --data FOLDER``: a whole run config from a measured folder.

A budget says how long each stage runs; how the super-network trains comes from one recipe
(:data:`netadapt.train.recipes.RECIPES`, ``small``), which every preset names, so that a better
recipe changes every preset in one edit.  Epochs follow the data: a budget is stated for 10,000
training images, and a folder with more images gets proportionally fewer epochs (and the other
way round, within each budget's bounds), so that the time depends on the images' size more than
on their number.

=========  ==================================================================================
quick      ≤ 30 min on a 2-core CPU for ~10k images of 32×32 (docs/configuration.md): MobileNetV1
           ×0.5, 5 super-network epochs, 8 samples of 4 layers per iteration, the discovered
           network and the uniform baseline trained 5 epochs
standard   MobileNetV1 ×1.0, 20 super-network epochs, 20 samples of 6 layers, the initial
           network, the discovered one and the baseline trained 15 epochs: hours on a CPU
paper      the paper's search (§4.1.1: J = 200 samples of L = 10 layers, 3% reduction decayed by
           0.98) and 100 + 150 epochs, with the ``small`` recipe: for a GPU
=========  ==================================================================================
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from netadapt.data.profile import DataProfile, data_config_of
from netadapt.errors import NetAdaptError

__all__ = ["BUDGETS", "DEFAULT_MODELS", "PUBLIC_BUDGETS", "RECIPE", "Budget", "run_config_for_data"]

#: The super-network recipe every preset names (see netadapt.train.recipes).
RECIPE = "small"

#: The model for small (≤ 64 px) and for larger images: MobileNetV1 is the network the recipe was
#: measured on (docs/RESULTS.md) and the paper's NetAdaptV1 comparison network (Table 3).
DEFAULT_MODELS = {"small": "mobilenet_v1_cifar", "large": "mobilenet_v1"}


@dataclass(frozen=True)
class Budget:
    """How long each stage of a run takes, for a data set of 10,000 training images."""

    name: str
    summary: str
    supernet_epochs: float  # at 10,000 training images; scaled by 10,000 / (training images)
    final_epochs: float  # each trained network (discovered, initial, baseline), likewise scaled
    min_epochs: int
    max_epochs: int
    width_mult: float  # of the default model (another --model keeps its own width)
    batch_size: int
    heldout_max: int  # at most 10% of the training images are held out for the search
    samples: int  # J
    layers: int  # L
    initial_reduction: float
    calibration_images: int
    train_initial: bool
    train_baseline: bool
    validations: int  # validation passes of the super-network over its training (the last included)

    def epochs(self, at_10k: float, train_images: int) -> int:
        """Epochs for ``train_images`` training images (the budget's ``at_10k`` epochs at 10,000)."""
        return int(min(self.max_epochs, max(self.min_epochs, round(at_10k * 10_000 / max(train_images, 1)))))


BUDGETS: dict[str, Budget] = {
    "quick": Budget(
        "quick", "about 30 minutes on a 2-core CPU for 10,000 images of 32x32", supernet_epochs=8, final_epochs=6,
        min_epochs=2, max_epochs=60, width_mult=0.5, batch_size=64, heldout_max=1000, samples=8, layers=4,
        initial_reduction=0.1, calibration_images=500, train_initial=False, train_baseline=True, validations=1,
    ),
    "standard": Budget(
        "standard", "a few hours on a CPU for 10,000 images of 32x32", supernet_epochs=20, final_epochs=15,
        min_epochs=5, max_epochs=200, width_mult=1.0, batch_size=64, heldout_max=2000, samples=20, layers=6,
        initial_reduction=0.05, calibration_images=1000, train_initial=True, train_baseline=True, validations=4,
    ),
    "paper": Budget(
        "paper", "the paper's search settings and 100 + 150 epochs: for a GPU", supernet_epochs=100, final_epochs=150,
        min_epochs=100, max_epochs=150, width_mult=1.0, batch_size=256, heldout_max=10_000, samples=200, layers=10,
        initial_reduction=0.03, calibration_images=2000, train_initial=True, train_baseline=True, validations=10,
    ),
    # For the tests: seconds on tiny data (not offered by --help).
    "smoke": Budget(
        "smoke", "seconds, for tests", supernet_epochs=1, final_epochs=1, min_epochs=1, max_epochs=1, width_mult=0.25,
        batch_size=32, heldout_max=40, samples=2, layers=4, initial_reduction=0.25, calibration_images=32,
        train_initial=False, train_baseline=False, validations=1,
    ),
}  # fmt: skip
PUBLIC_BUDGETS = ("quick", "standard", "paper")


def _heldout(budget: Budget, train_images: int) -> int:
    return max(1, min(budget.heldout_max, train_images // 10))


def run_config_for_data(
    profile: DataProfile,
    budget: str = "quick",
    *,
    target: float = 0.5,
    metric: str = "macs",
    model: str | None = None,
    run_dir: str | None = None,
) -> dict[str, Any]:
    """The run config mapping (:class:`netadapt.pipeline.run.RunConfig`) of a profiled image
    folder at ``budget``; ``model`` defaults by image size (:data:`DEFAULT_MODELS`)."""
    if budget not in BUDGETS:
        raise NetAdaptError(f"unknown budget {budget!r}; choose one of: {', '.join(PUBLIC_BUDGETS)}")
    b = BUDGETS[budget]
    heldout = _heldout(b, profile.train_images)
    train = profile.train_images - heldout
    if train < b.batch_size:
        raise NetAdaptError(
            f"{profile.root} has {profile.train_images} training images; the {budget} budget needs more than "
            f"{b.batch_size + heldout} (a batch of {b.batch_size} plus {heldout} held out for the search)"
        )
    epochs = b.epochs(b.supernet_epochs, train)
    default_model = DEFAULT_MODELS["small" if profile.small else "large"]
    model_config: dict[str, Any] = {"name": model or default_model}
    if model is None or model == default_model:
        model_config["width_mult"] = b.width_mult
    # On two cores a loader worker takes a core from training; with more, decode in parallel.
    workers = 0 if (os.cpu_count() or 1) <= 2 else min(8, (os.cpu_count() or 1) // 2)
    return {
        "run_dir": run_dir or f"runs/{os.path.basename(os.path.normpath(profile.root)) or 'data'}",
        "supernet": {
            "recipe": RECIPE,
            "seed": 0,
            "epochs": epochs,
            "model": model_config,
            "data": {**data_config_of(profile), "batch_size": b.batch_size, "heldout": heldout, "workers": workers},
            "eval_every": max(1, math.ceil(epochs / b.validations)),
        },
        "search": {
            "metric": metric,
            "search": {
                "samples": b.samples,
                "layers": b.layers,
                "initial_reduction": b.initial_reduction,
                "decay": 0.98,
                "target": target,
            },
            "eval": {"calibration_images": min(b.calibration_images, train)},
        },
        "final": {
            "epochs": b.epochs(b.final_epochs, train),
            "init": "supernet",
            "initial": b.train_initial,
            "baseline": b.train_baseline,
        },
        "export": ["pytorch", "onnx", "torchscript", "pt2"],
        "data_note": f"Budget {budget}. Data as measured: {profile.summary()}.",
    }
