"""Synthetic clips with exact ground truth: a still cut-out moving over a static background.

RobustVideoMatting trains and tests on clips made this way from still images. Here they
measure temporal consistency (``bench/video.py``) and drive the video tests: the subject
follows a smooth random path (a sum of two sinusoids per axis, so it accelerates and turns
without jumps), and each frame is I = alpha F + (1 - alpha) B with the shifted F and alpha.

Example
-------
>>> rng = np.random.default_rng(0)
>>> for image, alpha in moving_clip(fg, alpha, bg, 24, rng):  # doctest: +SKIP
...     ...
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from model.compositing import composite, fit_background


def smooth_path(frames: int, rng: np.random.Generator, max_shift: float) -> np.ndarray:
    """Offsets of a smooth random path that starts at (0, 0).

    Per axis: :math:`s(t) = \\sum_{k=1}^{2} a_k (\\sin(2 \\pi t / p_k + \\phi_k) - \\sin\\phi_k)`
    with periods ``p_k`` drawn from [T, 3T] frames, so the clip sees under one full swing, and
    amplitudes scaled so that ``|s| <= max_shift``.

    Returns
    -------
    ndarray, float64, shape (frames, 2): (dy, dx) in pixels, row 0 is (0, 0).
    """
    t = np.arange(frames, dtype=np.float64)[:, None, None]
    periods = rng.uniform(frames, 3 * frames, (1, 2, 2))
    phases = rng.uniform(0, 2 * np.pi, (1, 2, 2))
    amplitudes = rng.uniform(0.5, 1.0, (1, 2, 2))
    waves = amplitudes * (np.sin(2 * np.pi * t / periods + phases) - np.sin(phases))
    path = waves.sum(axis=2)
    peak = np.abs(path).max(axis=0)
    return path * (max_shift / np.maximum(peak, 1e-9))


def place(
    fg: np.ndarray, alpha: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Scale a cut-out to fit (height, width) whole and centre it on a transparent canvas.

    Returns
    -------
    fg : ndarray, float32, shape (height, width, 3); alpha : float32, shape (height, width)
    """
    scale = min(height / alpha.shape[0], width / alpha.shape[1])
    size = (round(alpha.shape[1] * scale), round(alpha.shape[0] * scale))
    top, left = (height - size[1]) // 2, (width - size[0]) // 2
    canvas_fg = np.zeros((height, width, 3), np.float32)
    canvas_alpha = np.zeros((height, width), np.float32)
    canvas_fg[top : top + size[1], left : left + size[0]] = cv2.resize(fg, size)
    canvas_alpha[top : top + size[1], left : left + size[0]] = cv2.resize(alpha, size)
    return canvas_fg, np.clip(canvas_alpha, 0.0, 1.0)


def shift(array: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Translate by a sub-pixel (dy, dx) with bilinear interpolation; zeros come in."""
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    height, width = array.shape[:2]
    return cv2.warpAffine(
        array, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )


def moving_clip(
    fg: np.ndarray,
    alpha: np.ndarray,
    bg: np.ndarray,
    frames: int,
    rng: np.random.Generator,
    *,
    size: tuple[int, int] | None = None,
    max_shift: float = 0.1,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Frames of ``fg``/``alpha`` moving along :func:`smooth_path` over a static ``bg``.

    Parameters
    ----------
    fg : ndarray, float32, shape (h, w, 3); alpha : float32, shape (h, w); values in [0, 1]
    bg : ndarray, float32, shape (h', w', 3), values in [0, 1]
    frames : int
    size : (height, width), optional
        The clip's frame size; the cut-out is fitted whole (:func:`place`) and the background
        scaled to cover and centre-cropped. Default: alpha's size.
    max_shift : float
        Largest offset from the start, as a fraction of the frame's shorter side.

    Yields
    ------
    (image, alpha) : float32 (H, W, 3) and (H, W), in [0, 1]; alpha is the exact ground truth.
    """
    height, width = size if size is not None else alpha.shape
    fg, alpha = place(fg, alpha, height, width)
    background = fit_background(bg, height, width)
    for dy, dx in smooth_path(frames, rng, max_shift * min(height, width)):
        moved_alpha = np.clip(shift(alpha, dy, dx), 0.0, 1.0)
        moved_fg = shift(fg, dy, dx)
        yield composite(moved_fg, moved_alpha, background), moved_alpha
