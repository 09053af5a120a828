"""Tests for model/safe_paths.py and eval.py's checks before any work (issue 18, items 1 and 4).

Every eval.py case passes ``--checkpoint`` pointing at nothing: the checks under test must come
first, so the error names the output (or the trimap), not the checkpoint, and the model is
never loaded.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import eval as eval_cli
from model import cutout
from model.images import ImageError, check_trimap_header, write_png
from model.safe_paths import (
    OutputError,
    check_folder,
    check_not_inputs,
    check_writable,
    same_file,
)

HEIGHT, WIDTH = 21, 34
NO_CHECKPOINT = ["--checkpoint", "/nonexistent/ckpt-1"]


def _digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` -> sha256 of its bytes (links followed)."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def pair(tmp_path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    write_png(tmp_path / "in.png", rng.random((HEIGHT, WIDTH, 3), dtype=np.float32))
    trimap = np.full((HEIGHT, WIDTH), 128, np.uint8)
    trimap[:5], trimap[-5:] = 0, 255
    write_png(tmp_path / "trimap.png", trimap)
    return tmp_path / "in.png", tmp_path / "trimap.png"


def _refused(capsys, folder: Path, args: list) -> str:
    """Run eval.py; assert exit 2, one error line and no file under ``folder`` changed."""
    before = _digest(folder)
    assert eval_cli.main([*map(str, args), *NO_CHECKPOINT]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert _digest(folder) == before
    return err[0]


# ---- the library --------------------------------------------------------------------------


def test_same_file_sees_links_and_unwritten_paths(tmp_path):
    target = tmp_path / "a.png"
    target.write_bytes(b"x")
    os.symlink(target, tmp_path / "soft.png")
    os.link(target, tmp_path / "hard.png")
    (tmp_path / "sub").mkdir()
    os.symlink(tmp_path, tmp_path / "sub" / "up")
    assert same_file(tmp_path / "soft.png", target)
    assert same_file(tmp_path / "hard.png", target)
    assert same_file(tmp_path / "sub" / ".." / "a.png", target)
    # Not written yet, reached through a linked folder: the same place.
    assert same_file(tmp_path / "sub" / "up" / "new.png", tmp_path / "new.png")
    assert not same_file(tmp_path / "new.png", target)


def test_check_not_inputs_names_both_files(tmp_path):
    source = tmp_path / "photo.png"
    source.write_bytes(b"x")
    with pytest.raises(OutputError, match=r"photo\.png: --alpha is the photo \(.*photo\.png\)"):
        check_not_inputs([("--alpha", source)], [("the photo", source)])
    out = tmp_path / "out.png"
    with pytest.raises(OutputError, match=r"out\.png: the output and --alpha are the same file"):
        check_not_inputs([("the output", out), ("--alpha", out)], [("the photo", source)])
    check_not_inputs([("the output", out), ("--alpha", None)], [("the photo", source)])


def test_check_folder_refuses_an_input_folder_not_a_subfolder(tmp_path):
    check_folder(tmp_path / "sub", "OUT", [("the input folder", tmp_path)])
    with pytest.raises(OutputError, match="OUT is the input folder"):
        check_folder(tmp_path / "sub" / "..", "OUT", [("the input folder", tmp_path)])


def test_check_writable(tmp_path):
    (tmp_path / "file").write_bytes(b"x")
    check_writable(tmp_path / "new" / "deeper" / "out.png")  # folders get created
    with pytest.raises(OutputError, match=r"cannot create its folder, .*file is a file"):
        check_writable(tmp_path / "file" / "out.png")
    with pytest.raises(OutputError, match="is a folder; give a file name"):
        check_writable(tmp_path)
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_writable(tmp_path / "file", folder=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_check_writable_read_only_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with pytest.raises(OutputError, match="locked is not writable"):
        check_writable(locked / "new" / "out.png")


def test_check_trimap_header_reads_no_pixels(tmp_path):
    # A 9000 x 9000 black PNG is about 80 KB on disk and 970 MB as float32 RGB.
    Image.new("L", (9000, 9000)).save(tmp_path / "huge.png")
    Image.new("L", (12, 8)).save(tmp_path / "small.png")
    Image.new("L", (8, 12)).save(tmp_path / "turned.png")
    with pytest.raises(ImageError, match=r"small.png: trimap is 12x8 but the image is 9000x9000"):
        check_trimap_header(tmp_path / "huge.png", tmp_path / "small.png")
    # EXIF orientation may turn the image, so the transposed size is left to read_trimap.
    check_trimap_header(tmp_path / "small.png", tmp_path / "turned.png")
    with pytest.raises(ImageError, match=r"missing\.png: no such file"):
        check_trimap_header(tmp_path / "small.png", tmp_path / "missing.png")


# ---- eval.py never overwrites an input ----------------------------------------------------


@pytest.mark.parametrize(
    ("output", "extra", "expected"),
    [
        ("in.png", [], "the output is the input image"),
        ("trimap.png", [], "the output is the trimap"),
        ("out.png", ["--alpha", "trimap.png"], "--alpha is the trimap"),
        ("out.png", ["--alpha", "in.png"], "--alpha is the input image"),
        ("out.png", ["--alpha", "out.png"], "the output and --alpha are the same file"),
        ("soft.png", [], "the output is the input image"),
        ("hard.png", [], "the output is the input image"),
        ("sub/../in.png", [], "the output is the input image"),
        # OUT x.png puts its composite on x_composite.png, here the background image.
        ("x.png", ["--background", "x_composite.png"], "composite is the --background image"),
    ],
)
def test_eval_refuses_to_overwrite_an_input(capsys, pair, output, extra, expected):
    image, trimap = pair
    folder = image.parent
    os.symlink(image, folder / "soft.png")
    os.link(image, folder / "hard.png")
    (folder / "sub").mkdir()
    write_png(folder / "x_composite.png", np.zeros((HEIGHT, WIDTH, 3), np.float32))
    extra = [folder / arg if arg.endswith(".png") else arg for arg in extra]
    line = _refused(capsys, folder, [image, trimap, folder / output, *extra])
    assert expected in line


def _batch_folders(root: Path) -> tuple[Path, Path]:
    photos, trimaps = root / "photos", root / "trimaps"
    rng = np.random.default_rng(1)
    for name in ("a", "b"):
        write_png(photos / f"{name}.png", rng.random((HEIGHT, WIDTH, 3), dtype=np.float32))
        write_png(trimaps / f"{name}.png", np.full((HEIGHT, WIDTH), 128, np.uint8))
    return photos, trimaps


@pytest.mark.parametrize(
    ("output", "alpha", "expected"),
    [
        ("photos", None, "the output folder is the input folder"),
        ("trimaps", None, "the output folder is the trimap folder"),
        ("cut", "photos/.", "--alpha is the input folder"),
        ("cut", "cut", "the output and --alpha are the same file"),
    ],
)
def test_eval_batch_refuses_input_folders(capsys, tmp_path, output, alpha, expected):
    photos, trimaps = _batch_folders(tmp_path)
    args = [photos, trimaps, tmp_path / output]
    if alpha is not None:
        args += ["--alpha", tmp_path / alpha]
    assert expected in _refused(capsys, tmp_path, args)


def test_eval_batch_refuses_a_folder_linked_into_an_input(capsys, tmp_path):
    # OUT inside the input folder is allowed unless an output lands on an input file: here
    # photos/back links to photos itself, so photos/back/a.png is photos/a.png.
    photos, trimaps = _batch_folders(tmp_path)
    os.symlink(photos, photos / "back")
    line = _refused(capsys, tmp_path, [photos, trimaps, photos / "back"])
    assert "the output folder is the input folder" in line


def test_eval_batch_allows_a_subfolder_of_the_input(capsys, tmp_path):
    photos, trimaps = _batch_folders(tmp_path)
    before = _digest(tmp_path)
    # Passes every output check and stops only at the (missing) checkpoint.
    assert eval_cli.main([str(photos), str(trimaps), str(photos / "cut"), *NO_CHECKPOINT]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    assert _digest(tmp_path) == before


# ---- eval.py checks before the work, not after --------------------------------------------


def test_eval_reports_an_unwritable_output_before_the_model(capsys, pair):
    image, trimap = pair
    (image.parent / "file").write_bytes(b"x")
    line = _refused(capsys, image.parent, [image, trimap, image.parent / "file" / "out.png"])
    assert "file/out.png: cannot create its folder" in line


def test_eval_reports_a_read_only_folder_before_the_model(capsys, pair, monkeypatch):
    image, trimap = pair
    locked = image.parent / "locked"
    locked.mkdir()
    real_access = os.access
    # Root may write anywhere, so the read-only folder is simulated where permissions are read.
    monkeypatch.setattr(
        os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode)
    )
    line = _refused(capsys, image.parent, [image, trimap, locked / "out.png"])
    assert "locked is not writable" in line


def test_eval_checks_the_trimap_size_before_decoding_the_image(capsys, tmp_path, monkeypatch):
    Image.new("RGB", (9000, 9000)).save(tmp_path / "huge.png")
    Image.new("L", (40, 30)).save(tmp_path / "trimap.png")

    def no_decoding(*args, **kwargs):
        raise AssertionError("the image was decoded before the sizes were compared")

    monkeypatch.setattr(cutout, "read_image", no_decoding)
    line = _refused(
        capsys, tmp_path, [tmp_path / "huge.png", tmp_path / "trimap.png", tmp_path / "o.png"]
    )
    assert line == (
        f"error: {tmp_path / 'trimap.png'}: trimap is 40x30 but the image is 9000x9000;"
        " they must be the same size"
    )
