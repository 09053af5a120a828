"""Benchmark: training throughput with the real input pipeline against one batch cached in memory.

Rows (images/s, each a ratio against the baseline from the same run):

* ``input pipeline alone`` -- ``model.dataset.make_train_dataset`` iterated without a model;
* ``train step, cached batch`` (the baseline) -- the training loop (``model.training.train_loop``,
  real train step and per-step bookkeeping) fed one batch repeated from memory;
* ``train step, real pipeline`` -- the same fed by the real pipeline; target ratio >= 0.9, i.e.
  the pipeline is never the bottleneck;
* ``... --jit`` -- the same two with the train step XLA-compiled;
* ``networks fwd+bwd`` -- G and D forward and backward alone (no optimiser, no pipeline), the one
  row that also runs under another Keras backend.

With ``KERAS_BACKEND=jax`` or ``torch`` only the networks row runs (no TensorFlow needed), so a
GPU machine without TensorFlow can time the networks; compare its images/s with the same row
of a TensorFlow run.

The dataset is made once in a temporary folder with scripts/synthesize.py and
scripts/combine.py (or pass ``--data``). Every timing leaves out ``--warmup`` steps (tracing,
XLA compilation, filling the prefetch buffer).

Usage::

    python3 bench/train.py                                   # 320 px crops, batch 8, default model
    python3 bench/train.py --steps 20 --batch-size 16 --data scripts/data
    python3 bench/train.py --base-filters 8 --depth 3 --no-jit   # a quicker look on a laptop
    KERAS_BACKEND=jax python3 bench/train.py                 # networks fwd+bwd under JAX
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from model.losses import LossWeights, discriminator_losses, generator_losses
from model.networks import ModelConfig, build_discriminator, build_generator

TARGET = 0.9
"""Real pipeline / cached batch must be at least this."""


def make_data(folder: Path, size: int, foregrounds: int) -> Path:
    """A small procedural dataset (synthesize + combine) under ``folder``; returns its root."""
    from scripts import combine, synthesize

    raw, data = folder / "raw", folder / "data"
    synth = ["--out", str(raw), "--count", str(foregrounds), "--backgrounds", str(foregrounds)]
    if synthesize.main([*synth, "--size", str(size)]) != 0:
        raise RuntimeError("scripts/synthesize.py failed")
    if combine.main([str(raw), "--out", str(data), "--per-fg", "2", "--test-per-fg", "1"]) != 0:
        raise RuntimeError("scripts/combine.py failed")
    return data


def synthetic_batch(batch_size: int, size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """One batch in the train dataset's format (matting equation exact), float32 numpy."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    alpha = np.clip((size / 4 - np.hypot(yy - size / 2, xx - size / 2)) / 8 + 0.5, 0, 1)
    alpha = np.repeat(alpha[None, ..., None], batch_size, axis=0).astype(np.float32)
    trimap = np.where(alpha <= 0, 0.0, np.where(alpha >= 1, 1.0, 0.5)).astype(np.float32)
    fg = rng.uniform(0, 1, (batch_size, size, size, 3)).astype(np.float32)
    bg = rng.uniform(0, 1, (batch_size, size, size, 3)).astype(np.float32)
    image = alpha * fg + (1 - alpha) * bg
    return {"image": image, "trimap": trimap, "alpha": alpha, "fg": fg, "bg": bg}


def time_pipeline(data: Path, crop: int, batch_size: int, batches: int) -> float:
    """Images/s of the input pipeline alone, after one batch of warm-up."""
    from model.dataset import make_train_dataset

    iterator = iter(make_train_dataset(data, crop_size=crop, batch_size=batch_size))
    next(iterator)
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - started)


