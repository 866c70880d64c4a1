"""NYU Depth V2 HDF5 loading, bad files, FastDepth's transforms, the held-out split."""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from netadapt.data import DataConfig, build_datasets, load_heldout, make_eval_loader, make_heldout, save_heldout
from netadapt.data.depth_transforms import color_jitter
from netadapt.depth import (
    DepthSamples,
    DepthTransform,
    NYUSource,
    check_h5,
    collate_depth,
    read_h5,
    scan_h5,
)
from netadapt.errors import NetAdaptError

torch.set_num_threads(1)


def _write(path: Path, rgb: np.ndarray | None, depth: np.ndarray | None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        if rgb is not None:
            f.create_dataset("rgb", data=rgb)
        if depth is not None:
            f.create_dataset("depth", data=depth)
    return path


def _frame(seed: int, h: int = 48, w: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (3, h, w), dtype=np.uint8)
    depth = rng.uniform(0.5, 8.0, (h, w)).astype(np.float32)
    return rgb, depth


def _folder(root: Path, scenes: dict[str, int]) -> Path:
    for s, (scene, n) in enumerate(scenes.items()):
        for i in range(n):
            _write(root / scene / f"{i:05d}.h5", *_frame(100 * s + i))
    return root


def test_read_h5_returns_tensors_and_marks_bad_depth_as_missing(tmp_path):
    rgb, depth = _frame(0)
    depth[0, :4] = [np.nan, -1.0, 0.0, np.inf]
    x, d = read_h5(_write(tmp_path / "a.h5", rgb, depth))
    assert x.dtype == torch.uint8 and x.shape == (3, 48, 64)
    assert d.dtype == torch.float32 and d.shape == (48, 64)
    assert torch.equal(x, torch.from_numpy(rgb))
    assert d[0, :4].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert torch.allclose(d[1:], torch.from_numpy(depth[1:]))


def test_bad_files_are_counted_reported_and_skipped(tmp_path, caplog):
    root = _folder(tmp_path / "train", {"bedroom": 3, "kitchen": 2})
    rgb, depth = _frame(9)
    _write(root / "kitchen" / "nokey.h5", rgb, None)
    _write(root / "kitchen" / "mismatch.h5", rgb, depth[:-2])
    _write(root / "kitchen" / "nan.h5", rgb, np.full_like(depth, np.nan))
    _write(root / "kitchen" / "negative.h5", rgb, -depth)
    (root / "kitchen" / "garbage.h5").write_bytes(b"not hdf5")
    with caplog.at_level(logging.WARNING):
        source = NYUSource(root)  # shapes: keys and shapes checked, values when loaded
    assert len(source) == 7
    assert set(source.bad) == {"kitchen/nokey.h5", "kitchen/mismatch.h5", "kitchen/garbage.h5"}
    assert "missing key 'depth'" in source.bad["kitchen/nokey.h5"]
    assert "48x64 but depth is 46x64" in source.bad["kitchen/mismatch.h5"]
    assert "3 skipped" in caplog.text
    assert source.classes == ("bedroom", "kitchen")
    assert source.targets == [0, 0, 0, 1, 1, 1, 1]  # sorted: 00000, 00001, nan, negative

    # Depth maps without a valid value are found when loaded and skipped by the batch.
    samples = DepthSamples(source, range(len(source)), DepthTransform("nyu", False, 32))
    batch = collate_depth([samples[i] for i in range(len(samples))])
    assert batch.images.shape == (5, 3, 32, 32) and batch.depths.shape == (5, 1, 32, 32)
    assert sorted(Path(s).name for s in batch.skipped) == ["nan.h5", "negative.h5"]
    assert batch.kept.tolist() == [0, 1, 2, 3, 4]

    full = NYUSource(root, check="values")
    assert len(full) == 5 and len(full.bad) == 5
    report = scan_h5(root, values=True)
    assert report.total == 10 and len(report.good) == 5
    assert check_h5(root / "kitchen" / "nan.h5", values=True).startswith("depth has no finite positive")


def test_unusable_folders_are_one_line_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(NetAdaptError, match="holds no HDF5 files"):
        NYUSource(tmp_path / "empty")
    with pytest.raises(NetAdaptError, match="does not exist"):
        NYUSource(tmp_path / "missing")
    rgb, depth = _frame(0)
    _write(tmp_path / "bad" / "a.h5", rgb, None)
    _write(tmp_path / "bad" / "b.h5", None, depth)
    with pytest.raises(NetAdaptError, match=r"none of the 2 HDF5 files .* is usable") as err:
        NYUSource(tmp_path / "bad")
    assert "\n" not in str(err.value)


def _big_frame(depth: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    rgb = torch.randint(0, 256, (3, *depth.shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return rgb, torch.from_numpy(depth)


def test_validation_transform_is_fastdepths_centre_crop():
    rows = np.repeat(np.arange(1, 481, dtype=np.float32)[:, None], 640, 1)  # depth = row number
    rgb, depth = _big_frame(rows)
    x, d = DepthTransform("nyu", False, 224)(rgb, depth)
    assert x.shape == (3, 224, 224) and d.shape == (1, 224, 224)
    assert x.min() >= 0 and x.max() <= 1  # FastDepth feeds [0, 1] images
    # Height 250, crop 228 rows: 228 * 480 / 250 = 437.8 rows of the frame, centred.
    half = 228 * 480 / 250 / 2
    assert d[0, 0].mean().item() == pytest.approx(240 - half, abs=2)
    assert d[0, -1].mean().item() == pytest.approx(240 + half, abs=2)
    cols = np.repeat(np.arange(1, 641, dtype=np.float32)[None], 480, 0)
    _, d = DepthTransform("nyu", False, 224)(rgb, torch.from_numpy(cols))
    half = 304 * 480 / 250 / 2
    assert d[0, :, 0].mean().item() == pytest.approx(320 - half, abs=2)
    assert d[0, :, -1].mean().item() == pytest.approx(320 + half, abs=2)


def test_training_transform_is_seeded_and_scales_depth():
    rgb, depth = _big_frame(np.full((480, 640), 3.0, dtype=np.float32))
    tf = DepthTransform("nyu", True, 64)
    x1, d1 = tf(rgb, depth, torch.Generator().manual_seed(5))
    x2, d2 = tf(rgb, depth, torch.Generator().manual_seed(5))
    x3, _ = tf(rgb, depth, torch.Generator().manual_seed(6))
    assert torch.equal(x1, x2) and torch.equal(d1, d2)
    assert not torch.equal(x1, x3)
    valid = d1[d1 > 0]
    assert valid.numel() > 0.9 * d1.numel()  # only rotated-in corners may be missing
    assert torch.allclose(valid, valid[0].expand_as(valid))  # one scale s for the whole frame
    assert 3.0 / 1.5 - 1e-5 <= valid[0].item() <= 3.0 + 1e-5  # depth / s, s in [1, 1.5]
    assert x1.min() >= 0 and x1.max() <= 1


def test_depth_is_resampled_without_blending_and_flip_mirrors_both():
    rgb, depth = _big_frame(np.random.default_rng(0).choice([0.0, 1.0, 5.0], (480, 640)).astype(np.float32))
    tf = DepthTransform("nyu", True, 96, rotation=0.0, scale=(1.0, 1.0), jitter=0.0)
    plain_x, plain_d = DepthTransform("nyu", False, 96)(rgb, depth)
    flips = 0
    for seed in range(8):
        x, d = tf(rgb, depth, torch.Generator().manual_seed(seed))
        assert set(d.unique().tolist()) <= {0.0, 1.0, 5.0}  # nearest neighbours: no mixed depths
        if torch.equal(d, plain_d.flip(-1)) and torch.allclose(x, plain_x.flip(-1)):
            flips += 1
        else:
            assert torch.equal(d, plain_d) and torch.allclose(x, plain_x)
    assert 0 < flips < 8


def test_color_jitter_stays_in_range_and_changes_the_image():
    img = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))
    out = color_jitter(img, 0.4, torch.Generator().manual_seed(1))
    assert out.min() >= 0 and out.max() <= 1 and not torch.allclose(out, img)


def test_heldout_split_is_stratified_by_scene_seeded_and_written(tmp_path):
    root = _folder(tmp_path / "nyu" / "train", {"a": 6, "b": 3, "c": 3})
    _folder(tmp_path / "nyu" / "val", {"official": 2})
    source = NYUSource(root)
    split = make_heldout(source, 4, seed=3, data={"dataset": "nyu"})
    scenes = sorted(source.classes[source.targets[i]] for i in split.indices)
    assert scenes == ["a", "a", "b", "c"]  # in proportion to 6:3:3
    assert make_heldout(source, 4, seed=3, data={}).indices == split.indices
    save_heldout(tmp_path / "run", split)
    again = load_heldout(tmp_path / "run")
    assert again.indices == split.indices and again.names == split.names
    again.check(source)

    config = DataConfig(dataset="nyu", root=str(tmp_path / "nyu"), heldout=4, image_size=32)
    sets = build_datasets(config)
    assert len(sets.train) == 8 and len(sets.heldout) == 4 and len(sets.val) == 2
    assert not set(sets.train.indices) & set(sets.heldout.indices)
    reused = build_datasets(config, load_heldout(tmp_path / "run"))
    assert reused.heldout.indices == list(split.indices)
    _write(root / "c" / "new.h5", *_frame(77))  # the data changed since the split was drawn
    with pytest.raises(NetAdaptError, match="changed since the held-out split"):
        build_datasets(config, split)

    loader = make_eval_loader(sets.heldout, config, batch_size=3)
    batches = list(loader)
    assert [b.images.shape[0] for b in batches] == [3, 1]
    assert batches[0].depths.shape == (3, 1, 32, 32)


def test_nyu_config_requires_a_root():
    with pytest.raises(NetAdaptError, match=r"data\.root"):
        build_datasets(DataConfig(dataset="nyu"))


def test_depth_data_config_round_trips_through_the_typed_loader():
    from dataclasses import asdict

    from netadapt.config import config_from_dict, load_config
    from netadapt.pipeline.run import RunConfig

    config = DataConfig(dataset="nyu", root="/data/nyudepthv2", heldout=2000)
    assert config_from_dict(DataConfig, asdict(config)) == config
    # paper §4.2.1: the NYU run reserves 2K training images for comparing samples
    nyu = load_config(RunConfig, Path(__file__).resolve().parents[1] / "configs" / "nyu_fastdepth.yaml").supernet.data
    assert nyu.dataset == "nyu" and nyu.heldout == 2000
