"""Clean background plates in numpy: plate perturbations, cast shadows, and the difference key.

A *plate* is a photograph of the empty scene. Real plates never match the scene behind the
subject exactly: the camera moved a little, the exposure and white balance drifted, there is
sensor noise, the subject casts a shadow, and something in the scene moved. These functions
make such plates from a dataset's clean background (training augmentation, and the fixed
perturbations of ``--evaluate``), and implement the classical baseline, the difference key.

All images are float32 (H, W, 3) RGB in [0, 1]; alpha is float32 (H, W) in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from model.compositing import trimap_from_alpha


@dataclass(frozen=True)
class PlatePerturbation:
    """How a plate differs from the background it was made from (identity by default).

    Attributes
    ----------
    shift : (float, float)
        Translation (dx, dy) in pixels, positive right and down.
    rotation : float
        Rotation in degrees about the image centre (counter-clockwise).
    gain : float
        Exposure: every channel is multiplied by this.
    white_balance : (float, float, float)
        Extra per-channel (R, G, B) factors.
    gamma : float
        Applied after the gains: ``x ** gamma``.
    blur : float
        Gaussian sigma in pixels (0: none).
    noise : float
        Standard deviation of additive Gaussian noise (0: none).
    seed : int
        Seeds the noise, so a perturbation is reproducible.
    """

    shift: tuple[float, float] = (0.0, 0.0)
    rotation: float = 0.0
    gain: float = 1.0
    white_balance: tuple[float, float, float] = (1.0, 1.0, 1.0)
    gamma: float = 1.0
    blur: float = 0.0
    noise: float = 0.0
    seed: int = 0


def perturb_plate(background: np.ndarray, p: PlatePerturbation) -> np.ndarray:
    r"""Make a plate from a background: move it, change its colours, blur it, add noise.

    .. math:: P = \mathrm{clip}\big(G_\sigma * (\mathrm{clip}(g\,w_c\,W(B))^{\gamma}) + n\big),
              \quad n \sim \mathcal{N}(0, s^2)

    where :math:`W` is the rigid warp (rotation about the centre, then the shift; borders
    reflected), :math:`g` the gain, :math:`w_c` the white-balance factor of channel c,
    :math:`G_\sigma` the Gaussian blur and ``clip`` clips to [0, 1].

    Parameters
    ----------
    background : ndarray, float32, shape (H, W, 3), values in [0, 1]
    p : PlatePerturbation

    Returns
    -------
    ndarray, float32, shape (H, W, 3), values in [0, 1]; a new array.
    """
    height, width = background.shape[:2]
    plate = np.array(background, dtype=np.float32, copy=True)
    if p.shift != (0.0, 0.0) or p.rotation:
        matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), p.rotation, 1.0)
        matrix[:, 2] += p.shift
        plate = cv2.warpAffine(
            plate,
            matrix,
            (width, height),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT_101,
        )
    gains = p.gain * np.asarray(p.white_balance, np.float32)
    plate = np.clip(plate * gains, 0.0, 1.0)
    if p.gamma != 1.0:
        plate = plate**p.gamma
    if p.blur > 0:
        plate = cv2.GaussianBlur(plate, (0, 0), p.blur, borderType=cv2.BORDER_REFLECT_101)
    if p.noise > 0:
        rng = np.random.default_rng(p.seed)
        plate = plate + rng.normal(0.0, p.noise, plate.shape).astype(np.float32)
    return np.clip(plate, 0.0, 1.0).astype(np.float32)


def random_perturbation(rng: np.random.Generator) -> PlatePerturbation:
    """A training perturbation: shifts up to 6 px, rotations up to 1 degree, exposure +-15 %,
    white balance +-5 %, gamma 0.85-1.15, blur (30 %), noise up to 0.03 (each drawn from ``rng``).
    """
    moved = rng.random() < 0.8
    return PlatePerturbation(
        shift=tuple(float(v) for v in rng.uniform(-6.0, 6.0, 2)) if moved else (0.0, 0.0),
        rotation=float(rng.uniform(-1.0, 1.0)) if moved else 0.0,
        gain=float(rng.uniform(0.85, 1.15)),
        white_balance=tuple(float(v) for v in rng.uniform(0.95, 1.05, 3)),
        gamma=float(rng.uniform(0.85, 1.15)),
        blur=float(rng.uniform(0.3, 1.5)) if rng.random() < 0.3 else 0.0,
        noise=float(rng.uniform(0.0, 0.03)),
        seed=int(rng.integers(2**31)),
    )


def cast_shadow(background: np.ndarray, alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    r"""Darken the scene behind the subject where the subject would cast a soft shadow.

    .. math:: B' = B \, (1 - s \, G_\sigma * T_{(dx, dy)}(\alpha))

    with :math:`T` a translation of the matte by 5-30 % of the image side, :math:`G_\sigma` a
    Gaussian of sigma 2-8 % of the side and strength :math:`s \in [0.1, 0.5]`. Only the scene
    gets the shadow, never the plate, as when the plate was shot before the subject walked in.

    Parameters
    ----------
    background : ndarray, float32, shape (H, W, 3), values in [0, 1]
    alpha : ndarray, float32, shape (H, W), values in [0, 1]
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, float32, shape (H, W, 3), values in [0, 1]; a new array.
    """
    height, width = alpha.shape
    side = min(height, width)
    offset = rng.uniform(0.05, 0.3, 2) * side * rng.choice([-1.0, 1.0], 2)
    matrix = np.array([[1.0, 0.0, offset[0]], [0.0, 1.0, offset[1]]], np.float32)
    shadow = cv2.warpAffine(alpha.astype(np.float32), matrix, (width, height))
    shadow = cv2.GaussianBlur(shadow, (0, 0), float(rng.uniform(0.02, 0.08)) * side)
    strength = float(rng.uniform(0.1, 0.5))
    return (background * (1.0 - strength * shadow)[..., None]).astype(np.float32)


def paste_object(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Paint a soft-edged ellipse of a random colour (10-30 % of the side) at a random place.

    It stands for something that moved between the plate and the shot: a chair, a cup.

    Parameters
    ----------
    image : ndarray, float32, shape (H, W, 3), values in [0, 1]
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, float32, shape (H, W, 3), values in [0, 1]; a new array.
    """
    height, width = image.shape[:2]
    side = min(height, width)
    mask = np.zeros((height, width), np.float32)
    centre = (int(rng.integers(width)), int(rng.integers(height)))
    axes = tuple(int(v) for v in rng.uniform(0.05, 0.15, 2) * side)
    cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 1.0)[..., None]
    colour = rng.uniform(0.0, 1.0, 3).astype(np.float32)
    return (image * (1.0 - mask) + colour * mask).astype(np.float32)


