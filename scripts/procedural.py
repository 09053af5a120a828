"""Procedural generators for synthetic matting material (private helper of synthesize.py).

Every generator is a pure function of a ``numpy.random.Generator`` and a size, so an item is
reproduced exactly from its seed. Images are float32 in [0, 1]: backgrounds HxWx3, foregrounds
an HxWx3 colour image plus an HxW alpha matte.

The foreground colour is the *object's own colour at every pixel*, also where alpha is low or
zero (it comes from a full-frame texture, and blurred objects are un-premultiplied), so
``alpha * fg + (1 - alpha) * bg`` is a physically sensible composite and the colour a matting
model is asked to recover is never garbage.

Foregrounds and backgrounds draw their colours from the same ``PALETTES``, so foreground
colours also occur in backgrounds, which is what makes colour-based matting hard.

Lengths are given for a 512-pixel image and scaled with the image, so ``--size 64`` gives the
same kinds of pictures, only smaller.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

FOREGROUND_FAMILIES = ("fur", "hair", "glass", "smoke", "lace", "motion", "defocus")
"""Foreground generators; each stresses a different part of matting (see ``make_foreground``)."""

BACKGROUND_ASPECTS = (1.0, 4 / 3, 3 / 4, 3 / 2, 2 / 3, 16 / 9)
"""Width / height ratios of backgrounds, so ``fit_background`` crops and rescales them."""

_AA_SHIFT = 4
"""Fractional bits of cv2 drawing coordinates: positions are exact to 1/16 pixel."""
_AA_SCALE = 1 << _AA_SHIFT


def _hex_palette(text: str) -> np.ndarray:
    colours = [[int(c[i : i + 2], 16) / 255.0 for i in (0, 2, 4)] for c in text.split()]
    return np.array(colours, dtype=np.float32)


PALETTES = tuple(
    _hex_palette(text)
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

_HAIR_COLOURS = _hex_palette("1c1410 3b2a20 6a4e3b a5784f d9b97c e8dcc6 8c3b1f 9a9a9a")
_SMOKE_COLOURS = _hex_palette("f2f2f2 c8ccd2 8f969e 5a6068 d9d2c5")


# ---------------------------------------------------------------------------------------------
# Building blocks


def _scale(height: int, width: int) -> float:
    """Multiplier from lengths designed at 512 pixels to this image."""
    return min(height, width) / 512.0


def _palette(rng: np.random.Generator) -> np.ndarray:
    """One of ``PALETTES``, shuffled and with a little colour jitter, shape (5, 3)."""
    colours = PALETTES[int(rng.integers(len(PALETTES)))][rng.permutation(5)]
    return np.clip(colours + rng.normal(0.0, 0.03, colours.shape), 0.0, 1.0).astype(np.float32)


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
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


def _coordinates(height: int, width: int, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates rotated by ``angle`` (radians), each HxW float32."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    cos, sin = math.cos(angle), math.sin(angle)
    return xs * cos + ys * sin, -xs * sin + ys * cos


def texture(rng: np.random.Generator, height: int, width: int, colours: np.ndarray) -> np.ndarray:
    """A colourful full-frame texture in the given palette, HxWx3 float32 in [0, 1].

    One of: fractal noise, wavy stripes, soft checks, marble veins, or polka dots.
    """
    s = _scale(height, width)
    style = int(rng.integers(5))
    if style == 0:
        values = fractal_noise(rng, height, width, cell=rng.uniform(40, 200) * s, octaves=5)
        return gradient_map(values, colours)
    u, v = _coordinates(height, width, rng.uniform(0, math.pi))
    period = max(rng.uniform(8, 48) * s, 3.0)
    if style == 1:
        warp = fractal_noise(rng, height, width, cell=120 * s, octaves=2) * rng.uniform(0, 3)
        values = 0.5 + 0.5 * np.sin(2 * math.pi * u / period + warp)
        return gradient_map(_smoothstep(0.3, 0.7, values), colours[:3])
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
        centre = (int(x * _AA_SCALE), int(y * _AA_SCALE))
        colour = tuple(float(c) * 255 for c in colours[pick])
        cv2.circle(canvas, centre, int(radius * _AA_SCALE), colour, -1, cv2.LINE_AA, _AA_SHIFT)
    return canvas.astype(np.float32) / 255.0


def _object_texture(
    rng: np.random.Generator, height: int, width: int, fill: np.ndarray | None
) -> np.ndarray:
    """An object's own colours: ``fill`` (a photo crop) when given, else a procedural texture."""
    return texture(rng, height, width, _palette(rng)) if fill is None else fill


