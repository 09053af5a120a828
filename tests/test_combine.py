"""scripts/combine.py end to end on tiny inputs: layout, splits, compositing, trimaps, resuming
after a kill, skipped inputs, image/mask pairs and bad input.

The raw material is a small synthesize.py run (8 foregrounds, 6 backgrounds, 64 px) or images
made here with numpy, so every expectation is computed from the input files themselves: the
composite by hand as ``a F + (1 - a) B`` from the written fg, alpha and bg, the alpha and fg
from the source foreground's pixels.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from model.classical import closed_form_prior, has_prior
from model.compositing import fit_background
from model.images import read_image, read_trimap, to_uint8
from scripts import combine, degrade, sources, splits, synthesize
from scripts import samples as sample_files
from scripts.samples import PARTS, PRIOR_PART
from tests.ctrl_c import interrupt

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "combine.py"
SIZE = 64
FOREGROUNDS = 8
BACKGROUNDS = 6
PER_FG = 2
TEST_PER_FG = 1


def run_combine(raw: Path, out: Path, *extra: str) -> int:
    return combine.main([str(raw), "--out", str(out), "--workers", "1", *map(str, extra)])


def load(path: Path) -> tuple[str, np.ndarray]:
    with Image.open(path) as image:
        image.load()
        return image.mode, np.asarray(image)


def pixels(path: Path) -> np.ndarray:
    return load(path)[1]


def names(out: Path, split: str, part: str = "image") -> set[str]:
    folder = out / split / part
    if not folder.is_dir():
        return set()
    return {p.stem for p in folder.iterdir() if not p.name.startswith(".")}


def all_samples(out: Path) -> dict[str, str]:
    """sample name -> split, for every sample whose image exists."""
    return {name: split for split in splits.SPLITS for name in names(out, split)}


def records(out: Path) -> list[dict]:
    lines = (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def kept_samples(out: Path) -> list[dict]:
    return [r for r in records(out) if r["kind"] == "sample" and r["status"] == "kept"]


def skipped_reasons(out: Path) -> dict[str, str]:
    """input file name -> reason, from the manifest's skipped records of inputs."""
    return {
        Path(r["file"]).name: r["reason"]
        for r in records(out)
        if r["status"] == "skipped" and r["kind"] in ("foreground", "background")
    }


def error_lines(err: str) -> list[str]:
    return [line for line in re.split(r"[\r\n]", err) if line.startswith("error:")]


def soft_disc(height: int, width: int, rim: float = 4.0) -> np.ndarray:
    """uint8 disc centred in the image, ramping from 255 to 0 over ``rim`` pixels."""
    yy, xx = np.mgrid[:height, :width]
    radius = min(height, width) * 0.3
    alpha = np.clip((radius - np.hypot(yy - height / 2, xx - width / 2)) / rim + 0.5, 0, 1)
    return np.rint(alpha * 255).astype(np.uint8)


