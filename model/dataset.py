"""tf.data pipelines over a dataset folder written by ``scripts/combine.py``.

Layout read (all five files of a sample have the same size; ``image`` is written last, so a
sample is complete when ``image/NAME.png`` exists)::

    <root>/<split>/{image,trimap,alpha,fg,bg}/NAME.png
    <root>/<split>/prior/NAME.png      (16-bit closed-form alpha; read with ``prior=True``)

Training elements are augmented crops, made per sample in numpy/OpenCV and run in parallel
inside ``tf.data`` (OpenCV releases the GIL while it decodes and resizes):

1. a square window of side ``crop_size`` x {1, 1.5, 2} (clipped to the image) around a random
   unknown pixel of the disk trimap, padded by reflection when the image is smaller, then
   resized to ``crop_size`` (so the network also sees objects at half scale);
2. a random horizontal flip;
3. with probability ``RECOMPOSE_PROBABILITY``, a new background: a window of the same side from
   the background of a random sample of the same split;
4. colour jitter (hue, saturation, brightness) of the foreground and background independently;
5. the trimap re-drawn from the cropped alpha with a random 1-29 px kernel, scaled with the crop;
6. the image re-composited, ``image = composite(fg, alpha, bg)``, so the four arrays a training
   step sees always satisfy the matting equation exactly (the disk image does only up to 8-bit
   rounding, and not at all after jitter or re-composition).

With ``prior=True`` each element also carries the sample's stored closed-form matte, cropped,
scaled and flipped with the alpha. That matte belongs to the stored image and trimap, so steps 3
and 5 are skipped (``recompose`` and ``redraw_trimap`` must be False), and the foreground and
background share one colour jitter: closed-form matting is invariant to a global affine change of
colours, so the stored matte stays the one the jittered image would give.

Every random choice of element ``i`` (counting across epochs) comes from a generator seeded
with ``(seed, i)``, and the sample order of each epoch from ``(seed, epoch)``, so a dataset
yields the same batches every time it is iterated, whatever the thread timing.

Examples
--------
>>> from model.dataset import make_train_dataset
>>> train = make_train_dataset("scripts/data", crop_size=320, batch_size=8, seed=0)
>>> batch = next(iter(train))  # {"image": (8, 320, 320, 3), "trimap": (8, 320, 320, 1), ...}

Evaluation samples (whole, un-augmented, padded) come from ``model.eval_data``.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf

from model.classical import has_prior
from model.compositing import (
    colour_matrix,
    composite,
    fit_background,
    trimap_from_alpha,
    unknown_crop_origin,
    unknown_mask,
)
from model.images import ImageError, probe_image, read_uint8, trimap_from_uint8

KINDS = ("image", "trimap", "alpha", "fg", "bg")
"""Sub-folders of a split; every sample has one PNG in each."""

PRIOR_KIND = "prior"
"""Optional sub-folder with each sample's closed-form matte (written by ``scripts/combine.py``)."""

CROP_SCALES = (1.0, 1.5, 2.0)
"""Training windows are ``crop_size`` times one of these before being resized to ``crop_size``."""

RECOMPOSE_PROBABILITY = 0.5
"""Chance that a training crop gets another sample's background instead of its own."""

TRIMAP_KERNEL_RANGE = (1, 29)
"""Diameters (px, at the original scale) of the kernel that widens re-drawn unknown bands."""

HUE_SHIFT_DEGREES = 10.0
"""Colour jitter: hue is rotated by up to this many degrees either way."""

SATURATION_RANGE = (0.75, 1.25)
"""Colour jitter: chroma is multiplied by a factor drawn from this range."""

BRIGHTNESS_RANGE = (0.8, 1.2)
"""Colour jitter: all three channels are multiplied by a factor drawn from this range."""

BACKGROUND_CACHE_BYTES = 64 * 2**20
"""Decoded backgrounds kept in memory (an LRU of at most this many bytes, at least one image)."""

_ORDER_STREAM, _SAMPLE_STREAM = 0, 1
EVAL_STREAM = 2
"""Random stream of the evaluation crops (``model.eval_data``), apart from the training ones."""


