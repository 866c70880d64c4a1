"""Bring your own model (issue 18): tracing user-defined modules, what stays fixed and why,
files, weights, training, search and export of a traced super-network."""

from __future__ import annotations

import random
import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import netadapt
from netadapt import NetAdaptError
from netadapt.cli import main
from netadapt.model.checkpoint import load_supernet, save_supernet
from netadapt.model.checks import randomize_norm_
from netadapt.resources.counting import counted_macs, counted_params
from netadapt.trace import GraphSuperNet, supernet_from_module
from netadapt.trace.report import coverage, describe_traced

SIZE = 32


def conv_bn(c_in: int, c_out: int, k: int = 1, act: type[nn.Module] = nn.ReLU, **kw) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False, **kw), nn.BatchNorm2d(c_out), act())


class ResidualConcat(nn.Module):
    """Two branches concatenated, a depthwise 5x5 over the concatenation, residual sums (one a
    removable block), a depthwise 5x5 and a grouped convolution tied to the layer before them,
    squeeze-excitation."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn(3, 16, 3)
        self.left = conv_bn(16, 8)
        self.right = conv_bn(16, 8, 3, act=nn.SiLU)
        self.dw = nn.Conv2d(16, 16, 5, padding=2, groups=16)
        self.mix = nn.Sequential(nn.Conv2d(16, 16, 1, bias=False), nn.BatchNorm2d(16))
        self.block = nn.Sequential(conv_bn(16, 24), nn.Conv2d(24, 16, 1), nn.BatchNorm2d(16))
        self.down = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.dw5 = nn.Conv2d(32, 32, 5, padding=2, groups=32, bias=False)
        self.grouped = nn.Conv2d(32, 32, 3, padding=1, groups=4)
        self.fc1 = nn.Conv2d(32, 8, 1)
        self.fc2 = nn.Conv2d(8, 32, 1)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        x = self.stem(x)
        y = torch.cat([self.left(x), self.right(x)], 1)
        x = x + self.mix(self.dw(y))
        x = x + self.block(x)
        x = F.relu(self.dw5(F.relu(self.down(x))))
        x = x + self.grouped(x)
        x = x * torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


@torch.fx.wrap
def custom_op(x):
    return x * torch.tanh(x)


def channel_shuffle(x, groups: int):
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class Awkward(nn.Module):
    """What cannot be elastic: a channel shuffle, a grouped convolution with more outputs than
    inputs, a custom op and a flatten of an 8x8 map into a linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn(3, 16, 3)
        self.a = conv_bn(16, 16)
        self.g = nn.Conv2d(16, 32, 3, padding=1, groups=4)
        self.b = nn.Conv2d(32, 32, 1)
        self.c = conv_bn(32, 16)
        self.d = conv_bn(16, 16)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        x = self.a(self.stem(x))
        x = self.g(channel_shuffle(x, 2))
        x = self.c(custom_op(self.b(x)))
        x = self.d(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 4), 1))


def traced(module: nn.Module, **options) -> tuple[nn.Module, GraphSuperNet]:
    module = module.eval()
    randomize_norm_(module, torch.Generator().manual_seed(0))
    return module, supernet_from_module(module, torch.zeros(1, 3, SIZE, SIZE), **options).eval()


def check_archs(net: GraphSuperNet, count: int = 10, seed: int = 0) -> None:
    rng = random.Random(seed)
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))
    archs = [net.space.full(), net.space.smallest(), *(net.space.sample(rng) for _ in range(count))]
    with torch.no_grad():
        for arch in archs:
            compact = net.extract(arch).eval()
            ref = net(x, arch)
            assert float((compact(x) - ref).abs().max()) <= 1e-5 * float(ref.abs().max())
            assert netadapt.count_macs(net, arch) == counted_macs(compact, input_size=SIZE)
            assert netadapt.count_params(net, arch) == counted_params(compact)


def test_residuals_and_concatenation_are_searchable():
    model, net = traced(ResidualConcat(), superkernel=True)
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.equal(net(x), model(x))
        assert (net(x, net.space.full()) - model(x)).abs().max() <= 1e-6
    layers = {s.name: s for s in net.space.layers}
    # every convolution is elastic; only the classifier's outputs are fixed
    assert coverage(net) == (12, 12)
    assert "dw" not in layers  # it follows the widths of the two concatenated maps
    assert layers["dw5"].kind == "depthwise" and layers["dw5"].kernels == (3, 5)  # superkernel
    assert layers["fc1"].kind == "se" and 0 in layers["fc1"].widths
    assert "fc2" not in layers  # it follows the width of the map it gates
    # the grouped convolution (4 groups of 8) is tied to the layer feeding it, in steps of 8
    assert layers["grouped"].tie is not None and layers["grouped"].tie == layers["dw5"].tie == layers["down"].tie
    assert all(w % 8 == 0 for w in layers["down"].widths)
    # both residual branches are removable blocks (the first one holds the concatenation)
    assert layers["left.0"].block == layers["right.0"].block == layers["mix.0"].block == 0
    assert layers["block.0.0"].block == layers["block.1"].block == 1
    assert layers["stem.0"].block is None and 0 not in layers["stem.0"].widths
    check_archs(net)


