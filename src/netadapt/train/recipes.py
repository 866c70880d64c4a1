"""Named super-network training recipes: the one place that says how a super-network trains.

A training config (or the ``supernet:`` part of a run config) names one with ``recipe: NAME``;
its settings go *under* the config's own, so a key the config sets wins.  The budget presets of
``netadapt run --data`` (:mod:`netadapt.pipeline.presets`), the built-in demo and the small-data
configs under ``configs/`` all use ``small``; changing a value here changes all of them.

``small`` trains a super-network over the paper's whole space -- every width down to the
narrowest, whole removable blocks -- at the scale of a 2-core machine: SGD at 0.8 per 1024 images,
cosine, one warm-up epoch, label smoothing 0.1, no weight average; the first quarter of the epochs
trains the initial network alone, the second quarter adds narrower widths progressively
(Once-for-All's order), the rest varies widths and blocks; one width level per image group with
every layer within one choice of it (``spread: 1``), the sandwich rule, and groups of 8 images
that share one sub-network and their own BatchNorm statistics (``group_size: 8``).  How it ranks
sub-networks and what each choice adds is measured in docs/ranking.md and docs/training.md.

``small-largest`` is ``small`` plus a second forward-backward pass of the initial network on every
batch (``ordered_dropout.largest_pass``) that the ordered-dropout pass distills from
(``distill: 0.5``): the initial network then trains on every image of every epoch and validates
within 2-2.3 points of the same network trained plainly (``small``: 10 points below), at about
twice the super-network's training time; it ranks sub-networks about as well within the
intervals (docs/ranking.md).  For users who deploy the initial network from the super-network
too, or fine-tune networks near its size.

``paper`` is the paper's ImageNet recipe (§4.1.1): RMSProp at 0.064 per 1024 images, ×0.963 every
3 epochs, weight average 0.9998, over the full width range.  It is tuned for hundreds of thousands
of ImageNet steps; on small data it does not train (docs/training.md).
"""

from __future__ import annotations

import copy
from typing import Any

from netadapt.errors import NetAdaptError

__all__ = ["PHASE_SHARES", "RECIPES", "apply_recipe"]

#: A recipe key holding ordered-dropout phase lengths as shares of the config's epochs, turned
#: into ``ordered_dropout.full_epochs`` / ``width_epochs`` when the recipe is applied (a config
#: that sets those itself keeps its own).
PHASE_SHARES = "phase_shares"

#: ``small``, the recipe of the demo, the presets and the configs under ``configs/``.
_SMALL: dict[str, Any] = {
    "model": {"options": {"removal": "block"}},
    "optim": {"name": "sgd", "lr": 0.8, "lr_batch": 1024, "weight_decay": 4.0e-5},
    "schedule": {"name": "cosine", "warmup_epochs": 1.0},
    "label_smoothing": 0.1,
    "ema_decay": None,
    "ordered_dropout": {"spread": 1, "sandwich": True, "group_size": 8},
    # shares of the epochs: ordered_dropout.full_epochs and .width_epochs (see PHASE_SHARES)
    PHASE_SHARES: {"full_epochs": 0.25, "width_epochs": 0.25},
}

RECIPES: dict[str, dict[str, Any]] = {
    "small": _SMALL,
    "small-largest": {
        **_SMALL,
        "ordered_dropout": {**_SMALL["ordered_dropout"], "largest_pass": True, "distill": 0.5},
    },
    "paper": {
        "optim": {"name": "rmsprop", "lr": 0.064, "lr_batch": 1024, "weight_decay": 1.0e-5},
        "schedule": {"name": "step", "decay": 0.963, "decay_epochs": 3.0, "warmup_epochs": 5.0},
        "label_smoothing": 0.1,
        "ema_decay": 0.9998,
    },
}


def apply_recipe(data: dict[str, Any], *, default_epochs: int = 10) -> dict[str, Any]:
    """``data`` (a training config mapping) with the recipe its ``recipe`` key names merged
    under it and the key removed; unchanged when it names none.  Phase shares of the recipe
    become epochs of ``data``'s ``epochs`` (``default_epochs`` when it sets none)."""
    if "recipe" not in data:
        return data
    from netadapt.config import merge_mappings  # netadapt.config imports nothing of train

    data = dict(data)
    name = data.pop("recipe")
    if name is None:
        return data
    if name not in RECIPES:
        raise NetAdaptError(f"unknown recipe {name!r}; choose one of: {', '.join(RECIPES)}")
    recipe = copy.deepcopy(RECIPES[name])
    shares = recipe.pop(PHASE_SHARES, {})
    epochs = data.get("epochs", default_epochs)
    if isinstance(epochs, int | float) and not isinstance(epochs, bool) and epochs < 1:  # before it becomes phases
        raise NetAdaptError(f"epochs must be at least 1, got {epochs}")
    if shares and isinstance(epochs, (int, float)):
        phases = {key: share * epochs for key, share in shares.items()}
        recipe["ordered_dropout"] = {**recipe.get("ordered_dropout", {}), **phases}
    return merge_mappings(recipe, data)
