"""Find checkpoints on disk and resolve ``--checkpoint`` arguments.

Run layout (written by train.py, see DESIGN.md)::

    log/<run>/config.json                 architecture + training settings + seed
    log/<run>/checkpoints/ckpt-<step>.*   tf.train.CheckpointManager, numbered by step
    log/<run>/best/ckpt-<step>.*          the best checkpoint by validation SAD
    log/pretrained/                       the shipped snapshot, same layout

``--checkpoint`` accepts ``-1`` (newest), ``-2`` (the one before), ``N >= 0`` (saved at step
N) or a path (a run folder, its ``checkpoints/`` or ``best/`` folder, or a checkpoint prefix
such as ``log/run/checkpoints/ckpt-300``). Without an explicit run, the newest trained run
under the log folder is used, else ``log/pretrained``.

This module only reads file names and JSON at import, so a command can report a bad
checkpoint argument before it pays for importing TensorFlow; :func:`restore_checkpoint` and
:func:`restore_generator` import it when called.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.errors import first_line

PRETRAINED = "pretrained"
PRETRAINED_PLATE = "pretrained-plate"
"""The shipped plate-model snapshot, the default run for ``task="plate"``."""
PRETRAINED_PLATE_VIDEO = "pretrained-plate-video"
"""The shipped plate model with the previous-alpha input, which clips use before
``pretrained-plate`` (``default_run(..., video=True)``)."""
PRETRAINED_TRIMAP = "pretrained-trimap"
"""Where a trimap-network snapshot is shipped, the default run for ``task="trimap"``."""
SNAPSHOTS = {"matting": PRETRAINED, "plate": PRETRAINED_PLATE, "trimap": PRETRAINED_TRIMAP}
CHECKPOINT_PREFIX = "ckpt"
_INDEX = re.compile(rf"^{CHECKPOINT_PREFIX}-(\d+)\.index$")


class CheckpointError(ValueError):
    """A checkpoint argument that does not name a usable checkpoint."""


@dataclass(frozen=True)
class CheckpointRef:
    """One saved checkpoint: ``path`` is the prefix that ``tf.train.Checkpoint.restore`` takes."""

    path: Path
    run_dir: Path
    step: int

    @property
    def config(self) -> dict:
        return load_config(self.run_dir)


def load_config(run_dir: str | os.PathLike) -> dict:
    """The run's ``config.json`` as a dict; CheckpointError if missing or not JSON."""
    path = Path(run_dir) / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no config.json beside the checkpoints") from None
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: unreadable config ({error})") from None


def read_run_config(run_dir: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """The ``ModelConfig`` and the ``train`` section (with ``data``) of a run's ``config.json``.

    Raises
    ------
    CheckpointError
        Missing or unreadable file, no ``"model"`` section, or an invalid model config.
    """
    # Imported here: model.networks pulls in Keras, and this module must stay light.
    from model.networks.config import ModelConfig

    config = load_config(run_dir)
    config_path = Path(run_dir) / "config.json"
    section = config.get("model")
    if not isinstance(section, dict):
        raise CheckpointError(f'{config_path}: no "model" section describing the architecture')
    try:
        return ModelConfig.from_dict(section), dict(config.get("train", {}))
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{config_path}: invalid model config ({error})") from None


def restore_checkpoint(checkpoint: Any, path: str | os.PathLike, *, partial: bool, what: str):
    """Restore ``checkpoint`` (a ``tf.train.Checkpoint``) from ``path``, or fail on one line.

    Parameters
    ----------
    checkpoint : tf.train.Checkpoint
    path : str or path
        A checkpoint prefix such as ``log/run/checkpoints/ckpt-300``.
    partial : bool
        True when the file may hold more than ``checkpoint`` (a generator restored from a
        training checkpoint that also holds the discriminator and the optimisers).
    what : str
        What must match, for the message: "the architecture in log/run/config.json".

    Raises
    ------
    CheckpointError
        ``"<path>: the checkpoint does not match <what> (...)"`` or ``"<path>: unreadable
        checkpoint (...)"``. The caller should drop ``checkpoint`` and what it tracks: a failed
        restore leaves deferred values that TensorFlow logs when they are collected.
    """
    problem = status = None
    try:
        status = checkpoint.restore(str(path))
        if partial:
            status.expect_partial()
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError) as error:
        problem = f"the checkpoint does not match {what} ({first_line(error)})"
    except Exception as error:  # a damaged file surfaces as OpError, IndexError, OSError, ...
        problem = f"unreadable checkpoint ({first_line(error)})"
    if problem is not None:
        # The error's traceback keeps this frame alive: drop its references, so the caller can
        # collect the checkpoint (whose deferred values TensorFlow logs when it is collected).
        checkpoint = status = None
        raise CheckpointError(f"{path}: {problem}")