def test_removed_block_and_squeeze_excitation_compute_their_input():
    _, net = traced(ResidualConcat())
    space = net.space
    filters = list(space.full().filters)
    for i, layer in enumerate(space.layers):
        if layer.block is not None or layer.kind == "se":
            filters[i] = 0
    arch = space.make(filters)
    compact = net.extract(arch)
    names = {n.target for n in compact.graph.nodes if n.op == "call_module"}
    assert not names & {"block.0.0", "block.1", "block.2", "fc1", "fc2"}  # gone from the network
    check_archs(net, count=0)


def test_unsupported_ops_are_fixed_and_reported_by_name():
    model, net = traced(Awkward())
    info = describe_traced(net)
    status = {row["layer"]: (row["status"], row["why"]) for row in info["layers"]}
    assert status["stem.0"][0] == "searchable"
    assert status["a.0"] == ("fixed", "its channel count is read (getattr_1)")  # the channel shuffle
    assert status["g"][0] == "fixed" and "grouped convolution" in status["g"][1]
    assert status["b"][0] == "fixed" and "custom_op" in status["b"][1]
    assert status["d.0"][0] == "fixed" and "reshape" in status["d.0"][1]
    assert status["c.0"][0] == "searchable"
    reasons = {row["why"] for row in info["fixed_ops"]}
    assert {"function custom_op", "reshape of a feature map (widths fixed by a reshape)"} <= reasons
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.equal(net(x), model(x))
    check_archs(net)


def test_untraceable_model_is_a_one_line_error():
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)

        def forward(self, x):
            return self.conv(x) if x.sum() > 0 else x

    with pytest.raises(NetAdaptError, match=r"torch\.fx cannot trace Branchy"):
        supernet_from_module(Branchy(), torch.zeros(1, 3, SIZE, SIZE))


def test_options_are_checked():
    with pytest.raises(NetAdaptError, match="channel-level bypass is not offered"):
        traced(ResidualConcat(), bypass="unlimited")
    with pytest.raises(NetAdaptError, match="unknown option"):
        traced(ResidualConcat(), num_width=4)
    _, net = traced(ResidualConcat(), removal="none", min_width_fraction=0.5)
    assert all(s.block is None and min(s.widths) >= s.max_filters / 2 for s in net.space.layers if s.kind != "se")


def test_model_is_copied_not_shared():
    model = ResidualConcat()
    net = supernet_from_module(model, torch.zeros(1, 3, SIZE, SIZE))
    with torch.no_grad():
        net.model.get_submodule("stem.0").weight.zero_()
    assert model.stem[0].weight.abs().sum() > 0


def test_training_step_reaches_every_weight():
    _, net = traced(ResidualConcat())
    net.train()
    rng = random.Random(0)
    widths = torch.tensor([net.space.sample(rng).filters for _ in range(3)] + [net.space.full().filters])
    loss = net(torch.randn(4, 3, SIZE, SIZE), widths=widths).square().mean()
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_implant_is_the_inverse_of_extraction():
    _, net = traced(ResidualConcat(), superkernel=True)
    arch = net.space.sample(random.Random(2))
    compact = net.extract(arch)
    with torch.no_grad():
        for p in compact.parameters():
            p.add_(torch.randn_like(p))
    net.implant_(compact, arch)
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        ref = compact.eval()(x)
        assert float((net(x, arch) - ref).abs().max()) <= 1e-5 * float(ref.abs().max())


def write_factory(tmp_path, body: str = "return ResidualConcat()"):
    path = tmp_path / "my_model.py"
    path.write_text(
        textwrap.dedent(
            f"""
            import torch
            from tests.test_trace import ResidualConcat

            def build():
                torch.manual_seed(0)
                {body}
            """
        )
    )
    return path


def test_super_network_file_of_a_file_source_rebuilds_while_the_file_is_unchanged(tmp_path):
    path = write_factory(tmp_path)
    source = f"module:{path}:build"
    net = netadapt.build_supernet(source, input_size=SIZE)
    assert net.build_config()["sha256"]
    save_supernet(tmp_path / "supernet.pt", net)
    loaded, _ = load_supernet(tmp_path / "supernet.pt")
    arch = net.space.sample(random.Random(0))
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x, arch), net.eval()(x, arch))
    assert main(["describe", str(tmp_path / "supernet.pt")]) == 0  # a super-network file describes itself
    path.write_text(path.read_text() + "\n# edited\n")
    with pytest.raises(NetAdaptError, match="changed since this super-network was traced"):
        load_supernet(tmp_path / "supernet.pt")


