"""Training of the matting GAN: the train step, the loop, checkpoints and callbacks.

Pieces, in the order a run uses them (``train.py`` wires them together through :func:`train`):

* :class:`TrainSettings` -- every training default in one place; stored in ``config.json``.
* :func:`make_strategy` -- ``tf.distribute`` strategy: none, Mirrored over the local GPUs (or
  logical CPUs), or MultiWorkerMirrored from ``TF_CONFIG``.
* :class:`MattingGAN` -- a ``keras.Model`` holding the generator G and the discriminator D
  (keras-io DCGAN pattern): ``compile`` takes both optimisers, ``train_step`` runs one GAN step
  and returns the loss dict, ``metrics`` exposes the ``keras.metrics.Mean`` trackers.
* :class:`RunCheckpoint` -- ``tf.train.Checkpoint(generator, discriminator, g_optimizer,
  d_optimizer, step)`` with a ``CheckpointManager`` for ``checkpoints/`` and one for ``best/``.
* Callbacks (``keras.callbacks.Callback`` subclasses): :class:`ProgressCallback` (tqdm),
  :class:`ScalarCallback` (TensorBoard), :class:`CheckpointCallback`,
  :class:`ValidationCallback` (SAD/MSE/Grad/Conn, best checkpoint), :class:`ImageCallback`
  (image grids and PNG strips for the timelapse).
* :func:`train_loop` -- a custom loop rather than ``Model.fit``: checkpoints, interruption and
  resumption are exact to the step, and it runs under MultiWorkerMirroredStrategy, which Keras
  3's ``fit`` does not support (keras-team/keras#20585).

Run layout (see ``model/checkpoints.py``)::

    log/<run>/config.json            {"model", "train" (TrainSettings + data), "seed", "version"}
    log/<run>/checkpoints/ckpt-<step>.index/.data-*
    log/<run>/best/ckpt-<step>.*     best validation SAD so far; best/best.json says which
    log/<run>/tensorboard/           scalars train/<loss>, val/<metric>; images samples
    log/<run>/samples/step_<step>.png
    log/<run>/validation.jsonl       one line per validation: step and the four metrics
    log/<run>/timelapse.gif          made on request by :func:`make_timelapse`

Example
-------
>>> settings = TrainSettings(steps=1000, batch_size=4, crop_size=320)
>>> run_dir = start_run("log", new_run_name("log"), ModelConfig(), settings, "scripts/data")
>>> result = train("scripts/data", run_dir, ModelConfig(), settings)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw
from tensorflow.core.framework import summary_pb2
from tqdm import tqdm

from model import metrics as matting_metrics
from model.checkpoints import (
    CHECKPOINT_PREFIX,
    PRETRAINED,
    CheckpointError,
    load_config,
    run_checkpoints,
    trained_runs,
)
from model.compositing import composite
from model.dataset import list_samples, make_eval_dataset, make_train_dataset
from model.images import atomic_path, encode_png, write_bytes, write_png
from model.losses import LossWeights, discriminator_losses, generator_losses
from model.losses import _composite as composite_tensors
from model.manifest import append_record, read_records
from model.networks import ModelConfig, build_discriminator, build_generator, clamp_known

CONFIG_VERSION = 1
DISTRIBUTE_CHOICES = ("auto", "none", "mirrored", "multiworker")
G_KEYS = ("g_alpha", "g_composition", "g_gradient", "g_laplacian", "g_adversarial", "g_total")
D_KEYS = ("d_real", "d_fake", "d_total")
VALIDATION_KEYS = ("sad", "mse", "grad", "conn")
PANEL_HEIGHT = 128
"""Height in pixels of each panel of a sample strip (samples are resized to it)."""


# --------------------------------------------------------------------------------------------
# Settings and runs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainSettings:
    """Every training setting and its default; ``train.py`` flags map one-to-one onto these.

    Attributes
    ----------
    crop_size : int
        Side of the square training crops (pixels); a multiple of the model's ``multiple``.
    augment : bool
        Colour jitter, re-composition onto other backgrounds and re-drawn trimaps.
    max_val_samples : int
        Validation uses the first this many samples of the ``val`` split (sorted names).
    epochs : int
        Length of training in passes over the train split, ``ceil(n_train / global batch)``
        steps each; ignored when ``steps`` is set.
    steps : int or None
        Train until the global step reaches this (a resumed run counts from its saved step).
    batch_size : int
        Crops per replica per step; the global batch is ``batch_size * replicas``.
    lr : float
        Adam learning rate of both G and D (beta_1 = 0.5 as in pix2pix).
    seed : int
        Seeds weight initialisation and, with the start step, the data pipeline.
    mixed_precision : bool
        ``mixed_float16`` compute with dynamic loss scaling (useful on GPUs).
    jit : bool
        XLA-compile the train step.
    distribute : {"auto", "none", "mirrored", "multiworker"}
        See :func:`make_strategy`.
    gan : bool
        False (``--no-gan``) trains the generator alone, without D or the adversarial term.
    alpha_weight, comp_weight, grad_weight, lap_weight, d_coeff : float
        Weights of the generator loss terms (see ``model.losses``); ``d_coeff`` weighs the
        adversarial term.
    gan_mode : {"lsgan", "nonsaturating"}
    save_every : int
        Save a checkpoint whenever the global step is a multiple of this.
    keep : int
        Regular checkpoints kept (oldest deleted first); ``best/`` keeps one more.
    val_every : int
        Validate when the step is a multiple of this, at step 0 and at the end; 0 disables
        validation (and the best checkpoint).
    image_every : int
        Write a sample strip and TensorBoard image grid every this many steps; 0 disables.
    image_samples : int
        Validation samples shown in each strip (the first ones, always the same).
    log_every : int
        Losses are averaged over windows of this many steps and written to TensorBoard at
        the end of each window.
    init_from : str or None
        Checkpoint whose generator weights a new run starts from (:func:`warm_start`); stored
        as the resolved path.
    """

    # data
    crop_size: int = 320
    augment: bool = True
    max_val_samples: int = 32
    # optimisation
    epochs: int = 100
    steps: int | None = None
    batch_size: int = 8
    lr: float = 2e-4
    seed: int = 0
    mixed_precision: bool = False
    jit: bool = False
    distribute: str = "auto"
    # losses and GAN
    gan: bool = True
    alpha_weight: float = LossWeights.alpha
    comp_weight: float = LossWeights.composition
    grad_weight: float = LossWeights.gradient
    lap_weight: float = LossWeights.laplacian
    d_coeff: float = LossWeights.adversarial
    gan_mode: str = LossWeights.gan_mode
    # checkpoints
    save_every: int = 100
    keep: int = 5
    # logging
    val_every: int = 500
    image_every: int = 100
    image_samples: int = 4
    log_every: int = 10
    init_from: str | None = None

    def __post_init__(self) -> None:
        positive = ("crop_size", "batch_size", "epochs", "save_every", "keep", "log_every")
        non_negative = ("max_val_samples", "val_every", "image_every", "image_samples")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"--{_flag(name)} must be >= 1, not {getattr(self, name)}")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ValueError(f"--{_flag(name)} must be >= 0, not {getattr(self, name)}")
        if self.steps is not None and self.steps < 0:
            raise ValueError(f"--steps must be >= 0, not {self.steps}")
        if not self.lr > 0:
            raise ValueError(f"--lr must be > 0, not {self.lr}")
        if self.distribute not in DISTRIBUTE_CHOICES:
            raise ValueError(f"--distribute must be one of {', '.join(DISTRIBUTE_CHOICES)}")
        self.loss_weights()

    def loss_weights(self) -> LossWeights:
        """The generator loss weights; raises ValueError on a negative weight."""
        return LossWeights(
            alpha=self.alpha_weight,
            composition=self.comp_weight,
            gradient=self.grad_weight,
            laplacian=self.lap_weight,
            adversarial=self.d_coeff,
            gan_mode=self.gan_mode,
        )

    def total_steps(self, train_samples: int, replicas: int) -> int:
        """The global step at which training ends: ``steps``, else ``epochs`` passes."""
        if self.steps is not None:
            return self.steps
        return self.epochs * math.ceil(train_samples / (self.batch_size * replicas))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainSettings:
        """Inverse of :meth:`to_dict`; keys that are not fields (e.g. ``data``) are ignored."""
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


def _flag(name: str) -> str:
    return name.replace("_", "-")


class RunError(ValueError):
    """A run that cannot be started or resumed as asked; the message starts with its path."""


def new_run_name(log_dir: str | os.PathLike, now: datetime | None = None) -> str:
    """A fresh run name ``run-YYYYmmdd-HHMMSS`` (with ``-2``, ``-3``... if it is taken)."""
    base = f"run-{(now or datetime.now()):%Y%m%d-%H%M%S}"
    name, index = base, 1
    while (Path(log_dir) / name).exists():
        index += 1
        name = f"{base}-{index}"
    return name


def check_run_name(name: str) -> None:
    """Refuse names that are not a plain folder name, and the shipped ``pretrained`` run."""
    if name == PRETRAINED:
        raise RunError(
            f"--run {name}: that folder is the shipped snapshot; training never writes it"
        )
    if not name or name in (".", "..") or "/" in name or os.sep in name:
        raise RunError(f"--run {name!r}: must be a plain folder name under --log-dir")


def start_run(
    log_dir: str | os.PathLike,
    name: str,
    cfg: ModelConfig,
    settings: TrainSettings,
    data: str | os.PathLike,
    *,
    write: bool = True,
) -> Path:
    """Create ``log_dir/name`` for a new run and write its ``config.json``.

    Raises
    ------
    RunError
        The name is refused, or the run already holds checkpoints (resume it or pick another
        name). A run folder without checkpoints (one that stopped before its first save) is
        reused.
    """
    check_run_name(name)
    run_dir = Path(log_dir) / name
    refs = run_checkpoints(run_dir)
    if refs:
        raise RunError(
            f"{run_dir}: already holds checkpoints (up to step {refs[-1].step}); pass --resume"
            " to continue it, or --run NAME for a new run"
        )
    if write:
        write_run_config(run_dir, cfg, settings, data)
    return run_dir


def resume_target(log_dir: str | os.PathLike, name: str | None) -> Path:
    """The run folder ``--resume`` continues: ``log_dir/name``, else the newest trained run."""
    if name is None:
        runs = trained_runs(log_dir)
        if not runs:
            raise RunError(f"{log_dir}: no trained run to resume (train one first)")
        return runs[0]
    check_run_name(name)
    run_dir = Path(log_dir) / name
    refs = run_checkpoints(run_dir)
    if not refs:
        raise RunError(f"{run_dir}: no checkpoint to resume from")
    return run_dir


def write_run_config(
    run_dir: Path, cfg: ModelConfig, settings: TrainSettings, data: str | os.PathLike
) -> None:
    """Write ``run_dir/config.json`` atomically (see the module docstring for its fields)."""
    config = {
        "model": cfg.to_dict(),
        "train": {**settings.to_dict(), "data": str(data)},
        "seed": settings.seed,
        "version": CONFIG_VERSION,
    }
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    write_bytes(run_dir / "config.json", text.encode("utf-8"))


def read_run_config(run_dir: Path) -> tuple[ModelConfig, dict[str, Any]]:
    """The model config and the ``train`` section (with ``data``) of a run's ``config.json``."""
    config = load_config(run_dir)
    try:
        return ModelConfig.from_dict(config["model"]), dict(config.get("train", {}))
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{run_dir / 'config.json'}: bad model config ({error})") from None


