"""The foreground families of ``scripts/procedural.py``, one generator each.

Each is ``(rng, height, width, fill) -> (colour, alpha)``: colour float32 (H, W, 3) and alpha
float32 (H, W), both in [0, 1], the colour the object's own at every pixel, also where alpha is
low; ``fill`` optionally replaces the procedural texture (see ``procedural.make_foreground``).
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
    blur_object,
    draw_strands,
    fill_polygons,
    fixed_point,
    fractal_noise,
    hex_palette,
    kernel_disk,
    kernel_line,
    length_scale,
    object_texture,
    outward_normals,
    over,
    random_palette,
    rotated_coordinates,
    smoothstep,
)

_HAIR_COLOURS = hex_palette("1c1410 3b2a20 6a4e3b a5784f d9b97c e8dcc6 8c3b1f 9a9a9a")
_SMOKE_COLOURS = hex_palette("f2f2f2 c8ccd2 8f969e 5a6068 d9d2c5")


def _fur(
    rng: np.random.Generator, height: int, width: int, fill: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """A textured silhouette with fur strands along its edge, sometimes with holes."""
    s = length_scale(height, width)
    centre = (width * rng.uniform(0.4, 0.6), height * rng.uniform(0.4, 0.6))
    radius = min(height, width) * rng.uniform(0.22, 0.32)
    outline = blob(rng, centre, radius, roughness=rng.uniform(0.1, 0.45))
    body = cv2.GaussianBlur(fill_polygons(height, width, [outline]), (0, 0), 0.6)
    if rng.random() < 0.35:
        holes = [
            blob(rng, tuple(centre + rng.normal(0, radius * 0.3, 2)), radius * 0.12, points=48)
            for _ in range(int(rng.integers(1, 4)))
        ]
        body *= 1.0 - fill_polygons(height, width, holes)
    count = int(rng.uniform(800, 2400) * max(s, 0.25))
    index = rng.integers(0, len(outline), count)
    normals = outward_normals(outline)
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
    fur = draw_strands(height, width, bezier(control, 5), rng.uniform(0.4, 1.0, count), tip_fade=2)
    alpha = over(body, fur)
    colour = object_texture(rng, height, width, fill)
    streaks = fractal_noise(rng, height, width, cell=6 * s + 2, octaves=2)
    colour = np.clip(colour * (0.8 + 0.4 * streaks)[..., None], 0.0, 1.0)
    return colour, alpha


def _hair(
    rng: np.random.Generator, height: int, width: int, fill: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """A head of hair seen from behind: an opaque crown and many thin Bezier strands."""
    s = length_scale(height, width)
    centre = np.array([width * rng.uniform(0.4, 0.6), height * rng.uniform(0.22, 0.32)])
    axes = np.array([width * rng.uniform(0.16, 0.24), height * rng.uniform(0.13, 0.19)])
    theta = np.linspace(0, 2 * math.pi, 180, endpoint=False)
    crown_outline = centre + axes * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    crown = cv2.GaussianBlur(fill_polygons(height, width, [crown_outline]), (0, 0), 0.8)
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
    curves = bezier(np.stack(control, axis=1), 12)
    opacity = np.where(stray, 0.45, rng.uniform(0.45, 1.0, count))
    alpha = over(crown, draw_strands(height, width, curves, opacity, tip_fade=4))
    if rng.random() < 0.7:
        base = _HAIR_COLOURS[int(rng.integers(len(_HAIR_COLOURS)))]
    else:
        base = random_palette(rng)[0]
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
    s = length_scale(height, width)
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
    mask = fill_polygons(height, width, polygons)
    inside = cv2.distanceTransform((mask > 0.5).astype(np.uint8), cv2.DIST_L2, 5)
    rim = np.exp(-inside / (rng.uniform(4, 14) * s))
    highlight = np.zeros((height, width), dtype=np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        centre = (cx + rng.uniform(-0.7, 0.7) * half_w, cy + rng.uniform(-0.6, 0.6) * half_h)
        axes = (rng.uniform(2, 10) * s + 1, half_h * rng.uniform(0.2, 0.6))
        cv2.ellipse(
            highlight,
            tuple(fixed_point(np.array(centre))),
            (int(axes[0] * AA_SCALE), int(axes[1] * AA_SCALE)),
            rng.uniform(-10, 10),
            0,
            360,
            255,
            -1,
            cv2.LINE_AA,
            AA_SHIFT,
        )
    shine = cv2.GaussianBlur(highlight.astype(np.float32) / 255.0, (0, 0), 1.5 * s + 0.5) * mask
    variation = fractal_noise(rng, height, width, cell=150 * s, octaves=3)
    body_alpha = rng.uniform(0.05, 0.3) + 0.08 * variation + rng.uniform(0.3, 0.6) * rim
    alpha = over(shine * rng.uniform(0.7, 0.95), np.clip(body_alpha, 0.0, 1.0) * mask)
    tint = 0.5 + 0.5 * random_palette(rng)[int(rng.integers(5))]
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
    s = length_scale(height, width)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    rise = 1.0 - ys / height
    path = width * (
        0.5 + rng.uniform(0.05, 0.18) * np.sin(rise * rng.uniform(3, 8) + rng.uniform(0, 6))
    )
    spread = width * (0.04 + rng.uniform(0.1, 0.2) * rise)
    envelope = np.exp(-(((xs - path) / spread) ** 2))
    window = smoothstep(0.0, 0.12, rise) * smoothstep(0.0, 0.2, 1.0 - rise)
    window *= smoothstep(0.0, 0.05, xs / width) * smoothstep(0.0, 0.05, 1.0 - xs / width)
    density = fractal_noise(rng, height, width, cell=rng.uniform(80, 200) * s, octaves=5)
    alpha = envelope * window * smoothstep(0.2, 0.85, density) * rng.uniform(0.35, 0.85)
    if rng.random() < 0.75:
        base = _SMOKE_COLOURS[int(rng.integers(len(_SMOKE_COLOURS)))]
    else:
        base = random_palette(rng)[int(rng.integers(5))]
    if fill is not None:
        base = fill
    shade = fractal_noise(rng, height, width, cell=120 * s, octaves=3)
    colour = base * (0.8 + 0.35 * shade)[..., None]
    return np.clip(colour, 0.0, 1.0).astype(np.float32), np.clip(alpha, 0.0, 1.0).astype(np.float32)


def _lace(
    rng: np.random.Generator, height: int, width: int, fill: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Sheer fabric or lace: a wavy-edged cloth, semi-transparent, with a lattice of holes."""
    s = length_scale(height, width)
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
    cloth = fill_polygons(height, width, [outline])
    u, v = rotated_coordinates(height, width, rng.uniform(0, math.pi))
    period = max(rng.uniform(10, 32) * s, 4.0)
    if rng.random() < 0.5:
        v = v + (np.floor(u / period) % 2) * period / 2
    du = (u / period - np.round(u / period)) * period
    dv = (v / period - np.round(v / period)) * period
    distance = np.sqrt(du * du + dv * dv)
    radius = period * rng.uniform(0.2, 0.4)
    holes = smoothstep(radius + 0.7, radius - 0.7, distance)
    weave = 0.5 + 0.5 * np.sin(2 * math.pi * u / max(3.0 * s, 1.5)) * np.sin(
        2 * math.pi * v / max(3.0 * s, 1.5)
    )
    opacity = rng.uniform(0.35, 0.9) + 0.1 * weave
    alpha = cloth * np.clip(opacity, 0.0, 1.0) * (1.0 - holes)
    if fill is None and rng.random() < 0.3:
        colour = np.empty((height, width, 3), dtype=np.float32)
        colour[:] = hex_palette(rng.choice(["f5f0e6", "fffaf0", "1a1a1a", "e8d5c4"]))[0]
        colour *= (0.9 + 0.1 * weave)[..., None]
    else:
        colour = object_texture(rng, height, width, fill)
    return np.clip(colour, 0.0, 1.0).astype(np.float32), alpha.astype(np.float32)