class DatasetError(ValueError):
    """A dataset folder that cannot be used; ``str(error)`` starts with the offending path."""


def dataset_error_in(error: BaseException) -> DatasetError | None:
    """The DatasetError that a ``tf.data`` worker raised, recovered from the error TF re-raised.

    A sample that cannot be read while iterating (a truncated PNG whose header is intact)
    raises DatasetError inside ``tf.numpy_function``; TensorFlow re-raises it as an
    ``OpError`` whose message quotes it among a few dozen lines of stack. Returns that first
    quoted message as a DatasetError, or None when the error holds none.
    """
    match = re.search(rf"{DatasetError.__name__}: (.+)", str(error))
    return DatasetError(match.group(1).strip()) if match else None


def list_samples(root: str | os.PathLike, split: str, *, prior: bool = False) -> list[str]:
    """Names of the complete samples of a split, sorted.

    Parameters
    ----------
    root : path-like
        The folder written by combine.py (``scripts/data``), holding ``<split>/``.
    split : str
        ``"train"``, ``"val"`` or ``"test"`` (any sub-folder name works).
    prior : bool
        Also require ``prior/NAME.png`` for every sample.

    Returns
    -------
    list of str
        File stems ``NAME`` of every ``<root>/<split>/image/NAME.png``, in sorted order.

    Raises
    ------
    DatasetError
        The split folder is missing; it has no ``image/*.png``; a sample has an image but lacks
        one of its other four files; or the five files of a sample are not all the same size.
        The message names the folder or file. Sizes come from the PNG headers (no decoding).
    """
    split_dir = Path(root) / split
    if not split_dir.is_dir():
        raise DatasetError(
            f"{split_dir}: no such dataset split (expected {split_dir / 'image' / '*.png'}"
            " as written by scripts/combine.py)"
        )
    image_dir = split_dir / "image"
    stems = sorted(path.stem for path in image_dir.glob("*.png")) if image_dir.is_dir() else []
    if not stems:
        raise DatasetError(
            f"{image_dir}: no samples (expected NAME.png files as written by scripts/combine.py)"
        )
    kinds = (*KINDS[1:], PRIOR_KIND) if prior else KINDS[1:]
    for stem in stems:
        _check_sample(split_dir, stem, kinds)
    return stems


def _check_sample(split_dir: Path, stem: str, kinds: tuple[str, ...]) -> None:
    """Raise DatasetError unless the image and the ``kinds`` files of ``stem`` share one size."""
    image_path = split_dir / "image" / f"{stem}.png"
    size = _header_size(image_path)
    for kind in kinds:
        path = split_dir / kind / f"{stem}.png"
        if not path.is_file():
            hint = " (re-run scripts/combine.py to add it)" if kind == PRIOR_KIND else ""
            raise DatasetError(f"{path}: missing (the sample has image/{stem}.png){hint}")
        other = _header_size(path)
        if other != size:
            raise DatasetError(
                f"{path}: is {other[0]}x{other[1]} but {image_path} is {size[0]}x{size[1]};"
                " all five files of a sample must be the same size"
            )


def _header_size(path: Path) -> tuple[int, int]:
    try:
        info = probe_image(path)
    except ImageError as error:
        raise DatasetError(str(error)) from None
    return info.width, info.height


def read_rgb(path: Path) -> np.ndarray:
    """Decode a colour PNG as uint8 (H, W, 3) in OpenCV's BGR order."""
    try:
        return read_uint8(path, grey=False)
    except ImageError as error:
        raise DatasetError(str(error)) from None


def read_grey(path: Path) -> np.ndarray:
    """Decode a single-channel PNG as uint8 (H, W)."""
    try:
        return read_uint8(path, grey=True)
    except ImageError as error:
        raise DatasetError(str(error)) from None


def read_prior(path: Path) -> np.ndarray:
    """Decode a stored prior (16-bit, or 8-bit, single-channel PNG) as float32 (H, W) in [0, 1]."""
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.ndim != 2:
        raise DatasetError(f"{path}: cannot read a single-channel prior")
    return pixels.astype(np.float32) / np.float32(np.iinfo(pixels.dtype).max)


