"""model/images.py: decoding every supported kind of file, limits, trimaps, atomic writes."""

import io
import os

import numpy as np
import pytest
from PIL import Image

from model import images
from model.images import ImageError


def _save(path, image, **options):
    image.save(path, **options)
    return path


@pytest.fixture
def gradient():
    """A 6x4 RGB image whose pixel values are all distinct, so any flip or rotation shows."""
    values = np.arange(6 * 4 * 3, dtype=np.uint8).reshape(4, 6, 3) * 3
    return values


@pytest.mark.parametrize("fmt,suffix", [("PNG", "png"), ("BMP", "bmp"), ("TIFF", "tif")])
def test_lossless_formats_roundtrip_exactly(tmp_path, gradient, fmt, suffix):
    path = _save(tmp_path / f"x.{suffix}", Image.fromarray(gradient), format=fmt)
    pixels = images.read_image(path)
    assert pixels.dtype == np.float32 and pixels.shape == (4, 6, 3)
    np.testing.assert_array_equal(images.to_uint8(pixels), gradient)


def test_format_is_sniffed_not_taken_from_extension(tmp_path, gradient):
    path = _save(tmp_path / "photo.jpg", Image.fromarray(gradient), format="PNG")
    np.testing.assert_array_equal(images.to_uint8(images.read_image(path)), gradient)


def test_jpeg_and_webp_decode_close_to_source(tmp_path):
    flat = np.full((16, 16, 3), (200, 100, 50), dtype=np.uint8)
    for fmt in ("JPEG", "WEBP"):
        path = _save(tmp_path / f"x.{fmt.lower()}", Image.fromarray(flat), format=fmt, quality=95)
        pixels = images.read_image(path)
        np.testing.assert_allclose(pixels, flat / 255.0, atol=4 / 255)


def test_sixteen_bit_grey_keeps_precision(tmp_path):
    # 16-bit levels that differ by 1 must stay distinct: 8-bit would merge them.
    levels = np.array([[0, 1, 32768, 65535]], dtype=np.uint16)
    path = _save(tmp_path / "deep.png", Image.fromarray(levels))
    pixels = images.read_image(path)
    np.testing.assert_allclose(pixels[0, :, 0], levels[0] / 65535.0, atol=1e-7)
    assert pixels[0, 1, 0] > 0
    np.testing.assert_array_equal(pixels[..., 0], pixels[..., 2])


def test_grey_palette_and_cmyk_become_rgb(tmp_path, gradient):
    grey = _save(tmp_path / "g.png", Image.fromarray(gradient[..., 0]))
    np.testing.assert_array_equal(
        images.to_uint8(images.read_image(grey)), np.repeat(gradient[..., :1], 3, axis=2)
    )
    palette_image = Image.fromarray(gradient).convert("P", palette=Image.Palette.ADAPTIVE)
    palette = _save(tmp_path / "p.png", palette_image)
    expected = np.asarray(palette_image.convert("RGB"))
    np.testing.assert_array_equal(images.to_uint8(images.read_image(palette)), expected)
    cmyk_image = Image.fromarray(gradient).convert("CMYK")
    cmyk = _save(tmp_path / "c.tif", cmyk_image, format="TIFF")
    expected = np.asarray(cmyk_image.convert("RGB"))
    np.testing.assert_array_equal(images.to_uint8(images.read_image(cmyk)), expected)


def test_alpha_is_kept_on_request_and_palette_transparency_survives(tmp_path):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = [[0, 64], [128, 255]]
    path = _save(tmp_path / "a.png", Image.fromarray(rgba))
    pixels = images.read_image(path, keep_alpha=True)
    np.testing.assert_allclose(pixels[..., 3], rgba[..., 3] / 255.0)
    assert images.read_image(path).shape == (2, 2, 3)
    np.testing.assert_allclose(images.read_alpha(path), rgba[..., 3] / 255.0)

    palette = Image.new("P", (2, 1))
    palette.putpalette([255, 0, 0, 0, 255, 0])
    palette.putdata([0, 1])
    palette.info["transparency"] = 0
    path = _save(tmp_path / "pt.png", palette, transparency=0)
    np.testing.assert_allclose(images.read_image(path, keep_alpha=True)[0, :, 3], [0.0, 1.0])


def test_exif_orientation_is_applied(tmp_path, gradient):
    image = Image.fromarray(gradient)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the stored 6x4 pixels display as 4x6.
    path = _save(tmp_path / "phone.jpg", image, format="JPEG", quality=100, exif=exif)
    pixels = images.read_image(path)
    assert pixels.shape == (6, 4, 3)
    # PIL's own transpose is the independent reference for orientation 6.
    expected = np.asarray(image.transpose(Image.Transpose.ROTATE_270)) / 255.0
    np.testing.assert_allclose(pixels, expected, atol=8 / 255)


def test_too_many_pixels_is_refused_before_decoding(tmp_path):
    path = _save(tmp_path / "big.png", Image.new("L", (300, 200)))
    with pytest.raises(ImageError, match=r"big\.png: image too large \(300x200 = 60,000 pixels"):
        images.read_image(path, max_pixels=50_000)


