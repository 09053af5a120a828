"""Colour guided filter and guided upsampling of an alpha matte (pure numpy + OpenCV).

The guided filter (He, Sun and Tang, "Guided Image Filtering", TPAMI 2013) models the output
as a local linear function of a colour guide image I. In every (2r+1) x (2r+1) window
:math:`\\omega_k` it fits

.. math::

    q_i = a_k^T I_i + b_k \\quad (i \\in \\omega_k), \\qquad
    a_k = (\\Sigma_k + \\varepsilon U)^{-1}
          \\Big(\\tfrac{1}{|\\omega|} \\textstyle\\sum_{i \\in \\omega_k} I_i p_i
          - \\mu_k \\bar p_k\\Big), \\qquad
    b_k = \\bar p_k - a_k^T \\mu_k

to the source p by ridge regression (:math:`\\mu_k`, :math:`\\Sigma_k`: mean and 3x3 covariance
of I in the window, :math:`\\bar p_k`: mean of p, U the identity), then averages the
coefficients of all windows covering a pixel: :math:`q_i = \\bar a_i^T I_i + \\bar b_i`.

Because a and b vary slowly, they can be fitted at a low resolution and bilinearly upsampled
before being applied to the full-resolution guide (He and Sun, "Fast Guided Filter", 2015; the
deep guided filter of Wu et al. 2018 and RobustVideoMatting learn the same step). That is how
:mod:`model.inference` turns a matte predicted at a working resolution into a full-resolution
one whose edges follow the full-resolution colours (hair strands, fur).

Example
-------
>>> alpha = guided_upsample(alpha_small, image_small, image, radius=8, eps=1e-4)
"""

from __future__ import annotations

import cv2
import numpy as np

DEFAULT_RADIUS = 8
"""Window radius in pixels of the low-resolution image, for :func:`guided_upsample`."""

DEFAULT_EPS = 1e-4
"""Ridge term; larger values smooth more where the guide's colours vary little."""


def box_mean(values: np.ndarray, radius: int) -> np.ndarray:
    """Mean over the (2 radius + 1)^2 window around each pixel, borders reflected.

    Parameters
    ----------
    values : ndarray, float32, shape (H, W) or (H, W, C)
    radius : int >= 0

    Returns
    -------
    ndarray, float32, same shape.
    """
    size = 2 * radius + 1
    values = np.ascontiguousarray(values, dtype=np.float32)
    mean = cv2.blur(values, (size, size), borderType=cv2.BORDER_REFLECT_101)
    return mean.reshape(values.shape)


def _solve_symmetric_3x3(matrix: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve S x = v per pixel for symmetric positive definite S, by its adjugate.

    ``matrix`` holds the six distinct entries (xx, xy, xz, yy, yz, zz) as (H, W, 6); ``rhs`` is
    (H, W, 3). A closed form is several times faster than ``np.linalg.solve`` on millions of
    3x3 systems.
    """
    xx, xy, xz, yy, yz, zz = np.moveaxis(matrix, 2, 0)
    c_xx = yy * zz - yz * yz
    c_xy = xz * yz - xy * zz
    c_xz = xy * yz - xz * yy
    c_yy = xx * zz - xz * xz
    c_yz = xy * xz - xx * yz
    c_zz = xx * yy - xy * xy
    determinant = xx * c_xx + xy * c_xy + xz * c_xz
    v_x, v_y, v_z = np.moveaxis(rhs, 2, 0)
    solution = np.stack(
        [
            c_xx * v_x + c_xy * v_y + c_xz * v_z,
            c_xy * v_x + c_yy * v_y + c_yz * v_z,
            c_xz * v_x + c_yz * v_y + c_zz * v_z,
        ],
        axis=2,
    )
    return solution / determinant[..., None]


def guided_filter_coefficients(
    guide: np.ndarray, source: np.ndarray, radius: int = DEFAULT_RADIUS, eps: float = DEFAULT_EPS
) -> tuple[np.ndarray, np.ndarray]:
    """Window-averaged coefficients :math:`\\bar a, \\bar b` of the colour guided filter.

    Parameters
    ----------
    guide : ndarray, float32, shape (H, W, 3), values in [0, 1]
    source : ndarray, float32, shape (H, W), e.g. alpha in [0, 1]
    radius : int >= 0
    eps : float > 0

    Returns
    -------
    a : ndarray, float32, shape (H, W, 3)
    b : ndarray, float32, shape (H, W)
        The filtered source is ``(a * guide).sum(axis=2) + b``.
    """
    if eps <= 0:
        raise ValueError(f"eps must be positive, got {eps}")
    guide = np.asarray(guide, dtype=np.float32)
    source = np.asarray(source, dtype=np.float32)
    red, green, blue = np.moveaxis(guide, 2, 0)
    products = np.stack(
        [
            red * source,
            green * source,
            blue * source,
            red * red,
            red * green,
            red * blue,
            green * green,
            green * blue,
            blue * blue,
        ],
        axis=2,
    )
    means = box_mean(np.concatenate([guide, source[..., None], products], axis=2), radius)
    mean_guide, mean_source = means[..., :3], means[..., 3]
    covariance_with_source = means[..., 4:7] - mean_guide * mean_source[..., None]
    m_r, m_g, m_b = np.moveaxis(mean_guide, 2, 0)
    second = means[..., 7:]
    covariance = np.stack(
        [
            second[..., 0] - m_r * m_r + eps,
            second[..., 1] - m_r * m_g,
            second[..., 2] - m_r * m_b,
            second[..., 3] - m_g * m_g + eps,
            second[..., 4] - m_g * m_b,
            second[..., 5] - m_b * m_b + eps,
        ],
        axis=2,
    )
    a = _solve_symmetric_3x3(covariance, covariance_with_source)
    b = mean_source - (a * mean_guide).sum(axis=2)
    averaged = box_mean(np.concatenate([a, b[..., None]], axis=2), radius)
    return averaged[..., :3], averaged[..., 3]


def guided_upsample(
    source: np.ndarray,
    guide_small: np.ndarray,
    guide: np.ndarray,
    radius: int = DEFAULT_RADIUS,
    eps: float = DEFAULT_EPS,
) -> np.ndarray:
    """Fast guided filter: fit at low resolution, apply to the full-resolution guide.

    .. math:: q = \\operatorname{up}(\\bar a)^T I + \\operatorname{up}(\\bar b)

    where :math:`\\bar a, \\bar b` come from :func:`guided_filter_coefficients` on
    (``guide_small``, ``source``) and up() is a bilinear resize to the guide's size. With
    ``guide_small`` the guide itself, this is the guided filter at one resolution.

    Parameters
    ----------
    source : ndarray, float32, shape (h, w), e.g. alpha in [0, 1] at low resolution
    guide_small : ndarray, float32, shape (h, w, 3): ``guide`` resized to (h, w)
    guide : ndarray, float32, shape (H, W, 3), values in [0, 1]
    radius : int
        Window radius in low-resolution pixels.
    eps : float > 0

    Returns
    -------
    ndarray, float32, shape (H, W); not clipped.
    """
    if source.shape != guide_small.shape[:2]:
        raise ValueError(
            f"source shape {source.shape} differs from the small guide's {guide_small.shape[:2]}"
        )
    a, b = guided_filter_coefficients(guide_small, source, radius, eps)
    height, width = guide.shape[:2]
    coefficients = cv2.resize(
        np.concatenate([a, b[..., None]], axis=2), (width, height), interpolation=cv2.INTER_LINEAR
    )
    return (coefficients[..., :3] * guide).sum(axis=2) + coefficients[..., 3]
