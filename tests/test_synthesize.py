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

import numpy as np
import pytest
from PIL import Image

from model.manifest import read_records
from scripts import procedural, synthesize
from tests.ctrl_c import interrupt

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "synthesize.py"
SIZE = 64
COUNT = len(procedural.FOREGROUND_FAMILIES) + 1  # every family, one of them twice
BACKGROUNDS = 6


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


def test_one_item_is_reproduced_on_its_own(raw):
    """The promise behind resuming: an item's pixels depend only on (seed, kind, index)."""
    index = COUNT - 1
    family = procedural.FOREGROUND_FAMILIES[index % len(procedural.FOREGROUND_FAMILIES)]
    item = synthesize.Item("foreground", index, family, 0, SIZE)
    _, stored = pixels(raw / item.file)
    np.testing.assert_array_equal(np.rint(synthesize.render(item) * 255), stored)


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
    args = ["--out", str(out), "--count", "400", "--size", "96", "--workers", "2"]
    manifest = out / "manifest.jsonl"
    status, err = interrupt(
        SCRIPT, args, lambda: manifest.exists() and manifest.stat().st_size > 2000
    )
    assert status == 130, err
    assert err.splitlines()[-1] == f"error: {out}: interrupted; run again to resume"
    assert "Traceback" not in err
    made = records(out)  # every line parses
    assert 0 < len(made) < 600
    assert synth(out) == 0  # and the run resumes from it
