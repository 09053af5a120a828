"""The GAN model (G and D in one ``keras.Model``), its train step, optimisers and input pipeline."""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from model.dataset import make_train_dataset
from model.images import TRIMAP_UNKNOWN
from model.losses import (
    LOSS_TERMS,
    LossWeights,
    composite_tensors,
    discriminator_losses,
    generator_losses,
)
from model.networks import ModelConfig, build_discriminator, build_generator
from model.plate_data import make_plate_train_dataset
from model.training.settings import TrainSettings

G_KEYS = tuple(f"g_{term}" for term in (*LOSS_TERMS, "total"))
D_KEYS = ("d_real", "d_fake", "d_total")


def model_inputs(image, trimap, prior=None):
    """Generator input: RGB ++ trimap [++ prior], (B, H, W, 3) and (B, H, W, 1) each ->
    (B, H, W, 4 or 5) float32; for the plate generator, RGB ++ plate RGB -> (B, H, W, 6)."""
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
        composite_image = composite_tensors(fg, alpha, bg)  # (B, S, S, 3)
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
            generator with a prior -- as ``model.dataset`` yields them; or ``plate``
            (B, S, S, 3) in [0, 1] for the plate generator (``model.plate_data``).

        Returns
        -------
        dict of str to float32 scalar tensors
            The tracker means (see the class docstring for the keys).
        """
        image, trimap, alpha = batch["image"], batch["trimap"], batch["alpha"]
        fg, bg = batch["fg"], batch["bg"]
        # The plate model is judged on the whole image: its losses see an all-unknown trimap
        # (D still gets the ground-truth trimap, see model.plate_data).
        plate = batch.get("plate")
        loss_trimap = trimap if plate is None else tf.fill(tf.shape(trimap), TRIMAP_UNKNOWN)
        # Gradients are summed over replicas by the optimiser, so each replica's loss is
        # divided by their number to optimise the mean over the global batch.
        replicas = tf.distribute.get_replica_context().num_replicas_in_sync
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            if plate is None:
                inputs = model_inputs(image, trimap, batch.get("prior"))  # (B, S, S, C)
            else:
                inputs = model_inputs(image, plate)  # (B, S, S, 6)
            alpha_pred = self.generator(inputs, training=True)  # (B, S, S, 1)
            fake_logits = None
            if self.use_gan:
                real_logits = self._discriminate(alpha, fg, bg, trimap)
                # Reused for D's loss: d_tape differentiates with respect to D's variables
                # only, so the D update never reaches G, exactly as if alpha_pred were detached.
                fake_logits = self._discriminate(alpha_pred, fg, bg, trimap)
            g_losses = generator_losses(
                alpha_pred, alpha, loss_trimap, fg, bg, self.loss_weights, fake_logits
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
    out computing exactly what the source computed. Layers the source lacks (a prior's
    zero-initialised ``head_correction``) keep their initialisation.

    Returns
    -------
    list of str
        Names of the layers that were copied or extended.
    """
    source_layers = {layer.name: layer for layer in source.layers}
    copied = []
    for layer in generator.layers:
        old = source_layers.get(layer.name)
        if old is None or not layer.weights:
            continue
        new_values, old_values = layer.get_weights(), old.get_weights()
        if len(new_values) != len(old_values):
            continue
        values = []
        for new, value in zip(new_values, old_values, strict=True):
            if new.shape == value.shape:
                values.append(value)
            elif _gained_input_channels(new.shape, value.shape):
                extended = np.zeros_like(new)
                extended[:, :, : value.shape[2]] = value
                values.append(extended)
            else:
                break
        else:
            layer.set_weights(values)
            copied.append(layer.name)
    return copied


def _gained_input_channels(new: tuple[int, ...], old: tuple[int, ...]) -> bool:
    """Whether conv kernel shape ``new`` is ``old`` with more input channels (axis 2)."""
    return len(new) == len(old) == 4 and new[:2] + new[3:] == old[:2] + old[3:] and new[2] > old[2]


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
    plate: bool = False,
):
    """The training batches, one ``settings.batch_size`` batch per replica per step.

    With ``prior`` the batches carry the stored closed-form mattes; these belong to the stored
    composites and trimaps, so re-composition and re-drawn trimaps are off (colour jitter stays).
    With ``plate`` they carry perturbed clean plates instead (``model.plate_data``).
    """

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        common = {
            "crop_size": settings.crop_size,
            "batch_size": settings.batch_size,
            "seed": data_seed(settings.seed, start_step, context.input_pipeline_id),
            "jitter": settings.augment,
        }
        if plate:
            return make_plate_train_dataset(data, "train", recompose=settings.augment, **common)
        return make_train_dataset(
            data,
            "train",
            recompose=settings.augment and not prior,
            redraw_trimap=settings.augment and not prior,
            prior=prior,
            **common,
        )

    return strategy.distribute_datasets_from_function(dataset_fn)