def time_training(
    data: Path,
    cfg: ModelConfig,
    crop: int,
    batch_size: int,
    *,
    cached: bool,
    jit: bool,
    steps: int,
    warmup: int,
) -> float:
    """Images/s of ``train_loop`` over ``steps`` steps after ``warmup`` steps."""
    import tensorflow as tf

    from model.dataset import make_train_dataset
    from model.training import TrainSettings, build_model, make_distributed_dataset, train_loop

    settings = TrainSettings(crop_size=crop, batch_size=batch_size, jit=jit, distribute="none")
    strategy = tf.distribute.get_strategy()
    keras.utils.set_random_seed(0)
    model = build_model(cfg, settings, strategy)
    if cached:
        batch = next(iter(make_train_dataset(data, crop_size=crop, batch_size=batch_size)))
        iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
    else:
        iterator = iter(make_distributed_dataset(data, settings, strategy))

    class Clock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter())

    clock = Clock()
    step = tf.Variable(0, dtype=tf.int64)
    train_loop(
        model,
        iterator,
        step,
        warmup + steps,
        strategy=strategy,
        global_batch=batch_size,
        log_every=10,
        callbacks=[clock],
    )
    return steps * batch_size / (clock.times[-1] - clock.times[warmup - 1])


def networks_step(cfg: ModelConfig, batch: dict[str, np.ndarray]):
    """A function running G and D forward and backward once, for the current Keras backend.

    The loss is the generator total plus the discriminator total (one G pass, two D passes,
    gradients for both networks); no optimiser update, so it measures the networks alone.
    """
    backend = keras.backend.backend()
    generator, discriminator = build_generator(cfg), build_discriminator(cfg)
    weights = LossWeights()
    tensors = {key: keras.ops.convert_to_tensor(value) for key, value in batch.items()}
    image, trimap, alpha = tensors["image"], tensors["trimap"], tensors["alpha"]
    fg, bg = tensors["fg"], tensors["bg"]
    inputs = keras.ops.concatenate([image, trimap], axis=-1)  # (B, S, S, 4)
    real_in = keras.ops.concatenate([image, trimap], axis=-1)  # the image is the true composite

    def losses(pred, real_logits, fake_logits):
        g = generator_losses(pred, alpha, trimap, fg, bg, weights, fake_logits)
        return g["total"] + discriminator_losses(real_logits, fake_logits)["total"]

    def fake_input(pred):
        return keras.ops.concatenate([pred * fg + (1.0 - pred) * bg, trimap], axis=-1)

    if backend == "tensorflow":
        import tensorflow as tf

        variables = generator.trainable_variables + discriminator.trainable_variables

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                pred = generator(inputs, training=True)
                fake_logits = discriminator(fake_input(pred), training=True)
                loss = losses(pred, discriminator(real_in, training=True), fake_logits)
            # Returned, so that tf.function does not prune the backward pass.
            return loss, tape.gradient(loss, variables)

        return lambda: float(step()[0])

    if backend == "jax":
        import jax

        g_train = [v.value for v in generator.trainable_variables]
        g_fixed = [v.value for v in generator.non_trainable_variables]
        d_train = [v.value for v in discriminator.trainable_variables]
        d_fixed = [v.value for v in discriminator.non_trainable_variables]

        def loss_fn(g_train, d_train):
            pred, _ = generator.stateless_call(g_train, g_fixed, inputs, training=True)
            fake_logits, _ = discriminator.stateless_call(
                d_train, d_fixed, fake_input(pred), training=True
            )
            real_logits, _ = discriminator.stateless_call(d_train, d_fixed, real_in, training=True)
            return losses(pred, real_logits, fake_logits)

        grad_fn = jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1)))

        def run():
            loss, grads = grad_fn(g_train, d_train)
            jax.block_until_ready(grads)
            return float(loss)

        return run

    if backend == "torch":
        import torch

        variables = [
            v.value for v in generator.trainable_variables + discriminator.trainable_variables
        ]

        def run():
            for variable in variables:
                variable.grad = None
            pred = generator(inputs, training=True)
            fake_logits = discriminator(fake_input(pred), training=True)
            loss = losses(pred, discriminator(real_in, training=True), fake_logits)
            loss.backward()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            return float(loss.detach().cpu())

        return run

    raise SystemExit(f"error: KERAS_BACKEND={backend}: expected tensorflow, jax or torch")


