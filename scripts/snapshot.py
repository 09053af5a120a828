"""Export a training checkpoint as a lean, generator-only snapshot (such as log/pretrained).

A training checkpoint also holds the discriminator and both Adam optimisers (three times the
generator's size again); inference needs only the generator and the run's ``config.json``. The
snapshot has the run layout, so ``eval.py --checkpoint DIR`` and ``serve.py`` read it as they
read any run::

    OUT/config.json                  the run's config, unchanged
    OUT/checkpoints/ckpt-<step>.*    tf.train.Checkpoint(generator=...)

OUT is assembled in a temporary folder beside it and renamed into place, so a failed export
never leaves a half-written snapshot, and an existing OUT is replaced only with --force.

Usage::

    python3 scripts/snapshot.py log/cpu --out log/pretrained
    python3 scripts/snapshot.py log/cpu/best --out log/pretrained --force   # the best by val SAD
    python3 scripts/snapshot.py log/cpu/checkpoints/ckpt-3000 --out /tmp/snapshot
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.checkpoints import CHECKPOINT_PREFIX, CheckpointError
from scripts.cli import ArgumentParser


def export_snapshot(checkpoint: str, out: Path, *, force: bool = False) -> Path:
    """Write the generator of ``checkpoint`` (a ``--checkpoint`` path) to ``out``.

    Returns the snapshot's checkpoint prefix, ``out/checkpoints/ckpt-<step>``.

    Raises
    ------
    CheckpointError
        No such checkpoint, an unusable one, or ``out`` exists and ``force`` is false.
    """
    import tensorflow as tf

    from model.inference import Matter

    out = Path(out)
    if out.exists() and not force:
        raise CheckpointError(f"{out}: already exists (use --force to replace it)")
    matter = Matter.load(checkpoint)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    # mkdtemp makes the folder private (0700); a snapshot is meant to be read by anyone.
    staging.chmod(0o755)
    try:
        shutil.copyfile(matter.ref.run_dir / "config.json", staging / "config.json")
        step = max(matter.ref.step, 0)
        # A manager (not Checkpoint.write) so the file carries save_counter like a run's does.
        tf.train.CheckpointManager(
            tf.train.Checkpoint(generator=matter.generator),
            staging / "checkpoints",
            max_to_keep=1,
            checkpoint_name=CHECKPOINT_PREFIX,
        ).save(checkpoint_number=step)
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out / "checkpoints" / f"{CHECKPOINT_PREFIX}-{step}"


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
