"""Building blocks of the procedural generators (``scripts/procedural.py``): colour palettes,
noise and textures, anti-aliased drawing (polygons, outlines, Bezier strands), blur kernels and
the premultiplied blur of an RGBA object.

Images are float32 in [0, 1]. Lengths are given for a 512-pixel image and scaled with the image
(``length_scale``).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

AA_SHIFT = 4
"""Fractional bits of cv2 drawing coordinates: positions are exact to 1/16 pixel."""
AA_SCALE = 1 << AA_SHIFT


def hex_palette(text: str) -> np.ndarray:
    colours = [[int(c[i : i + 2], 16) / 255.0 for i in (0, 2, 4)] for c in text.split()]
    return np.array(colours, dtype=np.float32)


PALETTES = tuple(
    hex_palette(text)
    for text in (
        "264653 2a9d8f e9c46a f4a261 e76f51",
        "0b132b 1c2541 3a506b 5bc0be 6fffe9",
        "5f0f40 9a031e fb8b24 e36414 0f4c5c",
        "283618 606c38 fefae0 dda15e bc6c25",
        "03045e 0077b6 00b4d8 90e0ef caf0f8",
        "d8e2dc ffe5d9 ffcad4 f4acb7 9d8189",
        "1a1423 3d1e6d 8661c1 be97c6 efbcd5",
        "2b2d42 8d99ae edf2f4 ef233c d90429",
        "582f0e 7f4f24 936639 a68a64 b6ad90",
        "ff595e ffca3a 8ac926 1982c4 6a4c93",
        "0d1b2a 1b263b 415a77 778da9 e0e1dd",
        "ccd5ae e9edc9 fefae0 faedcd d4a373",
    )
)
"""Colour palettes (5 colours each, RGB in [0, 1]) shared by backgrounds and foregrounds."""


def length_scale(height: int, width: int) -> float:
    """Multiplier from lengths designed at 512 pixels to this image."""
    return min(height, width) / 512.0


def random_palette(rng: np.random.Generator) -> np.ndarray:
    """One of ``PALETTES``, shuffled and with a little colour jitter, shape (5, 3)."""
    colours = PALETTES[int(rng.integers(len(PALETTES)))][rng.permutation(5)]
    return np.clip(colours + rng.normal(0.0, 0.03, colours.shape), 0.0, 1.0).astype(np.float32)


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def fractal_noise(
    rng: np.random.Generator,
    height: int,
    width: int,
    *,
    cell: float,
    octaves: int = 4,
    persistence: float = 0.5,
    stretch: tuple[float, float] = (1.0, 1.0),
) -> np.ndarray:
    """Smooth value noise: octaves of bicubically upsampled random grids.

    Parameters
    ----------
    cell : float
        Size in pixels of the coarsest octave's features; each octave halves it.
    persistence : float
        Amplitude ratio between successive octaves.
    stretch : (sy, sx)
        Feature elongation along y and x (``(4, 1)`` gives vertical streaks).

    Returns
    -------
    ndarray, float32, shape (height, width), min-max normalised to [0, 1].
    """
    total = np.zeros((height, width), dtype=np.float32)
    amplitude = 1.0
    for octave in range(octaves):
        size = max(cell / 2**octave, 2.0)
        grid_h = max(2, math.ceil(height / (size * stretch[0])) + 1)
        grid_w = max(2, math.ceil(width / (size * stretch[1])) + 1)
        grid = rng.random((grid_h, grid_w), dtype=np.float32)
        total += amplitude * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        amplitude *= persistence
    low, high = float(total.min()), float(total.max())
    return (total - low) / max(high - low, 1e-6)


def gradient_map(values: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Map HxW values in [0, 1] through evenly spaced colour stops (K, 3) to HxWx3 float32."""
    stops = np.linspace(0.0, 1.0, len(colours))
    flat = values.ravel()
    channels = [np.interp(flat, stops, colours[:, c]).astype(np.float32) for c in range(3)]
    return np.stack(channels, axis=1).reshape(*values.shape, 3)


