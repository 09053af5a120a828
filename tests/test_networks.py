"""Tests for model.networks: shapes, ranges, config, MobileNetV2 fallback, one training step."""

from __future__ import annotations

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops
from keras.src.applications import mobilenet_v2

from model.networks import ModelConfig, build_discriminator, build_generator, clamp_known
from model.networks.generator import PRIOR_EPSILON
from model.training import warm_start

TINY = ModelConfig(base_filters=4, depth=2, disc_filters=4, disc_layers=2)


def _batch(height: int, width: int, batch: int = 2, seed: int = 0) -> np.ndarray:
    """(B, H, W, 4) float32: random RGB in [0, 1] ++ a random trimap in {0, 0.5, 1}."""
    rng = np.random.default_rng(seed)
    rgb = rng.random((batch, height, width, 3), dtype=np.float32)
    trimap = rng.choice(np.float32([0.0, 0.5, 1.0]), size=(batch, height, width, 1))
    return np.concatenate([rgb, trimap], axis=-1)


@pytest.fixture(scope="module")
def tiny_generator() -> keras.Model:
    return build_generator(TINY)


@pytest.mark.parametrize(("height", "width"), [(32, 32), (64, 48)])
def test_generator_shape_dtype_and_range(tiny_generator, height, width):
    alpha = ops.convert_to_numpy(tiny_generator(_batch(height, width), training=False))
    assert alpha.shape == (2, height, width, 1)
    assert alpha.dtype == np.float32
    assert tiny_generator.name == "generator"
    assert np.all((alpha >= 0.0) & (alpha <= 1.0))
    # A sigmoid output, not a constant: different pixels get different values.
    assert alpha.std() > 0


def test_generator_skips_and_upsampling(tiny_generator):
    # U-Net skips at every level, and the raw 4-channel input re-enters at full resolution.
    by_name = {layer.name: layer for layer in tiny_generator.layers}
    assert [t.shape[-1] for t in by_name["head_input_skip"].input] == [4, 4]  # [F, RGB+trimap]
    assert by_name["head_input_skip"].input[1] is tiny_generator.input
    for level in range(TINY.depth):
        filters = TINY.base_filters * 2**level
        assert [t.shape[-1] for t in by_name[f"dec{level}_skip"].input] == [filters, filters]
    # Upsampling is a bilinear resize (plus a conv), never a transposed convolution.
    resizes = [
        layer for layer in tiny_generator.layers if isinstance(layer, keras.layers.UpSampling2D)
    ]
    assert len(resizes) == TINY.depth
    assert all(layer.interpolation == "bilinear" for layer in resizes)
    assert not any(
        isinstance(layer, keras.layers.Conv2DTranspose) for layer in tiny_generator.layers
    )


@pytest.mark.parametrize("norm", ["group", "none"])
def test_generator_other_norms(norm):
    generator = build_generator(ModelConfig(base_filters=4, depth=2, norm=norm))
    assert tuple(generator(_batch(16, 8, batch=1)).shape) == (1, 16, 8, 1)