def _fixed(points: np.ndarray) -> np.ndarray:
    """Float pixel coordinates (..., 2) to cv2's fixed-point int32 (see ``_AA_SHIFT``)."""
    return np.round(points * _AA_SCALE).astype(np.int32)


def _fill(height: int, width: int, polygons: list[np.ndarray]) -> np.ndarray:
    """Anti-aliased coverage of filled polygons, HxW float32 in [0, 1]."""
    canvas = np.zeros((height, width), dtype=np.uint8)
    cv2.fillPoly(canvas, [_fixed(p) for p in polygons], 255, cv2.LINE_AA, _AA_SHIFT)
    return canvas.astype(np.float32) / 255.0


def _blob(
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


def _outward_normals(outline: np.ndarray) -> np.ndarray:
    """Unit normals of a closed outline (N, 2), pointing away from its centroid."""
    tangent = np.roll(outline, -1, axis=0) - np.roll(outline, 1, axis=0)
    normal = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-6)
    outward = outline - outline.mean(axis=0)
    flip = np.sum(normal * outward, axis=1) < 0
    normal[flip] *= -1
    return normal


def _bezier(control: np.ndarray, steps: int) -> np.ndarray:
    """Sample Bezier curves: control (N, K, 2) -> points (N, steps, 2) (de Casteljau)."""
    t = np.linspace(0.0, 1.0, steps, dtype=np.float64)[None, :, None, None]
    points = np.repeat(control[:, None], steps, axis=1)
    while points.shape[2] > 1:
        points = points[:, :, :-1] * (1 - t) + points[:, :, 1:] * t
    return points[:, :, 0]


