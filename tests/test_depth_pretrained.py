"""FastDepth's encoder from an ImageNet MobileNetV1 checkpoint (three layouts), and the depth CLI."""

from __future__ import annotations

import argparse
import json

import h5py
import numpy as np
import pytest
import torch
from torch import nn

import netadapt
from netadapt.depth import encoder_keys, load_encoder_, read_encoder_state
from netadapt.depth.cli import register
from netadapt.errors import NetAdaptError
from netadapt.export import save_compact
from netadapt.model.checkpoint import load_supernet, save_supernet
from netadapt.model.checks import randomize_norm_
from netadapt.model.supernet import SuperNet

torch.set_num_threads(1)


def _mobilenet_v1() -> SuperNet:
    net = netadapt.build_supernet("mobilenet_v1", input_size=32)
    randomize_norm_(net, torch.Generator().manual_seed(1))
    return net.eval()


def _encoder_features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    for block in list(net.blocks)[:14]:
        x = block(x)
    return x


def _fastdepth() -> SuperNet:
    return netadapt.build_supernet("fastdepth", input_size=32).eval()


def _assert_encoder_copied(depth_net, source_features: torch.Tensor, decoder_before: dict) -> None:
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(_encoder_features(depth_net, x), source_features(x), atol=1e-5)
    after = depth_net.state_dict()
    for key, value in decoder_before.items():
        assert torch.equal(after[key], value), f"decoder weight {key} changed"


def _decoder_state(net) -> dict:
    keys = set(encoder_keys(net))
    return {k: v.clone() for k, v in net.state_dict().items() if k not in keys}


def test_plain_netadapt_state_dict_initialises_the_encoder():
    source = _mobilenet_v1()
    net = _fastdepth()
    before = _decoder_state(net)
    load_encoder_(net, source.state_dict())
    _assert_encoder_copied(net, lambda x: _encoder_features(source, x), before)
    assert len(encoder_keys(net)) == 27 * 5  # 27 convolutions: weight + 4 BatchNorm tensors each


def test_netadapt_supernet_and_compact_files_and_wrapped_dicts(tmp_path):
    source = _mobilenet_v1()
    features = lambda x: _encoder_features(source, x)  # noqa: E731
    save_supernet(tmp_path / "v1.pt", source, {"stage": "imagenet"})
    save_compact(tmp_path / "v1_compact.pt", source.extract(source.space.full()), source.space.full(), source.build_config())
    torch.save({"epoch": 90, "state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, tmp_path / "dp.pth")
    for name in ("v1.pt", "v1_compact.pt", "dp.pth"):
        net = _fastdepth()
        before = _decoder_state(net)
        load_encoder_(net, tmp_path / name)
        _assert_encoder_copied(net, features, before)


class _FastDepthImageNetMobileNet(nn.Module):
    """FastDepth's ``imagenet/mobilenet.py`` layout (with ReLU, to compare features exactly)."""

    def __init__(self) -> None:
        super().__init__()

        def conv_bn(inp, oup, stride):
            return nn.Sequential(nn.Conv2d(inp, oup, 3, stride, 1, bias=False), nn.BatchNorm2d(oup), nn.ReLU())

        def conv_dw(inp, oup, stride):
            return nn.Sequential(
                nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False), nn.BatchNorm2d(inp), nn.ReLU(),
                nn.Conv2d(inp, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup), nn.ReLU(),
            )  # fmt: skip

        rows = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2)]
        rows += [(512, 512, 1)] * 5 + [(512, 1024, 2), (1024, 1024, 1)]
        self.model = nn.Sequential(conv_bn(3, 32, 2), *(conv_dw(i, o, s) for i, o, s in rows), nn.AvgPool2d(1))
        self.fc = nn.Linear(1024, 1000)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model[:14](x)


