"""Training one architecture (the discovered network, paper Fig. 2's last step) as its extracted
compact network gives what training it masked inside the super-network gives."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from netadapt.arch.files import load_architecture
from netadapt.arch.space import Architecture
from netadapt.config import load_config
from netadapt.errors import NetAdaptError
from netadapt.io import read_jsonl
from netadapt.model.checkpoint import load_supernet
from netadapt.train import SupernetTrainConfig, train_supernet

BASE = [
    "model.name=mobilenet_v3_small_cifar",
    "model.width_mult=0.5",
    "model.dropout=0.0",  # dropout masks of different widths would differ
    "data.batch_size=32",
    "data.heldout=100",
    "data.subset=192",
    "optim.name=sgd",
    "optim.lr=0.01",  # small steps: rounding differences of the two paths stay at rounding size
    "optim.lr_batch=32",
    "optim.grad_clip=5.0",
    "ema_decay=0.9",
    "ordered_dropout.enabled=false",
    "deterministic=true",
    "progress=false",
    "tensorboard=false",
]


def config(run_dir: Path, *extra: str) -> SupernetTrainConfig:
    return load_config(SupernetTrainConfig, None, [*BASE, f"run_dir={run_dir}", *extra])


@pytest.fixture(scope="module")
def start(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A briefly trained super-network (the starting weights) and an architecture file of it
    with a removed block, narrower layers and smaller kernels."""
    root = tmp_path_factory.mktemp("final")
    supernet = train_supernet(config(root / "supernet", "epochs=1", "ordered_dropout.enabled=true"))
    net, _ = load_supernet(supernet)
    arch = net.space.sample(random.Random(3))
    while not net.space.removed_blocks(arch):
        arch = net.space.sample(random.Random(len(arch.filters) + sum(arch.filters)))
    path = root / "arch.json"
    path.write_text(arch.to_json(net.space))
    return supernet, path


def test_compact_training_equals_masked_training(start: tuple[Path, Path], tmp_path: Path) -> None:
    supernet, arch_file = start
    # the compact network in the masked one's memory format: the same arithmetic, to rounding
    args = ["epochs=2", f"architecture={arch_file}", f"init_from={supernet}", "channels_last=false"]
    compact = train_supernet(config(tmp_path / "compact", *args))
    masked = train_supernet(config(tmp_path / "masked", *args, "masked=true"))
    a, _ = load_supernet(compact)
    b, _ = load_supernet(masked)
    arch = Architecture.from_json(arch_file.read_text())
    x = torch.randn(4, 3, 16, 16)  # the digits at 16x16
    with torch.no_grad():
        ya, yb = a.eval()(x, arch), b.eval()(x, arch)
        y0 = load_supernet(supernet)[0].eval()(x, arch)
    assert not torch.allclose(ya, y0, atol=1e-3)  # it trained
    assert torch.allclose(ya, yb, rtol=1e-3, atol=1e-4 * float(ya.abs().max()))
    ma, mb = read_jsonl(tmp_path / "compact" / "metrics.jsonl"), read_jsonl(tmp_path / "masked" / "metrics.jsonl")
    for ra, rb in zip(ma, mb, strict=True):
        assert ra["train_loss"] == pytest.approx(rb["train_loss"], rel=1e-4)
        assert ra["val_top1"] == pytest.approx(rb["val_top1"], abs=1 / 100)  # one image of ~100 may flip


def test_compact_training_in_channels_last_follows_the_same_path(start: tuple[Path, Path], tmp_path: Path) -> None:
    """On a CPU a compact network trains channels-last by default (faster there): the same
    training as in the contiguous format up to the rounding of other convolution kernels, which
    training amplifies step by step (so the first epoch is compared, not the end)."""
    from netadapt.train.loop import memory_channels_last

    supernet, arch_file = start
    args = ["epochs=1", f"architecture={arch_file}", f"init_from={supernet}"]
    fast = config(tmp_path / "fast", *args)
    assert memory_channels_last(fast, on_gpu=False, compact=True) and not memory_channels_last(fast, False, False)
    train_supernet(fast)
    train_supernet(config(tmp_path / "plain", *args, "channels_last=false"))
    a, b = read_jsonl(tmp_path / "fast" / "metrics.jsonl")[-1], read_jsonl(tmp_path / "plain" / "metrics.jsonl")[-1]
    assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3)  # measured: 1.5e-5 apart
    assert a["val_top1"] == pytest.approx(b["val_top1"], abs=5 / 100)


