"""Which runtime runs a checkpoint: TensorFlow, or onnxruntime on the run's own ONNX export.

A run folder may hold an export of its checkpoint beside it, ``model.onnx`` with its contract
``model.onnx.json`` (the shipped snapshot ``log/pretrained`` does; see its README). The
contract's ``source.sha256`` is :func:`checkpoint_digest` of the checkpoint it was exported
from, so an export left behind by an older checkpoint is recognised as stale. The engine:

* ``auto`` (the default): the export when it matches the resolved checkpoint and onnxruntime is
  installed, so the command starts without importing TensorFlow (seconds: issue 17); otherwise
  TensorFlow, after a one-line notice if the export is stale or unreadable. Also TensorFlow
  when it can use an NVIDIA GPU that onnxruntime cannot (no ``CUDAExecutionProvider``).
* ``tensorflow``: always TensorFlow; onnxruntime is never imported.
* ``onnx``: the export, or a one-line CheckpointError saying why not.

An ``.onnx`` file given as the checkpoint always runs on onnxruntime (``tensorflow`` refuses it).

This module imports only the standard library and ``model.checkpoints`` at import time;
TensorFlow and onnxruntime are imported by the route that is taken.

Example
-------
>>> generator, config, ref = load_generator("-1", "log")        # what Matter.load runs
>>> describe(Matter(generator, config, ref))                     # for start lines
'log/pretrained/model.onnx (step 1100), onnxruntime on CPU'
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from model.checkpoints import (
    CheckpointError,
    CheckpointRef,
    read_run_config,
    resolve_checkpoint,
)

ENGINES = ("auto", "tensorflow", "onnx")
EXPORT_NAME = "model.onnx"
"""A run's own ONNX export, beside its config.json."""

TASK_MISMATCH = {
    ("matting", "plate"): "{run}: a plate model; it takes --background-plate, not a trimap",
    ("matting", "trimap"): "{run}: a trimap network, not a matting model; pass it as"
    " --trimap-model",
}
"""One-line refusals of a checkpoint of the wrong task, by (task asked for, task found)."""


def _mismatch(task: str, found: str, run) -> CheckpointError:
    message = TASK_MISMATCH.get(
        (task, found),
        "{run}: a {found} model; a plate needs a plate model"
        " (python3 train.py scripts/data --task plate)"
        if task == "plate"
        else "{run}: a {found} model, not a {task} model",
    )
    return CheckpointError(message.format(run=run, found=found, task=task))


def checkpoint_files(prefix: str | os.PathLike) -> list[Path]:
    """The files of the checkpoint at ``prefix``: its ``.index``, then its data shards by name."""
    prefix = Path(prefix)
    shards = sorted(prefix.parent.glob(f"{prefix.name}.data-*"))
    return [prefix.with_name(f"{prefix.name}.index"), *shards]


