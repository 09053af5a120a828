"""Classical mattes from pymatting: the baselines, and the generator's prior.

Closed-form matting (Levin, Lischinski and Weiss 2008) solves a sparse linear system built from
local colour-line models. On photographs it is much better than a network trained on synthetic
composites alone, so the generator receives it as an extra input and learns to correct it
(Cho, Tai and Kweon 2016, "Natural Image Matting Using Deep Convolutional Neural Networks").

pymatting needs at least one definite foreground and one definite background pixel; a trimap of
smoke or lace often has no definite foreground. :func:`closed_form_prior` then falls back to the
trimap itself (0.5 across the unknown band), which tells the generator that there is no prior
and leaves the whole answer to it; :func:`has_prior` tells the two cases apart.

pymatting (and its numba kernels) is imported on first use.

Example
-------
>>> prior = closed_form_prior(image, trimap)   # (H, W) float32 in [0, 1]
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

METHODS = ("closed-form", "knn")
"""pymatting solvers offered as baselines; ``closed-form`` is also the generator's prior."""

PRIORS = ("closed-form",)
"""Values of ``ModelConfig.prior`` other than None."""


def pymatting_alpha(method: str, image: np.ndarray, trimap: np.ndarray) -> np.ndarray:
    """Alpha from pymatting's closed-form (Levin et al. 2008) or KNN matting (Chen et al. 2013).

    Parameters
    ----------
    method : {"closed-form", "knn"}
    image : ndarray, float32, shape (H, W, 3), values in [0, 1]
    trimap : ndarray, float32, shape (H, W), values {0, 0.5, 1}

    Returns
    -------
    ndarray, float32, shape (H, W), values in [0, 1]; the trimap itself when it has no unknown
    pixel (pymatting has nothing to solve then).

    Raises
    ------
    ValueError
        The trimap has no foreground or no background pixel (pymatting needs both).
    """
    from pymatting import estimate_alpha_cf, estimate_alpha_knn

    if not np.any(trimap == 0.5):
        return trimap.astype(np.float32)
    solve = {"closed-form": estimate_alpha_cf, "knn": estimate_alpha_knn}[method]
    # Its preconditioner prints a retry notice to stdout when it needs a diagonal shift; the
    # retry is routine and the notice would break our tables, so it is swallowed.
    with contextlib.redirect_stdout(io.StringIO()):
        # Its numba kernels are compiled for float64 only. Resampling (cv2.INTER_AREA) can
        # overshoot 1 by a rounding error, which pymatting would warn about.
        pixels = np.clip(image, 0.0, 1.0).astype(np.float64)
        alpha = solve(pixels, trimap.astype(np.float64))
    return np.clip(alpha, 0.0, 1.0).astype(np.float32)


def has_prior(trimap: np.ndarray) -> bool:
    """Whether pymatting can solve this trimap: it has a foreground and a background pixel."""
    return bool(np.any(trimap == 1.0) and np.any(trimap == 0.0))


def closed_form_prior(image: np.ndarray, trimap: np.ndarray) -> np.ndarray:
    """The generator's prior: closed-form alpha, or the trimap where pymatting cannot solve.

    Parameters
    ----------
    image : ndarray, float32, shape (H, W, 3), values in [0, 1]
    trimap : ndarray, float32, shape (H, W), values {0, 0.5, 1}

    Returns
    -------
    ndarray, float32, shape (H, W), values in [0, 1]: equal to the trimap where it is 0 or 1;
    in the unknown band the closed-form alpha, or 0.5 when the trimap has no definite
    foreground or no definite background (see :func:`has_prior`).
    """
    if not has_prior(trimap):
        return trimap.astype(np.float32)
    return pymatting_alpha("closed-form", image, trimap)


def warm_up_pymatting(methods=METHODS) -> None:
    """Compile pymatting's numba kernels on a tiny problem, outside any timing."""
    rng = np.random.default_rng(0)
    image = rng.random((12, 12, 3), dtype=np.float32)
    trimap = np.full((12, 12), 0.5, np.float32)
    trimap[:3], trimap[-3:] = 0.0, 1.0
    for method in methods:
        if method in METHODS:
            pymatting_alpha(method, image, trimap)
