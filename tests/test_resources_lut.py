"""Latency lookup tables: op enumeration, exact sums with a fake timer, round trip, grid,
resumable builds and rejection of foreign tables."""

from __future__ import annotations

import json
import random
import re

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from netadapt import NetAdaptError, build_supernet, count_macs, count_params
from netadapt.resources.lut import LUT_FORMAT, LatencyTable, LatencyTableMetric, load_table
from netadapt.resources.lut_build import (
    build_table,
    calibration_archs,
    check_archs,
    check_result,
    check_table,
    fit_calibration,
    grid_points,
    set_calibration,
)
from netadapt.resources.ops import Op, OpPlan
from netadapt.resources.timing import Measurer, Timing

TINY = {
    "mobilenet_v1_cifar": dict(width_mult=0.25, input_size=16, num_classes=10),
    "mobilenet_v3_small_cifar": dict(width_mult=0.5, input_size=16, num_classes=10),
}


def tiny(name: str = "mobilenet_v1_cifar", **options):
    """A tiny super-network; three widths per layer keep tables small (a few hundred ops)."""
    return build_supernet(name, **TINY[name], **{"num_widths": 3, **options})


def fake_macs(module, inputs) -> Timing:
    """A deterministic fake timer: the op's "latency" is its MAC count.

    The table's prediction must then equal the analytic MAC count of the whole network
    exactly, which checks the enumeration (every op of every architecture is in the table)
    and the summation independently of the table code.
    """
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(*inputs)
    return Timing.exact(counter.get_total_flops() / 2)


