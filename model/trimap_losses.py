"""Losses of the trimap network (``keras.ops`` only): 3-class cross-entropy, and BCE + Dice on
the foreground class.

Shapes:

* ``logits``: (B, H, W, 3) float, raw; classes background, unknown, foreground
* ``labels``: (B, H, W) int in {0, 1, 2}

Example
-------
>>> losses = trimap_losses(logits, labels)
>>> losses["total"]    # ce + bce + dice with the default weights of TrimapLossWeights
"""

from __future__ import annotations

from dataclasses import dataclass

from keras import ops

FOREGROUND = 2
"""Class index of the foreground (trimap value 1)."""

DICE_SMOOTHING = 1.0
"""Added to the Dice numerator and denominator: an image without foreground that predicts none
scores a Dice loss of 0 instead of 0 / 0."""


@dataclass(frozen=True)
class TrimapLossWeights:
    """Weights of the three terms: cross-entropy, foreground BCE, foreground Dice."""

    ce: float = 1.0
    bce: float = 1.0
    dice: float = 1.0


def trimap_losses(logits, labels, weights: TrimapLossWeights = TrimapLossWeights()) -> dict:
    r"""The trimap network's losses.

    With :math:`q = \operatorname{softmax}(\text{logits})`, :math:`p = q_{\text{fg}}`,
    :math:`y = [\text{label} = \text{fg}]` and means over all B x H x W pixels:

    .. math::

        \text{ce}   &= -\operatorname{mean} \log q_{\text{label}} \\
        \text{bce}  &= -\operatorname{mean} \left(y \log p + (1 - y) \log (1 - p)\right) \\
        \text{dice} &= \operatorname{mean}_b \left(1 - \frac{2 \sum p y + s}{\sum p + \sum y + s}
                       \right), \quad s = 1 \text{ (sums over one image's pixels)} \\
        \text{total} &= w_{\text{ce}}\,\text{ce} + w_{\text{bce}}\,\text{bce}
                       + w_{\text{dice}}\,\text{dice}

    :math:`\log p` and :math:`\log (1 - p)` are both taken from log-sum-exps of the logits, so
    the BCE stays finite when the softmax saturates.

    Parameters
    ----------
    logits : tensor, float, shape (B, H, W, 3)
    labels : tensor, int, shape (B, H, W), values in {0, 1, 2}
    weights : TrimapLossWeights

    Returns
    -------
    dict of str to float32 scalar tensors: ``ce``, ``bce``, ``dice``, ``total``.
    """
    logits = ops.cast(logits, "float32")
    labels = ops.cast(labels, "int32")
    log_q = logits - ops.logsumexp(logits, axis=-1, keepdims=True)  # (B, H, W, 3)
    one_hot = ops.one_hot(labels, 3, dtype="float32")  # (B, H, W, 3)
    ce = -ops.mean(ops.sum(one_hot * log_q, axis=-1))
    log_p = log_q[..., FOREGROUND]  # (B, H, W)
    log_not_p = ops.logsumexp(logits[..., :FOREGROUND], axis=-1) - ops.logsumexp(logits, axis=-1)
    y = one_hot[..., FOREGROUND]  # (B, H, W)
    bce = -ops.mean(y * log_p + (1.0 - y) * log_not_p)
    p = ops.exp(log_p)  # (B, H, W)
    overlap = ops.sum(p * y, axis=(1, 2))  # (B,)
    size = ops.sum(p, axis=(1, 2)) + ops.sum(y, axis=(1, 2))  # (B,)
    dice = ops.mean(1.0 - (2.0 * overlap + DICE_SMOOTHING) / (size + DICE_SMOOTHING))
    total = weights.ce * ce + weights.bce * bce + weights.dice * dice
    return {"ce": ce, "bce": bce, "dice": dice, "total": total}
