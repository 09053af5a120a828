"""Data for the trimap network (``train.py DATA --task trimap``): image + target-trimap pairs.

Three layouts are recognised under ``DATA``, tried in this order for a split (``train`` or
``val``); images and targets are matched by file stem (``images/cat.jpg`` with
``masks/cat.png``), and an image without a target is skipped:

================================  =====================================  ============
layout                            folders                                target from
================================  =====================================  ============
combine.py's output               ``<split>/image/`` + ``<split>/alpha/``  the alpha
any image + mask folder pair      ``<split>/images/`` + ``<split>/masks/``  the mask
  (also flat, train only)         ``images/`` + ``masks/``
DUTS (``scripts/duts.py``)        ``DUTS-TR/DUTS-TR-Image/`` + ``-Mask/``  the mask
                                  (val: ``DUTS-TE/DUTS-TE-Image/`` + ``-Mask/``)
================================  =====================================  ============

The target trimap of a sample is :func:`target_trimap`: the one trimap function of the project,
``model.compositing.trimap_from_alpha``, with a kernel relative to the image size, so the
unknown band is :data:`TRIMAP_BAND` of the shorter image side on each side of the edge (2 x 2 %
across a hard edge), as wide as the saliency trimaps' (``model.auto_trimap.DEFAULT_BAND``). A
mask is thresholded at 0.5 first (a mask says which object, not how transparent); an alpha keeps
its soft pixels, which are all unknown.

A training element is the whole image, a random window of 70-100 % of each side of it, resized
to ``crop_size`` x ``crop_size`` (the aspect ratio is not kept, as U²-Net's 320 x 320 input does
not keep it), flipped and colour-jittered; inference (``model.trimap_inference``) resizes the
whole photo the same way. Deciding what the subject is needs the whole picture; a local crop
often shows no subject at all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf

from model.compositing import colour_matrix, trimap_from_alpha
from model.dataset import (
    DatasetError,
    deterministic_options,
    name_tensors,
    read_grey,
    read_rgb,
    to_float,
)
from model.evaluation import images_by_stem

TRIMAP_BAND = 0.02
"""Unknown margin on each side of the object edge, as a fraction of the shorter image side."""

WINDOW_RANGE = (0.7, 1.0)
"""A training window spans this fraction of the image height (and, drawn apart, width)."""

LAYOUTS = (
    "<split>/image + <split>/alpha (combine.py), <split>/images + <split>/masks,"
    " images + masks, or DUTS-TR/DUTS-TR-Image + DUTS-TR/DUTS-TR-Mask"
)


@dataclass(frozen=True)
class TrimapPair:
    """One sample: the image, the file its target comes from, and whether that is an alpha."""

    name: str
    image: Path
    target: Path
    soft: bool


def _layouts(root: Path, split: str) -> list[tuple[Path, Path, bool]]:
    """Candidate (image folder, target folder, target is an alpha) for a split, in order."""
    duts = {"train": "TR", "val": "TE"}.get(split)
    found = [
        (root / split / "image", root / split / "alpha", True),
        (root / split / "images", root / split / "masks", False),
    ]
    if duts is not None:
        base = root / f"DUTS-{duts}"
        found.append((base / f"DUTS-{duts}-Image", base / f"DUTS-{duts}-Mask", False))
    if split == "train":
        found.append((root / "images", root / "masks", False))
    return found


def find_pairs(root: str | os.PathLike, split: str) -> list[TrimapPair]:
    """The samples of ``split`` under ``root``, sorted by name (see the module docstring).

    Raises
    ------
    DatasetError
        ``root`` is missing, or no layout with at least one matched pair exists for the split;
        the message names the folder and the layouts looked for.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    for images, targets, soft in _layouts(root, split):
        if not (images.is_dir() and targets.is_dir()):
            continue
        image_files, target_files = images_by_stem(images), images_by_stem(targets)
        names = sorted(set(image_files) & set(target_files))
        if names:
            return [TrimapPair(n, image_files[n], target_files[n], soft) for n in names]
        raise DatasetError(f"{images}: no image has a file of the same stem in {targets}")
    raise DatasetError(f"{root}: no {split} image/target pairs; expected {LAYOUTS}")


def has_split(root: str | os.PathLike, split: str) -> bool:
    """Whether :func:`find_pairs` finds samples of ``split``."""
    try:
        find_pairs(root, split)
    except DatasetError:
        return False
    return True


def target_trimap(target: np.ndarray, *, soft: bool, band: float = TRIMAP_BAND) -> np.ndarray:
    """The 3-class target of one image from its alpha (``soft``) or mask.

    With ``r = max(1, round(band * min(H, W)))`` (``r = 0`` for ``band == 0``), a mask is first
    made hard, ``m = [target >= 0.5]`` (an alpha is used as it is), then
    ``model.compositing.trimap_from_alpha`` with an elliptical kernel of diameter ``2 r + 1``::

        foreground = erode([m == 1], K)    background = erode([m == 0], K)    else unknown

    so across a hard edge the unknown band is ``2 r`` pixels wide, and every 0 < alpha < 1
    pixel of a soft target is unknown.

    Parameters
    ----------
    target : ndarray, float32, shape (H, W), values in [0, 1]
    soft : bool
        An alpha matte (keep soft values) rather than a mask.
    band : float
        Margin on each side of the edge as a fraction of the shorter side, in [0, 0.5].

    Returns
    -------
    ndarray, float32, shape (H, W), values in {0.0, 0.5, 1.0}
    """
    if not 0.0 <= band <= 0.5:
        raise ValueError(f"band must be in [0, 0.5], got {band}")
    alpha = target if soft else (target >= 0.5).astype(np.float32)
    # At least one pixel: on a small image a hard mask edge would otherwise get no band at all.
    radius = max(1, round(band * min(target.shape))) if band > 0 else 0
    return trimap_from_alpha(alpha, kernel_size=2 * radius + 1)


