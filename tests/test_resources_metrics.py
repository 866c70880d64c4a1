"""The metric interface, the analytic metrics, metric sets, parsing, measured latency and the
ONNX/TorchScript export helpers."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from netadapt import NetAdaptError, build_supernet, count_macs, count_params
from netadapt.export.formats import onnx_bytes, onnx_session, torchscript_bytes
from netadapt.resources.command import CommandMetric
from netadapt.resources.latency import MeasuredLatencyMetric
from netadapt.resources.lut import LatencyTableMetric
from netadapt.resources.lut_build import build_table
from netadapt.resources.metrics import CallableMetric, MacsMetric, Metric, MetricSet, ParamsMetric
from netadapt.resources.parse import parse_metric
from netadapt.resources.timing import Measurer, Timing, make_runner


@pytest.fixture(scope="module")
def net():
    return build_supernet("mobilenet_v3_small_cifar", width_mult=0.5, input_size=16, num_classes=10)


def test_macs_and_params_metrics_equal_the_counters(net):
    macs, params = MacsMetric(net), ParamsMetric(net)
    rng = random.Random(0)
    for arch in [net.space.full(), *(net.space.sample(rng) for _ in range(10))]:
        assert macs(arch) == count_macs(net, arch)
        assert params(arch) == count_params(net, arch)
    assert isinstance(macs, Metric) and isinstance(params, Metric)


def test_callable_metric_caches_and_checks_values(net):
    calls = []

    def width_sum(arch):
        calls.append(arch)
        return sum(arch.filters)

    metric = CallableMetric(width_sum, name="widths")
    arch = net.space.full()
    assert metric(arch) == metric(arch) == sum(arch.filters)
    assert len(calls) == 1
    with pytest.raises(NetAdaptError, match="not a number"):
        CallableMetric(lambda a: "fast")(arch)
    with pytest.raises(NetAdaptError, match="not a finite number"):
        CallableMetric(lambda a: float("nan"))(arch)


def test_metric_set_constrains_first_and_records_all(net):
    macs, params = MacsMetric(net), ParamsMetric(net)
    metrics = MetricSet(macs, params, CallableMetric(lambda a: 1.5, name="one"))
    arch = net.space.sample(random.Random(1))
    assert metrics(arch) == macs(arch)
    assert metrics.record(arch) == {"macs": macs(arch), "params": params(arch), "one": 1.5}
    assert metrics.name == "macs" and metrics.names == ("macs", "params", "one")
    with pytest.raises(NetAdaptError, match="unique"):
        MetricSet(macs, MacsMetric(net))


def test_parse_metric(net, tmp_path):
    assert isinstance(parse_metric("macs", net), MacsMetric)
    assert isinstance(parse_metric("params", net), ParamsMetric)
    assert isinstance(parse_metric("command:'echo 3 {model}'", net), CommandMetric)
    assert parse_metric("command:'echo 3 {model}'", net).template == "echo 3 {model}"
    measured = parse_metric("measured:torch:2", net)
    assert isinstance(measured, MeasuredLatencyMetric) and measured.measurer.threads == 2

    def fake(module, inputs):
        return Timing.exact(1.0)

    table = build_table(net, tmp_path / "lut.json", measure=fake, grid=64, calibrate=0, progress=False)
    metric = parse_metric(f"latency:{tmp_path / 'lut.json'}", net)
    assert isinstance(metric, LatencyTableMetric)
    assert metric(net.space.full()) == table.predict(net, net.space.full())
    for bad, message in [
        ("flops", "unknown metric"),
        ("latency:", "unknown metric"),
        ("measured:tpu", "unknown latency backend"),
        ("measured:torch:x", "not an integer"),
        ("command:'bench.sh'", "must contain"),
        (f"latency:{tmp_path / 'missing.json'}", "does not exist"),
    ]:
        with pytest.raises(NetAdaptError, match=message):
            parse_metric(bad, net)


def test_measured_latency_is_positive_and_cached(net):
    metric = MeasuredLatencyMetric(net, "torch", 1, warmup=1, min_time=0.01)
    arch = net.space.sample(random.Random(2))
    first = metric(arch)
    assert first > 0 and metric(arch) == first  # cached, not re-measured
    assert len(metric.cache) == 1


def test_measurer_times_blocks_of_runs():
    calls = []
    timing = Measurer(backend="torch", warmup=2, min_time=0.005, block_time=1e-4, min_blocks=4).time(lambda: calls.append(1))
    assert timing.count >= 4 and timing.number >= 1
    assert 0 < timing.min <= timing.median
    assert len(calls) == 2 + 3 + timing.count * timing.number  # warm-up, block-size probe, blocks


def test_cuda_blocks_are_bracketed_by_synchronization(monkeypatch):
    """The CUDA backend's timing logic, checked without a device: every timed block (and the
    warm-up and the block-size probe) starts and ends with a device synchronization, so queued
    kernels are inside the block they belong to.  The device itself is never reached here."""
    events = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: events.append("sync"))
    timing = Measurer(backend="cuda", warmup=1, min_time=0.002, block_time=1e-4, min_blocks=3).time(lambda: events.append("run"))
    blocks = "".join("|" if e == "sync" else "r" for e in events).split("||")
    assert events[0] == events[-1] == "sync" and events.count("sync") == 2 * (1 + 3 + timing.count)
    assert [len(b.strip("|")) for b in blocks] == [1, 1, 1, 1] + [timing.number] * timing.count


def test_measurer_rejects_bad_settings():
    with pytest.raises(NetAdaptError, match="unknown latency backend"):
        Measurer(backend="tpu")
    with pytest.raises(NetAdaptError, match="threads"):
        Measurer(backend="torch", threads=0)
    if not torch.cuda.is_available():
        with pytest.raises(NetAdaptError, match="CUDA"):
            Measurer(backend="cuda")


def test_onnxruntime_reproduces_pytorch(net):
    """The exported compact network computes the same outputs in ONNX Runtime (opset 17)."""
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    arch = net.space.sample(random.Random(3))
    compact = net.extract(arch).eval()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    data = onnx_bytes(compact, (x,))
    assert onnx.load_from_string(data).opset_import[0].version >= 17
    session = onnx_session(data, threads=1)
    got = session.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = compact(x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    run = make_runner(compact, (x,), backend="onnxruntime")
    np.testing.assert_allclose(run()[0].numpy(), want, rtol=1e-4, atol=1e-5)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_reproduces_pytorch(net, tmp_path):
    arch = net.space.sample(random.Random(4))
    compact = net.extract(arch).eval()
    x = torch.randn(1, 3, 16, 16)
    path = tmp_path / "m.pt"
    path.write_bytes(torchscript_bytes(compact, (x,)))
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(path)(x), compact(x))
