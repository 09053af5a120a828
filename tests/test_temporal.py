"""model/temporal.py, the difference key and model/synthetic_clips.py on small hand-made arrays.

Expected values are worked out by hand in the comments, or come from scipy.ndimage (an
independent implementation of binary erosion).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage

from model.compositing import composite, fit_background
from model.synthetic_clips import moving_clip, place, smooth_path
from model.temporal import dtssd, margin_pixels, propagate_trimap, temporal_blend


def _soft_disc(size: int = 40, radius: float = 10.0, rim: float = 3.0, centre=None) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cy, cx = centre if centre is not None else (size / 2, size / 2)
    return np.clip((radius - np.hypot(yy - cy, xx - cx)) / rim + 0.5, 0, 1).astype(np.float32)


def test_propagate_trimap_erodes_both_certain_regions_by_band_plus_motion():
    alpha = _soft_disc()
    trimap = propagate_trimap(alpha, band=2, motion=3)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (11, 11)).astype(bool)
    # scipy's erosion with the same disc; outside the image counts as certain (border_value=1).
    fg = ndimage.binary_erosion(alpha >= 0.98, disc, border_value=1)
    bg = ndimage.binary_erosion(alpha <= 0.02, disc, border_value=1)
    expected = np.where(fg, 1.0, np.where(bg, 0.0, 0.5))
    np.testing.assert_array_equal(trimap, expected)
    assert set(np.unique(trimap)) == {0.0, 0.5, 1.0}


def test_propagate_trimap_opens_a_band_of_two_radii_across_a_hard_edge():
    alpha = np.zeros((9, 20), np.float32)
    alpha[:, 10:] = 1.0  # hard edge between columns 9 and 10
    trimap = propagate_trimap(alpha, band=1, motion=2)  # radius 3
    # Background column c survives iff columns c..c+3 are all background: c <= 6.
    np.testing.assert_array_equal(trimap[4, :7], 0.0)
    np.testing.assert_array_equal(trimap[4, 7:13], 0.5)
    np.testing.assert_array_equal(trimap[4, 13:], 1.0)


def test_propagate_trimap_counts_near_certain_values_as_certain():
    alpha = np.full((10, 10), 0.001, np.float32)
    alpha[:, 5:] = 0.999
    trimap = propagate_trimap(alpha, band=0, motion=0)
    np.testing.assert_array_equal(trimap, np.where(alpha > 0.5, 1.0, 0.0))
    # With no tolerance, every pixel is soft and the whole frame unknown.
    assert (propagate_trimap(alpha, band=0, motion=0, tolerance=0.0) == 0.5).all()


def test_propagate_trimap_band_does_not_grow_over_frames():
    alpha = _soft_disc()
    first = propagate_trimap(alpha, band=1, motion=2)
    # A matting step that fills the band with the same soft matte gives the same trimap again.
    again = propagate_trimap(np.where(first == 0.5, alpha, first), band=1, motion=2)
    np.testing.assert_array_equal(again, first)


def test_propagate_trimap_refuses_bad_margins():
    with pytest.raises(ValueError, match="band and motion"):
        propagate_trimap(np.zeros((4, 4), np.float32), band=-1, motion=0)
    with pytest.raises(ValueError, match="tolerance"):
        propagate_trimap(np.zeros((4, 4), np.float32), band=0, motion=0, tolerance=0.5)


def test_margin_pixels_is_relative_to_the_shorter_side():
    assert margin_pixels((360, 640), 0.02) == 7  # 7.2 rounded
    assert margin_pixels((720, 1280), 0.01) == 7


def test_temporal_blend_averages_still_pixels_and_leaves_changed_ones():
    alpha = np.full((6, 6), 0.8, np.float32)
    previous = np.full((6, 6), 0.4, np.float32)
    frame = np.full((6, 6, 3), 0.5, np.float32)
    moved = frame.copy()
    moved[:, 3:] = 1.0  # the right half changed by 0.5, the left half not at all
    blended = temporal_blend(alpha, previous, moved, frame, strength=0.25)
    # Still pixels away from the change: 0.75 * 0.8 + 0.25 * 0.4 = 0.7.
    np.testing.assert_allclose(blended[:, :2], 0.7, atol=1e-6)
    # Changed pixels: weight 0.25 * exp(-(0.5 / 0.04)^2), which is 0 in float32.
    np.testing.assert_allclose(blended[:, 4:], 0.8, atol=1e-6)
    # Column 2 is still, but its 3x3 box averages in column 3's change (0.5 / 3, four sigmas):
    # the gate closes one pixel early, so an edge next to motion is not dragged either.
    np.testing.assert_allclose(blended[:, 2], 0.8, atol=1e-6)
    assert temporal_blend(alpha, previous, frame, frame, strength=0.0) is alpha


def test_temporal_blend_only_where_asked():
    alpha = np.ones((4, 4), np.float32)
    previous = np.zeros((4, 4), np.float32)
    frame = np.zeros((4, 4, 3), np.float32)
    where = np.zeros((4, 4), bool)
    where[0, 0] = True
    blended = temporal_blend(alpha, previous, frame, frame, strength=0.5, where=where)
    assert blended[0, 0] == pytest.approx(0.5)
    assert (blended[where == 0] == 1.0).all()
    with pytest.raises(ValueError, match="strength"):
        temporal_blend(alpha, previous, frame, frame, strength=1.0)


def test_dtssd_by_hand():
    predicted = np.array([[[0, 0]], [[1, 0]], [[1, 1]]], np.float32)  # (T=3, H=1, W=2)
    truth = np.zeros_like(predicted)
    # t=1: diff (1, 0) -> sqrt(1/2); t=2: diff (0, 1) -> sqrt(1/2); mean x 100 = 70.71.
    assert dtssd(predicted, truth) == pytest.approx(100 / np.sqrt(2))
    # A constant error does not flicker: dtSSD 0 however wrong each frame is.
    rng = np.random.default_rng(0)
    moving = rng.random((5, 4, 4))
    assert dtssd(np.clip(moving + 0.1, 0, 2), moving) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="T >= 2"):
        dtssd(truth[:1], truth[:1])


def test_smooth_path_starts_still_and_reaches_max_shift():
    path = smooth_path(24, np.random.default_rng(1), 10.0)
    assert path.shape == (24, 2)
    np.testing.assert_array_equal(path[0], [0, 0])
    assert np.abs(path).max() == pytest.approx(10.0)
    # Smooth: no step is more than a fifth of the range (periods are at least the clip's length).
    assert np.abs(np.diff(path, axis=0)).max() < 0.2 * 2 * 10.0 * 2


def test_moving_clip_frames_are_composites_of_the_shifted_cutout():
    rng = np.random.default_rng(0)
    fg = rng.random((20, 30, 3), dtype=np.float32)
    alpha = _soft_disc(size=30)[:20]
    bg = rng.random((25, 25, 3), dtype=np.float32)
    frames = list(moving_clip(fg, alpha, bg, 4, np.random.default_rng(2), size=(20, 30)))
    assert len(frames) == 4
    placed_fg, placed_alpha = place(fg, alpha, 20, 30)
    image, truth = frames[0]  # frame 0 has no shift
    np.testing.assert_allclose(truth, placed_alpha, atol=1e-6)
    expected = composite(placed_fg, placed_alpha, fit_background(bg, 20, 30))
    np.testing.assert_allclose(image, expected, atol=1e-6)
    assert not np.allclose(frames[3][1], frames[0][1])  # it moves
