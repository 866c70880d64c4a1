"""Faults and bad input, as a careless user or an attacker would produce them: each gives a
one-line error (exit status 2 from the command line) or a correct result — never a traceback,
a half-written file, a silently wrong number or a process left behind.

Real ``kill -9`` crashes run in a child process that kills itself at a fixed step, so the
resumed result can be compared exactly with an uninterrupted run.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from PIL import Image

import netadapt
from netadapt.arch.files import load_architecture
from netadapt.cli import main
from netadapt.config import load_config
from netadapt.data import HELDOUT_FILE, DataConfig, FolderSource, load_digits, make_heldout, save_heldout
from netadapt.errors import NetAdaptError
from netadapt.io import load_json, read_jsonl
from netadapt.lock import LOCK_FILE, run_folder_lock
from netadapt.model.checkpoint import save_supernet
from netadapt.search import SearchConfig, search
from netadapt.search.evaluate import EvalConfig
from netadapt.train import SupernetTrainConfig, train_supernet
from netadapt.train.checkpoint import CHECKPOINT_FORMAT, load_checkpoint

REPO = Path(__file__).resolve().parents[1]
SRC = Path(netadapt.__file__).resolve().parents[1]

TINY_TRAIN = [
    "epochs=1",
    "model.width_mult=0.25",
    "model.options={num_widths: 3}",
    "data.batch_size=32",
    "data.heldout=60",
    "data.subset=192",
    "optim.lr=0.02",
    "optim.lr_batch=32",
    "ema_decay=null",
    "checkpoint_every=3",
    "deterministic=true",
    "progress=false",
    "tensorboard=false",
]


def tiny_train(run_dir: Path, *extra: str) -> SupernetTrainConfig:
    return load_config(SupernetTrainConfig, None, [*TINY_TRAIN, f"run_dir={run_dir}", *extra])


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """(exit status, standard error) of ``netadapt ARGV``."""
    code = main(list(argv))
    return code, capsys.readouterr().err


def one_line_error(code: int, err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.startswith("error:") or "Traceback" in line]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(REPO)])}


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


# -- a tiny super-network file and a finished search of it ---------------------------------------
@pytest.fixture(scope="module")
def supernet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("faults") / "train"
    folder.mkdir()
    torch.manual_seed(0)
    net = netadapt.build_supernet("mobilenet_v1_cifar", width_mult=0.25, input_size=16, num_classes=10, num_widths=3)
    data = DataConfig(dataset="digits", heldout=60)
    train, _ = load_digits(16)
    save_heldout(folder, make_heldout(train, data.heldout, data.seed, asdict(data)))
    save_supernet(folder / "supernet.pt", net, extra={"heldout": HELDOUT_FILE})
    return folder


def search_argv(supernet: Path, run_dir: Path, *extra: str) -> list[str]:
    return ["search", "--supernet", str(supernet), "--run-dir", str(run_dir), "--target", "0.8", "--samples", "2",
            "--layers", "4", "--reduction", "0.1", "--decay", "1", "--calibration-images", "32", "--batch-size", "64",
            *extra]  # fmt: skip


@pytest.fixture(scope="module")
def finished_search(supernet_dir: Path) -> Path:
    run_dir = supernet_dir / "search"
    assert main(search_argv(supernet_dir / "supernet.pt", run_dir)) == 0
    return run_dir


def copy_search(supernet_dir: Path, to: Path) -> Path:
    """A copy of the super-network folder with its finished search (returns the copy's search)."""
    shutil.copytree(supernet_dir, to)
    return to / "search"


# == 1. checkpoints never run code ================================================================
class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_crafted_checkpoint_cannot_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "checkpoint.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "version": 99, "payload": _Payload(marker)}, path)
    with pytest.raises(NetAdaptError, match="corrupt or unreadable") as info:
        load_checkpoint(path, "supernet")
    assert not marker.exists() and "\n" not in str(info.value)


# == 2. one writer per run folder ==================================================================
def _hold_lock(folder: Path, pid: int, host: str) -> int:
    """Lock ``folder`` through a descriptor of our own, as another process would."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, json.dumps({"pid": pid, "host": host, "started": "2024-01-01 00:00:00"}).encode())
    return fd


def toy_search(run_dir: Path, **config):
    space = netadapt.build_supernet("mobilenet_v1_cifar", width_mult=0.25, num_widths=3).space

    def resource(arch):
        return float(sum(arch.filters))

    def evaluate(archs):
        return [sum(a.filters) / 1000 for a in archs]

    settings = SearchConfig(**{"samples": 2, "layers": 8, "initial_reduction": 0.1, "decay": 1.0, "target": 0.85, **config})
    return search(space, space.full(), resource, evaluate, settings, rng_seed=0, run_dir=run_dir)


def test_a_run_folder_in_use_is_refused_naming_its_owner(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    fd = _hold_lock(run, os.getpid(), socket.gethostname())
    try:
        with pytest.raises(NetAdaptError, match=rf"in use by pid {os.getpid()} on {socket.gethostname()}"):
            toy_search(run)
        assert not (run / "history.jsonl").exists() and not (run / "search_config.json").exists()
        code, err = cli(capsys, "train-supernet", "--run-dir", str(run), *(f"--set={s}" for s in TINY_TRAIN))
        one_line_error(code, err, f"pid {os.getpid()}")
        assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE]  # nothing trained, nothing written
    finally:
        os.close(fd)
    assert toy_search(run).reached_target  # free again
    assert not (run / LOCK_FILE).exists()


def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_FILE).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": "yesterday"}))
    with caplog.at_level(logging.WARNING, logger="netadapt.lock"):
        toy_search(run)
    assert f"taking over the stale lock of pid {dead.pid}" in caplog.text
    assert not (run / LOCK_FILE).exists()


def test_the_lock_is_reentrant_and_leaves_no_empty_folder(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "run"
    with run_folder_lock(folder), run_folder_lock(folder):  # a stage inside the pipeline that holds it
        owner = json.loads((folder / LOCK_FILE).read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
    assert not folder.exists()  # created by the lock, nothing written: removed again
    with run_folder_lock(folder):
        (folder / "result.txt").write_text("x")
    assert sorted(p.name for p in folder.iterdir()) == ["result.txt"]


def test_a_refused_rerun_leaves_the_run_record_alone(
    supernet_dir: Path, finished_search: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_search(supernet_dir, tmp_path / "copy")
    before = (run / "run_config.yaml").read_bytes()
    history = (run / "history.jsonl").read_bytes()
    code, err = cli(capsys, *search_argv(run.parent / "supernet.pt", run, "--seed", "1"))
    one_line_error(code, err, "different rng_seed")
    assert (run / "run_config.yaml").read_bytes() == before and (run / "history.jsonl").read_bytes() == history


# == 3. bad training input is refused before anything is written ===================================
@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (["model.name=mobilenet_v9"], "mobilenet_v9"),
        (["model.options={bogus: 1}"], "bogus"),
        (["model.input_size=32"], "model.input_size=32"),
        (["data.batch_size=4096"], "larger than"),
        (["data.batch_size=30", "accumulate=4"], "not divisible"),
    ],
)
def test_bad_training_input_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], settings: list[str], message: str
) -> None:
    run = tmp_path / "run"
    code, err = cli(capsys, "train-supernet", "--run-dir", str(run), *(f"--set={s}" for s in [*TINY_TRAIN, *settings]))
    one_line_error(code, err, message)
    assert not run.exists()


def test_the_corrected_command_runs_after_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    code, err = cli(capsys, "train-supernet", "--run-dir", str(run), *(f"--set={s}" for s in TINY_TRAIN), "--set=model.name=x")
    one_line_error(code, err, "'x'")
    code, _ = cli(capsys, "train-supernet", "--run-dir", str(run), *(f"--set={s}" for s in TINY_TRAIN))
    assert code == 0 and (run / "supernet.pt").is_file()


# == 4. no silently wrong result ===================================================================
@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_non_finite_config_numbers_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    code, err = cli(capsys, "train-supernet", "--run-dir", str(tmp_path / "run"), f"--set=optim.lr={value}")
    one_line_error(code, err, "optim.lr: expected a finite number")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("poison", "where"), [("loss", "epoch 1, step 6: the training loss is nan"), ("weights", "the end of epoch 1: the weights")]
)
def test_diverging_training_stops_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, poison: str, where: str
) -> None:
    import netadapt.train.loop as loop

    original = loop._forward_backward
    calls = []

    def diverging(model, raw, *args, **kwargs):
        stats = original(model, raw, *args, **kwargs)
        calls.append(1)
        if poison == "loss" and len(calls) >= 5:
            stats = stats.clone()
            stats[0] = float("nan")
        if poison == "weights" and len(calls) == 6:
            with torch.no_grad():
                next(raw.parameters()).fill_(float("inf"))
        return stats

    monkeypatch.setattr(loop, "_forward_backward", diverging)
    run = tmp_path / "run"
    with pytest.raises(NetAdaptError, match=rf"diverged at {where}.*optim\.lr=0\.02.*keeps the weights at epoch 1, step 3"):
        train_supernet(tiny_train(run))
    kept = load_checkpoint(run / "checkpoint.pt", "supernet")
    assert (kept["epoch"], kept["step_in_epoch"]) == (0, 3)
    assert all(torch.isfinite(v).all() for v in kept["model"].values() if v.is_floating_point())
    assert not (run / "supernet.pt").exists()


def test_an_exploding_learning_rate_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    code, err = cli(
        capsys, "train-supernet", "--run-dir", str(run), *(f"--set={s}" for s in TINY_TRAIN), "--set=optim.lr=1.0e+30"
    )
    one_line_error(code, err, "training diverged", "learning rate")
    assert not (run / "supernet.pt").exists()


def test_a_zero_resource_is_refused_before_the_search_writes(tmp_path: Path) -> None:
    space = netadapt.build_supernet("mobilenet_v1_cifar", width_mult=0.25, num_widths=3).space
    with pytest.raises(NetAdaptError, match="expected a positive number"):
        search(space, space.full(), lambda a: 0.0, lambda archs: [1.0] * len(archs), rng_seed=0, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def _image_folder(root: Path, classes: tuple[str, ...], per_class: int = 12) -> Path:
    for c, label in enumerate(classes):
        for i in range(per_class):
            path = root / "train" / label / f"{i:02d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (16, 16), (20 * i, 120 * c, 60)).save(path)
    return root


def test_a_one_class_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _image_folder(tmp_path / "images", ("cat",))
    folder = ["--set=data.dataset=folder", f"--set=data.root={root}", "--set=data.preset=none", "--set=data.image_size=16",
              "--set=data.heldout=4", "--set=data.batch_size=4"]  # fmt: skip
    code, err = cli(capsys, "train-supernet", "--run-dir", str(tmp_path / "run"), *(f"--set={s}" for s in TINY_TRAIN), *folder)
    one_line_error(code, err, "one class ('cat')", "at least 2 classes")
    assert not (tmp_path / "run").exists()


def test_unreadable_heldout_images_are_counted_and_recorded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from netadapt.search.run import SearchRunConfig, run_search

    root = _image_folder(tmp_path / "images", ("ant", "bee"))
    data = DataConfig(dataset="folder", root=str(root), preset="none", image_size=16, heldout=6, val_dir="")
    source = FolderSource(root / "train")
    split = make_heldout(source, data.heldout, data.seed, asdict(data))
    (root / "train" / source.paths[split.indices[0]]).write_bytes(b"not a png")  # damaged after training
    folder = tmp_path / "supernet"
    save_heldout(folder, split)
    net = netadapt.build_supernet("mobilenet_v1_cifar", width_mult=0.25, input_size=16, num_classes=2, num_widths=3)
    save_supernet(folder / "supernet.pt", net, extra={"heldout": HELDOUT_FILE})
    search_config = SearchConfig(samples=2, layers=3, initial_reduction=0.2, decay=1.0, target=0.8)
    config = SearchRunConfig(supernet=str(folder / "supernet.pt"), batch_size=4, search=search_config,
                             eval=EvalConfig(calibration_images=8))  # fmt: skip
    with caplog.at_level(logging.WARNING):
        result = run_search(config)
    assert "1 of 6 held-out images are unreadable" in caplog.text and split.names[0] in caplog.text
    assert load_json(folder / "search" / "search_config.json")["metadata"]["heldout_unreadable"] == 1
    assert result.reached_target


# == 5. damaged files and a hostile file system: one line, never a traceback ======================
def test_output_folder_under_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("x")
    code, err = cli(capsys, "train-supernet", "--run-dir", str(tmp_path / "file" / "run"), *(f"--set={s}" for s in TINY_TRAIN))
    one_line_error(code, err, "Not a directory", str(tmp_path / "file"))


@pytest.mark.parametrize(
    ("where", "code_", "text"),
    [("fsync", errno.ENOSPC, "No space left on device"), ("mkstemp", errno.EROFS, "Read-only file system")],
)
def test_a_full_disk_or_read_only_folder_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, where: str, code_: int, text: str
) -> None:
    import tempfile

    def fail(*args, **kwargs):
        raise OSError(code_, text)  # as the system reports it: no file name

    monkeypatch.setattr(os if where == "fsync" else tempfile, where, fail)
    run = tmp_path / "run"
    code, err = cli(capsys, "train-supernet", "--run-dir", str(run), *(f"--set={s}" for s in TINY_TRAIN))
    one_line_error(code, err, text, str(run / "heldout.json"))
    assert not run.exists()  # no temporary file, no empty folder left


def test_non_utf8_config_and_architecture_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("epochs: 1 # caf\xe9\n".encode("latin-1"))
    code, err = cli(capsys, "train-supernet", "--config", str(bad), "--run-dir", str(tmp_path / "run"))
    one_line_error(code, err, "is not UTF-8 text")
    arch = tmp_path / "arch.json"
    arch.write_bytes(b'{"format": "netadapt.architecture", "model": "caf\xe9"}')
    code, err = cli(capsys, "describe", "mobilenet_v1_cifar", "--arch", str(arch))
    one_line_error(code, err, "is not UTF-8 text")


def test_a_damaged_evaluation_cache_line_is_evaluated_again(
    supernet_dir: Path,
    finished_search: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = copy_search(supernet_dir, tmp_path / "copy")
    final = (run / "final_arch.json").read_text()
    lines = (run / "evaluated.jsonl").read_text().splitlines(keepends=True)
    lines[1] = '{"filters": [1, 2, oops}\n'  # damage in the middle, not a torn last line
    (run / "evaluated.jsonl").write_text("".join(lines))
    (run / "search_state.json").unlink()  # replay every iteration: the damaged sample is needed again
    with caplog.at_level(logging.WARNING):
        code, err = cli(capsys, *search_argv(run.parent / "supernet.pt", run))
    assert code == 0, err
    assert "dropped 1 damaged line(s)" in caplog.text
    assert (run / "final_arch.json").read_text() == final
    assert len(read_jsonl(run / "evaluated.jsonl")) == len(lines)


def test_a_truncated_search_state_is_rebuilt(
    supernet_dir: Path,
    finished_search: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = copy_search(supernet_dir, tmp_path / "copy")
    final, history = (run / "final_arch.json").read_text(), read_jsonl(run / "history.jsonl")
    state = (run / "search_state.json").read_bytes()
    (run / "search_state.json").write_bytes(state[: len(state) // 2])
    with caplog.at_level(logging.WARNING):
        code, err = cli(capsys, *search_argv(run.parent / "supernet.pt", run))
    assert code == 0, err
    assert "search_state.json is not valid JSON" in caplog.text and (run / "search_state.json.damaged").exists()
    assert (run / "final_arch.json").read_text() == final
    strip = [{k: v for k, v in r.items() if k != "eval_seconds"} for r in history]
    assert [{k: v for k, v in r.items() if k != "eval_seconds"} for r in read_jsonl(run / "history.jsonl")] == strip


def test_damaged_settings_and_history_are_one_line(
    supernet_dir: Path, finished_search: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_search(supernet_dir, tmp_path / "copy")
    (run / "history.jsonl").write_text('{"iteration": 0}\nnot json\n')
    code, err = cli(capsys, *search_argv(run.parent / "supernet.pt", run))
    one_line_error(code, err, "history.jsonl", "line 2")
    (run / "search_config.json").write_text('{"config": ')
    code, err = cli(capsys, *search_argv(run.parent / "supernet.pt", run))
    one_line_error(code, err, "search_config.json is not valid JSON")


def test_a_hung_metric_command_times_out(supernet_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    metric = "command:sleep 30; echo 1 {arch}"
    code, err = cli(capsys, *search_argv(supernet_dir / "supernet.pt", run, "--metric", metric, "--metric-timeout", "0.3"))
    one_line_error(code, err, "timed out after 0.3 s", "failed 3 time(s) for architecture ")
    assert not run.exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_metric_command_leaves_nothing_behind(supernet_dir: Path, tmp_path: Path, sig: int) -> None:
    """Ctrl-C or SIGTERM while the user's command runs: its whole process group ends, its
    temporary folder and the run folder's lock are removed."""
    info = tmp_path / "started.txt"
    command = f"command:sleep 60 & echo $! {{arch}} > {info}; wait"
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "netadapt", *search_argv(supernet_dir / "supernet.pt", run, "--metric", command)],
        env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # a test run started in the background inherits SIGINT ignored; the user's Ctrl-C is not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (info.exists() and info.read_text().endswith("\n")) and time.monotonic() < deadline:
            time.sleep(0.05)
        pid, arch = info.read_text().split()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == (143 if sig == signal.SIGTERM else 130), err
    assert "interrupted" in err and "Traceback" not in err
    deadline = time.monotonic() + 10  # the killed command is reaped by init, later on a loaded machine
    while alive(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(int(pid)) and not Path(arch).parent.exists()
    assert not run.exists()


# == 6. image folders and architecture files ======================================================
def test_symbolic_links_in_image_folders_do_not_relabel_images(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = _image_folder(tmp_path / "images", ("ant", "bee"), per_class=3)
    outside = _image_folder(tmp_path / "elsewhere", ("wasp",), per_class=5) / "train" / "wasp"
    (root / "train" / "ant" / "loop").symlink_to(root / "train" / "ant")  # a loop
    (root / "train" / "bee" / "more").symlink_to(outside)  # out of the data root
    (root / "train" / "bee" / "same.png").symlink_to(root / "train" / "bee" / "00.png")  # a file link is an image
    with caplog.at_level(logging.WARNING):
        source = FolderSource(root / "train")
    assert sorted(source.paths) == sorted([*(f"ant/{i:02d}.png" for i in range(3)), *(f"bee/{i:02d}.png" for i in range(3)),
                                           "bee/same.png"])  # fmt: skip
    assert [source.classes[t] for t in source.targets] == [p.split("/")[0] for p in source.paths]
    assert "2 symbolic link(s) to folders" in caplog.text
    (root / "train" / "cat").symlink_to(root / "train" / "ant")  # one folder, two labels
    with pytest.raises(NetAdaptError, match="'ant' and 'cat' hold the same images"):
        FolderSource(root / "train")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"filters": 16.5}, "filters must be a whole number, got 16.5"),
        ({"filters": "16"}, "filters must be a whole number, got '16'"),
        ({"filters": True}, "filters must be a whole number, got True"),
        ({"kernel": 3.0}, "kernel must be a whole number"),
        ({"filters": -8}, "must not be negative"),
        ({"name": "conv_zero"}, "layer 0 is named 'conv_zero'"),
    ],
)
def test_architecture_files_are_read_strictly(tmp_path: Path, change: dict, message: str) -> None:
    net = netadapt.build_supernet("mobilenet_v1_cifar", width_mult=0.25, num_widths=3)
    data = net.space.full().to_dict(net.space)
    data["layers"][0].update(change)
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(data))
    with pytest.raises(NetAdaptError, match=message) as info:
        load_architecture(path, net.space)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    del data["layers"][0]["name"]
    data["layers"][0].update(filters=net.space.layers[0].max_filters, kernel=net.space.layers[0].max_kernel)
    path.write_text(json.dumps(data))
    with pytest.raises(NetAdaptError, match="layer 0 has no name"):
        load_architecture(path, net.space)


