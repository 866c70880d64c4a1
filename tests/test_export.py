"""Extracted networks export to TorchScript and ONNX; torchvision weights load exactly."""

import random

import pytest
import torch

import netadapt
from netadapt import NetAdaptError
from netadapt.export import export_onnx, export_torchscript
from netadapt.model.checks import randomize_norm_


def _random_compact(name: str, size: int, seed: int = 1):
    net = netadapt.build_supernet(name, input_size=size)
    randomize_norm_(net, torch.Generator().manual_seed(seed))
    net.eval()
    arch = net.space.sample(random.Random(seed))
    return net, arch, net.extract(arch)


@pytest.mark.parametrize("name, size", [("mobilenet_v3_small_cifar", 32), ("fastdepth", 64)])
def test_onnx_runtime_reproduces_the_extracted_network(tmp_path, name, size):
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    net, arch, compact = _random_compact(name, size)
    path = export_onnx(compact, tmp_path / "model.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, size, size)  # another batch size than the export's example
    (out,) = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        ref = net(x, arch)
    assert torch.allclose(torch.from_numpy(out), ref, rtol=1e-4, atol=1e-5)
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_torchscript_reproduces_the_extracted_network(tmp_path):
    net, arch, compact = _random_compact("mobilenet_v2_cifar", 32)
    path = export_torchscript(compact, tmp_path / "model.ts")
    loaded = torch.jit.load(str(path))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded(x), net(x, arch), rtol=1e-4, atol=1e-5)


def test_onnx_export_rejects_old_opset(tmp_path):
    _, _, compact = _random_compact("mobilenet_v1_cifar", 32)
    with pytest.raises(NetAdaptError, match="opset 11 is too old"):
        export_onnx(compact, tmp_path / "m.onnx", opset=11)
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"])
def test_torchvision_weights_reproduce_torchvision_outputs(name):
    torchvision = pytest.importorskip("torchvision")
    reference = getattr(torchvision.models, name)(weights=None)
    randomize_norm_(reference, torch.Generator().manual_seed(0))
    reference.eval()
    net = netadapt.load_torchvision_weights(netadapt.build_supernet(name), reference).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = reference(x)
        assert torch.allclose(net(x), expected, rtol=1e-4, atol=1e-6)
        assert torch.allclose(net.extract(net.space.full())(x), expected, rtol=1e-4, atol=1e-6)
    # a state_dict works the same way
    again = netadapt.load_torchvision_weights(netadapt.build_supernet(name), reference.state_dict()).eval()
    with torch.no_grad():
        assert torch.allclose(again(x), expected, rtol=1e-4, atol=1e-6)


def test_torchvision_weights_bad_input():
    torchvision = pytest.importorskip("torchvision")
    with pytest.raises(NetAdaptError, match="no torchvision counterpart"):
        netadapt.load_torchvision_weights(netadapt.build_supernet("mobilenet_v1"), {})
    wrong = torchvision.models.mobilenet_v3_small(weights=None)
    with pytest.raises(NetAdaptError, match="entries"):
        netadapt.load_torchvision_weights(netadapt.build_supernet("mobilenet_v3_large"), wrong)
    ten = torchvision.models.mobilenet_v2(weights=None, num_classes=10)
    with pytest.raises(NetAdaptError, match="different number of classes"):
        netadapt.load_torchvision_weights(netadapt.build_supernet("mobilenet_v2"), ten)


def test_compact_file_loads_in_one_call_without_the_supernet(tmp_path):
    from netadapt.export import load_compact, save_compact

    net, arch, compact = _random_compact("mobilenet_v3_small_cifar", 32)
    path = save_compact(tmp_path / "model.pt", compact, arch, net.build_config(), {"top1": 0.5})
    loaded = load_compact(path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), compact.eval()(x))
    assert loaded.architecture == arch and loaded.netadapt_extra == {"top1": 0.5}
    (tmp_path / "bad.pt").write_bytes(b"not a model")
    with pytest.raises(NetAdaptError, match="not a readable model file"):
        load_compact(tmp_path / "bad.pt")


def _metadata(net, arch, classes):
    from netadapt.export import ModelMetadata

    return ModelMetadata(
        model=net.name, task="classification", classes=classes, input_size=net.input_size, in_channels=3,
        mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), preset="cifar", macs=netadapt.count_macs(net, arch),
        params=netadapt.count_params(net, arch), architecture=arch.to_dict(net.space), build=net.build_config(),
        metrics={"val_top1": 0.5},
    )  # fmt: skip


def test_torch_export_program_reproduces_the_network_and_every_file_carries_metadata(tmp_path):
    """A torch.export program (.pt2) beside ONNX and TorchScript; all four files say how to use them."""
    from netadapt.export import export_program, load_compact, read_metadata, save_compact

    net, arch, compact = _random_compact("mobilenet_v3_small_cifar", 32)  # SE, residuals, hard-swish
    meta = _metadata(net, arch, tuple(f"class{i}" for i in range(10)))
    path = export_program(compact, tmp_path / "model.pt2", metadata=meta)
    program = torch.export.load(str(path)).module()
    x = torch.randn(5, 3, 32, 32)  # another batch size than the export's example: the batch is free
    with torch.no_grad():
        assert torch.allclose(program(x), net(x, arch), rtol=1e-4, atol=1e-5)
    export_onnx(compact, tmp_path / "model.onnx", metadata=meta)
    export_torchscript(compact, tmp_path / "model.ts", metadata=meta)
    save_compact(tmp_path / "model.pt", compact, arch, net.build_config(), metadata=meta)
    for name in ("model.pt2", "model.onnx", "model.ts", "model.pt"):
        assert read_metadata(tmp_path / name) == meta
    import onnx

    props = {p.key: p.value for p in onnx.load(str(tmp_path / "model.onnx")).metadata_props}
    assert props["input_size"] == "32" and props["mean"] == "[0.5, 0.4, 0.3]" and '"class9"' in props["classes"]
    loaded = load_compact(tmp_path / "model.pt")
    assert loaded.classes == meta.classes and loaded.metadata.preprocess(torch.zeros(3, 40, 40, dtype=torch.uint8)).shape == (
        1,
        3,
        32,
        32,
    )


def test_files_without_metadata_say_so(tmp_path):
    from netadapt.export import read_metadata

    _, _, compact = _random_compact("mobilenet_v1_cifar", 32)
    export_torchscript(compact, tmp_path / "plain.ts")
    with pytest.raises(NetAdaptError, match="carries no netadapt metadata"):
        read_metadata(tmp_path / "plain.ts")
    with pytest.raises(NetAdaptError, match="does not exist"):
        read_metadata(tmp_path / "missing.onnx")