def test_compact_training_resumes_and_refuses_a_masked_checkpoint(start: tuple[Path, Path], tmp_path: Path) -> None:
    supernet, arch_file = start
    args = ["epochs=2", f"architecture={arch_file}", f"init_from={supernet}", "checkpoint_every=2"]

    class Stop(RuntimeError):
        pass

    def stop(step: int) -> None:
        if step == 4:
            raise Stop

    with pytest.raises(Stop):
        train_supernet(config(tmp_path / "run", *args), on_step=stop)
    resumed = train_supernet(config(tmp_path / "run", *args))
    whole = train_supernet(config(tmp_path / "whole", *args))
    sa, sb = load_supernet(resumed)[0].state_dict(), load_supernet(whole)[0].state_dict()
    assert [k for k in sa if not torch.equal(sa[k], sb[k])] == []
    (tmp_path / "run" / "supernet.pt").unlink()
    with pytest.raises(NetAdaptError, match="started with masked=False, now True"):
        train_supernet(config(tmp_path / "run", *args, "masked=true"))
    # a checkpoint of the masked kind (as older versions wrote them) is refused with a reason
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    state = torch.load(checkpoint, weights_only=False)
    del state["module"]
    torch.save(state, checkpoint)
    with pytest.raises(NetAdaptError, match="trained the supernet network, this run trains the compact one"):
        train_supernet(config(tmp_path / "run", *args))


def test_pretrain_epochs_train_the_initial_network_first(tmp_path: Path) -> None:
    """``pretrain_epochs``: the initial network trains plainly in RUN_DIR/pretrained, the
    super-network starts from its weights, and a rerun of the finished run does nothing."""
    run = tmp_path / "supernet"
    path = train_supernet(config(run, "epochs=1", "pretrain_epochs=1", "ordered_dropout.enabled=true"))
    pretrained = run / "pretrained" / "supernet.pt"
    assert pretrained.is_file() and path == run / "supernet.pt"
    plain = read_jsonl(run / "pretrained" / "metrics.jsonl")
    assert len(plain) == 1 and len(read_jsonl(run / "metrics.jsonl")) == 1
    resolved = (run / "config.yaml").read_text()
    assert f"init_from: {pretrained}" in resolved and "pretrain_epochs: 1" in resolved
    assert "enabled: false" in (run / "pretrained" / "config.yaml").read_text()
    # the super-network's first step starts from the pre-trained weights, not from a fresh init
    fresh = load_supernet(train_supernet(config(tmp_path / "fresh", "epochs=1", "ordered_dropout.enabled=true")))[0]
    started = load_supernet(path)[0]
    assert not torch.equal(next(fresh.parameters()), next(started.parameters()))
    before = pretrained.stat().st_mtime_ns
    assert train_supernet(config(run, "epochs=1", "pretrain_epochs=1", "ordered_dropout.enabled=true")) == path
    assert pretrained.stat().st_mtime_ns == before
    with pytest.raises(NetAdaptError, match="pretrain_epochs must be 0 or more"):
        config(tmp_path / "bad", "pretrain_epochs=-1").validate()


def test_training_from_a_file_starts_from_its_own_batchnorm_statistics(start: tuple[Path, Path], tmp_path: Path) -> None:
    """The file's running statistics (a super-network's mixture of sub-networks; here spoiled on
    purpose) are recomputed for the network that trains before its first step: with the zoo's
    MobileNetV3 momentum of 0.01 they would otherwise outlive a short fine-tuning almost whole."""
    from torch.nn.modules.batchnorm import _BatchNorm

    from netadapt.model.checkpoint import save_supernet

    supernet, arch_file = start
    net, _ = load_supernet(supernet)
    for bn in (m for m in net.modules() if isinstance(m, _BatchNorm)):
        bn.running_mean.fill_(1e3)
        bn.running_var.fill_(1e-3)
    spoiled = save_supernet(tmp_path / "spoiled.pt", net)
    for masked in ("false", "true"):
        run = tmp_path / f"masked-{masked}"
        out = train_supernet(config(run, "epochs=1", f"architecture={arch_file}", f"init_from={spoiled}", f"masked={masked}"))
        trained, _ = load_supernet(out)
        arch = trained.space.validate(load_architecture(arch_file, trained.space))
        norms = [m for m in trained.extract(arch).modules() if isinstance(m, _BatchNorm)]
        assert norms and all(float(bn.running_mean.abs().max()) < 100 for bn in norms), masked


def test_starting_weights_may_come_from_another_space_of_the_same_network(tmp_path: Path) -> None:
    # One trained network, several search spaces (e.g. the without-CBC ablation): the weights load
    # when the network and its parameter shapes are the same; another width is an error naming it.
    from netadapt import build_supernet
    from netadapt.model.checkpoint import save_supernet
    from netadapt.train.loop import _load_weights

    source = build_supernet("mobilenet_v3_small_cifar", width_mult=0.5, num_classes=10)
    path = save_supernet(tmp_path / "trained.pt", source)
    other_space = build_supernet("mobilenet_v3_small_cifar", width_mult=0.5, num_classes=10, bypass="none")
    _load_weights(other_space, str(path))
    assert all(torch.equal(a, b) for a, b in zip(other_space.state_dict().values(), source.state_dict().values(), strict=True))
    wider = build_supernet("mobilenet_v3_small_cifar", width_mult=0.75, num_classes=10)
    with pytest.raises(NetAdaptError, match=r"width_mult 0.5 \(config: 0.75\)"):
        _load_weights(wider, str(path))