# --------------------------------------------------------------------------------------------
# Distribution
# --------------------------------------------------------------------------------------------


def _tf_config_workers() -> int:
    try:
        cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    except json.JSONDecodeError:
        raise RunError("TF_CONFIG: not valid JSON") from None
    return sum(len(tasks) for kind, tasks in cluster.items() if kind in ("chief", "worker"))


def make_strategy(kind: str = "auto") -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy for ``--distribute``.

    Create it before any other TensorFlow work: MultiWorkerMirroredStrategy must configure the
    runtime first.

    Parameters
    ----------
    kind : {"auto", "none", "mirrored", "multiworker"}
        ``none``: the default (single-device) strategy. ``mirrored``: MirroredStrategy over
        every local GPU, or every logical CPU device when there is no GPU (a test splits the
        CPU in two). ``multiworker``: MultiWorkerMirroredStrategy with the cluster in
        ``TF_CONFIG``. ``auto``: multiworker when ``TF_CONFIG`` lists more than one task,
        else mirrored with more than one GPU, else none.

    Raises
    ------
    RunError
        ``multiworker`` without a ``TF_CONFIG`` cluster.
    """
    if kind == "auto":
        if _tf_config_workers() > 1:
            kind = "multiworker"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            kind = "mirrored"
        else:
            kind = "none"
    if kind == "none":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy(devices=[device.name for device in devices])
    if kind == "multiworker":
        if _tf_config_workers() < 1:
            raise RunError("--distribute multiworker: TF_CONFIG names no cluster of workers")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {kind!r}; expected one of {DISTRIBUTE_CHOICES}")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that writes logs and checkpoints (worker 0 unless a chief is named)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


# --------------------------------------------------------------------------------------------
# The model and its train step
# --------------------------------------------------------------------------------------------


def model_inputs(image, trimap, prior=None):
    """Generator input: RGB ++ trimap [++ prior], (B, H, W, 3) and (B, H, W, 1) each ->
    (B, H, W, 4 or 5) float32."""
    parts = [image, trimap] if prior is None else [image, trimap, prior]
    return tf.concat([tf.cast(part, tf.float32) for part in parts], axis=-1)


class MattingGAN(keras.Model):
    """Generator and PatchGAN discriminator trained together (AlphaGAN).

    The discriminator judges a composite ``I = alpha F + (1 - alpha) B`` concatenated with the
    trimap, (B, S, S, 4): with the ground-truth alpha ("real") against the same composite with
    the predicted alpha ("fake"), over the batch's background (already a new one when the
    dataset re-composes).

    ``train_step`` returns (and the trackers in ``metrics`` hold) the means since the last
    ``reset_metrics()`` of: ``g_alpha``, ``g_composition``, ``g_gradient``, ``g_total`` and,
    with the GAN, ``g_adversarial``, ``d_real``, ``d_fake``, ``d_total``. Without the GAN
    (``use_gan=False``) the adversarial and discriminator keys are absent rather than 0, since
    nothing computes them.
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.trackers = {key: keras.metrics.Mean(name=key) for key in G_KEYS + D_KEYS}
        self.use_gan = True
        self.loss_weights = LossWeights()

    def compile(
        self,
        g_optimizer: keras.optimizers.Optimizer,
        d_optimizer: keras.optimizers.Optimizer,
        loss_weights: LossWeights,
        use_gan: bool = True,
        jit_compile: bool = False,
    ) -> None:
        """Set both optimisers, the loss weights, whether D trains, and XLA compilation."""
        super().compile(optimizer=g_optimizer, jit_compile=jit_compile)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.loss_weights = loss_weights
        self.use_gan = use_gan

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        keys = G_KEYS + D_KEYS if self.use_gan else tuple(k for k in G_KEYS if k != "g_adversarial")
        return [self.trackers[key] for key in keys]

    def call(self, inputs, training=False):
        """Alpha for (B, H, W, 4) RGB ++ trimap inputs: (B, H, W, 1) in [0, 1]."""
        return self.generator(inputs, training=training)

    def build_optimizers(self) -> None:
        """Create the optimisers' variables now (Keras makes them lazily).

        A checkpoint restores slot variables (Adam moments, iteration counts) only into
        variables that exist, so this must run before :meth:`RunCheckpoint.restore`.
        """
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    def _discriminate(self, alpha, fg, bg, trimap):
        composite_image = composite_tensors(alpha, fg, bg)  # (B, S, S, 3)
        return self.discriminator(
            tf.concat([composite_image, trimap], axis=-1), training=True
        )  # (B, S/s, S/s, 1) logits

    def train_step(self, batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """One optimisation step of G (and of D with the GAN) on one (per-replica) batch.

        Parameters
        ----------
        batch : dict of float32 tensors
            ``image``, ``fg``, ``bg`` (B, S, S, 3) in [0, 1]; ``alpha`` (B, S, S, 1) in [0, 1];
            ``trimap`` (B, S, S, 1) in {0, 0.5, 1}; ``prior`` (B, S, S, 1) in [0, 1] for a
            generator with a prior -- as ``model.dataset`` yields them.

        Returns
        -------
        dict of str to float32 scalar tensors
            The tracker means (see the class docstring for the keys).
        """
        image, trimap, alpha = batch["image"], batch["trimap"], batch["alpha"]
        fg, bg = batch["fg"], batch["bg"]
        # Gradients are summed over replicas by the optimiser, so each replica's loss is
        # divided by their number to optimise the mean over the global batch.
        replicas = tf.distribute.get_replica_context().num_replicas_in_sync
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            inputs = model_inputs(image, trimap, batch.get("prior"))  # (B, S, S, C)
            alpha_pred = self.generator(inputs, training=True)  # (B, S, S, 1)
            fake_logits = None
            if self.use_gan:
                real_logits = self._discriminate(alpha, fg, bg, trimap)
                # Reused for D's loss: d_tape differentiates with respect to D's variables
                # only, so the D update never reaches G, exactly as if alpha_pred were detached.
                fake_logits = self._discriminate(alpha_pred, fg, bg, trimap)
            g_losses = generator_losses(
                alpha_pred, alpha, trimap, fg, bg, self.loss_weights, fake_logits
            )
            g_loss = self.g_optimizer.scale_loss(g_losses["total"] / replicas)
            if self.use_gan:
                d_losses = discriminator_losses(
                    real_logits, fake_logits, self.loss_weights.gan_mode
                )
                d_loss = self.d_optimizer.scale_loss(d_losses["total"] / replicas)

        g_vars = self.generator.trainable_variables
        self.g_optimizer.apply_gradients(zip(g_tape.gradient(g_loss, g_vars), g_vars, strict=True))
        values = {f"g_{key}": value for key, value in g_losses.items()}
        if self.use_gan:
            d_vars = self.discriminator.trainable_variables
            self.d_optimizer.apply_gradients(
                zip(d_tape.gradient(d_loss, d_vars), d_vars, strict=True)
            )
            values.update({f"d_{key}": value for key, value in d_losses.items()})
        for tracker in self.metrics:
            tracker.update_state(values[tracker.name])
        return {tracker.name: tracker.result() for tracker in self.metrics}


def warm_start(generator: keras.Model, source: keras.Model) -> list[str]:
    """Copy a trained generator's weights into a new one of a related architecture.

    Layers are matched by name. A weight of the same shape is copied; a convolution kernel that
    gained input channels (a generator that now also sees a prior, appended as the last input
    channel) gets the old kernel for the old channels and zeros for the new ones, so it starts
    out computing exactly what the source computed. The new generator's ``head_logits`` is
    left alone when its shape or role differs (with a prior it is a zero-initialised
    correction, not the alpha logit).

    Returns
    -------
    list of str
        Names of the layers that were copied or extended.
    """
    residual = any(layer.name == "prior_logit" for layer in generator.layers)
    source_layers = {layer.name: layer for layer in source.layers}
    copied = []
    for layer in generator.layers:
        old = source_layers.get(layer.name)
        if old is None or not layer.weights or (residual and layer.name == "head_logits"):
            continue
        new_values, old_values = layer.get_weights(), old.get_weights()
        if len(new_values) != len(old_values):
            continue
        values = []
        for new, value in zip(new_values, old_values, strict=True):
            if new.shape == value.shape:
                values.append(value)
            elif (
                new.ndim == 4
                and new.shape[:2] + new.shape[3:] == value.shape[:2] + value.shape[3:]
                and new.shape[2] > value.shape[2]
            ):
                extended = np.zeros_like(new)
                extended[:, :, : value.shape[2]] = value
                values.append(extended)
            else:
                break
        else:
            layer.set_weights(values)
            copied.append(layer.name)
    return copied


def make_optimizer(lr: float, mixed_precision: bool = False) -> keras.optimizers.Optimizer:
    """Adam(lr, beta_1=0.5) as in pix2pix; wrapped in a LossScaleOptimizer for mixed precision."""
    optimizer = keras.optimizers.Adam(learning_rate=lr, beta_1=0.5)
    if mixed_precision:
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def build_model(
    cfg: ModelConfig, settings: TrainSettings, strategy: tf.distribute.Strategy | None = None
) -> MattingGAN:
    """G, D, both optimisers (variables built) and the loss settings, under ``strategy``.

    The global Keras dtype policy must already be set (``mixed_float16`` or ``float32``).
    """
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = MattingGAN(build_generator(cfg), build_discriminator(cfg), name="matting_gan")
        model.compile(
            make_optimizer(settings.lr, settings.mixed_precision),
            make_optimizer(settings.lr, settings.mixed_precision),
            settings.loss_weights(),
            use_gan=settings.gan,
            jit_compile=settings.jit,
        )
        model.build_optimizers()
    return model


def make_train_function(model: MattingGAN, strategy: tf.distribute.Strategy):
    """A ``tf.function`` that takes the next batch from a distributed iterator and trains on it.

    As in Keras' own trainer, XLA (``model.jit_compile``) covers the replicated step but not
    the iterator. Returns the loss dict averaged over replicas (float32 scalars).
    """

    def one_step(batch):
        outputs = strategy.run(model.train_step, args=(batch,))
        return {
            key: strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
            for key, value in outputs.items()
        }

    one_step = tf.function(one_step, jit_compile=bool(model.jit_compile), reduce_retracing=True)

    @tf.function
    def train_function(iterator):
        return one_step(next(iterator))

    return train_function


def data_seed(seed: int, start_step: int, pipeline: int = 0) -> int:
    """Seed of one input pipeline: a resumed run or another worker must not replay the crops."""
    return int(np.random.SeedSequence([seed, start_step, pipeline]).generate_state(1)[0])


def make_distributed_dataset(
    data: str | os.PathLike,
    settings: TrainSettings,
    strategy: tf.distribute.Strategy,
    start_step: int = 0,
    prior: bool = False,
):
    """The training batches, one ``settings.batch_size`` batch per replica per step.

    With ``prior`` the batches carry the stored closed-form mattes; these belong to the stored
    composites and trimaps, so re-composition and re-drawn trimaps are off (colour jitter stays).
    """

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        return make_train_dataset(
            data,
            "train",
            crop_size=settings.crop_size,
            batch_size=settings.batch_size,
            seed=data_seed(settings.seed, start_step, context.input_pipeline_id),
            jitter=settings.augment,
            recompose=settings.augment and not prior,
            redraw_trimap=settings.augment and not prior,
            prior=prior,
        )

    return strategy.distribute_datasets_from_function(dataset_fn)


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


class RunCheckpoint:
    """Everything needed to resume: G, D, both optimisers and the global step.

    Regular checkpoints go to ``run_dir/checkpoints/ckpt-<step>`` (``keep`` of them), the best
    one by validation SAD to ``run_dir/best/ckpt-<step>``. On a non-chief worker of a
    multi-worker run both go to a private temporary folder that :meth:`close` deletes: every
    worker must take part in a save, but only the chief's files are kept.

    Parameters
    ----------
    model : MattingGAN
        Compiled, with its optimisers built.
    run_dir : path
    keep : int
    chief : bool
    """

    def __init__(self, model: MattingGAN, run_dir: Path, *, keep: int, chief: bool = True):
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.checkpoint = tf.train.Checkpoint(
            generator=model.generator,
            discriminator=model.discriminator,
            g_optimizer=model.g_optimizer,
            d_optimizer=model.d_optimizer,
            step=self.step,
        )
        self.run_dir = Path(run_dir)
        self._temp = None if chief else Path(tempfile.mkdtemp(prefix="matting-worker-"))
        root = self.run_dir if chief else self._temp
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, str(root / "checkpoints"), keep, checkpoint_name=CHECKPOINT_PREFIX
        )
        self.best_manager = tf.train.CheckpointManager(
            self.checkpoint, str(root / "best"), 1, checkpoint_name=CHECKPOINT_PREFIX
        )
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
        try:
            status = self.checkpoint.restore(str(path))
            status.assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
            raise CheckpointError(
                f"{path}: does not match this model and optimisers ({first})"
            ) from None
        self._last_saved = self.current_step
        return self.current_step

    def close(self) -> None:
        if self._temp is not None:
            shutil.rmtree(self._temp, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# TensorBoard
# --------------------------------------------------------------------------------------------
# Summaries are written with the low-level tf.summary.write and the plugin names TensorBoard
# reads, so training does not need the tensorboard package (only viewing does).


def _metadata(plugin: str) -> summary_pb2.SummaryMetadata:
    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin)
    )


