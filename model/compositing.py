"""Compositing, trimaps and crops: pure numpy and OpenCV, no TensorFlow.

Conventions (see DESIGN.md): images are float32 HxWx3 in [0, 1]; alpha is float32 HxW in
[0, 1]; an in-memory trimap is float32 HxW with values {0.0 background, 0.5 unknown,
1.0 foreground}.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from model.images import TRIMAP_UNKNOWN

UNKNOWN_TOLERANCE = 0.25
"""A trimap value within this of 0.5 means unknown: halfway to 0 and to 1, so a trimap that was
resized or averaged (values between the three levels) still reads as its nearest level."""


def composite(fg: np.ndarray, alpha: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Blend a foreground over a background with the matting equation.

    .. math:: I = \\alpha F + (1 - \\alpha) B

    Parameters
    ----------
    fg, bg : ndarray, float32, shape (H, W, 3), values in [0, 1]
    alpha : ndarray, float32, shape (H, W) or (H, W, 1), values in [0, 1]

    Returns
    -------
    ndarray, float32, shape (H, W, 3), values in [0, 1]
    """
    if alpha.ndim == 2:
        alpha = alpha[..., None]
    if fg.shape[:2] != alpha.shape[:2] or bg.shape[:2] != alpha.shape[:2]:
        raise ValueError(
            f"composite needs equal sizes: fg {fg.shape}, alpha {alpha.shape}, bg {bg.shape}"
        )
    alpha = alpha.astype(np.float32)
    return (alpha * fg + (1.0 - alpha) * bg).astype(np.float32)


# NTSC YIQ: Y is luma, (I, Q) the chroma plane, in which a hue shift is a plain rotation.
_RGB_TO_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float64
)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)


def colour_matrix(hue_degrees: float, saturation: float, brightness: float) -> np.ndarray:
    """A 3x3 colour change of RGB pixels: hue rotation, saturation and brightness factors.

    .. math:: M = b \\, Y^{-1} \\operatorname{diag}(1, s R_\\theta) \\, Y

    with ``Y`` the RGB-to-YIQ matrix, ``R_theta`` a rotation of the chroma plane by
    ``hue_degrees``, ``s`` the saturation and ``b`` the brightness factor. ``(0, 1, 1)`` is the
    identity. Apply it with ``cv2.transform(image, M)`` (one product per pixel, far cheaper
    than a round trip through HSV); being linear, it commutes with compositing:
    ``M (a F + (1 - a) B) = a MF + (1 - a) MB`` before clipping.

    Returns
    -------
    ndarray, float32, shape (3, 3), acting on RGB column vectors.
    """
    theta = np.deg2rad(hue_degrees)
    cos, sin = np.cos(theta) * saturation, np.sin(theta) * saturation
    chroma = np.array([[1.0, 0.0, 0.0], [0.0, cos, -sin], [0.0, sin, cos]])
    return (brightness * _YIQ_TO_RGB @ chroma @ _RGB_TO_YIQ).astype(np.float32)


def unknown_mask(trimap: np.ndarray) -> np.ndarray:
    """Where a trimap is unknown: ``|t - 0.5| < 0.25`` (see :data:`UNKNOWN_TOLERANCE`).

    ``model.losses.unknown_mask`` is the same test on tensors.

    Parameters
    ----------
    trimap : ndarray, float, any shape, values in [0, 1] (normally {0, 0.5, 1})

    Returns
    -------
    ndarray, bool, same shape as ``trimap``
    """
    return np.abs(trimap - TRIMAP_UNKNOWN) < UNKNOWN_TOLERANCE


