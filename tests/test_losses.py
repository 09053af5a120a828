"""Tests for model.losses: hand-computed values on 2x2 tensors and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from keras import ops

from model.losses import (
    LossWeights,
    _blur,
    discriminator_losses,
    generator_losses,
    laplacian_pyramid,
    sobel_magnitude,
)

U = 0.5  # unknown trimap value


def _nhwc(rows) -> np.ndarray:
    """(H, W) nested list -> (1, H, W, 1) float32."""
    return np.asarray(rows, np.float32)[None, ..., None]


def _numpy(losses: dict) -> dict:
    return {key: float(ops.convert_to_numpy(value)) for key, value in losses.items()}


# Shared 2x2 example. Unknown pixels: (0,0), (0,1), (1,0); (1,1) is foreground.
ALPHA_TRUE = _nhwc([[0.0, 1.0], [0.5, 0.25]])
ALPHA_PRED = _nhwc([[0.5, 1.0], [0.25, 1.0]])
TRIMAP = _nhwc([[U, U], [U, 1.0]])
FG = np.broadcast_to(np.float32([1.0, 0.0, 0.5]), (1, 2, 2, 3)).copy()
BG = np.zeros((1, 2, 2, 3), np.float32)
LOGITS = _nhwc([[1.0, -1.0], [0.0, 2.0]])

# |pred - true| on the unknown pixels: 0.5, 0, 0.25 -> mean 0.75 / 3.
EXPECTED_ALPHA = 0.25
# |I(pred) - I(true)| = |pred - true| * |F - B| with |F - B| = (1, 0, 0.5): channel sums 0.75,
# 0 and 0.375 on the unknown pixels -> 1.125 / (3 pixels * 3 channels).
EXPECTED_COMPOSITION = 0.125
# err = pred - true = [[0.5, 0], [-0.25, 0.75]]. Every adjacent pair touches an unknown pixel:
# horizontal |0 - 0.5| = 0.5 and |0.75 + 0.25| = 1.0, vertical |-0.25 - 0.5| = 0.75 and
# |0.75 - 0| = 0.75 -> 3.0 / 4 pairs.
EXPECTED_GRADIENT = 0.75
# LSGAN generator term: mean((l - 1)^2) = (0 + 4 + 1 + 1) / 4.
EXPECTED_LSGAN = 1.5


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_hand_values_and_keys():
    losses = generator_losses(
        ALPHA_PRED, ALPHA_TRUE, TRIMAP, FG, BG, LossWeights(), fake_logits=LOGITS
    )
    assert set(losses) == {
        "alpha",
        "composition",
        "gradient",
        "sobel",
        "laplacian",
        "adversarial",
        "total",
    }
    for value in losses.values():
        assert tuple(value.shape) == ()
        assert ops.convert_to_numpy(value).dtype == np.float32
    values = _numpy(losses)
    assert values["alpha"] == pytest.approx(EXPECTED_ALPHA, abs=1e-6)
    assert values["composition"] == pytest.approx(EXPECTED_COMPOSITION, abs=1e-6)
    assert values["gradient"] == pytest.approx(EXPECTED_GRADIENT, abs=1e-6)
    assert values["adversarial"] == pytest.approx(EXPECTED_LSGAN, abs=1e-6)


def test_total_is_weighted_sum():
    weights = LossWeights(alpha=2.0, composition=3.0, gradient=0.5, adversarial=0.1)
    values = _numpy(
        generator_losses(ALPHA_PRED, ALPHA_TRUE, TRIMAP, FG, BG, weights, fake_logits=LOGITS)
    )
    # 2 * 0.25 + 3 * 0.125 + 0.5 * 0.75 + 0.1 * 1.5
    assert values["total"] == pytest.approx(1.4, abs=1e-6)


def test_gradient_pairs_need_an_unknown_pixel():
    # One row: err = [0, 0, 1]. Pair (0,1) has |0 - 0| = 0, pair (1,2) has |1 - 0| = 1.
    true = _nhwc([[0.0, 0.0, 0.0]])
    pred = _nhwc([[0.0, 0.0, 1.0]])
    fg = np.zeros((1, 1, 3, 3), np.float32)
    # Only pixel 0 unknown: pair (1,2) is all known and ignored -> 0 / 1 pair.
    only_first = _numpy(generator_losses(pred, true, _nhwc([[U, 0, 0]]), fg, fg, LossWeights()))
    assert only_first["gradient"] == pytest.approx(0.0, abs=1e-7)
    # Pixel 1 unknown: both pairs touch it -> (0 + 1) / 2 pairs.
    middle = _numpy(generator_losses(pred, true, _nhwc([[0, U, 0]]), fg, fg, LossWeights()))
    assert middle["gradient"] == pytest.approx(0.5, abs=1e-7)


def test_known_pixels_do_not_change_alpha_or_composition():
    base = _numpy(generator_losses(ALPHA_PRED, ALPHA_TRUE, TRIMAP, FG, BG, LossWeights()))
    pred = ALPHA_PRED.copy()
    pred[0, 1, 1, 0] = 0.0  # the foreground pixel, now badly wrong
    fg, bg = FG.copy(), BG.copy()
    fg[0, 1, 1], bg[0, 1, 1] = 0.0, 1.0
    changed = _numpy(generator_losses(pred, ALPHA_TRUE, TRIMAP, fg, bg, LossWeights()))
    assert changed["alpha"] == pytest.approx(base["alpha"], abs=1e-7)
    assert changed["composition"] == pytest.approx(base["composition"], abs=1e-7)
    # Control: the same change inside the unknown region does move the loss.
    pred[0, 0, 1, 0] = 0.0
    moved = _numpy(generator_losses(pred, ALPHA_TRUE, TRIMAP, fg, bg, LossWeights()))
    assert moved["alpha"] > base["alpha"] + 0.1


def test_no_unknown_pixels_gives_finite_zero():
    trimap = _nhwc([[0.0, 1.0], [1.0, 0.0]])
    values = _numpy(generator_losses(ALPHA_PRED, ALPHA_TRUE, trimap, FG, BG, LossWeights()))
    assert values == {
        "alpha": 0.0,
        "composition": 0.0,
        "gradient": 0.0,
        "sobel": 0.0,
        "laplacian": 0.0,
        "adversarial": 0.0,
        "total": 0.0,
    }


def test_adversarial_is_zero_without_logits():
    values = _numpy(generator_losses(ALPHA_PRED, ALPHA_TRUE, TRIMAP, FG, BG, LossWeights()))
    assert values["adversarial"] == 0.0
    # With default weights: 1 * alpha + 1 * composition + 0 * gradient.
    assert values["total"] == pytest.approx(EXPECTED_ALPHA + EXPECTED_COMPOSITION, abs=1e-6)


def test_nonsaturating_generator_closed_form():
    weights = LossWeights(gan_mode="nonsaturating")
    values = _numpy(
        generator_losses(ALPHA_PRED, ALPHA_TRUE, TRIMAP, FG, BG, weights, fake_logits=LOGITS)
    )
    # mean(softplus(-l)) for l = 1, -1, 0, 2, i.e. the BCE of sigmoid(l) against label 1.
    expected = np.mean([_softplus(-x) for x in (1.0, -1.0, 0.0, 2.0)])
    assert values["adversarial"] == pytest.approx(expected, rel=1e-6)


def test_discriminator_lsgan_closed_form():
    fake = _nhwc([[0.5, -0.5], [1.0, 0.0]])
    values = _numpy(discriminator_losses(LOGITS, fake, "lsgan"))
    # real: mean((l - 1)^2) = 1.5; fake: mean(f^2) = (0.25 + 0.25 + 1 + 0) / 4 = 0.375.
    assert values["real"] == pytest.approx(1.5, abs=1e-6)
    assert values["fake"] == pytest.approx(0.375, abs=1e-6)
    assert values["total"] == pytest.approx(0.5 * (1.5 + 0.375), abs=1e-6)


def test_discriminator_nonsaturating_closed_form():
    fake = _nhwc([[0.5, -0.5], [1.0, 0.0]])
    values = _numpy(discriminator_losses(LOGITS, fake, "nonsaturating"))
    real = np.mean([_softplus(-x) for x in (1.0, -1.0, 0.0, 2.0)])
    fake_expected = np.mean([_softplus(x) for x in (0.5, -0.5, 1.0, 0.0)])
    assert values["real"] == pytest.approx(real, rel=1e-6)
    assert values["fake"] == pytest.approx(fake_expected, rel=1e-6)
    assert values["total"] == pytest.approx(0.5 * (real + fake_expected), rel=1e-6)


def test_bad_gan_mode_and_weights():
    with pytest.raises(ValueError, match="gan_mode must be one of"):
        LossWeights(gan_mode="wgan")
    with pytest.raises(ValueError, match="gan_mode must be one of"):
        discriminator_losses(LOGITS, LOGITS, "hinge")
    with pytest.raises(ValueError, match="loss weight alpha must be >= 0"):
        LossWeights(alpha=-1.0)


def _expand(x):
    """The pyramid's expand step, as laplacian_pyramid applies it."""
    return _blur(ops.repeat(ops.repeat(x, 2, axis=1), 2, axis=2))


