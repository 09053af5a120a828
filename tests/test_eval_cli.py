"""Tests for eval.py as a cut-out tool: outputs, batch mode and one-line errors on bad input."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_inference import TINY, write_run

import eval as eval_cli
from model.images import write_png

ROOT = Path(__file__).resolve().parents[1]
HEIGHT, WIDTH = 37, 53

# TensorFlow's C++ start-up notices, printed before its logging is configured; not ours.
TF_NOTICE = re.compile(r"^(WARNING: All log messages before absl|I0000 )")


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory) -> Path:
    log = tmp_path_factory.mktemp("cli") / "log"
    write_run(log)
    return log


def _image(height: int = HEIGHT, width: int = WIDTH, seed: int = 0) -> np.ndarray:
    """float32 (H, W, 3): smooth gradients plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([yy / max(height, 1), xx / max(width, 1), 0.5 + 0 * yy], axis=-1)
    return np.clip(base + rng.normal(0, 0.05, base.shape), 0, 1).astype(np.float32)


def _trimap(height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """uint8 (H, W): background on top, foreground at the bottom, an unknown band between."""
    trimap = np.full((height, width), 128, np.uint8)
    trimap[: height // 3] = 0
    trimap[-(height // 3) :] = 255
    return trimap


@pytest.fixture
def pair(tmp_path) -> tuple[Path, Path]:
    write_png(tmp_path / "in.png", _image())
    write_png(tmp_path / "trimap.png", _trimap())
    return tmp_path / "in.png", tmp_path / "trimap.png"


def _run(log_dir: Path, *args) -> int:
    return eval_cli.main([*map(str, args), "--log-dir", str(log_dir)])


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def test_writes_rgba_with_the_matte_and_clamped_known_regions(log_dir, pair, tmp_path):
    out, matte = tmp_path / "out.png", tmp_path / "alpha.png"
    assert _run(log_dir, *pair, out, "--alpha", matte) == 0
    with Image.open(out) as image:
        assert image.mode == "RGBA" and image.size == (WIDTH, HEIGHT)
    rgba, alpha = _pixels(out), _pixels(matte)
    # The matte file is 16-bit (model/outputs.py); the cut-out's alpha is its 8-bit rounding.
    assert alpha.dtype == np.uint16
    # Each side is a rounding of the same float: 0.5 (8-bit) plus 0.5/257 (16-bit) apart at most.
    assert np.abs(rgba[..., 3] - alpha / 257.0).max() <= 0.5 + 0.5 / 257.0 + 1e-9
    trimap = _trimap()
    assert np.all(alpha[trimap == 0] == 0) and np.all(alpha[trimap == 255] == 65535)
    # An untrained sigmoid is strictly between 0 and 1 in the unknown band.
    assert np.all((alpha[trimap == 128] > 0) & (alpha[trimap == 128] < 65535))


def test_network_pixels_selects_the_working_resolution(log_dir, pair, tmp_path):
    # 37 x 53 = 1961 pixels: a budget of 400 shrinks the window, 0 keeps full size.
    mattes = {}
    for budget in ("400", "0"):
        out = tmp_path / f"out_{budget}.png"
        assert _run(log_dir, *pair, out, "--network-pixels", budget) == 0
        with Image.open(out) as image:
            assert image.mode == "RGBA" and image.size == (WIDTH, HEIGHT)
        mattes[budget] = _pixels(out)[..., 3]
    trimap = _trimap()
    for alpha in mattes.values():
        assert np.all(alpha[trimap == 0] == 0) and np.all(alpha[trimap == 255] == 255)
    assert np.any(mattes["400"] != mattes["0"])


@pytest.mark.parametrize("colour", ["0,255,0", "#00ff00"])
def test_composite_onto_a_colour_is_alpha_f_plus_one_minus_alpha_c(log_dir, pair, tmp_path, colour):
    out = tmp_path / "out.png"
    assert _run(log_dir, *pair, out, "--background", colour) == 0
    rgba = _pixels(out).astype(np.float64) / 255.0
    alpha, foreground = rgba[..., 3:], rgba[..., :3]
    # Reference by hand from the written files: alpha F + (1 - alpha) C with C = green.
    expected = alpha * foreground + (1 - alpha) * np.array([0.0, 1.0, 0.0])
    composite = _pixels(tmp_path / "out_composite.png").astype(np.float64)
    assert composite.shape == (HEIGHT, WIDTH, 3)
    # Both sides are 8-bit roundings of the same float values: at most one level apart.
    assert np.abs(composite - expected * 255.0).max() <= 1.0 + 1e-9


def test_composite_onto_an_image_shows_it_where_alpha_is_zero(log_dir, tmp_path):
    background = _image(seed=5)
    write_png(tmp_path / "bg.png", background)
    write_png(tmp_path / "in.png", _image())
    write_png(tmp_path / "trimap.png", np.zeros((HEIGHT, WIDTH), np.uint8))
    out = tmp_path / "out.png"
    inputs = (tmp_path / "in.png", tmp_path / "trimap.png", out)
    assert _run(log_dir, *inputs, "--background", tmp_path / "bg.png") == 0
    # All background: the composite is the new background (same size, so fitted unchanged).
    composite = _pixels(tmp_path / "out_composite.png")
    np.testing.assert_array_equal(composite, _pixels(tmp_path / "bg.png"))


def test_mask_threshold_writes_binary_and_soft_masks(log_dir, pair, tmp_path):
    out = tmp_path / "out.png"
    assert _run(log_dir, *pair, out, "--mask-threshold", "0.5") == 0
    mask, soft = _pixels(tmp_path / "out_mask.png"), _pixels(tmp_path / "out_soft_mask.png")
    np.testing.assert_array_equal(soft, _pixels(out)[..., 3])
    assert set(np.unique(mask)) <= {0, 255}
    # The mask thresholds the float matte; the soft mask is its rounding, so only values that
    # round to 127 or 128 can fall on either side of 0.5.
    clear = np.abs(soft.astype(int) - 127.5) > 1
    np.testing.assert_array_equal(mask[clear] == 255, soft[clear] >= 128)


def test_batch_mode_writes_the_good_files_and_fails_at_the_end(log_dir, tmp_path, capsys):
    images, trimaps, out = tmp_path / "images", tmp_path / "trimaps", tmp_path / "out"
    for name in ("a", "c"):
        write_png(images / f"{name}.png", _image())
        write_png(trimaps / f"{name}.png", _trimap())
    (images / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    write_png(trimaps / "b.png", _trimap())
    write_png(images / "d.png", _image())  # no trimap named d
    assert _run(log_dir, images, trimaps, out, "--alpha", tmp_path / "mattes") == 2
    assert sorted(path.name for path in out.iterdir()) == ["a.png", "c.png"]
    assert sorted(path.name for path in (tmp_path / "mattes").iterdir()) == ["a.png", "c.png"]
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert any(str(images / "b.png") in line for line in errors)
    assert any(str(images / "d.png") in line and "no trimap" in line for line in errors)


def _assert_nothing_written(folder: Path, *inputs: Path) -> None:
    assert sorted(folder.iterdir()) == sorted(inputs)


def _truncated_png(path: Path) -> None:
    write_png(path, _image())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("make_input", "message"),
    [(lambda path: None, "no such file"), (_truncated_png, "cannot decode image (truncated file)")],
    ids=["missing", "truncated"],
)
def test_missing_or_corrupt_input(log_dir, tmp_path, capsys, make_input, message):
    make_input(tmp_path / "in.png")
    write_png(tmp_path / "trimap.png", _trimap())
    assert _run(log_dir, tmp_path / "in.png", tmp_path / "trimap.png", tmp_path / "out.png") == 2
    err = capsys.readouterr().err
    assert err == f"error: {tmp_path / 'in.png'}: {message}\n"
    assert not (tmp_path / "out.png").exists()


def test_trimap_of_another_size_writes_nothing(log_dir, tmp_path, capsys):
    write_png(tmp_path / "in.png", _image())
    write_png(tmp_path / "trimap.png", _trimap(HEIGHT + 1, WIDTH))
    args = (tmp_path / "in.png", tmp_path / "trimap.png", tmp_path / "out.png")
    assert _run(log_dir, *args, "--alpha", tmp_path / "a.png") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'trimap.png'}: trimap is") and err.count("\n") == 1
    _assert_nothing_written(tmp_path, tmp_path / "in.png", tmp_path / "trimap.png")


def test_trimap_without_unknown_pixels_is_followed(log_dir, tmp_path):
    trimap = np.zeros((HEIGHT, WIDTH), np.uint8)
    trimap[10:30, 5:40] = 255
    write_png(tmp_path / "in.png", _image())
    write_png(tmp_path / "trimap.png", trimap)
    assert _run(log_dir, tmp_path / "in.png", tmp_path / "trimap.png", tmp_path / "out.png") == 0
    np.testing.assert_array_equal(_pixels(tmp_path / "out.png")[..., 3], trimap)


@pytest.mark.parametrize(("height", "width"), [(HEIGHT, WIDTH), (1, 1)])
def test_all_unknown_trimap_and_one_pixel_image(log_dir, tmp_path, height, width):
    write_png(tmp_path / "in.png", _image(height, width))
    write_png(tmp_path / "trimap.png", np.full((height, width), 128, np.uint8))
    assert _run(log_dir, tmp_path / "in.png", tmp_path / "trimap.png", tmp_path / "out.png") == 0
    rgba = _pixels(tmp_path / "out.png")
    assert rgba.shape == (height, width, 4)
    assert np.all((rgba[..., 3] > 0) & (rgba[..., 3] < 255))


def test_sixteen_bit_grey_input(log_dir, tmp_path):
    grey = (np.linspace(0, 65535, HEIGHT * WIDTH).reshape(HEIGHT, WIDTH)).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / "in.png")
    write_png(tmp_path / "trimap.png", _trimap())
    assert _run(log_dir, tmp_path / "in.png", tmp_path / "trimap.png", tmp_path / "out.png") == 0
    rgba = _pixels(tmp_path / "out.png")
    # Grey in, grey out: the foreground estimate treats the three equal channels alike.
    np.testing.assert_array_equal(rgba[..., 0], rgba[..., 1])
    np.testing.assert_array_equal(rgba[..., 0], rgba[..., 2])


def test_exif_rotated_photo_is_cut_out_upright(log_dir, tmp_path, capsys):
    stored = Image.fromarray((_image(24, 40) * 255).astype(np.uint8))  # 40 wide, 24 high
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    stored.save(tmp_path / "in.jpg", exif=exif)
    write_png(tmp_path / "upright.png", _trimap(40, 24))
    write_png(tmp_path / "stored.png", _trimap(24, 40))
    out = tmp_path / "out.png"
    assert _run(log_dir, tmp_path / "in.jpg", tmp_path / "upright.png", out) == 0
    assert _pixels(out).shape == (40, 24, 4)
    # A trimap drawn on the sideways pixels does not fit the upright photo.
    assert _run(log_dir, tmp_path / "in.jpg", tmp_path / "stored.png", tmp_path / "x.png") == 2
    assert "trimap is 40x24 but the image is 24x40" in capsys.readouterr().err


def test_checkpoint_folder_without_checkpoint(log_dir, pair, tmp_path, capsys):
    empty = tmp_path / "empty_run" / "checkpoints"
    empty.mkdir(parents=True)
    assert _run(log_dir, *pair, tmp_path / "out.png", "--checkpoint", empty.parent) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert _run(tmp_path / "no_log", *pair, tmp_path / "out.png") == 2
    assert "no checkpoint found" in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--background", "not-a-colour"], "neither a colour"),
        (["--alpha", "matte.jpg"], "give the name a .png extension"),
    ],
)
def test_bad_options_are_one_line_errors(log_dir, pair, tmp_path, capsys, extra, message):
    assert _run(log_dir, *pair, tmp_path / "out.png", *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--mask-threshold", "2", "must be in [0, 1]"),
        ("--network-pixels", "-1", "must be >= 0, not -1"),
    ],
)
def test_out_of_range_numbers_are_rejected_by_the_parser(
    pair, tmp_path, capsys, option, value, message
):
    with pytest.raises(SystemExit) as exit_info:
        eval_cli.main([*map(str, pair), str(tmp_path / "o.png"), option, value])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith(f"error: argument {option}: {message}")


def _stderr_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if not TF_NOTICE.match(line)]


def _subprocess(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "eval.py"), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_missing_file_exit_code_and_no_traceback(tmp_path, log_dir):
    missing = tmp_path / "nope.jpg"
    result = _subprocess(missing, tmp_path / "t.png", tmp_path / "o.png", "--log-dir", log_dir)
    assert result.returncode == 2
    assert _stderr_lines(result) == [f"error: {missing}: no such file"]


def test_other_architecture_exit_code_and_no_traceback(tmp_path, pair):
    run = write_run(tmp_path / "log")
    wider = dataclasses.replace(TINY, depth=3)
    (run / "config.json").write_text(json.dumps({"model": wider.to_dict()}), encoding="utf-8")
    result = _subprocess(*pair, tmp_path / "out.png", "--log-dir", tmp_path / "log")
    assert result.returncode == 2
    lines = _stderr_lines(result)
    assert len(lines) == 1 and "does not match the architecture" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.png").exists()
