"""One sample of combine.py's dataset: its plan (names, seeds, size, degradations, paths) and
the work that makes its files, a sample's five and its prior, which runs in the workers.

A sample is complete iff ``image/NAME.png`` exists: its files are written atomically, the image
last (``PARTS``), so a killed run leaves nothing a later stage takes as finished.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.classical import closed_form_prior, has_prior
from model.compositing import composite, fit_background, trimap_from_alpha
from model.images import ImageError, read_image, read_trimap, to_uint8, trimap_to_uint8, write_png
from model.manifest import append_record
from scripts import degrade
from scripts.sources import Background, Foreground, load_foreground, resize_foreground
from scripts.splits import SPLITS

MANIFEST = "manifest.jsonl"
PARTS = ("trimap", "alpha", "fg", "bg", "image")
"""Sample files in the order they are written; the image goes last and marks completion."""
PRIOR_PART = "prior"
"""The closed-form matte of a finished sample, written in a second stage."""


@dataclass(frozen=True)
class Task:
    """One sample to make: a foreground on a background, and where and how to write it."""

    name: str
    split: str
    foreground: Foreground
    background: Background
    out: str
    seed: int
    max_size: int
    kernel: tuple[int, int]
    scales: tuple[int, ...] | None = None
    degrade: bool = False


# ---------------------------------------------------------------------------------------------
# Sample plan


def sample_name(foreground: Foreground, background: Background) -> str:
    return f"{foreground.name}__{background.name}"


def sample_seed(seed: int, name: str) -> int:
    """Seed of a sample's own random stream (background crop, trimap kernel).

    Its size and its degradations come from ``default_rng([sample_seed, SCALE_STREAM])`` and
    ``default_rng([sample_seed, DEGRADE_STREAM])``, so turning either option on or off leaves
    every other draw of the sample as it was.
    """
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


SCALE_STREAM, DEGRADE_STREAM = 1, 2


def sample_scale(task: Task) -> int | None:
    """The sample's longest side drawn from ``task.scales``, or None without scales."""
    if not task.scales:
        return None
    rng = np.random.default_rng([sample_seed(task.seed, task.name), SCALE_STREAM])
    return int(rng.choice(task.scales))


def sample_degradations(task: Task, long_side: int) -> dict | None:
    """The sample's degradation parameters (``degrade.draw``), or None when they are off."""
    if not task.degrade:
        return None
    rng = np.random.default_rng([sample_seed(task.seed, task.name), DEGRADE_STREAM])
    return degrade.draw(rng, long_side)


def sample_path(out: Path, split: str, part: str, name: str) -> Path:
    return out / split / part / f"{name}.png"


# ---------------------------------------------------------------------------------------------
# Making samples (runs in the workers)

_cache: dict[tuple[Foreground, int], tuple[np.ndarray, ...]] = {}


