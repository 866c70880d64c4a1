"""Named super-network training recipes: the one place that says how a super-network trains.

A training config (or the ``supernet:`` part of a run config) names one with ``recipe: NAME``;
its settings go *under* the config's own, so a key the config sets wins.  The budget presets of
``netadapt run --data`` (:mod:`netadapt.pipeline.presets`), the built-in demo and the small-data
configs under ``configs/`` all use ``small``; changing a value here changes all of them.

``small`` is a PLACEHOLDER: it is the recipe of today's demo and CIFAR reproduction (SGD at 0.8
per 1024 images, cosine, one warm-up epoch, label smoothing 0.1, no weight average, widths 50–100%
of each layer, no block removal), which trains at the scale of a 2-core machine (docs/training.md).  Which sampler
options and schedule train super-networks best is being measured (issue 14); its result replaces
these values, here and nowhere else.

``paper`` is the paper's ImageNet recipe (§4.1.1): RMSProp at 0.064 per 1024 images, ×0.963 every
3 epochs, weight average 0.9998, over the full width range.  It is tuned for hundreds of thousands
of ImageNet steps; on small data it does not train (docs/training.md).
"""

from __future__ import annotations

import copy
from typing import Any

from netadapt.errors import NetAdaptError

__all__ = ["RECIPES", "apply_recipe"]

RECIPES: dict[str, dict[str, Any]] = {
    # PLACEHOLDER until issue 14 settles the super-network recipe (see the module docstring).
    "small": {
        # Widths 50-100% of each layer and no block removal: at small scale a super-network whose
        # images drop layers or blocks stays at chance (docs/training.md).  `removal: none` keeps
        # the space the demo was measured with: since blocks became removable by default, the
        # width floor alone no longer excludes removal, and 15 digits epochs stay at chance
        # (2.35 -> 2.38 loss) where without removal they learn (2.35 -> 1.71, 51% validation).
        "model": {"options": {"min_width_fraction": 0.5, "removal": "none"}},
        "optim": {"name": "sgd", "lr": 0.8, "lr_batch": 1024, "weight_decay": 4.0e-5},
        "schedule": {"name": "cosine", "warmup_epochs": 1.0},
        "label_smoothing": 0.1,
        "ema_decay": None,
    },
    "paper": {
        "optim": {"name": "rmsprop", "lr": 0.064, "lr_batch": 1024, "weight_decay": 1.0e-5},
        "schedule": {"name": "step", "decay": 0.963, "decay_epochs": 3.0, "warmup_epochs": 5.0},
        "label_smoothing": 0.1,
        "ema_decay": 0.9998,
    },
}


def apply_recipe(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (a training config mapping) with the recipe its ``recipe`` key names merged
    under it and the key removed; unchanged when it names none."""
    if "recipe" not in data:
        return data
    from netadapt.config import merge_mappings  # netadapt.config imports nothing of train

    data = dict(data)
    name = data.pop("recipe")
    if name is None:
        return data
    if name not in RECIPES:
        raise NetAdaptError(f"unknown recipe {name!r}; choose one of: {', '.join(RECIPES)}")
    return merge_mappings(copy.deepcopy(RECIPES[name]), data)
