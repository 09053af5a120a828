"""Plate matting pieces: the plate generator, plate perturbations, the difference key, the plate
data pipelines and a plate training step."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from model.networks import ModelConfig, build_discriminator, build_generator
from model.plate import (
    PlatePerturbation,
    cast_shadow,
    difference_key,
    key_trimap,
    paste_object,
    perturb_plate,
    random_perturbation,
)

TINY_PLATE = ModelConfig(
    task="plate", base_filters=4, depth=2, disc_filters=4, disc_layers=2, encoder_weights=None
)


def _texture(height: int = 40, width: int = 48, seed: int = 0) -> np.ndarray:
    """float32 (H, W, 3) in [0.1, 0.9]: smooth random texture (so sub-pixel warps are defined)."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0.0, 1.0, (height, width, 3)).astype(np.float32)
    return (0.1 + 0.8 * cv2.GaussianBlur(noise, (0, 0), 2.0)).astype(np.float32)


# ------------------------------------------------------------------------------ config, network


def test_model_config_task_round_trip_and_refusals():
    assert ModelConfig().task == "matting"
    # A config.json written before the task field existed is a matting model.
    assert ModelConfig.from_dict({"depth": 2}).task == "matting"
    assert ModelConfig.from_dict(TINY_PLATE.to_dict()) == TINY_PLATE
    assert TINY_PLATE.input_channels == 6
    with pytest.raises(ValueError, match="task must be one of"):
        ModelConfig(task="video")
    with pytest.raises(ValueError, match="prior None"):
        ModelConfig(task="plate", prior="closed-form")
    with pytest.raises(ValueError, match="encoder 'unet'"):
        ModelConfig(task="plate", encoder="mobilenetv2")


def test_plate_generator_shapes_and_range():
    generator = build_generator(TINY_PLATE)
    batch = np.random.default_rng(0).uniform(0, 1, (2, 16, 24, 6)).astype(np.float32)
    alpha = generator(batch).numpy()
    assert alpha.shape == (2, 16, 24, 1)
    assert alpha.min() >= 0.0 and alpha.max() <= 1.0
    # The discriminator is unchanged by the task: composite RGB ++ one guide channel.
    logits = build_discriminator(TINY_PLATE)(np.zeros((2, 16, 24, 4), np.float32))
    assert logits.shape == (2, 4, 6, 1)


def test_plate_features_are_image_plate_and_their_difference():
    from model.networks.plate import PlateFeatures

    rng = np.random.default_rng(1)
    image, plate = rng.uniform(0, 1, (2, 1, 5, 7, 3)).astype(np.float32)
    features = PlateFeatures()(np.concatenate([image, plate], axis=-1)).numpy()
    np.testing.assert_allclose(features[..., :3], image)
    np.testing.assert_allclose(features[..., 3:6], plate)
    np.testing.assert_allclose(features[..., 6:], np.abs(image - plate), atol=1e-7)


# ------------------------------------------------------------------------------ perturbations


def test_identity_perturbation_returns_a_copy():
    background = _texture()
    plate = perturb_plate(background, PlatePerturbation())
    np.testing.assert_array_equal(plate, background)
    assert plate is not background


def test_integer_shift_moves_pixels_right_and_down():
    background = _texture()
    plate = perturb_plate(background, PlatePerturbation(shift=(3.0, 2.0)))
    # plate(y, x) = background(y - 2, x - 3) away from the reflected border.
    np.testing.assert_allclose(plate[2:, 3:], background[:-2, :-3], atol=1e-6)


def test_gain_white_balance_gamma_and_clipping():
    background = _texture()
    p = PlatePerturbation(gain=1.06, white_balance=(1.0, 0.9, 1.1), gamma=0.8)
    expected = np.clip(background * 1.06 * np.array([1.0, 0.9, 1.1], np.float32), 0, 1) ** 0.8
    np.testing.assert_allclose(perturb_plate(background, p), expected, atol=1e-6)


def test_noise_has_the_requested_sigma_and_is_seeded():
    background = np.full((200, 200, 3), 0.5, np.float32)
    noisy = perturb_plate(background, PlatePerturbation(noise=0.01, seed=3))
    assert abs(float(np.std(noisy - background)) - 0.01) < 5e-4
    again = perturb_plate(background, PlatePerturbation(noise=0.01, seed=3))
    np.testing.assert_array_equal(noisy, again)


def test_random_perturbations_stay_in_their_ranges():
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = random_perturbation(rng)
        assert max(abs(v) for v in p.shift) <= 6.0 and abs(p.rotation) <= 1.0
        assert 0.85 <= p.gain <= 1.15 and 0.85 <= p.gamma <= 1.15
        assert all(0.95 <= v <= 1.05 for v in p.white_balance)
        assert 0.0 <= p.noise <= 0.03 and (p.blur == 0.0 or 0.3 <= p.blur <= 1.5)


