"""Real photographs as raw material (private helper of synthesize.py).

The photographs are the freely licensed sample images that ship inside the scikit-image wheel
(``skimage.data``; read from the installed package, never downloaded). ``PHOTOS`` lists each
with its licence and author as scikit-image's docstrings state them; only public-domain and CC0
images are used. Colour photographs give backgrounds and foreground textures their photographic
colour statistics; the greyscale CC0 texture photographs (brick, grass, gravel, camera) are
coloured through a palette of ``scripts/drawing.py``, dark to light, so they keep their
photographic structure.

A crop (``photo_crop``) is a pure function of a ``numpy.random.Generator``: a random window of
random scale, a horizontal flip (and, for textures, a quarter turn), resized to the requested
size, then a colour shift (``model.compositing.colour_matrix``). Its ``info`` dict says which
photo, which window and which shift, so the manifest records where every pixel came from.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import skimage
import skimage.data

from model.compositing import colour_matrix
from scripts import drawing

PACKAGE = "scikit-image"


@dataclass(frozen=True)
class Photo:
    """One ``skimage.data`` image: the function that loads it, its licence and its author."""

    name: str
    licence: str
    credit: str


PHOTOS = (
    Photo("astronaut", "public domain", "NASA (Eileen Collins, NASA Great Images database)"),
    Photo("chelsea", "CC0", "Stefan van der Walt"),
    Photo("coffee", "CC0", "Rachel Michetti, courtesy of Pikolo Espresso Bar"),
    Photo("rocket", "public domain", "SpaceX (DSCOVR launch on Falcon 9)"),
    Photo("hubble_deep_field", "public domain", "NASA (HubbleSite)"),
    Photo("brick", "CC0", "CC0Textures, Bricks25 (greyscale)"),
    Photo("grass", "CC0", "linolafett, DeviantArt Grass-01 (greyscale)"),
    Photo("gravel", "CC0", "CC0Textures, Gravel04 (greyscale)"),
    Photo("camera", "CC0", "Lav Varshney (greyscale)"),
)
"""The photographs used, with the licence scikit-image's documentation gives for each."""

CROP_SCALE = (0.45, 1.0)
"""A crop's side as a fraction of the largest window of the target's aspect ratio."""

HUE_SHIFT_DEGREES = 20.0
SATURATION_RANGE = (0.7, 1.3)
BRIGHTNESS_RANGE = (0.75, 1.2)
"""The colour shift of a crop (``model.compositing.colour_matrix``) is drawn from these."""

_loaded: dict[str, np.ndarray] = {}


def load(name: str) -> np.ndarray:
    """A ``skimage.data`` photograph as float32 in [0, 1]: HxWx3 colour or HxW grey.

    Decoded once per process.
    """
    if name not in _loaded:
        pixels = np.asarray(getattr(skimage.data, name)())
        _loaded[name] = pixels.astype(np.float32) / np.float32(255.0)
    return _loaded[name]


def _window(
    rng: np.random.Generator, photo_height: int, photo_width: int, aspect: float
) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a random crop with width / height close to ``aspect``."""
    full_width = min(photo_width, photo_height * aspect)
    scale = rng.uniform(*CROP_SCALE)
    width = max(1, round(full_width * scale))
    height = max(1, min(photo_height, round(width / aspect)))
    top = int(rng.integers(0, photo_height - height + 1))
    left = int(rng.integers(0, photo_width - width + 1))
    return top, left, height, width


def photo_crop(
    rng: np.random.Generator, height: int, width: int, *, turn: bool = False
) -> tuple[np.ndarray, dict]:
    """A random, colour-shifted crop of one of ``PHOTOS``, resized to ``height`` x ``width``.

    Parameters
    ----------
    turn : bool
        Also rotate by a random multiple of 90 degrees (for textures, which have no up).

    Returns
    -------
    pixels : ndarray, float32, shape (height, width, 3), values in [0, 1]
    info : dict
        JSON-ready provenance: ``source``, ``package``, ``version``, ``licence``, ``credit``,
        ``window`` [top, left, height, width] in the photo, ``flip``, ``quarter_turns``,
        ``palette`` (index into ``drawing.PALETTES`` that coloured a greyscale photo, else
        None), and the colour shift ``hue`` (degrees), ``saturation``, ``brightness``.

    The pixels are the window (a greyscale photo mapped through the palette, dark to light),
    turned by ``quarter_turns`` x 90 degrees (``np.rot90``), flipped left-right when ``flip``,
    resized, and multiplied per pixel by ``colour_matrix(hue, saturation, brightness)``,
    clipped to [0, 1].
    """
    photo = PHOTOS[int(rng.integers(len(PHOTOS)))]
    pixels = load(photo.name)
    turns = int(rng.integers(4)) if turn else 0
    # A quarter turn swaps the sides, so the window is cut to the turned aspect ratio.
    aspect = width / height if turns % 2 == 0 else height / width
    top, left, crop_height, crop_width = _window(rng, *pixels.shape[:2], aspect)
    flip = bool(rng.random() < 0.5)
    crop = pixels[top : top + crop_height, left : left + crop_width]
    palette = None
    if crop.ndim == 2:
        palette = int(rng.integers(len(drawing.PALETTES)))
        colours = drawing.PALETTES[palette]
        dark_to_light = colours[np.argsort(colours @ np.array([0.299, 0.587, 0.114]))]
        crop = drawing.gradient_map(crop, dark_to_light)
    crop = np.rot90(crop, turns)
    if flip:
        crop = crop[:, ::-1]
    shrinking = crop.shape[0] * crop.shape[1] > height * width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    crop = cv2.resize(np.ascontiguousarray(crop), (width, height), interpolation=interpolation)
    hue = float(rng.uniform(-HUE_SHIFT_DEGREES, HUE_SHIFT_DEGREES))
    saturation = float(rng.uniform(*SATURATION_RANGE))
    brightness = float(rng.uniform(*BRIGHTNESS_RANGE))
    shifted = cv2.transform(crop, colour_matrix(hue, saturation, brightness))
    info = {
        "source": photo.name,
        "package": PACKAGE,
        "version": skimage.__version__,
        "licence": photo.licence,
        "credit": photo.credit,
        "window": [top, left, crop_height, crop_width],
        "flip": flip,
        "quarter_turns": turns,
        "palette": palette,
        "hue": hue,
        "saturation": saturation,
        "brightness": brightness,
    }
    return np.clip(shifted, 0.0, 1.0).astype(np.float32), info