def checkpoint_digest(prefix: str | os.PathLike) -> str:
    """SHA-256 (hex) of the checkpoint's bytes: the index file, then each data shard by name.

    Only the contents count, so a copied or renamed checkpoint keeps its digest (about 10 ms
    for the shipped 16.6 MB snapshot).

    Raises
    ------
    CheckpointError
        A file of the checkpoint cannot be read.
    """
    digest = hashlib.sha256()
    for path in checkpoint_files(prefix):
        try:
            with open(path, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
        except OSError as error:
            raise CheckpointError(f"{path}: unreadable checkpoint ({error.strerror})") from None
    return digest.hexdigest()


def export_command(ref: CheckpointRef) -> str:
    """The command that (re-)exports ``ref`` as its run's ``model.onnx``."""
    return (
        f"python3 scripts/export.py --checkpoint {ref.path} --format onnx --fp16"
        f" --out {ref.run_dir / EXPORT_NAME} --force"
    )


def export_problem(ref: CheckpointRef) -> str | None:
    """Why the run's ``model.onnx`` cannot stand in for checkpoint ``ref``; None if it can."""
    from model.export_contract import ContractError, contract_path, read_contract

    export = ref.run_dir / EXPORT_NAME
    if not export.is_file():
        return f"{ref.run_dir}: no {EXPORT_NAME} export of the checkpoint"
    try:
        contract = read_contract(export, "onnx")
    except ContractError as error:
        return str(error)
    source = contract.get("source")
    recorded = source.get("sha256") if isinstance(source, dict) else None
    if not isinstance(recorded, str):
        return f"{contract_path(export)}: records no sha256 of the checkpoint it came from"
    if recorded != checkpoint_digest(ref.path):
        return f"{export}: exported from another checkpoint than {ref.path} (sha256 differs)"
    return None


def gpu_for_tensorflow() -> bool:
    """Whether TensorFlow could run on an NVIDIA GPU here, judged without importing it.

    A GPU is visible to the driver (``/proc/driver/nvidia/gpus``), ``CUDA_VISIBLE_DEVICES``
    does not hide it, and the installed TensorFlow is a GPU build (``tensorflow``, not
    ``tensorflow-cpu``).
    """
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and hidden.strip() in ("", "-1"):
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    if not gpus.is_dir() or not any(gpus.iterdir()):
        return False
    try:
        importlib.metadata.distribution("tensorflow")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def onnx_gpu() -> bool:
    """Whether the installed onnxruntime has a CUDA execution provider."""
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def _stderr_notice(message: str) -> None:
    print(f"notice: {message}", file=sys.stderr)


def choose_export(
    ref: CheckpointRef,
    engine: str = "auto",
    notice: Callable[[str], None] = _stderr_notice,
) -> Path | None:
    """The ONNX export to run in place of checkpoint ``ref``, or None for TensorFlow.

    Raises
    ------
    CheckpointError
        ``engine="onnx"`` and no usable export (or no onnxruntime): one line saying why and
        how to make one.
    ValueError
        An unknown ``engine``.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "tensorflow":
        return None
    export = ref.run_dir / EXPORT_NAME
    if engine == "auto" and not export.exists():
        return None  # a trained run without an export: nothing to mention
    problem = export_problem(ref)
    if problem is None and importlib.util.find_spec("onnxruntime") is None:
        if engine == "auto":
            return None  # e.g. the GPU install, which leaves onnxruntime out on purpose
        problem = "onnxruntime is not installed (pip install onnxruntime)"
    if problem is not None:
        if engine == "onnx":
            raise CheckpointError(f"--engine onnx: {problem}; export it: {export_command(ref)}")
        notice(f"{problem}, so TensorFlow runs it; re-export: {export_command(ref)}")
        return None
    if engine == "auto" and gpu_for_tensorflow() and not onnx_gpu():
        return None
    return export


def load_generator(
    checkpoint: str | int = "-1",
    log_dir: str | os.PathLike = "log",
    *,
    engine: str = "auto",
    task: str = "matting",
    video: bool = False,
    notice: Callable[[str], None] = _stderr_notice,
) -> tuple[Any, Any, CheckpointRef]:
    """``(generator, ModelConfig, CheckpointRef)`` for ``model.inference.Matter``.

    ``checkpoint`` is resolved as ``model.checkpoints.resolve_checkpoint`` does (numbers
    index the newest run of ``task``; ``video`` prefers the shipped plate model with the
    previous-alpha input); a path ending in ``.onnx`` is an export run by
    onnxruntime. Otherwise :func:`choose_export` picks onnxruntime (the generator is a
    ``model.onnx_runner.OnnxGenerator`` and the ref names the ``.onnx`` file, with the step of
    its checkpoint) or TensorFlow (a restored Keras generator).

    Raises
    ------
    CheckpointError
        No such checkpoint, a model of the other ``task``, an unusable checkpoint or export,
        or an engine that cannot run it; one line naming the file.
    """
    if str(checkpoint).lower().endswith(".onnx"):
        if engine == "tensorflow":
            raise CheckpointError(
                f"{checkpoint}: an ONNX export runs on onnxruntime; --engine tensorflow takes"
                " a checkpoint"
            )
        generator, config, ref = _load_onnx(checkpoint)
        if config.task != task:
            raise _mismatch(task, config.task, checkpoint)
        return generator, config, ref
    ref = resolve_checkpoint(checkpoint, log_dir, task=task, video=video)
    config, _ = read_run_config(ref.run_dir)
    if config.task != task:
        raise _mismatch(task, config.task, ref.run_dir)
    export = choose_export(ref, engine, notice)
    if export is not None:
        return _load_onnx(export)
    from model.checkpoints import restore_generator

    return restore_generator(ref, config), config, ref


def _load_onnx(path: str | os.PathLike) -> tuple[Any, Any, CheckpointRef]:
    try:
        from model.onnx_runner import load_for_matting
    except ModuleNotFoundError as error:
        raise CheckpointError(
            f"{path}: running an .onnx model needs {error.name}: pip install onnxruntime"
        ) from None
    return load_for_matting(path)


def describe(matter) -> str:
    """``"<checkpoint> (step N), <engine> on <device>"``: what runs, for start lines."""
    ref = matter.ref
    where = f"{ref.path} (step {ref.step})" if ref is not None else "untrained generator"
    return f"{where}, {matter.engine} on {matter.device}"
