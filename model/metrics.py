"""Matting and segmentation metrics: pure numpy/scipy, no TensorFlow.

The matting metrics are the Deep Image Matting evaluation (Xu et al. 2017; its MATLAB code and
ports such as MMagic's ``gradient_error``/``connectivity_error``). All are computed over the
unknown region of the trimap (``np.isclose(trimap, 0.5)``, i.e. value 128 on disk), with alpha
in [0, 1]. The trimap must be the in-memory one, values in [0, 1]: an on-disk trimap
(0/128/255) raises ValueError instead of silently scoring 0, since it has no 0.5 anywhere
(convert it with ``model.images.trimap_from_uint8``).

* SAD  = sum |a - a*| / 1000
* MSE  = mean (a - a*)^2 over unknown pixels (papers often print it x 1e-3)
* Grad = sum (|grad a| - |grad a*|)^2 / 1000, Gaussian-derivative gradients (sigma 1.4) of the
  min-max-normalised mattes
* Conn = sum |phi - phi*| / 1000 (see :func:`connectivity_error`)

Example
-------
>>> scores = all_metrics(pred, gt, trimap)   # {"sad": ..., "mse": ..., "grad": ..., "conn": ...}
>>> iou(pred >= 0.5, gt >= 0.5)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

GRADIENT_SIGMA = 1.4
CONNECTIVITY_STEP = 0.1
# phi keeps a pixel's value only once it exceeds the last connected threshold by this much.
CONNECTIVITY_MIN_DISTANCE = 0.15


def _check_pair(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray | None = None):
    pred, gt = np.asarray(pred), np.asarray(gt)
    shapes = [("pred", pred.shape), ("gt", gt.shape)]
    if trimap is not None:
        trimap = np.asarray(trimap)
        shapes.append(("trimap", trimap.shape))
    if pred.ndim != 2:
        raise ValueError(f"expected 2-D HxW arrays, got pred with shape {pred.shape}")
    if any(shape != pred.shape for _, shape in shapes):
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes)
        raise ValueError(f"shape mismatch: {listed}")
    # NaN fails both comparisons, so it is refused too.
    if trimap is not None and not ((trimap >= 0) & (trimap <= 1)).all():
        raise ValueError(
            f"trimap: values up to {np.max(trimap):g}; expected the in-memory convention"
            " 0 / 0.5 / 1 (convert an on-disk 0/128/255 trimap with"
            " model.images.trimap_from_uint8)"
        )
    return pred, gt, trimap


def unknown_region(trimap: np.ndarray) -> np.ndarray:
    """Boolean HxW mask of the trimap's unknown pixels (in-memory value 0.5)."""
    return np.isclose(np.asarray(trimap, dtype=np.float64), 0.5)


def sad(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray) -> float:
    r"""Sum of absolute differences over the unknown region, in thousands.

    .. math:: \mathrm{SAD} = \frac{1}{1000} \sum_{p \in U} |\alpha_p - \alpha^*_p|

    Parameters
    ----------
    pred, gt : ndarray, float, shape (H, W), values in [0, 1]
        Predicted and ground-truth alpha.
    trimap : ndarray, float, shape (H, W), values in {0, 0.5, 1}

    Returns
    -------
    float
    """
    pred, gt, trimap = _check_pair(pred, gt, trimap)
    diff = np.abs(pred.astype(np.float64) - gt.astype(np.float64))
    return float(diff[unknown_region(trimap)].sum() / 1000.0)


def mse(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray) -> float:
    r"""Mean squared error over the unknown region (0 when there is no unknown pixel).

    .. math:: \mathrm{MSE} = \frac{1}{|U|} \sum_{p \in U} (\alpha_p - \alpha^*_p)^2

    Parameters and shapes as for :func:`sad`.
    """
    pred, gt, trimap = _check_pair(pred, gt, trimap)
    unknown = unknown_region(trimap)
    if not unknown.any():
        return 0.0
    diff = pred.astype(np.float64) - gt.astype(np.float64)
    return float(np.mean(np.square(diff[unknown])))


