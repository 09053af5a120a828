"""The temporal plate model: the previous-alpha channel, its training clips, its fine-tune, and
its use in the video pipeline. Tiny networks (tests/test_plate.py's TINY_PLATE), small clips."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_inference import write_run
from test_plate import TINY_PLATE

import train
from model import video_matting as vm
from model.compositing import composite
from model.networks import ModelConfig, build_generator
from model.plate_clips import ClipSampler, training_clip
from model.plate_inference import PlateMatter
from model.training.temporal_plate import (
    TemporalSettings,
    build_temporal_generator,
    train_temporal,
    unrolled_losses,
)

TINY_TEMPORAL = dataclasses.replace(TINY_PLATE, previous_alpha=True)


def _inputs(seed: int, shape=(2, 16, 24)) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (*shape, 6)).astype(np.float32)


# ------------------------------------------------------------------------------ config, network


def test_previous_alpha_config_round_trip_and_refusal():
    assert TINY_TEMPORAL.input_channels == 7 and TINY_PLATE.input_channels == 6
    assert ModelConfig.from_dict(TINY_TEMPORAL.to_dict()) == TINY_TEMPORAL
    # A config.json written before the field existed is a still model.
    assert ModelConfig.from_dict({"task": "plate"}).previous_alpha is False
    with pytest.raises(ValueError, match="previous_alpha needs task 'plate'"):
        ModelConfig(previous_alpha=True)


def test_plate_features_put_the_previous_alpha_last():
    from model.networks.plate import PlateFeatures

    rng = np.random.default_rng(3)
    image, plate = rng.uniform(0, 1, (2, 1, 5, 7, 3)).astype(np.float32)
    previous = rng.uniform(0, 1, (1, 5, 7, 1)).astype(np.float32)
    features = PlateFeatures()(np.concatenate([image, plate, previous], axis=-1)).numpy()
    assert features.shape == (1, 5, 7, 10)
    np.testing.assert_allclose(features[..., 6:9], np.abs(image - plate), atol=1e-7)
    np.testing.assert_array_equal(features[..., 9:], previous)


def test_warm_start_zero_initialises_the_previous_alpha_channel():
    still = build_generator(TINY_PLATE)
    temporal, config = build_temporal_generator(still, TINY_PLATE)
    assert config.previous_alpha and config.input_channels == 7
    kernel = temporal.get_layer("enc0_a_conv").get_weights()[0]
    assert kernel.shape[2] == 10 and not kernel[:, :, 9].any()
    assert not temporal.get_layer("head_a_conv").get_weights()[0][:, :, -1].any()
    x = _inputs(0)
    expected = still(x, training=False).numpy()
    for seed in (1, 2):  # whatever the previous alpha, the step-0 model is the still model
        previous = np.random.default_rng(seed).uniform(0, 1, (*x.shape[:3], 1)).astype(np.float32)
        got = temporal(np.concatenate([x, previous], axis=-1), training=False).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_warm_start_refuses_a_trimap_model():
    from model.training.temporal_plate import temporal_config

    with pytest.raises(ValueError, match="plate model"):
        temporal_config(ModelConfig(base_filters=4, depth=2))


# ------------------------------------------------------------------------------ training clips


def test_training_clip_is_a_moving_composite_over_a_static_scene(tiny_dataset):
    from model.images import read_alpha, read_image

    folder = tiny_dataset / "train"
    fg, bg = (
        read_image(folder / "fg" / "train_000.png"),
        read_image(folder / "bg" / "train_000.png"),
    )
    alpha = read_alpha(folder / "alpha" / "train_000.png")
    rng = np.random.default_rng(0)
    clip = training_clip(
        fg, alpha, bg, rng, crop=32, frames=5, noise_max=0.0, flicker_probability=0.0
    )
    assert clip["image"].shape == (5, 32, 32, 3) and clip["alpha"].shape == (5, 32, 32, 1)
    assert clip["bg"].shape == clip["plate"].shape == (32, 32, 3)
    for t in range(5):  # noise-free: exactly the matting equation over the one scene
        expected = composite(clip["fg"][t], clip["alpha"][t, ..., 0], clip["bg"])
        np.testing.assert_allclose(clip["image"][t], expected, atol=1e-5)
    assert np.abs(np.diff(clip["alpha"], axis=0)).max() > 0.05  # the subject moves
    for key, value in clip.items():
        assert value.dtype == np.float32 and value.min() >= 0 and value.max() <= 1, key


def test_clip_sampler_is_reproducible(tiny_dataset):
    first = ClipSampler(tiny_dataset, "train", crop=16, frames=3, seed=4).batch(2)
    second = ClipSampler(tiny_dataset, "train", crop=16, frames=3, seed=4).batch(2)
    assert first["image"].shape == (2, 3, 16, 16, 3) and first["plate"].shape == (2, 16, 16, 3)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])


# ------------------------------------------------------------------------------ unrolled losses


def test_unrolled_losses_feed_each_frame_the_previous_prediction(tiny_dataset):
    generator = build_generator(TINY_TEMPORAL)
    batch = ClipSampler(tiny_dataset, "train", crop=16, frames=3, seed=1).batch(2)
    keep = np.array([[0, 1, 1], [0, 0, 1]], np.float32)
    losses = unrolled_losses(generator, {k: tf.constant(v) for k, v in batch.items()}, keep, 2.0)
    # By hand: frame t sees frame t-1's prediction where keep says so, zeros elsewhere.
    previous = np.zeros((2, 16, 16, 1), np.float32)
    predictions = []
    for t in range(3):
        fed = previous * keep[:, t, None, None, None]
        x = np.concatenate([batch["image"][:, t], batch["plate"], fed], axis=-1)
        previous = generator(x, training=False).numpy()
        predictions.append(previous)
    predicted = np.stack(predictions, axis=1)
    alpha, fg, image = batch["alpha"], batch["fg"], batch["image"]
    recomposed = predicted * fg + (1 - predicted) * batch["bg"][:, None]
    change = np.diff(predicted, axis=1) - np.diff(alpha, axis=1)
    expected = {
        "alpha": np.abs(predicted - alpha).mean(),
        "comp": np.abs(recomposed - image).mean(),
        "temporal": np.abs(change).mean(),
    }
    expected["total"] = expected["alpha"] + expected["comp"] + 2.0 * expected["temporal"]
    for name, value in expected.items():
        assert float(losses[name]) == pytest.approx(value, rel=1e-4), name


def test_a_short_fine_tune_lowers_the_loss_and_writes_a_loadable_run(tmp_path, tiny_dataset):
    keras.utils.set_random_seed(0)  # a fixed start: from some random ones 6 steps go uphill
    still = build_generator(TINY_PLATE)
    generator, config = build_temporal_generator(still, TINY_PLATE)
    settings = TemporalSettings(
        data=str(tiny_dataset), init_from="test", crop=16, frames=3, batch_size=2, steps=6,
        lr=1e-2, save_every=3,
    )  # fmt: skip
    fixed = ClipSampler(tiny_dataset, "train", crop=16, frames=3, seed=9).batch(2)

    class Fixed:  # the same batch every step, so the loss must fall
        def batch(self, size):
            return fixed

    keep = np.ones((2, 3), np.float32)
    tensors = {k: tf.constant(v) for k, v in fixed.items()}
    before = float(unrolled_losses(generator, tensors, keep, 1.0)["total"])
    lines = []
    assert train_temporal(generator, config, settings, Fixed(), tmp_path / "run", log=lines.append)
    after = float(unrolled_losses(generator, tensors, keep, 1.0)["total"])
    assert after < before
    assert lines and lines[0].startswith("step 1 total")
    matter = PlateMatter.load(str(tmp_path / "run"))
    assert matter.uses_previous_alpha and matter.ref.step == 6


def test_clip_mode_refuses_a_missing_dataset_on_one_line(tmp_path, capsys):
    args = [str(tmp_path / "nowhere"), "--task", "plate", "--clips", "--run", "r"]
    assert train.main([*args, "--log-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_clip_flags_without_clips_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        train.main([str(tmp_path), "--clip-frames", "6", "--run", "r", "--log-dir", str(tmp_path)])
    assert stopped.value.code == 2
    assert "--clip-frames is for clip training" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_clips_need_the_plate_task(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        train.main([str(tmp_path), "--clips", "--run", "r", "--log-dir", str(tmp_path)])
    assert stopped.value.code == 2
    assert "--clips needs --task plate" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------ inference


@pytest.fixture(scope="module")
def temporal_matter(tmp_path_factory) -> PlateMatter:
    log = tmp_path_factory.mktemp("temporal_log")
    write_run(log, "temporal", TINY_TEMPORAL)
    return PlateMatter.load("-1", log)


def test_plate_matter_feeds_the_previous_alpha_and_zeros_without_one(temporal_matter):
    rng = np.random.default_rng(5)
    image, plate = rng.uniform(0, 1, (2, 24, 32, 3)).astype(np.float32)
    previous = rng.uniform(0, 1, (24, 32)).astype(np.float32)
    network = temporal_matter.generator
    raw = np.concatenate([image, plate, previous[..., None]], axis=-1)[None]
    expected = np.clip(network(raw, training=False).numpy()[0, ..., 0], 0, 1)
    np.testing.assert_allclose(
        temporal_matter.predict_alpha(image, plate, previous), expected, atol=1e-5
    )
    zeros = np.concatenate([image, plate, np.zeros((24, 32, 1), np.float32)], axis=-1)[None]
    first = np.clip(network(zeros, training=False).numpy()[0, ..., 0], 0, 1)
    np.testing.assert_allclose(temporal_matter.predict_alpha(image, plate), first, atol=1e-5)
    with pytest.raises(ValueError, match="previous alpha"):
        temporal_matter.predict_alpha(image, plate, previous[:10])


class RecordingMatter:
    """A plate model that takes a previous alpha and records what it was given."""

    uses_previous_alpha = True

    def __init__(self):
        self.fed = []

    def predict_alpha(self, image, plate, previous=None):
        self.fed.append(previous)
        return np.full(image.shape[:2], 0.25 * len(self.fed), np.float32)


def test_plate_step_feeds_the_previous_output_or_nothing_frame_by_frame():
    frames = [np.full((8, 8, 3), v, np.float32) for v in (0.1, 0.2, 0.3)]
    plate = np.zeros((8, 8, 3), np.float32)
    matter = RecordingMatter()
    outputs = [r.alpha for r in vm.matte_frames(frames, vm.PlateMatting(matter, plate))]
    assert matter.fed[0] is None
    for fed, output in zip(matter.fed[1:], outputs[:-1], strict=True):
        np.testing.assert_array_equal(fed, output)
    still = RecordingMatter()
    list(vm.matte_frames(frames, vm.PlateMatting(still, plate, feed_previous=False)))
    assert still.fed == [None, None, None]
