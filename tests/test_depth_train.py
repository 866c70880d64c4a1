"""Depth super-network training (paper §4.2): loss, metrics per epoch, held-out split, exact resume,
distillation, the ImageNet encoder, bad NYU files — on tiny synthetic scenes and HDF5 files."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import netadapt
from netadapt.config import config_differences, config_to_dict, load_config
from netadapt.data import build_search_loaders, load_heldout
from netadapt.depth import DepthBatch, masked_l1_loss
from netadapt.errors import NetAdaptError
from netadapt.io import read_jsonl
from netadapt.model.checkpoint import load_supernet
from netadapt.tasks import task_for, task_named
from netadapt.train import SupernetTrainConfig, train_supernet

torch.set_num_threads(1)

TINY = [
    "epochs=2",
    "model.name=fastdepth",
    "data.dataset=synthetic_depth",
    "data.image_size=32",
    "data.synthetic_train=72",
    "data.synthetic_val=8",
    "data.heldout=8",
    "data.batch_size=16",
    "optim.name=sgd",
    "optim.lr=0.05",
    "optim.lr_batch=16",
    "ema_decay=0.9",
    "checkpoint_every=2",
    "deterministic=true",
    "progress=false",
    "tensorboard=false",
]


def tiny(run_dir: Path, *extra: str) -> SupernetTrainConfig:
    return load_config(SupernetTrainConfig, None, [*TINY, f"run_dir={run_dir}", *extra])


class Crash(RuntimeError):
    pass


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("depth") / "run"
    train_supernet(tiny(run_dir))
    return run_dir


def test_task_follows_the_data_set():
    assert task_for(load_config(SupernetTrainConfig, None, ["data.dataset=synthetic_depth"]).data).name == "depth"
    assert task_for({"dataset": "nyu", "root": "x"}).name == "depth"
    assert task_for({"dataset": "digits"}).name == "classification"
    with pytest.raises(NetAdaptError, match="depth samples are scored by one of rmse"):
        task_named("depth").score("top1")
    with pytest.raises(NetAdaptError, match="classification samples are scored by top1"):
        task_named("classification").score("rmse")


def test_depth_loss_and_hits_of_the_task():
    task = task_named("depth")
    target = torch.tensor([[[[2.0, 0.0], [4.0, 1.0]]]])  # (1, 1, 2, 2); 0 = missing
    pred = torch.tensor([[[[2.2, 9.0], [2.0, 1.0]]]])
    assert task.loss(pred, target).item() == pytest.approx((0.2 + 2.0 + 0.0) / 3)
    assert task.loss(pred, target).item() == pytest.approx(masked_l1_loss(pred, target).item())
    # δ1 of the image: 2.2/2 and 1/1 within 1.25, 4/2 not -> 2 of 3 valid pixels
    assert task.hits(pred, target).item() == pytest.approx(2 / 3)
    dummy = task.empty_target(netadapt.build_supernet("fastdepth", input_size=32))
    assert dummy.shape == (1, 1, 32, 32) and task.loss(torch.ones_like(dummy), dummy).item() == 0.0


def test_depth_training_logs_depth_metrics_every_epoch(trained: Path):
    records = read_jsonl(trained / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1, 2]
    for r in records:
        for key in ("train_loss", "train_delta1", "val_rmse", "val_rel", "val_delta1", "val_delta2", "val_delta3",
                    "val_mae", "val_loss", "val_rmse_half", "val_delta1_half"):  # fmt: skip
            assert math.isfinite(r[key]), key
        assert "train_top1" not in r and "val_top1" not in r
        assert 0.0 <= r["val_delta1"] <= r["val_delta2"] <= r["val_delta3"] <= 1.0
        assert r["val_loss"] == pytest.approx(r["val_mae"], rel=0.05)  # pooled vs per-image L1 on equal-size frames
    net, extra = load_supernet(trained / "supernet.pt")
    assert net.task == "depth" and extra["data"]["dataset"] == "synthetic_depth"
    assert extra["metrics"]["val_rmse"] == records[-1]["val_rmse"]


def test_depth_heldout_split_is_reserved_and_read_back_by_the_search(trained: Path):
    split = load_heldout(trained)
    assert split.data["dataset"] == "synthetic_depth" and len(split.indices) == 8
    assert all(name.startswith("synthetic/train[") for name in split.names)
    heldout, calibration = build_search_loaders(trained, batch_size=4, calibration_images=40, seed=0)
    assert heldout.dataset.indices == list(split.indices)
    assert not set(calibration.dataset.indices) & set(split.indices)  # never trains or calibrates on held-out frames
    assert len(calibration.dataset) == 40
    batch = next(iter(heldout))
    assert isinstance(batch, DepthBatch) and batch.images.shape == (4, 3, 32, 32) and batch.depths.shape == (4, 1, 32, 32)
    # the training set of the run is the rest of the training scenes
    from netadapt.config import config_from_dict
    from netadapt.data import DataConfig, build_datasets

    sets = build_datasets(config_from_dict(DataConfig, split.data), split)
    assert len(sets.train) == 72 - 8 and not set(sets.train.indices) & set(split.indices)


def test_depth_training_resumes_exactly_after_a_crash(trained: Path, tmp_path: Path):
    run_dir = tmp_path / "run"

    def crash(step: int) -> None:
        if step == 3:
            raise Crash("simulated crash")

    with pytest.raises(Crash):
        train_supernet(tiny(run_dir), on_step=crash)
    assert not (run_dir / "supernet.pt").exists()
    train_supernet(tiny(run_dir))
    a, b = (torch.load(p / "checkpoint.pt", weights_only=False) for p in (trained, run_dir))
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key

    def timeless(history: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "images_per_s"} for r in history]

    assert timeless(a["history"]) == timeless(b["history"])  # same losses and depth metrics


def test_depth_distillation_and_sandwich_train(tmp_path: Path):
    run_dir = tmp_path / "run"
    train_supernet(tiny(run_dir, "epochs=1", "ordered_dropout.distill=0.5", "ordered_dropout.sandwich=true"))
    (record,) = read_jsonl(run_dir / "metrics.jsonl")
    assert math.isfinite(record["train_loss"]) and math.isfinite(record["val_rmse"])


def test_model_and_data_of_different_tasks_are_refused(tmp_path: Path):
    with pytest.raises(
        NetAdaptError, match=r"mobilenet_v1_cifar is a classification network but data\.dataset='synthetic_depth'"
    ):
        train_supernet(tiny(tmp_path / "a", "model.name=mobilenet_v1_cifar"))
    with pytest.raises(NetAdaptError, match=r"data\.root is required"):
        train_supernet(tiny(tmp_path / "b", "data.dataset=nyu"))
    with pytest.raises(NetAdaptError, match="leaves no training images"):
        train_supernet(tiny(tmp_path / "c", "data.heldout=72"))


def test_encoder_starts_from_an_imagenet_mobilenet_v1_file(tmp_path: Path):
    imagenet = netadapt.build_supernet("mobilenet_v1")
    with torch.no_grad():
        for p in imagenet.parameters():
            p.normal_()
    path = tmp_path / "mobilenet_v1.pt"
    torch.save(imagenet.state_dict(), path)
    run_dir = tmp_path / "run"
    train_supernet(tiny(run_dir, "epochs=1", "optim.lr=1.0e-12", "ema_decay=null", f"init_encoder={path}"))
    net, _ = load_supernet(run_dir / "supernet.pt")
    ours, theirs = net.state_dict(), imagenet.state_dict()
    # every encoder convolution (b0-b13) holds the checkpoint's weights; the decoder does not
    encoder = [k for k in theirs if k.endswith("conv.weight")]
    assert len(encoder) == 27
    for key in encoder:
        assert torch.allclose(ours[key], theirs[key], atol=1e-6), key
    with pytest.raises(NetAdaptError, match="does not exist"):
        train_supernet(tiny(tmp_path / "bad", f"init_encoder={tmp_path / 'missing.pt'}"))


def _write_h5(path: Path, rgb: np.ndarray | None, depth: np.ndarray | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        if rgb is not None:
            f.create_dataset("rgb", data=rgb)
        if depth is not None:
            f.create_dataset("depth", data=depth)


def test_bad_nyu_files_are_skipped_counted_and_reported_in_training(tmp_path: Path, caplog):
    rng = np.random.default_rng(0)
    root = tmp_path / "nyudepthv2"

    def frame() -> tuple[np.ndarray, np.ndarray]:
        return rng.integers(0, 256, (3, 30, 40), dtype=np.uint8), rng.uniform(0.5, 8.0, (30, 40)).astype(np.float32)

    for scene in ("bedroom", "kitchen"):
        for i in range(12):
            _write_h5(root / "train" / scene / f"{i:05d}.h5", *frame())
    for i in range(4):
        _write_h5(root / "val" / "official" / f"{i:05d}.h5", *frame())
    rgb, _ = frame()
    _write_h5(root / "train" / "kitchen" / "nodepth.h5", rgb, None)  # a missing key
    _write_h5(root / "train" / "kitchen" / "shape.h5", rgb, np.ones((10, 10), np.float32))  # mismatched shapes
    for i in range(4):  # no valid depth at all: NaN, non-positive
        _write_h5(root / "train" / "bedroom" / f"bad{i}.h5", rgb, np.full((30, 40), np.nan if i % 2 else -1.0, np.float32))
    run_dir = tmp_path / "run"
    config = tiny(run_dir, "epochs=1", "data.dataset=nyu", f"data.root={root}", "data.heldout=4", "data.batch_size=8")
    with caplog.at_level(logging.WARNING):
        train_supernet(config)
    text = caplog.text
    assert "28 usable of 30 HDF5 files, 2 skipped" in text and "nodepth.h5" in text  # reported when the folder is opened
    split = load_heldout(run_dir)
    assert len(split.indices) == 4 and not any("nodepth" in n or "shape" in n for n in split.names)
    (record,) = read_jsonl(run_dir / "metrics.jsonl")
    # 28 usable files minus 4 held out: 24 training frames, 3 steps of 8; every unreadable
    # (NaN/non-positive) frame the training steps drew is counted, named and skipped
    bad_heldout = sum(Path(n).name.startswith("bad") for n in split.names)
    assert record["skipped_images"] == 4 - bad_heldout
    assert math.isfinite(record["train_loss"]) and math.isfinite(record["val_rmse"])
    if record["skipped_images"]:
        assert "skipped unreadable image" in text and "depth has no finite positive value" in text


def test_runs_of_earlier_versions_resume_without_the_new_settings(tmp_path: Path):
    # a classification run started before the depth settings existed
    new = config_to_dict(load_config(SupernetTrainConfig, None, [f"run_dir={tmp_path}", "epochs=2"]))
    defaults = config_to_dict(SupernetTrainConfig())
    old = json.loads(json.dumps(new))
    for key in ("check", "synthetic_train", "synthetic_val"):
        del old["data"][key]
    del old["init_encoder"]
    assert config_differences(old, new, defaults) == []  # settings added at their defaults: the same run
    changed = json.loads(json.dumps(new))
    changed["data"]["synthetic_train"] = 5
    assert config_differences(old, changed, defaults) == ["data.synthetic_train"]
    # and the training loop accepts it: resume a finished run whose config.yaml lacks them
    import yaml

    run = tmp_path / "old"
    config = load_config(SupernetTrainConfig, None, [f"run_dir={run}", "epochs=1", "data.subset=64", "data.heldout=20",
                                                     "data.batch_size=32", "model.width_mult=0.25", "progress=false",
                                                     "tensorboard=false"])  # fmt: skip
    train_supernet(config)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    del saved["init_encoder"], saved["data"]["check"]
    (run / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    assert train_supernet(config) == run / "supernet.pt"
    with pytest.raises(NetAdaptError, match="was started with epochs=1, now 2"):
        train_supernet(load_config(SupernetTrainConfig, None, [f"run_dir={run}", "epochs=2", "data.subset=64",
                                                              "data.heldout=20", "data.batch_size=32", "model.width_mult=0.25"]))  # fmt: skip
    assert config_differences(new, {**new, "epochs": 3}, defaults) == ["epochs"]