def trimap_classes(trimap: np.ndarray) -> np.ndarray:
    """Trimap values {0, 0.5, 1} (H, W) float -> class indices {0, 1, 2} (H, W) int32."""
    return np.rint(np.asarray(trimap, np.float32) * 2.0).astype(np.int32)


def load_pair(pair: TrimapPair) -> tuple[np.ndarray, np.ndarray]:
    """Decode a sample: RGB (H, W, 3) float32 in [0, 1] and its target trimap (H, W) float32.

    Raises
    ------
    DatasetError
        A file that cannot be decoded, or an image and a target of different sizes.
    """
    image = cv2.cvtColor(read_rgb(pair.image), cv2.COLOR_BGR2RGB)
    target = read_grey(pair.target)
    if target.shape != image.shape[:2]:
        raise DatasetError(
            f"{pair.target}: {target.shape[1]}x{target.shape[0]} but the image is"
            f" {image.shape[1]}x{image.shape[0]}"
        )
    return to_float(image), target_trimap(to_float(target), soft=pair.soft)


def _resize(image: np.ndarray, labels: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Image area/bilinear-resized and labels nearest-resized to (size, size)."""
    shrink = image.shape[0] > size and image.shape[1] > size
    method = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    image = cv2.resize(image, (size, size), interpolation=method)
    labels = cv2.resize(labels, (size, size), interpolation=cv2.INTER_NEAREST)
    return np.clip(image, 0.0, 1.0), labels


class TrimapSampler:
    """Element counter -> one (image, labels) pair (runs in tf.data threads).

    With ``shuffle``, counter ``i`` is position ``i % n`` of epoch ``i // n``'s permutation
    (seeded by ``(seed, epoch)``) and its augmentation is seeded by ``(seed, i)``; without,
    it is pair ``i`` in name order.
    """

    def __init__(
        self, pairs: list[TrimapPair], size: int, seed: int, *, augment: bool, shuffle: bool
    ):
        self.pairs, self.size, self.seed = pairs, size, seed
        self.augment, self.shuffle = augment, shuffle

    def __call__(self, counter) -> tuple[np.ndarray, np.ndarray]:
        counter = int(counter)
        epoch, index = divmod(counter, len(self.pairs))
        if self.shuffle:
            index = np.random.default_rng([self.seed, 0, epoch]).permutation(len(self.pairs))[index]
        image, trimap = load_pair(self.pairs[index])
        labels = trimap_classes(trimap).astype(np.uint8)
        if self.augment:
            image, labels = _augment(image, labels, np.random.default_rng([self.seed, 1, counter]))
        image, labels = _resize(image, labels, self.size)
        return image.astype(np.float32), labels.astype(np.int32)


def _augment(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator):
    """A random window (:data:`WINDOW_RANGE` of each side), a horizontal flip half of the time,
    and a colour jitter (hue +-10 degrees, saturation x0.75-1.25, brightness x0.8-1.2)."""
    height, width = labels.shape
    h = max(1, round(height * rng.uniform(*WINDOW_RANGE)))
    w = max(1, round(width * rng.uniform(*WINDOW_RANGE)))
    top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
    image, labels = image[top : top + h, left : left + w], labels[top : top + h, left : left + w]
    if rng.random() < 0.5:
        image, labels = image[:, ::-1], labels[:, ::-1]
    matrix = colour_matrix(rng.uniform(-10, 10), rng.uniform(0.75, 1.25), rng.uniform(0.8, 1.2))
    image = np.clip(cv2.transform(np.ascontiguousarray(image), matrix), 0.0, 1.0)
    return np.ascontiguousarray(image, np.float32), np.ascontiguousarray(labels)


def make_trimap_dataset(
    root: str | os.PathLike,
    split: str,
    *,
    size: int,
    batch_size: int,
    seed: int = 0,
    augment: bool = True,
    repeat: bool = True,
    max_samples: int | None = None,
) -> tf.data.Dataset:
    """Batches of ``image`` (B, S, S, 3) float32 in [0, 1] and ``labels`` (B, S, S) int32 in
    {0, 1, 2} (background, unknown, foreground).

    With ``repeat`` (training): infinite, shuffled per epoch by ``seed``, augmented when
    ``augment``, full batches. Without (validation): the first ``max_samples`` pairs in name
    order, once, each whole image resized to S x S.

    Raises
    ------
    DatasetError
        From :func:`find_pairs`; a file that becomes unreadable while iterating surfaces as a
        ``tf.errors.OpError`` whose message holds the DatasetError's.
    """
    pairs = find_pairs(root, split)
    if max_samples is not None:
        pairs = pairs[:max_samples]
    sampler = TrimapSampler(
        pairs, size, int(seed) % 2**63, augment=augment and repeat, shuffle=repeat
    )
    name = name_tensors({"image": (size, size, 3), "labels": (size, size)})

    def load(counter: tf.Tensor) -> dict[str, tf.Tensor]:
        tensors = tf.numpy_function(sampler, [counter], [tf.float32, tf.int32], stateful=False)
        return name(*tensors)

    if repeat:
        dataset = tf.data.Dataset.counter(dtype=tf.int64)
    else:
        dataset = tf.data.Dataset.range(len(pairs), output_type=tf.int64)
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch_size, drop_remainder=repeat)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(deterministic_options())
