"""Shared pytest fixtures.

``tiny_dataset`` writes a small dataset in the exact layout of ``scripts/combine.py`` once per
session, so training, evaluation and dataset tests all read the same files.
"""

from __future__ import annotations

import os

# Before TensorFlow is first imported by any test module: keep its C++ start-up chatter quiet.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path

import numpy as np
import pytest

from model.classical import closed_form_prior
from model.compositing import composite, trimap_from_alpha
from model.images import to_uint8, trimap_from_uint8, write_png
from model.manifest import append_record

TINY_SPLITS = {"train": 6, "val": 2, "test": 2}
"""Samples per split in ``tiny_dataset``."""

TINY_SIZE = 64
"""Height and width of every ``tiny_dataset`` image."""

TINY_TRIMAP_KERNEL = 5
"""Kernel of the fixed on-disk trimaps, as combine.py would draw them."""


def _soft_matte(rng: np.random.Generator, size: int) -> np.ndarray:
    """A disc with a soft rim plus a few semi-transparent strands, float32 (size, size)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cy, cx = rng.uniform(0.35, 0.65, 2) * size
    radius = rng.uniform(0.15, 0.3) * size
    rim = rng.uniform(2.0, 5.0)
    # Linear ramp from 1 inside the disc to 0 outside over `rim` pixels.
    alpha = np.clip((radius - np.hypot(yy - cy, xx - cx)) / rim + 0.5, 0.0, 1.0)
    for _ in range(3):
        angle = rng.uniform(0.0, np.pi)
        offset = rng.uniform(-0.3, 0.3) * size
        # Distance to a straight line through the image, faded to a 1.5-px half-width strand.
        distance = np.abs((xx - cx) * np.sin(angle) - (yy - cy) * np.cos(angle) - offset)
        strand = np.clip(1.0 - distance / 1.5, 0.0, 1.0) * rng.uniform(0.3, 0.8)
        alpha = np.maximum(alpha, strand)
    return alpha.astype(np.float32)


def _smooth_colours(rng: np.random.Generator, size: int) -> np.ndarray:
    """A bilinear blend of four random corner colours plus mild noise, float32 (size, size, 3)."""
    corners = rng.uniform(0.0, 1.0, (2, 2, 3)).astype(np.float32)
    t = np.linspace(0.0, 1.0, size, dtype=np.float32)
    top = corners[0, 0] * (1 - t[:, None]) + corners[0, 1] * t[:, None]
    bottom = corners[1, 0] * (1 - t[:, None]) + corners[1, 1] * t[:, None]
    colours = top[None] * (1 - t[:, None, None]) + bottom[None] * t[:, None, None]
    colours += rng.normal(0.0, 0.03, colours.shape).astype(np.float32)
    return np.clip(colours, 0.0, 1.0).astype(np.float32)


def write_tiny_dataset(root: Path, splits: dict[str, int], size: int, seed: int = 0) -> Path:
    """Write ``splits`` (split -> count) samples of ``size`` x ``size`` under ``root``.

    Files are written like combine.py does: trimap, alpha, fg and bg first, image last, every
    file 8-bit, the image being the composite of the *quantised* fg, alpha and bg, and the
    trimap drawn from the quantised alpha; then the 16-bit closed-form prior of the stored
    image and trimap.

    Returns
    -------
    Path
        ``root`` (the folder holding ``train/``, ``val/``, ``test/`` and ``manifest.jsonl``).
    """
    rng = np.random.default_rng(seed)
    for split, count in splits.items():
        for index in range(count):
            name = f"{split}_{index:03d}"
            alpha = to_uint8(_soft_matte(rng, size))
            fg = to_uint8(_smooth_colours(rng, size))
            bg = to_uint8(_smooth_colours(rng, size))
            alpha_f = alpha.astype(np.float32) / 255.0
            image = composite(fg.astype(np.float32) / 255.0, alpha_f, bg.astype(np.float32) / 255.0)
            trimap = trimap_from_alpha(alpha_f, kernel_size=TINY_TRIMAP_KERNEL)
            folder = root / split
            write_png(folder / "trimap" / f"{name}.png", to_uint8(trimap))
            write_png(folder / "alpha" / f"{name}.png", alpha)
            write_png(folder / "fg" / f"{name}.png", fg)
            write_png(folder / "bg" / f"{name}.png", bg)
            write_png(folder / "image" / f"{name}.png", image)
            stored_image = to_uint8(image).astype(np.float32) / 255.0
            prior = closed_form_prior(stored_image, trimap_from_uint8(to_uint8(trimap)))
            write_png(folder / "prior" / f"{name}.png", prior, bits=16)
            append_record(
                root / "manifest.jsonl",
                {
                    "name": name,
                    "split": split,
                    "fg": f"foreground/{name}.png",
                    "bg": f"background/{name}.png",
                    "seed": seed,
                    "width": size,
                    "height": size,
                    "status": "kept",
                },
            )
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A combine.py-style dataset: ``<root>/<split>/{image,trimap,alpha,fg,bg,prior}/NAME.png``.

    6 train, 2 val and 2 test samples, all 64x64, each a soft-rimmed disc with a few
    semi-transparent strands over a smooth random background; names are ``<split>_000`` ...
    Deterministic (seed 0). Returns ``<tmp>/scripts/data``, the folder to pass as a dataset root.
    Treat it as read-only: it is shared by every test of the session.
    """
    root = tmp_path_factory.mktemp("tiny") / "scripts" / "data"
    return write_tiny_dataset(root, TINY_SPLITS, TINY_SIZE)
