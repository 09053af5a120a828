"""Tests for model/training: the GAN train step, checkpoints, strips, timelapse, learning."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from model.checkpoints import CheckpointError
from model.images import write_png
from model.networks import ModelConfig
from model.training import (
    D_KEYS,
    G_KEYS,
    RunCheckpoint,
    RunError,
    TrainSettings,
    build_model,
    make_strategy,
    make_timelapse,
    make_train_function,
    model_inputs,
    read_validation_history,
    sample_strip,
    start_run,
    train,
)

TINY = ModelConfig(base_filters=4, depth=2, disc_filters=4, disc_layers=2)


def tiny_model(gan: bool = True, seed: int = 0, cfg: ModelConfig = TINY):
    keras.utils.set_random_seed(seed)
    return build_model(cfg, TrainSettings(gan=gan, crop_size=32, batch_size=2))


def synthetic_batch(seed: int = 0, size: int = 32) -> dict[str, tf.Tensor]:
    """Two crops satisfying image = alpha fg + (1 - alpha) bg, with a trimap from alpha."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    radius = np.hypot(yy - size / 2, xx - size / 2)
    alpha = np.clip((size / 4 - radius) / 4 + 0.5, 0, 1)[None, ..., None].repeat(2, axis=0)
    trimap = np.where(alpha <= 0.0, 0.0, np.where(alpha >= 1.0, 1.0, 0.5))
    fg = rng.uniform(0, 1, (2, size, size, 3))
    bg = rng.uniform(0, 1, (2, size, size, 3))
    image = alpha * fg + (1 - alpha) * bg
    arrays = {"image": image, "trimap": trimap, "alpha": alpha, "fg": fg, "bg": bg}
    return {key: tf.constant(value, tf.float32) for key, value in arrays.items()}


def weights(model) -> list[np.ndarray]:
    return [v.numpy().copy() for v in model.trainable_variables]


def changed(before, after) -> bool:
    return any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))


def test_gan_step_matches_independent_loss_computation():
    model = tiny_model()
    batch = synthetic_batch()
    alpha, trimap = batch["alpha"].numpy(), batch["trimap"].numpy()
    fg, bg = batch["fg"].numpy(), batch["bg"].numpy()
    # In training mode, BatchNorm uses the batch's own statistics, so these forward passes
    # equal the ones inside train_step (which then updates the weights).
    pred = model.generator(model_inputs(batch["image"], batch["trimap"]), training=True).numpy()
    real_in = np.concatenate([alpha * fg + (1 - alpha) * bg, trimap], axis=-1)
    fake_in = np.concatenate([pred * fg + (1 - pred) * bg, trimap], axis=-1)
    real = model.discriminator(real_in, training=True).numpy()
    fake = model.discriminator(fake_in, training=True).numpy()
    g_before, d_before = weights(model.generator), weights(model.discriminator)

    logs = {key: float(value) for key, value in model.train_step(batch).items()}

    assert set(logs) == set(G_KEYS + D_KEYS)
    unknown = trimap == 0.5
    # Expected values from the definitions in DESIGN.md / model.losses (LSGAN, pix2pix halving).
    assert logs["g_alpha"] == pytest.approx(np.abs(pred - alpha)[unknown].mean(), rel=1e-4)
    assert logs["g_adversarial"] == pytest.approx(np.mean((fake - 1) ** 2), rel=1e-4)
    assert logs["d_real"] == pytest.approx(np.mean((real - 1) ** 2), rel=1e-4)
    assert logs["d_fake"] == pytest.approx(np.mean(fake**2), rel=1e-4)
    assert logs["d_total"] == pytest.approx((logs["d_real"] + logs["d_fake"]) / 2, rel=1e-5)
    w = model.loss_weights
    expected_total = (
        w.alpha * logs["g_alpha"]
        + w.composition * logs["g_composition"]
        + w.gradient * logs["g_gradient"]
        + w.adversarial * logs["g_adversarial"]
    )
    assert logs["g_total"] == pytest.approx(expected_total, rel=1e-5)
    assert changed(g_before, weights(model.generator))
    assert changed(d_before, weights(model.discriminator))
    assert int(model.g_optimizer.iterations.numpy()) == 1
    assert int(model.d_optimizer.iterations.numpy()) == 1


