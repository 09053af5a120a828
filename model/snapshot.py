"""Export a training checkpoint as a lean, generator-only snapshot (such as log/pretrained).

A training checkpoint also holds the discriminator and both Adam optimisers (three times the
generator's size again); inference needs only the generator and the run's ``config.json``. The
snapshot has the run layout, so ``eval.py --checkpoint DIR`` and ``serve.py`` read it as they
read any run::

    OUT/config.json                  the run's config, unchanged
    OUT/checkpoints/ckpt-<step>.*    tf.train.Checkpoint(generator=...)

OUT is assembled in a temporary folder beside it and renamed into place, so a failed export
never leaves a half-written snapshot, and an existing OUT is replaced only with ``force``.
``scripts/snapshot.py`` is the command line.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from model.checkpoints import (
    CHECKPOINT_PREFIX,
    CheckpointError,
    read_run_config,
    resolve_checkpoint,
    restore_generator,
)


def export_snapshot(checkpoint: str, out: Path, *, force: bool = False) -> Path:
    """Write the generator of ``checkpoint`` (a ``--checkpoint`` path) to ``out``.

    Returns the snapshot's checkpoint prefix, ``out/checkpoints/ckpt-<step>``.

    Raises
    ------
    CheckpointError
        No such checkpoint, an unusable one, or ``out`` exists and ``force`` is false.
    """
    import tensorflow as tf

    out = Path(out)
    if out.exists() and not force:
        raise CheckpointError(f"{out}: already exists (use --force to replace it)")
    # Any task's network (matting, plate or trimap): the run's config.json says which to build.
    ref = resolve_checkpoint(checkpoint)
    generator = restore_generator(ref, read_run_config(ref.run_dir)[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    # mkdtemp makes the folder private (0700); a snapshot is meant to be read by anyone.
    staging.chmod(0o755)
    try:
        shutil.copyfile(ref.run_dir / "config.json", staging / "config.json")
        step = max(ref.step, 0)
        # A manager (not Checkpoint.write) so the file carries save_counter like a run's does.
        tf.train.CheckpointManager(
            tf.train.Checkpoint(generator=generator),
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
