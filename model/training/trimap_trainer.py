"""Training of the trimap network (``ModelConfig.task == "trimap"``): the model holding it, its
train step, its input pipeline and its validation callback.

The run machinery is the matting GAN's (``model.training.loop``): the same custom loop,
``RunCheckpoint`` (generator, its optimiser and the step; no discriminator), progress bar,
TensorBoard scalars and checkpoint callback. What differs lives here:

* :class:`TrimapTrainer` -- a ``keras.Model`` whose ``train_step`` minimises
  ``model.trimap_losses.trimap_losses`` and returns ``ce``, ``bce``, ``dice`` and ``total``
  (every key goes to TensorBoard as ``train/<key>``);
* :func:`make_trimap_distributed_dataset` -- ``model.trimap_data`` batches per replica;
* :class:`TrimapValidationCallback` -- per-class IoU, Dice and pixel accuracy on the val
  split (``model.metrics.class_metrics``) to TensorBoard (``val/<key>``) and
  ``validation.jsonl``; the best checkpoint is the one with the highest mean IoU.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from model.metrics import class_metrics
from model.networks import ModelConfig, build_generator
from model.training.callbacks import PeriodicValidation
from model.training.gan import data_seed, make_optimizer
from model.training.settings import TrainSettings
from model.trimap_data import make_trimap_dataset
from model.trimap_losses import trimap_losses

TRIMAP_KEYS = ("ce", "bce", "dice", "total")
CLASS_NAMES = ("bg", "unknown", "fg")
"""Names of the classes 0, 1, 2 in the metric keys (``iou_fg``, ``acc_unknown``, ...)."""


class TrimapTrainer(keras.Model):
    """The trimap network and its optimiser; ``train_step`` returns the windowed loss means.

    ``generator`` is the network (named so by the checkpoint, like every task's);
    ``discriminator`` is None, which tells ``RunCheckpoint`` to save the generator side only.
    """

    discriminator = None

    def __init__(self, generator: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.trackers = {key: keras.metrics.Mean(name=key) for key in TRIMAP_KEYS}

    def compile(self, g_optimizer: keras.optimizers.Optimizer, jit_compile: bool = False) -> None:
        super().compile(optimizer=g_optimizer, jit_compile=jit_compile)
        self.g_optimizer = g_optimizer

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.trackers[key] for key in TRIMAP_KEYS]

    def call(self, inputs, training=False):
        """Logits (B, H, W, 3) for (B, H, W, 3) RGB in [0, 1]."""
        return self.generator(inputs, training=training)

    def build_optimizers(self) -> None:
        """Create the optimiser's variables now, so a checkpoint can restore its slots."""
        self.g_optimizer.build(self.generator.trainable_variables)

    def train_step(self, batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """One step on ``image`` (B, S, S, 3) float32 and ``labels`` (B, S, S) int32."""
        replicas = tf.distribute.get_replica_context().num_replicas_in_sync
        with tf.GradientTape() as tape:
            logits = self.generator(batch["image"], training=True)  # (B, S, S, 3)
            losses = trimap_losses(logits, batch["labels"])
            loss = self.g_optimizer.scale_loss(losses["total"] / replicas)
        variables = self.generator.trainable_variables
        gradients = tape.gradient(loss, variables)
        self.g_optimizer.apply_gradients(zip(gradients, variables, strict=True))
        for key in TRIMAP_KEYS:
            self.trackers[key].update_state(losses[key])
        return {key: self.trackers[key].result() for key in TRIMAP_KEYS}


def build_trimap_trainer(
    cfg: ModelConfig, settings: TrainSettings, strategy: tf.distribute.Strategy | None = None
) -> TrimapTrainer:
    """The trimap network and its Adam optimiser (variables built), under ``strategy``."""
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = TrimapTrainer(build_generator(cfg), name="trimap_trainer")
        model.compile(make_optimizer(settings.lr, settings.mixed_precision), settings.jit)
        model.build_optimizers()
    return model


def make_trimap_distributed_dataset(
    data: str | os.PathLike,
    settings: TrainSettings,
    strategy: tf.distribute.Strategy,
    start_step: int = 0,
):
    """Training batches of ``model.trimap_data``, one ``settings.batch_size`` batch per replica."""

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        return make_trimap_dataset(
            data,
            "train",
            size=settings.crop_size,
            batch_size=settings.batch_size,
            seed=data_seed(settings.seed, start_step, context.input_pipeline_id),
            augment=settings.augment,
        )

    return strategy.distribute_datasets_from_function(dataset_fn)


def predict_labels(generator: keras.Model, images: np.ndarray) -> np.ndarray:
    """Class indices (B, H, W) int of (B, H, W, 3) images whose sides fit the network."""
    logits = generator(tf.constant(images, tf.float32), training=False)  # (B, H, W, 3)
    return np.argmax(np.asarray(logits), axis=-1)


class TrimapValidationCallback(PeriodicValidation):
    """Per-class IoU, Dice and pixel accuracy on the val split; best checkpoint by mean IoU.

    Each metric is computed per image (whole image resized to the crop size) and averaged; the
    schedule, records and best checkpoint are :class:`PeriodicValidation`'s.
    """

    best_key = "miou"
    higher_is_better = True

    def scores(self) -> dict[str, list[float]]:
        scores: dict[str, list[float]] = {}
        for batch in self.dataset_fn():
            pred = predict_labels(self.model.generator, batch["image"].numpy())
            for one_pred, one_gt in zip(pred, batch["labels"].numpy(), strict=True):
                for key, value in class_metrics(one_pred, one_gt, CLASS_NAMES).items():
                    scores.setdefault(key, []).append(value)
        return scores