def _strands(
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
    fixed = _fixed(curves)
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
            cv2.polylines(canvas, lines, False, value, 1, cv2.LINE_AA, _AA_SHIFT)
            transmit *= 1.0 - canvas.astype(np.float32) / 255.0
    return 1.0 - transmit


def _over(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """Alpha of one layer over another (Porter-Duff), both HxW in [0, 1]."""
    return top + bottom * (1.0 - top)


def _kernel_line(length: float, angle: float) -> np.ndarray:
    """Normalised anti-aliased line kernel for motion blur, odd square float32."""
    size = 2 * math.ceil(length / 2) + 3
    kernel = np.zeros((size, size), dtype=np.uint8)
    half = np.array([math.cos(angle), math.sin(angle)]) * length / 2
    centre = np.array([size // 2, size // 2], dtype=np.float64)
    ends = _fixed(np.stack([centre - half, centre + half]))
    cv2.line(kernel, tuple(ends[0]), tuple(ends[1]), 255, 1, cv2.LINE_AA, _AA_SHIFT)
    kernel = kernel.astype(np.float32)
    return kernel / kernel.sum()


def _kernel_disk(radius: float) -> np.ndarray:
    """Normalised anti-aliased disk kernel (a lens' circle of confusion), odd square float32."""
    size = 2 * math.ceil(radius) + 3
    kernel = np.zeros((size, size), dtype=np.uint8)
    centre = (size // 2 * _AA_SCALE, size // 2 * _AA_SCALE)
    cv2.circle(kernel, centre, int(radius * _AA_SCALE), 255, -1, cv2.LINE_AA, _AA_SHIFT)
    kernel = kernel.astype(np.float32)
    return kernel / kernel.sum()


def _blur_object(
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
    s = _scale(height, width)
    canvas = np.zeros((height, width), dtype=np.uint8)
    centre = rng.random(2) * (width, height)
    size = rng.uniform(15, 160) * s
    kind = int(rng.integers(5))
    if kind == 0:
        axes = (int(size * _AA_SCALE), int(size * rng.uniform(0.3, 1.0) * _AA_SCALE))
        cv2.ellipse(
            canvas,
            tuple(_fixed(centre)),
            axes,
            rng.uniform(0, 180),
            0,
            360,
            255,
            -1,
            cv2.LINE_AA,
            _AA_SHIFT,
        )
    elif kind == 1:
        box = cv2.boxPoints(
            (tuple(centre), (size * 2, size * rng.uniform(0.2, 1.5)), rng.uniform(0, 180))
        )
        cv2.fillPoly(canvas, [_fixed(box)], 255, cv2.LINE_AA, _AA_SHIFT)
    elif kind == 2:
        outline = _blob(rng, tuple(centre), size, roughness=rng.uniform(0.2, 1.2), points=64)
        cv2.fillPoly(canvas, [_fixed(outline)], 255, cv2.LINE_AA, _AA_SHIFT)
    elif kind == 3:
        thickness = max(1, int(size * rng.uniform(0.1, 0.4)))
        axes = (int(size * _AA_SCALE), int(size * rng.uniform(0.5, 1.0) * _AA_SCALE))
        cv2.ellipse(
            canvas,
            tuple(_fixed(centre)),
            axes,
            rng.uniform(0, 180),
            0,
            rng.uniform(120, 360),
            255,
            thickness,
            cv2.LINE_AA,
            _AA_SHIFT,
        )
    else:
        control = (centre + rng.normal(0, size, (1, 4, 2))).astype(np.float64)
        curve = _bezier(control, 24)[0]
        thickness = max(1, int(rng.uniform(1, 12) * s))
        cv2.polylines(canvas, [_fixed(curve)], False, 255, thickness, cv2.LINE_AA, _AA_SHIFT)
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
    s = _scale(height, width)
    colours, other = _palette(rng), _palette(rng)
    if rng.random() < 0.6:
        image = texture(rng, height, width, colours)
    else:
        u, _ = _coordinates(height, width, rng.uniform(0, 2 * math.pi))
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
        depth = _smoothstep(0.35, 0.65, fractal_noise(rng, height, width, cell=300 * s, octaves=2))
        image += depth[..., None] * (blurred - image)
    light = fractal_noise(rng, height, width, cell=400 * s, octaves=2)
    image *= (0.75 + 0.4 * light)[..., None]
    image += rng.standard_normal(image.shape, dtype=np.float32) * rng.uniform(0.005, 0.03)
    return np.clip(image, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Foregrounds


def _fur(
    rng: np.random.Generator, height: int, width: int, fill: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """A textured silhouette with fur strands along its edge, sometimes with holes."""
    s = _scale(height, width)
    centre = (width * rng.uniform(0.4, 0.6), height * rng.uniform(0.4, 0.6))
    radius = min(height, width) * rng.uniform(0.22, 0.32)
    outline = _blob(rng, centre, radius, roughness=rng.uniform(0.1, 0.45))
    body = cv2.GaussianBlur(_fill(height, width, [outline]), (0, 0), 0.6)
    if rng.random() < 0.35:
        holes = [
            _blob(rng, tuple(centre + rng.normal(0, radius * 0.3, 2)), radius * 0.12, points=48)
            for _ in range(int(rng.integers(1, 4)))
        ]
        body *= 1.0 - _fill(height, width, holes)
    count = int(rng.uniform(800, 2400) * max(s, 0.25))
    index = rng.integers(0, len(outline), count)
    normals = _outward_normals(outline)
    jitter = rng.normal(0.0, 0.35, count)
    cos, sin = np.cos(jitter), np.sin(jitter)
    direction = np.stack(
        [
            normals[index, 0] * cos - normals[index, 1] * sin,
            normals[index, 0] * sin + normals[index, 1] * cos,
        ],
        axis=1,
    )
    length = (rng.uniform(6, 26, count) * s)[:, None]
    root = outline[index] - direction * rng.uniform(0, 4 * s, (count, 1))
    bend = np.stack([-direction[:, 1], direction[:, 0]], axis=1) * rng.normal(0, 0.3, (count, 1))
    control = np.stack(
        [root, root + direction * length * 0.5, root + (direction + bend) * length], axis=1
    )
    fur = _strands(height, width, _bezier(control, 5), rng.uniform(0.4, 1.0, count), tip_fade=2)
    alpha = _over(body, fur)
    colour = _object_texture(rng, height, width, fill)
    streaks = fractal_noise(rng, height, width, cell=6 * s + 2, octaves=2)
    colour = np.clip(colour * (0.8 + 0.4 * streaks)[..., None], 0.0, 1.0)
    return colour, alpha


def _hair(
    rng: np.random.Generator, height: int, width: int, fill: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """A head of hair seen from behind: an opaque crown and many thin Bezier strands."""
    s = _scale(height, width)
    centre = np.array([width * rng.uniform(0.4, 0.6), height * rng.uniform(0.22, 0.32)])
    axes = np.array([width * rng.uniform(0.16, 0.24), height * rng.uniform(0.13, 0.19)])
    theta = np.linspace(0, 2 * math.pi, 180, endpoint=False)
    crown_outline = centre + axes * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    crown = cv2.GaussianBlur(_fill(height, width, [crown_outline]), (0, 0), 0.8)
    count = int(rng.uniform(700, 1600) * max(s, 0.3))
    angle = rng.uniform(-0.15 * math.pi, 1.15 * math.pi, count)
    root = centre + axes * np.stack([np.cos(angle), np.sin(angle)], axis=1) * 0.97
    outward = np.stack([np.cos(angle) * 0.6, np.full(count, 1.0)], axis=1)
    stray = rng.random(count) < 0.06
    outward[stray] = np.stack([np.cos(angle[stray]), np.sin(angle[stray])], axis=1) * 1.5
    outward /= np.linalg.norm(outward, axis=1, keepdims=True)
    length = height * rng.uniform(0.3, 0.7) * rng.uniform(0.6, 1.0, count)
    wave = rng.uniform(0, 0.08) * width
    phase = rng.uniform(0, 2 * math.pi)
    control = [root]
    for step in (1, 2, 3):
        point = root + outward * (length * step / 3)[:, None]
        sway = wave * np.sin(point[:, 1] / height * 6.0 + phase) + rng.normal(0, 4 * s, count)
        control.append(point + np.stack([sway, np.zeros(count)], axis=1))
    curves = _bezier(np.stack(control, axis=1), 12)
    opacity = np.where(stray, 0.45, rng.uniform(0.45, 1.0, count))
    alpha = _over(crown, _strands(height, width, curves, opacity, tip_fade=4))
    if rng.random() < 0.7:
        base = _HAIR_COLOURS[int(rng.integers(len(_HAIR_COLOURS)))]
    else:
        base = _palette(rng)[0]
    if fill is not None:
        base = fill
    streaks = fractal_noise(rng, height, width, cell=24 * s + 2, octaves=3, stretch=(8.0, 1.0))
    shade = fractal_noise(rng, height, width, cell=200 * s, octaves=2)
    colour = base * (0.55 + 0.6 * streaks + 0.3 * shade)[..., None]
    return np.clip(colour, 0.0, 1.0).astype(np.float32), alpha


def _glass(
    rng: np.random.Generator, height: int, width: int, fill: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """A glass vessel: faint body, denser Fresnel rim, near-opaque specular highlights."""
    s = _scale(height, width)
    cx, cy = width * rng.uniform(0.42, 0.58), height * rng.uniform(0.45, 0.55)
    half_w, half_h = width * rng.uniform(0.15, 0.28), height * rng.uniform(0.25, 0.38)
    kind = int(rng.integers(3))
    if kind == 0:
        theta = np.linspace(0, 2 * math.pi, 180, endpoint=False)
        polygons = [np.stack([cx + half_w * np.cos(theta), cy + half_h * np.sin(theta)], axis=1)]
    else:
        body = np.array(
            [
                [cx - half_w, cy - half_h * 0.3],
                [cx + half_w, cy - half_h * 0.3],
                [cx + half_w, cy + half_h],
                [cx - half_w, cy + half_h],
            ]
        )
        neck_w = half_w * (0.35 if kind == 1 else 0.9)
        neck = np.array(
            [
                [cx - neck_w, cy - half_h],
                [cx + neck_w, cy - half_h],
                [cx + half_w, cy - half_h * 0.3],
                [cx - half_w, cy - half_h * 0.3],
            ]
        )
        polygons = [body, neck]
    mask = _fill(height, width, polygons)
    inside = cv2.distanceTransform((mask > 0.5).astype(np.uint8), cv2.DIST_L2, 5)
    rim = np.exp(-inside / (rng.uniform(4, 14) * s))
    highlight = np.zeros((height, width), dtype=np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        centre = (cx + rng.uniform(-0.7, 0.7) * half_w, cy + rng.uniform(-0.6, 0.6) * half_h)
        axes = (rng.uniform(2, 10) * s + 1, half_h * rng.uniform(0.2, 0.6))
        cv2.ellipse(
            highlight,
            tuple(_fixed(np.array(centre))),
            (int(axes[0] * _AA_SCALE), int(axes[1] * _AA_SCALE)),
            rng.uniform(-10, 10),
            0,
            360,
            255,
            -1,
            cv2.LINE_AA,
            _AA_SHIFT,
        )
    shine = cv2.GaussianBlur(highlight.astype(np.float32) / 255.0, (0, 0), 1.5 * s + 0.5) * mask
    variation = fractal_noise(rng, height, width, cell=150 * s, octaves=3)
    body_alpha = rng.uniform(0.05, 0.3) + 0.08 * variation + rng.uniform(0.3, 0.6) * rim
    alpha = _over(shine * rng.uniform(0.7, 0.95), np.clip(body_alpha, 0.0, 1.0) * mask)
    tint = 0.5 + 0.5 * _palette(rng)[int(rng.integers(5))]
    if fill is not None:
        tint = 0.5 + 0.5 * fill
    ys = np.linspace(0.85, 1.1, height, dtype=np.float32)[:, None, None]
    colour = tint * ys * (1.0 - 0.35 * rim)[..., None]
    colour += shine[..., None] * (1.0 - colour)
    return np.clip(colour, 0.0, 1.0).astype(np.float32), np.clip(alpha, 0.0, 1.0)


def _smoke(
    rng: np.random.Generator, height: int, width: int, fill: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """A rising plume of smoke: low, noisy alpha fading out at its edges."""
    s = _scale(height, width)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    rise = 1.0 - ys / height
    path = width * (
        0.5 + rng.uniform(0.05, 0.18) * np.sin(rise * rng.uniform(3, 8) + rng.uniform(0, 6))
    )
    spread = width * (0.04 + rng.uniform(0.1, 0.2) * rise)
    envelope = np.exp(-(((xs - path) / spread) ** 2))
    window = _smoothstep(0.0, 0.12, rise) * _smoothstep(0.0, 0.2, 1.0 - rise)
    window *= _smoothstep(0.0, 0.05, xs / width) * _smoothstep(0.0, 0.05, 1.0 - xs / width)
    density = fractal_noise(rng, height, width, cell=rng.uniform(80, 200) * s, octaves=5)
    alpha = envelope * window * _smoothstep(0.2, 0.85, density) * rng.uniform(0.35, 0.85)
    if rng.random() < 0.75:
        base = _SMOKE_COLOURS[int(rng.integers(len(_SMOKE_COLOURS)))]
    else:
        base = _palette(rng)[int(rng.integers(5))]
    if fill is not None:
        base = fill
    shade = fractal_noise(rng, height, width, cell=120 * s, octaves=3)
    colour = base * (0.8 + 0.35 * shade)[..., None]
    return np.clip(colour, 0.0, 1.0).astype(np.float32), np.clip(alpha, 0.0, 1.0).astype(np.float32)


def _lace(
    rng: np.random.Generator, height: int, width: int, fill: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Sheer fabric or lace: a wavy-edged cloth, semi-transparent, with a lattice of holes."""
    s = _scale(height, width)
    centre = np.array([width * rng.uniform(0.45, 0.55), height * rng.uniform(0.45, 0.55)])
    size = np.array([width * rng.uniform(0.25, 0.4), height * rng.uniform(0.25, 0.4)])
    t = np.linspace(-1, 1, 60)
    wave = rng.uniform(0.0, 0.06) * np.sin(t * rng.uniform(6, 20) + rng.uniform(0, 6))
    edges = [
        np.stack([t, -1 - wave], axis=1),
        np.stack([1 + wave, t], axis=1),
        np.stack([-t, 1 + wave], axis=1),
        np.stack([-1 - wave, -t], axis=1),
    ]
    angle = rng.uniform(-0.4, 0.4)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    outline = centre + (np.concatenate(edges) * size) @ rotation.T
    cloth = _fill(height, width, [outline])
    u, v = _coordinates(height, width, rng.uniform(0, math.pi))
    period = max(rng.uniform(10, 32) * s, 4.0)
    if rng.random() < 0.5:
        v = v + (np.floor(u / period) % 2) * period / 2
    du = (u / period - np.round(u / period)) * period
    dv = (v / period - np.round(v / period)) * period
    distance = np.sqrt(du * du + dv * dv)
    radius = period * rng.uniform(0.2, 0.4)
    holes = _smoothstep(radius + 0.7, radius - 0.7, distance)
    weave = 0.5 + 0.5 * np.sin(2 * math.pi * u / max(3.0 * s, 1.5)) * np.sin(
        2 * math.pi * v / max(3.0 * s, 1.5)
    )
    opacity = rng.uniform(0.35, 0.9) + 0.1 * weave
    alpha = cloth * np.clip(opacity, 0.0, 1.0) * (1.0 - holes)
    if fill is None and rng.random() < 0.3:
        colour = np.empty((height, width, 3), dtype=np.float32)
        colour[:] = _hex_palette(rng.choice(["f5f0e6", "fffaf0", "1a1a1a", "e8d5c4"]))[0]
        colour *= (0.9 + 0.1 * weave)[..., None]
    else:
        colour = _object_texture(rng, height, width, fill)
    return np.clip(colour, 0.0, 1.0).astype(np.float32), alpha.astype(np.float32)


def _solid_object(
    rng: np.random.Generator, height: int, width: int, fill: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """A sharp textured object of one to three overlapping blobs, sometimes with a hole."""
    radius = min(height, width) * rng.uniform(0.16, 0.24)
    outlines = [
        _blob(
            rng,
            (width * rng.uniform(0.38, 0.62), height * rng.uniform(0.38, 0.62)),
            radius * rng.uniform(0.6, 1.0),
            roughness=rng.uniform(0.1, 0.6),
            aspect=rng.uniform(0.7, 1.4),
        )
        for _ in range(int(rng.integers(1, 4)))
    ]
    alpha = _fill(height, width, outlines)
    if rng.random() < 0.4:
        hole_centre = outlines[0].mean(axis=0)
        alpha *= 1.0 - _fill(height, width, [_blob(rng, tuple(hole_centre), radius * 0.25)])
    return _object_texture(rng, height, width, fill), alpha


def _motion(
    rng: np.random.Generator, height: int, width: int, fill: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """An object streaked by linear motion blur (an anti-aliased line kernel)."""
    colour, alpha = _solid_object(rng, height, width, fill)
    length = max(rng.uniform(10, 50) * _scale(height, width), 3.0)
    return _blur_object(colour, alpha, _kernel_line(length, rng.uniform(0, math.pi)))


def _defocus(
    rng: np.random.Generator, height: int, width: int, fill: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """An out-of-focus object (disk kernel, a lens' circle of confusion)."""
    colour, alpha = _solid_object(rng, height, width, fill)
    radius = max(rng.uniform(3, 14) * _scale(height, width), 1.0)
    return _blur_object(colour, alpha, _kernel_disk(radius))


_FOREGROUNDS = {
    "fur": _fur,
    "hair": _hair,
    "glass": _glass,
    "smoke": _smoke,
    "lace": _lace,
    "motion": _motion,
    "defocus": _defocus,
}


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
    if family not in _FOREGROUNDS:
        raise ValueError(f"unknown foreground family {family!r}; choose from {FOREGROUND_FAMILIES}")
    colour, alpha = _FOREGROUNDS[family](rng, height, width, fill)
    return colour.astype(np.float32), alpha.astype(np.float32)
