"""Un-augmented evaluation samples from a dataset folder written by ``scripts/combine.py``.

Each element is one sample in sorted-name order, batch 1, padded by reflection to the
generator's multiple, with a ``valid`` mask of the sample's own pixels; see
:func:`make_eval_dataset`. Training crops are ``model.dataset``'s.

Example
-------
>>> val = make_eval_dataset("scripts/data", "val", multiple=32, max_samples=50)
>>> for sample in val:  # batch 1, padded to multiples of 32, with a "valid" mask
...     pass
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf

from model.classical import has_prior
from model.compositing import unknown_crop_origin
from model.dataset import (
    EVAL_STREAM,
    KINDS,
    PRIOR_KIND,
    DatasetError,
    bgr_to_rgb,
    deterministic_options,
    list_samples,
    name_tensors,
    prior_for,
    read_grey,
    read_prior,
    read_rgb,
    to_float,
)
from model.images import trimap_from_uint8


class _EvalLoader:
    """Turns a sample index into one un-augmented, padded evaluation sample."""

    def __init__(
        self,
        split_dir: Path,
        stems: list[str],
        multiple: int,
        crop_size: int | None,
        prior: bool = False,
    ):
        self.split_dir = split_dir
        self.stems = stems
        self.multiple = multiple
        self.crop_size = crop_size
        self.prior = prior

    def __call__(self, index: np.int64) -> tuple[np.ndarray, ...]:
        index = int(index)
        stem = self.stems[index]
        image = read_rgb(self.split_dir / "image" / f"{stem}.png")
        disk_trimap = read_grey(self.split_dir / "trimap" / f"{stem}.png")
        alpha = read_grey(self.split_dir / "alpha" / f"{stem}.png")
        fg = read_rgb(self.split_dir / "fg" / f"{stem}.png")
        bg = read_rgb(self.split_dir / "bg" / f"{stem}.png")
        trimap = trimap_from_uint8(disk_trimap)
        arrays = [image, trimap, alpha, fg, bg]
        kinds = list(KINDS[1:])
        if self.prior:
            prior = read_prior(self.split_dir / PRIOR_KIND / f"{stem}.png")
            if prior.shape == trimap.shape:  # else the size check below names the file
                prior = prior_for(prior, trimap, has_prior(trimap))
            arrays.append(prior)
            kinds.append(PRIOR_KIND)
        for kind, pixels in zip(kinds, arrays[1:], strict=True):
            if pixels.shape[:2] != image.shape[:2]:
                raise DatasetError(f"{self.split_dir / kind / stem}.png: size differs from image")

        if self.crop_size is not None:
            crop_height = min(self.crop_size, image.shape[0])
            crop_width = min(self.crop_size, image.shape[1])
            rng = np.random.default_rng([EVAL_STREAM, index])
            top, left = unknown_crop_origin(trimap, crop_height, crop_width, rng)
            arrays = [a[top : top + crop_height, left : left + crop_width] for a in arrays]
        image, trimap, alpha, fg, bg = arrays[:5]
        height, width = image.shape[:2]
        pad_y = -height % self.multiple
        pad_x = -width % self.multiple

        def pad(pixels: np.ndarray) -> np.ndarray:
            if pad_y or pad_x:
                pixels = cv2.copyMakeBorder(pixels, 0, pad_y, 0, pad_x, cv2.BORDER_REFLECT_101)
            return pixels

        valid = np.zeros((height + pad_y, width + pad_x, 1), np.float32)
        valid[:height, :width] = 1.0
        out = (
            to_float(bgr_to_rgb(pad(image))),
            pad(trimap)[..., None],
            to_float(pad(alpha))[..., None],
            to_float(bgr_to_rgb(pad(fg))),
            to_float(bgr_to_rgb(pad(bg))),
            valid,
        )
        if self.prior:
            out += (pad(arrays[5])[..., None],)
        return out


def make_eval_dataset(
    root: str | os.PathLike,
    split: str = "val",
    *,
    multiple: int,
    max_samples: int | None = None,
    crop_size: int | None = None,
    prior: bool = False,
) -> tf.data.Dataset:
    """Un-augmented samples in sorted-name order, one per batch, padded for the network.

    Parameters
    ----------
    root : path-like
        Dataset folder written by combine.py.
    split : str
        Sub-folder to read (``"val"`` or ``"test"`` usually).
    multiple : int
        Height and width are padded (bottom and right, by reflection) up to multiples of this,
        the generator's ``ModelConfig.multiple``.
    max_samples : int, optional
        Only the first ``max_samples`` names (sorted), for a quick validation.
    crop_size : int, optional
        Cut a window of at most ``crop_size`` x ``crop_size`` around an unknown pixel first,
        the same window on every run (before padding; no resize, so pixels keep their scale).
    prior : bool
        Also yield ``prior`` (1, H, W, 1), the stored closed-form matte.

    Returns
    -------
    tf.data.Dataset
        Yields dicts of float32 tensors with batch size 1 and H, W multiples of ``multiple``:
        ``image`` (the disk composite), ``fg``, ``bg`` (1, H, W, 3) in [0, 1]; ``alpha``
        (1, H, W, 1) in [0, 1]; ``trimap`` (1, H, W, 1) in {0, 0.5, 1} (the disk trimap);
        ``valid`` (1, H, W, 1), 1.0 on the sample's own pixels (the top-left h x w) and 0.0 on
        the padding. Element ``k`` is ``list_samples(root, split)[k]``.

    Raises
    ------
    DatasetError
        From :func:`list_samples`.
    """
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, not {multiple}")
    if max_samples is not None and max_samples < 1:
        raise ValueError(f"max_samples must be >= 1, not {max_samples}")
    if crop_size is not None and crop_size < 1:
        raise ValueError(f"crop_size must be >= 1, not {crop_size}")
    stems = list_samples(root, split, prior=prior)[:max_samples]
    loader = _EvalLoader(Path(root) / split, stems, multiple, crop_size, prior)
    shapes = {
        "image": (None, None, 3),
        "trimap": (None, None, 1),
        "alpha": (None, None, 1),
        "fg": (None, None, 3),
        "bg": (None, None, 3),
        "valid": (None, None, 1),
    }
    if prior:
        shapes["prior"] = (None, None, 1)
    name = name_tensors(shapes)

    def load(index: tf.Tensor) -> dict[str, tf.Tensor]:
        tensors = tf.numpy_function(loader, [index], [tf.float32] * len(shapes), stateful=False)
        return name(*tensors)

    dataset = tf.data.Dataset.range(len(stems))
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.batch(1).prefetch(tf.data.AUTOTUNE).with_options(deterministic_options())