def rotated_coordinates(height: int, width: int, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates rotated by ``angle`` (radians), each HxW float32."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    cos, sin = math.cos(angle), math.sin(angle)
    return xs * cos + ys * sin, -xs * sin + ys * cos


def texture(rng: np.random.Generator, height: int, width: int, colours: np.ndarray) -> np.ndarray:
    """A colourful full-frame texture in the given palette, HxWx3 float32 in [0, 1].

    One of: fractal noise, wavy stripes, soft checks, marble veins, or polka dots.
    """
    s = length_scale(height, width)
    style = int(rng.integers(5))
    if style == 0:
        values = fractal_noise(rng, height, width, cell=rng.uniform(40, 200) * s, octaves=5)
        return gradient_map(values, colours)
    u, v = rotated_coordinates(height, width, rng.uniform(0, math.pi))
    period = max(rng.uniform(8, 48) * s, 3.0)
    if style == 1:
        warp = fractal_noise(rng, height, width, cell=120 * s, octaves=2) * rng.uniform(0, 3)
        values = 0.5 + 0.5 * np.sin(2 * math.pi * u / period + warp)
        return gradient_map(smoothstep(0.3, 0.7, values), colours[:3])
    if style == 2:
        values = np.sin(math.pi * u / period) * np.sin(math.pi * v / period)
        return gradient_map(0.5 + 0.5 * np.tanh(4.0 * values), colours[1:4])
    if style == 3:
        warp = fractal_noise(rng, height, width, cell=160 * s, octaves=4) * rng.uniform(4, 10)
        values = np.abs(np.sin(2 * math.pi * u / (period * 4) + warp))
        return gradient_map(values, colours)
    image = np.empty((height, width, 3), dtype=np.float32)
    image[:] = colours[0]
    count = int(rng.integers(20, 80))
    centres = rng.random((count, 2)) * (width, height)
    radii = np.maximum(rng.uniform(4, 30, count) * s, 1.0)
    canvas = (image * 255).astype(np.uint8)
    for (x, y), radius, pick in zip(centres, radii, rng.integers(1, 5, count), strict=True):
        centre = (int(x * AA_SCALE), int(y * AA_SCALE))
        colour = tuple(float(c) * 255 for c in colours[pick])
        cv2.circle(canvas, centre, int(radius * AA_SCALE), colour, -1, cv2.LINE_AA, AA_SHIFT)
    return canvas.astype(np.float32) / 255.0


def object_texture(
    rng: np.random.Generator, height: int, width: int, fill: np.ndarray | None
) -> np.ndarray:
    """An object's own colours: ``fill`` (a photo crop) when given, else a procedural texture."""
    return texture(rng, height, width, random_palette(rng)) if fill is None else fill


def fixed_point(points: np.ndarray) -> np.ndarray:
    """Float pixel coordinates (..., 2) to cv2's fixed-point int32 (see ``AA_SHIFT``)."""
    return np.round(points * AA_SCALE).astype(np.int32)


def fill_polygons(height: int, width: int, polygons: list[np.ndarray]) -> np.ndarray:
    """Anti-aliased coverage of filled polygons, HxW float32 in [0, 1]."""
    canvas = np.zeros((height, width), dtype=np.uint8)
    cv2.fillPoly(canvas, [fixed_point(p) for p in polygons], 255, cv2.LINE_AA, AA_SHIFT)
    return canvas.astype(np.float32) / 255.0


def blob(
    rng: np.random.Generator,
    centre: tuple[float, float],
    radius: float,
    *,
    roughness: float = 0.25,
    aspect: float = 1.0,
    points: int = 240,
) -> np.ndarray:
    """A smooth random closed outline (points, 2): a circle with random low harmonics."""
    theta = np.linspace(0.0, 2 * math.pi, points, endpoint=False)
    r = np.ones_like(theta)
    for k in range(2, 7):
        r += roughness * rng.uniform(-1, 1) / k * np.sin(k * theta + rng.uniform(0, 2 * math.pi))
    r = np.maximum(r, 0.3) * radius
    return np.stack(
        [centre[0] + r * np.cos(theta) * aspect, centre[1] + r * np.sin(theta) / aspect], axis=1
    )


def outward_normals(outline: np.ndarray) -> np.ndarray:
    """Unit normals of a closed outline (N, 2), pointing away from its centroid."""
    tangent = np.roll(outline, -1, axis=0) - np.roll(outline, 1, axis=0)
    normal = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-6)
    outward = outline - outline.mean(axis=0)
    flip = np.sum(normal * outward, axis=1) < 0
    normal[flip] *= -1
    return normal