@pytest.mark.parametrize(("height", "width"), [(32, 32), (64, 48)])
def test_discriminator_shape(height, width):
    # disc_layers stride-2 convolutions: the logits have stride 2**disc_layers.
    for layers, stride in ((2, 4), (3, 8)):
        cfg = ModelConfig(disc_filters=4, disc_layers=layers, norm="batch")
        assert cfg.disc_stride == stride
        discriminator = build_discriminator(cfg)
        logits = discriminator(_batch(height, width), training=False)
        assert discriminator.name == "discriminator"
        assert tuple(logits.shape) == (2, height // stride, width // stride, 1)
        assert ops.convert_to_numpy(logits).dtype == np.float32
    # Raw logits, not probabilities: some fall outside [0, 1] for random weights and inputs.
    values = ops.convert_to_numpy(logits)
    assert values.min() < 0.0 or values.max() > 1.0


def test_default_discriminator_is_h_over_8():
    logits = build_discriminator(ModelConfig())(_batch(64, 32, batch=1), training=False)
    assert tuple(logits.shape) == (1, 8, 4, 1)


def test_mixed_precision_outputs_stay_float32():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        generator = build_generator(TINY)
        discriminator = build_discriminator(TINY)
        x = _batch(16, 16, batch=1)
        assert generator.get_layer("enc0_a_conv").compute_dtype == "float16"
        assert ops.convert_to_numpy(generator(x)).dtype == np.float32
        assert ops.convert_to_numpy(discriminator(x)).dtype == np.float32
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_config_round_trip_through_json():
    cfg = ModelConfig(encoder="mobilenetv2", base_filters=8, norm="group", encoder_weights=None)
    data = json.loads(json.dumps(cfg.to_dict()))
    assert data["encoder_weights"] is None
    assert ModelConfig.from_dict(data) == cfg
    assert ModelConfig.from_dict({}) == ModelConfig()


def test_config_rejects_unknown_keys_and_bad_values():
    with pytest.raises(ValueError, match="unknown model config keys: colour, width"):
        ModelConfig.from_dict({"depth": 3, "width": 2, "colour": "red"})
    with pytest.raises(ValueError, match="norm must be one of"):
        ModelConfig(norm="instance")
    with pytest.raises(ValueError, match="encoder must be one of"):
        ModelConfig(encoder="resnet")
    with pytest.raises(ValueError, match="depth must be a positive integer"):
        ModelConfig(depth=0)


def test_multiple():
    assert ModelConfig().multiple == 16  # 2**4
    assert TINY.multiple == 4
    assert ModelConfig(depth=5).multiple == 32
    assert ModelConfig(encoder="mobilenetv2", depth=2).multiple == 32


def test_mobilenetv2_generator_builds_without_weights():
    cfg = ModelConfig(encoder="mobilenetv2", base_filters=4, encoder_weights=None)
    generator = build_generator(cfg)
    batch = _batch(64, 64, batch=1)
    alpha = ops.convert_to_numpy(generator(batch, training=False))
    assert alpha.shape == (1, 64, 64, 1)
    assert generator.get_layer("encoder").get_layer("block_16_project") is not None
    # The encoder sees RGB only; the trimap must still reach the output (decoder and head).
    other = np.array(batch)
    other[..., 3] = 1.0 - other[..., 3]
    assert np.abs(ops.convert_to_numpy(generator(other, training=False)) - alpha).max() > 1e-4


def test_imagenet_fallback_prints_one_notice(monkeypatch, tmp_path, capsys):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: no network in this test")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(mobilenet_v2.file_utils, "get_file", offline)
    cfg = ModelConfig(encoder="mobilenetv2", base_filters=4, encoder_weights="imagenet")
    generator = build_generator(cfg)
    assert tuple(generator(_batch(32, 32, batch=1)).shape) == (1, 32, 32, 1)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "notice: ImageNet weights for MobileNetV2 unavailable "
        "(Exception: URL fetch failure: no network in this test); using random initialisation"
    ]


def _l1_step(generator: keras.Model, optimizer: keras.optimizers.Optimizer, x, target):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.abs(generator(x, training=True) - target))
    grads = tape.gradient(loss, generator.trainable_variables)
    optimizer.apply_gradients(zip(grads, generator.trainable_variables, strict=True))
    return loss


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf.function"])
def test_one_step_reduces_l1(compiled):
    # pix2pix smoke test: one optimiser step on a fixed batch lowers the loss it followed.
    keras.utils.set_random_seed(1)
    generator = build_generator(TINY)
    optimizer = keras.optimizers.Adam(1e-3)
    # Variables are created outside tf.function, which may only create them on its first trace.
    optimizer.build(generator.trainable_variables)
    x = tf.constant(_batch(16, 16, seed=1))
    target = tf.constant(np.random.default_rng(2).random((2, 16, 16, 1), dtype=np.float32))
    step = tf.function(_l1_step) if compiled else _l1_step
    before = float(step(generator, optimizer, x, target))
    after = float(tf.reduce_mean(tf.abs(generator(x, training=True) - target)))
    assert after < before
    assert int(optimizer.iterations.numpy()) == 1


