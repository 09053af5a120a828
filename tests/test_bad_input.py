"""The bad-input corpus (issue 18): every command, every hostile input, as a user would run it.

Each case runs a command as a subprocess in a fresh folder holding good and hostile files, and
asserts what the project promises for bad input (README, "Reliability"):

* a non-zero exit status;
* no traceback on stderr, and an ``error: `` line that names the offending file;
* every file in the folder byte-identical afterwards (inputs, checkpoints, config.json), and
  no new file or folder (no partial output).

Most cases fail before TensorFlow is imported and take about a second. Those that need it (a
damaged checkpoint, anything through train.py, which imports it at the top) are marked slow.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import write_tiny_dataset

from model.images import encode_png, write_png

ROOT = Path(__file__).resolve().parents[1]
SIZE = (24, 32)  # height, width of the good image

# TensorFlow's C++ start-up notices (absl, oneDNN, CPU features); not ours, and being silenced
# on another branch. Everything else on stderr is checked.
TF_NOISE = re.compile(
    r"^(WARNING: All log messages before absl|[IWE]\d{4} |To enable the following)"
)


def _huge_png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` over a one-row image: 70 bytes."""
    small = encode_png(np.zeros((1, 1), np.uint8))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    patched = struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    # The signature is 8 bytes, then IHDR: length 4 + type 4 + data 13 + CRC 4.
    return small[:8] + patched + small[8 + 25 :]


def _model_config() -> dict:
    return {
        "base_filters": 4,
        "depth": 2,
        "disc_filters": 4,
        "disc_layers": 2,
        "encoder": "unet",
        "encoder_weights": None,
        "norm": "batch",
        "prior": None,
    }


def make_corpus(root: Path) -> None:
    """Good inputs, hostile inputs, a good dataset and a run with a damaged checkpoint."""
    height, width = SIZE
    rng = np.random.default_rng(0)
    good = encode_png(rng.random((height, width, 3), dtype=np.float32))
    trimap = np.full(SIZE, 128, np.uint8)
    trimap[:6], trimap[-6:] = 0, 255
    (root / "in.png").write_bytes(good)
    write_png(root / "tri.png", trimap)
    write_png(root / "small_tri.png", trimap[:10, :10])
    (root / "empty.png").write_bytes(b"")
    (root / "text.png").write_text("this is not an image\n")
    (root / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "huge.png").write_bytes(_huge_png(200_000, 200_000))
    (root / "afile").write_text("a file where a folder is expected\n")
    for folder in ("photos", "trimaps"):
        (root / folder).mkdir()
    (root / "photos" / "a.png").write_bytes(good)
    write_png(root / "trimaps" / "a.png", trimap)
    # A run whose only checkpoint is damaged (the bytes are not a checkpoint).
    checkpoints = root / "log" / "run" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "ckpt-7.index").write_bytes(b"\x00" * 64)
    (checkpoints / "ckpt-7.data-00000-of-00001").write_bytes(b"\x00" * 64)
    config = {"model": _model_config(), "train": {"steps": 7, "data": "good"}, "seed": 0}
    (root / "log" / "run" / "config.json").write_text(json.dumps(config))
    write_tiny_dataset(root / "good", {"train": 2, "val": 1}, 32)
    # A dataset whose only image is text under a .png name.
    for kind in ("image", "trimap", "alpha", "fg", "bg"):
        (root / "data" / "train" / kind).mkdir(parents=True)
        (root / "data" / "train" / kind / "s.png").write_text("not a png\n")
    (root / "raw").mkdir()
    (root / "ro").mkdir(mode=0o555)


EVAL = ["eval.py"]
GEN = ["generate_trimaps.py"]
COMBINE = ["scripts/combine.py"]
SYNTH = ["scripts/synthesize.py"]
EXPORT = ["scripts/export.py"]
TRAIN = ["train.py"]
LOG = ["--log-dir", "log"]


