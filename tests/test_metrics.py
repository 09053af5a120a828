"""Tests for model.metrics: hand-worked small arrays and an independent scipy reference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from model import metrics

UNKNOWN, FG, BG = 0.5, 1.0, 0.0


def _random_matte(rng: np.random.Generator, shape=(12, 15)) -> np.ndarray:
    return ndimage.uniform_filter(rng.random(shape), 3).astype(np.float32)


def test_sad_and_mse_hand_values():
    pred = np.array([[0.2, 0.5], [1.0, 0.0]], np.float32)
    gt = np.array([[0.0, 0.5], [0.5, 1.0]], np.float32)
    trimap = np.array([[UNKNOWN, UNKNOWN], [UNKNOWN, BG]], np.float32)
    # Unknown pixels differ by 0.2, 0 and 0.5; the known pixel's error of 1.0 must not count.
    assert metrics.sad(pred, gt, trimap) == pytest.approx((0.2 + 0.0 + 0.5) / 1000, abs=1e-9)
    assert metrics.mse(pred, gt, trimap) == pytest.approx((0.04 + 0.0 + 0.25) / 3, abs=1e-7)


def test_mse_without_unknown_pixels_is_zero():
    pred = np.zeros((2, 2), np.float32)
    assert metrics.mse(pred, pred + 1, np.ones((2, 2), np.float32)) == 0.0


def _reference_gradient_magnitude(alpha: np.ndarray) -> np.ndarray:
    """Independent reference: scipy's separable Gaussian derivative, replicate ('nearest') border.

    scipy's kernel g(i) g'(j) is the DIM kernel up to a scale (DIM normalises the 9x9 kernel to
    unit L2 norm, radius 4 for sigma 1.4), so measure that scale on an impulse and divide by it.
    """
    alpha = alpha.astype(np.float64)
    alpha = (alpha - alpha.min()) / (alpha.max() - alpha.min())
    kwargs = {"sigma": 1.4, "mode": "nearest", "radius": 4}
    gx = ndimage.gaussian_filter(alpha, order=(0, 1), **kwargs)
    gy = ndimage.gaussian_filter(alpha, order=(1, 0), **kwargs)
    impulse = np.zeros((9, 9))
    impulse[4, 4] = 1.0
    kernel = ndimage.gaussian_filter(impulse, order=(0, 1), **kwargs)
    return np.hypot(gx, gy) / np.sqrt(np.sum(kernel**2))


def test_gradient_error_matches_scipy_reference():
    rng = np.random.default_rng(0)
    gt = _random_matte(rng)
    pred = np.clip(gt + 0.3 * rng.standard_normal(gt.shape), 0, 1).astype(np.float32)
    # Unknown up to the image border, where the replicated-border handling matters.
    trimap = np.full(gt.shape, UNKNOWN, np.float32)
    trimap[5:7, 5:9] = FG
    unknown = trimap == UNKNOWN
    diff = _reference_gradient_magnitude(pred) - _reference_gradient_magnitude(gt)
    expected = np.sum(diff[unknown] ** 2) / 1000
    assert expected > 1e-3
    assert metrics.gradient_error(pred, gt, trimap) == pytest.approx(expected, rel=1e-9)


def test_gradient_kernel_shape_and_norm():
    hx, hy = metrics.gaussian_derivative_kernels(1.4)
    # radius = ceil(1.4 * sqrt(-2 ln(sqrt(2 pi) * 1.4 * 0.01))) = ceil(3.62) = 4
    assert hx.shape == (9, 9)
    assert np.sum(hx**2) == pytest.approx(1.0)
    np.testing.assert_allclose(hy, hx.T)
    # g(i) g'(j) is odd along columns and even along rows.
    np.testing.assert_allclose(hx, -hx[:, ::-1], atol=1e-15)
    np.testing.assert_allclose(hx, hx[::-1, :], atol=1e-15)


def test_gradient_error_normalises_both_mattes():
    rng = np.random.default_rng(1)
    gt, pred = _random_matte(rng), _random_matte(rng)
    trimap = np.full(gt.shape, UNKNOWN, np.float32)
    # An affine change of range is removed by the min-max normalisation (rel 1e-6: float32 input;
    # without normalisation the halved gradients would change the result by far more).
    assert metrics.gradient_error(0.2 + 0.5 * pred, gt, trimap) == pytest.approx(
        metrics.gradient_error(pred, gt, trimap), rel=1e-6
    )


def test_connectivity_float_threshold_trap():
    # One row, all unknown. gt = [1, 153/255, 0.25], pred = [1, 0.8, 0.9].
    # Intersection min(pred, gt) = [1, 0.6, 0.25]; all three pixels form one 4-connected row, so:
    #   pixel 2 leaves Omega at t = 0.3  -> l = 0.2
    #   pixel 1 leaves at t = 0.7        -> l = 0.6 (153/255 == 0.6 in single precision)
    #   pixel 0 never leaves             -> l = 1
    # d = alpha - l; phi = 1 - d [d >= 0.15]:
    #   gt:   d = [0, 0, 0.05]  -> phi  = [1, 1, 1]
    #   pred: d = [0, 0.2, 0.7] -> phi* = [1, 0.8, 0.3]
    # Conn = (0 + 0.2 + 0.7) / 1000. With float64 thresholds (0.6000000000000001) pixel 1 would
    # get l = 0.5 and Conn = (0 + 0.3 + 0.7) / 1000 instead.
    gt = np.array([[1.0, 153 / 255, 0.25]])
    pred = np.array([[1.0, 0.8, 0.9]])
    trimap = np.full(gt.shape, UNKNOWN, np.float32)
    levels = metrics.connectivity_levels(pred, gt)
    np.testing.assert_array_equal(levels, np.array([[1.0, 0.6, 0.2]], np.float32))
    assert metrics.connectivity_error(pred, gt, trimap) == pytest.approx(0.9 / 1000, rel=1e-6)
    # The trap holds for float32 input too (read_alpha gives uint8 / 255 in float32).
    conn32 = metrics.connectivity_error(pred.astype(np.float32), gt.astype(np.float32), trimap)
    assert conn32 == pytest.approx(0.9 / 1000, rel=1e-6)


def test_connectivity_uses_4_connectivity_and_unknown_only():
    # The 0.9 blob {(1,1), (1,2), (2,1)} is the largest component for t = 0.1 .. 0.9, so its
    # l = 0.9 (d = 0). Pixel (0,0) touches it only diagonally: with 4-connectivity it is never
    # in Omega, l = 0, so gt d = 0.9 -> phi = 0.1 and pred d = 0.15 (the boundary, included)
    # -> phi* = 0.85. Conn = 0.75 / 1000. (8-connectivity would give l = 0.1, phi = 0.2,
    # phi* = 1 and Conn = 0.8 / 1000; a strict d > 0.15 would give phi* = 1 and 0.9 / 1000.)
    gt = np.array([[0.9, 0, 0], [0, 0.9, 0.9], [0, 0.9, 0]], np.float32)
    pred = gt.copy()
    pred[0, 0] = 0.15
    trimap = np.full(gt.shape, UNKNOWN, np.float32)
    expected_levels = np.array([[0, 0, 0], [0, 0.9, 0.9], [0, 0.9, 0]], np.float32)
    np.testing.assert_array_equal(metrics.connectivity_levels(pred, gt), expected_levels)
    assert metrics.connectivity_error(pred, gt, trimap) == pytest.approx(0.75 / 1000, rel=1e-6)
    trimap[0, 0] = BG
    assert metrics.connectivity_error(pred, gt, trimap) == 0.0


def test_identical_mattes_score_zero():
    gt = _random_matte(np.random.default_rng(2))
    trimap = np.full(gt.shape, UNKNOWN, np.float32)
    assert metrics.all_metrics(gt, gt.copy(), trimap) == {
        "sad": 0.0,
        "mse": 0.0,
        "grad": 0.0,
        "conn": 0.0,
    }


def test_pixels_outside_unknown_do_not_count():
    rng = np.random.default_rng(3)
    gt = _random_matte(rng, (16, 16))
    trimap = np.zeros(gt.shape, np.float32)
    trimap[:, 8:] = FG
    trimap[4:12, 6:10] = UNKNOWN
    # Pin min and max inside the band, so the changes below leave Grad's normalisation alone.
    gt[5, 7], gt[6, 7] = 0.0, 1.0
    known = trimap != UNKNOWN
    # Wrong only far from the band (6 columns away; the gradient kernel reaches 4).
    far = known.copy()
    far[:, 1:15] = False
    pred = gt.copy()
    pred[far] = 1.0 - gt[far]
    # Wrong only inside the band, as a control that the metrics do see errors there.
    inside = gt.copy()
    inside[~known] = 1.0 - gt[~known]
    scores_far = metrics.all_metrics(pred, gt, trimap)
    scores_inside = metrics.all_metrics(inside, gt, trimap)
    for key in ("sad", "mse", "grad", "conn"):
        assert scores_far[key] == pytest.approx(0.0, abs=1e-12), key
        assert scores_inside[key] > 1e-4, key


@pytest.mark.parametrize(
    "metric", [metrics.sad, metrics.mse, metrics.gradient_error, metrics.connectivity_error]
)
def test_shape_mismatch_message(metric):
    pred = np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError, match=r"shape mismatch: pred \(2, 2\), gt \(2, 3\)"):
        metric(pred, np.zeros((2, 3), np.float32), pred)
    with pytest.raises(ValueError, match=r"trimap \(3, 2\)"):
        metric(pred, pred, np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match=r"expected 2-D"):
        metric(pred[None], pred[None], pred[None])


def test_mask_metrics_hand_values():
    pred = np.array([[True, True], [False, False]])
    gt = np.array([[True, False], [True, False]])
    # |P & G| = 1, |P | G| = 3, |P| = |G| = 2, agreement at (0,0) and (1,1).
    assert metrics.iou(pred, gt) == pytest.approx(1 / 3)
    assert metrics.dice(pred, gt) == pytest.approx(2 * 1 / (2 + 2))
    assert metrics.pixel_accuracy(pred, gt) == pytest.approx(2 / 4)


def test_mask_metrics_empty_cases():
    empty = np.zeros((2, 2), bool)
    full = np.ones((2, 2), bool)
    # Both empty: perfect agreement by definition.
    assert metrics.iou(empty, empty) == 1.0
    assert metrics.dice(empty, empty) == 1.0
    assert metrics.pixel_accuracy(empty, empty) == 1.0
    # One empty, one full: no overlap at all.
    assert metrics.iou(empty, full) == 0.0
    assert metrics.dice(full, empty) == 0.0
    assert metrics.pixel_accuracy(full, empty) == 0.0
    no_pixels = np.zeros((0, 3), bool)
    assert metrics.pixel_accuracy(no_pixels, no_pixels) == 1.0


def test_mask_metrics_reject_bad_input():
    mask = np.zeros((2, 2), bool)
    with pytest.raises(ValueError, match=r"shape mismatch: pred_mask \(2, 2\), gt_mask \(2, 3\)"):
        metrics.iou(mask, np.zeros((2, 3), bool))
    with pytest.raises(ValueError, match="pred_mask must be a boolean array, got dtype float32"):
        metrics.dice(mask.astype(np.float32), mask)


@pytest.mark.parametrize(
    "metric", [metrics.sad, metrics.mse, metrics.gradient_error, metrics.connectivity_error]
)
def test_on_disk_trimap_is_refused_not_scored_zero(metric):
    rng = np.random.default_rng(3)
    pred, gt = _random_matte(rng), _random_matte(rng)
    trimap = np.full(pred.shape, 128, np.uint8)  # every pixel unknown, on-disk convention
    trimap[0], trimap[-1] = 0, 255
    with pytest.raises(ValueError, match=r"trimap: values up to 255; expected the in-memory"):
        metric(pred, gt, trimap)
    # The in-memory version of the same trimap scores the difference.
    assert metric(pred, gt, np.where(trimap == 128, 0.5, trimap / 255)) > 0
