"""Downloaded bytes, for ``scripts/fetch.py``: are they a usable foreground or background, and
where a kept one is stored.

:func:`vet` sniffs the format from the content (never the extension or ``Content-Type``) with
:func:`model.images.probe_image` and :func:`model.images.decode_image`, which refuse images over
``max_pixels`` before decoding them. A foreground must have a useful alpha channel
(:func:`model.compositing.alpha_problem` with ``require_partial=True``: not fully opaque, not a
plain rectangle, some 0 < alpha < 1); a background must be opaque with a shorter side of at
least ``min_background`` pixels. :func:`save` writes atomically under ``<sha256[:16]>``:
foregrounds as RGBA PNG in ``foreground/``, backgrounds in ``background/`` with their JPEG bytes
untouched, other formats as RGB PNG.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.compositing import alpha_problem
from model.images import ImageError, decode_image, probe_image, write_bytes, write_png
from scripts.transfer import Settings

KINDS = ("foreground", "background")
JPEG_FORMATS = ("JPEG", "MPO")

# What atomic_path leaves behind when the process is killed mid-write: ".<name>.<random>.tmp".
_STALE_TEMP = re.compile(r"^\.[0-9a-f]{16}\.(png|jpg)\..+\.tmp$")


@dataclass(frozen=True)
class Verdict:
    """The outcome of vetting one image: ``status`` is "kept" or "rejected"."""

    status: str
    reason: str | None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    pixels: np.ndarray | None = None


def vet(data: bytes, kind: str, settings: Settings, name: str = "<bytes>") -> Verdict:
    """Decide whether downloaded bytes make a usable foreground or background.

    Parameters
    ----------
    data : bytes
        The encoded image, format unknown.
    kind : {"foreground", "background"}
    settings : Settings
        ``max_pixels`` and ``min_background`` are used.
    name : str
        What to call the image in reasons.

    Returns
    -------
    Verdict
        ``kept`` with ``pixels`` (float32 HxWx4 RGBA in [0, 1] for foregrounds and backgrounds
        with an alpha channel, else HxWx3 RGB; EXIF orientation applied), or
        ``rejected`` with a reason: the decoder's (not an image, too many pixels, truncated...),
        an alpha problem for foregrounds ("fully opaque", "plain rectangle",
        "no partial transparency", "fully transparent"), or for backgrounds "not opaque" /
        "too small".
    """
    try:
        info = probe_image(data, name)
        if kind == "background" and min(info.width, info.height) < settings.min_background:
            return Verdict(
                "rejected",
                f"too small ({info.width}x{info.height}; shorter side under"
                f" --min-background {settings.min_background})",
                info.width,
                info.height,
                info.format,
            )
        keep_alpha = kind == "foreground" or info.has_alpha
        pixels = decode_image(data, name, keep_alpha=keep_alpha, max_pixels=settings.max_pixels)
    except ImageError as error:
        return Verdict("rejected", error.problem)
    # Hostile files make PIL's decoders raise arbitrary exception types; one must not end the run.
    except Exception as error:
        return Verdict("rejected", f"cannot decode image ({type(error).__name__})")
    height, width = pixels.shape[:2]
    if kind == "foreground":
        problem = alpha_problem(pixels[..., 3], require_partial=True)
    elif pixels.shape[2] == 4 and (pixels[..., 3] < 1.0).any():
        problem = "not opaque (has transparent pixels)"
    else:
        problem = None
    if problem:
        return Verdict("rejected", problem, width, height, info.format)
    return Verdict("kept", None, width, height, info.format, pixels)


def save(out_dir: Path, kind: str, digest: str, data: bytes, verdict: Verdict) -> str:
    """Write a kept image atomically; return its path relative to ``out_dir``."""
    if kind == "foreground":
        relative = f"foreground/{digest[:16]}.png"
        write_png(out_dir / relative, verdict.pixels)
    elif verdict.format in JPEG_FORMATS:
        relative = f"background/{digest[:16]}.jpg"
        write_bytes(out_dir / relative, data)
    else:
        relative = f"background/{digest[:16]}.png"
        write_png(out_dir / relative, verdict.pixels[..., :3])
    return relative


def remove_stale_temps(out_dir: Path) -> int:
    """Delete temp files a killed run left in ``foreground/`` and ``background/``; count them."""
    removed = 0
    for kind in KINDS:
        folder = out_dir / kind
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if _STALE_TEMP.match(path.name):
                path.unlink(missing_ok=True)
                removed += 1
    return removed
