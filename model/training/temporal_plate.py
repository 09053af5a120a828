"""Fine-tune a plate generator on short clips, feeding it its own previous alpha.

The network is ``model.networks.plate`` with ``previous_alpha`` (a seventh input channel),
warm-started from a still plate model with ``model.training.gan.warm_start``: the new channel's
weights start at zero, so at step 0 it computes exactly what the still model computes.

Each step draws a batch of clips (``model.plate_clips.ClipSampler``) and unrolls the network
over their T frames, as it runs in ``model.video_matting``:

* frame 0 gets an all-zero previous alpha (what inference feeds a first frame);
* frame t > 0 gets the network's own prediction for frame t-1, with the gradient stopped (the
  previous alpha is an input, as at inference), so it learns to use it without trusting it
  blindly: its own errors are what it is fed; with probability ``drop`` per clip and frame the
  previous alpha is zeroed instead, so it keeps working without one.

The loss, averaged over frames (RobustVideoMatting's losses without its segmentation term):

.. math::

    L = \\overline{|\\alpha_t - \\alpha^*_t|}
      + \\overline{|\\alpha_t F_t + (1 - \\alpha_t) B - I_t|}
      + w \\, \\overline{|(\\alpha_t - \\alpha_{t-1}) - (\\alpha^*_t - \\alpha^*_{t-1})|}

Batch normalisation runs in inference mode (its statistics are the still model's; batches of
a few small clips would only add noise to them). No discriminator: a short fine-tune of an
adversarially trained model with L1 losses. ``train.py DATA --task plate --clips``
(``model.training.clip_run``) is the command.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from model.checkpoints import CHECKPOINT_PREFIX
from model.images import atomic_path
from model.networks import build_generator
from model.networks.config import ModelConfig
from model.training.gan import make_optimizer, warm_start


@dataclass(frozen=True)
class TemporalSettings:
    """Hyper-parameters of a temporal fine-tune; stored in the run's ``config.json``."""

    data: str
    init_from: str
    crop: int = 128
    frames: int = 4
    batch_size: int = 4
    steps: int = 400
    lr: float = 1e-4
    temporal_weight: float = 1.0
    drop: float = 0.15
    seed: int = 0
    save_every: int = 50
    max_minutes: float = 0.0
    """Stop (and save) after this many minutes of wall time; 0: no limit."""


def temporal_config(still: ModelConfig) -> ModelConfig:
    """The still plate model's architecture with the previous-alpha channel (a temporal
    model's own, to continue training it)."""
    if still.task != "plate":
        raise ValueError(f"a temporal fine-tune starts from a plate model, not a {still.task} one")
    return dataclasses.replace(still, previous_alpha=True, encoder_weights=None)


def build_temporal_generator(still_generator, still_config: ModelConfig):
    """(generator, config): the seven-channel plate generator, warm-started from the still one."""
    config = temporal_config(still_config)
    generator = build_generator(config)
    warm_start(generator, still_generator)
    return generator, config


def unrolled_losses(
    generator, batch: dict[str, tf.Tensor], keep: tf.Tensor, temporal_weight: float
) -> dict[str, tf.Tensor]:
    """Run ``generator`` over the clips' frames in order, each fed the previous prediction.

    Parameters
    ----------
    generator : keras.Model
        (B, S, S, 7) -> (B, S, S, 1).
    batch : dict of float32 tensors
        ``model.plate_clips.ClipSampler.batch``'s: image, fg (B, T, S, S, 3); alpha
        (B, T, S, S, 1); bg, plate (B, S, S, 3).
    keep : float32 tensor, shape (B, T)
        1 where frame t gets the previous prediction, 0 where it gets zeros (frame 0 always).
    temporal_weight : float

    Returns
    -------
    dict of scalar tensors: ``alpha``, ``comp``, ``temporal`` (means over frames) and
    ``total``.
    """
    image, alpha, fg = batch["image"], batch["alpha"], batch["fg"]
    bg, plate = batch["bg"], batch["plate"]
    frames = image.shape[1]
    previous = tf.zeros_like(alpha[:, 0])
    predictions = []
    for t in range(frames):
        fed = tf.stop_gradient(previous) * keep[:, t, None, None, None]
        inputs = tf.concat([image[:, t], plate, fed], axis=-1)
        prediction = generator(inputs, training=False)
        predictions.append(prediction)
        previous = prediction
    predicted = tf.stack(predictions, axis=1)  # (B, T, S, S, 1)
    alpha_loss = tf.reduce_mean(tf.abs(predicted - alpha))
    recomposed = predicted * fg + (1.0 - predicted) * bg[:, None]
    comp_loss = tf.reduce_mean(tf.abs(recomposed - image))
    change = (predicted[:, 1:] - predicted[:, :-1]) - (alpha[:, 1:] - alpha[:, :-1])
    temporal_loss = tf.reduce_mean(tf.abs(change))
    total = alpha_loss + comp_loss + temporal_weight * temporal_loss
    return {"total": total, "alpha": alpha_loss, "comp": comp_loss, "temporal": temporal_loss}


def write_run_config(run_dir: Path, config: ModelConfig, settings: TemporalSettings) -> None:
    """``config.json`` in the layout ``model.checkpoints.read_run_config`` reads."""
    run_dir.mkdir(parents=True, exist_ok=True)
    document = {
        "model": config.to_dict(),
        "train": {"temporal": dataclasses.asdict(settings), "data": settings.data},
        "seed": settings.seed,
        "version": 1,
    }
    with atomic_path(run_dir / "config.json") as temp:
        temp.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def train_temporal(
    generator,
    config: ModelConfig,
    settings: TemporalSettings,
    sampler,
    run_dir: Path,
    *,
    log: Callable[[str], None] | None = None,
) -> int:
    """Fine-tune ``generator`` in place; checkpoints go to ``run_dir/checkpoints``.

    Returns the number of steps taken (fewer than ``settings.steps`` when ``max_minutes``
    ran out). A checkpoint is saved every ``save_every`` steps and at the end. ``log`` gets
    a line of losses every 10 steps (default: print, flushed, so a log file follows along).
    """
    if log is None:

        def log(line: str) -> None:
            print(line, flush=True)

    tf.random.set_seed(settings.seed)
    rng = np.random.default_rng([settings.seed, 1])
    optimizer = make_optimizer(settings.lr)
    write_run_config(run_dir, config, settings)
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(generator=generator),
        run_dir / "checkpoints",
        max_to_keep=3,
        checkpoint_name=CHECKPOINT_PREFIX,
    )

    @tf.function(reduce_retracing=True)
    def step(batch, keep):
        with tf.GradientTape() as tape:
            losses = unrolled_losses(generator, batch, keep, settings.temporal_weight)
        variables = generator.trainable_variables
        gradients = tape.gradient(losses["total"], variables)
        optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return losses

    start = time.monotonic()
    done = 0
    while done < settings.steps:
        batch = sampler.batch(settings.batch_size)
        keep = (rng.random((settings.batch_size, settings.frames)) >= settings.drop).astype(
            np.float32
        )
        losses = step(batch, keep)
        done += 1
        minutes = (time.monotonic() - start) / 60
        if done % 10 == 0 or done == 1:
            parts = " ".join(f"{name} {float(value):.4f}" for name, value in losses.items())
            log(f"step {done} {parts} ({minutes:.1f} min)")
        out_of_time = settings.max_minutes and minutes >= settings.max_minutes
        if done % settings.save_every == 0 or done == settings.steps or out_of_time:
            manager.save(checkpoint_number=done)
        if out_of_time:
            break
    return done