def prior_for(prior: np.ndarray, trimap: np.ndarray, solvable: bool) -> np.ndarray:
    """The prior as inference computes it: the trimap where that is certain, and the trimap
    itself for a sample pymatting could not solve (16-bit storage and resizing would otherwise
    turn its 0.5 into values the generator's ``PriorGate`` takes for a real prior).

    Parameters
    ----------
    prior, trimap : ndarray, float32, shape (H, W); prior in [0, 1], trimap in {0, 0.5, 1}
    solvable : bool
        ``model.classical.has_prior`` of the sample's whole trimap.
    """
    if not solvable:
        return trimap.copy()
    known = ~unknown_mask(trimap)
    prior[known] = trimap[known]
    return prior


def to_float(pixels: np.ndarray) -> np.ndarray:
    """uint8 levels to float32 in [0, 1]; 255 maps to exactly 1.0."""
    return pixels.astype(np.float32) / np.float32(255.0)


def bgr_to_rgb(pixels: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)


_BGR_TO_RGB = np.eye(3)[::-1]


def _window(
    pixels: np.ndarray, top: int, left: int, side: int, size: int, interpolation: int
) -> np.ndarray:
    """Cut ``side`` x ``side`` at (top, left), reflect-pad where the image ends, resize to ``size``.

    Shrinking uses ``interpolation``; a window is only ever shrunk or kept (never enlarged).
    """
    patch = pixels[top : top + side, left : left + side]
    pad_y, pad_x = side - patch.shape[0], side - patch.shape[1]
    if pad_y or pad_x:
        patch = cv2.copyMakeBorder(patch, 0, pad_y, 0, pad_x, cv2.BORDER_REFLECT_101)
    if side != size:
        patch = cv2.resize(patch, (size, size), interpolation=interpolation)
    return patch


def _colour_matrix(rng: np.random.Generator) -> np.ndarray:
    """A random 3x3 colour jitter (``model.compositing.colour_matrix``) that also turns
    OpenCV's BGR into RGB.

    Returns
    -------
    ndarray, float32, shape (3, 3)
    """
    hue = rng.uniform(-HUE_SHIFT_DEGREES, HUE_SHIFT_DEGREES)
    saturation = rng.uniform(*SATURATION_RANGE)
    brightness = rng.uniform(*BRIGHTNESS_RANGE)
    return colour_matrix(hue, saturation, brightness) @ _BGR_TO_RGB.astype(np.float32)


def _to_rgb(bgr: np.ndarray, matrix: np.ndarray | None) -> np.ndarray:
    """uint8 BGR to float32 RGB in [0, 1], through the colour ``matrix`` when one is given.

    The matrix is applied to the 8-bit levels with rounding and saturation to [0, 255], so a
    jittered colour is clipped to the valid range and stays an 8-bit level, like the data.
    """
    rgb = bgr_to_rgb(bgr) if matrix is None else cv2.transform(bgr, matrix)
    return to_float(rgb)


@functools.lru_cache(maxsize=8)
def _epoch_order(seed: int, count: int, epoch: int) -> np.ndarray:
    """The sample order of one training epoch: a permutation of ``range(count)``."""
    return np.random.default_rng([seed, _ORDER_STREAM, epoch]).permutation(count)