def write_scalar(tag: str, value: float, step: int) -> None:
    """A TensorBoard scalar (under the writer set as default)."""
    tf.summary.write(tag, tf.constant(value, tf.float32), step=step, metadata=_metadata("scalars"))


def write_image(tag: str, pixels: np.ndarray, step: int) -> None:
    """A TensorBoard image from (H, W, 3) float in [0, 1] (under the writer set as default)."""
    height, width = pixels.shape[:2]
    tensor = tf.constant([str(width).encode(), str(height).encode(), encode_png(pixels)])
    tf.summary.write(tag, tensor, step=step, metadata=_metadata("images"))


# --------------------------------------------------------------------------------------------
# Callbacks
# --------------------------------------------------------------------------------------------
# train_loop calls on_train_begin({"step": start}), on_train_batch_end(step, logs) with the
# global step just completed, and on_train_end({"step": step, "interrupted": bool,
# "error": bool}) -- also when an exception escapes the loop (then "error" is True).


class ProgressCallback(keras.callbacks.Callback):
    """A tqdm bar over the global steps with the windowed losses and images/s (stderr)."""

    def __init__(self, total_steps: int, *, disable: bool = False):
        super().__init__()
        self.total_steps = total_steps
        self.disable = disable
        self.bar = None

    def on_train_begin(self, logs=None):
        self.bar = tqdm(
            total=self.total_steps,
            initial=logs["step"],
            unit="step",
            desc="train",
            dynamic_ncols=True,
            disable=self.disable,
        )

    def on_train_batch_end(self, batch, logs=None):
        postfix = {
            key: f"{logs[key]:.4f}" for key in ("g_total", "g_alpha", "d_total") if key in logs
        }
        if logs.get("images_per_second"):
            postfix["img/s"] = f"{logs['images_per_second']:.1f}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(1)

    def on_train_end(self, logs=None):
        if self.bar is not None:
            self.bar.close()