def test_shadow_only_darkens_and_darkens_near_the_subject():
    background = np.full((64, 64, 3), 0.8, np.float32)
    alpha = np.zeros((64, 64), np.float32)
    alpha[24:40, 24:40] = 1.0
    shaded = cast_shadow(background, alpha, np.random.default_rng(0))
    assert np.all(shaded <= background + 1e-7)
    assert shaded.min() < 0.8 - 0.01  # some shadow fell inside the frame
    assert shaded.min() >= 0.8 * 0.5 - 1e-6  # at most the strongest strength, 0.5


def test_pasted_object_changes_only_a_part():
    image = _texture(64, 64)
    changed = np.abs(paste_object(image, np.random.default_rng(2)) - image).max(axis=2) > 1e-6
    assert 0.0 < changed.mean() < 0.5


# ------------------------------------------------------------------------------ difference key


def test_difference_key_ramp_by_hand():
    plate = np.full((1, 4, 3), 0.5, np.float32)
    image = plate.copy()
    # Channel distances 0.0, 0.1 (= threshold: alpha 0.5), 0.12, 0.3 (max over channels).
    image[0, 1, 2] += 0.1
    image[0, 2, 0] += 0.12
    image[0, 3, 1] -= 0.3
    alpha = difference_key(image, plate, threshold=0.1, softness=0.05, feather=0.0)
    # alpha = clip((d - 0.1) / 0.05 + 0.5, 0, 1): 0, 0.5, 0.9, 1.
    np.testing.assert_allclose(alpha[0], [0.0, 0.5, 0.9, 1.0], atol=1e-5)


def test_difference_key_of_the_plate_itself_is_empty_and_refuses_other_shapes():
    plate = _texture()
    assert difference_key(plate, plate).max() == 0.0
    with pytest.raises(ValueError, match="differ in shape"):
        difference_key(plate, plate[:-1])


def test_key_trimap_marks_the_key_edge_unknown():
    key = np.zeros((20, 20), np.float32)
    key[5:15, 5:15] = 1.0
    trimap = key_trimap(key, band=3)
    assert trimap[10, 10] == 1.0 and trimap[0, 0] == 0.0
    assert trimap[5, 10] == 0.5 and trimap[4, 10] == 0.5  # both sides of the edge


# ------------------------------------------------------------------------------ data, training


def test_plate_train_batches(tiny_dataset):
    from model.plate_data import make_plate_train_dataset

    batch = next(iter(make_plate_train_dataset(tiny_dataset, crop_size=32, batch_size=3, seed=1)))
    for key in ("image", "fg", "bg", "plate"):
        assert batch[key].shape == (3, 32, 32, 3)
    for key in ("alpha", "trimap"):
        assert batch[key].shape == (3, 32, 32, 1)
    image, fg, bg = batch["image"].numpy(), batch["fg"].numpy(), batch["bg"].numpy()
    alpha, plate = batch["alpha"].numpy(), batch["plate"].numpy()
    # The image is the composite over the scene up to its own noise (sigma <= 0.02).
    residual = image - (alpha * fg + (1 - alpha) * bg)
    assert float(np.std(residual)) < 0.025
    # The plate is the scene's background made imperfect: close, never equal.
    assert 0.0 < float(np.mean(np.abs(plate - bg))) < 0.2
    again = next(iter(make_plate_train_dataset(tiny_dataset, crop_size=32, batch_size=3, seed=1)))
    np.testing.assert_array_equal(again["plate"].numpy(), plate)


def test_plate_eval_dataset_has_a_plate_and_an_all_unknown_trimap(tiny_dataset):
    from model.plate_data import VALIDATION_PERTURBATION, make_plate_eval_dataset

    sample = next(iter(make_plate_eval_dataset(tiny_dataset, "val", multiple=4)))
    np.testing.assert_array_equal(sample["trimap"].numpy(), 0.5)
    bg = sample["bg"].numpy()[0]
    np.testing.assert_allclose(
        sample["plate"].numpy()[0], perturb_plate(bg, VALIDATION_PERTURBATION), atol=1e-6
    )


@pytest.mark.slow
def test_plate_training_run_writes_a_plate_checkpoint(tmp_path, tiny_dataset):
    from model.checkpoints import read_run_config, run_checkpoints
    from model.training import TrainSettings, start_run, train

    settings = TrainSettings(
        steps=2, batch_size=2, crop_size=32, save_every=1, val_every=2, max_val_samples=1,
        image_every=0, log_every=1,
    )  # fmt: skip
    run_dir = start_run(tmp_path, "plate", TINY_PLATE, settings, tiny_dataset)
    result = train(tiny_dataset, run_dir, TINY_PLATE, settings, progress=False)
    assert result.step == 2
    assert [ref.step for ref in run_checkpoints(run_dir)] == [1, 2]
    assert read_run_config(run_dir)[0].task == "plate"
    assert np.isfinite(result.logs["g_total"]) and np.isfinite(result.logs["d_total"])
    assert len(result.validations) == 2  # steps 0 and 2, whole-image metrics