def test_step_under_tf_function_equals_eager_step():
    batch = synthetic_batch(seed=1)
    eager, graph = tiny_model(seed=3), tiny_model(seed=3)
    assert not changed(weights(eager), weights(graph))

    eager_logs = eager.train_step(batch)
    graph_logs = tf.function(graph.train_step)(batch)

    for key in G_KEYS + D_KEYS:
        assert float(graph_logs[key]) == pytest.approx(float(eager_logs[key]), rel=1e-4, abs=1e-6)
    for a, b in zip(weights(eager), weights(graph), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_no_gan_trains_generator_only_and_omits_discriminator_keys():
    model = tiny_model(gan=False)
    g_before, d_before = weights(model.generator), weights(model.discriminator)
    logs = tf.function(model.train_step)(synthetic_batch())
    assert set(logs) == {
        "g_alpha",
        "g_composition",
        "g_gradient",
        "g_sobel",
        "g_laplacian",
        "g_total",
    }
    assert changed(g_before, weights(model.generator))
    assert not changed(d_before, weights(model.discriminator))
    assert int(model.d_optimizer.iterations.numpy()) == 0


def test_trackers_average_over_steps_until_reset():
    # Two identical models see the same batches; only the second keeps its trackers.
    each, running = tiny_model(seed=5), tiny_model(seed=5)
    step_each, step_running = tf.function(each.train_step), tf.function(running.train_step)
    values = []
    for seed in (1, 2):
        each.reset_metrics()
        values.append(float(step_each(synthetic_batch(seed=seed))["g_alpha"]))
        mean = float(step_running(synthetic_batch(seed=seed))["g_alpha"])
    assert values[0] != pytest.approx(values[1])
    assert mean == pytest.approx(np.mean(values), rel=1e-5)
    running.reset_metrics()
    assert float(running.trackers["g_alpha"].result()) == 0.0


@pytest.mark.parametrize("mixed_precision, jit", [(True, False), (False, True)])
def test_mixed_precision_and_xla_steps(mixed_precision, jit):
    settings = TrainSettings(mixed_precision=mixed_precision, jit=jit)
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")
    try:
        keras.utils.set_random_seed(0)
        model = build_model(TINY, settings)
        strategy = make_strategy("none")
        batches = iter(tf.data.Dataset.from_tensors(synthetic_batch()).repeat())
        train_function = make_train_function(model, strategy)
        logs = [train_function(batches) for _ in range(2)]
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.jit_compile == jit
    wrapped = isinstance(model.g_optimizer, keras.optimizers.LossScaleOptimizer)
    assert wrapped == mixed_precision
    compute = model.generator.get_layer("enc0_a_conv").compute_dtype
    assert compute == ("float16" if mixed_precision else "float32")
    for step_logs in logs:
        assert all(np.isfinite(float(value)) for value in step_logs.values())
    assert int(model.g_optimizer.iterations.numpy()) == 2


def test_checkpoint_restores_weights_step_and_optimizer_state(tmp_path):
    model = tiny_model(seed=0)
    step = tf.function(model.train_step)
    for seed in range(3):
        step(synthetic_batch(seed=seed))
    saved = RunCheckpoint(model, tmp_path, keep=2)
    saved.step.assign(3)
    path = saved.save()
    assert path.name == "ckpt-3"

    fresh = tiny_model(seed=1)
    restored = RunCheckpoint(fresh, tmp_path, keep=2)
    assert restored.restore(path) == 3
    for name in ("generator", "discriminator", "g_optimizer", "d_optimizer"):
        source, target = getattr(model, name), getattr(fresh, name)
        assert len(source.variables) == len(target.variables) > 0
        for a, b in zip(source.variables, target.variables, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=f"{name}/{a.path}")
    # Adam's iteration count and non-zero first moments came back, not fresh zeros.
    assert int(fresh.g_optimizer.iterations.numpy()) == 3
    assert any(np.any(v.numpy() != 0) for v in fresh.g_optimizer.variables if "momentum" in v.path)


def test_restoring_another_architecture_is_a_checkpoint_error(tmp_path):
    saved = RunCheckpoint(tiny_model(), tmp_path, keep=1)
    path = saved.save()
    wider = tiny_model(cfg=ModelConfig(base_filters=8, depth=2, disc_filters=4, disc_layers=2))
    with pytest.raises(CheckpointError, match="does not match"):
        RunCheckpoint(wider, tmp_path / "other", keep=1).restore(path)


def test_save_is_once_per_step_and_keeps_the_newest(tmp_path):
    checkpoint = RunCheckpoint(tiny_model(), tmp_path, keep=2)
    for step in (1, 2, 2, 3):
        checkpoint.step.assign(step)
        checkpoint.save()
    names = sorted(p.name for p in (tmp_path / "checkpoints").glob("*.index"))
    assert names == ["ckpt-2.index", "ckpt-3.index"]


def test_strategy_choices(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert make_strategy("none").num_replicas_in_sync == 1
    # Without TF_CONFIG, auto mirrors over the GPUs when there are two or more, else one device.
    gpus = len(tf.config.list_physical_devices("GPU"))
    assert make_strategy("auto").num_replicas_in_sync == (gpus if gpus > 1 else 1)
    with pytest.raises(RunError, match="TF_CONFIG"):
        make_strategy("multiworker")


def test_start_run_refuses_pretrained_and_runs_with_checkpoints(tmp_path, tiny_dataset):
    with pytest.raises(RunError, match="shipped snapshot"):
        start_run(tmp_path, "pretrained", TINY, TrainSettings(), tiny_dataset)
    run_dir = start_run(tmp_path, "a", TINY, TrainSettings(seed=7), tiny_dataset)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"] == TINY.to_dict()
    assert config["seed"] == 7 and config["train"]["seed"] == 7
    assert config["train"]["data"] == str(tiny_dataset)
    assert config["version"] == 2
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "ckpt-5.index").write_bytes(b"")
    with pytest.raises(RunError, match="--resume"):
        start_run(tmp_path, "a", TINY, TrainSettings(), tiny_dataset)


def test_sample_strip_panels():
    height, width = 16, 24
    rng = np.random.default_rng(0)
    row = {
        "image": rng.uniform(0, 1, (height, width, 3)).astype(np.float32),
        "fg": np.full((height, width, 3), [1.0, 0.0, 0.0], np.float32),
        "trimap": np.full((height, width), 0.5, np.float32),
        "pred": np.ones((height, width), np.float32),
        "alpha": np.zeros((height, width), np.float32),
    }
    strip = sample_strip([row, row], height=32)
    # Two rows of five panels, each panel scaled 2x: (2 * 32, 5 * 48, 3).
    assert strip.shape == (64, 240, 3)
    panel = 48
    np.testing.assert_allclose(strip[:32, panel : 2 * panel], 0.5, atol=1 / 255)  # trimap
    np.testing.assert_allclose(strip[:32, 2 * panel : 3 * panel], 1.0, atol=1 / 255)  # pred
    np.testing.assert_allclose(strip[:32, 3 * panel : 4 * panel], 0.0, atol=1 / 255)  # truth
    # alpha = 1 everywhere: the composite panel is the pure foreground colour.
    red = np.broadcast_to(np.float32([1, 0, 0]), (32, panel, 3))
    np.testing.assert_allclose(strip[:32, 4 * panel :], red, atol=1 / 255)
    np.testing.assert_array_equal(strip[32:], strip[:32])


def test_timelapse_assembles_strips_in_step_order(tmp_path):
    samples = tmp_path / "samples"
    for step, level in ((100, 0.8), (0, 0.2), (50, 0.5)):
        write_png(samples / f"step_{step:07d}.png", np.full((20, 30, 3), level, np.float32))
    path = make_timelapse(tmp_path, frame_ms=100, hold_ms=500)
    assert path == tmp_path / "timelapse.gif"
    with Image.open(path) as gif:
        assert gif.n_frames == 3
        levels, durations = [], []
        for index in range(3):
            gif.seek(index)
            frame = np.asarray(gif.convert("L"), np.float32) / 255
            levels.append(frame[-1, -1])  # below the 16-px step label
            durations.append(gif.info["duration"])
    np.testing.assert_allclose(levels, [0.2, 0.5, 0.8], atol=0.02)
    assert durations == [100, 100, 500]


def test_timelapse_without_samples_is_an_error(tmp_path):
    with pytest.raises(RunError, match="no step_"):
        make_timelapse(tmp_path)


@pytest.mark.slow
def test_validation_sad_falls_while_training(tmp_path, tiny_dataset):
    settings = TrainSettings(
        crop_size=32,
        batch_size=2,
        steps=300,
        lr=1e-3,
        save_every=300,
        val_every=100,
        image_every=0,
        distribute="none",
    )
    run_dir = start_run(tmp_path, "learn", TINY, settings, tiny_dataset)
    result = train(tiny_dataset, run_dir, TINY, settings, progress=False)
    history = read_validation_history(run_dir)
    assert [record["step"] for record in history] == [0, 100, 200, 300]
    assert history == result.validations
    first, last = history[0]["sad"], history[-1]["sad"]
    assert last < 0.7 * first, history
    best = json.loads((run_dir / "best" / "best.json").read_text())
    assert best["sad"] == min(record["sad"] for record in history)
    assert (run_dir / "best" / f"ckpt-{best['step']}.index").exists()