def _ellipse(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def trimap_from_alpha(
    alpha: np.ndarray,
    rng: np.random.Generator | None = None,
    *,
    min_kernel: int = 1,
    max_kernel: int = 29,
    kernel_size: int | None = None,
) -> np.ndarray:
    """Make a training trimap from a ground-truth matte (Deep Image Matting, GCA).

    The unknown band is every pixel with 0 < alpha < 1, widened by an elliptical kernel:
    foreground is ``erode(alpha == 1, K)``, background is ``erode(alpha == 0, K)`` and the rest
    is unknown. Eroding the two certain regions is the same as dilating the band between them,
    and it also opens a band along hard 0/1 edges, which a dilation of {0 < alpha < 1} alone
    would miss.

    Parameters
    ----------
    alpha : ndarray, float32, shape (H, W), values in [0, 1]
    rng : numpy Generator, optional
        Draws the kernel size uniformly from [min_kernel, max_kernel]; needed unless
        ``kernel_size`` is given.
    kernel_size : int, optional
        A fixed kernel diameter in pixels; 1 leaves the band exactly {0 < alpha < 1}.

    Returns
    -------
    ndarray, float32, shape (H, W), values in {0.0, 0.5, 1.0}
    """
    if kernel_size is None:
        if rng is None:
            raise ValueError("trimap_from_alpha needs rng or kernel_size")
        kernel_size = int(rng.integers(min_kernel, max_kernel + 1))
    if kernel_size < 1:
        raise ValueError(f"kernel_size must be >= 1, not {kernel_size}")
    kernel = _ellipse(kernel_size)
    foreground = cv2.erode((alpha >= 1.0).astype(np.uint8), kernel).astype(bool)
    background = cv2.erode((alpha <= 0.0).astype(np.uint8), kernel).astype(bool)
    trimap = np.full(alpha.shape, TRIMAP_UNKNOWN, dtype=np.float32)
    trimap[foreground] = 1.0
    trimap[background] = 0.0
    return trimap


def shrink_trimap(trimap: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a trimap down so that a known pixel is one whose whole footprint was known.

    A small pixel is foreground (background) when the area-weighted fraction of foreground
    (background) full-size pixels under it is 1, and unknown otherwise: the unknown band only
    widens, so no pixel that needs a matte becomes certain. Values stay in {0, 0.5, 1}, which
    is what the network was trained on; an area average would give fractions.

    Parameters
    ----------
    trimap : ndarray, float32, shape (H, W), values {0, 0.5, 1}
    height, width : int
        The new size, at most (H, W).

    Returns
    -------
    ndarray, float32, shape (height, width), values {0.0, 0.5, 1.0}
    """
    if height > trimap.shape[0] or width > trimap.shape[1]:
        raise ValueError(f"shrink_trimap cannot enlarge {trimap.shape} to {(height, width)}")
    certain = np.stack([trimap >= 1.0, trimap <= 0.0], axis=2).astype(np.float32)
    fractions = cv2.resize(certain, (width, height), interpolation=cv2.INTER_AREA)
    # INTER_AREA's weights sum to 1 only up to rounding.
    foreground, background = np.moveaxis(fractions > 1.0 - 1e-4, 2, 0)
    small = np.full((height, width), TRIMAP_UNKNOWN, dtype=np.float32)
    small[foreground] = 1.0
    small[background] = 0.0
    return small


def fit_background(
    bg: np.ndarray, height: int, width: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Resize a background to cover ``height`` x ``width`` without distortion, then crop.

    The scale is ``max(height / H, width / W)`` so the aspect ratio is kept and both sides
    cover the target; the excess is cropped at a random offset (``rng``) or centred.

    Parameters
    ----------
    bg : ndarray, float32, shape (H, W, C), values in [0, 1]

    Returns
    -------
    ndarray, float32, shape (height, width, C)
    """
    bg_height, bg_width = bg.shape[:2]
    scale = max(height / bg_height, width / bg_width)
    new_height = max(height, math.ceil(bg_height * scale - 1e-6))
    new_width = max(width, math.ceil(bg_width * scale - 1e-6))
    if (new_height, new_width) != (bg_height, bg_width):
        # INTER_AREA averages when shrinking (no aliasing); linear is enough when enlarging.
        interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
        bg = cv2.resize(bg, (new_width, new_height), interpolation=interpolation)
        if bg.ndim == 2:
            bg = bg[..., None]
    spare_y, spare_x = new_height - height, new_width - width
    if rng is None:
        top, left = spare_y // 2, spare_x // 2
    else:
        top, left = int(rng.integers(0, spare_y + 1)), int(rng.integers(0, spare_x + 1))
    return np.ascontiguousarray(bg[top : top + height, left : left + width]).astype(np.float32)


def unknown_crop_origin(
    trimap: np.ndarray, crop_height: int, crop_width: int, rng: np.random.Generator
) -> tuple[int, int]:
    """Top-left corner of a crop centred on a random unknown pixel, kept inside the image.

    Parameters
    ----------
    trimap : ndarray, shape (H, W), values {0, 0.5, 1}
    crop_height, crop_width : int
        Crop size; when it exceeds the image on an axis the origin on that axis is 0.

    Returns
    -------
    (top, left) : ints with 0 <= top <= max(H - crop_height, 0), same for left.
    When the trimap has no unknown pixel, the centre is drawn uniformly over the image.
    """
    height, width = trimap.shape
    ys, xs = np.nonzero(unknown_mask(trimap))
    if ys.size:
        index = int(rng.integers(0, ys.size))
        centre_y, centre_x = int(ys[index]), int(xs[index])
    else:
        centre_y, centre_x = int(rng.integers(0, height)), int(rng.integers(0, width))
    top = min(max(centre_y - crop_height // 2, 0), max(height - crop_height, 0))
    left = min(max(centre_x - crop_width // 2, 0), max(width - crop_width, 0))
    return top, left


def alpha_problem(alpha: np.ndarray, *, require_partial: bool = False) -> str | None:
    """Why a matte is no use for training, or None when it is useful.

    Values are judged at 8-bit precision, so 1/255 counts as transparent noise only if it
    rounds to 0.

    Parameters
    ----------
    alpha : ndarray, float32, shape (H, W), values in [0, 1]
    require_partial : bool
        Also refuse mattes with no pixel strictly between 0 and 1 (a hard cut-out). The
        scraper asks for this; mask datasets, whose masks are often binary, do not.

    Returns
    -------
    None, or one of "fully transparent", "fully opaque", "plain rectangle",
    "no partial transparency".
    """
    levels = np.rint(np.clip(alpha, 0.0, 1.0) * 255.0).astype(np.uint8)
    if not levels.any():
        return "fully transparent"
    if (levels == 255).all():
        return "fully opaque"
    binary = bool(np.isin(levels, (0, 255)).all())
    if binary:
        rows = np.flatnonzero(levels.any(axis=1))
        cols = np.flatnonzero(levels.any(axis=0))
        box = levels[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        if (box == 255).all():
            return "plain rectangle"
        if require_partial:
            return "no partial transparency"
    return None
