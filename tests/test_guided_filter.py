"""Tests for model.guided_filter against closed forms: box means by hand, affine sources."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from model.guided_filter import (
    _solve_symmetric_3x3,
    box_mean,
    guided_filter_coefficients,
    guided_upsample,
)

AFFINE = np.float32([0.2, 0.3, 0.1]), np.float32(0.2)
"""A source q = c . I + d with values in [0.2, 0.8] for colours in [0, 1]."""


def _colours(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smoothly varying, decorrelated RGB in [0, 1]: every window has colour variance."""
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    phase = np.random.default_rng(seed).uniform(0, 6, 3)
    channels = [np.sin(yy / 3.1 + phase[0]), np.cos(xx / 2.3 + phase[1]), np.sin((xx - yy) / 4.7)]
    return (np.stack(channels, axis=-1) * 0.5 + 0.5).astype(np.float32)


def _affine(colours: np.ndarray) -> np.ndarray:
    slope, offset = AFFINE
    return (colours @ slope + offset).astype(np.float32)


def test_box_mean_by_hand_with_reflected_borders():
    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    # Reflection without repeating the edge (numpy "reflect", OpenCV BORDER_REFLECT_101).
    padded = np.pad(values, 1, mode="reflect")
    expected = np.array([[padded[r : r + 3, c : c + 3].mean() for c in range(4)] for r in range(3)])
    np.testing.assert_allclose(box_mean(values, 1), expected, rtol=1e-6)
    stacked = np.dstack([values, 2 * values])
    np.testing.assert_allclose(box_mean(stacked, 1)[..., 1], 2 * expected, rtol=1e-6)
    np.testing.assert_array_equal(box_mean(values, 0), values)


def test_symmetric_solver_matches_numpy():
    rng = np.random.default_rng(1)
    factors = rng.normal(size=(5, 7, 3, 3))
    matrices = factors @ np.swapaxes(factors, -1, -2) + 0.1 * np.eye(3)
    rhs = rng.normal(size=(5, 7, 3))
    upper = matrices[..., [0, 0, 0, 1, 1, 2], [0, 1, 2, 1, 2, 2]]
    expected = np.linalg.solve(matrices, rhs[..., None])[..., 0]
    np.testing.assert_allclose(_solve_symmetric_3x3(upper, rhs), expected, rtol=1e-6, atol=1e-9)


def test_an_affine_function_of_the_guide_is_reproduced():
    # a_k = c, b_k = d in every window when p = c . I + d (up to the ridge term eps).
    colours = _colours(40, 50)
    source = _affine(colours)
    a, b = guided_filter_coefficients(colours, source, radius=3, eps=1e-7)
    np.testing.assert_allclose(a, np.broadcast_to(AFFINE[0], a.shape), atol=2e-3)
    np.testing.assert_allclose(b, AFFINE[1], atol=2e-3)
    np.testing.assert_allclose(
        guided_upsample(source, colours, colours, 3, 1e-7), source, atol=1e-4
    )


def test_a_flat_guide_gives_the_twice_box_filtered_source():
    # No colour variance: a = 0, b = mean(p), so q = box(box(p)).
    flat = np.full((20, 30, 3), 0.4, np.float32)
    source = np.random.default_rng(2).random((20, 30), dtype=np.float32)
    expected = box_mean(box_mean(source, 2), 2)
    np.testing.assert_allclose(guided_upsample(source, flat, flat, 2, 1e-4), expected, atol=1e-5)


def test_upsampling_follows_the_full_resolution_guide():
    # Coefficients fitted at 1/4 size on an affine source apply exactly to the full-size guide,
    # which has detail the small one lost: the result is c . I + d at full resolution.
    colours = _colours(96, 128, seed=3)
    small = cv2.resize(colours, (32, 24), interpolation=cv2.INTER_AREA)
    upsampled = guided_upsample(_affine(small), small, colours, radius=2, eps=1e-7)
    assert upsampled.shape == (96, 128)
    np.testing.assert_allclose(upsampled, _affine(colours), atol=2e-3)
    # Plain bilinear upsampling of the small source cannot recover that detail.
    bilinear = cv2.resize(_affine(small), (128, 96), interpolation=cv2.INTER_LINEAR)
    truth = _affine(colours)
    assert np.abs(bilinear - truth).mean() > 10 * np.abs(upsampled - truth).mean()


def test_invalid_arguments():
    colours = _colours(8, 8)
    with pytest.raises(ValueError, match="eps"):
        guided_filter_coefficients(colours, colours[..., 0], 1, 0.0)
    with pytest.raises(ValueError, match="small guide"):
        guided_upsample(np.zeros((3, 3), np.float32), colours[:4, :4], colours)