class CountingMeasure:
    """Fake timer that counts calls and can fail after a number of them (an interrupted build)."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls = 0
        self.fail_after = fail_after

    def __call__(self, module, inputs) -> Timing:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt
        return fake_macs(module, inputs)


@pytest.fixture(scope="module")
def v1_table(tmp_path_factory):
    net = tiny("mobilenet_v1_cifar")
    path = tmp_path_factory.mktemp("lut") / "v1.json"
    return net, build_table(net, path, measure=fake_macs, calibrate=3, progress=False)


def _removed_layer_names(net, arch) -> set[str]:
    """Names of the layers of every block ``arch`` removes (all its convolutions at 0 filters)."""
    names = set()
    for i, block in enumerate(net.blocks):
        removal = getattr(block, "removal", None)
        if removal and all(arch.filters[j] == 0 for j in removal):
            names |= {layer.name for layer in net.space.layers if layer.name.startswith(f"b{i}.")}
    return names


@pytest.mark.parametrize("removal", ["block", "layer"])
@pytest.mark.parametrize("name", sorted(TINY))
def test_trace_matches_layer_costs(name, removal):
    """The ops of every conv/SE/linear layer have the shapes ``supernet.costs`` computes; a
    removed block has no op at all."""
    net = tiny(name, removal=removal)
    plan = OpPlan(net)
    rng = random.Random(0)
    removed_any = False
    for _ in range(10):
        arch = net.space.sample(rng)
        gone = _removed_layer_names(net, arch)
        removed_any |= bool(gone)
        layer_ops = [
            op for op in plan.trace(arch) if op.family.split("/")[0] in ("conv", "dw", "se") or op.family.startswith("linear")
        ]
        costs = [c for c in net.costs(arch) if not (c.kind == "se" and c.filters == 0) and c.name not in gone]
        assert [op.dims for op in layer_ops] == [
            (c.in_channels,) if c.kind == "linear" else (c.in_channels, c.filters) for c in costs
        ]
    assert removed_any or removal == "layer"


@pytest.mark.parametrize("removal", ["block", "layer"])
@pytest.mark.parametrize("name", sorted(TINY))
def test_reachable_ops_cover_sampled_architectures(name, removal):
    net = tiny(name, removal=removal)
    plan = OpPlan(net)
    ops, _ = plan.reachable()
    rng = random.Random(1)
    for arch in [net.space.full(), *(net.space.sample(rng) for _ in range(30))]:
        assert set(plan.trace(arch)) <= set(ops)


@pytest.mark.parametrize("name", sorted(TINY))
def test_fake_timer_table_predicts_exact_sum(name, tmp_path):
    net = tiny(name)
    table = build_table(net, tmp_path / "lut.json", measure=fake_macs, calibrate=4, progress=False)
    assert table.complete and table.constant == 0.0 and table.overhead.median == 0.0
    metric = LatencyTableMetric(table, net)
    rng = random.Random(2)
    for arch in [net.space.full(), *(net.space.sample(rng) for _ in range(20))]:
        assert metric(arch) == pytest.approx(count_macs(net, arch), rel=1e-12)


def test_prediction_is_scaled_sum_of_entries_plus_parameters_plus_constant(v1_table):
    net, table = v1_table
    table = LatencyTable.from_dict(table.to_dict())
    # entries whose minimum differs from their median: the table's statistic picks one
    table.entries = {op: Timing(t.mean, 0.0, t.median + 1.0, t.median, 3) for op, t in table.entries.items()}
    table.scale, table.param_cost, table.constant, table.overhead = 1.1, 40.0, 0.25, Timing.exact(0.5)
    arch = net.space.sample(random.Random(3))
    ops = OpPlan(net).trace(arch)
    params = count_params(net, arch)
    assert params == count_params(net.extract(arch))  # the parameters of the network that runs
    for statistic, extra in (("min", 0.0), ("median", 1.0)):
        table.statistic = statistic
        table.invalidate()
        expected = 1.1 * sum(table.entries[op].min + extra - 0.5 for op in ops) + 40.0 * params / 1e6 + 0.25
        assert table.predict(net, arch) == pytest.approx(expected)
        assert LatencyTableMetric(table, net)(arch) == pytest.approx(expected)


def test_fit_calibration():
    summed = [1.0, 2.0, 3.0, 5.0]
    linear = [1.1 * s + 0.2 for s in summed]
    fit = fit_calibration(summed, linear, "linear")
    assert (fit.scale, fit.param_cost, fit.constant) == (pytest.approx(1.1), 0.0, pytest.approx(0.2)) and "scale" in fit.how
    # the offset fit is the median offset, robust to one noisy network
    assert fit_calibration(summed, [1.3, 2.3, 3.3, 9.0], "offset") == (1.0, 0.0, pytest.approx(0.3), "median offset")
    # an offset that fits exactly needs no scale
    assert fit_calibration(summed, [s + 0.3 for s in summed]) == (1.0, 0.0, pytest.approx(0.3), "median offset")
    # two networks cannot tell a slope from noise: offset only
    assert fit_calibration([1.0, 2.0], [1.5, 2.1], "linear").scale == 1.0
    # an implausible slope (noise) falls back to the median offset
    fit = fit_calibration(summed, [4.0, 1.0, 9.0, 30.0], "linear")
    assert fit.scale == 1.0 and fit.how == "median offset"
    with pytest.raises(NetAdaptError, match="unknown calibration fit"):
        fit_calibration(summed, linear, "cubic")


def test_fit_calibration_with_parameters():
    """The default fit adds a cost per parameter (weights fetched from beyond the cache inside a
    network); it falls back to scale and constant when the networks cannot tell it apart."""
    summed = [1.0, 2.0, 3.0, 5.0, 4.0]
    params = [2_000_000, 1_000_000, 5_000_000, 3_000_000, 8_000_000]
    measured = [1.05 * s + 0.1 * p / 1e6 - 0.2 for s, p in zip(summed, params, strict=True)]
    fit = fit_calibration(summed, measured, "weights", params)
    assert (fit.scale, fit.param_cost, fit.constant) == (pytest.approx(1.05), pytest.approx(0.1), pytest.approx(-0.2))
    assert "param_cost" in fit.how and fit_calibration(summed, measured, params=params) == fit  # the default
    linear = [1.1 * s + 0.2 for s in summed]
    for why, kwargs in (
        ("no parameter counts", {}),
        ("all alike", {"params": [3_000_000] * 5}),
        ("a negative cost per parameter", {"params": [1_000_000 * s for s in (5, 4, 3, 1, 2)]}),
    ):
        got = fit_calibration(summed, [1.1 * s + 0.2 - 0.01 * i for i, s in enumerate(summed)] if "negative" in why else linear,
                              "weights", **kwargs)  # fmt: skip
        assert got.param_cost == 0.0 and "param_cost" not in got.how, why
    assert fit_calibration(summed[:3], measured[:3], "weights", params[:3]).param_cost == 0.0  # 3 networks, 3 terms


def test_round_trip(v1_table, tmp_path):
    net, table = v1_table
    path = table.save(tmp_path / "copy.json")
    loaded = load_table(path)
    assert loaded.entries == table.entries
    assert (loaded.model, loaded.space, loaded.grid, loaded.complete) == (table.model, table.space, None, True)
    data = json.loads(path.read_text())
    assert data["format"] == LUT_FORMAT and data["version"] == 1 and data["unit"] == "ms"
    assert {"device", "backend", "threads", "versions"} <= set(data["environment"])
    arch = net.space.sample(random.Random(4))
    assert loaded.predict(net, arch) == table.predict(net, arch)
    assert Op.from_key(next(iter(data["entries"]))) in loaded.entries
    table.param_cost = 0.5
    assert load_table(table.save(tmp_path / "weights.json")).param_cost == 0.5
    del data["param_cost"]  # a table from before the cost per parameter predicts without it
    assert LatencyTable.from_dict(data).param_cost == 0.0


def test_table_for_another_model_or_space_is_rejected(v1_table):
    _, table = v1_table
    with pytest.raises(NetAdaptError, match="built for model mobilenet_v1_cifar"):
        LatencyTableMetric(table, tiny("mobilenet_v3_small_cifar"))
    with pytest.raises(
        NetAdaptError, match=r"another search space of mobilenet_v1_cifar \(options.num_widths=3, the network has 5\)"
    ):
        LatencyTableMetric(table, tiny("mobilenet_v1_cifar", num_widths=5))
    other_size = build_supernet("mobilenet_v1_cifar", width_mult=0.25, input_size=24, num_classes=10, num_widths=3)
    with pytest.raises(NetAdaptError, match="input_size=16"):
        LatencyTableMetric(table, other_size)


def test_missing_entry_is_a_one_line_error(v1_table):
    net, table = v1_table
    arch = net.space.full()
    partial = LatencyTable.from_dict(table.to_dict())
    op = OpPlan(net).trace(arch)[3]
    del partial.entries[op]
    with pytest.raises(NetAdaptError, match="has no entry for") as info:
        partial.predict(net, arch)
    assert op.key in str(info.value) and "\n" not in str(info.value)


def test_bad_files_are_rejected(tmp_path):
    with pytest.raises(NetAdaptError, match="does not exist"):
        load_table(tmp_path / "none.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(NetAdaptError, match=r"latency table .*x.json is not valid JSON \(Expecting property name"):
        load_table(tmp_path / "x.json")
    (tmp_path / "y.json").write_text(json.dumps({"format": "something"}))
    with pytest.raises(NetAdaptError, match="not a netadapt latency table"):
        load_table(tmp_path / "y.json")
    (tmp_path / "z.json").write_text(json.dumps({"format": LUT_FORMAT, "version": 99}))
    with pytest.raises(NetAdaptError, match="version 99"):
        load_table(tmp_path / "z.json")


def test_a_table_with_values_it_cannot_hold_is_rejected(v1_table, tmp_path):
    _, table = v1_table
    good = table.to_dict()
    first = next(iter(good["entries"]))
    negative = {**good["entries"][first], "median": -1.0, "min": -1.0}
    for change, message in [
        ({"grid": 0}, "grid must be positive"),
        ({"scale": -1.0}, "scale must be positive"),
        ({"calibration": "x"}, "calibration is not a mapping"),
        ({"entries": {**good["entries"], first: negative}}, f"entry {re.escape(first)} is negative"),
    ]:
        (tmp_path / "t.json").write_text(json.dumps({**good, **change}))
        with pytest.raises(NetAdaptError, match=f"malformed latency table \\({message}\\)") as info:
            load_table(tmp_path / "t.json")
        assert "\n" not in str(info.value)


def test_build_resumes_after_interruption(tmp_path):
    net = tiny("mobilenet_v1_cifar")
    path = tmp_path / "lut.json"
    total = len(OpPlan(net).reachable()[0])
    first = CountingMeasure(fail_after=40)
    with pytest.raises(KeyboardInterrupt):
        build_table(net, path, measure=first, save_every=0.0, calibrate=2, progress=False)
    partial = load_table(path)  # the file is a valid table, marked unfinished
    assert not partial.complete and 0 < len(partial.entries) < total
    with pytest.raises(NetAdaptError, match="did not finish"):
        LatencyTableMetric(partial, net)(net.space.full())
    second = CountingMeasure()
    table = build_table(net, path, measure=second, calibrate=2, network_rounds=3, progress=False)
    # only the missing ops (+ 2 calibration networks, 3 windows each) are measured the second time
    assert second.calls == total - len(partial.entries) + 2 * 3
    assert table.complete and len(table.entries) == total
    third = CountingMeasure()
    build_table(net, path, measure=third, calibrate=2, network_rounds=3, progress=False)
    assert third.calls == 0  # finished: nothing to do
    fourth = CountingMeasure()
    build_table(net, path, measure=fourth, calibrate=3, network_rounds=3, progress=False)
    assert fourth.calls == 3 * 3  # other calibration settings: refit only


class MinTimeRecorder(Measurer):
    """A Measurer that records the ``min_time`` of every measurement and times nothing: layers
    get their MACs, whole networks (timed through a prepared runner) 1 ms."""

    def __call__(self, module, inputs) -> Timing:
        SEEN_MIN_TIMES.append(self.min_time)
        return fake_macs(module, inputs)

    def time(self, run) -> Timing:
        SEEN_MIN_TIMES.append(self.min_time)
        return Timing.exact(1.0)


SEEN_MIN_TIMES: list[float] = []


def test_calibration_networks_are_timed_like_checked_networks(tmp_path):
    """Entries get the measurer's short time, whole calibration networks ``network_time`` split
    into ``network_rounds`` windows (a minimum over a few runs of a whole network sits above its
    minimum over many); other network settings refit without measuring the entries again."""
    net = tiny("mobilenet_v1_cifar")
    total = len(OpPlan(net).reachable()[0])
    SEEN_MIN_TIMES.clear()
    path = tmp_path / "lut.json"
    measure = MinTimeRecorder(backend="torch", min_time=0.01)
    table = build_table(net, path, measure=measure, calibrate=3, network_time=0.7, network_rounds=2, progress=False)
    assert SEEN_MIN_TIMES.count(0.01) == total + 1  # every entry and the null op
    assert SEEN_MIN_TIMES.count(0.35) == 3 * 2 and len(SEEN_MIN_TIMES) == total + 1 + 6
    saved = load_table(path).calibration
    assert (
        (saved["network_time"], saved["rounds"]) == (0.7, 2) == (table.calibration["network_time"], table.calibration["rounds"])
    )
    SEEN_MIN_TIMES.clear()
    build_table(net, path, measure=measure, calibrate=3, network_time=0.3, network_rounds=2, progress=False)
    assert SEEN_MIN_TIMES == [0.15] * 6
    SEEN_MIN_TIMES.clear()
    build_table(net, path, measure=measure, calibrate=3, network_time=0.3, network_rounds=3, progress=False)
    assert len(SEEN_MIN_TIMES) == 9 and all(t == pytest.approx(0.1) for t in SEEN_MIN_TIMES)
    for bad in ({"network_time": 0}, {"network_rounds": 0}):
        with pytest.raises(NetAdaptError, match="network_time must be positive and network_rounds at least 1"):
            build_table(net, path, measure=fake_macs, progress=False, **bad)


def test_calibration_and_check_from_given_measurements(v1_table, tmp_path):
    """The benchmark's design: calibration and checked networks measured together elsewhere,
    then the fit and the check computed from those numbers."""
    net, built = v1_table
    table = load_table(built.path)
    fit_on, checked = calibration_archs(net, 5, seed=0), check_archs(net, 6, seed=1)
    assert fit_on[0] == net.space.full() and not set(fit_on) & set(checked)
    summed = [count_macs(net, a) for a in fit_on + checked]  # the fake timer's entries sum to the MACs
    measured = [1.25 * m + 1000.0 for m in summed]
    set_calibration(table, net, fit_on, measured[:5], "linear", {"count": 5, "passes": 4})
    assert (table.scale, table.constant) == (pytest.approx(1.25), pytest.approx(1000.0))
    assert table.calibration["passes"] == 4 and len(table.calibration["networks"]) == 5
    result = check_result(table, net, checked, measured[5:])
    assert result.within == 1.0 and result.mape == pytest.approx(0.0, abs=1e-9)
    off = check_result(table, net, checked, [m * 1.2 for m in measured[5:]])
    assert off.within == 0.0 and off.mape == pytest.approx(1 / 6)
    # the default fit: a cost per parameter too, stored with each network and used by the check
    params = [count_params(net, a) for a in fit_on + checked]
    measured = [1.25 * m + 2e4 * p / 1e6 + 1000.0 for m, p in zip(summed, params, strict=True)]
    set_calibration(table, net, fit_on, measured[:5], "weights", {"count": 5})
    assert (table.scale, table.param_cost, table.constant) == (pytest.approx(1.25), pytest.approx(2e4), pytest.approx(1000.0))
    assert [n["params"] for n in table.calibration["networks"]] == params[:5]
    assert check_result(table, net, checked, measured[5:]).mape == pytest.approx(0.0, abs=1e-9)


def test_second_pass_keeps_the_faster_timing(tmp_path):
    net = tiny("mobilenet_v1_cifar")
    total = len(OpPlan(net).reachable()[0])
    slow_then_fast = iter([5.0] * (1 + total) + [1.0] * 10**6)  # overhead + pass 1 slow, then fast

    def measure(module, inputs):
        return Timing.exact(next(slow_then_fast))

    path = tmp_path / "lut.json"
    first = build_table(net, path, measure=measure, calibrate=0, progress=False)
    assert {t.min for t in first.entries.values()} == {5.0}
    second = build_table(net, path, measure=measure, calibrate=0, passes=2, progress=False)
    assert {t.min for t in second.entries.values()} == {1.0} and second.measure["passes_done"] == 2
    assert load_table(path).complete


def test_resume_refuses_other_settings(v1_table):
    net, table = v1_table
    with pytest.raises(NetAdaptError, match="grid"):
        build_table(net, table.path, measure=fake_macs, grid=8, calibrate=3, progress=False)


def test_grid_table_interpolates(tmp_path):
    net = tiny("mobilenet_v3_small_cifar")
    exact_ops, _ = OpPlan(net).reachable()
    table = build_table(net, tmp_path / "grid.json", measure=fake_macs, grid=8, calibrate=0, progress=False)
    assert len(table.entries) < len(exact_ops)
    data = json.loads((tmp_path / "grid.json").read_text())
    assert data["grid"] == 8 and data["interpolation"] == "multilinear"
    # MACs are bilinear in (input, output) channels for convolutions and SE, so interpolation
    # is exact there; depthwise layers (filters clipped to inputs) make a small error.
    rng = random.Random(5)
    for arch in (net.space.sample(rng) for _ in range(20)):
        assert table.predict(net, arch) == pytest.approx(count_macs(net, arch), rel=0.05)
    conv_ops = [op for op in exact_ops if op.family.startswith("conv") and op not in table.entries]
    assert conv_ops
    for op in conv_ops[:50]:
        module, inputs = exact_ops[op](op.dims)
        assert table.cost(op) == pytest.approx(fake_macs(module, inputs).median, rel=1e-9)


def test_grid_points_bracket_every_op():
    net = tiny("mobilenet_v1_cifar", removal="layer")  # the paper's per-layer space: many widths per op
    ops, _ = OpPlan(net).reachable()
    points = grid_points(ops, 8)
    assert len(points) < len(ops)
    for op in ops:
        for i, v in enumerate(op.dims):
            values = {p.dims[i] for p in points if p.family == op.family}
            assert min(values) <= v <= max(values)
            assert all(x % 8 == 0 or x in (min(values), max(values)) for x in values)


def test_real_onnxruntime_build_and_check(tmp_path):
    """A real (tiny) table on ONNX Runtime: every entry measured, positive, and checkable."""
    pytest.importorskip("onnxruntime")
    net = tiny("mobilenet_v1_cifar", num_widths=3, bypass="none")
    measure = Measurer(backend="onnxruntime", threads=1, warmup=1, min_time=0.002)
    table = build_table(net, tmp_path / "ort.json", measure=measure, calibrate=2, network_time=0.05, progress=False)
    assert table.complete and table.backend == "onnxruntime"
    assert "onnxruntime" in table.environment["versions"]
    assert all(t.median > 0 and t.count >= 1 for t in table.entries.values())
    result = check_table(table, net, samples=2, measure=measure, progress=False)
    assert len(result.rows) == 2 and all(r.measured > 0 and r.predicted > 0 for r in result.rows)
    assert 0.0 <= result.within <= 1.0 and result.mae >= 0.0


def test_check_reports_drift_and_refits(tmp_path):
    """The check measures the table's calibration networks again: how much the machine's speed
    changed since the fit (drift), and with ``refit`` a table fitted to the new measurements."""
    net = tiny("mobilenet_v1_cifar")
    table = build_table(net, tmp_path / "lut.json", measure=fake_macs, calibrate=4, progress=False)

    def slower(module, inputs):  # the machine now runs everything 20% slower
        return Timing.exact(1.2 * fake_macs(module, inputs).min)

    plain = check_table(table, net, samples=5, measure=slower, rounds=2, progress=False)
    assert plain.drift == pytest.approx(1.2) and plain.within == 0.0  # predicted 1/1.2 of the time
    assert check_table(table, net, samples=5, measure=slower, rounds=2, calibration_networks=False, progress=False).drift is None
    refit = check_table(table, net, samples=5, measure=slower, rounds=2, refit=True, progress=False)
    assert refit.drift == pytest.approx(1.2) and refit.within == 1.0 and refit.mape == pytest.approx(0.0, abs=1e-9)
    assert table.scale == pytest.approx(1.2) and table.calibration["measured_with_check"] == 5
    again = check_table(table, net, samples=5, measure=slower, rounds=2, progress=False)
    assert again.drift == pytest.approx(1.0)  # measured against the refit
    bare = build_table(net, tmp_path / "bare.json", measure=fake_macs, calibrate=0, progress=False)
    assert check_table(bare, net, samples=2, measure=fake_macs, rounds=1, progress=False).drift is None
    with pytest.raises(NetAdaptError, match="no calibration networks to refit"):
        check_table(bare, net, samples=2, measure=fake_macs, rounds=1, refit=True, progress=False)


def test_onnxruntime_tables_warn_about_widths_off_multiples_of_8(caplog):
    """Channel counts off multiples of 8 run far slower on ONNX Runtime's CPU kernels
    (docs/resources.md): building such a table says so; a space of multiples of 8 does not."""
    from netadapt.resources.lut_build import _warn_odd_widths

    odd = build_supernet("mobilenet_v3_small_cifar", width_mult=0.75, input_size=32, num_classes=10)
    even = build_supernet("mobilenet_v3_small_cifar", width_mult=0.75, input_size=32, num_classes=10, width_divisor=8)
    with caplog.at_level("WARNING"):
        _warn_odd_widths(odd, "onnxruntime")
    assert "width_divisor: 8" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        _warn_odd_widths(even, "onnxruntime")
        _warn_odd_widths(odd, "torch")
    assert caplog.text == ""
