"""The outputs made from a matte, one implementation for eval.py and serve.py.

Each output is a PNG, encoded in memory by :func:`encode_outputs`:

=============  ===============================================================================
``rgba``       8-bit RGBA: estimated foreground colours ++ alpha (straight alpha)
``composite``  8-bit RGB, alpha*F + (1-alpha)*B over a colour or image (:func:`composite_onto`);
               the RGBA cut-out when there is no background
``alpha``      16-bit grey, the matte at full precision (an 8-bit matte would band in soft hair)
``soft_mask``  8-bit grey, the same matte, as image editors take a layer mask
``mask``       8-bit grey {0, 255}, ``binary_mask(alpha, mask_threshold)``
``trimap``     8-bit grey {0, 128, 255}, the trimap as it was read
=============  ===============================================================================
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import ImageColor

from model.compositing import composite, fit_background
from model.images import ImageError, encode_png, read_image, trimap_to_uint8

Colour = tuple[float, float, float]

OUTPUTS = ("rgba", "composite", "alpha", "soft_mask", "mask", "trimap")
"""Every output :func:`encode_outputs` can make, in the order it makes them."""

_RGB_TRIPLE = re.compile(r"^\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*$")


def parse_colour(text: str) -> Colour | None:
    """``"0,255,0"``, ``"#00ff00"``, ``"#0f0"`` or a CSS name -> RGB in [0, 1], else None."""
    match = _RGB_TRIPLE.match(text)
    if match:
        values = [int(group) for group in match.groups()]
        if max(values) > 255:
            return None
    else:
        try:
            values = ImageColor.getrgb(text.strip())[:3]
        except ValueError:
            return None
    red, green, blue = (value / 255.0 for value in values)
    return red, green, blue


def parse_background(text_or_path: str | Path) -> Colour | np.ndarray:
    """A ``--background`` argument: a colour, or an image file.

    Parameters
    ----------
    text_or_path : str or path
        ``"R,G,B"`` with 0-255 integers, ``"#rrggbb"``/``"#rgb"``, a CSS colour name such as
        ``"white"``, or the path of an image.

    Returns
    -------
    (r, g, b) floats in [0, 1], or ndarray float32 (H, W, 3) in [0, 1].

    Raises
    ------
    ImageError
        Neither a colour nor a readable image; the message names the argument.
    """
    text = str(text_or_path)
    colour = None if Path(text).exists() else parse_colour(text)
    if colour is not None:
        return colour
    if not Path(text).exists():
        raise ImageError(text, "neither a colour (R,G,B or #rrggbb) nor an existing image file")
    return read_image(text)


def composite_onto(
    foreground: np.ndarray, alpha: np.ndarray, background: Colour | np.ndarray
) -> np.ndarray:
    """Place a cut-out over a plain colour or a new background image.

    .. math:: C = \\alpha F + (1 - \\alpha) B

    Parameters
    ----------
    foreground : ndarray, float32, shape (H, W, 3), values in [0, 1]
    alpha : ndarray, float32, shape (H, W), values in [0, 1]
    background : (r, g, b) in [0, 1], or ndarray float32 (h, w, 3)
        An image is scaled to cover (H, W) and centre-cropped (``fit_background``).

    Returns
    -------
    ndarray, float32, shape (H, W, 3), values in [0, 1]
    """
    height, width = alpha.shape
    if isinstance(background, np.ndarray):
        backdrop = fit_background(background[..., :3], height, width)
    else:
        backdrop = np.broadcast_to(np.asarray(background, np.float32), (height, width, 3))
    return composite(foreground, alpha, backdrop)


def binary_mask(alpha: np.ndarray, threshold: float) -> np.ndarray:
    """Hard segmentation mask: ``alpha >= threshold``.

    Parameters
    ----------
    alpha : ndarray, float32, shape (H, W), values in [0, 1]
    threshold : float in [0, 1]

    Returns
    -------
    ndarray, bool, shape (H, W)
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"the mask threshold must be in [0, 1], got {threshold}")
    return alpha >= threshold


def encode_outputs(
    names: Iterable[str],
    alpha: np.ndarray,
    *,
    foreground: np.ndarray | None = None,
    trimap: np.ndarray | None = None,
    background: Colour | np.ndarray | None = None,
    mask_threshold: float | None = None,
) -> dict[str, bytes]:
    """Encode the named outputs of one matte as PNG bytes (see the module docstring).

    Parameters
    ----------
    names : iterable of str, each in :data:`OUTPUTS`
    alpha : ndarray, float32, shape (H, W), values in [0, 1]
    foreground : ndarray, float32, shape (H, W, 3), values in [0, 1]
        Needed by ``rgba`` and ``composite``.
    trimap : ndarray, float32, shape (H, W), values {0, 0.5, 1}
        Needed by ``trimap``.
    background : (r, g, b) in [0, 1], ndarray float32 (h, w, 3), or None (transparent)
    mask_threshold : float in [0, 1]
        Needed by ``mask``.

    Returns
    -------
    dict from name to PNG bytes, in :data:`OUTPUTS` order.

    Raises
    ------
    ValueError
        An unknown name, or a name whose input was not given.
    """
    wanted = set(names)
    unknown = wanted - set(OUTPUTS)
    if unknown:
        raise ValueError(f"unknown outputs {sorted(unknown)}; expected some of {OUTPUTS}")
    needs = {"rgba": foreground, "composite": foreground, "trimap": trimap, "mask": mask_threshold}
    missing = sorted(name for name in wanted if name in needs and needs[name] is None)
    if missing:
        raise ValueError(f"outputs {missing} need an input that was not given")

    def rgba() -> bytes:
        return encode_png(np.concatenate([foreground, alpha[..., None]], axis=2))

    makers = {
        "rgba": rgba,
        "composite": lambda: (
            rgba()
            if background is None
            else encode_png(composite_onto(foreground, alpha, background))
        ),
        "alpha": lambda: encode_png(alpha, bits=16),
        "soft_mask": lambda: encode_png(alpha),
        "mask": lambda: encode_png(binary_mask(alpha, mask_threshold).astype(np.uint8) * 255),
        "trimap": lambda: encode_png(trimap_to_uint8(trimap)),
    }
    return {name: makers[name]() for name in OUTPUTS if name in wanted}
