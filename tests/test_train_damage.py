"""train.py on damaged files (issue 18): a truncated sample, a damaged checkpoint or state file."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from test_train_cli import TINY_FLAGS

import train

QUICK = ["--val-every", "0", "--image-every", "0", "--prior", "none", *TINY_FLAGS]


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _truncate(path: Path) -> None:
    """Keep the first half: a PNG keeps its header (so listing passes) but cannot be decoded."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _last_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: ") and all(
        not line.startswith("error: ") for line in lines[:-1]
    ), lines
    return lines[-1]


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory, tiny_dataset) -> Path:
    """A run with checkpoints at steps 2 and 4."""
    log = tmp_path_factory.mktemp("damage") / "log"
    flags = ["--log-dir", str(log), "--run", "r", "--steps", "4", "--save-every", "2"]
    assert train.main([str(tiny_dataset), *flags, *QUICK]) == 0
    return log / "r"


@pytest.mark.slow
def test_a_truncated_sample_stops_training_naming_the_file(capsys, tmp_path, tiny_dataset):
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    damaged = data / "train" / "alpha" / "train_003.png"
    _truncate(damaged)
    # 3 steps of 2 crops read all 6 train samples.
    flags = ["--log-dir", str(tmp_path / "log"), "--run", "r", "--steps", "3"]
    assert train.main([str(data), *flags, *QUICK]) == 2
    assert _last_error(capsys) == (
        f"error: {damaged}: cannot decode image (truncated or corrupt file)"
    )


def _copy_run(run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "log" / run.name
    shutil.copytree(run, copy)
    return copy


@pytest.mark.slow
def test_a_damaged_newest_checkpoint_touches_nothing_and_names_the_one_before(
    capsys, tmp_path, tiny_dataset, two_checkpoints
):
    run = _copy_run(two_checkpoints, tmp_path)
    _truncate(run / "checkpoints" / "ckpt-4.data-00000-of-00001")
    before = _digest(run)
    # --steps 6 would change config.json's "steps": it must stay as it was.
    resume = ["--log-dir", str(run.parent), "--run", "r", "--resume", "--steps", "6", *QUICK]
    assert train.main(resume) == 2
    line = _last_error(capsys)
    assert line.startswith(f"error: {run / 'checkpoints' / 'ckpt-4'}: unreadable checkpoint (")
    assert line.endswith("; resume from the one before it with --checkpoint -2")
    assert _digest(run) == before

    # The suggestion works: it resumes from step 2 and trains to 6.
    assert train.main([*resume, "--checkpoint", "-2"]) == 0
    assert "resuming" in capsys.readouterr().err
    assert (run / "checkpoints" / "ckpt-6.index").exists()


@pytest.mark.slow
def test_a_damaged_oldest_checkpoint_says_there_is_none_older(capsys, tmp_path, two_checkpoints):
    run = _copy_run(two_checkpoints, tmp_path)
    (run / "checkpoints" / "ckpt-2.index").write_bytes(b"")
    before = _digest(run)
    resume = ["--log-dir", str(run.parent), "--run", "r", "--resume", "--checkpoint", "2", *QUICK]
    assert train.main(resume) == 2
    assert _last_error(capsys).endswith("; the run has no older checkpoint to resume from")
    assert _digest(run) == before


@pytest.mark.slow
def test_a_damaged_checkpoint_list_is_one_line(capsys, tmp_path, two_checkpoints):
    run = _copy_run(two_checkpoints, tmp_path)
    (run / "checkpoints" / "checkpoint").write_bytes(b"\xff\xfe not text")
    before = _digest(run)
    assert train.main(["--log-dir", str(run.parent), "--run", "r", "--resume", *QUICK]) == 2
    line = _last_error(capsys)
    assert line.startswith(f"error: {run / 'checkpoints' / 'checkpoint'}: unreadable checkpoint")
    assert _digest(run) == before
