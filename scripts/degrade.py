"""Matched camera degradations of a sample (private helper of combine.py).

A foreground pasted onto a background looks pasted when the two differ in what a camera does to
every pixel alike: sharpness, colour balance, sensor noise, JPEG compression. As in GCA
(Li and Lu 2020) and the matting work after it, combine.py bakes such degradations into the
stored sample, drawn per sample and applied to the foreground colours F and the background B
*identically*, before they are composited:

1. a colour shift of the foreground alone (``model.compositing.colour_matrix``), so objects
   of one source come in several colourings;
2. a Gaussian blur, the same sigma for F and B (a lens that is not perfectly sharp);
3. a colour cast of both (white-balance gains, then a hue, saturation and brightness change);
4. sensor noise: one Gaussian field, added to F and to B, so the composite carries exactly
   that field, ``a (F + n) + (1 - a)(B + n) = aF + (1 - a)B + n`` (before clipping);
5. JPEG re-compression of F and B at the same quality.

The alpha matte is never touched and the composite is made afterwards from the degraded, 8-bit
F and B, so ``image = round(a F' + (1 - a) B')`` holds exactly for the stored files, as without
degradations. What this does not model is blur or JPEG blocks *across* the object's edge: those
would make the stored image disagree with its own alpha, F and B.

Each step happens with its own probability, so some samples stay clean. ``draw`` turns a random
generator into a JSON-ready ``dict`` of parameters (recorded in the manifest), and ``apply`` is
a pure function of the images and that dict, so a sample is rebuilt from its record.
"""

from __future__ import annotations

import cv2
import numpy as np

from model.compositing import colour_matrix
from model.images import to_uint8

FOREGROUND_SHIFT = {
    "probability": 0.3,
    "hue": 8.0,
    "saturation": (0.85, 1.15),
    "brightness": (0.9, 1.1),
}
"""Colour shift of F alone: hue +-degrees, saturation and brightness factor ranges."""

BLUR = {"probability": 0.4, "sigma": (0.4, 1.5)}
"""Gaussian blur sigma in pixels of a 512-pixel sample (scaled with the sample's long side)."""

CAST = {
    "probability": 0.5,
    "gains": (0.9, 1.1),
    "hue": 5.0,
    "saturation": (0.8, 1.2),
    "brightness": (0.85, 1.15),
}
"""Colour cast of F and B alike: per-channel gains, then hue, saturation and brightness."""

NOISE = {"probability": 0.5, "sigma": (1.0, 6.0)}
"""Gaussian noise standard deviation in 8-bit levels, one field for F and B."""

JPEG = {"probability": 0.5, "quality": (55, 95)}
"""JPEG quality range (inclusive) of the re-compression of F and B."""

REFERENCE_SIDE = 512
"""Sample long side at which ``BLUR``'s sigmas are given."""


def _chance(rng: np.random.Generator, probability: float) -> bool:
    return bool(rng.random() < probability)