def _quantised_foreground(
    source: Foreground, max_size: int, long_side: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """8-bit colour and alpha of a foreground, resized to ``long_side`` when one is given.

    The decoded foreground is kept for this worker's next sample: the samples of a foreground
    are queued one after another, so with a one-entry cache each worker decodes each
    foreground about once.
    """
    key = (source, max_size)
    if key not in _cache:
        colour, alpha = load_foreground(source, max_size)
        _cache.clear()
        _cache[key] = (colour, alpha, to_uint8(colour), to_uint8(alpha))
    colour, alpha, colour8, alpha8 = _cache[key]
    if long_side is None or long_side == max(alpha.shape):
        return colour8, alpha8
    colour, alpha = resize_foreground(colour, alpha, long_side)
    return to_uint8(colour), to_uint8(alpha)


def sample_record(
    task: Task,
    width: int,
    height: int,
    kernel: int | None,
    scale: int | None = None,
    degradations: dict | None = None,
) -> dict:
    return {
        "kind": "sample",
        "name": task.name,
        "split": task.split,
        "fg": task.foreground.image,
        "mask": task.foreground.mask,
        "bg": task.background.path,
        "seed": task.seed,
        "sample_seed": sample_seed(task.seed, task.name),
        "trimap_kernel": kernel,
        "width": width,
        "height": height,
        "scale": scale,
        "degradations": degradations,
        "status": "kept",
        "reason": None,
    }


def make_sample(task: Task) -> dict:
    """Write one sample's five files, the image last, and return its manifest record.

    The composite is made from the 8-bit foreground, alpha and background exactly as written,
    so ``image == round(alpha F + (1 - alpha) B)`` holds for the files on disk, also when F and
    B were degraded (``scripts/degrade.py``: that happens before compositing). The sample's
    random stream (``sample_seed``) draws the background crop, then the trimap kernel; its
    size (with ``task.scales``) and its degradations (with ``task.degrade``) come from streams
    of their own. An unreadable input gives a record with status "skipped" and the reason
    instead.
    """
    out = Path(task.out)
    scale = sample_scale(task)
    try:
        fg8, alpha8 = _quantised_foreground(task.foreground, task.max_size, scale)
        background = read_image(task.background.path)
    except ImageError as error:
        return {
            "kind": "sample",
            "name": task.name,
            "split": task.split,
            "status": "skipped",
            "reason": str(error),
        }
    height, width = alpha8.shape
    rng = np.random.default_rng(sample_seed(task.seed, task.name))
    bg8 = to_uint8(fit_background(background, height, width, rng))
    kernel = int(rng.integers(task.kernel[0], task.kernel[1] + 1))
    degradations = sample_degradations(task, max(height, width))
    if degradations is not None:
        fg8, bg8 = degrade.apply(fg8, bg8, degradations)
    alpha = alpha8.astype(np.float32) / 255.0
    trimap = trimap_to_uint8(trimap_from_alpha(alpha, kernel_size=kernel))
    fg = fg8.astype(np.float32) / 255.0
    image = to_uint8(composite(fg, alpha, bg8.astype(np.float32) / 255.0))
    for part, pixels in zip(PARTS, (trimap, alpha8, fg8, bg8, image), strict=True):
        write_png(sample_path(out, task.split, part, task.name), pixels)
    record = sample_record(task, width, height, kernel, scale, degradations)
    append_record(out / MANIFEST, record)
    return record


def make_prior(job: tuple[str, str, str]) -> dict:
    """Write the closed-form prior of one finished sample and return its manifest record.

    ``job`` is ``(out, split, name)``. The prior is solved on the 8-bit image and trimap as
    stored, the same inputs a reader of the dataset gets. A trimap without definite foreground
    or background gets the trimap itself (``model.classical.closed_form_prior``), recorded as
    ``"fallback": true``.
    """
    out, split, name = job
    image_path = sample_path(Path(out), split, "image", name)
    try:
        image = read_image(image_path)
        trimap = read_trimap(sample_path(Path(out), split, "trimap", name), shape=image.shape[:2])
    except ImageError as error:
        return {
            "kind": "prior",
            "name": name,
            "split": split,
            "status": "skipped",
            "reason": str(error),
        }
    write_png(
        sample_path(Path(out), split, PRIOR_PART, name), closed_form_prior(image, trimap), bits=16
    )
    return {
        "kind": "prior",
        "name": name,
        "split": split,
        "status": "kept",
        "method": "closed-form",
        "fallback": not has_prior(trimap),
    }


def clean_temporaries(out: Path) -> int:
    """Remove temp files a killed run left behind (atomic writes' ``.NAME.*.tmp``)."""
    removed = 0
    for folder in [out] + [out / split / part for split in SPLITS for part in (*PARTS, PRIOR_PART)]:
        if folder.is_dir():
            for path in folder.glob(".*.tmp"):
                path.unlink(missing_ok=True)
                removed += 1
    return removed
