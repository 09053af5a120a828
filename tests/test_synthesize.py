"""scripts/synthesize.py: reproducible procedural foregrounds and backgrounds for combine.py.

Runs are tiny (64-pixel items) so the whole file takes a few seconds. Expectations come from
the files themselves (decoded with PIL, hashed with hashlib) and from the run's arguments,
never from stored hashes, so a change of the generators does not break these tests but a
non-deterministic or mis-laid-out run does.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage
from PIL import Image

from model.compositing import colour_matrix
from model.manifest import read_records
from scripts import drawing, photos, procedural, synthesize
from tests.ctrl_c import interrupt

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "synthesize.py"
SIZE = 64
COUNT = len(procedural.FOREGROUND_FAMILIES) + 1  # every family, one of them twice
BACKGROUNDS = 6
PHOTO_FRACTION = synthesize.build_parser().get_default("photo_fraction")


def synth(out: Path, *extra: str, seed: int = 0, workers: int = 1) -> int:
    args = ["--out", str(out), "--seed", str(seed), "--workers", str(workers)]
    args += ["--count", str(COUNT), "--backgrounds", str(BACKGROUNDS), "--size", str(SIZE)]
    return synthesize.main([*args, *extra])


def files(out: Path) -> dict[str, bytes]:
    """Every image the run left, by path relative to ``out``."""
    return {
        path.relative_to(out).as_posix(): path.read_bytes()
        for path in sorted(out.glob("*/*"))
        if path.is_file()
    }


def records(out: Path) -> list[dict]:
    lines = (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def by_file(out: Path) -> dict[str, dict]:
    return {record["file"]: record for record in records(out)}


def pixels(path: Path) -> tuple[str, np.ndarray]:
    with Image.open(path) as image:
        return image.mode, np.asarray(image)


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run, seed 0, shared read-only by the tests that only look at its output."""
    out = tmp_path_factory.mktemp("synth") / "raw"
    assert synth(out) == 0
    return out


# ---------------------------------------------------------------------------------------------
# Determinism


def test_same_seed_is_byte_identical_whatever_the_workers(raw, tmp_path):
    again = tmp_path / "again"
    assert synth(again, workers=2) == 0
    assert files(again) == files(raw)
    # Two workers append in completion order; the records themselves must be the same.
    assert sorted(records(again), key=lambda r: r["file"]) == sorted(
        records(raw), key=lambda r: r["file"]
    )


def test_different_seed_gives_different_files(raw, tmp_path):
    other = tmp_path / "other"
    assert synth(other, seed=1) == 0
    ours, theirs = files(raw), files(other)
    assert ours.keys() == theirs.keys()
    same = [name for name in ours if ours[name] == theirs[name]]
    assert same == []
    assert {r["seed"] for r in records(other)} == {1}


@pytest.mark.parametrize("photo", [False, True])
def test_one_item_is_reproduced_on_its_own(raw, photo):
    """The promise behind resuming: an item's pixels depend only on (seed, kind, index)."""
    items = synthesize.plan(COUNT, BACKGROUNDS, SIZE, 0, PHOTO_FRACTION)
    item = next(i for i in reversed(items) if i.kind == "foreground" and i.photo == photo)
    _, stored = pixels(raw / item.file)
    rendered, info = synthesize.render(item)
    np.testing.assert_array_equal(np.rint(rendered * 255), stored)
    assert info == by_file(raw)[item.file]["photo"]


# ---------------------------------------------------------------------------------------------
# Layout and manifest


