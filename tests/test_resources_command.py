"""The user-command metric: success, caching, strict output, and every failure path (timeout,
non-zero exit, garbage output) with bounded retries and an untouched cache."""

from __future__ import annotations

import json
import shlex
import sys

import pytest

from netadapt import NetAdaptError, build_supernet
from netadapt.resources.cache import CACHE_FORMAT, MetricCache
from netadapt.resources.command import CommandMetric, parse_output, parse_template

PY = shlex.quote(sys.executable)


@pytest.fixture(scope="module")
def net():
    return build_supernet("mobilenet_v1_cifar", width_mult=0.25, input_size=16, num_classes=10, num_widths=3)


def py(code: str) -> str:
    """A command running ``code`` with this interpreter; ``{arch}``/``{model}`` stay placeholders."""
    return f"{PY} -c {shlex.quote(code)}"


def test_parse_output_takes_one_number_alone_on_the_last_line():
    assert parse_output("warming up 3 runs\n12.5\n\n") == (12.5, "")
    assert parse_output("1e-3") == (1e-3, "")
    assert parse_output('log\n{"latency_ms": 12.5}\n') == (12.5, "")
    assert parse_output('{"value": 3, "runs": 10}') == (3.0, "")
    for text in ("latency: 12.5 ms", "error: code 404", "done, 3 runs", '{"a": 1, "b": 2}', '{"value": "7"}', "", "[1]"):
        value, why = parse_output(text)
        assert value is None and why, text
    for text in ("0", "-4", "nan", '{"value": -1}'):
        value, why = parse_output(text)
        assert value is None, text


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("", "empty"),
        ("bench.sh model.onnx", "must contain {model}"),
        ("bench.sh {modle}", "unknown placeholder"),
        ("bench.sh {model", "not a valid template"),
    ],
)
def test_bad_templates(template, message):
    with pytest.raises(NetAdaptError, match=message):
        parse_template(template)


def test_value_from_model_and_arch_files_is_cached(net, tmp_path):
    log = tmp_path / "runs.txt"
    code = (
        "import json, os, sys; "
        f"open({str(log)!r}, 'a').write('run\\n'); "
        "arch = json.load(open(sys.argv[1])); "
        "size = os.path.getsize(sys.argv[2]); "
        "print('size', size); print(len(arch['layers']))"
    )
    cache = tmp_path / "cache.json"
    metric = CommandMetric(net, py(code) + " {arch} {model}", cache=cache)
    arch = net.space.full()
    assert metric(arch) == len(net.space)  # the number alone on the last line
    assert metric(arch) == len(net.space)
    assert log.read_text().count("run") == 1  # second call served from the cache
    data = json.loads(cache.read_text())
    assert data["format"] == CACHE_FORMAT and len(data["values"]) == 1
    again = CommandMetric(net, py(code) + " {arch} {model}", cache=cache)  # a resumed search
    assert again(arch) == len(net.space) and log.read_text().count("run") == 1


def test_torchscript_export(net, tmp_path):
    code = "import sys, torch; m = torch.jit.load(sys.argv[1]); print(sum(p.numel() for p in m.parameters()))"
    metric = CommandMetric(net, py(code) + " {model}", export_format="torchscript")
    arch = net.space.sample(__import__("random").Random(0))
    assert metric(arch) == sum(p.numel() for p in net.extract(arch).parameters())


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("import sys; sys.exit(3)", "exit status 3"),
        ("print('hello')", "'hello' is not a number alone"),
        ("print('done, 3 runs')", "'done, 3 runs' is not a number alone"),
        ("print(0)", "finite positive"),
        ("import time; time.sleep(30)", "timed out after 0.5 s"),
    ],
)
def test_failures_retry_then_raise_and_leave_cache_alone(net, tmp_path, code, message):
    log = tmp_path / "runs.txt"
    cache = tmp_path / "cache.json"
    counting = f"open({str(log)!r}, 'a').write('run\\n'); " + code
    good = CommandMetric(net, py("print(7)") + " {arch}", cache=cache)
    good(net.space.full())
    before = cache.read_bytes()
    metric = CommandMetric(net, py(counting) + " {arch}", timeout=0.5, retries=1, cache=tmp_path / "bad.json")
    with pytest.raises(NetAdaptError, match=message) as info:
        metric(net.space.full())
    assert "failed 2 time(s) for architecture " in str(info.value) and "\n" not in str(info.value)
    assert log.read_text().count("run") == 2  # one try + one retry, no more
    assert not (tmp_path / "bad.json").exists()
    assert cache.read_bytes() == before


def test_cache_of_another_metric_or_corrupt_is_rejected(net, tmp_path):
    cache = tmp_path / "cache.json"
    CommandMetric(net, py("print(1)") + " {arch}", cache=cache)(net.space.full())
    with pytest.raises(NetAdaptError, match="another metric"):
        CommandMetric(net, py("print(2)") + " {arch}", cache=cache)
    cache.write_text("{torn")
    with pytest.raises(NetAdaptError, match="not readable JSON"):
        MetricCache(cache, metric="x")


def test_architecture_of_another_space_is_rejected(net):
    other = build_supernet("mobilenet_v1_cifar", width_mult=0.25, input_size=16, num_classes=10)
    metric = CommandMetric(net, py("print(1)") + " {arch}")
    with pytest.raises(NetAdaptError, match="another search space"):
        metric(other.space.full())


def test_an_interrupt_while_the_command_starts_is_delivered_after() -> None:
    """SIGINT during Popen (the deferred block) is held until the process group can be ended,
    then raised as KeyboardInterrupt; the handlers in place before come back."""
    import signal

    from netadapt.resources.command import _DeferredSignals

    outer = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a foreground process
    try:
        deferred = _DeferredSignals()
        with deferred:
            signal.raise_signal(signal.SIGINT)  # recorded, not raised
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler and len(deferred.caught) == 1
        with pytest.raises(KeyboardInterrupt):
            deferred.deliver()
    finally:
        signal.signal(signal.SIGINT, outer)
    quiet = _DeferredSignals()
    with quiet:
        pass
    quiet.deliver()  # nothing recorded: nothing happens
