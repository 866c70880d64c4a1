"""Synthetic depth scenes: exact ray-cast depth, determinism, and a FastDepth that learns on them."""

from __future__ import annotations

import pytest
import torch

import netadapt
from netadapt.data import DataConfig, TrainBatchSampler, build_datasets, make_train_loader
from netadapt.data.synthetic import _hit_box, _hit_room, _hit_sphere
from netadapt.depth import (
    DepthMetrics,
    DepthSamples,
    DepthTransform,
    SyntheticDepth,
    collate_depth,
    masked_l1_loss,
    render_scene,
    synthetic_splits,
)
from netadapt.errors import NetAdaptError

torch.set_num_threads(1)


def _rays(*dirs: tuple[float, float, float]) -> torch.Tensor:
    return torch.tensor(dirs, dtype=torch.float64)


def test_ray_casting_primitives_give_exact_distances():
    d = _rays((0, 0, 1), (0.5, 0, 1), (0, -1, 1))
    t, normal = _hit_room(d, torch.tensor([-2.0, -1.5, -1.0]), torch.tensor([3.0, 2.0, 6.0]))
    assert t.tolist() == [6.0, 6.0, 1.5]  # back wall, back wall, floor at y = -1.5
    assert normal[2].tolist() == [0.0, 1.0, 0.0]
    t, normal = _hit_sphere(d, torch.tensor([0.0, 0.0, 5.0], dtype=torch.float64), 1.0)
    assert t[0].item() == pytest.approx(4.0) and normal[0].tolist() == pytest.approx([0, 0, -1])
    assert t[2].item() == float("inf")
    box = _rays((0, 0, 1), (0.2, 0, 1), (0.5, 0, 1), (0, -0.3, 1))
    t, normal = _hit_box(
        box, torch.tensor([-1.0, -1.0, 3.0], dtype=torch.float64), torch.tensor([1.0, 1.0, 4.0], dtype=torch.float64)
    )
    assert t[:2].tolist() == pytest.approx([3.0, 3.0])  # the near face, z = 3
    assert t[2].item() == float("inf")  # passes beside the box (x = 1.5 at z = 3)
    assert t[3].item() == pytest.approx(3.0) and normal[0].tolist() == [0.0, 0.0, -1.0]


def test_scenes_are_deterministic_valid_and_shaded_by_depth():
    a, b = SyntheticDepth(6, size=32, seed=1), SyntheticDepth(6, size=32, seed=1)
    rgb, depth = a.load_pair(2)
    assert rgb.dtype == torch.uint8 and rgb.shape == (3, 32, 32)
    assert depth.dtype == torch.float32 and depth.shape == (32, 32)
    assert torch.equal(rgb, b.load_pair(2)[0]) and torch.equal(depth, b.load_pair(2)[1])
    assert not torch.equal(depth, a.load_pair(3)[1])
    assert not torch.equal(depth, SyntheticDepth(6, size=32, seed=2).load_pair(2)[1])
    train, val = synthetic_splits(4, 4, size=32)
    assert not torch.equal(train.load_pair(0)[1], val.load_pair(0)[1])
    assert train.name == "synthetic/train" and a.describe(1) == "synthetic/train[1]"
    # Every pixel sees a surface at a plausible indoor distance (exact depth, nothing missing).
    depths = torch.stack([a.load_pair(i)[1] for i in range(6)])
    assert torch.isfinite(depths).all() and depths.min() > 0.2 and depths.max() < 12
    # Brightness falls with distance: RGB carries depth cues.
    brightness = torch.stack([a.load_pair(i)[0].float().mean(0) for i in range(6)]).flatten()
    corr = torch.corrcoef(torch.stack([brightness, depths.flatten()]))[0, 1]
    assert corr < -0.3
    with pytest.raises(NetAdaptError):
        SyntheticDepth(0)


def test_render_scene_size_follows_the_argument():
    rgb, depth = render_scene(20, torch.Generator().manual_seed(0))
    assert rgb.shape == (3, 20, 20) and depth.shape == (20, 20)


def test_synthetic_config_builds_heldout_split_and_flips_pairs_together():
    config = DataConfig(dataset="synthetic_depth", synthetic_train=40, synthetic_val=5, image_size=16, heldout=4)
    sets = build_datasets(config)
    assert len(sets.heldout) == 4 and len(sets.train) == 36 and len(sets.val) == 5  # 10% held out
    assert sets.split.classes == ("synthetic",)
    sampler = TrainBatchSampler(len(sets.train), 8, seed=0)
    first = [b.depths for b in make_train_loader(sets.train, sampler, config)]
    again = [b.depths for b in make_train_loader(sets.train, sampler, config)]
    assert len(first) == 4 and first[0].shape == (8, 1, 16, 16)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))  # seeded augmentation
    source = SyntheticDepth(3, size=16)
    flip = DepthSamples(source, [0], DepthTransform("none", True, 16))
    plain = DepthSamples(source, [0], DepthTransform("none", False, 16))
    x0, d0 = plain[0]
    seen = set()
    for seed in range(8):
        x, d = flip[(0, seed)]
        mirrored = torch.equal(d, d0.flip(-1))
        assert torch.equal(x, x0.flip(-1) if mirrored else x0)
        seen.add(mirrored)
    assert seen == {True, False}


def _train(size: int, batch: int, steps: int) -> tuple[float, float, dict]:
    """A few SGD steps of the full FastDepth on synthetic scenes; (val L1, best constant's L1, metrics)."""
    torch.manual_seed(0)
    train, val = synthetic_splits(400, 32, size=size, seed=0)
    data = DepthSamples(train, range(len(train)), DepthTransform("none", True, size))
    held = collate_depth([DepthSamples(val, range(len(val)), DepthTransform("none", False, size))[i] for i in range(len(val))])
    net = netadapt.build_supernet("fastdepth", input_size=size)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    for step in range(steps):
        keys = [(i, step * 1000 + i) for i in torch.randint(len(data), (batch,), generator=g).tolist()]
        b = collate_depth([data[k] for k in keys])
        loss = masked_l1_loss(net(b.images), b.depths)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        pred = net(held.images)
    metrics = DepthMetrics()
    metrics.update(pred, held.depths)
    constant = masked_l1_loss(torch.full_like(held.depths, held.depths.median().item()), held.depths).item()
    return masked_l1_loss(pred, held.depths).item(), constant, metrics.compute()


def test_fastdepth_learns_depth_from_synthetic_scenes():
    # 40 steps at 32x32 (about 15 s on one CPU thread): beats the best constant prediction.
    l1, constant, metrics = _train(32, 16, 40)
    assert l1 < 0.85 * constant
    assert metrics["delta1"] > 0.4


@pytest.mark.slow
def test_fastdepth_learns_depth_at_64_pixels_within_a_minute():
    l1, constant, metrics = _train(64, 8, 60)
    assert l1 < 0.75 * constant
    assert metrics["delta1"] > 0.55