def colours(seed: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def save(path: Path, array: np.ndarray, mode: str | None = None, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path, **options)
    return path


def check_sample(out: Path, split: str, name: str) -> dict[str, np.ndarray]:
    """Decode all five files of a sample, check modes and sizes, return the arrays by part."""
    parts = {}
    for part in PARTS:
        mode, array = load(out / split / part / f"{name}.png")
        assert mode == ("L" if part in ("trimap", "alpha") else "RGB"), (part, name, mode)
        parts[part] = array
    shapes = {array.shape[:2] for array in parts.values()}
    assert len(shapes) == 1, (name, shapes)
    return parts


def assert_composite(parts: dict[str, np.ndarray]) -> None:
    """image == a F + (1 - a) B of the written files, up to the final 8-bit rounding."""
    a = parts["alpha"].astype(np.float64)[..., None] / 255.0
    expected = a * parts["fg"].astype(np.float64) + (1.0 - a) * parts["bg"].astype(np.float64)
    assert np.abs(parts["image"].astype(np.float64) - expected).max() <= 0.5 + 1e-3


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthesize.py run shared read-only by the module: 8 foregrounds, 6 backgrounds."""
    out = tmp_path_factory.mktemp("combine") / "raw"
    args = ["--out", str(out), "--count", str(FOREGROUNDS), "--backgrounds", str(BACKGROUNDS)]
    assert synthesize.main([*args, "--size", str(SIZE), "--workers", "1"]) == 0
    return out


@pytest.fixture(scope="module")
def dataset(raw: Path) -> tuple[Path, str]:
    """combine.py over ``raw`` with all three splits; (output folder, its stdout)."""
    out = raw.parent / "data"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = run_combine(
            raw,
            out,
            "--per-fg",
            PER_FG,
            "--test-per-fg",
            TEST_PER_FG,
            "--val-fraction",
            "0.2",
            "--test-fraction",
            "0.2",
        )
    assert code == 0
    return out, stdout.getvalue()


def background_only_raw(raw: Path, folder: Path, count: int = 4) -> Path:
    """A raw folder with ``count`` of the synthesized backgrounds and no foreground/."""
    (folder / "background").mkdir(parents=True)
    for path in sorted((raw / "background").iterdir())[:count]:
        shutil.copy(path, folder / "background" / path.name)
    return folder


# ---------------------------------------------------------------------------------------------
# A clean run


def test_layout_five_files_of_one_size_per_sample(dataset):
    out, _ = dataset
    for split in splits.SPLITS:
        samples = names(out, split)
        assert samples, f"{split} is empty"
        for part in PARTS:
            assert names(out, split, part) == samples, (split, part)
        for name in samples:
            parts = check_sample(out, split, name)
            assert parts["image"].shape == (SIZE, SIZE, 3)
    leftovers = [p for p in out.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]
    assert leftovers == []


def test_sample_counts_follow_per_fg_and_the_manifest(dataset, raw):
    out, stdout = dataset
    run = next(r for r in records(out) if r["kind"] == "run")
    assert sum(run["foregrounds"].values()) == FOREGROUNDS
    per_split = {"train": PER_FG, "val": TEST_PER_FG, "test": TEST_PER_FG}
    kept = kept_samples(out)
    assert Counter(r["name"] for r in kept) == Counter(all_samples(out).keys())  # one each
    for split in splits.SPLITS:
        count = run["foregrounds"][split] * per_split[split]
        assert len(names(out, split)) == count
        assert f"{split:5s}: {run['foregrounds'][split]} foregrounds, {count} samples" in stdout
        assert {r["name"] for r in kept if r["split"] == split} == names(out, split)
    for record in kept:
        assert Path(record["fg"]).parent == raw / "foreground"
        assert record["name"] == f"{Path(record['fg']).stem}__{Path(record['bg']).stem}"


def test_no_foreground_or_background_in_two_splits(dataset, raw):
    out, _ = dataset
    fgs = {split: set() for split in splits.SPLITS}
    bgs = {split: set() for split in splits.SPLITS}
    for record in kept_samples(out):
        fgs[record["split"]].add(Path(record["fg"]).name)
        bgs[record["split"]].add(Path(record["bg"]).name)
    for name, split in all_samples(out).items():
        assert name.split("__")[0] + ".png" in fgs[split]
    train, val, test = (fgs[split] for split in splits.SPLITS)
    assert not (train & val or train & test or val & test)
    assert train | val | test == {p.name for p in (raw / "foreground").iterdir()}
    # Six backgrounds are enough for disjoint pools here, so the run did not share them.
    run = next(r for r in records(out) if r["kind"] == "run")
    assert isinstance(run["backgrounds"], dict)
    assert not (bgs["train"] & bgs["val"] or bgs["train"] & bgs["test"] or bgs["val"] & bgs["test"])


def test_image_is_the_composite_of_fg_alpha_and_bg(dataset):
    out, _ = dataset
    soft_pixels = 0
    for name, split in all_samples(out).items():
        parts = check_sample(out, split, name)
        assert_composite(parts)
        soft_pixels += int(((parts["alpha"] > 0) & (parts["alpha"] < 255)).sum())
    assert soft_pixels > 0  # the equation was tested where fg and bg actually mix


def clean_background(record: dict) -> np.ndarray:
    """The sample's background before degradations: the source fitted with the sample's stream."""
    rng = np.random.default_rng(record["sample_seed"])
    source = read_image(record["bg"])
    return to_uint8(fit_background(source, record["height"], record["width"], rng))


def test_fg_and_bg_are_the_sources_degraded_as_recorded(dataset, raw):
    """Rebuilt from the sources and the manifest record alone: alpha is the source's, and F
    and B are the source F and the fitted background put through the recorded degradations."""
    out, _ = dataset
    degraded = 0
    for record in kept_samples(out):
        rgba = pixels(Path(record["fg"]))
        parts = check_sample(out, record["split"], record["name"])
        np.testing.assert_array_equal(parts["alpha"], rgba[..., 3])
        assert record["scale"] is None
        steps = record["degradations"]
        assert set(steps) == set(degrade.draw(np.random.default_rng(0), SIZE))
        fg, bg = degrade.apply(rgba[..., :3], clean_background(record), steps)
        np.testing.assert_array_equal(parts["fg"], fg)
        np.testing.assert_array_equal(parts["bg"], bg)
        assert parts["bg"].std() > 1.0  # a background picture, not a flat fill
        degraded += not np.array_equal(parts["fg"], rgba[..., :3])
    assert degraded > 0  # the default run does degrade


def test_no_degrade_stores_the_sources_and_changes_no_other_draw(dataset, raw, tmp_path):
    """--no-degrade gives the samples of earlier versions: F is the source's, B the fitted
    source background; trimaps (the kernel draw) and alpha equal the degraded run's."""
    degraded_out, _ = dataset
    out = tmp_path / "data"
    flags = ["--per-fg", PER_FG, "--test-per-fg", TEST_PER_FG, "--val-fraction", "0.2"]
    flags += ["--test-fraction", "0.2", "--no-prior", "--no-degrade"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert run_combine(raw, out, *flags) == 0
    assert all_samples(out) == all_samples(degraded_out)
    for record in kept_samples(out):
        assert record["degradations"] is None
        parts = check_sample(out, record["split"], record["name"])
        assert_composite(parts)
        rgba = pixels(Path(record["fg"]))
        np.testing.assert_array_equal(parts["fg"], rgba[..., :3])
        np.testing.assert_array_equal(parts["bg"], clean_background(record))
        for part in ("trimap", "alpha"):
            name = f"{part}/{record['name']}.png"
            assert (out / record["split"] / name).read_bytes() == (
                degraded_out / record["split"] / name
            ).read_bytes()
    run = next(r for r in records(out) if r["kind"] == "run")
    assert run["degrade"] is False and run["scales"] is None


def test_trimap_levels_and_unknown_band(dataset):
    out, _ = dataset
    low, high = combine.build_parser().get_default("trimap_kernel")
    by_name = {r["name"]: r for r in kept_samples(out)}
    for name, split in all_samples(out).items():
        parts = check_sample(out, split, name)
        trimap, alpha = parts["trimap"], parts["alpha"]
        assert set(np.unique(trimap)) <= {0, 128, 255}
        soft = (alpha > 0) & (alpha < 255)
        assert (trimap[soft] == 128).all(), name
        assert (alpha[trimap == 255] == 255).all() and (alpha[trimap == 0] == 0).all(), name
        assert low <= by_name[name]["trimap_kernel"] <= high


def test_trimap_kernel_one_marks_exactly_the_soft_pixels(raw, tmp_path):
    out = tmp_path / "data"
    assert run_combine(raw, out, "--per-fg", 1, "--test-per-fg", 1, "--trimap-kernel", 1) == 0
    samples = all_samples(out)
    assert len(samples) == FOREGROUNDS
    for name, split in samples.items():
        parts = check_sample(out, split, name)
        alpha = parts["alpha"]
        expected = np.where(alpha == 255, 255, np.where(alpha == 0, 0, 128))
        np.testing.assert_array_equal(parts["trimap"], expected)


# ---------------------------------------------------------------------------------------------
# Resuming


def test_killed_run_leaves_no_partial_sample_and_resumes(tmp_path, capsys):
    side, n_fg, n_bg = 256, 4, 8
    raw = tmp_path / "raw"
    for i in range(n_fg):
        rgba = np.dstack([colours(i, side, side), soft_disc(side, side, rim=8)])
        save(raw / "foreground" / f"f{i}.png", rgba, "RGBA")
    for i in range(n_bg):
        save(raw / "background" / f"b{i}.png", colours(100 + i, side, side))
    out = tmp_path / "data"
    args = [raw, "--out", out, "--per-fg", n_bg, "--val-fraction", 0, "--test-fraction", 0]
    total = n_fg * n_bg
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), *map(str, args), "--workers", "1"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not names(out, "train"):
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no sample appeared"
            time.sleep(0.005)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    done = names(out, "train")
    assert 0 < len(done) < total, "killed too late to prove anything"
    for name in done:
        check_sample(out, "train", name)

    # What a kill between two files of a sample, or in the middle of one, leaves behind.
    pending = sorted({f"f{i}__b{j}" for i in range(n_fg) for j in range(n_bg)} - done)[0]
    for part in ("trimap", "alpha"):
        (out / "train" / part / f"{pending}.png").write_bytes(b"\x89PNG half a file")
    temp = out / "train" / "fg" / f".{pending}.png.k1ll3d.tmp"
    temp.write_bytes(b"\x89PNG half")

    capsys.readouterr()
    assert combine.main([*map(str, args), "--workers", "1"]) == 0
    stdout = capsys.readouterr().out
    new = total - len(done)
    assert f"train: {n_fg} foregrounds, {total} samples ({new} new, {len(done)} already there," in (
        stdout
    )
    assert len(names(out, "train")) == total
    for name in names(out, "train"):
        assert_composite(check_sample(out, "train", name))
    assert not temp.exists()
    assert Counter(r["name"] for r in kept_samples(out)) == Counter(names(out, "train"))


def test_rerun_that_would_move_a_foreground_to_another_split_is_refused(raw, tmp_path, capsys):
    out = tmp_path / "data"
    args = ["--per-fg", 1, "--test-per-fg", 1]
    assert run_combine(raw, out, *args) == 0
    before = all_samples(out)
    fgs = sorted(p.stem for p in (raw / "foreground").iterdir())
    assert splits.assign_splits(fgs, 1, 0.1, 0.1, "foreground") != splits.assign_splits(
        fgs, 0, 0.1, 0.1, "foreground"
    )
    manifest = (out / "manifest.jsonl").read_bytes()
    capsys.readouterr()

    assert run_combine(raw, out, *args, "--seed", 1) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "now in another split" in lines[0], lines
    assert lines[0].startswith(f"error: {out}/")
    assert all_samples(out) == before
    assert (out / "manifest.jsonl").read_bytes() == manifest
    # The same options as before still resume.
    assert run_combine(raw, out, *args) == 0
    assert all_samples(out) == before


@pytest.mark.parametrize(
    ("failure", "code", "message"),
    [
        (KeyboardInterrupt(), 130, "{out}: interrupted; run again to resume"),
        (OSError(28, "No space left on device", "{path}"), 1, "{path}: No space left on device"),
    ],
    ids=["ctrl-c", "disk-full"],
)
def test_failure_in_the_middle_of_a_sample_leaves_no_image(
    raw, tmp_path, capsys, monkeypatch, failure, code, message
):
    """Deterministic version of the kill: the run stops while writing a sample's third file."""
    out = tmp_path / "data"
    written = []
    real_write_png = sample_files.write_png

    def write_png(path, array, **options):
        if len(written) == 2 + len(PARTS):  # the third file of the second sample
            if isinstance(failure, OSError):
                raise OSError(failure.errno, failure.strerror, str(path))
            raise failure
        written.append(Path(path))
        real_write_png(path, array, **options)

    monkeypatch.setattr(sample_files, "write_png", write_png)
    args = ["--per-fg", 1, "--test-per-fg", 1]
    assert run_combine(raw, out, *args) == code
    # The second sample got its trimap and alpha; the third file was being written.
    second = written[-1]
    path = second.parent.parent / PARTS[2] / second.name
    lines = error_lines(capsys.readouterr().err)
    assert lines == ["error: " + message.format(out=out, path=path)]
    assert list(all_samples(out)) == [written[0].stem]  # only the first sample is complete
    assert [p for p in out.rglob("*") if p.suffix == ".tmp"] == []
    assert [r["name"] for r in kept_samples(out)] == [written[0].stem]

    monkeypatch.setattr(sample_files, "write_png", real_write_png)
    assert run_combine(raw, out, *args) == 0
    stdout = capsys.readouterr().out
    new = sum(int(n) for n in re.findall(r"\((\d+) new,", stdout))
    there = sum(int(n) for n in re.findall(r"(\d+) already there", stdout))
    assert (new, there) == (FOREGROUNDS - 1, 1)
    samples = all_samples(out)
    assert len(samples) == FOREGROUNDS and second.stem in samples
    for name, split in samples.items():
        assert_composite(check_sample(out, split, name))
    assert Counter(r["name"] for r in kept_samples(out)) == Counter(samples.keys())


# ---------------------------------------------------------------------------------------------
# Inputs that are skipped or need care


def test_bad_files_are_skipped_with_their_reason(raw, tmp_path, capsys):
    source = tmp_path / "raw"
    background_only_raw(raw, source)
    (source / "foreground").mkdir()
    good = sorted((raw / "foreground").iterdir())[:2]
    for path in good:
        shutil.copy(path, source / "foreground" / path.name)
    data = good[0].read_bytes()
    (source / "foreground" / "truncated.png").write_bytes(data[: len(data) // 2])
    (source / "foreground" / "noise.png").write_bytes(np.random.default_rng(0).bytes(300))
    opaque = np.dstack([colours(1, 32, 32), np.full((32, 32), 255, np.uint8)])
    save(source / "foreground" / "opaque.png", opaque, "RGBA")
    transparent = np.dstack([colours(2, 32, 32), np.zeros((32, 32), np.uint8)])
    save(source / "foreground" / "transparent.png", transparent, "RGBA")
    (source / "foreground" / "notes.txt").write_text("not an image, not even looked at")
    (source / "background" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 no JPEG after all")

    out = tmp_path / "data"
    args = ["--per-fg", 2, "--val-fraction", 0, "--test-fraction", 0]
    assert run_combine(source, out, *args) == 0
    reasons = skipped_reasons(out)
    assert set(reasons) == {
        "truncated.png",
        "noise.png",
        "opaque.png",
        "transparent.png",
        "broken.jpg",
    }
    assert "truncated" in reasons["truncated.png"]
    assert "not a readable image" in reasons["noise.png"]
    assert reasons["opaque.png"] == "fully opaque"
    assert reasons["transparent.png"] == "fully transparent"
    assert re.match(r"(cannot read|not a readable|cannot decode) image", reasons["broken.jpg"])
    err = capsys.readouterr().err
    for name, reason in reasons.items():
        assert f"{name}: {reason}" in err
    samples = names(out, "train")
    assert {name.split("__")[0] for name in samples} == {p.stem for p in good}
    assert not any(name.endswith("__broken") for name in samples)

    # A re-run does not log the same skipped files again.
    before = len(records(out))
    assert run_combine(source, out, *args) == 0
    assert [r["kind"] for r in records(out)[before:]] == ["run"]


def test_pairs_source_uses_the_mask_as_alpha(raw, tmp_path, capsys):
    source = background_only_raw(raw, tmp_path / "raw")
    pairs = tmp_path / "people"
    masks = {}
    for stem, (height, width) in {"a": (48, 40), "b": (40, 56)}.items():
        save(pairs / "images" / f"{stem}.jpg", colours(ord(stem), height, width), quality=90)
        masks[stem] = save(pairs / "masks" / f"{stem}.png", soft_disc(height, width))
    # A 16-bit mask keeps working: alpha = round(v / 257).
    mask16 = np.linspace(0, 1, 44 * 36).reshape(44, 36) * soft_disc(44, 36) * 257
    mask16 = np.rint(mask16).astype(np.uint16)
    save(pairs / "images" / "c.jpg", colours(3, 44, 36), quality=90)
    masks["c"] = save(pairs / "masks" / "c.png", mask16)
    assert Image.open(masks["c"]).mode == "I;16"
    # A phone photo stored sideways (40 wide, 24 high, EXIF: rotate 90 degrees clockwise) with
    # its mask drawn on the upright picture (24 wide, 40 high).
    exif = Image.Exif()
    exif[0x0112] = 6
    save(pairs / "images" / "d.jpg", colours(4, 24, 40), quality=90, exif=exif)
    masks["d"] = save(pairs / "masks" / "d.png", soft_disc(40, 24))
    save(pairs / "images" / "lonely.jpg", colours(5, 32, 32))
    save(pairs / "masks" / "orphan.png", soft_disc(32, 32))
    save(pairs / "images" / "wrong.jpg", colours(6, 32, 32))
    save(pairs / "masks" / "wrong.png", soft_disc(30, 32))

    out = tmp_path / "data"
    # Clean samples (--no-degrade): this checks how pairs are read, so F must be the photo.
    args = ["--pairs", pairs, "--per-fg", 1, "--val-fraction", 0, "--test-fraction", 0]
    assert run_combine(source, out, *args, "--no-degrade") == 0
    reasons = skipped_reasons(out)
    assert set(reasons) == {"lonely.jpg", "orphan.png", "wrong.jpg"}
    assert "no mask" in reasons["lonely.jpg"]
    assert "without an image" in reasons["orphan.png"]
    assert reasons["wrong.jpg"].endswith("wrong.png: mask is 32x30 but its image is 32x32")

    samples = {name.split("__")[0]: name for name in names(out, "train")}
    assert set(samples) == {f"people-{stem}" for stem in masks}
    for stem, mask_path in masks.items():
        parts = check_sample(out, "train", samples[f"people-{stem}"])
        mask = pixels(mask_path)
        if mask.dtype == np.uint16:
            mask = np.rint(mask / 257.0)
        np.testing.assert_array_equal(parts["alpha"], mask)
        with Image.open(pairs / "images" / f"{stem}.jpg") as photo:
            upright = np.asarray(
                photo.transpose(Image.Transpose.ROTATE_270) if stem == "d" else photo.convert("RGB")
            )
        np.testing.assert_array_equal(parts["fg"], upright)
        assert_composite(parts)


def test_sixteen_bit_and_exif_rotated_foregrounds(raw, tmp_path):
    source = background_only_raw(raw, tmp_path / "raw")
    (source / "foreground").mkdir()
    # 16-bit RGBA (written by OpenCV, which stores BGRA).
    rgba16 = np.dstack([colours(7, 30, 34), soft_disc(30, 34)]).astype(np.uint16) * 257
    rgba16 += np.random.default_rng(8).integers(0, 200, rgba16.shape, dtype=np.uint16)
    cv2.imwrite(str(source / "foreground" / "deep.png"), rgba16[..., [2, 1, 0, 3]])
    # Stored 40 wide and 24 high, EXIF orientation 6: shown rotated 90 degrees clockwise.
    stored = np.dstack([colours(9, 24, 40), soft_disc(24, 40)])
    stored[:4, :, 3] = 255  # an opaque band along the stored top edge, which ends up on the right
    exif = Image.Exif()
    exif[0x0112] = 6
    save(source / "foreground" / "turned.png", stored, "RGBA", exif=exif)
    # 16-bit grey without alpha: read fine, but it has nothing to cut out.
    save(
        source / "foreground" / "grey16.png",
        (np.arange(30 * 30).reshape(30, 30) * 70).astype(np.uint16),
    )

    out = tmp_path / "data"
    args = ["--per-fg", 1, "--val-fraction", 0, "--test-fraction", 0, "--no-degrade"]
    assert run_combine(source, out, *args) == 0  # clean: this checks decoding, so F = source
    assert skipped_reasons(out) == {"grey16.png": "fully opaque"}
    samples = {name.split("__")[0]: name for name in names(out, "train")}
    assert set(samples) == {"deep", "turned"}

    deep = check_sample(out, "train", samples["deep"])
    assert np.abs(deep["alpha"] - rgba16[..., 3] / 257.0).max() <= 1.0
    assert np.abs(deep["fg"] - rgba16[..., :3] / 257.0).max() <= 1.0
    assert_composite(deep)

    turned = check_sample(out, "train", samples["turned"])
    np.testing.assert_array_equal(turned["alpha"], np.rot90(stored[..., 3], k=-1))
    np.testing.assert_array_equal(turned["fg"], np.rot90(stored[..., :3], k=-1))
    assert (turned["alpha"][:, -4:] == 255).all()


# ---------------------------------------------------------------------------------------------
# Bad input to the command line


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda raw, tmp: tmp / "missing", "{raw}: no such folder"),
        (lambda raw, tmp: (tmp / "file").write_text("x") and tmp / "file", "{raw}: not a folder"),
        (lambda raw, tmp: (tmp / "empty").mkdir() or tmp / "empty", "{raw}: no background images"),
        (lambda raw, tmp: background_only_raw(raw, tmp / "bgs"), "no foreground images"),
    ],
    ids=["missing", "file", "empty", "no-foregrounds"],
)
def test_unusable_raw_folder_is_one_line_and_exit_2(raw, tmp_path, capsys, make, message):
    folder = make(raw, tmp_path)
    out = tmp_path / "data"
    assert run_combine(folder, out) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message.format(raw=folder) in err
    assert not out.exists()


def test_no_usable_foreground_or_background_is_one_line_and_exit_2(raw, tmp_path, capsys):
    source = background_only_raw(raw, tmp_path / "raw")
    (source / "foreground").mkdir()
    (source / "foreground" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert run_combine(source, tmp_path / "data") == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "no usable foreground (1 skipped" in lines[0], lines
    assert skipped_reasons(tmp_path / "data").keys() == {"bad.png"}

    shutil.copy(sorted((raw / "foreground").iterdir())[0], source / "foreground" / "good.png")
    for path in (source / "background").iterdir():
        path.write_bytes(b"corrupt")
    assert run_combine(source, tmp_path / "data") == 2
    lines = error_lines(capsys.readouterr().err)
    assert lines == [
        f"error: {source / 'background'}: no usable background (reasons in"
        f" {tmp_path / 'data' / 'manifest.jsonl'})"
    ]


def test_bad_pairs_folder_and_output_are_one_line_and_exit_2(raw, tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert run_combine(raw, tmp_path / "data", "--pairs", missing) == 2
    assert capsys.readouterr().err == f"error: {missing}: no such folder\n"
    half = tmp_path / "half"
    (half / "images").mkdir(parents=True)
    assert run_combine(raw, tmp_path / "data", "--pairs", half) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {half / 'masks'}: missing") and err.count("\n") == 1
    blocker = tmp_path / "out.png"
    blocker.write_text("x")
    assert run_combine(raw, blocker) == 2
    assert capsys.readouterr().err == f"error: {blocker}: not a folder\n"


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--trimap-kernel", "9,3", "need 1 <= MIN <= MAX"),
        ("--trimap-kernel", "wide", "is not MIN,MAX"),
        ("--val-fraction", "1", "must be in [0, 1)"),
        ("--per-fg", "0", "must be >= 1"),
        ("--scales", "512,2048", "2048 is outside 32-1024"),
        ("--scales", "16", "16 is outside 32-1024"),
        ("--scales", "big", "is not a list of pixel sizes"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(raw, tmp_path, capsys, flag, value, message):
    with pytest.raises(SystemExit) as exit_info:
        run_combine(raw, tmp_path / "data", flag, value)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: argument {flag}: ") and message in err and err.count("\n") == 1


def test_command_line_errors_exit_2_without_traceback(raw, tmp_path):
    source = background_only_raw(raw, tmp_path / "raw")
    (source / "foreground").mkdir()
    (source / "foreground" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    for folder, message in (
        (tmp_path / "missing", "no such folder"),
        (source, "no usable foreground"),
    ):
        result = subprocess.run(
            [sys.executable, str(SCRIPT), str(folder), "--out", str(tmp_path / "data")],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        lines = error_lines(result.stderr)
        assert len(lines) == 1 and message in lines[0], result.stderr


def test_ctrl_c_exits_130_with_one_line_and_a_whole_manifest(raw, tmp_path):
    out = tmp_path / "data"
    args = [str(raw), "--out", str(out), "--per-fg", "40", "--workers", "2"]
    status, err = interrupt(SCRIPT, args, lambda: len(names(out, "train")) >= 4)
    assert status == 130, err
    assert err.splitlines()[-1] == f"error: {out}: interrupted; run again to resume"
    assert "Traceback" not in err
    assert all(json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines())


# ---------------------------------------------------------------------------------------------
# Closed-form priors


def test_priors_are_the_closed_form_mattes_of_the_stored_samples(dataset):
    out, _ = dataset
    priors = {r["name"]: r for r in records(out) if r["kind"] == "prior"}
    assert set(priors) == set(all_samples(out))
    for name, split in all_samples(out).items():
        image = read_image(out / split / "image" / f"{name}.png")
        trimap = read_trimap(out / split / "trimap" / f"{name}.png")
        mode, stored = load(out / split / PRIOR_PART / f"{name}.png")
        assert mode.startswith("I;16") or stored.dtype == np.uint16, mode
        expected = closed_form_prior(image, trimap)
        np.testing.assert_allclose(stored / 65535.0, expected, atol=0.5 / 65535 + 1e-6)
        assert priors[name]["fallback"] == (not has_prior(trimap))


def test_no_prior_then_a_rerun_adds_only_the_priors(raw, tmp_path):
    out = tmp_path / "data"
    flags = ["--per-fg", "1", "--test-per-fg", "1", "--no-prior"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert run_combine(raw, out, *flags) == 0
    samples = all_samples(out)
    assert samples and not any((out / s / PRIOR_PART).exists() for s in splits.SPLITS)
    before = {p: p.read_bytes() for p in out.rglob("*.png")}
    with contextlib.redirect_stdout(io.StringIO()):
        assert run_combine(raw, out, *flags[:-1]) == 0
    assert {p: p.read_bytes() for p in before} == before
    for name, split in samples.items():
        assert (out / split / PRIOR_PART / f"{name}.png").is_file()


# ---------------------------------------------------------------------------------------------
# Several scales


def test_scales_are_drawn_per_sample_and_keep_the_matting_equation(raw, tmp_path):
    """Samples of 40, 48 (shrunk) and 96 px (enlarged) from 64-px foregrounds: each sample's
    long side is its recorded scale, coverage (mean alpha) survives the resize, and the image
    is still the composite of the stored F, alpha and B."""
    out = tmp_path / "data"
    flags = ["--per-fg", "3", "--test-per-fg", "2", "--no-prior", "--scales", "40,48,96"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert run_combine(raw, out, *flags) == 0
    kept = kept_samples(out)
    assert {r["scale"] for r in kept} == {40, 48, 96}
    for record in kept:
        parts = check_sample(out, record["split"], record["name"])
        assert max(parts["alpha"].shape) == record["scale"] == record["width"]
        assert_composite(parts)
        source = pixels(Path(record["fg"]))[..., 3] / 255.0
        assert abs(parts["alpha"].mean() / 255.0 - source.mean()) < 0.01
        # Degradations are drawn for the sample's own size.
        assert set(record["degradations"]) == set(degrade.draw(np.random.default_rng(0), 1))
    again = tmp_path / "again"
    with contextlib.redirect_stdout(io.StringIO()):
        assert run_combine(raw, again, *flags) == 0
    assert {p.relative_to(again): p.read_bytes() for p in again.rglob("*.png")} == {
        p.relative_to(out): p.read_bytes() for p in out.rglob("*.png")
    }
    run = next(r for r in records(out) if r["kind"] == "run")
    assert run["scales"] == [40, 48, 96] and run["degrade"] is True


def test_resize_foreground_keeps_colour_where_alpha_is_zero():
    """Premultiplied resizing: transparent garbage colour does not bleed into the object."""
    alpha = np.zeros((20, 20), np.float32)
    alpha[5:15, 5:15] = 1.0
    colour = np.zeros((20, 20, 3), np.float32)
    colour[alpha == 1.0] = (0.2, 0.6, 0.4)
    colour[alpha == 0.0] = (1.0, 0.0, 1.0)  # garbage under alpha 0
    for side in (10, 40):
        new_colour, new_alpha = sources.resize_foreground(colour, alpha, side)
        assert new_alpha.shape == (side, side)
        visible = new_alpha > 0.02
        np.testing.assert_allclose(
            new_colour[visible],
            np.broadcast_to((0.2, 0.6, 0.4), new_colour[visible].shape),
            atol=1e-5,
        )
        assert abs(new_alpha.mean() - alpha.mean()) < 0.01
