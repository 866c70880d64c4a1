"""``netadapt search`` on a tiny super-network file with a digits held-out split."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

import pytest
import torch

import netadapt
from netadapt.data import HELDOUT_FILE, DataConfig, load_digits, make_heldout, save_heldout
from netadapt.errors import NetAdaptError
from netadapt.io import read_jsonl
from netadapt.model.checkpoint import save_supernet
from netadapt.search.cli import config_from_args, register
from netadapt.search.timing import StepTime, load_timing, record_step


@pytest.fixture(scope="module")
def supernet_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("supernet")
    torch.manual_seed(0)
    net = netadapt.build_supernet("mobilenet_v1_cifar", width_mult=0.25, input_size=16, num_classes=10)
    data = DataConfig(dataset="digits", heldout=60)
    train, _ = load_digits(16)
    save_heldout(folder, make_heldout(train, data.heldout, data.seed, asdict(data)))
    path = folder / "supernet.pt"
    save_supernet(path, net, extra={"heldout": HELDOUT_FILE, "timing": {"wall_seconds": 1800, "devices": 2}})
    return path


def parse(*argv):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(list(argv))


def search_args(supernet_file, run_dir, *extra):
    return parse(
        "search",
        "--supernet",
        str(supernet_file),
        "--run-dir",
        str(run_dir),
        "--samples",
        "4",
        "--layers",
        "4",
        "--reduction",
        "0.15",
        "--decay",
        "1",
        "--calibration-images",
        "32",
        "--batch-size",
        "32",
        *extra,
    )


def test_search_command_finds_an_architecture_and_resumes(supernet_file, tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = search_args(supernet_file, run_dir, "--target", "0.6")
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "reached the target" in out and "search time:" in out
    arch = netadapt.Architecture.from_json((run_dir / "final_arch.json").read_text())
    net, _ = netadapt.model.checkpoint.load_supernet(supernet_file)
    assert netadapt.count_macs(net, arch) <= 0.6 * netadapt.count_macs(net)
    steps = load_timing(run_dir / "timing.json")
    assert steps["supernet_training"].device_hours == 1.0 and steps["sample_evaluation"].wall_seconds > 0
    history = read_jsonl(run_dir / "history.jsonl")
    assert set(history[0]["resources"]) == {"macs", "params"}
    assert (run_dir / "run_config.yaml").exists()
    noise = json.loads((run_dir / "noise.json").read_text())  # selection noise of every iteration
    assert noise["heldout_images"] > 0 and len(noise["per_iteration"]) == max(r["iteration"] for r in history)

    evaluated = len(read_jsonl(run_dir / "evaluated.jsonl"))
    assert args.func(args) == 0  # the same command again: nothing left to do
    assert len(read_jsonl(run_dir / "evaluated.jsonl")) == evaluated
    assert netadapt.Architecture.from_json((run_dir / "final_arch.json").read_text()) == arch


def test_flags_override_set_which_overrides_the_yaml_file(tmp_path):
    yaml_file = tmp_path / "search.yaml"
    yaml_file.write_text("supernet: a.pt\nseed: 3\nsearch:\n  layers: 7\n  samples: 9\neval:\n  mode: masked\n")
    args = parse("search", "--config", str(yaml_file), "--set", "search.layers=5", "--set", "seed=4", "--samples", "per-layer")
    config = config_from_args(args)
    assert (config.supernet, config.seed, config.search.layers, config.search.samples) == ("a.pt", 4, 5, None)
    assert config.eval.mode == "masked"
    config = config_from_args(parse("search", "--config", str(yaml_file), "--target", "150000", "--absolute"))
    assert (config.search.target, config.search.target_mode, config.search.samples) == (150000.0, "absolute", 9)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--target", "1e12", "--absolute"), "above the initial"),
        (("--target", "10", "--absolute"), "unreachable"),
        (("--target", "2"), "fractional target"),
        (("--metric", "latency:/nonexistent/lut.json"), r"lut\.json"),
    ],
)
def test_bad_input_fails_before_any_work(supernet_file, tmp_path, extra, message):
    run_dir = tmp_path / "run"
    args = search_args(supernet_file, run_dir, *extra)
    with pytest.raises(NetAdaptError, match=message) as info:
        args.func(args)
    assert "\n" not in str(info.value)
    assert not (run_dir / "evaluated.jsonl").exists()


def test_a_checkpoint_that_does_not_match_its_model_is_refused(supernet_file, tmp_path):
    data = torch.load(supernet_file, weights_only=False)
    data["build"]["width_mult"] = 0.5  # the weights are those of the 0.25 network
    bad = tmp_path / "supernet.pt"
    torch.save(data, bad)
    args = search_args(bad, tmp_path / "run", "--target", "0.6")
    with pytest.raises(NetAdaptError, match=r"do not match mobilenet_v1_cifar: size mismatch for .*weight"):
        args.func(args)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d.pop("build"), "is not a mapping"),
        (lambda d: d.pop("state_dict"), "damaged super-network file"),
        (lambda d: d.update(build="x"), "is not a mapping"),
        (lambda d: d.update(extra="x"), "damaged super-network file"),
        (lambda d: d["build"].update(input_size="abc"), "input_size must be a positive integer, got 'abc'"),
        (lambda d: d["build"].pop("num_classes"), "description lacks 'num_classes'"),
        (lambda d: d["build"]["options"].update(num_widths=-2), "option num_widths must be at least 2"),
    ],
)
def test_a_damaged_super_network_file_is_a_one_line_error_naming_it(supernet_file, tmp_path, damage, message):
    data = torch.load(supernet_file, weights_only=False)
    damage(data)
    bad = tmp_path / "supernet.pt"
    torch.save(data, bad)
    args = search_args(bad, tmp_path / "run", "--target", "0.6")
    with pytest.raises(NetAdaptError, match=message) as info:
        args.func(args)
    assert str(info.value).startswith(str(bad)) and "\n" not in str(info.value)


def test_search_timing_command(tmp_path, capsys):
    args = parse("search-timing", str(tmp_path))
    with pytest.raises(NetAdaptError, match=r"timing\.json does not exist"):
        args.func(args)
    record_step(tmp_path / "timing.json", "sample_evaluation", StepTime(7200, devices=3))
    assert args.func(args) == 0
    assert "search time: 6 device-hours (-, 6, -)" in capsys.readouterr().out


def test_netadapt_v1_baseline_fine_tunes_each_sample(supernet_file, tmp_path):
    run_dir = tmp_path / "v1"
    args = search_args(
        supernet_file, run_dir, "--target", "0.96", "--reduction", "0.05", "--optimizer", "scd", "--finetune-steps", "2"
    )
    assert args.func(args) == 0
    history = read_jsonl(run_dir / "history.jsonl")
    net, _ = netadapt.model.checkpoint.load_supernet(supernet_file)
    assert len([r for r in history if r["iteration"] == 1]) == len(net.space.tie_groups())
    assert (run_dir / "run_config.yaml").read_text().count("finetune_steps: 2") == 1

    # its fine-tuning batch is part of the method: 256 images unless given, whatever the device
    from netadapt.search.run import SearchRunConfig, _finetune_batches

    heldout = supernet_file.parent / netadapt.model.checkpoint.load_supernet(supernet_file)[1]["heldout"]
    default = _finetune_batches(SearchRunConfig(supernet=str(supernet_file), finetune_steps=1), heldout)
    given = _finetune_batches(SearchRunConfig(supernet=str(supernet_file), finetune_steps=1, batch_size=8), heldout)
    assert [len(y) for _, y in given] == [8]
    everything = _finetune_batches(SearchRunConfig(supernet=str(supernet_file), finetune_steps=1, batch_size=10**6), heldout)
    images = sum(len(y) for _, y in everything)
    assert images > 64  # so that the default below tells 256 from a CPU's scoring batch of 64
    assert sum(len(y) for _, y in default) == min(images, 256)


def test_search_batch_defaults_to_the_device_kind() -> None:
    """search.batch_size null: 64 images per batch on a CPU (faster there), 256 on a GPU."""
    import torch

    from netadapt.errors import NetAdaptError
    from netadapt.search.run import SearchRunConfig, eval_batch_size

    assert eval_batch_size(None, torch.device("cpu")) == 64
    assert eval_batch_size(None, torch.device("cuda", 0)) == 256
    assert eval_batch_size(500, torch.device("cpu")) == 500
    SearchRunConfig(supernet="net.pt").validate()
    with pytest.raises(NetAdaptError, match="batch_size must be positive"):
        SearchRunConfig(supernet="net.pt", batch_size=0).validate()