def restore_generator(ref: CheckpointRef, config) -> Any:
    """Build the generator and restore it, mapping every failure to a one-line CheckpointError."""
    import tensorflow as tf

    from model.networks import build_generator
    from model.tf_startup import start_runtime

    start_runtime()  # before the first variable: quietly, wherever the runtime logs its devices
    # The weights come from the checkpoint; never download ImageNet weights just to overwrite them.
    generator = build_generator(dataclasses.replace(config, encoder_weights=None))
    checkpoint = tf.train.Checkpoint(generator=generator)
    try:
        # The training checkpoint also holds the discriminator and optimizers; ignore them.
        what = f"the architecture in {ref.run_dir / 'config.json'}"
        restore_checkpoint(checkpoint, ref.path, partial=True, what=what)
    except CheckpointError:
        # A failed restore leaves deferred values behind, and TensorFlow logs them when the
        # objects are collected; drop them now, quietly, so the error stays one line.
        logger = tf.get_logger()
        level = logger.level
        logger.setLevel("ERROR")
        del checkpoint, generator
        gc.collect()
        logger.setLevel(level)
        raise
    return generator


def list_checkpoints(folder: str | os.PathLike, run_dir: str | os.PathLike | None = None):
    """Checkpoints in ``folder`` (one holding ``ckpt-<step>.index`` files), oldest step first."""
    folder = Path(folder)
    run_dir = Path(run_dir) if run_dir is not None else folder.parent
    found = []
    if folder.is_dir():
        for entry in folder.iterdir():
            match = _INDEX.match(entry.name)
            if match:
                step = int(match.group(1))
                found.append(CheckpointRef(folder / f"{CHECKPOINT_PREFIX}-{step}", run_dir, step))
    return sorted(found, key=lambda ref: ref.step)


def run_checkpoints(run_dir: str | os.PathLike):
    """The regular checkpoints of a run, oldest first."""
    return list_checkpoints(Path(run_dir) / "checkpoints", run_dir)


def run_task(run_dir: str | os.PathLike) -> str:
    """The run's ``ModelConfig.task`` from its config.json, after the version-1 migration
    (``model.networks.config.section_task``: an old "trimap" or absent task is "matting");
    "matting" for a run without a readable config.json."""
    from model.networks.config import section_task

    try:
        model = load_config(run_dir).get("model")
    except CheckpointError:
        return "matting"
    return section_task(model) if isinstance(model, dict) else "matting"


def trained_runs(log_dir: str | os.PathLike, task: str | None = None) -> list[Path]:
    """Runs under ``log_dir`` that hold at least one checkpoint, newest first.

    "Newest" is the modification time of the run's newest checkpoint index; the shipped
    snapshots (``pretrained``, ``pretrained-*``) are never counted as trained runs. With
    ``task``, only runs of that ``ModelConfig.task`` (see :func:`run_task`).
    """
    log_dir = Path(log_dir)
    if not log_dir.is_dir():
        return []
    runs = []
    for run_dir in log_dir.iterdir():
        if run_dir.name.startswith(PRETRAINED) or not run_dir.is_dir():
            continue
        if task is not None and run_task(run_dir) != task:
            continue
        refs = run_checkpoints(run_dir)
        if refs:
            newest = max(ref.path.with_suffix(".index").stat().st_mtime for ref in refs)
            runs.append((newest, run_dir))
    return [run_dir for _, run_dir in sorted(runs, reverse=True)]


