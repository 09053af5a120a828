"""Fine-tune a plate model for video: feed it the previous frame's alpha (issue 16, item 3).

Starts from a still plate model (default ``log/pretrained-plate``), adds the previous-alpha
input channel with zero weights, and trains on 4-8-frame clips made from a combine.py split's
still composites moving along smooth random paths (``model/plate_clips.py``), each frame fed
the network's own previous prediction (``model/training/temporal_plate.py``). The run folder
has the usual layout (``config.json``, ``checkpoints/ckpt-N``), so ``eval.py --checkpoint RUN``
and ``scripts/snapshot.py`` read it.

Usage::

    python3 scripts/train_temporal_plate.py scripts/data --run plate-temporal
    python3 scripts/train_temporal_plate.py scripts/data --run t --steps 300 --max-minutes 30
    python3 scripts/train_temporal_plate.py scripts/data --run t --init-from log/plate-cpu/best
    python3 scripts/train_temporal_plate.py scripts/data --run t2 --init-from log/t   # continue
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import sys
from pathlib import Path

from model.checkpoints import CheckpointError
from model.cli import ArgumentParser, fraction, positive_int
from model.dataset import DatasetError

DEFAULT_INIT = "log/pretrained-plate"


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="a combine.py folder with train/{fg,alpha,bg}/")
    run = parser.add_argument_group("run")
    run.add_argument("--run", required=True, help="run name: writes LOG_DIR/RUN")
    run.add_argument("--log-dir", type=Path, default=Path("log"), help="runs folder (log)")
    run.add_argument(
        "--init-from", default=DEFAULT_INIT, help=f"still plate model ({DEFAULT_INIT})"
    )
    run.add_argument("--steps", type=positive_int, default=400, help="steps (400)")
    run.add_argument("--max-minutes", type=float, default=0.0, help="wall-time limit (0: none)")
    run.add_argument("--save-every", type=positive_int, default=50, help="checkpoint period (50)")
    run.add_argument("--seed", type=int, default=0, help="seed (0)")
    clips = parser.add_argument_group("clips")
    clips.add_argument("--crop", type=positive_int, default=128, help="frame side in px (128)")
    clips.add_argument("--frames", type=positive_int, default=4, help="frames per clip (4)")
    clips.add_argument("--batch-size", type=positive_int, default=4, help="clips per step (4)")
    optimiser = parser.add_argument_group("optimisation")
    optimiser.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (1e-4)")
    optimiser.add_argument(
        "--temporal-weight", type=float, default=1.0, help="weight of the temporal loss (1)"
    )
    optimiser.add_argument(
        "--drop", type=fraction, default=0.15, help="chance a frame gets no previous alpha (0.15)"
    )
    return parser


def main(args) -> int:
    from model.checkpoints import read_run_config, resolve_checkpoint
    from model.inference import restore_generator
    from model.plate_clips import ClipSampler
    from model.training.temporal_plate import (
        TemporalSettings,
        build_temporal_generator,
        train_temporal,
    )

    run_dir = args.log_dir / args.run
    if run_dir.exists():
        print(f"error: {run_dir}: already exists (choose another --run)", file=sys.stderr)
        return 2
    if args.frames < 2:
        print(f"error: --frames {args.frames}: a clip needs at least 2 frames", file=sys.stderr)
        return 2
    try:
        sampler = ClipSampler(
            args.data, "train", crop=args.crop, frames=args.frames, seed=args.seed
        )
        ref = resolve_checkpoint(args.init_from, args.log_dir, task="plate")
        still_config, _ = read_run_config(ref.run_dir)
        if still_config.task != "plate":
            raise CheckpointError(f"{ref.run_dir}: not a plate model (--init-from)")
        generator, config = build_temporal_generator(
            restore_generator(ref, still_config), still_config
        )
    except (DatasetError, CheckpointError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    settings = TemporalSettings(
        data=str(args.data),
        init_from=str(ref.path),
        crop=args.crop,
        frames=args.frames,
        batch_size=args.batch_size,
        steps=args.steps,
        lr=args.lr,
        temporal_weight=args.temporal_weight,
        drop=args.drop,
        seed=args.seed,
        save_every=args.save_every,
        max_minutes=args.max_minutes,
    )
    steps = train_temporal(generator, config, settings, sampler, run_dir)
    print(f"trained {steps} steps; checkpoints in {run_dir / 'checkpoints'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