class ScalarCallback(keras.callbacks.Callback):
    """TensorBoard scalars ``train/<key>`` for every key of the logs, every ``every`` steps."""

    def __init__(self, writer, every: int):
        super().__init__()
        self.writer = writer
        self.every = every

    def on_train_batch_end(self, batch, logs=None):
        if batch % self.every:
            return
        with self.writer.as_default(step=batch):
            for key, value in logs.items():
                write_scalar(f"train/{key}", value, batch)
        self.writer.flush()


class CheckpointCallback(keras.callbacks.Callback):
    """Save every ``every`` global steps and whenever training ends (also on errors).

    An error before the first step of the session saves nothing: the state is the one just
    restored (or freshly initialised), and a checkpoint would only block re-running the run.
    """

    def __init__(self, checkpoint: RunCheckpoint, every: int):
        super().__init__()
        self.checkpoint = checkpoint
        self.every = every
        self.last_path: Path | None = None
        self.start: int | None = None

    def on_train_begin(self, logs=None):
        self.start = logs["step"]

    def on_train_batch_end(self, batch, logs=None):
        if batch % self.every == 0:
            self.last_path = self.checkpoint.save()

    def on_train_end(self, logs=None):
        if not (logs.get("error") and logs["step"] == self.start):
            self.last_path = self.checkpoint.save()