def case(
    name: str,
    command: list[str],
    args: list[str],
    names: str,
    slow: bool = False,
    needs_permissions: bool = False,
):
    """One corpus entry: ``command args`` must fail with an error line naming ``names``."""
    marks = [pytest.mark.slow] if slow else []
    if needs_permissions:
        marks.append(pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere"))
    return pytest.param(command, args, names, id=name, marks=marks)


CASES = [
    case("eval-missing-image", EVAL, ["missing.png", "tri.png", "out.png"], "missing.png"),
    case("eval-empty-image", EVAL, ["empty.png", "tri.png", "out.png"], "empty.png"),
    case("eval-text-as-png", EVAL, ["text.png", "tri.png", "out.png"], "text.png"),
    case("eval-truncated-image", EVAL, ["truncated.png", "tri.png", "out.png"], "truncated.png"),
    case("eval-huge-header", EVAL, ["huge.png", "tri.png", "out.png"], "huge.png"),
    case("eval-missing-trimap", EVAL, ["in.png", "missing.png", "out.png"], "missing.png"),
    case("eval-truncated-trimap", EVAL, ["in.png", "truncated.png", "out.png"], "truncated.png"),
    case("eval-wrong-size-trimap", EVAL, ["in.png", "small_tri.png", "out.png"], "small_tri.png"),
    case("eval-output-is-input", EVAL, ["in.png", "tri.png", "in.png"], "in.png"),
    case("eval-output-is-trimap", EVAL, ["in.png", "tri.png", "tri.png"], "tri.png"),
    case("eval-alpha-is-trimap", EVAL, ["in.png", "tri.png", "o.png", "--alpha", "tri.png"], "tri.png"),  # noqa: E501
    case("eval-alpha-is-input", EVAL, ["in.png", "tri.png", "o.png", "--alpha", "in.png"], "in.png"),  # noqa: E501
    case("eval-batch-out-is-input", EVAL, ["photos", "trimaps", "photos"], "photos"),
    case("eval-batch-out-is-trimaps", EVAL, ["photos", "trimaps", "trimaps"], "trimaps"),
    case("eval-output-folder-is-a-file", EVAL, ["in.png", "tri.png", "afile/o.png"], "afile"),
    case("eval-read-only-folder", EVAL, ["in.png", "tri.png", "ro/o.png"], "ro", needs_permissions=True),  # noqa: E501
    case("eval-batch-read-only-folder", EVAL, ["photos", "trimaps", "ro/cut"], "ro", needs_permissions=True),  # noqa: E501
    case("eval-batch-out-is-a-file", EVAL, ["photos", "trimaps", "afile"], "afile"),
    case("eval-missing-background", EVAL, ["in.png", "tri.png", "o.png", "--background", "m.png"], "m.png"),  # noqa: E501
    case("eval-unknown-checkpoint", EVAL, ["in.png", "tri.png", "o.png", *LOG, "--checkpoint", "99"], "run"),  # noqa: E501
    case("eval-missing-checkpoint", EVAL, ["in.png", "tri.png", "o.png", "--checkpoint", "nockpt"], "nockpt"),  # noqa: E501
    case("eval-damaged-checkpoint", EVAL, ["in.png", "tri.png", "o.png", *LOG], "ckpt-7", slow=True),  # noqa: E501
    case("trimaps-missing-image", GEN, ["missing.png"], "missing.png"),
    case("trimaps-text-as-png", GEN, ["text.png"], "text.png"),
    case("trimaps-missing-weights", GEN, ["in.png", "--weights", "none.h5"], "none.h5"),
    case("combine-missing-raw", COMBINE, ["missing", "--out", "dataset"], "missing"),
    case("combine-empty-raw", COMBINE, ["raw", "--out", "dataset"], "raw"),
    case("combine-out-is-a-file", COMBINE, ["raw", "--out", "afile"], "afile"),
    case("synthesize-out-is-a-file", SYNTH, ["--out", "afile", "--count", "1", "--backgrounds", "1"], "afile"),  # noqa: E501
    case("synthesize-out-under-a-file", SYNTH, ["--out", "afile/raw", "--count", "1", "--backgrounds", "1"], "afile"),  # noqa: E501
    case("export-missing-checkpoint", EXPORT, ["--checkpoint", "nockpt", "--format", "keras", "--out", "m.keras"], "nockpt"),  # noqa: E501
    case("export-unknown-checkpoint", EXPORT, [*LOG, "--checkpoint", "99", "--format", "keras", "--out", "m.keras"], "run"),  # noqa: E501
    case("export-damaged-checkpoint", EXPORT, [*LOG, "--format", "keras", "--out", "m.keras"], "ckpt-7", slow=True),  # noqa: E501
    case("train-missing-data", TRAIN, ["nodata", *LOG, "--run", "new"], "nodata", slow=True),
    case("train-text-as-png", TRAIN, ["data", *LOG, "--run", "new", "--prior", "none"], "image/s.png", slow=True),  # noqa: E501
    case("train-unknown-checkpoint", TRAIN, [*LOG, "--run", "run", "--resume", "--checkpoint", "99"], "run", slow=True),  # noqa: E501
    case("train-damaged-checkpoint", TRAIN, [*LOG, "--run", "run", "--resume"], "ckpt-7", slow=True),  # noqa: E501
]  # fmt: skip


def _snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` -> sha256 of a file's bytes, or "dir"."""
    return {
        str(path.relative_to(root)): (
            "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
        )
        for path in sorted(root.rglob("*"))
    }


@pytest.mark.parametrize(("command", "args", "names"), CASES)
def test_bad_input(tmp_path, command, args, names):
    make_corpus(tmp_path)
    before = _snapshot(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, str(ROOT / command[0]), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in result.stderr.splitlines() if not TF_NOISE.match(line)]
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors, result.stderr
    assert names in errors[0], errors
    assert _snapshot(tmp_path) == before
