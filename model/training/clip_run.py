"""``train.py DATA --task plate --clips``: the plate model's fine-tune on clips, from the flags.

train.py hands its parsed flags here; :func:`run_clip_training` checks them, builds the
seven-channel generator from a still plate model (``--init-from``, by default the shipped
``log/pretrained-plate``) and runs ``model.training.temporal_plate.train_temporal``. Flags the
user did not give take this mode's own defaults (:data:`CLIP_DEFAULTS`), which suit short
clips of small frames better than train.py's defaults for still crops.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from model.checkpoints import (
    CheckpointError,
    read_run_config,
    resolve_checkpoint,
    restore_generator,
)
from model.dataset import DatasetError
from model.training.settings import new_run_name
from model.training.temporal_plate import (
    TemporalSettings,
    build_temporal_generator,
    train_temporal,
)

DEFAULT_INIT = "log/pretrained-plate"
"""The still plate model a clip fine-tune starts from unless ``--init-from`` says otherwise."""

CLIP_DEFAULTS = {"crop_size": 128, "batch_size": 4, "lr": 1e-4, "save_every": 50, "steps": 400}
"""train.py dest -> value used in clip mode when the flag was not given."""


def _flag(opts: argparse.Namespace, explicit: set[str], dest: str):
    return getattr(opts, dest) if dest in explicit else CLIP_DEFAULTS[dest]


def run_clip_training(opts: argparse.Namespace, explicit: set[str]) -> int:
    """Run the clip fine-tune train.py's ``opts`` describe; returns the exit status.

    Bad flags, data or checkpoints get one line on stderr and status 2, before anything is
    written.
    """
    from model.plate_clips import ClipSampler  # after the flags are known to be usable

    if opts.resume:
        print("error: --clips: a clip fine-tune does not resume; start a new --run from"
              " the last one with --init-from", file=sys.stderr)  # fmt: skip
        return 2
    if opts.clip_frames < 2:
        print(f"error: --clip-frames {opts.clip_frames}: a clip needs at least 2 frames",
              file=sys.stderr)  # fmt: skip
        return 2
    log_dir = Path(opts.log_dir)
    run_dir = log_dir / (opts.run or new_run_name(log_dir))
    if run_dir.exists():
        print(f"error: {run_dir}: already exists (choose another --run)", file=sys.stderr)
        return 2
    data = Path(opts.data or "scripts/data")
    crop = _flag(opts, explicit, "crop_size")
    try:
        sampler = ClipSampler(data, "train", crop=crop, frames=opts.clip_frames, seed=opts.seed)
        ref = resolve_checkpoint(opts.init_from or DEFAULT_INIT, log_dir, task="plate")
        still_config, _ = read_run_config(ref.run_dir)
        if still_config.task != "plate":
            raise CheckpointError(f"{ref.run_dir}: not a plate model (--init-from)")
        generator, config = build_temporal_generator(
            restore_generator(ref, still_config), still_config
        )
        settings = TemporalSettings(
            data=str(data),
            init_from=str(ref.path),
            crop=crop,
            frames=opts.clip_frames,
            batch_size=_flag(opts, explicit, "batch_size"),
            steps=_flag(opts, explicit, "steps"),
            lr=_flag(opts, explicit, "lr"),
            temporal_weight=opts.temporal_weight,
            drop=opts.previous_drop,
            seed=opts.seed,
            save_every=_flag(opts, explicit, "save_every"),
            max_minutes=opts.max_minutes,
        )
    except (DatasetError, CheckpointError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    steps = train_temporal(generator, config, settings, sampler, run_dir)
    print(f"trained {steps} steps; checkpoints in {run_dir / 'checkpoints'}")
    return 0