def gaussian_derivative_kernels(sigma: float = GRADIENT_SIGMA) -> tuple[np.ndarray, np.ndarray]:
    """The 2-D first-derivative-of-Gaussian kernels of the DIM ``gaussgradient``.

    ``hx[i, j] = g(i) g'(j)`` over offsets ``-r..r`` with
    ``r = ceil(sigma * sqrt(-2 log(sqrt(2 pi) sigma 0.01)))`` (4 for sigma 1.4), scaled to unit
    L2 norm; ``hy = hx.T``.

    Returns
    -------
    hx, hy : ndarray, float64, shape (2r + 1, 2r + 1)
        Derivative along columns (x) and along rows (y).
    """
    epsilon = 1e-2
    radius = math.ceil(sigma * math.sqrt(-2.0 * math.log(math.sqrt(2 * math.pi) * sigma * epsilon)))
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    gauss = np.exp(-(offsets**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
    dgauss = -offsets * gauss / sigma**2
    hx = np.outer(gauss, dgauss)
    hx /= np.sqrt(np.sum(hx**2))
    return hx, hx.T.copy()


def _minmax(alpha: np.ndarray) -> np.ndarray:
    # MATLAB mat2gray; a constant matte has no gradient either way, so map it to zeros.
    alpha = alpha.astype(np.float64)
    low, high = alpha.min(), alpha.max()
    if high <= low:
        return np.zeros_like(alpha)
    return (alpha - low) / (high - low)


def gradient_magnitude(alpha: np.ndarray, sigma: float = GRADIENT_SIGMA) -> np.ndarray:
    """|grad alpha| with Gaussian-derivative filters, convolved with replicated borders.

    Parameters
    ----------
    alpha : ndarray, float, shape (H, W)

    Returns
    -------
    ndarray, float64, shape (H, W)
    """
    hx, hy = gaussian_derivative_kernels(sigma)
    alpha = alpha.astype(np.float64)
    # True convolution (MATLAB imfilter 'conv'); mode "nearest" replicates the border pixel.
    gx = ndimage.convolve(alpha, hx, mode="nearest")
    gy = ndimage.convolve(alpha, hy, mode="nearest")
    return np.hypot(gx, gy)


def gradient_error(
    pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray, sigma: float = GRADIENT_SIGMA
) -> float:
    r"""Gradient error of Deep Image Matting.

    .. math:: \mathrm{Grad} = \frac{1}{1000} \sum_{p \in U}
              \left(|\nabla \tilde\alpha|_p - |\nabla \tilde\alpha^*|_p\right)^2

    where the tilde is min-max normalisation over the whole image and the gradient is the
    convolution with :func:`gaussian_derivative_kernels` (replicated borders).

    Parameters and shapes as for :func:`sad`.
    """
    pred, gt, trimap = _check_pair(pred, gt, trimap)
    diff = gradient_magnitude(_minmax(pred), sigma) - gradient_magnitude(_minmax(gt), sigma)
    return float(np.sum(np.square(diff)[unknown_region(trimap)]) / 1000.0)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """Largest 4-connected component of a boolean mask (ties: first in row-major scan order)."""
    labels, count = ndimage.label(mask)  # the default structure is 4-connectivity in 2-D
    if count == 0:
        return np.zeros_like(mask)
    sizes = np.bincount(labels.ravel())[1:]
    return labels == 1 + int(np.argmax(sizes))


def connectivity_levels(pred: np.ndarray, gt: np.ndarray, step: float = CONNECTIVITY_STEP):
    """Per-pixel l: the last threshold at which the pixel was in the largest connected region.

    For thresholds t_i = 0, step, ..., 1, Omega_i is the largest 4-connected component of
    (pred >= t_i) & (gt >= t_i); l = t_{i-1} for the first i where the pixel leaves Omega_i, and
    l = 1 if it never leaves. Everything is in single precision like the MATLAB reference, and
    the thresholds are i / 10 rounded once to float32, so alpha = 153/255 passes t = 0.6 (a
    float64 ``np.arange(0, 1.1, 0.1)[6]`` is 0.6000000000000001 and would wrongly exclude it).

    Returns
    -------
    ndarray, float32, shape (H, W)
    """
    pred32, gt32 = pred.astype(np.float32), gt.astype(np.float32)
    count = round(1.0 / step)
    thresholds = (np.arange(count + 1, dtype=np.float64) / count).astype(np.float32)
    level = np.full(pred32.shape, -1.0, dtype=np.float32)
    # t_0 = 0 is skipped: every pixel passes it and the whole image is one component.
    for i in range(1, count + 1):
        omega = _largest_component((pred32 >= thresholds[i]) & (gt32 >= thresholds[i]))
        leaving = (level == -1) & ~omega
        level[leaving] = thresholds[i - 1]
    level[level == -1] = 1.0
    return level


def _phi(alpha: np.ndarray, level: np.ndarray) -> np.ndarray:
    distance = alpha - level
    return 1.0 - distance * (distance >= np.float32(CONNECTIVITY_MIN_DISTANCE))


def connectivity_error(
    pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray, step: float = CONNECTIVITY_STEP
) -> float:
    r"""Connectivity error of Deep Image Matting.

    .. math:: d = \alpha - l, \quad \varphi = 1 - d \, [d \ge 0.15], \quad
              \mathrm{Conn} = \frac{1}{1000} \sum_{p \in U} |\varphi_p - \varphi^*_p|

    with l from :func:`connectivity_levels`, shared by both mattes. Computed in float32.

    Parameters and shapes as for :func:`sad`.
    """
    pred, gt, trimap = _check_pair(pred, gt, trimap)
    level = connectivity_levels(pred, gt, step)
    pred_phi = _phi(pred.astype(np.float32), level)
    gt_phi = _phi(gt.astype(np.float32), level)
    diff = np.abs(pred_phi - gt_phi)[unknown_region(trimap)]
    return float(np.sum(diff, dtype=np.float64) / 1000.0)


def all_metrics(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray) -> dict[str, float]:
    """All four matting metrics.

    Returns
    -------
    dict
        ``{"sad": SAD, "mse": MSE, "grad": Grad, "conn": Conn}`` as floats (MSE not scaled).
    """
    return {
        "sad": sad(pred, gt, trimap),
        "mse": mse(pred, gt, trimap),
        "grad": gradient_error(pred, gt, trimap),
        "conn": connectivity_error(pred, gt, trimap),
    }


def _check_masks(pred_mask: np.ndarray, gt_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred_mask, gt_mask = np.asarray(pred_mask), np.asarray(gt_mask)
    for name, mask in (("pred_mask", pred_mask), ("gt_mask", gt_mask)):
        if mask.dtype != np.bool_:
            raise ValueError(
                f"{name} must be a boolean array, got dtype {mask.dtype}; "
                "threshold first, e.g. alpha >= 0.5"
            )
    if pred_mask.shape != gt_mask.shape:
        raise ValueError(f"shape mismatch: pred_mask {pred_mask.shape}, gt_mask {gt_mask.shape}")
    return pred_mask, gt_mask


def iou(pred_mask: np.ndarray, gt_mask: np.ndarray) -> float:
    """Intersection over union |P & G| / |P | G| of two boolean masks of any equal shape.

    Two empty masks agree perfectly, so an empty union gives 1.0.
    """
    pred_mask, gt_mask = _check_masks(pred_mask, gt_mask)
    union = np.count_nonzero(pred_mask | gt_mask)
    if union == 0:
        return 1.0
    return np.count_nonzero(pred_mask & gt_mask) / union


def dice(pred_mask: np.ndarray, gt_mask: np.ndarray) -> float:
    """Dice coefficient 2 |P & G| / (|P| + |G|) of two boolean masks; 1.0 when both are empty."""
    pred_mask, gt_mask = _check_masks(pred_mask, gt_mask)
    total = np.count_nonzero(pred_mask) + np.count_nonzero(gt_mask)
    if total == 0:
        return 1.0
    return 2 * np.count_nonzero(pred_mask & gt_mask) / total


def pixel_accuracy(pred_mask: np.ndarray, gt_mask: np.ndarray) -> float:
    """Fraction of pixels where the two boolean masks agree; 1.0 for masks with no pixels."""
    pred_mask, gt_mask = _check_masks(pred_mask, gt_mask)
    if pred_mask.size == 0:
        return 1.0
    return np.count_nonzero(pred_mask == gt_mask) / pred_mask.size


def class_metrics(pred: np.ndarray, gt: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """IoU, Dice and pixel accuracy of each class of a label map, and the overall accuracy.

    Parameters
    ----------
    pred, gt : ndarray, int, same shape (e.g. (H, W)), values in ``range(len(names))``
    names : sequence of str
        Class names, by index (``("bg", "unknown", "fg")`` for trimaps).

    Returns
    -------
    dict of str to float
        ``iou_<name>``, ``dice_<name>``, ``acc_<name>`` per class (:func:`iou`, :func:`dice`,
        :func:`pixel_accuracy` of the masks ``pred == c`` and ``gt == c``); ``miou``, their
        mean IoU; ``accuracy``, the fraction of pixels where ``pred == gt``.
    """
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"shape mismatch: pred {pred.shape}, gt {gt.shape}")
    scores = {}
    for index, name in enumerate(names):
        p, g = pred == index, gt == index
        scores[f"iou_{name}"] = iou(p, g)
        scores[f"dice_{name}"] = dice(p, g)
        scores[f"acc_{name}"] = pixel_accuracy(p, g)
    scores["miou"] = float(np.mean([scores[f"iou_{name}"] for name in names]))
    scores["accuracy"] = float(np.mean(pred == gt)) if pred.size else 1.0
    return scores