def draw(rng: np.random.Generator, long_side: int) -> dict:
    """Random degradation parameters for a sample whose longest side is ``long_side`` pixels.

    Every step's coin and values are drawn whether or not an earlier step happened, so the
    draws of one step never shift those of another.

    Returns
    -------
    dict, JSON-ready, a value of None meaning the step is skipped:
        ``fg_shift`` [hue degrees, saturation, brightness]; ``blur_sigma`` (pixels);
        ``cast`` {``gains`` [r, g, b], ``hue``, ``saturation``, ``brightness``};
        ``noise_sigma`` (8-bit levels) and ``noise_seed``; ``jpeg_quality`` (1-100).
    """
    shift = [
        float(rng.uniform(-FOREGROUND_SHIFT["hue"], FOREGROUND_SHIFT["hue"])),
        float(rng.uniform(*FOREGROUND_SHIFT["saturation"])),
        float(rng.uniform(*FOREGROUND_SHIFT["brightness"])),
    ]
    use_shift = _chance(rng, FOREGROUND_SHIFT["probability"])
    sigma = float(rng.uniform(*BLUR["sigma"])) * long_side / REFERENCE_SIDE
    use_blur = _chance(rng, BLUR["probability"])
    cast = {
        "gains": [float(g) for g in rng.uniform(*CAST["gains"], size=3)],
        "hue": float(rng.uniform(-CAST["hue"], CAST["hue"])),
        "saturation": float(rng.uniform(*CAST["saturation"])),
        "brightness": float(rng.uniform(*CAST["brightness"])),
    }
    use_cast = _chance(rng, CAST["probability"])
    noise_sigma = float(rng.uniform(*NOISE["sigma"]))
    noise_seed = int(rng.integers(2**63))
    use_noise = _chance(rng, NOISE["probability"])
    quality = int(rng.integers(JPEG["quality"][0], JPEG["quality"][1] + 1))
    use_jpeg = _chance(rng, JPEG["probability"])
    return {
        "fg_shift": shift if use_shift else None,
        "blur_sigma": sigma if use_blur else None,
        "cast": cast if use_cast else None,
        "noise_sigma": noise_sigma if use_noise else None,
        "noise_seed": noise_seed if use_noise else None,
        "jpeg_quality": quality if use_jpeg else None,
    }


def cast_matrix(cast: dict) -> np.ndarray:
    """The 3x3 RGB matrix of a ``cast`` entry: ``colour_matrix(hue, s, b) @ diag(gains)``."""
    matrix = colour_matrix(cast["hue"], cast["saturation"], cast["brightness"])
    return (matrix @ np.diag(np.asarray(cast["gains"], np.float32))).astype(np.float32)


def jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    """An 8-bit RGB image after a JPEG round trip at ``quality`` (OpenCV's libjpeg, 4:2:0).

    Parameters
    ----------
    pixels : ndarray, uint8, shape (H, W, 3), RGB

    Returns
    -------
    ndarray, uint8, shape (H, W, 3), RGB
    """
    bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding at quality {quality} failed")
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def apply(fg: np.ndarray, bg: np.ndarray, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """Degrade a sample's foreground colours and background with ``draw``'s parameters.

    Parameters
    ----------
    fg, bg : ndarray, uint8, shape (H, W, 3), RGB
        F and B of one sample (same size).
    params : dict
        From ``draw``.

    Returns
    -------
    (fg, bg) : ndarrays, uint8, shape (H, W, 3)
        The degraded F and B; composite them with the untouched alpha.
    """
    if fg.shape != bg.shape:
        raise ValueError(f"fg {fg.shape} and bg {bg.shape} differ in shape")
    f = fg.astype(np.float32) / np.float32(255.0)
    b = bg.astype(np.float32) / np.float32(255.0)
    if params["fg_shift"] is not None:
        f = np.clip(cv2.transform(f, colour_matrix(*params["fg_shift"])), 0.0, 1.0)
    if params["blur_sigma"] is not None:
        sigma = params["blur_sigma"]
        f = cv2.GaussianBlur(f, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
        b = cv2.GaussianBlur(b, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
    if params["cast"] is not None:
        matrix = cast_matrix(params["cast"])
        f = np.clip(cv2.transform(f, matrix), 0.0, 1.0)
        b = np.clip(cv2.transform(b, matrix), 0.0, 1.0)
    if params["noise_sigma"] is not None:
        noise_rng = np.random.default_rng(params["noise_seed"])
        noise = noise_rng.standard_normal(f.shape, dtype=np.float32)
        noise *= np.float32(params["noise_sigma"] / 255.0)
        f, b = f + noise, b + noise
    f8, b8 = to_uint8(f), to_uint8(b)
    if params["jpeg_quality"] is not None:
        f8, b8 = jpeg(f8, params["jpeg_quality"]), jpeg(b8, params["jpeg_quality"])
    return f8, b8