def _solid_object(
    rng: np.random.Generator, height: int, width: int, fill: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """A sharp textured object of one to three overlapping blobs, sometimes with a hole."""
    radius = min(height, width) * rng.uniform(0.16, 0.24)
    outlines = [
        blob(
            rng,
            (width * rng.uniform(0.38, 0.62), height * rng.uniform(0.38, 0.62)),
            radius * rng.uniform(0.6, 1.0),
            roughness=rng.uniform(0.1, 0.6),
            aspect=rng.uniform(0.7, 1.4),
        )
        for _ in range(int(rng.integers(1, 4)))
    ]
    alpha = fill_polygons(height, width, outlines)
    if rng.random() < 0.4:
        hole_centre = outlines[0].mean(axis=0)
        alpha *= 1.0 - fill_polygons(height, width, [blob(rng, tuple(hole_centre), radius * 0.25)])
    return object_texture(rng, height, width, fill), alpha


def _motion(
    rng: np.random.Generator, height: int, width: int, fill: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """An object streaked by linear motion blur (an anti-aliased line kernel)."""
    colour, alpha = _solid_object(rng, height, width, fill)
    length = max(rng.uniform(10, 50) * length_scale(height, width), 3.0)
    return blur_object(colour, alpha, kernel_line(length, rng.uniform(0, math.pi)))


def _defocus(
    rng: np.random.Generator, height: int, width: int, fill: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """An out-of-focus object (disk kernel, a lens' circle of confusion)."""
    colour, alpha = _solid_object(rng, height, width, fill)
    radius = max(rng.uniform(3, 14) * length_scale(height, width), 1.0)
    return blur_object(colour, alpha, kernel_disk(radius))


GENERATORS = {
    "fur": _fur,
    "hair": _hair,
    "glass": _glass,
    "smoke": _smoke,
    "lace": _lace,
    "motion": _motion,
    "defocus": _defocus,
}
"""Family name -> generator; ``procedural.FOREGROUND_FAMILIES`` lists the same names."""
