"""Optimizers, the learning-rate schedule and the weight moving average (paper §4.1.1).

The schedule is a pure function of the optimizer step (:func:`lr_factor`), so resuming needs
only the step count, and the same function serves super-network and final training.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from netadapt.errors import NetAdaptError
from netadapt.train.config import OptimConfig, ScheduleConfig

__all__ = ["ModelEma", "RMSpropTF", "build_optimizer", "lr_factor", "scaled_lr", "set_lr"]


class RMSpropTF(torch.optim.Optimizer):
    """TensorFlow's RMSProp with momentum, which the paper's recipe (EfficientNet/MnasNet) uses.

    Differences from ``torch.optim.RMSprop`` (which would blow up the first steps at the paper's
    learning rate): the mean square starts at 1 rather than 0, ``eps`` is added inside the
    square root, and the learning rate is applied inside the momentum::

        ms  = rho·ms + (1 − rho)·g²
        mom = momentum·mom + lr·g / sqrt(ms + eps)
        w  -= mom

    ``weight_decay`` is an l2 term added to the gradient (``g += wd·w``).
    """

    def __init__(
        self,
        params: Iterable,
        lr: float,
        *,
        rho: float = 0.9,
        momentum: float = 0.9,
        eps: float = 1e-3,
        weight_decay: float = 0.0,
    ) -> None:
        if lr <= 0 or not 0 <= rho < 1 or not 0 <= momentum < 1 or eps <= 0:
            raise ValueError(f"invalid RMSpropTF settings lr={lr} rho={rho} momentum={momentum} eps={eps}")
        super().__init__(params, {"lr": lr, "rho": rho, "momentum": momentum, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if group["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            for p in params:
                state = self.state[p]
                if not state:
                    state["square_avg"] = torch.ones_like(p, memory_format=torch.preserve_format)
                    state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            squares = [self.state[p]["square_avg"] for p in params]
            moments = [self.state[p]["momentum_buffer"] for p in params]
            torch._foreach_mul_(squares, group["rho"])
            torch._foreach_addcmul_(squares, grads, grads, value=1 - group["rho"])
            denom = torch._foreach_add(squares, group["eps"])
            torch._foreach_sqrt_(denom)
            torch._foreach_mul_(moments, group["momentum"])
            torch._foreach_addcdiv_(moments, grads, denom, value=group["lr"])
            torch._foreach_sub_(params, moments)
        return loss


def _param_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool) -> list[dict]:
    if decay_norm_and_bias:
        return [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": weight_decay}]
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            # 1-D parameters are BatchNorm scales/shifts and biases.
            (no_decay if p.dim() <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def scaled_lr(config: OptimConfig, global_batch: int) -> float:
    """The maximum learning rate for ``global_batch`` (linear scaling from ``config.lr_batch``)."""
    return config.lr * global_batch / config.lr_batch


def build_optimizer(model: nn.Module, config: OptimConfig, lr: float) -> torch.optim.Optimizer:
    """The optimizer named by ``config.name`` over ``model``'s trainable parameters."""
    groups = _param_groups(model, config.weight_decay, config.decay_norm_and_bias)
    if config.name == "rmsprop":
        return RMSpropTF(groups, lr, rho=config.rmsprop_decay, momentum=config.momentum, eps=config.eps)
    if config.name == "sgd":
        return torch.optim.SGD(groups, lr, momentum=config.momentum, nesterov=config.nesterov and config.momentum > 0)
    raise NetAdaptError(f"unknown optimizer {config.name!r}; choose rmsprop or sgd")


def lr_factor(config: ScheduleConfig, step: int, steps_per_epoch: int, epochs: int) -> float:
    """Learning rate at optimizer step ``step`` as a fraction of the maximum.

    ``step``: "decayed by 0.963 every 3 epochs" (staircase, counted from the first step);
    ``cosine``: half a cosine from the end of warm-up to the last step; ``constant``.  A linear
    warm-up over ``warmup_epochs`` precedes all of them.
    """
    epoch = step / steps_per_epoch
    warm = config.warmup_epochs
    if warm > 0 and epoch < warm:
        return (step + 1) / (warm * steps_per_epoch)
    if config.name == "step":
        return config.decay ** math.floor(epoch / config.decay_epochs)
    if config.name == "cosine":
        t = min(1.0, (epoch - warm) / max(epochs - warm, 1e-9))
        return config.min_factor + (1 - config.min_factor) * 0.5 * (1 + math.cos(math.pi * t))
    if config.name == "constant":
        return 1.0
    raise NetAdaptError(f"unknown learning-rate schedule {config.name!r}; choose step, cosine or constant")


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate to ``lr``."""
    for group in optimizer.param_groups:
        group["lr"] = lr


class ModelEma:
    """Exponential moving average of a model's weights and float buffers (paper: decay 0.9998).

    With ``warmup`` the decay of update ``n`` is ``min(decay, (1 + n) / (10 + n))`` (TF's
    ``ExponentialMovingAverage(num_updates=…)``), so short runs are not dominated by the random
    initial weights.  Integer buffers (BatchNorm's batch counters) are copied.
    """

    def __init__(self, model: nn.Module, decay: float, *, warmup: bool = True) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.warmup = warmup
        self.updates = 0

    def current_decay(self) -> float:
        n = self.updates
        return min(self.decay, (1 + n) / (10 + n)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.current_decay()
        mine: list[Tensor] = []
        theirs: list[Tensor] = []
        for e, m in zip(self.module.state_dict().values(), model.state_dict().values(), strict=True):
            if e.dtype.is_floating_point:
                mine.append(e)
                theirs.append(m.detach())
            else:
                e.copy_(m)
        torch._foreach_lerp_(mine, theirs, 1.0 - d)  # e ← d·e + (1 − d)·m

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