def test_fastdepth_imagenet_sequential_layout_is_mapped_by_order(tmp_path):
    torch.manual_seed(3)
    source = _FastDepthImageNetMobileNet()
    randomize_norm_(source, torch.Generator().manual_seed(2))
    source.eval()
    state = {f"module.{k}": v for k, v in source.state_dict().items()}
    torch.save({"epoch": 150, "arch": "mobilenet", "state_dict": state, "best_prec1": 70.0}, tmp_path / "model_best.pth.tar")
    net = _fastdepth()
    before = _decoder_state(net)
    load_encoder_(net, tmp_path / "model_best.pth.tar")
    _assert_encoder_copied(net, source.features, before)
    _, layout = read_encoder_state(state, encoder_keys(net))
    assert layout == "sequential"


def test_mismatched_checkpoints_are_one_line_errors(tmp_path):
    net = _fastdepth()
    keys = encoder_keys(net)
    narrow = netadapt.build_supernet("mobilenet_v1", width_mult=0.5, input_size=32)
    with pytest.raises(NetAdaptError, match="has shape") as err:
        load_encoder_(net, narrow.state_dict())
    assert "\n" not in str(err.value)
    save_supernet(tmp_path / "v2.pt", netadapt.build_supernet("mobilenet_v2", input_size=32))
    with pytest.raises(NetAdaptError, match="holds a mobilenet_v2 network"):
        load_encoder_(net, tmp_path / "v2.pt")
    truncated = {k: v for k, v in _FastDepthImageNetMobileNet().state_dict().items() if not k.startswith("model.13.")}
    with pytest.raises(NetAdaptError, match="MobileNetV1 has 135"):
        read_encoder_state(truncated, keys)
    with pytest.raises(NetAdaptError, match="unknown weight layout"):
        load_encoder_(net, {"features.0.weight": torch.zeros(1)})
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(NetAdaptError, match="not a readable"):
        load_encoder_(net, tmp_path / "junk.pth")
    with pytest.raises(NetAdaptError, match="does not exist"):
        load_encoder_(net, tmp_path / "missing.pth")
    partial = {k: v for k, v in _mobilenet_v1().state_dict().items() if not k.startswith("blocks.13.")}
    with pytest.raises(NetAdaptError, match="lacks"):
        load_encoder_(net, partial)


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_init_encoder_writes_a_fastdepth_supernet_file(tmp_path):
    source = _mobilenet_v1()
    torch.save(source.state_dict(), tmp_path / "v1.pth")
    assert (
        _run_cli(["depth", "init-encoder", str(tmp_path / "v1.pth"), "--out", str(tmp_path / "fd.pt"), "--input-size", "32"]) == 0
    )
    net, extra = load_supernet(tmp_path / "fd.pt")
    assert net.name == "fastdepth" and net.input_size == 32 and extra["stage"] == "encoder-init"
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(_encoder_features(net.eval(), x), _encoder_features(source, x), atol=1e-5)


def test_cli_check_reports_bad_files(tmp_path):
    folder = tmp_path / "train" / "scene"
    folder.mkdir(parents=True)
    for name, depth in (("good.h5", np.ones((4, 5), np.float32)), ("nan.h5", np.full((4, 5), np.nan, np.float32))):
        with h5py.File(folder / name, "w") as f:
            f.create_dataset("rgb", data=np.zeros((3, 4, 5), np.uint8))
            f.create_dataset("depth", data=depth)
    out = tmp_path / "check.json"
    assert _run_cli(["depth", "check", str(tmp_path / "train"), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["usable"] == ["scene/good.h5"] and list(report["bad"]) == ["scene/nan.h5"]
    assert _run_cli(["depth", "check", str(tmp_path / "train"), "--shapes-only", "--out", str(out)]) == 0
    assert len(json.loads(out.read_text())["usable"]) == 2
    (folder / "good.h5").unlink()
    assert _run_cli(["depth", "check", str(tmp_path / "train")]) == 1  # nothing usable
    with pytest.raises(NetAdaptError, match="does not exist"):
        _run_cli(["depth", "check", str(tmp_path / "nowhere")])
