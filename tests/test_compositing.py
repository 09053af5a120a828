"""model/compositing.py: the matting equation, trimaps, background fitting and crops."""

import cv2
import numpy as np
import pytest

from model.compositing import (
    alpha_problem,
    colour_matrix,
    composite,
    fit_background,
    shrink_trimap,
    trimap_from_alpha,
    unknown_crop_origin,
    unknown_mask,
)


def test_composite_hand_computed():
    fg = np.array([[[1.0, 0.0, 0.0], [0.2, 0.4, 0.6]]], dtype=np.float32)
    bg = np.array([[[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]]], dtype=np.float32)
    alpha = np.array([[0.25, 0.5]], dtype=np.float32)
    # 0.25*(1,0,0) + 0.75*(0,0,1) = (0.25, 0, 0.75)
    # 0.5*(0.2,0.4,0.6) + 0.5*(1,1,1) = (0.6, 0.7, 0.8)
    expected = np.array([[[0.25, 0.0, 0.75], [0.6, 0.7, 0.8]]], dtype=np.float32)
    result = composite(fg, alpha, bg)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, expected, atol=1e-7)
    np.testing.assert_allclose(composite(fg, alpha[..., None], bg), expected, atol=1e-7)


def test_composite_extremes_and_range():
    rng = np.random.default_rng(1)
    fg, bg = rng.random((2, 5, 7, 3), dtype=np.float32)
    np.testing.assert_array_equal(composite(fg, np.ones((5, 7), np.float32), bg), fg)
    np.testing.assert_array_equal(composite(fg, np.zeros((5, 7), np.float32), bg), bg)
    mixed = composite(fg, rng.random((5, 7), dtype=np.float32), bg)
    assert mixed.min() >= np.minimum(fg, bg).min() and mixed.max() <= np.maximum(fg, bg).max()


def test_composite_size_mismatch():
    with pytest.raises(ValueError, match="equal sizes"):
        composite(np.zeros((2, 2, 3)), np.zeros((2, 3)), np.zeros((2, 2, 3)))


def test_trimap_kernel_one_is_exactly_the_soft_band():
    alpha = np.zeros((7, 7), np.float32)
    alpha[2:5, 2:5] = 1.0
    alpha[3, 1] = 0.5
    trimap = trimap_from_alpha(alpha, kernel_size=1)
    expected = np.where(alpha >= 1, 1.0, 0.0).astype(np.float32)
    expected[3, 1] = 0.5
    np.testing.assert_array_equal(trimap, expected)


def test_trimap_kernel_three_widens_by_one_pixel():
    # A 3x3 ellipse is a plus sign, so the band grows by one pixel in the 4 axis directions.
    alpha = np.zeros((9, 9), np.float32)
    alpha[:, 5:] = 1.0
    alpha[:, 4] = 0.5
    trimap = trimap_from_alpha(alpha, kernel_size=3)
    np.testing.assert_array_equal(trimap[0], [0, 0, 0, 0.5, 0.5, 0.5, 1, 1, 1])


def test_trimap_opens_a_band_on_hard_edges():
    alpha = np.zeros((5, 8), np.float32)
    alpha[:, 4:] = 1.0
    trimap = trimap_from_alpha(alpha, kernel_size=3)
    np.testing.assert_array_equal(trimap[2], [0, 0, 0, 0.5, 0.5, 1, 1, 1])


def test_trimap_properties_over_random_mattes():
    rng = np.random.default_rng(7)
    for _ in range(20):
        alpha = np.clip(rng.normal(0.5, 0.6, (24, 31)), 0, 1).astype(np.float32)
        trimap = trimap_from_alpha(alpha, rng)
        assert trimap.shape == alpha.shape and trimap.dtype == np.float32
        assert set(np.unique(trimap)) <= {0.0, 0.5, 1.0}
        soft = (alpha > 0) & (alpha < 1)
        assert (trimap[soft] == 0.5).all()
        assert (alpha[trimap == 1.0] == 1.0).all() and (alpha[trimap == 0.0] == 0.0).all()


def test_trimap_kernel_is_drawn_within_range():
    alpha = np.zeros((61, 61), np.float32)
    alpha[30, 30] = 0.5
    rng = np.random.default_rng(0)
    widths = {int((trimap_from_alpha(alpha, rng)[30] == 0.5).sum()) for _ in range(200)}
    assert min(widths) == 1 and max(widths) == 29


def test_trimap_needs_rng_or_kernel():
    with pytest.raises(ValueError, match="rng or kernel_size"):
        trimap_from_alpha(np.zeros((2, 2), np.float32))


def test_fit_background_covers_without_distortion():
    # A 10x40 horizontal stripe pattern stays horizontal: every row keeps a single value.
    bg = np.repeat(np.linspace(0, 1, 10, dtype=np.float32)[:, None, None], 40, axis=1)
    bg = np.repeat(bg, 3, axis=2)
    fitted = fit_background(bg, 20, 20)
    assert fitted.shape == (20, 20, 3) and fitted.dtype == np.float32
    np.testing.assert_allclose(fitted, fitted[:, :1, :].repeat(20, axis=1), atol=1e-6)
    # Scale 2 (height 10 -> 20) keeps the full vertical range; a crop only removes columns.
    assert fitted[0, 0, 0] < 0.05 and fitted[-1, 0, 0] > 0.95


