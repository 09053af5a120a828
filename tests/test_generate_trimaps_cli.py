"""Tests for generate_trimaps.py: outputs, options, no overwriting, one-line errors."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model.auto_trimap import auto_trimap, load_saliency_model, trimap_path
from model.images import read_image, write_png

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "generate_trimaps.py"
DEMO_PHOTO = ROOT / "docs" / "demo" / "photo.png"

# TensorFlow's C++ start-up notices, printed before its logging is configured; not ours.
TF_NOTICE = re.compile(r"^(WARNING: All log messages before absl|I0000 )")


def _run(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )


def _lines(stderr: str) -> list[str]:
    """stderr without TensorFlow's notices and without the progress bar's redraws."""
    lines = []
    for line in stderr.replace("\r", "\n").splitlines():
        line = line.strip()
        if line and not TF_NOTICE.match(line) and not line.startswith("trimaps:"):
            lines.append(line)
    return lines


def _photo(tmp_path: Path) -> Path:
    """The demo photo copied into ``tmp_path`` (tests never write into docs/)."""
    return Path(shutil.copy(DEMO_PHOTO, tmp_path / "photo.png"))


def test_trimap_path_names():
    assert trimap_path("docs/demo/photo.png") == Path("docs/demo/photo_trimap.png")
    assert trimap_path("a/b.c.jpg", "out") == Path("out/b.c_trimap.png")


@pytest.mark.slow
def test_writes_trimaps_and_reports_bad_files_but_goes_on(tmp_path):
    photo = _photo(tmp_path)
    # A second photo of another size (the demo photo flipped and cropped), as PNG bytes under a
    # .jpg name: the format is sniffed, and the trimap is still second_trimap.png.
    second = tmp_path / "second.jpg"
    write_png(tmp_path / "second.png", read_image(photo)[::-1, :301])
    (tmp_path / "second.png").rename(second)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    missing = tmp_path / "missing.jpg"
    options = ["--band", "0.03", "--foreground", "0.8", "--background", "0.2"]
    inputs = [photo, text, missing, second, tmp_path]
    before = {path: path.read_bytes() for path in (photo, second, text)}
    result = _run(*inputs, *options)
    assert result.returncode == 2
    errors = [line for line in _lines(result.stderr) if line.startswith("error:")]
    assert errors == [
        f"error: {text}: not a readable image (unknown or corrupt format)",
        f"error: {missing}: no such file",
        f"error: {tmp_path}: is a directory, not an image",
    ]
    assert "Traceback" not in result.stderr
    assert result.stdout.split() == [
        str(tmp_path / "photo_trimap.png"),
        str(tmp_path / "second_trimap.png"),
    ]
    # Inputs untouched; the trimaps are what the library gives for the same options.
    assert {path: path.read_bytes() for path in before} == before
    model = load_saliency_model()
    for image_path in (photo, second):
        written = np.asarray(read_image(trimap_path(image_path)))[..., 0]
        expected = auto_trimap(
            model, read_image(image_path), foreground=0.8, background=0.2, band=0.03
        )
        levels = np.rint(written * 255)
        np.testing.assert_array_equal(
            levels, np.select([expected == 0, expected == 1], [0, 255], 128)
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "notes.png", "photo.png", "photo_trimap.png", "second.jpg", "second_trimap.png",
    ]  # fmt: skip


def test_existing_trimap_is_kept_without_force(tmp_path):
    photo = _photo(tmp_path)
    existing = tmp_path / "photo_trimap.png"
    existing.write_bytes(b"an older trimap")
    result = _run(photo)
    assert result.returncode == 0
    assert _lines(result.stderr) == [f"note: {existing}: exists, kept (--force replaces it)"]
    assert existing.read_bytes() == b"an older trimap"
    assert result.stdout == ""


def test_an_input_is_never_overwritten_even_with_force(tmp_path):
    photo = _photo(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    # photo.png's trimap in out/ would be out/photo_trimap.png, and that is given as an input.
    clash = Path(shutil.copy(photo, out / "photo_trimap.png"))
    result = _run(photo, clash, "--out", out, "--force")
    assert result.returncode == 2
    assert _lines(result.stderr) == [
        f"note: {clash}: skipped; its name says it is a trimap already",
        f"error: {photo}: its trimap {clash} is an input; not overwritten",
    ]
    assert clash.read_bytes() == photo.read_bytes()


def test_two_photos_may_not_share_one_trimap(tmp_path):
    photo = _photo(tmp_path)
    out = tmp_path / "out"
    other = tmp_path / "other"
    other.mkdir()
    twin = Path(shutil.copy(photo, other / "photo.png"))
    # Two photos with the same stem and one --out folder: the second would clobber the first.
    result = _run(photo, twin, "--out", out, "--weights", tmp_path / "none.weights.h5")
    assert result.returncode == 2
    lines = _lines(result.stderr)
    assert lines[0] == (
        f"error: {twin}: its trimap {out / 'photo_trimap.png'} is already the trimap of {photo}"
    )
    # The first photo then fails on the missing weights: one line naming the weights file.
    assert lines[1:] == [f"error: {tmp_path / 'none.weights.h5'}: no such file"]
    assert not out.exists() or not any(out.iterdir())


def test_stop_on_error_stops_at_the_first_bad_file(tmp_path):
    photo = _photo(tmp_path)
    result = _run(tmp_path / "missing.png", photo, "--stop-on-error")
    assert result.returncode == 2
    assert _lines(result.stderr) == [f"error: {tmp_path / 'missing.png'}: no such file"]
    assert not (tmp_path / "photo_trimap.png").exists()


def test_earlier_trimaps_among_the_inputs_are_skipped(tmp_path):
    photo = _photo(tmp_path)
    earlier = tmp_path / "photo_trimap.png"
    earlier.write_bytes(b"earlier output")
    result = _run(photo, earlier)
    assert result.returncode == 0
    assert _lines(result.stderr) == [
        f"note: {earlier}: skipped; its name says it is a trimap already",
        f"note: {earlier}: exists, kept (--force replaces it)",
    ]
    assert not (tmp_path / "photo_trimap_trimap.png").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--foreground", "0.3", "--background", "0.4"], "error: --background 0.4 must be below"),
        (["--band", "0.9"], "error: argument --band: must be in [0, 0.5], not 0.9"),
        (["--foreground", "x"], "error: argument --foreground: 'x' is not a number"),
    ],
)
def test_bad_options_are_one_line(tmp_path, args, message):
    result = _run(_photo(tmp_path), *args)
    assert result.returncode == 2
    assert len(_lines(result.stderr)) == 1 and _lines(result.stderr)[0].startswith(message)
    assert not (tmp_path / "photo_trimap.png").exists()


def test_out_that_is_a_file_is_refused(tmp_path):
    photo = _photo(tmp_path)
    result = _run(photo, "--out", photo)
    assert result.returncode == 2
    assert _lines(result.stderr) == [f"error: {photo}: --out must be a folder, but this is a file"]