def bezier(control: np.ndarray, steps: int) -> np.ndarray:
    """Sample Bezier curves: control (N, K, 2) -> points (N, steps, 2) (de Casteljau)."""
    t = np.linspace(0.0, 1.0, steps, dtype=np.float64)[None, :, None, None]
    points = np.repeat(control[:, None], steps, axis=1)
    while points.shape[2] > 1:
        points = points[:, :, :-1] * (1 - t) + points[:, :, 1:] * t
    return points[:, :, 0]


def draw_strands(
    height: int, width: int, curves: np.ndarray, opacity: np.ndarray, tip_fade: int
) -> np.ndarray:
    """Anti-aliased 1-pixel strands, accumulated like thin translucent fibres.

    Parameters
    ----------
    curves : ndarray, shape (N, P, 2)
        Each strand as a polyline of P points, root first.
    opacity : ndarray, shape (N,)
        Per-strand opacity in (0, 1]; strands are bucketed into a few levels.
    tip_fade : int
        How many of the last segments fade linearly to transparent at the tip.

    Returns
    -------
    ndarray, float32, shape (H, W): ``1 - prod(1 - a_i)`` over the drawn layers, so crossing
    strands get denser, as hair does.
    """
    segments = curves.shape[1] - 1
    levels = np.array([1.0, 0.7, 0.45])
    bucket = np.argmin(np.abs(opacity[:, None] - levels[None]), axis=1)
    transmit = np.ones((height, width), dtype=np.float32)
    canvas = np.zeros((height, width), dtype=np.uint8)
    fixed = fixed_point(curves)
    for level_index, level in enumerate(levels):
        chosen = fixed[bucket == level_index]
        if not len(chosen):
            continue
        for j in range(segments):
            fade = min(1.0, (segments - j) / (tip_fade + 1)) if tip_fade else 1.0
            value = round(255 * level * fade)
            if value == 0:
                continue
            canvas[:] = 0
            lines = np.ascontiguousarray(chosen[:, j : j + 2])
            cv2.polylines(canvas, lines, False, value, 1, cv2.LINE_AA, AA_SHIFT)
            transmit *= 1.0 - canvas.astype(np.float32) / 255.0
    return 1.0 - transmit


def over(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """Alpha of one layer over another (Porter-Duff), both HxW in [0, 1]."""
    return top + bottom * (1.0 - top)


def kernel_line(length: float, angle: float) -> np.ndarray:
    """Normalised anti-aliased line kernel for motion blur, odd square float32."""
    size = 2 * math.ceil(length / 2) + 3
    kernel = np.zeros((size, size), dtype=np.uint8)
    half = np.array([math.cos(angle), math.sin(angle)]) * length / 2
    centre = np.array([size // 2, size // 2], dtype=np.float64)
    ends = fixed_point(np.stack([centre - half, centre + half]))
    cv2.line(kernel, tuple(ends[0]), tuple(ends[1]), 255, 1, cv2.LINE_AA, AA_SHIFT)
    kernel = kernel.astype(np.float32)
    return kernel / kernel.sum()


def kernel_disk(radius: float) -> np.ndarray:
    """Normalised anti-aliased disk kernel (a lens' circle of confusion), odd square float32."""
    size = 2 * math.ceil(radius) + 3
    kernel = np.zeros((size, size), dtype=np.uint8)
    centre = (size // 2 * AA_SCALE, size // 2 * AA_SCALE)
    cv2.circle(kernel, centre, int(radius * AA_SCALE), 255, -1, cv2.LINE_AA, AA_SHIFT)
    kernel = kernel.astype(np.float32)
    return kernel / kernel.sum()


def blur_object(
    colour: np.ndarray, alpha: np.ndarray, kernel: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Blur an RGBA object the way a camera does: on premultiplied colour.

    ``alpha' = k * alpha`` and ``F' = (k * (alpha F)) / alpha'``; where ``alpha'`` is nearly 0
    the un-blurred colour is kept, so F stays the object's colour instead of 0/0 noise.
    """
    blurred_alpha = cv2.filter2D(alpha, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    premultiplied = cv2.filter2D(
        colour * alpha[..., None], -1, kernel, borderType=cv2.BORDER_CONSTANT
    )
    safe = blurred_alpha > 1.0 / 512.0
    unpremultiplied = premultiplied / np.maximum(blurred_alpha, 1e-6)[..., None]
    colour = np.where(safe[..., None], unpremultiplied, colour)
    return np.clip(colour, 0.0, 1.0), np.clip(blurred_alpha, 0.0, 1.0)