def test_a_model_object_without_source_cannot_be_saved(tmp_path):
    _, net = traced(ResidualConcat())
    with pytest.raises(NetAdaptError, match="pass source"):
        save_supernet(tmp_path / "s.pt", net)


def test_library_source_and_compact_file_round_trip(tmp_path):
    pytest.importorskip("torchvision")
    from netadapt.export.package import load_compact, save_compact

    net = netadapt.build_supernet("torchvision:resnet18", input_size=SIZE, num_classes=10)
    assert net.num_classes == 10 and net.build_config()["num_classes"] == 10
    save_supernet(tmp_path / "supernet.pt", net)
    loaded, _ = load_supernet(tmp_path / "supernet.pt")
    arch = net.space.sample(random.Random(1))
    compact = loaded.extract(arch)
    save_compact(tmp_path / "model.pt", compact, arch, loaded.build_config())
    again = load_compact(tmp_path / "model.pt")
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.equal(again(x), compact.eval()(x))
        assert torch.allclose(again(x), net.eval()(x, arch), atol=1e-5)


def test_weights_file_loads_into_the_traced_network(tmp_path):
    from netadapt.trace.weights import load_weights_

    trained = ResidualConcat()
    torch.save({"state_dict": trained.state_dict()}, tmp_path / "weights.pt")
    net = supernet_from_module(ResidualConcat(), torch.zeros(1, 3, SIZE, SIZE))
    load_weights_(net, tmp_path / "weights.pt")
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.equal(net.eval()(x), trained.eval()(x))
    torch.save({"stem.0.weight": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(NetAdaptError, match="weights do not fit ResidualConcat"):
        load_weights_(net, tmp_path / "bad.pt")
    torch.save(trained, tmp_path / "pickled.pt")  # the whole module, not its weights
    with pytest.raises(NetAdaptError, match=r"holds more than weights .* torch.save\(model.state_dict\(\), path\)") as info:
        load_weights_(net, tmp_path / "pickled.pt")
    assert "\n" not in str(info.value) and "\x1b" not in str(info.value)


def test_describe_model_lists_fixed_layers_and_why(tmp_path, capsys):
    path = tmp_path / "awkward.py"
    path.write_text("from tests.test_trace import Awkward\n\ndef build():\n    return Awkward()\n")
    assert main(["describe", "--model", f"module:{path}:build", "--input-size", str(SIZE)]) == 0
    out = capsys.readouterr().out
    assert "elastic convolutions 2/6" in out
    assert "grouped convolution (4 groups) with 16 inputs and 32 outputs" in out
    assert "function custom_op" in out


def test_search_and_onnx_export_of_a_traced_network(tmp_path):
    pytest.importorskip("onnxruntime")
    from netadapt.export import export_onnx
    from netadapt.export.formats import check_onnx
    from netadapt.search import SearchConfig

    _, net = traced(ResidualConcat())
    full = netadapt.count_macs(net)
    config = SearchConfig(samples=4, layers=3, target=0.5, initial_reduction=0.2, decay=1.0)
    result = netadapt.mcd(
        net.space,
        net.space.full(),
        lambda a: netadapt.count_macs(net, a),
        lambda archs: [-netadapt.count_macs(net, a) / full for a in archs],
        config,
        rng_seed=0,
    )
    best = result.final
    assert netadapt.count_macs(net, best) <= 0.5 * full
    compact = netadapt.extract(net, best)
    path = export_onnx(compact, tmp_path / "model.onnx", input_size=SIZE, in_channels=3)
    assert check_onnx(compact.eval(), path, torch.randn(2, 3, SIZE, SIZE)) <= 1e-4


def test_a_dotted_module_in_the_current_folder_says_how_to_import_it(tmp_path, monkeypatch):
    """The `netadapt` script does not put the current folder on the import path (python -m does)."""
    import os
    import sys

    from netadapt.trace.sources import load_source

    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "net.py").write_text("import torch.nn as nn\n\ndef build():\n    return nn.Conv2d(3, 8, 3)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", os.getcwd())])
    with pytest.raises(
        NetAdaptError, match=r"not on the import path: run with PYTHONPATH=\. or name the file, module:mypkg/net\.py:build"
    ):
        load_source("module:mypkg.net:build")
    assert isinstance(load_source("module:mypkg/net.py:build"), torch.nn.Conv2d)


