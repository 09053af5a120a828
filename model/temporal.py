"""Frame-to-frame helpers for video matting: trimap propagation, temporal blending, dtSSD.

Pure numpy and OpenCV; no TensorFlow. Conventions as in ``model.compositing``: frames are
float32 (H, W, 3) in [0, 1], alpha float32 (H, W) in [0, 1], trimaps float32 (H, W) in
{0, 0.5, 1}.

* :func:`propagate_trimap` carries a first-frame trimap through a clip: the next frame's
  unknown band is re-derived from the previous frame's predicted alpha, widened by a motion
  margin, so the subject may move that far between two frames and stay inside the band.
* :func:`temporal_blend` is the previous-alpha feedback for modes whose trimap does not come
  from the previous frame: in pixels whose colour did not change, alpha is pulled towards the
  previous frame's alpha (a motion-gated exponential moving average), which removes flicker on
  a static background without dragging moving edges.
* :func:`dtssd` measures flicker the way RobustVideoMatting does.
"""

from __future__ import annotations

import cv2
import numpy as np

from model.images import TRIMAP_UNKNOWN

DEFAULT_BAND = 0.01
"""Half-width of a propagated trimap's unknown band beyond the soft edge, as a fraction of
the frame's shorter side (3.6 px at 360p)."""

DEFAULT_MOTION = 0.02
"""How far, as a fraction of the shorter side, an edge may move between two frames and still
fall inside the propagated unknown band (7.2 px at 360p)."""

CERTAIN_TOLERANCE = 0.02
"""A predicted alpha within this of 0 (or 1) counts as certain background (foreground) when a
trimap is re-derived from it. A network's sigmoid rarely gives exactly 0 or 1, and counting
0.001 as soft would let the band grow by the margin on every frame."""

DEFAULT_SMOOTHING = 0.5
"""Default strength of :func:`temporal_blend` in the video pipeline (see README, "Video")."""

DEFAULT_SIGMA = 0.04
"""Colour change (max over RGB, in [0, 1]) at which :func:`temporal_blend`'s weight falls to
1/e of its strength: roughly ten 8-bit levels, well above sensor noise in a compressed clip."""


def margin_pixels(shape: tuple[int, int], fraction: float) -> int:
    """``round(fraction * min(H, W))``: a margin relative to the frame size, in pixels."""
    return round(fraction * min(shape))


