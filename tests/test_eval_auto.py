"""eval.py without a trimap: automatic trimaps from U²-Net-p, then the matting model.

The expected trimap is computed in the test with the library (``auto_trimap`` on the same
image), and the disc image has a known answer: its centre is foreground, its far corners
background. The matting model is a tiny random one; the known regions come from the trimap.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_inference import write_run

import eval as eval_cli
from model.auto_trimap import auto_trimap, load_saliency_model
from model.images import read_image, trimap_to_uint8, write_png

pytestmark = pytest.mark.slow  # each test starts the saliency network (seconds)

ROOT = Path(__file__).resolve().parents[1]
HEIGHT, WIDTH = 64, 96
CENTRE = (32, 48)
RADIUS = 20


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory) -> Path:
    log = tmp_path_factory.mktemp("auto") / "log"
    write_run(log)
    return log


@pytest.fixture(scope="module")
def saliency():
    return load_saliency_model()


def disc_image(dy: int = 0, dx: int = 0) -> np.ndarray:
    """A red disc of radius 20 on a plain light background, float32 (64, 96, 3)."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    disc = (yy - CENTRE[0] - dy) ** 2 + (xx - CENTRE[1] - dx) ** 2 <= RADIUS**2
    image = np.empty((HEIGHT, WIDTH, 3), np.float32)
    image[:] = (0.9, 0.9, 0.85)
    image[disc] = (0.8, 0.1, 0.1)
    return image


def _run(log_dir: Path, *args) -> int:
    return eval_cli.main([*map(str, args), "--log-dir", str(log_dir)])


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def _expected_trimap(saliency, path: Path) -> np.ndarray:
    """The on-disk trimap auto_trimap makes for the image file, uint8 {0, 128, 255}."""
    return trimap_to_uint8(auto_trimap(saliency, read_image(path)))


def test_image_only_cutout_is_a_matte_from_the_automatic_trimap(log_dir, saliency, tmp_path):
    photo, out, kept = tmp_path / "disc.png", tmp_path / "out.png", tmp_path / "kept.png"
    write_png(photo, disc_image())
    assert _run(log_dir, photo, out, "--save-trimap", kept) == 0
    with Image.open(out) as image:
        assert image.mode == "RGBA" and image.size == (WIDTH, HEIGHT)
    rgba, trimap = _pixels(out), _pixels(kept)
    np.testing.assert_array_equal(trimap, _expected_trimap(saliency, photo))
    # The known answer: the disc's centre is foreground, the far corners background.
    assert trimap[CENTRE] == 255 and trimap[0, 0] == 0 and trimap[-1, -1] == 0
    alpha = rgba[..., 3]
    assert alpha[CENTRE] == 255 and alpha[0, 0] == 0 and alpha[-1, -1] == 0
    assert (alpha[trimap == 255] == 255).all() and (alpha[trimap == 0] == 0).all()
    # A matte, not a mask: the unknown ring along the disc's edge holds the network's values.
    ring = trimap == 128
    assert ring.sum() > 2 * np.pi * RADIUS
    assert ((alpha[ring] > 0) & (alpha[ring] < 255)).mean() > 0.9
    # The cut-out keeps the disc's colour where it is opaque.
    np.testing.assert_array_equal(rgba[CENTRE][:3], [204, 26, 26])


def test_only_mask_writes_the_matte_or_the_binary_mask(log_dir, tmp_path):
    photo = tmp_path / "disc.png"
    write_png(photo, disc_image())
    assert _run(log_dir, photo, tmp_path / "cutout.png") == 0
    assert _run(log_dir, photo, tmp_path / "matte.png", "-om") == 0
    assert (
        _run(log_dir, photo, tmp_path / "mask.png", "--only-mask", "--mask-threshold", "0.5") == 0
    )
    alpha = _pixels(tmp_path / "cutout.png")[..., 3]
    matte, mask = _pixels(tmp_path / "matte.png"), _pixels(tmp_path / "mask.png")
    assert matte.shape == mask.shape == (HEIGHT, WIDTH)
    np.testing.assert_array_equal(matte, alpha)
    # alpha >= 0.5 in 8 bits is 128 and up (both round the same float matte).
    np.testing.assert_array_equal(mask, np.where(alpha >= 128, 255, 0))
    assert not (tmp_path / "mask_mask.png").exists()  # only OUT, no extras beside it


def test_folder_mode_without_trimaps(log_dir, saliency, tmp_path, capsys):
    photos, out, trimaps = tmp_path / "photos", tmp_path / "out", tmp_path / "trimaps"
    photos.mkdir()
    write_png(photos / "a.png", disc_image())
    write_png(photos / "b.png", disc_image(dy=-6, dx=15))
    (photos / "c.png").write_text("not an image")
    assert _run(log_dir, photos, out, "--save-trimap", trimaps) == 2
    assert f"error: {photos / 'c.png'}: not a readable image" in capsys.readouterr().err
    assert sorted(path.name for path in out.iterdir()) == ["a.png", "b.png"]
    assert sorted(path.name for path in trimaps.iterdir()) == ["a.png", "b.png"]
    for stem in ("a", "b"):
        trimap = _pixels(trimaps / f"{stem}.png")
        np.testing.assert_array_equal(trimap, _expected_trimap(saliency, photos / f"{stem}.png"))
        alpha = _pixels(out / f"{stem}.png")[..., 3]
        assert (alpha[trimap == 255] == 255).all() and (alpha[trimap == 0] == 0).all()
    # The saved trimaps are a trimap folder for the three-argument form.
    again = tmp_path / "again"
    (photos / "c.png").unlink()
    assert _run(log_dir, photos, trimaps, again) == 0
    for stem in ("a", "b"):
        np.testing.assert_array_equal(_pixels(again / f"{stem}.png"), _pixels(out / f"{stem}.png"))


def _subprocess(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "eval.py"), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )


def _errors(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error")]


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda t, p: [t / "missing.png", t / "out.png"], "missing.png: no such file"),
        (
            lambda t, p: [p, t / "out.png", "--saliency-weights", t / "no.weights.h5"],
            "no.weights.h5: no such file",
        ),
        (
            lambda t, p: [
                p,
                t / "out.png",
                *("--trimap-foreground", "0.3", "--trimap-background", "0.4"),
            ],
            "--trimap-background 0.4 must be below --trimap-foreground 0.3",
        ),
        (
            lambda t, p: [p, t / "out.png", "-om", "--background", "red"],
            "--only-mask: writes no colours",
        ),
        (lambda t, p: [p, t / "out.png", "--trimap-band", "0.7"], "must be in [0, 0.5], not 0.7"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(log_dir, tmp_path, make_args, message):
    photo = tmp_path / "disc.png"
    write_png(photo, disc_image())
    result = _subprocess(*make_args(tmp_path, photo), "--log-dir", log_dir)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = _errors(result)
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["disc.png"]


def test_a_trimap_given_as_out_is_not_overwritten(log_dir, tmp_path, capsys):
    """``eval.py IMG TRIMAP`` with OUT forgotten reads as IMG OUT; the trimap must survive."""
    photo, trimap = tmp_path / "disc.png", tmp_path / "hand.png"
    write_png(photo, disc_image())
    painted = np.zeros((HEIGHT, WIDTH), np.uint8)
    painted[20:40, 30:60] = 128
    write_png(trimap, painted)
    before = trimap.read_bytes()
    assert _run(log_dir, photo, trimap) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {trimap}: looks like a trimap, not overwritten; give IMG TRIMAP OUT"
    )
    assert trimap.read_bytes() == before
