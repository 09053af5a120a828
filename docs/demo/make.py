"""Make the demo photo and trimap kept in docs/demo/, from the project's own procedural data.

A fur foreground (``scripts/procedural.py``) over a procedural background, composited with
I = alpha F + (1 - alpha) B, and a trimap drawn from the true alpha. The true alpha is kept
beside them, so the demo's result can be checked against it. No third-party image is involved.

Usage::

    python3 docs/demo/make.py                    # docs/demo/{photo,trimap,alpha}.png
    python3 docs/demo/make.py --out /tmp/demo --seed 3
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from model.cli import ArgumentParser, non_negative_int
from model.compositing import composite, fit_background, trimap_from_alpha
from model.images import to_uint8, write_png
from scripts import procedural

DEFAULT_OUT = Path(__file__).resolve().parent
HEIGHT, WIDTH = 480, 640
TRIMAP_KERNEL = 15
"""Width in pixels of the band by which the trimap's unknown region extends past the edge."""


def make_demo(out: Path, seed: int) -> tuple[Path, Path, Path]:
    """Write ``out/photo.png`` (RGB), ``out/trimap.png`` (0/128/255) and ``out/alpha.png``."""
    rng = np.random.default_rng(seed)
    colour, alpha = procedural.make_foreground("fur", rng, HEIGHT, HEIGHT)
    background = procedural.make_background(rng, HEIGHT, WIDTH)
    left = (WIDTH - HEIGHT) // 2
    # The foreground is square; place it in the middle of a landscape frame.
    canvas_colour = np.zeros((HEIGHT, WIDTH, 3), np.float32)
    canvas_alpha = np.zeros((HEIGHT, WIDTH), np.float32)
    canvas_colour[:, left : left + HEIGHT] = colour
    canvas_alpha[:, left : left + HEIGHT] = alpha
    # Quantise first, so the files on disk satisfy the compositing equation to 8-bit rounding.
    alpha8 = to_uint8(canvas_alpha).astype(np.float32) / 255.0
    photo = composite(canvas_colour, alpha8, fit_background(background, HEIGHT, WIDTH))
    trimap = trimap_from_alpha(alpha8, kernel_size=TRIMAP_KERNEL)
    paths = out / "photo.png", out / "trimap.png", out / "alpha.png"
    for path, array in zip(paths, (photo, trimap, alpha8), strict=True):
        write_png(path, to_uint8(array), compress_level=9)
    return paths


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description="Make the demo photo, trimap and true alpha.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder (docs/demo)")
    parser.add_argument("--seed", type=non_negative_int, default=11, help="(11)")
    return parser


def main(args) -> int:
    for path in make_demo(args.out, args.seed):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
