"""Two processes under torchrun (gloo, CPU) train like one process with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from netadapt.config import config_to_dict, load_config
from netadapt.io import read_jsonl
from netadapt.train import SupernetTrainConfig, train_supernet

torch.set_num_threads(1)

SETTINGS = [
    "epochs=1",
    "model.width_mult=0.25",
    "model.options={num_widths: 5}",
    "data.batch_size=32",
    "data.heldout=100",
    "data.subset=192",
    "optim.lr=0.02",
    "optim.lr_batch=32",
    "ema_decay=null",
    "checkpoint_every=2",
    "progress=false",
    "tensorboard=false",
    "device=cpu",
]


def _params(path: Path) -> dict[str, torch.Tensor]:
    data = torch.load(path, weights_only=False)
    buffers = {k for k in data["state_dict"] if "running_" in k or "num_batches" in k}
    return {k: v for k, v in data["state_dict"].items() if k not in buffers}


def _train_with_torchrun(settings: list[str], tmp_path: Path) -> None:
    """Train ``settings`` in two torchrun processes (gloo, CPU) into ``tmp_path / "ddp"``."""
    config = load_config(SupernetTrainConfig, None, [*settings, f"run_dir={tmp_path / 'ddp'}"])
    config_file = tmp_path / "ddp.yaml"
    config_file.write_text(yaml.safe_dump(config_to_dict(config)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "netadapt.train", "--config", str(config_file)]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_processes_equal_one_process_with_accumulation(tmp_path: Path) -> None:
    """BatchNorm normalizes over each process's micro-batch, so the exact single-process twin of
    two processes × 16 images is one process × 2 accumulated micro-batches of 16 (the same
    images in the same chunks, see netadapt.data.batches).  Parameters then agree to float
    round-off; running statistics differ by design (DDP keeps rank 0's), so they are not compared.
    """
    _train_with_torchrun(SETTINGS, tmp_path)

    train_supernet(load_config(SupernetTrainConfig, None, [*SETTINGS, "accumulate=2", f"run_dir={tmp_path / 'acc'}"]))
    train_supernet(load_config(SupernetTrainConfig, None, [*SETTINGS, f"run_dir={tmp_path / 'one'}"]))
    ddp, acc, one = (_params(tmp_path / d / "supernet.pt") for d in ("ddp", "acc", "one"))
    assert ddp.keys() == acc.keys()
    for k in ddp:
        assert torch.allclose(ddp[k], acc[k], rtol=1e-4, atol=1e-6), k
    # Against one process with 32-image batches the difference is BatchNorm's batch statistics only.
    diff = sum(float((ddp[k] - one[k]).square().sum()) for k in ddp) ** 0.5
    norm = sum(float(ddp[k].square().sum()) for k in ddp) ** 0.5
    assert 0 < diff / norm < 0.05, diff / norm
    assert len(read_jsonl(tmp_path / "ddp" / "metrics.jsonl")) == 1
    assert (tmp_path / "ddp" / "checkpoint.pt").is_file()


def test_groups_normalized_apart_make_one_process_equal_two(tmp_path: Path) -> None:
    """With ``ordered_dropout.group_size`` equal to each process's share of the batch, every
    process's micro-batch is one group with its own statistics, so one process with the whole
    batch (two groups normalized apart) trains as two processes do.  One step: the two differ only
    by float round-off (batch-32 against batch-16 convolutions), which BatchNorm over 16 images
    of a 0.25-wide network (nearly constant channels) amplifies step by step (0.04 after four)."""
    grouped = [*SETTINGS, "ordered_dropout.group_size=16", "data.subset=32", "checkpoint_every=0"]  # one step
    _train_with_torchrun(grouped, tmp_path)
    train_supernet(load_config(SupernetTrainConfig, None, [*grouped, f"run_dir={tmp_path / 'one'}"]))
    ddp, one = (_params(tmp_path / d / "supernet.pt") for d in ("ddp", "one"))
    for k in ddp:
        assert torch.allclose(ddp[k], one[k], rtol=1e-4, atol=1e-6), k


def test_largest_pass_exchanges_both_passes_gradients(tmp_path: Path) -> None:
    """``ordered_dropout.largest_pass`` runs two backward passes per micro-batch, the first
    without exchanging gradients (``no_sync``): two processes still train as one process with two
    accumulated micro-batches.  One step: the two passes' gradients are summed in another order
    (round-off, 5e-7), which this tiny network amplifies over later steps as above."""
    settings = [*SETTINGS, "ordered_dropout.largest_pass=true", "ordered_dropout.distill=0.5", "data.subset=32",
                "checkpoint_every=0"]  # fmt: skip
    _train_with_torchrun(settings, tmp_path)
    train_supernet(load_config(SupernetTrainConfig, None, [*settings, "accumulate=2", f"run_dir={tmp_path / 'acc'}"]))
    no_pass = [s for s in settings if "largest_pass" not in s]
    train_supernet(load_config(SupernetTrainConfig, None, [*no_pass, "accumulate=2", f"run_dir={tmp_path / 'off'}"]))
    ddp, acc, off = (_params(tmp_path / d / "supernet.pt") for d in ("ddp", "acc", "off"))
    for k in ddp:
        assert torch.allclose(ddp[k], acc[k], rtol=1e-4, atol=1e-6), k
    assert any(not torch.allclose(acc[k], off[k], rtol=1e-3, atol=1e-5) for k in acc)  # the pass did change the step
