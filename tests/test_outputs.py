"""Tests for model.outputs: backgrounds, composites, masks and the encoded output files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from model.compositing import composite
from model.images import ImageError, trimap_to_uint8, write_png
from model.outputs import OUTPUTS, binary_mask, composite_onto, encode_outputs, parse_background


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0,255,0", (0.0, 1.0, 0.0)),
        (" 255 , 128 , 0 ", (1.0, 128 / 255, 0.0)),
        ("#00ff00", (0.0, 1.0, 0.0)),
        ("#f00", (1.0, 0.0, 0.0)),
        ("white", (1.0, 1.0, 1.0)),
    ],
)
def test_parse_background_colours(text, expected):
    assert parse_background(text) == pytest.approx(expected)


def test_parse_background_image(tmp_path):
    pixels = np.zeros((6, 8, 3), np.uint8)
    pixels[..., 2] = 255
    write_png(tmp_path / "bg.png", pixels)
    background = parse_background(tmp_path / "bg.png")
    assert background.shape == (6, 8, 3)
    np.testing.assert_array_equal(background[..., 2], 1.0)


@pytest.mark.parametrize("text", ["300,0,0", "#12345", "no-such-colour-or-file.png"])
def test_parse_background_rejects(text):
    with pytest.raises(ImageError, match="neither a colour"):
        parse_background(text)


def test_composite_onto_colour_is_the_matting_equation():
    rng = np.random.default_rng(3)
    foreground = rng.random((5, 7, 3), dtype=np.float32)
    alpha = rng.random((5, 7), dtype=np.float32)
    result = composite_onto(foreground, alpha, (0.0, 1.0, 0.0))
    expected = alpha[..., None] * foreground + (1 - alpha[..., None]) * np.float32([0, 1, 0])
    np.testing.assert_allclose(result, expected, atol=1e-6)


def test_composite_onto_image_fits_the_background():
    foreground = np.ones((10, 20, 3), np.float32)
    alpha = np.zeros((10, 20), np.float32)
    background = np.zeros((30, 30, 3), np.float32)
    background[:, 5:25] = 0.5
    result = composite_onto(foreground, alpha, background)
    assert result.shape == (10, 20, 3)
    # Alpha 0 shows only the fitted background: 30x30 scaled by 2/3 to cover 10x20, then
    # centre-cropped; its grey band (columns 5..25 of 30) lands on columns 3.3..16.7 of 20.
    assert np.all(result[:, 4:16] == pytest.approx(0.5, abs=1e-3))
    assert np.all(result[:, :3] == 0.0) and np.all(result[:, 17:] == 0.0)


def test_binary_mask_threshold():
    alpha = np.float32([[0.0, 0.49, 0.5, 1.0]])
    np.testing.assert_array_equal(binary_mask(alpha, 0.5), [[False, False, True, True]])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        binary_mask(alpha, 1.5)


def _decode(data: bytes) -> tuple[str, np.ndarray]:
    with Image.open(io.BytesIO(data)) as image:
        return image.mode, np.asarray(image)


def _matte(height=5, width=7):
    rng = np.random.default_rng(4)
    alpha = rng.random((height, width)).astype(np.float32)
    foreground = rng.random((height, width, 3)).astype(np.float32)
    trimap = np.choose(rng.integers(0, 3, (height, width)), [0.0, 0.5, 1.0]).astype(np.float32)
    return alpha, foreground, trimap


def test_every_output_has_its_documented_mode_and_values():
    alpha, foreground, trimap = _matte()
    files = encode_outputs(
        OUTPUTS,
        alpha,
        foreground=foreground,
        trimap=trimap,
        background=(0.0, 1.0, 0.0),
        mask_threshold=0.5,
    )
    assert list(files) == list(OUTPUTS)
    decoded = {name: _decode(data) for name, data in files.items()}
    mode, rgba = decoded["rgba"]
    assert mode == "RGBA"
    np.testing.assert_array_equal(rgba[..., :3], np.rint(foreground * 255))
    np.testing.assert_array_equal(rgba[..., 3], np.rint(alpha * 255))
    # alpha is the full-precision matte: 16 bits, the same in eval.py's --alpha and the API.
    mode, alpha16 = decoded["alpha"]
    assert mode == "I;16"
    np.testing.assert_array_equal(alpha16, np.rint(alpha * 65535))
    mode, soft = decoded["soft_mask"]
    assert mode == "L"
    np.testing.assert_array_equal(soft, np.rint(alpha * 255))
    np.testing.assert_array_equal(decoded["mask"][1], np.where(alpha >= 0.5, 255, 0))
    np.testing.assert_array_equal(decoded["trimap"][1], trimap_to_uint8(trimap))
    mode, over = decoded["composite"]
    expected = composite(foreground, alpha, np.broadcast_to(np.float32([0, 1, 0]), (5, 7, 3)))
    assert mode == "RGB"
    np.testing.assert_array_equal(over, np.rint(expected * 255))


def test_transparent_composite_is_the_cut_out():
    alpha, foreground, _ = _matte()
    files = encode_outputs(["rgba", "composite"], alpha, foreground=foreground)
    assert files["composite"] == files["rgba"]


def test_only_the_named_outputs_are_made():
    alpha, _, _ = _matte()
    assert list(encode_outputs(["soft_mask", "alpha"], alpha)) == ["alpha", "soft_mask"]


@pytest.mark.parametrize(
    ("names", "message"),
    [(["rgba"], "need an input"), (["mask"], "need an input"), (["png"], "unknown outputs")],
)
def test_missing_inputs_and_unknown_names_are_refused(names, message):
    alpha, _, _ = _matte()
    with pytest.raises(ValueError, match=message):
        encode_outputs(names, alpha)
