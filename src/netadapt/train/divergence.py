"""Stopping a diverging training run before it writes a checkpoint of broken weights.

A learning rate far too high (or a bad batch in reduced precision) makes the loss explode or
become NaN, after which every later step only spreads the NaN through the weights; training on
would end with "success" and a useless super-network.  The loop checks the loss sums it already
moves off the device every 10 steps (no extra synchronization per step), and the weights before
every checkpoint, so ``checkpoint.pt`` always holds the last good state.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from netadapt.train.config import SupernetTrainConfig

__all__ = ["divergence_message", "loss_problem", "weights_finite"]


def loss_problem(loss_sum: float, images: float, max_loss: float | None) -> str | None:
    """What is wrong with a window's summed training loss, or ``None`` when it looks sane."""
    if images <= 0:
        return None
    mean = loss_sum / images
    if not math.isfinite(mean):
        return f"the training loss is {mean}"
    if max_loss is not None and mean > max_loss:
        return f"the mean training loss {mean:.4g} is above max_loss={max_loss:g}"
    return None


def weights_finite(*modules: nn.Module | None) -> bool:
    """True when every floating-point parameter and buffer of ``modules`` is finite (one sync)."""
    checks = [torch.isfinite(t).all() for m in modules if m is not None for t in m.state_dict().values() if t.is_floating_point()]
    return bool(torch.stack(checks).all()) if checks else True


def divergence_message(
    config: SupernetTrainConfig, position: tuple[int, int], problem: str, checkpoint: Path, last_good: tuple[int, int] | None
) -> str:
    """One line: where training diverged, the likely cause, and what ``checkpoint`` still holds.

    Positions are (epoch, steps done in it) as checkpoints count them, 0-based epochs: (0, 3)
    is step 3 of the first epoch, (1, 0) the end of the first epoch; ``last_good`` is the
    position of the last checkpoint written, if any."""
    kept = "no checkpoint had been written" if last_good is None else f"{checkpoint} keeps the weights at {_at(last_good)}"
    return (
        f"training diverged at {_at(position)}: {problem}; the learning rate is probably too high "
        f"(optim.lr={config.optim.lr:g}; try a lower one or optim.grad_clip, in a new run folder); {kept}"
    )


def _at(position: tuple[int, int]) -> str:
    epoch, step = position
    return f"the end of epoch {epoch}" if step == 0 and epoch > 0 else f"epoch {epoch + 1}, step {step}"