def test_an_example_input_the_model_refuses_is_a_one_line_error(capsys):
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.LazyLinear(4))
    with pytest.raises(
        NetAdaptError, match=r"cannot run on an input of shape \(1, 5, 8, 8\): .*expected input.* 3 channels"
    ) as info:
        netadapt.supernet_from_module(model, torch.zeros(1, 5, 8, 8))
    assert "\n" not in str(info.value) and "Traceback" not in capsys.readouterr().err


class ViewFlatten(nn.Module):
    """A classifier that flattens a 4x4 map with ``view`` -- fails on a channels-last tensor as written."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(3, 16, 3, stride=2), conv_bn(16, 24, 3, stride=2), nn.MaxPool2d(2))
        self.fc = nn.Linear(24 * (SIZE // 8) ** 2, 10)

    def forward(self, x):
        x = self.body(x)
        return self.fc(x.view(x.size(0), -1))


def test_a_view_flatten_runs_in_the_channels_last_format():
    """Compact networks train channels-last on a CPU and the search's samples run in it: the
    tracer turns the model's ``view`` into ``reshape`` (same values) so that they can."""
    from netadapt.search.evaluate import EvalConfig, shared_weight_evaluator

    model, net = traced(ViewFlatten())
    x = torch.randn(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    assert not any(n.op == "call_method" and n.target == "view" for n in net.model.graph.nodes)
    with pytest.raises(RuntimeError, match="view"):
        model.to(memory_format=torch.channels_last)(x)  # the model as written
    check_archs(net, count=4)
    arch = net.space.sample(random.Random(3))
    compact = net.extract(arch).eval()
    with torch.no_grad():
        expected = compact(x)
        torch.testing.assert_close(compact.to(memory_format=torch.channels_last)(x), expected, rtol=1e-4, atol=1e-5)
    data = [(x, torch.arange(4))]
    scores = [
        shared_weight_evaluator(net, data, data, EvalConfig(calibration_images=4, channels_last=cl))([arch])
        for cl in (True, False)
    ]
    assert scores[0] == scores[1]


def test_a_traced_networks_samples_fold_batchnorm():
    """The search folds BatchNorm into the convolutions of a traced network's samples too
    (torch.fx's conv-BN fusion): no BatchNorm left, the same outputs and scores."""
    from netadapt.model.norm import fold_bn_
    from netadapt.search.evaluate import EvalConfig, shared_weight_evaluator

    _, net = traced(ResidualConcat())
    arch = net.space.sample(random.Random(5))
    x = torch.randn(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    compact = net.extract(arch).eval()
    folded = fold_bn_(net.extract(arch).eval())
    assert any(isinstance(m, nn.BatchNorm2d) for m in compact.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        before = compact(x)
        torch.testing.assert_close(folded(x), before, rtol=1e-4, atol=1e-5)
        again = fold_bn_(compact)  # the network given is left as it was
        assert torch.equal(compact(x), before) and any(isinstance(m, nn.BatchNorm2d) for m in compact.modules())
        assert (again.input_size, again.in_channels) == (compact.input_size, compact.in_channels)
        fused = fold_bn_(net.extract(arch).to(memory_format=torch.channels_last).eval())  # as the search folds
        assert all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in fused.modules() if isinstance(m, nn.Conv2d))
    data = [(x, torch.arange(4))]

    def mean_logit(outputs, targets):
        return float(outputs.sum()), outputs.numel()

    scores = [
        shared_weight_evaluator(net, data, data, EvalConfig(calibration_images=4, fold_bn=fold), metric_fn=mean_logit)([arch])[0]
        for fold in (True, False)
    ]
    assert scores[0] == pytest.approx(scores[1], rel=1e-4, abs=1e-5)


class ViewKinds(nn.Module):
    """``view`` as a shape (rewritten to ``reshape``), as a dtype read from a tensor and written
    through in place (both left as views)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = conv_bn(3, 8, 3, stride=4)
        self.fc = nn.Linear(8 * (SIZE // 4) ** 2, 10)

    def forward(self, x):
        x = self.body(x)
        same = x.view(x.dtype)  # a reinterpretation (here to the same dtype)
        inner = x.view(x.size(0), -1)
        inner.mul_(1.0)  # written through in place: must stay a view of x
        return self.fc(same.view(x.size(0), -1)) + inner.sum()


def test_views_that_are_not_shapes_stay_views():
    _, net = traced(ViewKinds())
    views = [n for n in net.model.graph.nodes if n.op == "call_method" and n.target in ("view", "reshape")]
    assert [n.target for n in views] == ["view", "view", "reshape"]
    check_archs(net, count=3)