def default_run(
    log_dir: str | os.PathLike = "log", task: str = "matting", *, video: bool = False
) -> Path:
    """The newest trained run of ``task`` under ``log_dir``, else its shipped snapshot
    (``log_dir/pretrained`` for the matting model, ``log_dir/pretrained-plate`` for plates,
    ``log_dir/pretrained-trimap`` for the trimap network; for a clip's plates (``video``)
    ``log_dir/pretrained-plate-video`` first, where it exists)."""
    runs = trained_runs(log_dir, task)
    if runs:
        return runs[0]
    if video and task == "plate" and run_checkpoints(Path(log_dir) / PRETRAINED_PLATE_VIDEO):
        return Path(log_dir) / PRETRAINED_PLATE_VIDEO
    name = SNAPSHOTS.get(task, PRETRAINED)
    pretrained = Path(log_dir) / name
    if run_checkpoints(pretrained):
        return pretrained
    command = "python3 train.py scripts/data" + (f" --task {task}" if task != "matting" else "")
    raise CheckpointError(
        f"{log_dir}: no checkpoint found (no trained {task} run and no {name}/ snapshot);"
        f" train one with: {command}"
    )


def _describe(refs) -> str:
    steps = ", ".join(str(ref.step) for ref in refs)
    return f"available steps: {steps}" if refs else "it holds no checkpoint"


def _from_path(path: Path) -> CheckpointRef:
    if path.with_name(path.name + ".index").exists():
        match = re.match(rf"^{CHECKPOINT_PREFIX}-(\d+)$", path.name)
        step = int(match.group(1)) if match else -1
        run_dir = path.parent.parent
        if not (run_dir / "config.json").exists():
            run_dir = path.parent
        return CheckpointRef(path, run_dir, step)
    if path.is_dir():
        refs = list_checkpoints(path) or run_checkpoints(path)
        if refs:
            return refs[-1]
        raise CheckpointError(f"{path}: no checkpoint in this folder")
    raise CheckpointError(f"{path}: no such checkpoint")


def resolve_checkpoint(
    spec: str | int = -1,
    log_dir: str | os.PathLike = "log",
    run_dir: str | os.PathLike | None = None,
    task: str = "matting",
    *,
    video: bool = False,
) -> CheckpointRef:
    """Turn a ``--checkpoint`` argument into a checkpoint on disk.

    Parameters
    ----------
    spec : str or int
        ``-1`` newest, ``-k`` the k-th newest, ``N >= 0`` the one saved at step N, or a path.
    log_dir : path
        Where runs live; used when ``run_dir`` is not given.
    run_dir : path, optional
        Look only in this run.
    task : {"matting", "plate", "trimap"}
        Without ``run_dir``, numbers index the newest run of this task (:func:`default_run`).
    video : bool
        For a clip: see :func:`default_run`.

    Raises
    ------
    CheckpointError
        Nothing matches; the message lists what is available.
    """
    text = str(spec).strip()
    if not re.fullmatch(r"-?\d+", text):
        return _from_path(Path(text))
    index = int(text)
    run = Path(run_dir) if run_dir is not None else default_run(log_dir, task, video=video)
    refs = run_checkpoints(run)
    if not refs:
        raise CheckpointError(f"{run}: no checkpoint in this run")
    if index < 0:
        if -index > len(refs):
            raise CheckpointError(
                f"{run}: checkpoint {index} does not exist, there are only {len(refs)};"
                f" {_describe(refs)}"
            )
        return refs[index]
    for ref in refs:
        if ref.step == index:
            return ref
    raise CheckpointError(f"{run}: no checkpoint saved at step {index}; {_describe(refs)}")