def test_decompression_bomb_header_is_refused(tmp_path):
    # A 1-bit PNG claiming 20000x20000 compresses to a few kB but would decode to 1.2 GB.
    buffer = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buffer, format="PNG")
    with pytest.raises(ImageError, match="too large"):
        images.decode_image(buffer.getvalue(), "bomb.png", max_pixels=10_000_000)


@pytest.mark.parametrize(
    "content,problem",
    [
        (b"", "not a readable image"),
        (b"<html>not an image</html>", "not a readable image"),
    ],
)
def test_garbage_is_a_one_line_error_naming_the_file(tmp_path, content, problem):
    path = tmp_path / "fake.png"
    path.write_bytes(content)
    with pytest.raises(ImageError) as caught:
        images.read_image(path)
    assert str(caught.value) == f"{path}: {problem} (unknown or corrupt format)"


def test_truncated_and_missing_files(tmp_path, gradient):
    whole = io.BytesIO()
    Image.fromarray(np.tile(gradient, (20, 20, 1))).save(whole, format="PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    with pytest.raises(ImageError, match=r"cut\.png: cannot decode image \(truncated file\)"):
        images.read_image(path)
    with pytest.raises(ImageError, match=r"missing\.png: no such file"):
        images.read_image(tmp_path / "missing.png")


def test_probe_reads_header_only(tmp_path):
    whole = _save(tmp_path / "whole.png", Image.new("RGBA", (7, 3))).read_bytes()
    # Cut two bytes into the compressed pixels (the IDAT chunk): anything that decodes pixels
    # fails on this file, while a probe that reads only the header succeeds.
    path = tmp_path / "p.png"
    path.write_bytes(whole[: whole.index(b"IDAT") + 6])
    with pytest.raises(ImageError):
        images.read_image(path)
    info = images.probe_image(path)
    assert (info.width, info.height, info.has_alpha, info.format) == (7, 3, True, "PNG")
    assert images.probe_image(path.read_bytes()).pixels == 21


def test_trimap_tolerance_and_levels(tmp_path):
    # Values up to 16 and from 239 count as certain (JPEG noise); all else is unknown.
    disk = np.array([[0, 16, 17, 128, 238, 239, 255]], dtype=np.uint8)
    path = _save(tmp_path / "t.png", Image.fromarray(disk))
    trimap = images.read_trimap(path)
    np.testing.assert_array_equal(trimap, [[0, 0, 0.5, 0.5, 0.5, 1, 1]])
    np.testing.assert_array_equal(images.trimap_to_uint8(trimap), [[0, 0, 128, 128, 128, 255, 255]])


def test_rgb_trimap_is_accepted(tmp_path):
    disk = np.array([[0, 128, 255]], dtype=np.uint8)
    path = _save(tmp_path / "t.png", Image.fromarray(np.stack([disk] * 3, axis=2)))
    np.testing.assert_array_equal(images.read_trimap(path), [[0, 0.5, 1]])


def test_trimap_of_another_size_is_an_error_not_a_resize(tmp_path):
    path = _save(tmp_path / "t.png", Image.new("L", (5, 4)))
    with pytest.raises(ImageError, match=r"t\.png: trimap is 5x4 but the image is 6x4"):
        images.read_trimap(path, shape=(4, 6))


def test_write_png_roundtrip_8_and_16_bit(tmp_path):
    alpha = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    images.write_png(tmp_path / "a8.png", alpha)
    images.write_png(tmp_path / "a16.png", alpha, bits=16)
    np.testing.assert_allclose(images.read_alpha(tmp_path / "a8.png"), alpha, atol=0.5 / 255)
    np.testing.assert_allclose(images.read_alpha(tmp_path / "a16.png"), alpha, atol=0.5 / 65535)
    rgba = np.random.default_rng(0).random((3, 4, 4)).astype(np.float32)
    images.write_png(tmp_path / "c.png", rgba)
    np.testing.assert_array_equal(
        images.to_uint8(images.read_image(tmp_path / "c.png", keep_alpha=True)),
        images.to_uint8(rgba),
    )


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), images.atomic_path(target) as temp:
        temp.write_bytes(b"half")
        raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_write_error_names_the_target_not_the_temp_file(tmp_path):
    target = tmp_path / "x.png"
    target.mkdir()  # the final rename onto a folder fails
    with pytest.raises(IsADirectoryError) as caught:
        images.write_png(target, np.zeros((2, 2), np.float32))
    assert str(caught.value) == f"[Errno 21] Is a directory: '{target}'"
    assert caught.value.filename == str(target)
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


def test_disk_full_names_the_target(tmp_path, monkeypatch):
    def full(path, _data):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(type(tmp_path), "write_bytes", full)
    with pytest.raises(OSError) as caught:
        images.write_bytes(tmp_path / "x.png", b"data")
    assert caught.value.filename == str(tmp_path / "x.png")
    assert ".tmp" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_write_png_rejects_bad_shapes(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        images.write_png(tmp_path / "x.png", np.zeros((2, 2, 2)))
    assert not list(tmp_path.iterdir())


def test_written_files_get_the_usual_permissions(tmp_path):
    target = tmp_path / "out.png"
    images.write_png(target, np.zeros((2, 2), np.float32))
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