def _valid_crop(sample: dict[str, np.ndarray], *arrays: np.ndarray) -> list[np.ndarray]:
    """Cut the sample's own top-left pixels (``valid`` == 1) out of (H, W[, C]) arrays."""
    valid = sample["valid"][0, ..., 0] > 0.5
    height, width = int(valid.any(axis=1).sum()), int(valid.any(axis=0).sum())
    return [array[:height, :width] for array in arrays]


class _Predictor:
    """Generator inference on eval samples, with known trimap regions clamped."""

    def __init__(self, generator: keras.Model):
        self.generator = generator

        @tf.function(reduce_retracing=True)
        def predict(inputs, trimap):
            alpha = generator(inputs, training=False)  # (1, H, W, 1)
            return clamp_known(alpha, trimap)

        self._predict = predict

    def __call__(self, sample: dict[str, np.ndarray]) -> np.ndarray:
        """Alpha (H, W) float32 of one padded eval sample (batch 1)."""
        inputs = model_inputs(sample["image"], sample["trimap"], sample.get("prior"))
        return self._predict(inputs, sample["trimap"]).numpy()[0, ..., 0]


class ValidationCallback(keras.callbacks.Callback):
    """SAD, MSE, Grad and Conn on the val split; keeps the best checkpoint by SAD.

    Validates at step 0 of a new run, every ``every`` steps, and at the end of training
    (unless it was interrupted). Means over the samples go to TensorBoard (``val/<metric>``),
    to ``run_dir/validation.jsonl`` and, when the SAD is the lowest so far, the state is saved
    in ``best/`` and described in ``best/best.json``. Each metric is computed per image on its
    own (unpadded) pixels over the trimap's unknown region (see ``model.metrics``).
    """

    def __init__(
        self,
        dataset_fn,
        every: int,
        checkpoint: RunCheckpoint,
        *,
        writer=None,
        run_dir: Path | None = None,
    ):
        super().__init__()
        self.dataset_fn = dataset_fn
        self.every = every
        self.checkpoint = checkpoint
        self.writer = writer
        self.run_dir = run_dir
        self.last_step: int | None = None
        self.best_sad = math.inf
        self.history: list[dict[str, float]] = []

    def on_train_begin(self, logs=None):
        self.predictor = _Predictor(self.model.generator)
        best_file = self.checkpoint.best_dir / "best.json"
        if best_file.exists():
            self.best_sad = float(json.loads(best_file.read_text(encoding="utf-8"))["sad"])
        if self.run_dir is not None:
            done = read_validation_history(self.run_dir)
            self.last_step = done[-1]["step"] if done else None
        if logs["step"] == 0:
            self.validate(0)

    def on_train_batch_end(self, batch, logs=None):
        if batch % self.every == 0:
            self.validate(batch)

    def on_train_end(self, logs=None):
        if not (logs.get("interrupted") or logs.get("error")) and logs["step"] != self.last_step:
            self.validate(logs["step"])

    def validate(self, step: int) -> dict[str, float]:
        """Run the generator over the val samples; returns the mean of each metric."""
        scores = {key: [] for key in VALIDATION_KEYS}
        for batch in self.dataset_fn():
            sample = {key: value.numpy() for key, value in batch.items()}
            pred = self.predictor(sample)
            pred, gt, trimap = _valid_crop(
                sample, pred, sample["alpha"][0, ..., 0], sample["trimap"][0, ..., 0]
            )
            for key, value in matting_metrics.all_metrics(pred, gt, trimap).items():
                scores[key].append(value)
        means = {key: float(np.mean(values)) for key, values in scores.items()}
        self.last_step = step
        self.history.append({"step": step, **means})
        if self.writer is not None:
            with self.writer.as_default(step=step):
                for key, value in means.items():
                    write_scalar(f"val/{key}", value, step)
            self.writer.flush()
        if self.run_dir is not None:
            append_record(self.run_dir / "validation.jsonl", {"step": step, **means})
        if means["sad"] < self.best_sad:
            self.best_sad = means["sad"]
            self.checkpoint.save_best()
            record = {"step": step, **means}
            write_bytes(self.checkpoint.best_dir / "best.json", json.dumps(record).encode())
        return means


