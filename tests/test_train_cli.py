"""Tests for train.py: flags and defaults, run layout, checkpoints, resume, errors, logging."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow.core.util import event_pb2

import train
from model.checkpoints import CheckpointError, resolve_checkpoint
from model.networks import ModelConfig
from model.networks.config import TRAINING_PRIOR
from model.training import D_KEYS, G_KEYS, VALIDATION_KEYS, ProgressCallback, TrainSettings

TINY_FLAGS = [
    "--base-filters", "4", "--depth", "2", "--disc-filters", "4", "--disc-layers", "2",
    "--crop-size", "32", "--batch-size", "2", "--quiet",
]  # fmt: skip


def ckpt_value(prefix: Path, key: str):
    return tf.train.load_checkpoint(str(prefix)).get_tensor(f"{key}/.ATTRIBUTES/VARIABLE_VALUE")


def steps_saved(folder: Path) -> list[int]:
    return sorted(int(p.name[len("ckpt-") : -len(".index")]) for p in folder.glob("ckpt-*.index"))


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_dataset) -> Path:
    """200 steps with the default --save-every 100, validation and images every 100 steps."""
    log = tmp_path_factory.mktemp("cli") / "log"
    flags = ["--log-dir", str(log), "--run", "r", "--steps", "200"]
    flags += ["--val-every", "100", "--image-every", "100", "--log-every", "50"]
    assert train.main([str(tiny_dataset), *flags, *TINY_FLAGS]) == 0
    return log / "r"


def test_default_flags_are_the_library_defaults(tmp_path, tiny_dataset):
    log = tmp_path / "log"
    assert train.main([str(tiny_dataset), "--log-dir", str(log), "--run", "d", "--steps", "0"]) == 0
    config = json.loads((log / "d" / "config.json").read_text())
    assert config["model"] == ModelConfig(prior=TRAINING_PRIOR).to_dict()
    assert config["train"] == {**TrainSettings(steps=0).to_dict(), "data": str(tiny_dataset)}
    assert config["seed"] == TrainSettings().seed and config["version"] == 2
    assert steps_saved(log / "d" / "checkpoints") == [0]


def test_checkpoint_cadence_and_step(trained_run):
    assert steps_saved(trained_run / "checkpoints") == [100, 200]
    newest = trained_run / "checkpoints" / "ckpt-200"
    assert ckpt_value(newest, "step") == 200
    assert ckpt_value(newest, "g_optimizer/_iterations") == 200
    assert ckpt_value(newest, "d_optimizer/_iterations") == 200


def test_checkpoint_index_resolution(trained_run):
    # DESIGN.md: -1 newest, -2 the one before, N the one saved at step N, else a listing error.
    log = trained_run.parent
    assert resolve_checkpoint("-1", log).step == 200
    assert resolve_checkpoint("-2", log).step == 100
    assert resolve_checkpoint("100", log).step == 100
    assert resolve_checkpoint(str(trained_run / "checkpoints" / "ckpt-100"), log).step == 100
    with pytest.raises(CheckpointError, match="available steps: 100, 200"):
        resolve_checkpoint("150", log)
    with pytest.raises(CheckpointError, match="only 2"):
        resolve_checkpoint("-3", log)


def test_tensorboard_samples_and_validation_log(trained_run):
    tags = {}
    for path in (trained_run / "tensorboard").glob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                tags.setdefault(value.tag, set()).add(event.step)
    for key in (*G_KEYS, *D_KEYS, "images_per_second"):
        assert tags[f"train/{key}"] == {50, 100, 150, 200}, key
    for key in VALIDATION_KEYS:
        assert tags[f"val/{key}"] == {0, 100, 200}, key
    assert tags["samples"] == {0, 100, 200}
    samples = sorted(p.name for p in (trained_run / "samples").glob("*.png"))
    assert samples == ["step_0000000.png", "step_0000100.png", "step_0000200.png"]
    lines = (trained_run / "validation.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["step"] for r in records] == [0, 100, 200]
    best = json.loads((trained_run / "best" / "best.json").read_text())
    assert best["sad"] == min(r["sad"] for r in records)
    assert steps_saved(trained_run / "best") == [best["step"]]


def test_tensorboard_itself_reads_the_run(trained_run):
    # What `tensorboard --logdir` shows: its own event loader, not our reading of the records.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(trained_run / "tensorboard")).Reload()
    assert "samples" in events.Tags()["tensors"]
    assert [event.step for event in events.Tensors("val/sad")] == [0, 100, 200]
    losses = events.Tensors("train/g_total")
    assert [event.step for event in losses] == [50, 100, 150, 200]
    values = [float(tf.make_ndarray(event.tensor_proto)) for event in losses]
    assert all(np.isfinite(value) and value > 0 for value in values)


def test_timelapse_flag(trained_run, capsys):
    assert train.main(["--timelapse", str(trained_run)]) == 0
    assert capsys.readouterr().out.strip() == str(trained_run / "timelapse.gif")
    with Image.open(trained_run / "timelapse.gif") as gif:
        assert gif.n_frames == 3
    # Without a folder: the newest run under --log-dir.
    (trained_run / "timelapse.gif").unlink()
    assert train.main(["--log-dir", str(trained_run.parent), "--timelapse"]) == 0
    assert (trained_run / "timelapse.gif").exists()


def test_resume_picks_the_newest_run_and_continues_its_state(trained_run, tmp_path, capsys):
    log = tmp_path / "log"
    shutil.copytree(trained_run, log / "old")
    shutil.copytree(trained_run, log / "newer")
    for index in (log / "newer" / "checkpoints").glob("*.index"):
        os.utime(index, (index.stat().st_atime, index.stat().st_mtime + 60))

    assert train.main(["--log-dir", str(log), "--resume", "--steps", "205", "--quiet"]) == 0
    assert f"resuming {log / 'newer'} from step 200" in capsys.readouterr().err
    assert steps_saved(log / "newer" / "checkpoints") == [100, 200, 205]
    assert steps_saved(log / "old" / "checkpoints") == [100, 200]
    # Adam counted on from the restored 200 (a fresh optimiser would say 5).
    assert ckpt_value(log / "newer" / "checkpoints" / "ckpt-205", "g_optimizer/_iterations") == 205
    config = json.loads((log / "newer" / "config.json").read_text())
    assert config["train"]["steps"] == 205 and config["train"]["crop_size"] == 32


def test_exception_in_the_loop_saves_that_step_then_reraises(tmp_path, tiny_dataset, monkeypatch):
    original = ProgressCallback.on_train_batch_end

    def failing(self, batch, logs=None):
        original(self, batch, logs)
        if batch == 7:
            raise RuntimeError("injected failure")

    monkeypatch.setattr(ProgressCallback, "on_train_batch_end", failing)
    log = tmp_path / "log"
    flags = ["--log-dir", str(log), "--run", "x", "--steps", "50", "--val-every", "0"]
    with pytest.raises(RuntimeError, match="injected failure"):
        train.main([str(tiny_dataset), *flags, "--image-every", "0", *TINY_FLAGS])
    assert steps_saved(log / "x" / "checkpoints") == [7]
    assert ckpt_value(log / "x" / "checkpoints" / "ckpt-7", "step") == 7


def _resized_copy(tiny_dataset: Path, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    alpha = root / "train" / "alpha" / "train_001.png"
    Image.new("L", (40, 64)).save(alpha)
    return root


@pytest.mark.parametrize("problem", ["missing", "empty train", "empty val", "sizes"])
def test_bad_data_is_a_one_line_error(problem, tmp_path, tiny_dataset, capsys):
    if problem == "missing":
        root, expected = tmp_path / "nothing", "nothing/train: no such dataset split"
    elif problem == "sizes":
        root, expected = _resized_copy(tiny_dataset, tmp_path), "train_001.png: is 40x64"
    else:
        split = problem.split()[1]
        root = tmp_path / "data"
        shutil.copytree(tiny_dataset, root)
        for path in (root / split / "image").glob("*.png"):
            path.unlink()
        expected = f"{split}/image: no samples"
    log = tmp_path / "log"
    assert train.main([str(root), "--log-dir", str(log), *TINY_FLAGS]) == 2
    assert expected in one_line_error(capsys)
    assert not list(log.glob("*/checkpoints"))


def test_run_errors(trained_run, tmp_path, tiny_dataset, capsys):
    log = str(trained_run.parent)
    data = str(tiny_dataset)
    assert train.main([data, "--log-dir", log, "--run", "r", *TINY_FLAGS]) == 2
    assert "already holds checkpoints (up to step 200); pass --resume" in one_line_error(capsys)
    assert train.main([data, "--log-dir", log, "--run", "pretrained"]) == 2
    assert "shipped snapshot" in one_line_error(capsys)
    assert train.main(["--log-dir", log, "--run", "r", "--resume", "--base-filters", "8"]) == 2
    assert "--base-filters 8 differs from the run's 4" in one_line_error(capsys)
    assert train.main(["--log-dir", log, "--run", "r", "--resume", "--checkpoint", "150"]) == 2
    assert "available steps: 100, 200" in one_line_error(capsys)
    assert train.main(["--log-dir", str(tmp_path / "empty"), "--resume"]) == 2
    assert "no trained run to resume" in one_line_error(capsys)
    assert train.main([data, "--log-dir", log, "--checkpoint", "-2"]) == 2
    assert "only with --resume" in one_line_error(capsys)
    assert train.main([data, "--log-dir", log, "--lr", "0"]) == 2
    assert "--lr must be > 0" in one_line_error(capsys)
    new_run = [data, "--log-dir", str(tmp_path / "log"), "--depth", "3", "--crop-size", "36"]
    assert train.main(new_run) == 2
    assert "--crop-size 36: must be a multiple of 8" in one_line_error(capsys)
    for flags, message in (
        (["--epochs", "3", "--steps", "5"], "not allowed with argument"),
        (["--save-every", "0"], "argument --save-every: must be >= 1, not 0"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            train.main([data, *flags])
        assert exit_info.value.code == 2
        assert message in one_line_error(capsys)


def test_resume_loads_exactly_the_saved_weights(trained_run, tmp_path, monkeypatch):
    log = tmp_path / "log"
    shutil.copytree(trained_run, log / "r")
    written = {}
    from model import training

    original = training.RunCheckpoint.restore

    def restore_and_write(self, path):
        step = original(self, path)
        # Serialise what is now in memory, to compare with the file it was read from.
        written["path"] = self.checkpoint.write(str(tmp_path / "after" / "state"))
        return step

    monkeypatch.setattr(training.RunCheckpoint, "restore", restore_and_write)
    assert train.main(["--log-dir", str(log), "--run", "r", "--resume", "--quiet"]) == 0
    saved = tf.train.load_checkpoint(str(trained_run / "checkpoints" / "ckpt-200"))
    loaded = tf.train.load_checkpoint(written["path"])
    keys = [k for k in saved.get_variable_to_shape_map() if k.endswith("VARIABLE_VALUE")]
    keys = [k for k in keys if not k.startswith("save_counter")]
    assert any(k.startswith("g_optimizer/_variables") for k in keys)
    for key in keys:
        np.testing.assert_array_equal(saved.get_tensor(key), loaded.get_tensor(key), err_msg=key)


REPO = Path(__file__).resolve().parents[1]


def _start_training(data: Path, log: Path, run: str) -> subprocess.Popen:
    """train.py in a child process, saving every 25 steps of a practically endless run."""
    command = [sys.executable, str(REPO / "train.py"), str(data), "--log-dir", str(log)]
    command += ["--run", run, "--steps", "1000000", "--save-every", "25", "--val-every", "0"]
    command += ["--image-every", "0", *TINY_FLAGS]
    return subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_saves_the_step_reached_and_exits_cleanly(signum, tmp_path, tiny_dataset):
    log = tmp_path / "log"
    process = _start_training(tiny_dataset, log, "s")
    _wait_for(log / "s" / "checkpoints" / "ckpt-25.index", process)
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signum  # 130 for SIGINT, 143 for SIGTERM
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    match = re.fullmatch(
        rf"interrupted by {signal.Signals(signum).name} at step (\d+); saved (\S+); resume"
        r" with: python3 train.py .* --run s .*--resume",
        last,
    )
    assert match, last
    step = int(match.group(1))
    assert step >= 25
    assert match.group(2) == str(log / "s" / "checkpoints" / f"ckpt-{step}")
    assert steps_saved(log / "s" / "checkpoints")[-1] == step
    assert ckpt_value(log / "s" / "checkpoints" / f"ckpt-{step}", "step") == step


@pytest.mark.slow
def test_kill_9_then_resume_continues_from_the_last_saved_step(tmp_path, tiny_dataset, capsys):
    log = tmp_path / "log"
    process = _start_training(tiny_dataset, log, "k")
    _wait_for(log / "k" / "checkpoints" / "ckpt-50.index", process)
    process.kill()
    process.communicate(timeout=60)
    last = steps_saved(log / "k" / "checkpoints")[-1]
    assert last >= 50 and last % 25 == 0
    prefix = log / "k" / "checkpoints" / f"ckpt-{last}"

    flags = ["--log-dir", str(log), "--run", "k", "--resume", "--steps", str(last + 3)]
    assert train.main([*flags, "--save-every", "1", "--quiet"]) == 0
    assert f"from step {last}" in capsys.readouterr().err
    assert steps_saved(log / "k" / "checkpoints")[-3:] == [last + 1, last + 2, last + 3]
    assert ckpt_value(log / "k" / "checkpoints" / f"ckpt-{last + 3}", "step") == last + 3
    assert ckpt_value(prefix, "g_optimizer/_iterations") == last
