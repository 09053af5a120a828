"""scripts/degrade.py: matched camera degradations of F and B, checked step by step against
references computed here (scipy's Gaussian filter, YIQ algebra, PSNR), on small random images.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import skimage.data
from scipy import ndimage

from model.compositing import colour_matrix
from scripts import degrade

SIZE = (48, 64)
OFF = {
    "fg_shift": None,
    "blur_sigma": None,
    "cast": None,
    "noise_sigma": None,
    "noise_seed": None,
    "jpeg_quality": None,
}


def picture(seed: int, low: int = 0, high: int = 256) -> np.ndarray:
    """A uint8 RGB picture with both smooth shading and texture, values in [low, high)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: SIZE[0], : SIZE[1]] / max(SIZE)
    smooth = np.stack([yy, xx, 1 - yy], axis=2)
    texture = rng.random((*SIZE, 3)) * 0.3
    values = smooth * 0.7 + texture
    return np.rint(low + values.clip(0, 1) * (high - 1 - low)).astype(np.uint8)


def only(**params) -> dict:
    return {**OFF, **params}


def test_draws_are_reproducible_json_and_within_their_ranges():
    draws = [degrade.draw(np.random.default_rng(seed), 512) for seed in range(300)]
    assert degrade.draw(np.random.default_rng(7), 512) == draws[7]
    assert json.loads(json.dumps(draws)) == draws
    for step in ("fg_shift", "blur_sigma", "cast", "noise_sigma", "jpeg_quality"):
        applied = sum(d[step] is not None for d in draws)
        assert 0 < applied < len(draws), step  # each step is sometimes on and sometimes off
    for d in draws:
        assert (d["noise_sigma"] is None) == (d["noise_seed"] is None)
        if d["blur_sigma"] is not None:
            assert degrade.BLUR["sigma"][0] <= d["blur_sigma"] <= degrade.BLUR["sigma"][1]
        if d["jpeg_quality"] is not None:
            low, high = degrade.JPEG["quality"]
            assert low <= d["jpeg_quality"] <= high and isinstance(d["jpeg_quality"], int)
        if d["cast"] is not None:
            assert all(0.9 <= g <= 1.1 for g in d["cast"]["gains"])


def test_blur_sigma_scales_with_the_sample_side():
    small = degrade.draw(np.random.default_rng(3), 256)
    large = degrade.draw(np.random.default_rng(3), 1024)
    assert {k: v for k, v in small.items() if k != "blur_sigma"} == {
        k: v for k, v in large.items() if k != "blur_sigma"
    }
    draws = [degrade.draw(np.random.default_rng(s), 1024) for s in range(40)]
    sigma = next(d for d in draws if d["blur_sigma"] is not None)["blur_sigma"]
    assert sigma >= degrade.BLUR["sigma"][0] * 2  # 1024 px: twice the 512-px sigmas


def test_all_steps_off_returns_the_inputs():
    fg, bg = picture(1), picture(2)
    out_fg, out_bg = degrade.apply(fg, bg, OFF)
    np.testing.assert_array_equal(out_fg, fg)
    np.testing.assert_array_equal(out_bg, bg)


@pytest.mark.parametrize("seed", range(40))
def test_matched_steps_do_the_same_to_f_and_b(seed):
    """Without the foreground-only colour shift, equal F and B stay equal: every other step
    (blur, cast, the noise field, JPEG) is applied to both alike."""
    params = degrade.draw(np.random.default_rng(seed), 64)
    params["fg_shift"] = None
    image = picture(seed)
    out_fg, out_bg = degrade.apply(image, image.copy(), params)
    np.testing.assert_array_equal(out_fg, out_bg)


def test_noise_is_one_field_added_to_both():
    fg, bg = picture(3, 40, 215), picture(4, 40, 215)  # far from 0 and 255: no clipping
    out_fg, out_bg = degrade.apply(fg, bg, only(noise_sigma=5.0, noise_seed=11))
    noise_fg = out_fg.astype(int) - fg
    noise_bg = out_bg.astype(int) - bg
    # Both got the same field, up to the rounding of each to 8 bits.
    assert np.abs(noise_fg - noise_bg).max() <= 1
    assert 4.0 < noise_fg.std() < 6.0  # sigma 5 levels (plus rounding)
    other = degrade.apply(fg, bg, only(noise_sigma=5.0, noise_seed=12))[0]
    assert np.abs(other.astype(int) - out_fg).max() > 0  # the seed picks the field


