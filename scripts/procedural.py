"""Procedural generators for synthetic matting material (private helper of synthesize.py).

Every generator is a pure function of a ``numpy.random.Generator`` and a size, so an item is
reproduced exactly from its seed. Images are float32 in [0, 1]: backgrounds HxWx3, foregrounds
an HxWx3 colour image plus an HxW alpha matte.

The foreground colour is the *object's own colour at every pixel*, also where alpha is low or
zero (it comes from a full-frame texture, and blurred objects are un-premultiplied), so
``alpha * fg + (1 - alpha) * bg`` is a physically sensible composite and the colour a matting
model is asked to recover is never garbage.

Foregrounds and backgrounds draw their colours from the same ``PALETTES``, so foreground
colours also occur in backgrounds, which is what makes colour-based matting hard. The palettes
and the other building blocks (noise, textures, anti-aliased drawing, blur kernels) are in
``scripts/drawing.py``; the foreground families, one generator each, in
``scripts/foregrounds.py``; this module makes the backgrounds and picks a family.

Lengths are given for a 512-pixel image and scaled with the image, so ``--size 64`` gives the
same kinds of pictures, only smaller.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from scripts.drawing import (
    AA_SCALE,
    AA_SHIFT,
    bezier,
    blob,
    fixed_point,
    fractal_noise,
    gradient_map,
    length_scale,
    random_palette,
    rotated_coordinates,
    smoothstep,
    texture,
)
from scripts.foregrounds import GENERATORS

FOREGROUND_FAMILIES = ("fur", "hair", "glass", "smoke", "lace", "motion", "defocus")
"""Foreground generators; each stresses a different part of matting (see ``make_foreground``)."""

BACKGROUND_ASPECTS = (1.0, 4 / 3, 3 / 4, 3 / 2, 2 / 3, 16 / 9)
"""Width / height ratios of backgrounds, so ``fit_background`` crops and rescales them."""


# ---------------------------------------------------------------------------------------------
# Backgrounds


def background_size(rng: np.random.Generator, size: int) -> tuple[int, int]:
    """(height, width) of a background: 1.1-1.6x ``size`` on the long side, a random aspect."""
    aspect = BACKGROUND_ASPECTS[int(rng.integers(len(BACKGROUND_ASPECTS)))]
    long_side = size * rng.uniform(1.1, 1.6)
    if aspect >= 1.0:
        return max(1, round(long_side / aspect)), max(1, round(long_side))
    return max(1, round(long_side)), max(1, round(long_side * aspect))


def _shape_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """One random anti-aliased shape (uint8 HxW): ellipse, box, polygon, ring or thick curve."""
    s = length_scale(height, width)
    canvas = np.zeros((height, width), dtype=np.uint8)
    centre = rng.random(2) * (width, height)
    size = rng.uniform(15, 160) * s
    kind = int(rng.integers(5))
    if kind == 0:
        axes = (int(size * AA_SCALE), int(size * rng.uniform(0.3, 1.0) * AA_SCALE))
        cv2.ellipse(
            canvas,
            tuple(fixed_point(centre)),
            axes,
            rng.uniform(0, 180),
            0,
            360,
            255,
            -1,
            cv2.LINE_AA,
            AA_SHIFT,
        )
    elif kind == 1:
        box = cv2.boxPoints(
            (tuple(centre), (size * 2, size * rng.uniform(0.2, 1.5)), rng.uniform(0, 180))
        )
        cv2.fillPoly(canvas, [fixed_point(box)], 255, cv2.LINE_AA, AA_SHIFT)
    elif kind == 2:
        outline = blob(rng, tuple(centre), size, roughness=rng.uniform(0.2, 1.2), points=64)
        cv2.fillPoly(canvas, [fixed_point(outline)], 255, cv2.LINE_AA, AA_SHIFT)
    elif kind == 3:
        thickness = max(1, int(size * rng.uniform(0.1, 0.4)))
        axes = (int(size * AA_SCALE), int(size * rng.uniform(0.5, 1.0) * AA_SCALE))
        cv2.ellipse(
            canvas,
            tuple(fixed_point(centre)),
            axes,
            rng.uniform(0, 180),
            0,
            rng.uniform(120, 360),
            255,
            thickness,
            cv2.LINE_AA,
            AA_SHIFT,
        )
    else:
        control = (centre + rng.normal(0, size, (1, 4, 2))).astype(np.float64)
        curve = bezier(control, 24)[0]
        thickness = max(1, int(rng.uniform(1, 12) * s))
        cv2.polylines(canvas, [fixed_point(curve)], False, 255, thickness, cv2.LINE_AA, AA_SHIFT)
    return canvas


def make_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A cluttered, textured, photo-like opaque background.

    A textured or gradient base, then 15-45 shapes filled with flat colours or textures from
    two palettes, some of them out of focus; finally a depth-of-field blur over part of the
    frame, uneven lighting and sensor grain.

    Returns
    -------
    ndarray, float32, shape (height, width, 3), values in [0, 1].
    """
    s = length_scale(height, width)
    colours, other = random_palette(rng), random_palette(rng)
    if rng.random() < 0.6:
        image = texture(rng, height, width, colours)
    else:
        u, _ = rotated_coordinates(height, width, rng.uniform(0, 2 * math.pi))
        image = gradient_map((u - u.min()) / max(float(np.ptp(u)), 1.0), colours[:3])
    fills = [texture(rng, height, width, colours), texture(rng, height, width, other)]
    for _ in range(int(rng.integers(15, 46))):
        mask = _shape_mask(rng, height, width)
        left, top, box_w, box_h = cv2.boundingRect(mask)
        if box_w == 0 or box_h == 0:
            continue
        window = (slice(top, top + box_h), slice(left, left + box_w))
        coverage = mask[window].astype(np.float32) / 255.0
        if rng.random() < 0.5:
            colour = np.concatenate([colours, other])[int(rng.integers(10))]
            fill = np.broadcast_to(colour, (box_h, box_w, 3))
        else:
            pick = fills[int(rng.integers(2))][window]
            fill = np.clip(pick * rng.uniform(0.6, 1.3), 0.0, 1.0)
        if rng.random() < 0.3:
            sigma = rng.uniform(1.0, 6.0) * s
            coverage = cv2.GaussianBlur(coverage, (0, 0), sigma)
        image[window] += coverage[..., None] * (fill - image[window])
    if rng.random() < 0.7:
        blurred = cv2.GaussianBlur(image, (0, 0), rng.uniform(2.0, 8.0) * s)
        depth = smoothstep(0.35, 0.65, fractal_noise(rng, height, width, cell=300 * s, octaves=2))
        image += depth[..., None] * (blurred - image)
    light = fractal_noise(rng, height, width, cell=400 * s, octaves=2)
    image *= (0.75 + 0.4 * light)[..., None]
    image += rng.standard_normal(image.shape, dtype=np.float32) * rng.uniform(0.005, 0.03)
    return np.clip(image, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Foregrounds


def make_foreground(
    family: str,
    rng: np.random.Generator,
    height: int,
    width: int,
    fill: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A foreground of one family.

    Families: ``fur`` (silhouette with fur strands on its edge, sometimes holes), ``hair``
    (hundreds of thin anti-aliased Bezier strands), ``glass`` (low alpha, rim gradient,
    highlights), ``smoke`` (soft, noisy, low alpha), ``lace`` (sheer fabric with holes),
    ``motion`` and ``defocus`` (blurred objects, premultiplied blur).

    Parameters
    ----------
    fill : ndarray, float32, shape (height, width, 3), values in [0, 1], optional
        The object's texture, e.g. a photo crop (``scripts/photos.py``), in place of a
        procedural one: it fills the textured families (fur, lace, motion, defocus) and is
        shaded like the flat colour it replaces in the others (hair streaks, glass tint and
        rim, smoke shading). Without it the result is the same as before the option existed.

    Returns
    -------
    colour : ndarray, float32, shape (height, width, 3), values in [0, 1]
        The object's colour everywhere, also where alpha is low.
    alpha : ndarray, float32, shape (height, width), values in [0, 1]
        Has soft values (0 < alpha < 1) and is neither empty nor fully opaque.
    """
    if family not in GENERATORS:
        raise ValueError(f"unknown foreground family {family!r}; choose from {FOREGROUND_FAMILIES}")
    colour, alpha = GENERATORS[family](rng, height, width, fill)
    return colour.astype(np.float32), alpha.astype(np.float32)
