"""Matting GAN losses (``keras.ops`` only): alpha, composition, gradient, Sobel-gradient,
Laplacian-pyramid and adversarial terms.

Shapes used throughout:

* ``alpha_pred``, ``alpha_true``: (B, H, W, 1) float in [0, 1]
* ``trimap``: (B, H, W, 1) float in {0, 0.5, 1}; a pixel is unknown where |t - 0.5| < 0.25
* ``fg``, ``bg``: (B, H, W, 3) float in [0, 1]
* discriminator logits: (B, h, w, 1) float, raw (no sigmoid)

Every loss is a float32 scalar. Masked means are taken over all unknown pixels of the batch
together and are 0 when the batch has no unknown pixel.

Example
-------
>>> weights = LossWeights(adversarial=0.05)
>>> g = generator_losses(alpha_pred, alpha_true, trimap, fg, bg, weights, fake_logits=d_fake)
>>> g["total"]                      # sum of weights * g[key] over the six terms
>>> d = discriminator_losses(d_real, d_fake, weights.gan_mode)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from keras import ops

from model.compositing import UNKNOWN_TOLERANCE
from model.images import TRIMAP_UNKNOWN

GAN_MODES = ("lsgan", "nonsaturating")
LOSS_TERMS = ("alpha", "composition", "gradient", "sobel", "laplacian", "adversarial")
LAPLACIAN_LEVELS = 5
"""Pyramid levels of the Laplacian loss (FBA, RobustVideoMatting); crops need sides % 16 == 0."""

# The 5-tap binomial kernel of Burt and Adelson's pyramid, as a (5, 5, 1, 1) conv kernel.
_BINOMIAL = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]).astype(np.float32) / 256.0
_GAUSS_KERNEL = _BINOMIAL[:, :, None, None]
# Sobel derivatives along x and y as one (3, 3, 1, 2) conv kernel, scaled by 1/8 so a unit step
# per pixel has gradient 1.
_SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float32) / 8.0
_SOBEL_KERNEL = np.stack([_SOBEL_X, _SOBEL_X.T], axis=-1)[:, :, None, :]
_SOBEL_EPS = 1e-6


@dataclass(frozen=True)
class LossWeights:
    """Weights of the generator loss terms and the GAN objective.

    Attributes
    ----------
    alpha, composition, gradient, sobel, laplacian : float
        Weights of the alpha L1, composition L1, alpha-gradient L1, Sobel gradient-magnitude L1
        and Laplacian-pyramid L1 terms.
    adversarial : float
        Weight of the adversarial term (``--d-coeff``); irrelevant without logits (``--no-gan``).
    gan_mode : {"lsgan", "nonsaturating"}
        Least-squares GAN (Mao et al. 2017) or the non-saturating logistic GAN.
    """

    alpha: float = 1.0
    composition: float = 1.0
    gradient: float = 0.0
    sobel: float = 0.0
    laplacian: float = 0.0
    adversarial: float = 0.05
    gan_mode: str = "lsgan"

    def __post_init__(self) -> None:
        if self.gan_mode not in GAN_MODES:
            raise ValueError(f"gan_mode must be one of {GAN_MODES}, got {self.gan_mode!r}")
        for name in LOSS_TERMS:
            if not getattr(self, name) >= 0:
                raise ValueError(f"loss weight {name} must be >= 0, got {getattr(self, name)!r}")


def _f32(x):
    return ops.cast(x, "float32")


def unknown_mask(trimap):
    """Float32 mask, 1 where the trimap is unknown, same shape as ``trimap``.

    The tensor twin of :func:`model.compositing.unknown_mask`: ``|t - 0.5| < 0.25``.
    """
    return _f32(ops.abs(_f32(trimap) - TRIMAP_UNKNOWN) < UNKNOWN_TOLERANCE)


def _masked_mean(values, mask):
    """sum(mask * values) / max(sum(mask), 1): the mean over masked entries, 0 if there are none.

    ``mask`` broadcasts against ``values``; its count is scaled by the broadcast factor so a
    (B, H, W, 1) mask over (B, H, W, 3) values averages over channels too.
    """
    mask = ops.broadcast_to(mask, ops.shape(values))
    return ops.sum(values * mask) / ops.maximum(ops.sum(mask), 1.0)


def composite_tensors(fg, alpha, bg):
    r"""Blend ``fg`` over ``bg``: :math:`I = \alpha F + (1 - \alpha) B`, differentiably.

    The tensor twin of :func:`model.compositing.composite`, with the same argument order.

    Parameters
    ----------
    fg, bg : tensor, float, shape (B, H, W, 3), values in [0, 1]
    alpha : tensor, float, shape (B, H, W, 1), values in [0, 1]

    Returns
    -------
    tensor, shape (B, H, W, 3), values in [0, 1]
    """
    return alpha * fg + (1.0 - alpha) * bg


def _blur(x):
    """Binomial 5x5 blur with reflected borders: (B, H, W, 1) -> (B, H, W, 1)."""
    x = ops.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
    return ops.conv(x, ops.convert_to_tensor(_GAUSS_KERNEL), padding="valid")


def sobel_magnitude(x):
    r"""Sobel gradient magnitude :math:`\sqrt{G_x^2 + G_y^2 + \epsilon}` with replicated borders.

    :math:`G_x, G_y` are the 3x3 Sobel derivatives divided by 8, so a ramp rising by 1 per
    pixel has magnitude 1; :math:`\epsilon = 10^{-6}` keeps the square root differentiable
    where the image is flat.

    Parameters
    ----------
    x : tensor, float, shape (B, H, W, 1)

    Returns
    -------
    tensor, float32, shape (B, H, W, 1), values >= 1e-3
    """
    x = ops.pad(_f32(x), ((0, 0), (1, 1), (1, 1), (0, 0)), mode="symmetric")
    derivatives = ops.conv(x, ops.convert_to_tensor(_SOBEL_KERNEL), padding="valid")
    return ops.sqrt(ops.sum(ops.square(derivatives), axis=-1, keepdims=True) + _SOBEL_EPS)


def laplacian_pyramid(x, levels: int = LAPLACIAN_LEVELS) -> list:
    """Band-pass levels of ``x`` (B, H, W, 1), finest first; the last one is the low-pass rest.

    Level i has shape (B, H / 2^i, W / 2^i, 1): the image at that scale minus its blurred,
    subsampled and re-expanded (nearest neighbour, then blurred) version. H and W must be
    divisible by 2^(levels - 1) and at least 2^levels (the reflected border of the blur needs
    3 pixels at the second-coarsest level).
    """
    bands = []
    current = x
    for _ in range(levels - 1):
        down = _blur(current)[:, ::2, ::2]
        up = _blur(ops.repeat(ops.repeat(down, 2, axis=1), 2, axis=2))
        bands.append(current - up)
        current = down
    bands.append(current)
    return bands


def _adversarial_generator(fake_logits, gan_mode: str):
    fake_logits = _f32(fake_logits)
    if gan_mode == "lsgan":
        return ops.mean(ops.square(fake_logits - 1.0))
    return ops.mean(ops.softplus(-fake_logits))


def generator_losses(
    alpha_pred, alpha_true, trimap, fg, bg, weights: LossWeights, fake_logits=None
) -> dict:
    r"""Generator loss terms and their weighted sum.

    With U the unknown pixels (of the whole batch), |U| their count, and
    :math:`I(\alpha) = \alpha F + (1 - \alpha) B`:

    .. math::

        L_\alpha = \frac{1}{|U|} \sum_{p \in U} |\hat\alpha_p - \alpha_p|

        L_{comp} = \frac{1}{3|U|} \sum_{p \in U} \sum_{c} |I(\hat\alpha)_{pc} - I(\alpha)_{pc}|

        L_{grad} = \frac{1}{|E|} \sum_{(p, q) \in E}
                   |(\hat\alpha_q - \hat\alpha_p) - (\alpha_q - \alpha_p)|

        L_{sobel} = \frac{1}{|U|} \sum_{p \in U} \big| |S\hat\alpha|_p - |S\alpha|_p \big|

        L_{lap} = \frac{1}{f_U} \sum_{i=0}^{4} 2^i \, \mathrm{mean}|L_i(\tilde\alpha - \alpha)|

        L_{adv} = \mathrm{mean}((D(\hat I) - 1)^2) \; \text{(LSGAN)} \quad \text{or} \quad
                  \mathrm{mean}(\mathrm{softplus}(-D(\hat I))) \; \text{(non-saturating)}

        L_{total} = w_\alpha L_\alpha + w_{comp} L_{comp} + w_{grad} L_{grad}
                    + w_{sobel} L_{sobel} + w_{lap} L_{lap} + w_{adv} L_{adv}

    where E are the horizontally and vertically adjacent pixel pairs with at least one pixel in U
    (forward differences); :math:`|S\alpha|` is the Sobel gradient magnitude
    (:func:`sobel_magnitude`), which compares edge strength the way the Grad metric does;
    :math:`L_i` is level i of the Laplacian pyramid
    (:func:`laplacian_pyramid`), :math:`\tilde\alpha` the prediction clamped to the trimap
    outside U, as inference returns it, and :math:`f_U` the fraction of unknown pixels, so
    the term does not shrink with a narrow band. The pyramid (as in FBA and RobustVideoMatting)
    weighs errors at every scale: coarse offsets as much as fine texture.

    Parameters
    ----------
    alpha_pred, alpha_true : tensor, float, shape (B, H, W, 1), values in [0, 1]
    trimap : tensor, float, shape (B, H, W, 1), values in {0, 0.5, 1}
    fg, bg : tensor, float, shape (B, H, W, 3), values in [0, 1]
    weights : LossWeights
    fake_logits : tensor, float, shape (B, h, w, 1), or None
        Discriminator logits for the composite made with ``alpha_pred``; None (``--no-gan``)
        makes the adversarial term 0.

    Returns
    -------
    dict of str to float32 scalar tensors
        Always the keys "alpha", "composition", "gradient", "sobel", "laplacian",
        "adversarial" and "total". The Sobel and Laplacian terms are only computed when their
        weight is non-zero (else 0); the Laplacian one then needs H and W divisible by 16.
    """
    alpha_pred, alpha_true = _f32(alpha_pred), _f32(alpha_true)
    fg, bg = _f32(fg), _f32(bg)
    mask = unknown_mask(trimap)  # (B, H, W, 1)

    alpha_l1 = _masked_mean(ops.abs(alpha_pred - alpha_true), mask)

    predicted = composite_tensors(fg, alpha_pred, bg)  # (B, H, W, 3)
    comp_diff = ops.abs(predicted - composite_tensors(fg, alpha_true, bg))
    composition = _masked_mean(comp_diff, mask)  # (B, H, W, 3) against a (B, H, W, 1) mask

    err = alpha_pred - alpha_true  # the gradient difference is the gradient of the error
    dx = ops.abs(err[:, :, 1:] - err[:, :, :-1])  # (B, H, W-1, 1)
    dy = ops.abs(err[:, 1:] - err[:, :-1])  # (B, H-1, W, 1)
    mask_x = ops.maximum(mask[:, :, 1:], mask[:, :, :-1])
    mask_y = ops.maximum(mask[:, 1:], mask[:, :-1])
    gradient = (ops.sum(dx * mask_x) + ops.sum(dy * mask_y)) / ops.maximum(
        ops.sum(mask_x) + ops.sum(mask_y), 1.0
    )

    sobel = ops.zeros((), dtype="float32")
    if weights.sobel:
        edge_error = ops.abs(sobel_magnitude(alpha_pred) - sobel_magnitude(alpha_true))
        sobel = _masked_mean(edge_error, mask)

    laplacian = ops.zeros((), dtype="float32")
    if weights.laplacian:
        trimap = _f32(trimap)
        clamped = mask * alpha_pred + (1.0 - mask) * ops.cast(trimap > 0.5, "float32")
        levels = laplacian_pyramid(clamped - alpha_true)
        laplacian = sum(2.0**i * ops.mean(ops.abs(level)) for i, level in enumerate(levels))
        laplacian = laplacian / ops.maximum(ops.mean(mask), 1e-3)

    if fake_logits is None:
        adversarial = ops.zeros((), dtype="float32")
    else:
        adversarial = _adversarial_generator(fake_logits, weights.gan_mode)

    losses = {
        "alpha": alpha_l1,
        "composition": composition,
        "gradient": gradient,
        "sobel": sobel,
        "laplacian": laplacian,
        "adversarial": adversarial,
    }
    losses["total"] = sum(getattr(weights, key) * losses[key] for key in LOSS_TERMS)
    return {key: _f32(value) for key, value in losses.items()}


def discriminator_losses(real_logits, fake_logits, gan_mode: str = "lsgan") -> dict:
    r"""Discriminator loss on real and fake composites.

    .. math::

        \text{LSGAN:} \quad L_{real} = \mathrm{mean}((D(I) - 1)^2), \quad
        L_{fake} = \mathrm{mean}(D(\hat I)^2)

        \text{non-saturating:} \quad L_{real} = \mathrm{mean}(\mathrm{softplus}(-D(I))), \quad
        L_{fake} = \mathrm{mean}(\mathrm{softplus}(D(\hat I)))

        L_{total} = (L_{real} + L_{fake}) / 2

    The halving (pix2pix) slows D relative to G in both modes. softplus(-x) is the binary
    cross-entropy of sigmoid(x) against label 1, in a numerically stable form.

    Parameters
    ----------
    real_logits, fake_logits : tensor, float, shape (B, h, w, 1)
        Raw logits for composites made with the true and with the predicted alpha.
    gan_mode : {"lsgan", "nonsaturating"}

    Returns
    -------
    dict of str to float32 scalar tensors with keys "real", "fake", "total".
    """
    if gan_mode not in GAN_MODES:
        raise ValueError(f"gan_mode must be one of {GAN_MODES}, got {gan_mode!r}")
    real_logits, fake_logits = _f32(real_logits), _f32(fake_logits)
    if gan_mode == "lsgan":
        real = ops.mean(ops.square(real_logits - 1.0))
        fake = ops.mean(ops.square(fake_logits))
    else:
        real = ops.mean(ops.softplus(-real_logits))
        fake = ops.mean(ops.softplus(fake_logits))
    return {"real": real, "fake": fake, "total": 0.5 * (real + fake)}