def propagate_trimap(
    previous_alpha: np.ndarray,
    *,
    band: int,
    motion: int,
    tolerance: float = CERTAIN_TOLERANCE,
) -> np.ndarray:
    """The trimap for frame t, re-derived from frame t-1's predicted alpha.

    With ``r = band + motion`` and ``E_r`` the erosion by a disc of diameter ``2 r + 1``::

        F = E_r(alpha >= 1 - tolerance)      certain foreground
        B = E_r(alpha <= tolerance)          certain background
        trimap = 1 on F, 0 on B, 0.5 elsewhere

    Eroding both certain regions is dilating the soft region {tol < alpha < 1 - tol} by ``r``
    (and opening a band of ``2 r`` pixels along a hard 0/1 edge), as
    ``compositing.trimap_from_alpha`` does for training trimaps. ``band`` is the unknown
    margin the matting step wants around an edge that does not move; ``motion`` is how far an
    edge may move in one frame and still lie in the unknown band. The image border does not
    erode (a subject cut by the frame keeps its certain pixels there).

    Parameters
    ----------
    previous_alpha : ndarray, float32, shape (H, W), values in [0, 1]
    band, motion : int
        Pixels, >= 0.
    tolerance : float
        See :data:`CERTAIN_TOLERANCE`; in [0, 0.5).

    Returns
    -------
    ndarray, float32, shape (H, W), values in {0.0, 0.5, 1.0}. A matte that is all 0 gives an
    all-background trimap: a subject that left the frame is not found again (use automatic
    trimaps for clips where it comes back).
    """
    if band < 0 or motion < 0:
        raise ValueError(f"band and motion must be >= 0 pixels, not {band} and {motion}")
    if not 0.0 <= tolerance < 0.5:
        raise ValueError(f"tolerance must be in [0, 0.5), not {tolerance}")
    radius = band + motion
    foreground = previous_alpha >= 1.0 - tolerance
    background = previous_alpha <= tolerance
    if radius:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        # BORDER_REPLICATE: outside the frame counts as more of the same, so it never erodes.
        foreground = cv2.erode(foreground.astype(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE)
        background = cv2.erode(background.astype(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE)
    trimap = np.full(previous_alpha.shape, TRIMAP_UNKNOWN, dtype=np.float32)
    trimap[foreground.astype(bool)] = 1.0
    trimap[background.astype(bool)] = 0.0
    return trimap


def temporal_blend(
    alpha: np.ndarray,
    previous_alpha: np.ndarray,
    frame: np.ndarray,
    previous_frame: np.ndarray,
    *,
    strength: float,
    sigma: float = DEFAULT_SIGMA,
    where: np.ndarray | None = None,
) -> np.ndarray:
    """Pull alpha towards the previous frame's where the picture did not change.

    .. math::

        d = \\operatorname{box}_{3 \\times 3}\\left(\\max_c |I_t - I_{t-1}|\\right), \\qquad
        w = s \\, e^{-(d / \\sigma)^2}, \\qquad
        \\hat\\alpha_t = (1 - w) \\, \\alpha_t + w \\, \\hat\\alpha_{t-1}

    Fed with the previous *output* :math:`\\hat\\alpha_{t-1}`, this is an exponential moving
    average with time constant :math:`1 / (1 - s)` frames in static pixels, and no averaging
    (w near 0) where the colour changed, i.e. where the subject moved: its edges are not
    dragged behind it. The 3 x 3 box filter keeps single noisy pixels from opening the gate.

    Parameters
    ----------
    alpha : ndarray, float32, shape (H, W), values in [0, 1]
        This frame's matte.
    previous_alpha : ndarray, float32, shape (H, W), values in [0, 1]
        The previous frame's final (blended) matte.
    frame, previous_frame : ndarray, float32, shape (H, W, 3), values in [0, 1]
    strength : float
        ``s`` in [0, 1); 0 returns ``alpha`` unchanged.
    sigma : float
        Colour change at which the weight falls to ``s / e``; > 0.
    where : ndarray, bool, shape (H, W), optional
        Blend only these pixels (e.g. the unknown band, so known trimap regions stay exact).

    Returns
    -------
    ndarray, float32, shape (H, W), values in [0, 1]
    """
    if not 0.0 <= strength < 1.0:
        raise ValueError(f"strength must be in [0, 1), not {strength}")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, not {sigma}")
    if strength == 0.0:
        return alpha
    change = np.abs(frame - previous_frame).max(axis=2)
    change = cv2.blur(change, (3, 3), borderType=cv2.BORDER_REPLICATE)
    weight = strength * np.exp(-((change / sigma) ** 2))
    if where is not None:
        weight = np.where(where, weight, 0.0)
    return ((1.0 - weight) * alpha + weight * previous_alpha).astype(np.float32)


def dtssd(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Temporal coherence error of a matte sequence (RobustVideoMatting's dtSSD), x 1e2.

    .. math::

        \\mathrm{dtSSD} = \\frac{100}{T - 1} \\sum_{t=1}^{T-1}
        \\sqrt{\\frac{1}{HW} \\sum_p \\left((\\alpha_t - \\alpha_{t-1})
        - (\\alpha^*_t - \\alpha^*_{t-1})\\right)^2}

    It is 0 when the predicted matte changes from frame to frame exactly as the truth does,
    however wrong each frame is (SAD measures that); flicker raises it.

    Parameters
    ----------
    predicted, truth : ndarray, float, shape (T, H, W), values in [0, 1], T >= 2

    Returns
    -------
    float, >= 0
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if predicted.shape != truth.shape or predicted.ndim != 3 or predicted.shape[0] < 2:
        raise ValueError(
            f"dtssd needs two (T, H, W) sequences with T >= 2 of one shape, not"
            f" {predicted.shape} and {truth.shape}"
        )
    error = np.diff(predicted, axis=0) - np.diff(truth, axis=0)
    return float(np.sqrt((error**2).mean(axis=(1, 2))).mean() * 1e2)
