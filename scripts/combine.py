"""Composite foregrounds onto backgrounds into a train/val/test matting dataset.

Reads the raw layout that download.py and synthesize.py write (``RAW/foreground/*.png`` with
alpha, ``RAW/background/*``) and, optionally, folders of image/mask pairs matched by file stem
(``DIR/images/NAME.jpg`` + ``DIR/masks/NAME.png``, the layout of DUTS or AISegment; the mask is
the alpha). Writes, for every sample ``<fg>__<bg>``::

    OUT/{train,val,test}/image/NAME.png    RGB composite  I = alpha F + (1 - alpha) B
    OUT/{train,val,test}/trimap/NAME.png   grey {0, 128, 255}
    OUT/{train,val,test}/alpha/NAME.png    grey alpha
    OUT/{train,val,test}/fg/NAME.png       RGB foreground colours F
    OUT/{train,val,test}/bg/NAME.png       RGB background B, fitted to the foreground's size
    OUT/{train,val,test}/prior/NAME.png    16-bit grey closed-form alpha for image + trimap,
                                           the generator's prior (``--no-prior`` skips it)
    OUT/manifest.jsonl                     one record per sample, skipped file and run

Unless ``--no-degrade``, F and B of each sample get matched camera degradations before they are
composited (``scripts/degrade.py``: a foreground colour shift, then the same blur, colour cast,
noise field and JPEG quality for both), drawn per sample and recorded in its manifest record;
the image is composited from the degraded 8-bit F and B as stored, so the equation above holds
for the files. With ``--scales``, each sample's longest side is drawn from the list (up to
1024, i.e. 1 MP), and its foreground shrunk or enlarged to it.

Splits go by foreground identity, so no foreground is in two splits; backgrounds are split too,
so test backgrounds are never seen in training (unless there are too few, then all splits share
them and the manifest says so). Each of the five files is written atomically and the image
last, so a sample is complete iff ``image/NAME.png`` exists: a killed run leaves nothing a later
stage takes as finished, and a re-run makes only the missing samples. Priors are computed after
the samples, from the files on disk, for every sample that has none yet (so a re-run, or a run
over a dataset made with ``--no-prior``, adds just the missing ones).

Usage::

    python3 scripts/combine.py                            # scripts/raw -> scripts/data
    python3 scripts/combine.py demo-out/raw --out demo-out/data --per-fg 4 --test-per-fg 2
    python3 scripts/combine.py scripts/raw --pairs ~/data/DUTS-TR --pairs ~/data/AISegment
    python3 scripts/combine.py --val-fraction 0.05 --test-fraction 0.05 --seed 3 --workers 2
    python3 scripts/combine.py --scales 512,768,1024      # sizes up to 1 MP, drawn per sample
    python3 scripts/combine.py --no-degrade               # clean composites, as before
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import signal
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from model.classical import closed_form_prior, has_prior
from model.cli import (
    ArgumentParser,
    add_process_workers,
    fraction,
    non_negative_int,
    positive_int,
)
from model.compositing import alpha_problem, composite, fit_background, trimap_from_alpha
from model.images import (
    ImageError,
    probe_image,
    read_alpha,
    read_image,
    read_trimap,
    to_uint8,
    trimap_to_uint8,
    write_png,
)
from model.manifest import append_record, read_records
from scripts import degrade
from scripts.parallel import Workers

DEFAULT_RAW = Path(__file__).resolve().parent / "raw"
DEFAULT_OUT = Path(__file__).resolve().parent / "data"
MANIFEST = "manifest.jsonl"
SPLITS = ("train", "val", "test")
PARTS = ("trimap", "alpha", "fg", "bg", "image")
"""Sample files in the order they are written; the image goes last and marks completion."""
PRIOR_PART = "prior"
"""The closed-form matte of a finished sample, written in a second stage."""
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})


class CombineError(Exception):
    """Input that makes the whole run impossible; ``str(error)`` is ``"<path>: <problem>"``."""

    def __init__(self, path: str | os.PathLike, problem: str):
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class Foreground:
    """A foreground source: an RGBA file, or an image whose alpha is a separate mask."""

    name: str
    image: str
    mask: str | None = None


@dataclass(frozen=True)
class Background:
    name: str
    path: str


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
# Finding the inputs


def sanitise(text: str) -> str:
    """A file-name-safe identity: runs of anything but ``[A-Za-z0-9._-]`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "unnamed"


def list_images(folder: Path) -> list[Path]:
    """Image files in ``folder`` (by extension, not hidden), sorted; [] if it does not exist."""
    if not folder.is_dir():
        return []
    return sorted(
        path
        for path in folder.iterdir()
        if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
    )


def _skipped(kind: str, path: str | os.PathLike, reason: str) -> dict:
    return {"kind": kind, "file": str(path), "status": "skipped", "reason": reason}


def _unique(items: list, kind: str, skipped: list[dict]) -> list:
    """Keep the first item of each name; later ones are skipped as duplicates."""
    seen: dict[str, object] = {}
    kept = []
    for item in items:
        if item.name in seen:
            first = seen[item.name]
            other = first.image if kind == "foreground" else first.path
            path = item.image if kind == "foreground" else item.path
            skipped.append(_skipped(kind, path, f"duplicate name {item.name!r} (also {other})"))
            continue
        seen[item.name] = item
        kept.append(item)
    return kept


def find_raw(raw: Path) -> tuple[list[Foreground], list[Background]]:
    """Foreground and background files of a raw folder.

    Raises
    ------
    CombineError
        The folder is missing, or has no background images.
    """
    if not raw.exists():
        raise CombineError(raw, "no such folder")
    if not raw.is_dir():
        raise CombineError(raw, "not a folder")
    backgrounds = [
        Background(sanitise(path.stem), str(path)) for path in list_images(raw / "background")
    ]
    if not backgrounds:
        raise CombineError(
            raw,
            "no background images in background/ (make some with synthesize.py or download.py)",
        )
    foregrounds = [
        Foreground(sanitise(path.stem), str(path)) for path in list_images(raw / "foreground")
    ]
    return foregrounds, backgrounds


def find_pairs(folder: Path, skipped: list[dict]) -> list[Foreground]:
    """Image/mask pairs matched by stem: ``folder/images/NAME.*`` with ``folder/masks/NAME.*``.

    Unmatched files go to ``skipped``. The identity of a pair is ``<folder name>-<stem>``, so
    two datasets with the same file names do not collide.

    Raises
    ------
    CombineError
        The folder, or its images/ or masks/ subfolder, is missing.
    """
    if not folder.is_dir():
        raise CombineError(folder, "no such folder" if not folder.exists() else "not a folder")
    found = {}
    for sub in ("images", "masks"):
        if not (folder / sub).is_dir():
            raise CombineError(
                folder / sub, "missing; a pairs folder holds images/NAME.jpg and masks/NAME.png"
            )
        found[sub] = {}
        for path in list_images(folder / sub):
            if path.stem in found[sub]:
                skipped.append(
                    _skipped("foreground", path, f"duplicate stem (also {found[sub][path.stem]})")
                )
            else:
                found[sub][path.stem] = path
    images, masks = found["images"], found["masks"]
    pairs = []
    for stem in sorted(images.keys() | masks.keys()):
        if stem not in masks:
            skipped.append(
                _skipped("foreground", images[stem], f"no mask masks/{stem}.png for this image")
            )
        elif stem not in images:
            skipped.append(_skipped("foreground", masks[stem], "mask without an image"))
        else:
            name = sanitise(f"{folder.resolve().name}-{stem}")
            pairs.append(Foreground(name, str(images[stem]), str(masks[stem])))
    return pairs


# ---------------------------------------------------------------------------------------------
# Reading and checking


def resize_foreground(
    colour: np.ndarray, alpha: np.ndarray, long_side: int
) -> tuple[np.ndarray, np.ndarray]:
    """Resize a foreground so its longest side is ``long_side``, keeping its aspect ratio.

    Colour is resized premultiplied, ``F' = resize(alpha F) / resize(alpha)``, so the colour of
    transparent pixels (often black or white garbage in RGBA files) does not bleed into edges;
    where the new alpha is below 1/255 the plainly resized colour is kept. Shrinking averages
    areas (no aliasing), enlarging interpolates linearly.

    Parameters
    ----------
    colour : ndarray, float32, shape (H, W, 3), values in [0, 1]
    alpha : ndarray, float32, shape (H, W), values in [0, 1]

    Returns
    -------
    (colour, alpha) with the same dtypes, unchanged when already of that size.
    """
    height, width = alpha.shape
    if max(height, width) == long_side:
        return colour, alpha
    scale = long_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    new_alpha = cv2.resize(alpha, size, interpolation=interpolation)
    premultiplied = cv2.resize(colour * alpha[..., None], size, interpolation=interpolation)
    plain = cv2.resize(colour, size, interpolation=interpolation)
    opaque_enough = new_alpha[..., None] > 1.0 / 255.0
    unpremultiplied = premultiplied / np.maximum(new_alpha, 1e-6)[..., None]
    new_colour = np.where(opaque_enough, unpremultiplied, plain)
    return np.clip(new_colour, 0.0, 1.0), np.clip(new_alpha, 0.0, 1.0)


def downscale(colour: np.ndarray, alpha: np.ndarray, max_size: int) -> tuple[np.ndarray, ...]:
    """Shrink a foreground so its longest side is at most ``max_size`` (``resize_foreground``).

    Returns
    -------
    (colour, alpha) with the same dtypes, unchanged when already small enough.
    """
    if max(alpha.shape) <= max_size:
        return colour, alpha
    return resize_foreground(colour, alpha, max_size)


def load_foreground(source: Foreground, max_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Colour (HxWx3) and alpha (HxW) of a foreground, float32 in [0, 1], EXIF-upright.

    Raises
    ------
    ImageError
        Unreadable file, or a mask whose size differs from its image.
    """
    if source.mask is None:
        pixels = read_image(source.image, keep_alpha=True)
        colour, alpha = pixels[..., :3], pixels[..., 3]
    else:
        colour = read_image(source.image)
        alpha = read_alpha(source.mask)
        if alpha.shape != colour.shape[:2]:
            raise ImageError(
                source.mask,
                f"mask is {alpha.shape[1]}x{alpha.shape[0]} but its image is"
                f" {colour.shape[1]}x{colour.shape[0]}",
            )
    return downscale(colour, alpha, max_size)


def check_foreground(job: tuple[Foreground, int]) -> tuple[Foreground, str | None]:
    """(foreground, None) if it is usable, else (foreground, why not)."""
    source, max_size = job
    try:
        _, alpha = load_foreground(source, max_size)
    except ImageError as error:
        return source, error.problem if error.source == source.image else str(error)
    return source, alpha_problem(alpha)


def check_background(background: Background) -> tuple[Background, str | None]:
    """(background, None) if it decodes, else (background, why not)."""
    try:
        read_image(background.path)
    except ImageError as error:
        return background, error.problem
    return background, None


def _check(job: tuple[str, object]) -> tuple[str, object, str | None]:
    kind, payload = job
    if kind == "foreground":
        return kind, *check_foreground(payload)
    return kind, *check_background(payload)


# ---------------------------------------------------------------------------------------------
# Splits and sample plan


def unit_hash(*parts: object) -> float:
    """A stable pseudo-random number in [0, 1) from the parts (sha256, not Python's hash)."""
    digest = hashlib.sha256("\0".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_splits(
    names: list[str], seed: int, val_fraction: float, test_fraction: float, salt: str
) -> dict[str, str]:
    """Split names into train/val/test by hashing each with the seed.

    A name with ``u = unit_hash(seed, salt, name)`` goes to test if ``u < test_fraction``, to
    val if ``u < test_fraction + val_fraction``, else to train. With 3 or more names, a split
    with a non-zero fraction that came out empty takes the name(s) whose hash is nearest its
    interval, and train always keeps one. Apart from those corrections (small sets only), a
    name's split depends on its own hash alone, so adding names does not move existing ones.

    Returns
    -------
    dict name -> "train" | "val" | "test".
    """
    ranked = sorted(names, key=lambda name: (unit_hash(seed, salt, name), name))
    units = [unit_hash(seed, salt, name) for name in ranked]
    n_test = sum(u < test_fraction for u in units)
    n_val = sum(test_fraction <= u < test_fraction + val_fraction for u in units)
    if len(ranked) >= 3:
        n_test = max(n_test, 1 if test_fraction > 0 else 0)
        n_val = max(n_val, 1 if val_fraction > 0 else 0)
    while ranked and n_test + n_val >= len(ranked):
        if n_val >= n_test and n_val > 0:
            n_val -= 1
        else:
            n_test -= 1
    return {
        name: "test" if i < n_test else "val" if i < n_test + n_val else "train"
        for i, name in enumerate(ranked)
    }


def split_backgrounds(
    backgrounds: list[Background],
    seed: int,
    val_fraction: float,
    test_fraction: float,
    needs: dict[str, int],
) -> tuple[dict[str, list[Background]], str | None]:
    """Give each split its own backgrounds, or all of them to every split when too few.

    Backgrounds are ranked by ``unit_hash(seed, "background", name)``; test takes the first
    ``max(its fraction's share, needs["test"])``, val the next ``max(..., needs["val"])``, train
    the rest. A split without foregrounds (need 0) takes none.

    Parameters
    ----------
    needs : dict split -> int
        Backgrounds one foreground of that split is composited onto (0: no foregrounds).

    Returns
    -------
    pools : dict split -> list of Background
    note : str or None
        Why the splits share their backgrounds, or None when they are disjoint.
    """
    ranked = sorted(backgrounds, key=lambda b: (unit_hash(seed, "background", b.name), b.name))
    units = [unit_hash(seed, "background", b.name) for b in ranked]
    natural = {
        "test": sum(u < test_fraction for u in units),
        "val": sum(test_fraction <= u < test_fraction + val_fraction for u in units),
    }
    counts = {split: max(natural[split], needs[split]) if needs[split] else 0 for split in natural}
    n_train = len(ranked) - counts["test"] - counts["val"]
    if n_train < needs["train"] or n_train < 0:
        wanted = ", ".join(f"{split} {needs[split]}" for split in SPLITS if needs[split])
        note = (
            f"{len(ranked)} backgrounds are too few for disjoint splits (one per sample of a"
            f" foreground: {wanted}); all splits share them"
        )
        return {split: list(ranked) for split in SPLITS}, note
    pools = {
        "test": ranked[: counts["test"]],
        "val": ranked[counts["test"] : counts["test"] + counts["val"]],
        "train": ranked[counts["test"] + counts["val"] :],
    }
    return pools, None


def choose_backgrounds(
    foreground: str, pool: list[Background], count: int, seed: int
) -> list[Background]:
    """The ``count`` backgrounds of ``pool`` with the smallest ``unit_hash(seed, fg, bg)``.

    Rendezvous hashing: adding a background to the pool changes at most one choice.
    """
    ranked = sorted(pool, key=lambda b: (unit_hash(seed, "pair", foreground, b.name), b.name))
    return ranked[:count]


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


def misplaced_samples(
    out: Path, splits: dict[str, str], pools: dict[str, list[Background]]
) -> list[Path]:
    """Images of earlier runs whose foreground or background now belongs to another split.

    A re-run with another ``--seed`` or other fractions, or with foregrounds added to a small
    set, can assign a foreground elsewhere; its old samples would then put it in two splits.
    Samples of foregrounds or backgrounds no longer used are not counted.
    """
    backgrounds = {b.name for pool in pools.values() for b in pool}
    misplaced = []
    for split in SPLITS:
        pool = {b.name for b in pools[split]}
        for path in sorted((out / split / "image").glob("*.png")):
            # Names never start or end with "_", but may contain "__": try every separator.
            at = path.stem.find("__")
            while at > 0:
                fg, bg = path.stem[:at], path.stem[at + 2 :]
                if fg in splits and bg in backgrounds:
                    if splits[fg] != split or bg not in pool:
                        misplaced.append(path)
                    break
                at = path.stem.find("__", at + 1)
    return misplaced


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


def _sample_record(
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
    record = _sample_record(task, width, height, kernel, scale, degradations)
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


def _add_priors(workers: Workers, out: Path, tasks: list[Task]) -> Counter:
    """Compute the missing priors of the finished samples among ``tasks``; count per split."""
    jobs = [
        (str(out), task.split, task.name)
        for task in tasks
        if sample_path(out, task.split, "image", task.name).exists()
        and not sample_path(out, task.split, PRIOR_PART, task.name).exists()
    ]
    made: Counter = Counter()
    results = workers.imap_unordered(make_prior, jobs)
    for record in tqdm(results, total=len(jobs), desc="prior", unit="sample"):
        append_record(out / MANIFEST, record)
        if record["status"] == "kept":
            made[record["split"]] += 1
        else:
            tqdm.write(f"skipped prior {record['name']}: {record['reason']}", file=sys.stderr)
    return made


# ---------------------------------------------------------------------------------------------
# The command line


def kernel_range(text: str) -> tuple[int, int]:
    """argparse type: ``MIN,MAX`` (or one number) -> (min, max) with 1 <= min <= max."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not MIN,MAX in pixels") from None
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or not 1 <= values[0] <= values[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: need 1 <= MIN <= MAX")
    return values[0], values[1]


MIN_SCALE = 32
MAX_SCALE = 1024
"""Sample sides ``--scales`` accepts: a long side of 1024 keeps a sample within 1 MP."""


def scale_list(text: str) -> tuple[int, ...]:
    """argparse type: ``PX[,PX...]`` sample long sides, each in [MIN_SCALE, MAX_SCALE]."""
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of pixel sizes like 512,1024"
        ) from None
    for value in values:
        if not MIN_SCALE <= value <= MAX_SCALE:
            raise argparse.ArgumentTypeError(
                f"{value} is outside {MIN_SCALE}-{MAX_SCALE} (1024 px keeps a sample within 1 MP)"
            )
    return values


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        description="Composite foregrounds onto backgrounds into train/val/test samples.",
    )
    sources = parser.add_argument_group("inputs and output")
    sources.add_argument(
        "raw",
        nargs="?",
        type=Path,
        default=DEFAULT_RAW,
        help="raw folder with foreground/ and background/ (default scripts/raw)",
    )
    sources.add_argument(
        "--pairs",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="also use DIR/images/NAME.* with DIR/masks/NAME.* as foregrounds (repeatable)",
    )
    sources.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="dataset folder (default scripts/data)"
    )
    sampling = parser.add_argument_group("samples")
    sampling.add_argument(
        "--per-fg",
        type=positive_int,
        default=20,
        help="backgrounds per training foreground (default 20)",
    )
    sampling.add_argument(
        "--test-per-fg",
        type=positive_int,
        default=5,
        help="backgrounds per validation or test foreground (default 5)",
    )
    sampling.add_argument(
        "--max-size",
        type=positive_int,
        default=1024,
        help="longest side of a sample; larger foregrounds are shrunk (default 1024)",
    )
    sampling.add_argument(
        "--scales",
        type=scale_list,
        default=None,
        metavar="PX[,PX...]",
        help="draw each sample's longest side from these sizes (e.g. 512,768,1024; at most 1024,"
        " i.e. 1 MP), enlarging or shrinking its foreground; default: the foreground's own size,"
        " at most --max-size",
    )
    sampling.add_argument(
        "--no-degrade",
        dest="degrade",
        action="store_false",
        help="store clean composites: no matched blur, colour cast, noise or JPEG of F and B,"
        " and no foreground colour shift (the samples of earlier versions)",
    )
    sampling.add_argument(
        "--trimap-kernel",
        type=kernel_range,
        default=(1, 29),
        metavar="MIN,MAX",
        help="range of the trimap's dilation kernel diameter in pixels (default 1,29)",
    )
    splits = parser.add_argument_group("splits")
    splits.add_argument(
        "--val-fraction",
        type=fraction,
        default=0.1,
        help="share of foregrounds for validation (default 0.1)",
    )
    splits.add_argument(
        "--test-fraction",
        type=fraction,
        default=0.1,
        help="share of foregrounds for testing (default 0.1)",
    )
    splits.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="seed of splits, background choice, crops and trimaps (default 0)",
    )
    sampling.add_argument(
        "--no-prior",
        dest="prior",
        action="store_false",
        help="do not compute each sample's closed-form prior (prior/NAME.png), which the default"
        " generator needs; a later run without this flag adds the missing ones",
    )
    add_process_workers(parser)
    return parser


def _clean_temporaries(out: Path) -> int:
    """Remove temp files a killed run left behind (atomic writes' ``.NAME.*.tmp``)."""
    removed = 0
    for folder in [out] + [out / split / part for split in SPLITS for part in (*PARTS, PRIOR_PART)]:
        if folder.is_dir():
            for path in folder.glob(".*.tmp"):
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def _check_inputs(
    workers: Workers,
    foregrounds: list[Foreground],
    backgrounds: list[Background],
    max_size: int,
    skipped: list[dict],
) -> tuple[list[Foreground], list[Background]]:
    """Decode every input once; return the usable ones sorted by name, add the rest to
    ``skipped``."""
    jobs: list[tuple[str, object]] = [("foreground", (fg, max_size)) for fg in foregrounds]
    jobs += [("background", bg) for bg in backgrounds]
    usable: dict[str, list] = {"foreground": [], "background": []}
    results = workers.imap_unordered(_check, jobs)
    for kind, item, reason in tqdm(results, total=len(jobs), desc="check", unit="file"):
        if reason is None:
            usable[kind].append(item)
        else:
            path = item.image if kind == "foreground" else item.path
            skipped.append(_skipped(kind, path, reason))
    return (
        sorted(usable["foreground"], key=lambda f: f.name),
        sorted(usable["background"], key=lambda b: b.name),
    )


def _plan(
    options: argparse.Namespace,
    foregrounds: list[Foreground],
    splits: dict[str, str],
    pools: dict[str, list[Background]],
) -> list[Task]:
    """Every sample of the run, in foreground order (so workers reuse a decoded foreground)."""
    per_split = {"train": options.per_fg, "val": options.test_per_fg, "test": options.test_per_fg}
    tasks = []
    for fg in foregrounds:
        split = splits[fg.name]
        for bg in choose_backgrounds(fg.name, pools[split], per_split[split], options.seed):
            tasks.append(
                Task(
                    sample_name(fg, bg),
                    split,
                    fg,
                    bg,
                    str(options.out),
                    options.seed,
                    options.max_size,
                    options.trimap_kernel,
                    options.scales,
                    options.degrade,
                )
            )
    return tasks


def _run_record(
    options: argparse.Namespace,
    splits: dict[str, str],
    pools: dict[str, list[Background]],
    note: str | None,
) -> dict:
    return {
        "kind": "run",
        "status": "started",
        "seed": options.seed,
        "per_fg": options.per_fg,
        "test_per_fg": options.test_per_fg,
        "val_fraction": options.val_fraction,
        "test_fraction": options.test_fraction,
        "max_size": options.max_size,
        "scales": list(options.scales) if options.scales else None,
        "degrade": options.degrade,
        "trimap_kernel": list(options.trimap_kernel),
        "foregrounds": {split: sum(s == split for s in splits.values()) for split in SPLITS},
        "backgrounds": "shared" if note else {split: len(pools[split]) for split in SPLITS},
        "reason": note,
    }


def run(options: argparse.Namespace) -> int:
    """The whole combine run; raises CombineError, ImageError or OSError on failures."""
    out: Path = options.out
    if out.exists() and not out.is_dir():
        raise CombineError(out, "not a folder")
    skipped: list[dict] = []
    foregrounds, backgrounds = find_raw(options.raw)
    for folder in options.pairs:
        foregrounds += find_pairs(folder, skipped)
    foregrounds = _unique(foregrounds, "foreground", skipped)
    backgrounds = _unique(backgrounds, "background", skipped)
    sources = ", ".join(str(p) for p in [options.raw / "foreground", *options.pairs])
    if not foregrounds:
        raise CombineError(sources, "no foreground images")

    out.mkdir(parents=True, exist_ok=True)
    _clean_temporaries(out)
    manifest = out / MANIFEST
    known = read_records(manifest)
    logged = {(r.get("kind"), r.get("file"), r.get("reason")) for r in known}
    recorded = {
        r.get("name") for r in known if r.get("kind") == "sample" and r.get("status") == "kept"
    }

    with Workers(options.workers, preload=__name__) as workers:
        good_fgs, good_bgs = _check_inputs(
            workers, foregrounds, backgrounds, options.max_size, skipped
        )
        for record in skipped:
            tqdm.write(f"skipped {record['file']}: {record['reason']}", file=sys.stderr)
            if (record["kind"], record["file"], record["reason"]) not in logged:
                append_record(manifest, record)
        if not good_fgs:
            raise CombineError(
                sources, f"no usable foreground ({len(foregrounds)} skipped; reasons in {manifest})"
            )
        if not good_bgs:
            raise CombineError(
                options.raw / "background", f"no usable background (reasons in {manifest})"
            )

        names = [f.name for f in good_fgs]
        splits = assign_splits(
            names, options.seed, options.val_fraction, options.test_fraction, "foreground"
        )
        present = set(splits.values())
        needs = {
            "train": options.per_fg if "train" in present else 0,
            "val": options.test_per_fg if "val" in present else 0,
            "test": options.test_per_fg if "test" in present else 0,
        }
        pools, note = split_backgrounds(
            good_bgs, options.seed, options.val_fraction, options.test_fraction, needs
        )
        misplaced = misplaced_samples(out, splits, pools)
        if misplaced:
            raise CombineError(
                misplaced[0],
                f"made by an earlier run, but its foreground or background is now in another split"
                f" ({len(misplaced)} such samples; other --seed, fractions or inputs?); use a new"
                f" --out, or delete them",
            )
        append_record(manifest, _run_record(options, splits, pools, note))
        if note:
            tqdm.write(f"note: {note}", file=sys.stderr)

        finished: Counter = Counter()
        todo = []
        tasks = _plan(options, good_fgs, splits, pools)
        for task in tasks:
            image = sample_path(out, task.split, "image", task.name)
            if not image.exists():
                todo.append(task)
                continue
            finished[task.split] += 1
            if task.name not in recorded:
                # Killed between the image and its record: the sample is complete, log it.
                info = probe_image(image)
                degradations = sample_degradations(task, max(info.width, info.height))
                append_record(
                    manifest,
                    _sample_record(
                        task, info.width, info.height, None, sample_scale(task), degradations
                    ),
                )

        made: Counter = Counter()
        failed: Counter = Counter()
        results = workers.imap_unordered(make_sample, todo)
        for record in tqdm(results, total=len(todo), desc="combine", unit="sample"):
            if record["status"] == "kept":
                made[record["split"]] += 1
            else:
                failed[record["split"]] += 1
                append_record(manifest, record)
                tqdm.write(f"skipped sample {record['name']}: {record['reason']}", file=sys.stderr)
        priors = _add_priors(workers, out, tasks) if options.prior else Counter()

    for split in SPLITS:
        print(
            f"{split:5s}: {sum(s == split for s in splits.values())} foregrounds,"
            f" {finished[split] + made[split]} samples ({made[split]} new,"
            f" {finished[split]} already there, {failed[split]} skipped"
            + (f"; {priors[split]} new priors)" if options.prior else ")")
        )
    print(f"skipped: {len(skipped)} input files (reasons in {manifest})")
    parts = "image,trimap,alpha,fg,bg,prior" if options.prior else "image,trimap,alpha,fg,bg"
    print(f"data: {out}/{{train,val,test}}/{{{parts}}}/")
    return 0


def main(args: list[str] | None = None) -> int:
    options = build_parser().parse_args(args)
    try:
        return run(options)
    except (CombineError, ImageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        where = error.filename or options.out
        print(f"error: {where}: {error.strerror or error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"error: {options.out}: interrupted; run again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    status = main()
    # Only exit handlers run from here (the worker pool's, among them); another Ctrl-C would
    # turn the 130 of an interrupted run into a traceback and death by SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(status)