def test_laplacian_pyramid_reconstructs_its_input():
    rng = np.random.default_rng(0)
    image = rng.random((2, 32, 48, 1), dtype=np.float32)
    bands = laplacian_pyramid(image)
    assert [tuple(b.shape) for b in bands] == [(2, 32 // 2**i, 48 // 2**i, 1) for i in range(5)]
    # Burt and Adelson: expanding the rest and adding each band back gives the image again.
    rebuilt = bands[-1]
    for band in reversed(bands[:-1]):
        rebuilt = band + _expand(rebuilt)
    np.testing.assert_allclose(ops.convert_to_numpy(rebuilt), image, atol=1e-5)


def test_laplacian_pyramid_of_a_constant_is_only_the_low_pass():
    bands = laplacian_pyramid(np.full((1, 32, 32, 1), 0.3, np.float32))
    for band in bands[:-1]:
        np.testing.assert_allclose(ops.convert_to_numpy(band), 0.0, atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(bands[-1]), 0.3, atol=1e-6)


def test_laplacian_loss_of_a_constant_offset_is_weighted_at_the_coarsest_level():
    # All pixels unknown, prediction = truth + 0.1: only the low-pass level (weight 2^4) is
    # non-zero, at 0.1 everywhere, and the unknown fraction is 1 -> 16 * 0.1.
    truth = np.full((1, 32, 32, 1), 0.4, np.float32)
    trimap = np.full_like(truth, U)
    fg = bg = np.zeros((1, 32, 32, 3), np.float32)
    values = _numpy(
        generator_losses(truth + 0.1, truth, trimap, fg, bg, LossWeights(laplacian=1.0))
    )
    assert values["laplacian"] == pytest.approx(1.6, abs=1e-5)
    assert values["total"] == pytest.approx(0.1 + 0.0 + 1.6, abs=1e-5)


def test_laplacian_loss_ignores_known_pixels_and_is_off_by_default():
    truth = np.zeros((1, 32, 32, 1), np.float32)
    trimap = np.zeros_like(truth)
    trimap[:, 8:24, 8:24] = U
    truth[:, 8:24, 8:24] = 0.5
    wrong_outside = np.where(trimap == U, truth, 0.9).astype(np.float32)
    fg = bg = np.zeros((1, 32, 32, 3), np.float32)
    on = LossWeights(laplacian=1.0)
    assert _numpy(generator_losses(wrong_outside, truth, trimap, fg, bg, on))["laplacian"] == (
        pytest.approx(0.0, abs=1e-6)
    )
    off = _numpy(generator_losses(truth + 0.2, truth, trimap, fg, bg, LossWeights()))
    assert off["laplacian"] == 0.0


def _scipy_sobel_magnitude(image: np.ndarray) -> np.ndarray:
    """Independent reference: scipy's Sobel (replicated borders, mode="nearest") / 8."""
    from scipy import ndimage

    gx = ndimage.sobel(image, axis=1, mode="nearest") / 8.0
    gy = ndimage.sobel(image, axis=0, mode="nearest") / 8.0
    return np.sqrt(gx**2 + gy**2 + 1e-6)


def test_sobel_magnitude_matches_scipy():
    image = np.random.default_rng(3).random((13, 17)).astype(np.float32)
    ours = ops.convert_to_numpy(sobel_magnitude(image[None, ..., None]))[0, ..., 0]
    np.testing.assert_allclose(ours, _scipy_sobel_magnitude(image), atol=1e-5)


def test_sobel_magnitude_of_a_unit_ramp_is_one_inside():
    ramp = np.tile(np.arange(8, dtype=np.float32), (6, 1))  # rises by 1 per pixel along x
    magnitude = ops.convert_to_numpy(sobel_magnitude(ramp[None, ..., None]))[0, ..., 0]
    np.testing.assert_allclose(magnitude[:, 1:-1], 1.0, atol=1e-5)


def test_sobel_loss_is_the_mean_edge_strength_error_over_unknown_pixels():
    rng = np.random.default_rng(4)
    truth = rng.random((1, 16, 16, 1)).astype(np.float32)
    pred = rng.random((1, 16, 16, 1)).astype(np.float32)
    trimap = np.zeros_like(truth)
    trimap[:, 4:12, 2:14] = U
    fg = bg = np.zeros((1, 16, 16, 3), np.float32)
    values = _numpy(generator_losses(pred, truth, trimap, fg, bg, LossWeights(sobel=2.0)))
    error = np.abs(
        _scipy_sobel_magnitude(pred[0, ..., 0]) - _scipy_sobel_magnitude(truth[0, ..., 0])
    )
    expected = error[4:12, 2:14].mean()
    assert values["sobel"] == pytest.approx(expected, rel=1e-4)
    assert values["total"] == pytest.approx(
        values["alpha"] + values["composition"] + 2.0 * expected, rel=1e-4
    )
    off = _numpy(generator_losses(pred, truth, trimap, fg, bg, LossWeights()))
    assert off["sobel"] == 0.0
