"""Benchmark scripts/combine.py against the obvious implementation, in samples per second.

The baseline, in this file, does the same work the obvious way in one process: PIL opens the
foreground and background, ``ImageOps.fit`` scales and crops the background, ``Image.composite``
blends, the trimap comes from ``model.compositing.trimap_from_alpha``, and the five files are
saved with PIL's default PNG settings. combine.py is timed end to end through ``main()``
(file checks, pool start-up and manifest included) with 1 and 2 worker processes.

Inputs are made in a temporary folder with scripts/procedural.py: RGBA foregrounds at each
resolution, and backgrounds 1.25x larger so every sample scales and crops one.

Targets: combine >= 2x the baseline per worker, and >= 1.7x from 1 to 2 workers.

Usage::

    python3 bench/combine.py                  # 640x480 and 1920x1080
    python3 bench/combine.py --quick          # fewer samples, for a smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from model.compositing import trimap_from_alpha
from model.images import trimap_to_uint8, write_png
from scripts import combine, procedural, samples, sources, splits

RESOLUTIONS = ((480, 640), (1080, 1920))
FOREGROUNDS = 3
BACKGROUNDS = 16


def make_inputs(raw: Path, height: int, width: int) -> None:
    """Write FOREGROUNDS RGBA foregrounds of height x width and BACKGROUNDS larger backgrounds."""
    rng = np.random.default_rng(0)
    families = procedural.FOREGROUND_FAMILIES
    for index in range(FOREGROUNDS):
        colour, alpha = procedural.make_foreground(families[index], rng, height, width)
        pixels = np.concatenate([colour, alpha[..., None]], axis=2)
        write_png(raw / "foreground" / f"fg{index}.png", pixels)
    for index in range(BACKGROUNDS):
        pixels = procedural.make_background(rng, round(height * 1.25), round(width * 1.25))
        write_png(raw / "background" / f"bg{index}.png", pixels)


def baseline(raw: Path, out: Path, per_fg: int, seed: int = 0) -> int:
    """The same samples as combine.py, made the obvious way in one process; returns the count."""
    rng = np.random.default_rng(seed)
    foregrounds, backgrounds = sources.find_raw(raw)
    count = 0
    for fg in foregrounds:
        rgba = Image.open(fg.image).convert("RGBA")
        alpha = rgba.getchannel("A")
        colour = rgba.convert("RGB")
        matte = np.asarray(alpha, dtype=np.float32) / 255.0
        for bg in splits.choose_backgrounds(fg.name, backgrounds, per_fg, seed):
            background = ImageOps.fit(Image.open(bg.path).convert("RGB"), rgba.size)
            image = Image.composite(colour, background, alpha)
            trimap = trimap_to_uint8(trimap_from_alpha(matte, rng))
            name = samples.sample_name(fg, bg)
            parts = {
                "trimap": Image.fromarray(trimap),
                "alpha": alpha,
                "fg": colour,
                "bg": background,
                "image": image,
            }
            for part, picture in parts.items():
                path = out / "train" / part / f"{name}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                picture.save(path)
            count += 1
    return count


def run_combine(raw: Path, out: Path, per_fg: int, workers: int) -> int:
    """combine.py's main() on the same inputs, all samples in train; returns the count."""
    args = [str(raw), "--out", str(out), "--per-fg", str(per_fg), "--workers", str(workers)]
    args += ["--val-fraction", "0", "--test-fraction", "0"]
    # The obvious implementation makes clean composites; so must the side it is compared with.
    args += ["--no-degrade"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        status = combine.main(args)
    if status != 0:
        raise RuntimeError(f"combine.main exited with {status}")
    return len(list((out / "train" / "image").glob("*.png")))


def timed(function, *args) -> tuple[int, float]:
    start = time.perf_counter()
    count = function(*args)
    return count, time.perf_counter() - start


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    size = parser.add_argument_group("size of the run")
    size.add_argument("--quick", action="store_true", help="2 backgrounds per foreground")
    size.add_argument(
        "--per-fg",
        type=int,
        default=None,
        help="backgrounds per foreground (default 16, 8 at 1080p; at most 16)",
    )
    return parser


def main(args: list[str] | None = None) -> int:
    options = build_parser().parse_args(args)
    header = f"{'resolution':>10} | {'config':<10} | {'samples':>7} | {'seconds':>7} |"
    header += f" {'samples/s':>9} | {'vs baseline':>11}"
    print(header)
    print("-" * len(header))
    scaling = {}
    for height, width in RESOLUTIONS:
        # Enough samples that the pool's start-up (a second or so) does not hide the scaling.
        per_fg = options.per_fg or (2 if options.quick else 16 if height < 1000 else 8)
        with tempfile.TemporaryDirectory() as temp:
            root = Path(temp)
            make_inputs(root / "raw", height, width)
            results = [("baseline", *timed(baseline, root / "raw", root / "base", per_fg))]
            for workers in (1, 2):
                out = root / f"combine{workers}"
                timing = timed(run_combine, root / "raw", out, per_fg, workers)
                results.append((f"{workers} worker{'s' if workers > 1 else ''}", *timing))
        base_rate = results[0][1] / results[0][2]
        for config, count, seconds in results:
            rate = count / seconds
            print(
                f"{width}x{height:<5} | {config:<10} | {count:>7} | {seconds:>7.2f} |"
                f" {rate:>9.2f} | {rate / base_rate:>10.2f}x"
            )
        scaling[f"{width}x{height}"] = (results[2][1] / results[2][2]) / (
            results[1][1] / results[1][2]
        )
    for resolution, ratio in scaling.items():
        print(f"scaling 1 -> 2 workers at {resolution}: {ratio:.2f}x (target >= 1.7x)")
    print("targets: >= 2x the baseline per worker; machine shared, so numbers are noisy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
