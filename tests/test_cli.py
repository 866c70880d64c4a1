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