def test_count_and_size_are_respected(tmp_path):
    out = tmp_path / "raw"
    assert (
        synthesize.main(
            [
                "--out",
                str(out),
                "--count",
                "3",
                "--backgrounds",
                "2",
                "--size",
                "40",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    families = procedural.FOREGROUND_FAMILIES
    assert sorted(p.name for p in (out / "foreground").iterdir()) == sorted(
        f"{families[i]}_{i:05d}.png" for i in range(3)
    )
    assert sorted(p.name for p in (out / "background").iterdir()) == [
        "bg_00000.png",
        "bg_00001.png",
    ]
    for path in (out / "foreground").iterdir():
        assert pixels(path)[1].shape == (40, 40, 4)
    for path in (out / "background").iterdir():
        height, width = pixels(path)[1].shape[:2]
        # Long side 1.1-1.6x the size (rounded), in one of the listed aspect ratios.
        assert round(1.1 * 40) <= max(height, width) <= round(1.6 * 40)
        ratio = width / height
        assert min(abs(ratio - a) for a in procedural.BACKGROUND_ASPECTS) < 2 / min(height, width)


def test_foregrounds_are_rgba_with_partial_transparency(raw):
    paths = sorted((raw / "foreground").iterdir())
    assert len(paths) == COUNT
    seen = set()
    for path in paths:
        mode, rgba = pixels(path)
        assert mode == "RGBA", path.name
        assert rgba.shape == (SIZE, SIZE, 4)
        alpha = rgba[..., 3]
        soft = (alpha > 0) & (alpha < 255)
        assert soft.sum() >= 0.01 * alpha.size, f"{path.name}: hardly any soft alpha"
        assert (alpha < 255).any() and (alpha > 0).any(), path.name
        # The colour is an image, not a flat fill (the colour of low-alpha pixels matters).
        assert rgba[..., :3].reshape(-1, 3).std(axis=0).max() > 1.0, path.name
        seen.add(path.name.rsplit("_", 1)[0])
    assert seen == set(procedural.FOREGROUND_FAMILIES)


def test_backgrounds_are_opaque_rgb(raw):
    paths = sorted((raw / "background").iterdir())
    assert len(paths) == BACKGROUNDS
    for path in paths:
        mode, rgb = pixels(path)
        assert mode == "RGB", path.name
        assert rgb.ndim == 3 and rgb.shape[2] == 3
        assert rgb.std() > 1.0, path.name


def test_manifest_has_one_record_per_file(raw):
    on_disk = files(raw)
    listed = records(raw)
    assert len(listed) == len(on_disk) == COUNT + BACKGROUNDS
    assert {r["file"] for r in listed} == on_disk.keys()
    for record in listed:
        data = on_disk[record["file"]]
        assert record["sha256"] == hashlib.sha256(data).hexdigest()
        assert record["status"] == "kept" and record["reason"] is None
        assert record["seed"] == 0 and record["size"] == SIZE
        assert record["kind"] == record["file"].split("/")[0]
        height, width = pixels(raw / record["file"])[1].shape[:2]
        assert (record["width"], record["height"]) == (width, height)
    assert [p.name for p in raw.iterdir() if p.name.startswith(".")] == []


# ---------------------------------------------------------------------------------------------
# Re-runs


def test_rerun_keeps_finished_files_and_remakes_missing_or_damaged_ones(raw, tmp_path, capsys):
    out = tmp_path / "raw"
    assert synth(out) == 0
    before = files(out)
    manifest = (out / "manifest.jsonl").read_bytes()
    mtimes = {name: (out / name).stat().st_mtime_ns for name in before}
    capsys.readouterr()

    assert synth(out) == 0
    assert f"(0 made, {len(before)} already there)" in capsys.readouterr().out
    assert (out / "manifest.jsonl").read_bytes() == manifest
    assert {name: (out / name).stat().st_mtime_ns for name in before} == mtimes

    deleted, damaged = sorted(before)[0], sorted(before)[-1]
    (out / deleted).unlink()
    (out / damaged).write_bytes(before[damaged][:100])
    with (out / "manifest.jsonl").open("a", encoding="utf-8") as handle:
        handle.write('{"file": "torn')  # what a crash mid-append leaves
    assert synth(out) == 0
    assert f"(2 made, {len(before) - 2} already there)" in capsys.readouterr().out
    assert files(out) == before
    # The torn line is skipped; the two new records follow it.
    assert {r["file"] for r in read_records(out / "manifest.jsonl")[-2:]} == {deleted, damaged}
    assert synth(out) == 0
    assert f"(0 made, {len(before)} already there)" in capsys.readouterr().out


def test_rerun_with_another_size_remakes_everything(tmp_path, capsys):
    out = tmp_path / "raw"
    args = ["--out", str(out), "--count", "2", "--backgrounds", "1", "--workers", "1"]
    assert synthesize.main([*args, "--size", "32"]) == 0
    assert synthesize.main([*args, "--size", "40"]) == 0
    assert "(3 made, 0 already there)" in capsys.readouterr().out.splitlines()[-1]
    assert pixels(out / "foreground" / f"{procedural.FOREGROUND_FAMILIES[0]}_00000.png")[1].shape[
        :2
    ] == (40, 40)


# ---------------------------------------------------------------------------------------------
# Bad input


def test_missing_output_folder_is_created(tmp_path):
    out = tmp_path / "a" / "b" / "raw"
    assert (
        synthesize.main(
            [
                "--out",
                str(out),
                "--count",
                "1",
                "--backgrounds",
                "1",
                "--size",
                "32",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    assert len(files(out)) == 2 and len(records(out)) == 2


def test_output_that_is_a_file_is_one_line_and_exit_2(tmp_path, capsys):
    out = tmp_path / "raw"
    out.write_text("not a folder")
    assert synth(out) == 2
    assert capsys.readouterr().err == f"error: {out}: not a folder\n"
    assert out.read_text() == "not a folder"


def test_too_small_size_is_one_line_and_exit_2(tmp_path, capsys):
    assert synthesize.main(["--out", str(tmp_path / "raw"), "--size", "8"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --size: ") and str(synthesize.MIN_SIZE) in err
    assert err.count("\n") == 1
    assert not (tmp_path / "raw").exists()


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--count", "-1", "must be >= 0"),
        ("--backgrounds", "many", "is not an integer"),
        ("--workers", "0", "must be >= 1"),
        ("--seed", "1.5", "is not an integer"),
    ],
)
def test_bad_numbers_are_one_line_and_exit_2(tmp_path, capsys, flag, value, message):
    with pytest.raises(SystemExit) as exit_info:
        synthesize.main(["--out", str(tmp_path / "raw"), flag, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: argument {flag}: ") and message in err
    assert err.count("\n") == 1


def test_unwritable_output_exit_code_and_no_traceback(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / "raw"  # a folder below a file cannot be made
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), "--count", "1", "--backgrounds", "0"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {out}: "), result.stderr


def test_ctrl_c_exits_130_with_one_line_and_a_whole_manifest(tmp_path):
    out = tmp_path / "raw"
    # Far more than the interrupt lets it make: photo items render at hundreds per second.
    args = ["--out", str(out), "--count", "5000", "--size", "128", "--workers", "2"]
    manifest = out / "manifest.jsonl"
    status, err = interrupt(
        SCRIPT, args, lambda: manifest.exists() and manifest.stat().st_size > 2000
    )
    assert status == 130, err
    assert err.splitlines()[-1] == f"error: {out}: interrupted; run again to resume"
    assert "Traceback" not in err
    made = records(out)  # every line parses
    assert 0 < len(made) < 5000
    assert synth(out) == 0  # and the run resumes from it


# ---------------------------------------------------------------------------------------------
# Real photographs


def test_default_run_mixes_photo_and_procedural_items_of_both_kinds(raw):
    photo = {kind: set() for kind in ("foreground", "background")}
    for record in records(raw):
        photo[record["kind"]].add(record["photo"] is not None)
        assert record["generator"] != "photo" or record["photo"] is not None
    assert photo == {"foreground": {True, False}, "background": {True, False}}


def test_photo_records_name_a_free_photo_of_the_installed_package(raw):
    """Licences as scikit-image's docstrings state them (checked by hand, see README)."""
    free = {"astronaut", "rocket", "hubble_deep_field"}  # NASA / SpaceX: public domain
    free_cc0 = {"chelsea", "coffee", "brick", "grass", "gravel", "camera"}
    listed = {p.name: p for p in photos.PHOTOS}
    assert set(listed) == free | free_cc0
    photo_records = [r for r in records(raw) if r["photo"] is not None]
    assert photo_records
    for record in photo_records:
        info = record["photo"]
        assert info["package"] == "scikit-image" and info["version"] == skimage.__version__
        assert info["licence"] == ("public domain" if info["source"] in free else "CC0")
        assert info["credit"] == listed[info["source"]].credit
        top, left, height, width = info["window"]
        photo_height, photo_width = photos.load(info["source"]).shape[:2]
        assert 0 <= top < top + height <= photo_height and 0 <= left < left + width <= photo_width
        assert record["seed"] == 0


def test_photo_background_is_the_recorded_window_of_the_photo(raw):
    """Rebuild each photo background from its record alone: window, turn, flip, palette,
    resize, colour shift. Equal up to 8-bit rounding, so the record is the file's provenance."""
    backgrounds = [r for r in records(raw) if r["kind"] == "background" and r["photo"]]
    assert backgrounds
    for record in backgrounds:
        info = record["photo"]
        top, left, height, width = info["window"]
        crop = photos.load(info["source"])[top : top + height, left : left + width]
        if crop.ndim == 2:
            colours = drawing.PALETTES[info["palette"]]
            order = np.argsort(colours @ np.array([0.299, 0.587, 0.114]))
            crop = drawing.gradient_map(crop, colours[order])
        crop = np.rot90(crop, info["quarter_turns"])
        crop = np.ascontiguousarray(crop[:, ::-1] if info["flip"] else crop)
        size = (record["width"], record["height"])
        smaller = crop.shape[0] * crop.shape[1] > size[0] * size[1]
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if smaller else cv2.INTER_CUBIC)
        matrix = colour_matrix(info["hue"], info["saturation"], info["brightness"])
        expected = np.clip(crop @ matrix.T, 0.0, 1.0) * 255
        _, stored = pixels(raw / record["file"])
        assert np.abs(stored - expected).max() <= 0.5 + 1e-3, record["file"]


def test_photo_fraction_zero_is_the_procedural_generators_alone(tmp_path):
    """With the option off, every file is what procedural.py makes from the item's stream, as
    before photographs existed, and no record mentions a photo."""
    out = tmp_path / "raw"
    assert synth(out, "--photo-fraction", "0") == 0
    for record in records(out):
        assert record["photo"] is None
        rng = synthesize.item_rng(0, record["kind"], record["index"])
        if record["kind"] == "foreground":
            colour, alpha = procedural.make_foreground(record["generator"], rng, SIZE, SIZE)
            expected = np.concatenate([colour, alpha[..., None]], axis=2)
        else:
            assert record["generator"] == "clutter"
            expected = procedural.make_background(rng, *procedural.background_size(rng, SIZE))
        _, stored = pixels(out / record["file"])
        np.testing.assert_array_equal(np.rint(expected * 255), stored)


def test_photo_fraction_one_makes_photos_only_and_raising_it_keeps_photo_items():
    everything = synthesize.plan(40, 40, SIZE, 3, 1.0)
    assert all(item.photo for item in everything)
    assert {i.family for i in everything if i.kind == "background"} == {"photo"}
    chosen = {}
    for fraction in (0.2, 0.5, 0.8):
        items = synthesize.plan(40, 40, SIZE, 3, fraction)
        chosen[fraction] = {(i.kind, i.index) for i in items if i.photo}
        # Not exact, but a uniform draw per item lands near the fraction.
        assert abs(len(chosen[fraction]) / 80 - fraction) < 0.2
    assert chosen[0.2] <= chosen[0.5] <= chosen[0.8]


def test_rerun_with_another_photo_fraction_remakes_only_the_items_that_changed(tmp_path, capsys):
    out = tmp_path / "raw"
    assert synth(out, "--photo-fraction", "0") == 0
    before = files(out)
    capsys.readouterr()
    assert synth(out, "--photo-fraction", "0.5") == 0
    changed = sum(item.photo for item in synthesize.plan(COUNT, BACKGROUNDS, SIZE, 0, 0.5))
    assert f"({changed} made, {len(before) - changed} already there)" in capsys.readouterr().out
    after = files(out)
    assert sum(after[name] != before[name] for name in before) == changed


@pytest.mark.parametrize("family", procedural.FOREGROUND_FAMILIES)
def test_a_fill_gives_the_object_its_colours(family):
    """A constant fill c: lace, motion and defocus show c itself; fur, hair and smoke shade it
    (every pixel a multiple of c); glass tints with it. Another fill, other colours."""
    colours = []
    for fill_colour in ((0.8, 0.4, 0.2), (0.1, 0.5, 0.9)):
        fill = np.empty((SIZE, SIZE, 3), np.float32)
        fill[:] = fill_colour
        rng = np.random.default_rng(5)
        colour, alpha = procedural.make_foreground(family, rng, SIZE, SIZE, fill)
        visible = alpha > 0.05
        c = np.asarray(fill_colour, np.float32)
        if family in ("lace", "motion", "defocus"):
            np.testing.assert_allclose(
                colour[visible], np.broadcast_to(c, colour[visible].shape), atol=1e-5
            )
        elif family in ("fur", "hair", "smoke"):
            ratio = colour[visible] / c
            unclipped = (colour[visible] < 1.0).all(axis=1)
            np.testing.assert_allclose(
                ratio[unclipped], ratio[unclipped][:, :1].repeat(3, 1), rtol=1e-4
            )
        colours.append(colour[visible].mean(axis=0))
    assert np.abs(colours[0] - colours[1]).max() > 0.1
