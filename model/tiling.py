"""The network's view of an image in ``model.inference.Matter``: the window around the unknown
region, padding to the network's multiple, and the tiles a large window is split into with
their blending weights.

A U-Net with ``d`` poolings is only shift-equivariant for shifts by multiples of ``2**d``, so
windows and tiles start at multiples of ``ModelConfig.multiple``: each sees the same pooling
grid as the whole image.
"""

from __future__ import annotations

import math

import numpy as np


def round_up(value: int, multiple: int) -> int:
    """``value`` rounded up to a multiple of ``multiple``."""
    return -(-value // multiple) * multiple


def network_input(
    image: np.ndarray,
    trimap: np.ndarray,
    height: int,
    width: int,
    prior: np.ndarray | None = None,
) -> np.ndarray:
    """(1, height, width, C) float32: RGB ++ trimap [++ prior], reflect-padded bottom and right.

    Reflection continues the image's own texture into the padding, so the network sees no
    artificial edge at the border (zero padding would look like a black frame).
    """
    planes = (
        [image, trimap[..., None]]
        if prior is None
        else [image, trimap[..., None], prior[..., None]]
    )
    stacked = np.concatenate(planes, axis=2, dtype=np.float32)
    pad = ((0, height - image.shape[0]), (0, width - image.shape[1]), (0, 0))
    if pad[0][1] or pad[1][1]:
        stacked = np.pad(stacked, pad, mode="reflect")
    return stacked[None]


CONTEXT = 64
"""Pixels of surroundings the network sees around the unknown region's bounding box."""


def unknown_window(unknown: np.ndarray, multiple: int, margin: int) -> tuple[slice, slice]:
    """Bounding box of the True pixels of ``unknown`` (H, W) widened by ``margin``, clipped.

    The top-left corner is rounded down to a multiple of ``multiple``, so a U-Net run on the
    window sees the same pooling grid as on the whole image (see :func:`tile_origins`).
    """
    rows = np.flatnonzero(unknown.any(axis=1))
    cols = np.flatnonzero(unknown.any(axis=0))
    top = max(rows[0] - margin, 0) // multiple * multiple
    left = max(cols[0] - margin, 0) // multiple * multiple
    bottom = min(rows[-1] + 1 + margin, unknown.shape[0])
    right = min(cols[-1] + 1 + margin, unknown.shape[1])
    return slice(top, bottom), slice(left, right)


def tile_origins(size: int, tile: int, overlap: int, multiple: int = 1) -> list[int]:
    """Start offsets of tiles of length ``tile`` covering ``0..size`` with at least ``overlap``.

    Every origin is a multiple of ``multiple`` (``tile`` must be one too). A U-Net with ``d``
    poolings is only shift-equivariant for shifts by multiples of ``2**d``, so aligned tiles
    see the same pooling grid as the whole image and agree with it away from their edges.
    Tiles advance by ``tile - overlap`` rounded down to the multiple; the last one ends at
    ``size`` rounded up to the multiple, where it is reflect-padded like the whole image is.

    Returns
    -------
    list of int, increasing, first 0; a ``size`` up to ``tile`` gives ``[0]``.
    """
    padded = round_up(size, multiple)
    if padded <= tile:
        return [0]
    stride = max((tile - overlap) // multiple * multiple, multiple)
    count = math.ceil((padded - tile) / stride) + 1
    return [min(index * stride, padded - tile) for index in range(count)]


def feather(length: int, overlap: int) -> np.ndarray:
    """1-D blending weights for one tile side: linear ramps at both ends, 1 in between.

    .. math:: w_i = \\min\\left(1, \\frac{i + 1}{o + 1}, \\frac{n - i}{o + 1}\\right)

    With ``n = length`` and ``o = overlap``. Where two tiles overlap by ``o`` pixels their ramps
    cross, so each pixel's blend moves linearly from one tile to the next; every weight is
    positive, so a pixel covered by one tile alone keeps that tile's value after normalising.

    Returns
    -------
    ndarray, float32, shape (length,), values in (0, 1].
    """
    index = np.arange(length, dtype=np.float32)
    ramp = np.minimum(index + 1, length - index) / np.float32(overlap + 1)
    return np.minimum(ramp, 1.0).astype(np.float32)