def time_networks(cfg: ModelConfig, batch_size: int, crop: int, steps: int, warmup: int) -> float:
    run = networks_step(cfg, synthetic_batch(batch_size, crop))
    for _ in range(warmup):
        run()
    started = time.perf_counter()
    for _ in range(steps):
        run()
    return steps * batch_size / (time.perf_counter() - started)


def build_parser() -> argparse.ArgumentParser:
    defaults = ModelConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="dataset folder (default: make one)")
    parser.add_argument("--crop-size", type=int, default=320)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per row (5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (2)")
    parser.add_argument("--encoder", default=defaults.encoder)
    parser.add_argument("--base-filters", type=int, default=defaults.base_filters)
    parser.add_argument("--depth", type=int, default=defaults.depth)
    parser.add_argument("--no-jit", action="store_true", help="skip the --jit rows")
    parser.add_argument("--foregrounds", type=int, default=6, help="for the made dataset (6)")
    return parser


def main(args: list[str] | None = None) -> int:
    opts = build_parser().parse_args(args)
    if min(opts.steps, opts.warmup, opts.crop_size, opts.batch_size) < 1:
        print("error: --steps, --warmup, --crop-size, --batch-size must be >= 1", file=sys.stderr)
        return 2
    cfg = ModelConfig(
        encoder=opts.encoder,
        base_filters=opts.base_filters,
        depth=opts.depth,
        encoder_weights=None,
    )
    backend = keras.backend.backend()
    crop, batch_size = opts.crop_size, opts.batch_size
    print(
        f"training throughput: {crop}x{crop} crops, batch {batch_size}, {cfg.encoder} base"
        f" {cfg.base_filters} depth {cfg.depth}, Keras {keras.__version__} ({backend}),"
        f" {os.cpu_count()} CPU cores; {opts.warmup} warm-up + {opts.steps} timed steps per row",
        flush=True,
    )
    rows: list[tuple[str, float]] = []
    if backend == "tensorflow":
        with tempfile.TemporaryDirectory(prefix="bench-train-") as temp:
            data = opts.data or make_data(Path(temp), max(crop, 128) * 2, opts.foregrounds)
            timing = {"steps": opts.steps, "warmup": opts.warmup}
            rows.append(("input pipeline alone", time_pipeline(data, crop, batch_size, 20)))
            configs = [("", False)] + ([] if opts.no_jit else [(", --jit", True)])
            for label, jit in configs:
                for cached in (True, False):
                    source = "cached batch" if cached else "real pipeline"
                    speed = time_training(
                        data, cfg, crop, batch_size, cached=cached, jit=jit, **timing
                    )
                    rows.append((f"train step, {source}{label}", speed))
                    print(f"  {rows[-1][0]}: {speed:.2f} images/s", flush=True)
    rows.append(
        (
            f"networks fwd+bwd ({backend})",
            time_networks(cfg, batch_size, crop, opts.steps, opts.warmup),
        )
    )

    baseline = dict(rows).get("train step, cached batch", rows[-1][1])
    print()
    print(f"{'configuration':<40} {'images/s':>9} {'ratio':>7}")
    for name, speed in rows:
        print(f"{name:<40} {speed:9.2f} {speed / baseline:7.2f}")
    if backend == "tensorflow":
        table = dict(rows)
        for label in ("",) + (() if opts.no_jit else (", --jit",)):
            real = table[f"train step, real pipeline{label}"]
            ratio = real / table[f"train step, cached batch{label}"]
            verdict = "ok" if ratio >= TARGET else "BELOW TARGET"
            print(
                f"real pipeline / cached batch{label}: {ratio:.2f} (target >= {TARGET}) {verdict}"
            )
        if not opts.no_jit:
            ratio = table["train step, cached batch, --jit"] / table["train step, cached batch"]
            print(f"--jit / no jit (cached batch): {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
