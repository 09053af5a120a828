"""From ``train.py``'s parsed flags to a run: a new one or a resumed one, with its model config,
settings, dataset folder and the checkpoint to resume from.

A new run takes every flag; a resumed run keeps its architecture and its saved settings, and
only the flags given on the command line (``explicit``) override them. Mistakes that would only
show after the start (a model flag that differs from the run's, a crop size the model cannot
take, a dataset folder without the splits training reads) raise a one-line error first.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import NamedTuple

from model.checkpoints import (
    CheckpointRef,
    read_run_config,
    resolve_checkpoint,
    run_checkpoints,
)
from model.dataset import list_samples
from model.networks import ModelConfig
from model.training.settings import (
    RunError,
    TrainSettings,
    new_run_name,
    resume_target,
    start_run,
)
from model.trimap_data import find_pairs, has_split

MODEL_FLAGS = {
    "encoder": "encoder",
    "base_filters": "base_filters",
    "depth": "depth",
    "norm": "norm",
    "disc_filters": "disc_filters",
    "disc_layers": "disc_layers",
    "encoder_weights": "encoder_weights",
    "prior": "prior",
    "task": "task",
}
"""argparse dest -> ModelConfig field."""

SETTING_FIELDS = {field.name for field in dataclasses.fields(TrainSettings)}


class RunPlan(NamedTuple):
    """A resolved run; ``ref`` is the checkpoint to resume from, None for a new run."""

    data: Path
    run_dir: Path
    cfg: ModelConfig
    settings: TrainSettings
    ref: CheckpointRef | None


def model_config(opts: argparse.Namespace) -> ModelConfig:
    """The ModelConfig the flags describe ("none" for no encoder weights or no prior)."""
    values = {field: getattr(opts, dest) for dest, field in MODEL_FLAGS.items()}
    for field in ("encoder_weights", "prior"):
        if values[field] == "none":
            values[field] = None
    return ModelConfig(**values)


def flag_settings(opts: argparse.Namespace, keys) -> dict:
    """The TrainSettings fields among ``keys``, with their values in ``opts``."""
    return {key: getattr(opts, key) for key in keys if key in SETTING_FIELDS}


def plan_run(opts: argparse.Namespace, explicit: set[str]) -> RunPlan:
    """Resolve the run from the flags; ``explicit`` names the dests the command line set.

    Nothing is written (``start_run(..., write=False)``). Raises RunError or CheckpointError,
    each with a one-line message.
    """
    log_dir = Path(opts.log_dir)
    if opts.resume:
        plan = _resumed_run(opts, explicit, log_dir)
    else:
        plan = _new_run(opts, explicit, log_dir)
    settings, cfg = plan.settings, plan.cfg
    if settings.crop_size % cfg.multiple:
        raise RunError(
            f"--crop-size {settings.crop_size}: must be a multiple of {cfg.multiple}"
            f" for this model ({cfg.encoder}, depth {cfg.depth})"
        )
    if settings.lap_weight and settings.crop_size % 16:
        raise RunError(f"--crop-size {settings.crop_size}: --lap-weight needs a multiple of 16")
    return plan


def _new_run(opts: argparse.Namespace, explicit: set[str], log_dir: Path) -> RunPlan:
    if explicit & {"checkpoint"}:
        raise RunError("--checkpoint: only with --resume")
    cfg = model_config(opts)
    values = flag_settings(opts, vars(opts))
    if opts.init_from is not None:
        values["init_from"] = str(resolve_checkpoint(opts.init_from, log_dir).path)
    settings = TrainSettings(**values)
    if settings.distribute == "multiworker" and opts.run is None:
        raise RunError("--distribute multiworker: pass --run NAME so every worker agrees")
    name = opts.run or new_run_name(log_dir)
    data = Path(opts.data or "scripts/data")
    run_dir = start_run(log_dir, name, cfg, settings, data, write=False)
    return RunPlan(data, run_dir, cfg, settings, None)


def _resumed_run(opts: argparse.Namespace, explicit: set[str], log_dir: Path) -> RunPlan:
    if "init_from" in explicit:
        raise RunError("--init-from: only for a new run (--resume restores the whole state)")
    run_dir = resume_target(log_dir, opts.run)
    cfg, saved = read_run_config(run_dir)
    asked = model_config(opts)
    for dest, field in MODEL_FLAGS.items():
        if dest in explicit and getattr(asked, field) != getattr(cfg, field):
            raise RunError(
                f"{run_dir}: --{dest.replace('_', '-')} {getattr(asked, field)} differs from the"
                f" run's {getattr(cfg, field)}; a resumed run keeps its architecture"
                " (use --run NAME to train a new one)"
            )
    values = {**TrainSettings.from_dict(saved).to_dict(), **flag_settings(opts, explicit)}
    if "steps" in explicit:
        values["steps"] = opts.steps
    elif "epochs" in explicit:
        values["steps"] = None
    if values["mixed_precision"] != saved.get("mixed_precision", values["mixed_precision"]):
        raise RunError(
            f"{run_dir}: --mixed-precision cannot change on resume (its optimiser state differs)"
        )
    settings = TrainSettings(**values)
    data = Path(opts.data or saved.get("data") or "scripts/data")
    ref = resolve_checkpoint(opts.checkpoint, log_dir, run_dir=run_dir)
    return RunPlan(data, run_dir, cfg, settings, ref)


def check_data(data: Path, settings: TrainSettings, cfg: ModelConfig) -> None:
    """Fail early, with the dataset's own one-line message, on a bad folder or split."""
    if cfg.task == "trimap":
        find_pairs(data, "train")
        if settings.val_every and settings.max_val_samples and not has_split(data, "val"):
            print(f"notice: {data}: no val split; training without validation", file=sys.stderr)
        return
    prior = cfg.prior is not None
    list_samples(data, "train", prior=prior)
    if (settings.val_every and settings.max_val_samples) or (
        settings.image_every and settings.image_samples
    ):
        list_samples(data, "val", prior=prior)


def older_checkpoint_hint(ref: CheckpointRef) -> str:
    """How to resume from the checkpoint before ``ref``, which could not be restored."""
    refs = run_checkpoints(ref.run_dir)
    older = [index for index, other in enumerate(refs) if other.step < ref.step]
    if not older:
        return "; the run has no older checkpoint to resume from"
    return f"; resume from the one before it with --checkpoint {older[-1] - len(refs)}"