KEY_THRESHOLD = 0.1
"""Difference-key default: colour distance (max over channels) at which alpha reaches 0.5."""
KEY_SOFTNESS = 0.05
"""Difference-key default: width of the linear ramp from alpha 0 to 1 around the threshold."""
KEY_FEATHER = 1.0
"""Difference-key default: Gaussian sigma (pixels) of the pre-smoothing and the final feather."""


def difference_key(
    image: np.ndarray,
    plate: np.ndarray,
    threshold: float = KEY_THRESHOLD,
    softness: float = KEY_SOFTNESS,
    feather: float = KEY_FEATHER,
) -> np.ndarray:
    r"""The classical difference key: alpha from the colour distance to the clean plate.

    .. math::

        d = G_f * \max_c |I_c - P_c|, \qquad
        \alpha = G_f * \mathrm{clip}\Big(\frac{d - t}{s} + \frac12, 0, 1\Big)

    with :math:`G_f` a Gaussian of sigma ``feather`` (it smooths sensor noise before the
    threshold and feathers the edge after it), :math:`t` the threshold and :math:`s` the softness.

    Parameters
    ----------
    image, plate : ndarray, float32, shape (H, W, 3), values in [0, 1]
    threshold : float
        Distance at which alpha is 0.5.
    softness : float
        Width of the ramp (> 0).
    feather : float
        Gaussian sigma in pixels (0: no smoothing).

    Returns
    -------
    ndarray, float32, shape (H, W), values in [0, 1]
    """
    if image.shape != plate.shape:
        raise ValueError(f"image {image.shape} and plate {plate.shape} differ in shape")
    if softness <= 0:
        raise ValueError(f"softness must be > 0, got {softness}")
    distance = np.abs(image.astype(np.float32) - plate.astype(np.float32)).max(axis=2)
    if feather > 0:
        distance = cv2.GaussianBlur(distance, (0, 0), feather)
    alpha = np.clip((distance - threshold) / softness + 0.5, 0.0, 1.0).astype(np.float32)
    if feather > 0:
        alpha = cv2.GaussianBlur(alpha, (0, 0), feather)
    return np.clip(alpha, 0.0, 1.0).astype(np.float32)


def key_trimap(key: np.ndarray, band: int = 15) -> np.ndarray:
    """A trimap from a difference key: its 0.5 contour widened by a ``band``-pixel kernel.

    Parameters
    ----------
    key : ndarray, float32, shape (H, W), values in [0, 1]
        From :func:`difference_key`.
    band : int
        Diameter of the elliptical kernel that widens the unknown band (as training trimaps).

    Returns
    -------
    ndarray, float32, shape (H, W), values in {0, 0.5, 1}
    """
    hard = (key >= 0.5).astype(np.float32)
    # Eroding both certain regions of the hard mask opens the band along its edge.
    return trimap_from_alpha(hard, kernel_size=band)


class DifferenceKey:
    """:func:`difference_key` behind the plate-matting interface ``predict_alpha(image, plate)``,
    so the video pipeline and the benchmarks can run it where a trained plate model would go."""

    name = "difference key (baseline)"

    def __init__(
        self,
        threshold: float = KEY_THRESHOLD,
        softness: float = KEY_SOFTNESS,
        feather: float = KEY_FEATHER,
    ):
        self.options = {"threshold": threshold, "softness": softness, "feather": feather}

    def predict_alpha(self, image: np.ndarray, plate: np.ndarray) -> np.ndarray:
        """float32 (H, W) in [0, 1]; see :func:`difference_key`."""
        return difference_key(image, plate, **self.options)