class TrainSampler:
    """Turns an element counter into one augmented training crop (runs in tf.data threads)."""

    def __init__(
        self,
        split_dir: Path,
        stems: list[str],
        crop_size: int,
        seed: int,
        jitter: bool,
        recompose: bool,
        redraw_trimap: bool,
        prior: bool = False,
    ):
        if prior and (recompose or redraw_trimap):
            raise ValueError("a stored prior needs recompose=False and redraw_trimap=False")
        self.split_dir = split_dir
        self.stems = stems
        self.crop_size = crop_size
        self.seed = seed
        self.jitter = jitter
        self.recompose = recompose
        self.redraw_trimap = redraw_trimap
        self.prior = prior
        self._backgrounds: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cached_bytes = 0
        self._lock = threading.Lock()

    def _path(self, kind: str, index: int) -> Path:
        return self.split_dir / kind / f"{self.stems[index]}.png"

    def _background(self, index: int) -> np.ndarray:
        """Decoded uint8 BGR background of sample ``index``, from a small LRU."""
        with self._lock:
            if index in self._backgrounds:
                self._backgrounds.move_to_end(index)
                return self._backgrounds[index]
        pixels = read_rgb(self._path("bg", index))
        with self._lock:
            if index not in self._backgrounds:
                self._backgrounds[index] = pixels
                self._cached_bytes += pixels.nbytes
            while self._cached_bytes > BACKGROUND_CACHE_BYTES and len(self._backgrounds) > 1:
                self._cached_bytes -= self._backgrounds.popitem(last=False)[1].nbytes
        return pixels

    def __call__(self, counter: np.int64) -> tuple[np.ndarray, ...]:
        counter = int(counter)
        epoch, position = divmod(counter, len(self.stems))
        index = int(_epoch_order(self.seed, len(self.stems), epoch)[position])
        rng = np.random.default_rng([self.seed, _SAMPLE_STREAM, counter])
        size = self.crop_size

        alpha = read_grey(self._path("alpha", index))
        disk_trimap = read_grey(self._path("trimap", index))
        fg = read_rgb(self._path("fg", index))
        height, width = alpha.shape
        for kind, pixels in (("trimap", disk_trimap), ("fg", fg)):
            if pixels.shape[:2] != (height, width):
                raise DatasetError(f"{self._path(kind, index)}: size differs from the alpha's")

        side = round(size * float(rng.choice(CROP_SCALES)))
        side = max(size, min(side, height, width))
        top, left = unknown_crop_origin(trimap_from_uint8(disk_trimap), side, side, rng)
        alpha = _window(alpha, top, left, side, size, cv2.INTER_AREA)
        fg = _window(fg, top, left, side, size, cv2.INTER_AREA)
        flip = bool(rng.random() < 0.5)
        prior = None
        solvable = has_prior(trimap_from_uint8(disk_trimap))
        if self.prior:
            prior_path = self._path(PRIOR_KIND, index)
            prior = read_prior(prior_path)
            if prior.shape != (height, width):
                raise DatasetError(f"{prior_path}: size differs from the alpha's")
            prior = _window(prior, top, left, side, size, cv2.INTER_AREA)
            prior = cv2.flip(prior, 1) if flip else prior

        if self.recompose and rng.random() < RECOMPOSE_PROBABILITY:
            bg = self._background(int(rng.integers(len(self.stems))))
            bg_height, bg_width = bg.shape[:2]
            if bg_height >= side and bg_width >= side:
                bg_top = int(rng.integers(bg_height - side + 1))
                bg_left = int(rng.integers(bg_width - side + 1))
                bg = _window(bg, bg_top, bg_left, side, size, cv2.INTER_AREA)
            else:
                # Holds whole 0-255 levels: the resize worked on uint8.
                bg = fit_background(bg, size, size, rng).astype(np.uint8)
        else:
            bg = _window(self._background(index), top, left, side, size, cv2.INTER_AREA)

        if flip:
            alpha, fg, bg = cv2.flip(alpha, 1), cv2.flip(fg, 1), cv2.flip(bg, 1)
        alpha = to_float(alpha)
        fg_matrix = _colour_matrix(rng) if self.jitter else None
        bg_matrix = _colour_matrix(rng) if self.jitter else None
        fg = _to_rgb(fg, fg_matrix)
        bg = _to_rgb(bg, fg_matrix if self.prior else bg_matrix)

        if self.redraw_trimap:
            low, high = TRIMAP_KERNEL_RANGE
            kernel = max(1, round(int(rng.integers(low, high + 1)) * size / side))
            trimap = trimap_from_alpha(alpha, kernel_size=kernel)
        else:
            trimap = _window(disk_trimap, top, left, side, size, cv2.INTER_NEAREST)
            trimap = trimap_from_uint8(cv2.flip(trimap, 1) if flip else trimap)
            # Resizing blends alpha across the band's edge; keep every partial pixel unknown.
            trimap[(alpha > 0.0) & (alpha < 1.0)] = 0.5

        image = composite(fg, alpha, bg)
        np.clip(image, 0.0, 1.0, out=image)
        arrays = (image, trimap[..., None], alpha[..., None], fg, bg)
        if prior is not None:
            arrays += (prior_for(prior, trimap, solvable)[..., None],)
        return arrays