def test_clamp_known_values():
    alpha = np.float32([0.3, 0.3, 0.3, 0.9, 0.4, 0.4]).reshape(1, 2, 3, 1)
    trimap = np.float32([0.0, 0.5, 1.0, 0.5, 0.1, 0.9]).reshape(1, 2, 3, 1)
    # bg -> 0, unknown -> alpha, fg -> 1, unknown -> alpha; off-grid known values (0.1, 0.9:
    # |t - 0.5| >= 0.25) still clamp to exactly 0 and 1.
    clamped = ops.convert_to_numpy(clamp_known(alpha, trimap))
    np.testing.assert_array_equal(clamped.ravel(), np.float32([0.0, 0.3, 1.0, 0.9, 0.0, 1.0]))
    assert clamped.shape == (1, 2, 3, 1)


@pytest.mark.parametrize("encoder", ["unet", "mobilenetv2"])
def test_untrained_prior_generator_returns_the_prior(encoder):
    cfg = ModelConfig(
        encoder=encoder, base_filters=4, depth=2, encoder_weights=None, prior="closed-form"
    )
    generator = build_generator(cfg)
    assert generator.input_shape == (None, None, None, 5)
    inputs = np.random.default_rng(0).uniform(0, 1, (2, 64, 64, 5)).astype(np.float32)
    alpha = generator(inputs).numpy()
    # The correction's last layer starts at zero: sigmoid(logit(clip(prior))) = clip(prior).
    expected = np.clip(inputs[..., 4:], PRIOR_EPSILON, 1 - PRIOR_EPSILON)
    np.testing.assert_allclose(alpha, expected, atol=1e-5)


def test_warm_start_keeps_the_source_features_and_starts_at_the_prior():
    source = build_generator(TINY)
    rng = np.random.default_rng(1)
    # Positive values keep batch-norm variances valid.
    source.set_weights([rng.uniform(0.05, 0.3, w.shape).astype(np.float32) for w in source.weights])
    target = build_generator(dataclasses.replace(TINY, prior="closed-form"))
    copied = warm_start(target, source)
    assert {"head_logits", "enc0_a_conv"} <= set(copied) and "head_correction" not in copied
    kernel, old = (
        target.get_layer("enc0_a_conv").kernel.numpy(),
        source.get_layer("enc0_a_conv").kernel.numpy(),
    )
    np.testing.assert_array_equal(kernel[:, :, :4], old)
    assert not kernel[:, :, 4:].any()

    inputs = rng.uniform(0, 1, (1, 32, 32, 5)).astype(np.float32)
    features = [
        keras.Model(model.input, model.get_layer("head_b_relu").output)
        for model in (source, target)
    ]
    # The extra prior channel meets zero weights, so every feature is the source's own.
    np.testing.assert_allclose(
        features[1](inputs).numpy(), features[0](inputs[..., :4]).numpy(), atol=1e-5
    )
    expected = np.clip(inputs[..., 4:], PRIOR_EPSILON, 1 - PRIOR_EPSILON)
    np.testing.assert_allclose(target(inputs).numpy(), expected, atol=1e-5)
    # Without a prior (pymatting's fallback: the prior is the trimap) it answers as the source.
    fallback = inputs.copy()
    fallback[..., 4] = fallback[..., 3]
    np.testing.assert_allclose(
        target(fallback).numpy(), source(fallback[..., :4]).numpy(), atol=1e-5
    )


def test_config_without_a_prior_key_loads_as_prior_free():
    data = TINY.to_dict()
    del data["prior"]
    assert ModelConfig.from_dict(data).prior is None
    with pytest.raises(ValueError, match="prior"):
        ModelConfig(prior="knn")