# == 7. run folders are relocatable ================================================================
def test_a_moved_training_run_folder_is_the_same_run(tmp_path: Path) -> None:
    run = tmp_path / "a" / "run"
    train_supernet(tiny_train(run))
    moved = tmp_path / "b" / "moved"
    shutil.move(run, moved)
    before = (moved / "supernet.pt").stat().st_mtime_ns
    assert train_supernet(tiny_train(moved)) == moved / "supernet.pt"
    assert (moved / "supernet.pt").stat().st_mtime_ns == before


def test_a_copied_search_run_folder_resumes(
    supernet_dir: Path, finished_search: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_search(supernet_dir, tmp_path / "copy")
    evaluated = (run / "evaluated.jsonl").read_bytes()
    code, err = cli(capsys, *search_argv(run.parent / "supernet.pt", run))
    assert code == 0, err
    assert (run / "evaluated.jsonl").read_bytes() == evaluated  # nothing evaluated again
    assert load_json(run / "search_config.json")["metadata"]["supernet"] == "../supernet.pt"


def test_search_folders_of_earlier_versions_still_resume(
    supernet_dir: Path, finished_search: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_search(supernet_dir, tmp_path / "copy")
    settings = load_json(run / "search_config.json")
    settings["metadata"]["supernet"] = str((run.parent / "supernet.pt").resolve())  # stored absolute
    (run / "search_config.json").write_text(json.dumps(settings))
    code, err = cli(capsys, *search_argv(run.parent / "supernet.pt", run))
    assert code == 0, err


# == kill -9 ====================================================================================
def _kill_self_script(body: str) -> str:
    return textwrap.dedent(
        """
        import os, signal, torch
        torch.set_num_threads(1)

        def kill_at(n):
            def hook(count):
                if count == n:
                    os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no finally: a real kill -9
            return hook
        """
    ) + textwrap.dedent(body)


def test_training_resumes_bit_identical_after_kill_9(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    reference = tmp_path / "reference"
    train_supernet(tiny_train(reference))
    run = tmp_path / "run"
    script = _kill_self_script(
        f"""
        from netadapt.config import load_config
        from netadapt.train import SupernetTrainConfig, train_supernet
        config = load_config(SupernetTrainConfig, None, {[*TINY_TRAIN, f"run_dir={run}"]!r})
        train_supernet(config, on_step=kill_at(5))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], env=child_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert (run / LOCK_FILE).exists() and not (run / "supernet.pt").exists()
    with caplog.at_level(logging.WARNING, logger="netadapt.lock"):
        train_supernet(tiny_train(run))
    assert "taking over the stale lock" in caplog.text
    a = torch.load(reference / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(run / "checkpoint.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not (run / LOCK_FILE).exists()


def test_search_resumes_identically_after_kill_9(tmp_path: Path) -> None:
    from tests.test_search import CountingEvaluator
    from tests.test_search import run as toy_run

    reference = toy_run(tmp_path / "reference", eval_chunk=1)
    run = tmp_path / "run"
    script = _kill_self_script(
        f"""
        from tests.test_search import CountingEvaluator, run

        class Killing(CountingEvaluator):
            def __call__(self, archs):
                kill_at(7)(self.calls + 1)
                return super().__call__(archs)

        run({str(run)!r}, evaluator=Killing(), eval_chunk=1)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], env=child_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    partial = len(read_jsonl(run / "evaluated.jsonl"))
    assert partial == 6
    evaluator = CountingEvaluator()
    resumed = toy_run(run, evaluator=evaluator, eval_chunk=1)
    assert resumed.final == reference.final and len(evaluator.archs) + partial == reference.evaluations

    def strip(records):
        return [{k: v for k, v in r.items() if k != "eval_seconds"} for r in records]

    assert strip(read_jsonl(run / "history.jsonl")) == strip(read_jsonl(tmp_path / "reference" / "history.jsonl"))


def test_a_temporary_file_left_by_a_killed_write_is_removed_by_a_later_write(tmp_path: Path) -> None:
    """A write killed before its rename (SIGKILL) leaves `.NAME.XXXX.tmp`; the next finished write
    of the same file removes it once it is older than any write could take, and no other file."""
    from netadapt.io import STALE_SECONDS, atomic_write

    target = tmp_path / "summary.json"
    stale, fresh = (tmp_path / f".summary.json.{k}.tmp" for k in ("old1", "new1"))
    other = tmp_path / ".other.json.old2.tmp"
    for f in (stale, fresh, other):
        f.write_text("{")
    old = time.time() - STALE_SECONDS - 60
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    atomic_write(target, lambda f: f.write(b"{}"))
    assert target.read_text() == "{}"
    assert not stale.exists() and fresh.exists() and other.exists()