def _resize_height(array: np.ndarray, height: int) -> np.ndarray:
    """Resize (H, W, 3) float in [0, 1] to the given height, keeping the aspect ratio."""
    image = Image.fromarray(np.rint(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8))
    width = max(1, round(image.width * height / image.height))
    return np.asarray(image.resize((width, height), Image.BILINEAR), dtype=np.float32) / 255.0


def _checkerboard(height: int, width: int, cell: int = 8) -> np.ndarray:
    """Light/dark grey checkerboard (H, W, 3), the usual backdrop for transparency."""
    yy, xx = np.mgrid[0:height, 0:width]
    light = ((yy // cell + xx // cell) % 2).astype(np.float32)
    return np.repeat((0.6 + 0.25 * light)[..., None], 3, axis=2)


def sample_strip(rows: Iterable[dict[str, np.ndarray]], height: int = PANEL_HEIGHT) -> np.ndarray:
    """Stack one row per sample: input | trimap | predicted alpha | true alpha | composite.

    Parameters
    ----------
    rows : iterable of dict
        ``image``, ``fg`` (H, W, 3), ``trimap``, ``pred``, ``alpha`` (H, W), float32 in [0, 1].
        The composite is ``fg`` over a checkerboard with the predicted alpha.
    height : int
        Each row is resized to this height; narrower rows are padded with black on the right.

    Returns
    -------
    ndarray, float32, shape (rows * height, max row width, 3), values in [0, 1]
    """
    lines = []
    for row in rows:
        grey = [np.repeat(row[key][..., None], 3, axis=2) for key in ("trimap", "pred", "alpha")]
        backdrop = _checkerboard(*row["pred"].shape)
        over = composite(row["fg"], row["pred"], backdrop)
        panels = [row["image"], *grey, over]
        # Resized one by one so that interpolation never blends neighbouring panels.
        lines.append(np.concatenate([_resize_height(p, height) for p in panels], axis=1))
    width = max(line.shape[1] for line in lines)
    padded = [np.pad(line, ((0, 0), (0, width - line.shape[1]), (0, 0))) for line in lines]
    return np.concatenate(padded, axis=0)


class ImageCallback(keras.callbacks.Callback):
    """Sample strips of a fixed set of val samples: TensorBoard image and PNG.

    Written at step 0 of a new run, every ``every`` steps, and at the end of training, to
    ``run_dir/samples/step_XXXXXXX.png`` (the timelapse frames) and to TensorBoard as the image
    ``samples``.
    """

    def __init__(self, dataset_fn, every: int, run_dir: Path, writer=None):
        super().__init__()
        self.dataset_fn = dataset_fn
        self.every = every
        self.samples_dir = Path(run_dir) / "samples"
        self.writer = writer
        self.last_step: int | None = None

    def on_train_begin(self, logs=None):
        self.predictor = _Predictor(self.model.generator)
        self.samples = [
            {key: value.numpy() for key, value in batch.items()} for batch in self.dataset_fn()
        ]
        if logs["step"] == 0:
            self.write(0)

    def on_train_batch_end(self, batch, logs=None):
        if batch % self.every == 0:
            self.write(batch)

    def on_train_end(self, logs=None):
        done = (self.samples_dir / f"step_{logs['step']:07d}.png").exists()
        if not (logs.get("interrupted") or logs.get("error") or done):
            self.write(logs["step"])

    def write(self, step: int) -> Path:
        rows = []
        for sample in self.samples:
            pred = self.predictor(sample)
            image, fg, trimap, alpha, pred = _valid_crop(
                sample,
                sample["image"][0],
                sample["fg"][0],
                sample["trimap"][0, ..., 0],
                sample["alpha"][0, ..., 0],
                pred,
            )
            rows.append({"image": image, "fg": fg, "trimap": trimap, "alpha": alpha, "pred": pred})
        strip = sample_strip(rows)
        path = self.samples_dir / f"step_{step:07d}.png"
        write_png(path, strip)
        if self.writer is not None:
            with self.writer.as_default(step=step):
                write_image("samples", strip, step)
            self.writer.flush()
        self.last_step = step
        return path


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


class StopRequest:
    """Set by a signal handler; the loop stops after the step in progress."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def request(self, signum: int) -> None:
        self.signum = signum

    def __bool__(self) -> bool:
        return self.signum is not None


def train_loop(
    model: MattingGAN,
    iterator,
    step: tf.Variable,
    total_steps: int,
    *,
    strategy: tf.distribute.Strategy,
    global_batch: int,
    log_every: int,
    callbacks: list[keras.callbacks.Callback],
    stop: StopRequest | None = None,
) -> dict[str, Any]:
    """Train until ``step`` reaches ``total_steps`` or ``stop`` is set.

    After each step, ``step`` is incremented and every callback gets
    ``on_train_batch_end(step, logs)`` where ``logs`` holds the loss means over the current
    window of ``log_every`` steps (trackers are reset when ``step % log_every == 0``) plus
    ``images_per_second`` (a moving average; the first, tracing step is left out).

    When an exception escapes, callbacks still get ``on_train_end`` (with ``"error": True``;
    the checkpoint callback saves at the step reached) and the exception is re-raised.

    Returns
    -------
    dict
        The last logs, with ``step`` and ``interrupted``.
    """
    stop = stop if stop is not None else StopRequest()
    train_function = make_train_function(model, strategy)
    for callback in callbacks:
        callback.set_model(model)
    for callback in callbacks:
        callback.on_train_begin({"step": int(step.numpy())})
    logs: dict[str, Any] = {}
    rate = None
    end = {"step": int(step.numpy()), "interrupted": False, "error": False}
    try:
        while int(step.numpy()) < total_steps and not stop:
            started = time.perf_counter()
            outputs = train_function(iterator)
            logs = {key: float(value) for key, value in outputs.items()}
            current = int(step.assign_add(1).numpy())
            elapsed = time.perf_counter() - started
            if current > end["step"] + 1:
                instant = global_batch / max(elapsed, 1e-9)
                rate = instant if rate is None else 0.9 * rate + 0.1 * instant
            logs["images_per_second"] = rate or 0.0
            for callback in callbacks:
                callback.on_train_batch_end(current, logs)
            if current % log_every == 0:
                model.reset_metrics()
    except BaseException:
        end = {"step": int(step.numpy()), "interrupted": False, "error": True}
        for callback in callbacks:
            callback.on_train_end(end)
        raise
    end = {"step": int(step.numpy()), "interrupted": bool(stop), "error": False}
    for callback in callbacks:
        callback.on_train_end(end)
    return {**logs, **end}


@dataclass
class TrainResult:
    """What :func:`train` did: the last step, its checkpoint, and why it stopped."""

    step: int
    checkpoint: Path | None
    interrupted_by: int | None
    logs: dict[str, Any]
    best_sad: float | None
    validations: list[dict[str, float]]


def train(
    data: str | os.PathLike,
    run_dir: str | os.PathLike,
    cfg: ModelConfig,
    settings: TrainSettings,
    *,
    resume: str | os.PathLike | None = None,
    init_from: keras.Model | None = None,
    strategy: tf.distribute.Strategy | None = None,
    stop: StopRequest | None = None,
    progress: bool = True,
) -> TrainResult:
    """Build the model, restore ``resume`` if given, and train with all callbacks.

    Parameters
    ----------
    data : path
        Dataset root written by ``scripts/combine.py`` (``train`` and, for validation and
        images, ``val`` splits).
    run_dir : path
        ``log/<run>``; its ``config.json`` is written by the caller (:func:`start_run`).
    cfg : ModelConfig
    settings : TrainSettings
    resume : path, optional
        Checkpoint prefix to continue from (step, weights and optimiser state).
    init_from : keras.Model, optional
        A trained generator whose weights a new run starts from (:func:`warm_start`).
    strategy : tf.distribute.Strategy, optional
        From :func:`make_strategy`; default ``make_strategy(settings.distribute)``.
    stop : StopRequest, optional
        Checked after every step.
    progress : bool
        Show the tqdm bar (on the chief).

    Raises
    ------
    model.dataset.DatasetError, CheckpointError
        Bad data or a checkpoint of another architecture, before training starts.
    """
    strategy = strategy or make_strategy(settings.distribute)
    chief = is_chief(strategy)
    run_dir = Path(run_dir)
    keras.utils.set_random_seed(settings.seed)
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(
        "mixed_float16" if settings.mixed_precision else "float32"
    )
    checkpoint = None
    try:
        build_cfg = cfg
        if resume is not None and cfg.encoder_weights is not None:
            # The checkpoint replaces the encoder weights anyway; skip loading ImageNet ones.
            build_cfg = dataclasses.replace(cfg, encoder_weights=None)
        model = build_model(build_cfg, settings, strategy)
        checkpoint = RunCheckpoint(model, run_dir, keep=settings.keep, chief=chief)
        start = 0
        if resume is None and init_from is not None:
            warm_start(model.generator, init_from)
        if resume is not None:
            start = checkpoint.restore(resume)
            for optimizer in (model.g_optimizer, model.d_optimizer):
                optimizer.learning_rate = settings.lr  # a resumed run may change --lr
        replicas = strategy.num_replicas_in_sync
        prior = cfg.prior is not None
        n_train = len(list_samples(data, "train", prior=prior))
        total = settings.total_steps(n_train, replicas)
        iterator = iter(make_distributed_dataset(data, settings, strategy, start, prior))

        writer = tf.summary.create_file_writer(str(run_dir / "tensorboard")) if chief else None
        saver = CheckpointCallback(checkpoint, settings.save_every)
        callbacks: list[keras.callbacks.Callback] = [
            ProgressCallback(total, disable=not (progress and chief))
        ]
        if writer is not None:
            callbacks.append(ScalarCallback(writer, settings.log_every))
        callbacks.append(saver)
        validation = None
        if settings.val_every and settings.max_val_samples:
            validation = ValidationCallback(
                lambda: make_eval_dataset(
                    data,
                    "val",
                    multiple=cfg.multiple,
                    max_samples=settings.max_val_samples,
                    prior=prior,
                ),
                settings.val_every,
                checkpoint,
                writer=writer,
                run_dir=run_dir if chief else None,
            )
            callbacks.append(validation)
        if chief and settings.image_every and settings.image_samples:
            callbacks.append(
                ImageCallback(
                    lambda: make_eval_dataset(
                        data,
                        "val",
                        multiple=cfg.multiple,
                        max_samples=settings.image_samples,
                        prior=prior,
                    ),
                    settings.image_every,
                    run_dir,
                    writer,
                )
            )
        logs = train_loop(
            model,
            iterator,
            checkpoint.step,
            total,
            strategy=strategy,
            global_batch=settings.batch_size * replicas,
            log_every=settings.log_every,
            callbacks=callbacks,
            stop=stop,
        )
        if writer is not None:
            writer.close()
        return TrainResult(
            step=logs["step"],
            checkpoint=saver.last_path if chief else None,
            interrupted_by=stop.signum if stop else None,
            logs=logs,
            best_sad=validation.best_sad if validation and validation.history else None,
            validations=validation.history if validation else [],
        )
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
        if checkpoint is not None:
            checkpoint.close()


# --------------------------------------------------------------------------------------------
# Timelapse
# --------------------------------------------------------------------------------------------


def make_timelapse(run_dir: str | os.PathLike, *, frame_ms: int = 250, hold_ms: int = 2000) -> Path:
    """Assemble ``run_dir/samples/step_*.png`` into ``run_dir/timelapse.gif``.

    Frames are in step order, each labelled with its step; the last one is held ``hold_ms``.

    Raises
    ------
    RunError
        No sample strips in the run.
    """
    run_dir = Path(run_dir)
    paths = sorted((run_dir / "samples").glob("step_*.png"))
    if not paths:
        raise RunError(f"{run_dir / 'samples'}: no step_*.png sample strips to assemble")
    frames = []
    for path in paths:
        with Image.open(path) as image:
            strip = image.convert("RGB")
        label_height = 16
        frame = Image.new("RGB", (strip.width, strip.height + label_height))
        frame.paste(strip, (0, label_height))
        step = int(path.stem.split("_")[1])
        ImageDraw.Draw(frame).text((4, 2), f"step {step}", fill=(255, 255, 255))
        frames.append(frame)
    width = max(frame.width for frame in frames)
    height = max(frame.height for frame in frames)
    frames = [_pad_frame(frame, width, height) for frame in frames]
    durations = [frame_ms] * (len(frames) - 1) + [hold_ms]
    target = run_dir / "timelapse.gif"
    with atomic_path(target) as temp:
        frames[0].save(
            temp,
            format="GIF",
            save_all=True,
            append_images=frames[1:],
            duration=durations,
            loop=0,
        )
    return target


def _pad_frame(frame: Image.Image, width: int, height: int) -> Image.Image:
    if frame.size == (width, height):
        return frame
    padded = Image.new("RGB", (width, height))
    padded.paste(frame, (0, 0))
    return padded


def read_validation_history(run_dir: str | os.PathLike) -> list[dict]:
    """The records of ``run_dir/validation.jsonl`` in order (empty if there are none)."""
    path = Path(run_dir) / "validation.jsonl"
    return read_records(path) if path.exists() else []
