"""The inputs of combine.py: finding foregrounds and backgrounds, reading and checking them.

A foreground is an RGBA file of a raw folder (``RAW/foreground/``) or an image with a separate
mask (``--pairs DIR``: ``DIR/images/NAME.*`` + ``DIR/masks/NAME.*``); a background is any image
of ``RAW/background/``. Names are sanitised file stems, unique per kind. Reading is EXIF-upright,
16-bit aware and bounded (``model.images``); a foreground is shrunk to ``--max-size`` with
premultiplied area averaging (``resize_foreground``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from model.compositing import alpha_problem
from model.images import ImageError, read_alpha, read_image
from scripts.parallel import Workers

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


def skipped_record(kind: str, path: str | os.PathLike, reason: str) -> dict:
    return {"kind": kind, "file": str(path), "status": "skipped", "reason": reason}


def unique(items: list, kind: str, skipped: list[dict]) -> list:
    """Keep the first item of each name; later ones are skipped as duplicates."""
    seen: dict[str, object] = {}
    kept = []
    for item in items:
        if item.name in seen:
            first = seen[item.name]
            other = first.image if kind == "foreground" else first.path
            path = item.image if kind == "foreground" else item.path
            skipped.append(
                skipped_record(kind, path, f"duplicate name {item.name!r} (also {other})")
            )
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
                    skipped_record(
                        "foreground", path, f"duplicate stem (also {found[sub][path.stem]})"
                    )
                )
            else:
                found[sub][path.stem] = path
    images, masks = found["images"], found["masks"]
    pairs = []
    for stem in sorted(images.keys() | masks.keys()):
        if stem not in masks:
            skipped.append(
                skipped_record(
                    "foreground", images[stem], f"no mask masks/{stem}.png for this image"
                )
            )
        elif stem not in images:
            skipped.append(skipped_record("foreground", masks[stem], "mask without an image"))
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


def check_input(job: tuple[str, object]) -> tuple[str, object, str | None]:
    kind, payload = job
    if kind == "foreground":
        return kind, *check_foreground(payload)
    return kind, *check_background(payload)


def check_inputs(
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
    results = workers.imap_unordered(check_input, jobs)
    for kind, item, reason in tqdm(results, total=len(jobs), desc="check", unit="file"):
        if reason is None:
            usable[kind].append(item)
        else:
            path = item.image if kind == "foreground" else item.path
            skipped.append(skipped_record(kind, path, reason))
    return (
        sorted(usable["foreground"], key=lambda f: f.name),
        sorted(usable["background"], key=lambda b: b.name),
    )