def name_tensors(
    shapes: dict[str, tuple[int | None, ...]],
) -> Callable[..., dict[str, tf.Tensor]]:
    """Name the tensors a numpy_function returned (in ``shapes`` order) and set their shapes."""

    def name(*tensors: tf.Tensor) -> dict[str, tf.Tensor]:
        out = {}
        for (key, shape), tensor in zip(shapes.items(), tensors, strict=True):
            tensor.set_shape(shape)
            out[key] = tensor
        return out

    return name


def deterministic_options() -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True
    return options


def make_train_dataset(
    root: str | os.PathLike,
    split: str = "train",
    *,
    crop_size: int = 320,
    batch_size: int = 8,
    seed: int = 0,
    jitter: bool = True,
    recompose: bool = True,
    redraw_trimap: bool = True,
    prior: bool = False,
) -> tf.data.Dataset:
    """Infinite, shuffled, augmented training batches (see the module docstring for the steps).

    Parameters
    ----------
    root : path-like
        Dataset folder written by combine.py; samples are listed (and checked) immediately.
    split : str
        Sub-folder to read; recomposition backgrounds come from the same split.
    crop_size : int
        Side S of the square crops.
    batch_size : int
        Elements per batch B; every batch is full (the dataset repeats forever).
    seed : int
        Fixes the epoch orders and every augmentation: iterating twice gives identical batches.
    jitter, recompose, redraw_trimap : bool
        Turn off colour jitter, new backgrounds, or re-drawn trimaps (then the disk trimap is
        cropped with the alpha, and every 0 < alpha < 1 pixel of the crop is marked unknown).
    prior : bool
        Also yield the stored closed-form matte; needs ``recompose=False`` and
        ``redraw_trimap=False`` (see the module docstring).

    Returns
    -------
    tf.data.Dataset
        Yields dicts of float32 tensors: ``image``, ``fg``, ``bg`` (B, S, S, 3) in [0, 1];
        ``alpha`` (B, S, S, 1) in [0, 1]; ``trimap`` (B, S, S, 1) in {0, 0.5, 1}, whose
        unknown region covers every 0 < alpha < 1 pixel; with ``prior``, ``prior``
        (B, S, S, 1) in [0, 1], equal to the trimap where that is certain. ``image`` equals
        ``alpha * fg + (1 - alpha) * bg`` (float32 rounding aside). Prefetched.

    Raises
    ------
    DatasetError
        From :func:`list_samples`. A file that becomes unreadable during iteration surfaces as
        a ``tf.errors.OpError`` whose message contains the DatasetError's.
    """
    if crop_size < 1 or batch_size < 1:
        raise ValueError(f"crop_size and batch_size must be >= 1, not {crop_size}, {batch_size}")
    stems = list_samples(root, split, prior=prior)
    sampler = TrainSampler(
        Path(root) / split,
        stems,
        crop_size,
        int(seed) % 2**63,
        jitter,
        recompose,
        redraw_trimap,
        prior,
    )
    shapes = {
        "image": (crop_size, crop_size, 3),
        "trimap": (crop_size, crop_size, 1),
        "alpha": (crop_size, crop_size, 1),
        "fg": (crop_size, crop_size, 3),
        "bg": (crop_size, crop_size, 3),
    }
    if prior:
        shapes["prior"] = (crop_size, crop_size, 1)
    name = name_tensors(shapes)

    def load(counter: tf.Tensor) -> dict[str, tf.Tensor]:
        tensors = tf.numpy_function(sampler, [counter], [tf.float32] * len(shapes), stateful=False)
        return name(*tensors)

    dataset = tf.data.Dataset.counter(dtype=tf.int64)
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(deterministic_options())
