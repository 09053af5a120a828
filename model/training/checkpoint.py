"""A run's checkpoint: generator, discriminator, both optimisers and the step, latest and best."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from model.checkpoints import (
    CHECKPOINT_PREFIX,
    CheckpointError,
    restore_checkpoint,
)
from model.errors import first_line


class RunCheckpoint:
    """Everything needed to resume: G, D, both optimisers and the global step (a model without
    a discriminator, the trimap network's trainer, has just G, its optimiser and the step).

    Regular checkpoints go to ``run_dir/checkpoints/ckpt-<step>`` (``keep`` of them), the best
    one by validation SAD to ``run_dir/best/ckpt-<step>``. On a non-chief worker of a
    multi-worker run both go to a private temporary folder that :meth:`close` deletes: every
    worker must take part in a save, but only the chief's files are kept.

    Parameters
    ----------
    model : MattingGAN or TrimapTrainer
        Compiled, with its optimisers built.
    run_dir : path
    keep : int
    chief : bool
    """

    def __init__(self, model, run_dir: Path, *, keep: int, chief: bool = True):
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        parts = {"generator": model.generator, "g_optimizer": model.g_optimizer}
        if getattr(model, "discriminator", None) is not None:
            parts.update(discriminator=model.discriminator, d_optimizer=model.d_optimizer)
        self.checkpoint = tf.train.Checkpoint(**parts, step=self.step)
        self.run_dir = Path(run_dir)
        self._temp = None if chief else Path(tempfile.mkdtemp(prefix="matting-worker-"))
        root = self.run_dir if chief else self._temp
        self.manager = _manager(self.checkpoint, root / "checkpoints", keep)
        self.best_manager = _manager(self.checkpoint, root / "best", 1)
        self.best_dir = root / "best"
        self._last_saved: int | None = None

    @property
    def current_step(self) -> int:
        return int(self.step.numpy())

    def save(self) -> Path | None:
        """Save at the current step (once per step); returns the checkpoint prefix."""
        step = self.current_step
        if step == self._last_saved:
            return Path(self.manager.latest_checkpoint) if self.manager.latest_checkpoint else None
        path = self.manager.save(checkpoint_number=step)
        self._last_saved = step
        return Path(path)

    def save_best(self) -> Path:
        """Save the current state as the best checkpoint (replacing the previous best)."""
        return Path(self.best_manager.save(checkpoint_number=self.current_step))

    def restore(self, path: str | os.PathLike) -> int:
        """Load ``path`` (a checkpoint prefix) into the model, optimisers and step.

        Returns
        -------
        int
            The restored step.

        Raises
        ------
        CheckpointError
            The checkpoint does not fit this architecture or cannot be read.
        """
        restore_checkpoint(self.checkpoint, path, partial=False, what="this model and optimisers")
        self._last_saved = self.current_step
        return self.current_step

    def close(self) -> None:
        if self._temp is not None:
            shutil.rmtree(self._temp, ignore_errors=True)


def _manager(checkpoint: tf.train.Checkpoint, folder: Path, keep: int):
    """A CheckpointManager over ``folder``; CheckpointError if its state file is damaged."""
    try:
        return tf.train.CheckpointManager(
            checkpoint, str(folder), keep, checkpoint_name=CHECKPOINT_PREFIX
        )
    except (UnicodeDecodeError, OSError, ValueError, tf.errors.OpError) as error:
        # The manager reads the list of kept checkpoints from this text file, which only
        # decides which old ones it deletes; --checkpoint finds checkpoints by their files.
        state = folder / "checkpoint"
        raise CheckpointError(
            f"{state}: unreadable checkpoint list ({first_line(error)}); delete this file, the"
            " checkpoints themselves are kept"
        ) from None