def test_blur_matches_scipy_gaussian_filter_on_f_and_b():
    fg, bg = picture(5), picture(6)
    sigma = 1.3
    out_fg, out_bg = degrade.apply(fg, bg, only(blur_sigma=sigma))
    for source, result in ((fg, out_fg), (bg, out_bg)):
        # OpenCV's BORDER_REFLECT_101 is scipy's "mirror".
        expected = ndimage.gaussian_filter(
            source.astype(np.float64), sigma=(sigma, sigma, 0), mode="mirror"
        )
        assert np.abs(result - expected).max() <= 1.0
        assert np.abs(result.astype(int) - source).max() > 5  # it did blur


def test_cast_is_gains_then_a_luma_preserving_colour_matrix():
    fg, bg = picture(7, 30, 200), picture(8, 30, 200)
    cast = {"gains": [1.05, 0.95, 1.0], "hue": 4.0, "saturation": 1.1, "brightness": 1.0}
    out_fg, out_bg = degrade.apply(fg, bg, only(cast=cast))
    luma = np.array([0.299, 0.587, 0.114])
    for source, result in ((fg, out_fg), (bg, out_bg)):
        balanced = source.astype(np.float64) * cast["gains"]
        # With brightness 1, hue and saturation act on chroma only: luma is the balanced one's.
        assert np.abs(result @ luma - balanced @ luma).max() <= 0.6
        np.testing.assert_allclose(
            result, np.clip(balanced @ colour_matrix(4.0, 1.1, 1.0).T, 0, 255), atol=0.51
        )


def test_foreground_shift_leaves_the_background_alone():
    fg, bg = picture(9, 30, 200), picture(10)
    out_fg, out_bg = degrade.apply(fg, bg, only(fg_shift=[6.0, 0.9, 1.1]))
    np.testing.assert_array_equal(out_bg, bg)
    expected = np.clip(fg.astype(np.float64) @ colour_matrix(6.0, 0.9, 1.1).T, 0, 255)
    np.testing.assert_allclose(out_fg, expected, atol=0.51)


@pytest.mark.parametrize("quality", [degrade.JPEG["quality"][0], degrade.JPEG["quality"][1]])
def test_jpeg_round_trip_is_bounded(quality):
    """On 128-px crops of two photographs (scikit-image's astronaut, public domain, and
    coffee, CC0), measured: PSNR 32.3 / 33.1 dB at quality 55 and 39.1 / 39.2 dB at 95, mean
    error 4.1 / 3.8 and 1.9 / 2.0 levels. The bounds leave a margin for other libjpeg builds."""
    fg = np.ascontiguousarray(skimage.data.astronaut()[100:228, 100:228])
    bg = np.ascontiguousarray(skimage.data.coffee()[100:228, 100:228])
    out_fg, out_bg = degrade.apply(fg, bg, only(jpeg_quality=quality))
    floor = 30.0 if quality < 90 else 36.0
    for source, result in ((fg, out_fg), (bg, out_bg)):
        error = result.astype(np.float64) - source
        psnr = 10 * np.log10(255.0**2 / np.mean(error**2))
        assert psnr > floor, psnr
        assert np.abs(error).mean() < (5.0 if quality < 90 else 2.5)
        assert np.abs(error).max() > 0  # it was compressed
    low = degrade.jpeg(fg, degrade.JPEG["quality"][0]).astype(float) - fg
    high = degrade.jpeg(fg, degrade.JPEG["quality"][1]).astype(float) - fg
    assert np.mean(high**2) < np.mean(low**2)  # higher quality, smaller error


def test_cast_matrix_is_colour_matrix_times_the_gains():
    cast = {"gains": [1.1, 1.0, 0.9], "hue": 0.0, "saturation": 1.0, "brightness": 1.0}
    np.testing.assert_allclose(degrade.cast_matrix(cast), np.diag([1.1, 1.0, 0.9]), atol=1e-6)


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        degrade.apply(picture(1), picture(2)[:-1], OFF)
