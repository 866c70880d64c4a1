import json

import pytest

import netadapt
from netadapt.cli import main


def test_zoo_lists_every_model(capsys):
    assert main(["zoo"]) == 0
    out = capsys.readouterr().out
    for name in netadapt.list_models():
        assert name in out


def test_describe_json_has_integer_counts(capsys):
    assert main(["describe", "mobilenet_v3_large", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["macs"] == 216_589_760 and info["params"] == 5_483_032
    assert isinstance(info["layers"], list) and info["layers"][0]["type"] == "conv"
    assert sum(r["macs"] for r in info["layers"] if isinstance(r["macs"], int)) == info["macs"]


def test_describe_an_architecture_file(tmp_path, capsys):
    net = netadapt.build_supernet("mobilenet_v2_cifar")
    arch = net.space.uniform(0.5)
    path = tmp_path / "arch.json"
    path.write_text(arch.to_json(net.space))
    assert main(["describe", "mobilenet_v2_cifar", "--arch", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["macs"] == netadapt.count_macs(net, arch) < netadapt.count_macs(net)
    assert main(["describe", "mobilenet_v2_cifar", "--arch", str(path)]) == 0
    table = capsys.readouterr().out
    assert "mnv2 block" in table and "MACs" in table


@pytest.mark.parametrize(
    "args, message",
    [
        (["describe", "resnet"], "unknown model 'resnet'"),
        (["describe", "mobilenet_v2", "--arch", "/nonexistent.json"], "does not exist"),
        (["check-zoo", "--models", "nope"], "unknown model 'nope'"),
    ],
)
def test_bad_input_is_one_line_without_traceback(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_architecture_of_another_model_is_rejected(tmp_path, capsys):
    other = netadapt.build_supernet("mobilenet_v1_cifar")
    path = tmp_path / "arch.json"
    path.write_text(other.space.full().to_json(other.space))
    assert main(["describe", "mobilenet_v2_cifar", "--arch", str(path)]) == 2
    assert "another search space" in capsys.readouterr().err


def test_check_zoo_runs_real_checks(capsys):
    assert main(["check-zoo", "--models", "mobilenet_v3_small_cifar", "fastdepth", "--samples", "2"]) == 0
    out = capsys.readouterr().out
    assert "mobilenet_v3_small_cifar" in out and "17.51M" in out and "all sub-networks agree" in out


@pytest.mark.parametrize(
    "name, model, macs", [("table8", "netadaptv2_latency", 223_056_000), ("table9", "netadaptv2_macs", 311_295_744)]
)
def test_describe_the_papers_architectures_by_name(name, model, macs, capsys):
    assert main(["describe", "--arch", name, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model"] == model and info["macs"] == macs and info["title"].startswith("NetAdaptV2 paper, Table")
    assert main(["zoo"]) == 0
    assert name in capsys.readouterr().out


def test_an_architecture_file_describes_itself(tmp_path, capsys):
    """A file written with its build needs no model name or options (issue 19, item 3)."""
    net = netadapt.build_supernet("mobilenet_v1_cifar", width_mult=0.5, num_classes=4, input_size=28, min_width_fraction=0.5)
    arch = net.space.uniform(0.75)
    path = tmp_path / "arch.json"
    path.write_text(arch.to_json(net.space, build=net.build_config()))
    assert main(["describe", "--arch", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["macs"], info["num_classes"], info["input_size"]) == (netadapt.count_macs(net, arch), 4, 28)
    # a file without its build: the message says what differs and how to match it, and --option does
    path.write_text(arch.to_json(net.space))
    assert main(["describe", "mobilenet_v1_cifar", "--arch", str(path)]) == 2
    err = capsys.readouterr().err
    assert "another search space of mobilenet_v1_cifar" in err and "model.options" in err and err.count("\n") == 1
    args = ["describe", "mobilenet_v1_cifar", "--width-mult", "0.5", "--option", "min_width_fraction=0.5", "--arch", str(path)]
    assert main([*args, "--num-classes", "4", "--input-size", "28", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["macs"] == netadapt.count_macs(net, arch)


def test_describe_a_run_folder_and_explain_clipped_depthwise_widths(tmp_path, capsys):
    """A depthwise layer computes at most its input's width: the table marks the cell and says
    why the architecture file keeps more (issue 19, item 7)."""
    net = netadapt.build_supernet("mobilenet_v1_cifar", width_mult=0.5, min_width_fraction=0.5)
    layers = [layer.name for layer in net.space.layers]
    filters = list(net.space.full().filters)
    filters[layers.index("b0")] = min(net.space.layers[0].widths)  # the stem keeps 8 of 16 ...
    arch = net.space.make(filters)  # ... and b1.dw keeps all 16, of which 8 compute
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "final_arch.json").write_text(arch.to_json(net.space))
    (tmp_path / "build.json").write_text(json.dumps(net.build_config()))
    assert main(["describe", "--run", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "8*" in out and "* b1.dw keeps 16 filters in the architecture but computes 8" in out
    assert "its input has 8 channels" in out


def test_running_out_of_memory_is_a_one_line_error(monkeypatch, capsys):
    """The CPU allocator's and a GPU's out-of-memory errors say what to lower, not a traceback."""
    import netadapt.model.cli as model_cli

    def exhausted(args):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:121] . DefaultCPUAllocator: can't allocate memory: you tried to allocate 32212254720 bytes."
        )

    monkeypatch.setattr(model_cli, "_cmd_zoo", exhausted)
    assert main(["zoo"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: out of memory (it tried to allocate 30.0 GiB); lower data.batch_size")
    assert "\n" not in err


def test_the_summary_table_keeps_its_columns_apart_for_large_networks():
    """A ResNet's billions of MACs and tens of millions of parameters stay separate columns."""
    from netadapt.pipeline.cli import summary_lines

    big = {"accuracy": 0.762, "macs": 4_089_184_256, "params": 25_557_032, "latency_ms": 19.8}
    small = {"accuracy": 0.741, "macs": 2_044_592_128, "params": 12_001_000, "latency_ms": 10.1}
    lines = summary_lines({"task": "classification", "initial": big, "discovered": small})
    header, rows = lines[0], lines[1:3]
    assert header.split() == ["network", "top-1", "%", "MACs", "params", "latency", "ms"]
    assert rows[0].split()[-4:] == ["76.2", "4,089,184,256", "25,557,032", "19.800"]
    assert {len(line) for line in (header, *rows)} == {len(header)}  # right-aligned under their titles


def test_output_piped_into_a_reader_that_leaves_is_no_traceback():
    """`netadapt zoo | head -1`: the reader closes the pipe; the command ends quietly."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "netadapt.cli", "zoo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before the first line is written: every write meets a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and "Traceback" not in err, err


def test_an_architecture_files_build_and_layer_names_are_checked(tmp_path, capsys):
    net = netadapt.build_supernet("mobilenet_v1_cifar", width_mult=0.25)
    data = json.loads(net.space.full().to_json(net.space, build=net.build_config()))
    cases = [
        ({**data, "build": "x"}, "its build (how the network is built) is not a mapping"),
        ({**data, "build": {**data["build"], "input_size": "abc"}}, "input_size must be a positive integer"),
        ({**data, "build": {**data["build"], "width_mult": 0}}, "width_mult must be a positive number"),
        ({**data, "layers": [{**data["layers"][0], "name": "bogus"}, *data["layers"][1:]]}, "layer 0 is named 'bogus'"),
    ]
    path = tmp_path / "arch.json"
    for content, message in cases:
        path.write_text(json.dumps(content))
        assert main(["describe", "--arch", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: architecture file {path}: ") and message in err and err.count("\n") == 1, err
