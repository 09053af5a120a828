"""Export a training checkpoint as a lean, generator-only snapshot (such as log/pretrained).

A training checkpoint also holds the discriminator and both Adam optimisers (three times the
generator's size again); inference needs only the generator and the run's ``config.json``. The
snapshot has the run layout, so ``eval.py --checkpoint DIR`` and ``serve.py`` read it as they
read any run::

    OUT/config.json                  the run's config, unchanged
    OUT/checkpoints/ckpt-<step>.*    tf.train.Checkpoint(generator=...)

OUT is assembled in a temporary folder beside it and renamed into place, so a failed export
never leaves a half-written snapshot, and an existing OUT is replaced only with --force
(``model/snapshot.py`` does the work).

Usage::

    python3 scripts/snapshot.py log/cpu --out log/pretrained
    python3 scripts/snapshot.py log/cpu/best --out log/pretrained --force   # the best by val SAD
    python3 scripts/snapshot.py log/cpu/checkpoints/ckpt-3000 --out /tmp/snapshot
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import sys
from pathlib import Path

from model.checkpoints import CheckpointError
from model.cli import ArgumentParser
from model.snapshot import export_snapshot


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description="Export a checkpoint's generator as a lean snapshot.")
    parser.add_argument(
        "checkpoint",
        help="a run folder (its newest checkpoint), its best/ folder, or a checkpoint prefix",
    )
    parser.add_argument("--out", type=Path, required=True, help="snapshot folder to write")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    return parser


def main(args) -> int:
    try:
        prefix = export_snapshot(args.checkpoint, args.out, force=args.force)
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    size = sum(path.stat().st_size for path in args.out.rglob("*") if path.is_file())
    print(f"snapshot: {prefix} ({size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