def test_fit_background_shrinks_and_random_crops_in_bounds():
    rng = np.random.default_rng(3)
    bg = rng.random((400, 300, 3), dtype=np.float32)
    for _ in range(10):
        assert fit_background(bg, 50, 120, rng).shape == (50, 120, 3)
    exact = fit_background(bg, 400, 300)
    np.testing.assert_array_equal(exact, bg)


def test_unknown_crop_contains_an_unknown_pixel_near_its_centre():
    trimap = np.zeros((100, 80), np.float32)
    trimap[70, 10] = 0.5
    top, left = unknown_crop_origin(trimap, 32, 32, np.random.default_rng(0))
    assert (top, left) == (54, 0)  # centred at row 70 (70-16); clipped at the left edge
    assert trimap[top : top + 32, left : left + 32].max() == 0.5


def test_unknown_crop_larger_than_image_starts_at_zero():
    trimap = np.full((10, 10), 0.5, np.float32)
    assert unknown_crop_origin(trimap, 32, 16, np.random.default_rng(0)) == (0, 0)


@pytest.mark.parametrize(
    "alpha,require_partial,problem",
    [
        (np.zeros((4, 4)), False, "fully transparent"),
        (np.ones((4, 4)), False, "fully opaque"),
        (np.pad(np.ones((2, 2)), 1), False, "plain rectangle"),
        (np.pad(np.eye(3), 1), False, None),
        (np.pad(np.eye(3), 1), True, "no partial transparency"),
        (np.pad(np.full((2, 2), 0.5), 1), True, None),
        (np.full((3, 3), 0.001), False, "fully transparent"),
    ],
)
def test_alpha_problem(alpha, require_partial, problem):
    assert alpha_problem(alpha.astype(np.float32), require_partial=require_partial) == problem


def test_shrink_trimap_by_hand():
    trimap = np.zeros((4, 6), np.float32)
    trimap[:, 3:] = 1.0
    trimap[1, 2] = 0.5
    # 2x2 blocks: left all background, middle mixes background with foreground or unknown,
    # right all foreground.
    expected = np.float32([[0.0, 0.5, 1.0], [0.0, 0.5, 1.0]])
    np.testing.assert_array_equal(shrink_trimap(trimap, 2, 3), expected)
    np.testing.assert_array_equal(shrink_trimap(trimap, 4, 6), trimap)


def test_shrink_trimap_never_makes_an_unknown_footprint_certain():
    rng = np.random.default_rng(5)
    field = cv2.GaussianBlur(rng.random((60, 90), dtype=np.float32), (0, 0), 4)
    alpha = np.clip((field - field.mean()) * 40 + 0.5, 0, 1)
    trimap = trimap_from_alpha(alpha, kernel_size=3)
    small = shrink_trimap(trimap, 25, 37)
    assert set(np.unique(small)) <= {0.0, 0.5, 1.0}
    # Back at full size (nearest), a certain small pixel covers only pixels of its own class.
    covered = cv2.resize(small, (90, 60), interpolation=cv2.INTER_NEAREST)
    certain = covered != 0.5
    assert certain.any() and (~certain).any()
    np.testing.assert_array_equal(covered[certain], trimap[certain])


def test_shrink_trimap_refuses_to_enlarge():
    with pytest.raises(ValueError, match="enlarge"):
        shrink_trimap(np.zeros((4, 4), np.float32), 5, 4)


def test_unknown_mask_is_the_band_around_one_half():
    # Hand-picked values either side of the 0.25 tolerance around 0.5.
    trimap = np.array([0.0, 0.25, 0.2501, 0.5, 0.7499, 0.75, 1.0], np.float32)
    np.testing.assert_array_equal(
        unknown_mask(trimap), [False, False, True, True, True, False, False]
    )


def test_tensor_twins_agree_with_the_numpy_functions():
    from model.losses import composite_tensors
    from model.losses import unknown_mask as unknown_mask_tensor

    rng = np.random.default_rng(9)
    fg, bg = rng.random((2, 6, 5, 3), np.float32)
    alpha = rng.random((6, 5), np.float32)
    trimap = rng.random((6, 5), np.float32)
    tensors = composite_tensors(fg[None], alpha[None, ..., None], bg[None])
    np.testing.assert_allclose(np.asarray(tensors)[0], composite(fg, alpha, bg), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(unknown_mask_tensor(trimap)), unknown_mask(trimap))


def test_colour_matrix_identity_brightness_saturation_and_hue():
    """References from the definition: luma Y = 0.299 R + 0.587 G + 0.114 B is kept by hue and
    saturation changes, scaled by brightness; saturation 0 leaves grey at the pixel's luma."""
    luma = np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(colour_matrix(0.0, 1.0, 1.0), np.eye(3), atol=1e-6)
    np.testing.assert_allclose(colour_matrix(0.0, 1.0, 1.3), 1.3 * np.eye(3), atol=1e-6)
    colours = np.random.default_rng(0).random((50, 3))
    grey = colours @ colour_matrix(0.0, 0.0, 1.0).T
    np.testing.assert_allclose(grey, np.repeat((colours @ luma)[:, None], 3, axis=1), atol=1e-5)
    turned = colours @ colour_matrix(25.0, 1.0, 1.0).T
    np.testing.assert_allclose(turned @ luma, colours @ luma, atol=1e-5)
    assert np.abs(turned - colours).max() > 0.05
    there_and_back = colour_matrix(-25.0, 1.0, 1.0) @ colour_matrix(25.0, 1.0, 1.0)
    np.testing.assert_allclose(there_and_back, np.eye(3), atol=1e-5)
