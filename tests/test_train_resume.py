"""Super-network training end to end on the built-in digits: outputs, exact resume, bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from netadapt.config import load_config
from netadapt.data import load_heldout
from netadapt.errors import NetAdaptError
from netadapt.io import read_jsonl
from netadapt.model.checkpoint import load_supernet
from netadapt.train import SupernetTrainConfig, train_supernet

torch.set_num_threads(1)

TINY = [
    "epochs=2",
    "model.width_mult=0.25",
    "model.options={num_widths: 5}",
    "data.batch_size=32",
    "data.heldout=100",
    "data.subset=256",
    "optim.lr=0.02",
    "optim.lr_batch=32",
    "ema_decay=0.99",
    "checkpoint_every=3",
    "deterministic=true",
    "progress=false",
    "tensorboard=false",
]


def tiny(run_dir: Path, *extra: str) -> SupernetTrainConfig:
    return load_config(SupernetTrainConfig, None, [*TINY, f"run_dir={run_dir}", *extra])


class Crash(RuntimeError):
    pass


def crash_at(step: int):
    def hook(global_step: int) -> None:
        if global_step == step:
            raise Crash(f"simulated crash after step {step}")

    return hook


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=False)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("uninterrupted") / "run"
    train_supernet(tiny(run))
    return run


def test_outputs_of_a_run(uninterrupted: Path) -> None:
    run = uninterrupted
    for name in ("supernet.pt", "checkpoint.pt", "config.yaml", "heldout.json", "metrics.jsonl", "metrics.csv"):
        assert (run / name).is_file(), name
    assert not list(run.glob(".*.tmp"))  # atomic writes leave no temporary files
    net, extra = load_supernet(run / "supernet.pt")
    assert net.name == "mobilenet_v1_cifar" and net.input_size == 16 and net.num_classes == 10
    assert extra["classes"] == [str(i) for i in range(10)] and extra["ema"] is True
    assert extra["heldout"] == "heldout.json" and extra["data"]["dataset"] == "digits"
    assert extra["train"]["epochs"] == 2
    assert extra["timing"]["devices"] == 1 and extra["timing"]["wall_seconds"] > 0
    split = load_heldout(run / extra["heldout"])
    assert len(split.indices) == 100 and split.fingerprint == extra["data_fingerprint"]
    records = read_jsonl(run / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1, 2]
    assert all(0.0 <= r["val_top1"] <= 1.0 and r["train_loss"] > 0 for r in records)
    assert records[-1]["step"] == 2 * (256 // 32)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["ema_decay"] == 0.99 and saved["data"]["heldout"] == 100
    # The saved weights are the moving average, not the raw weights of the last step.
    ckpt = _state(run / "checkpoint.pt")
    assert ckpt["epoch"] == 2 and ckpt["step_in_epoch"] == 0
    assert all(torch.equal(net.state_dict()[k], v) for k, v in ckpt["ema"]["module"].items())
    assert any(not torch.equal(ckpt["model"][k], v) for k, v in ckpt["ema"]["module"].items() if v.is_floating_point())


def test_finished_run_returns_at_once(uninterrupted: Path) -> None:
    before = (uninterrupted / "supernet.pt").stat().st_mtime_ns
    assert train_supernet(tiny(uninterrupted)) == uninterrupted / "supernet.pt"
    assert (uninterrupted / "supernet.pt").stat().st_mtime_ns == before


@pytest.mark.parametrize("crashes", [(5,), (10, 13)])
def test_resume_after_crash_gives_identical_weights(uninterrupted: Path, tmp_path: Path, crashes: tuple[int, ...]) -> None:
    """Crash mid-epoch (between checkpoints) and rerun: the end state equals the uninterrupted run."""
    run = tmp_path / "run"
    for step in crashes:
        with pytest.raises(Crash):
            train_supernet(tiny(run), on_step=crash_at(step))
        assert (run / "checkpoint.pt").is_file() and not (run / "supernet.pt").exists()
    train_supernet(tiny(run))
    a, b = _state(uninterrupted / "checkpoint.pt"), _state(run / "checkpoint.pt")
    for part in ("model",):
        assert a[part].keys() == b[part].keys()
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part])
    assert all(torch.equal(a["ema"]["module"][k], b["ema"]["module"][k]) for k in a["ema"]["module"])
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert all(torch.equal(sa[i][n], sb[i][n]) for i in sa for n in sa[i])
    ra, rb = read_jsonl(uninterrupted / "metrics.jsonl"), read_jsonl(run / "metrics.jsonl")
    keys = ("epoch", "step", "lr", "train_loss", "train_top1", "val_top1", "val_top1_half")
    assert [[r[k] for k in keys] for r in ra] == [[r[k] for k in keys] for r in rb]


def test_changed_config_in_same_run_dir_is_rejected(uninterrupted: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(uninterrupted, run)
    with pytest.raises(NetAdaptError, match=r"optim\.lr=0\.02, now 0\.5"):
        train_supernet(tiny(run, "optim.lr=0.5"))


def test_corrupt_and_foreign_checkpoints(uninterrupted: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(uninterrupted, run)
    (run / "supernet.pt").unlink()
    (run / "checkpoint.pt").write_bytes(b"garbage, not a checkpoint")
    with pytest.raises(NetAdaptError, match="corrupt or unreadable"):
        train_supernet(tiny(run))
    torch.save({"format": "netadapt.supernet", "version": 1}, run / "checkpoint.pt")
    with pytest.raises(NetAdaptError, match="not a netadapt training checkpoint"):
        train_supernet(tiny(run))


def test_class_list_must_match_the_checkpoint(tmp_path: Path) -> None:
    root = tmp_path / "images"
    for label in ("ant", "bee"):
        for i in range(12):
            path = root / "train" / label / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (16, 16), (i * 20, 100 if label == "ant" else 0, 0)).save(path)
    args = ["data.dataset=folder", f"data.root={root}", "data.preset=none", "data.image_size=16", "data.heldout=4",
            "data.batch_size=8", "epochs=1"]  # fmt: skip
    train_supernet(tiny(tmp_path / "run", *args))
    (tmp_path / "run" / "supernet.pt").unlink()
    (root / "train" / "bee").rename(root / "train" / "wasp")
    with pytest.raises(NetAdaptError, match=r"classes .*differ .*checkpoint"):
        train_supernet(tiny(tmp_path / "run", *args))


def test_bad_settings_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(NetAdaptError, match=r"model\.input_size=32"):
        train_supernet(tiny(tmp_path / "a", "model.input_size=32"))
    with pytest.raises(NetAdaptError, match="larger than"):
        train_supernet(tiny(tmp_path / "b", "data.batch_size=4096", "data.heldout=10"))
    with pytest.raises(NetAdaptError, match=r"unknown config key optim\.nme"):
        tiny(tmp_path / "c", "optim.nme=sgd")
    with pytest.raises(NetAdaptError, match="fastdepth"):
        train_supernet(tiny(tmp_path / "d", "model.name=fastdepth"))


def test_progressive_phases_and_validation_of_sub_networks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ordered_dropout.full_epochs / width_epochs: the first steps train the initial network
    alone, then widths, then everything; every epoch validates the initial, half-width and
    smallest networks, each with recalibrated BatchNorm."""
    from netadapt.train import OrderedDropoutSampler

    phases: list[str] = []
    floors: list[float] = []
    original = OrderedDropoutSampler.sample

    def spy(self, batch, generator, phase="all", *, floor=0.0):
        phases.append(phase)
        floors.append(floor)
        return original(self, batch, generator, phase, floor=floor)

    monkeypatch.setattr(OrderedDropoutSampler, "sample", spy)
    config = tiny(tmp_path / "run", "epochs=3", "ordered_dropout.full_epochs=1", "ordered_dropout.width_epochs=1",
                  "ordered_dropout.sandwich=true", "val_calibration_images=64", "checkpoint_every=0")  # fmt: skip
    train_supernet(config)
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    per_epoch = records[0]["step"]
    assert per_epoch > 1
    assert phases == ["width"] * per_epoch + ["all"] * per_epoch  # epoch 1 ran the initial network plainly
    # progressive shrinking: the narrowest width allowed falls from 1 to 0 over the width phase
    assert floors[0] == 1.0 and floors[:per_epoch] == sorted(floors[:per_epoch], reverse=True)
    assert floors[per_epoch - 1] == pytest.approx(1 / per_epoch) and set(floors[per_epoch:]) == {0.0}
    for r in records:
        assert {"val_top1", "val_top1_half", "val_top1_min"} <= r.keys()
        assert 0.0 <= r["val_top1_min"] <= 1.0
