"""Optimizers, the learning-rate schedule and the weight moving average."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from netadapt.config import load_config
from netadapt.errors import NetAdaptError
from netadapt.train import (
    ModelEma,
    OptimConfig,
    RMSpropTF,
    ScheduleConfig,
    SupernetTrainConfig,
    build_optimizer,
    lr_factor,
    scaled_lr,
)


def test_rmsprop_tf_matches_the_tensorflow_update() -> None:
    w = nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = RMSpropTF([w], lr=0.1, rho=0.9, momentum=0.5, eps=1e-3, weight_decay=0.01)
    ms, mom, ref = torch.ones(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64), w.detach().clone()
    for grad in ([0.5, 0.1], [-0.3, 0.2], [0.05, -0.4]):
        g = torch.tensor(grad, dtype=torch.float64)
        w.grad = g.clone()
        opt.step()
        g = g + 0.01 * ref
        ms = 0.9 * ms + 0.1 * g * g
        mom = 0.5 * mom + 0.1 * g / torch.sqrt(ms + 1e-3)
        ref = ref - mom
        assert torch.allclose(w.detach(), ref, atol=1e-12)


def test_build_optimizer_groups_and_names() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    opt = build_optimizer(model, OptimConfig(), lr=0.1)
    assert isinstance(opt, RMSpropTF)
    decayed, undecayed = opt.param_groups
    assert decayed["weight_decay"] == 1e-5 and undecayed["weight_decay"] == 0.0
    assert all(p.dim() > 1 for p in decayed["params"]) and all(p.dim() == 1 for p in undecayed["params"])
    assert isinstance(build_optimizer(model, OptimConfig(name="sgd"), lr=0.1), torch.optim.SGD)
    with pytest.raises(NetAdaptError, match=r"optim\.name: 'adam'"):
        load_config(SupernetTrainConfig, None, ["optim.name=adam"])
    assert scaled_lr(OptimConfig(), 256) == pytest.approx(0.016)  # 0.064 per 1024 images, linear


def test_lr_schedules() -> None:
    step = ScheduleConfig()  # paper: ×0.963 every 3 epochs
    assert lr_factor(step, 0, 10, 30) == 1.0
    assert lr_factor(step, 29, 10, 30) == 1.0
    assert lr_factor(step, 30, 10, 30) == pytest.approx(0.963)
    assert lr_factor(step, 95, 10, 30) == pytest.approx(0.963**3)
    warm = ScheduleConfig(warmup_epochs=1)
    assert lr_factor(warm, 0, 10, 30) == pytest.approx(0.1) and lr_factor(warm, 9, 10, 30) == pytest.approx(1.0)
    cos = ScheduleConfig(name="cosine", min_factor=0.1)
    assert lr_factor(cos, 0, 10, 4) == pytest.approx(1.0)
    assert lr_factor(cos, 20, 10, 4) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 2)))
    assert lr_factor(cos, 40, 10, 4) == pytest.approx(0.1)


def test_ema_tracks_weights_and_copies_counters() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = ModelEma(model, 0.5, warmup=False)
    start = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model[1].num_batches_tracked.fill_(7)
    ema.update(model)
    assert torch.allclose(ema.module[0].weight, start + 0.5)
    assert int(ema.module[1].num_batches_tracked) == 7
    assert not any(p.requires_grad for p in ema.module.parameters())
    warm = ModelEma(model, 0.9998)
    assert warm.current_decay() == pytest.approx(0.1)  # (1 + 0) / (10 + 0): early updates move fast
    state = ema.state_dict()
    other = ModelEma(model, 0.5)
    other.load_state_dict(state)
    assert other.updates == 1 and torch.equal(other.module[0].weight, ema.module[0].weight)
