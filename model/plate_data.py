"""tf.data pipelines for the plate generator: the still pipelines of ``model.dataset`` plus plates.

Training elements are ``model.dataset``'s augmented crops (window, flip, re-composition, colour
jitter), then, drawn per element from ``(seed, counter)``:

1. with probability ``SHADOW_PROBABILITY`` the subject casts a soft shadow on the scene
   (``model.plate.cast_shadow``), which the plate does not have;
2. with probability ``OBJECT_PROBABILITY`` an object is painted into the scene or into the
   plate (``model.plate.paste_object``): something moved between the two shots;
3. the image is re-composited over that scene, plus sensor noise of its own (sigma <= 0.02);
4. the plate is the crop's clean background, perturbed (``model.plate.random_perturbation``):
   shifted, rotated, re-exposed, white-balanced, gamma-changed, blurred, noised.

The element's ``bg`` is the scene behind the subject (shadow and object included), so the
composition loss compares against what the photograph really holds. Its ``trimap`` is the
ground-truth trimap of ``model.dataset``: the generator never sees it, the discriminator gets
it as its fourth channel (it says where the subject's edge is, as for the trimap model), and
the losses ignore it (the plate model is judged on the whole image).

Evaluation elements are ``model.eval_data.make_eval_dataset``'s, plus a ``plate`` made from the
sample's background with a fixed perturbation, and with ``trimap`` replaced by an all-unknown
one, so that validation metrics cover the whole image.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from model.compositing import composite
from model.dataset import TrainSampler, deterministic_options, list_samples, name_tensors
from model.eval_data import make_eval_dataset
from model.images import TRIMAP_UNKNOWN
from model.plate import (
    PlatePerturbation,
    cast_shadow,
    paste_object,
    perturb_plate,
    random_perturbation,
)

SHADOW_PROBABILITY = 0.3
OBJECT_PROBABILITY = 0.15
IMAGE_NOISE_MAX = 0.02
_PLATE_STREAM = 3

VALIDATION_PERTURBATION = PlatePerturbation(shift=(2.0, 0.0), gain=1.06, noise=0.01)
"""The plate of a validation sample: its background shifted 2 px, 6 % brighter, noised."""


class _PlateSampler:
    """``model.dataset``'s crop sampler, then shadows, objects and a perturbed plate."""

    def __init__(self, base: TrainSampler, seed: int):
        self.base = base
        self.seed = seed

    def __call__(self, counter: np.int64) -> tuple[np.ndarray, ...]:
        image, trimap, alpha, fg, bg = self.base(counter)
        rng = np.random.default_rng([self.seed, _PLATE_STREAM, int(counter)])
        scene, clean = bg, bg
        if rng.random() < SHADOW_PROBABILITY:
            scene = cast_shadow(scene, alpha[..., 0], rng)
        if rng.random() < OBJECT_PROBABILITY:
            if rng.random() < 0.5:
                scene = paste_object(scene, rng)
            else:
                clean = paste_object(clean, rng)
        if scene is not bg:
            image = composite(fg, alpha[..., 0], scene)
        noise = rng.uniform(0.0, IMAGE_NOISE_MAX)
        image = np.clip(image + rng.normal(0.0, noise, image.shape), 0.0, 1.0).astype(np.float32)
        plate = perturb_plate(clean, random_perturbation(rng))
        return image, trimap, alpha, fg, scene.astype(np.float32), plate


def make_plate_train_dataset(
    root: str | os.PathLike,
    split: str = "train",
    *,
    crop_size: int = 256,
    batch_size: int = 8,
    seed: int = 0,
    jitter: bool = True,
    recompose: bool = True,
) -> tf.data.Dataset:
    """Infinite, shuffled, augmented plate-training batches (steps in the module docstring).

    Parameters
    ----------
    root, split, crop_size, batch_size, seed, jitter, recompose
        As for ``model.dataset.make_train_dataset``.

    Returns
    -------
    tf.data.Dataset
        Yields dicts of float32 tensors: ``image``, ``fg``, ``bg``, ``plate`` (B, S, S, 3) in
        [0, 1]; ``alpha`` (B, S, S, 1) in [0, 1]; ``trimap`` (B, S, S, 1) in {0, 0.5, 1}.
        ``image`` equals ``alpha * fg + (1 - alpha) * bg`` up to the image noise.
    """
    if crop_size < 1 or batch_size < 1:
        raise ValueError(f"crop_size and batch_size must be >= 1, not {crop_size}, {batch_size}")
    stems = list_samples(root, split)
    seed = int(seed) % 2**63
    base = TrainSampler(
        Path(root) / split, stems, crop_size, seed, jitter, recompose, redraw_trimap=True
    )
    sampler = _PlateSampler(base, seed)
    rgb, grey = (crop_size, crop_size, 3), (crop_size, crop_size, 1)
    shapes = {"image": rgb, "trimap": grey, "alpha": grey, "fg": rgb, "bg": rgb, "plate": rgb}
    name = name_tensors(shapes)

    def load(counter: tf.Tensor) -> dict[str, tf.Tensor]:
        tensors = tf.numpy_function(sampler, [counter], [tf.float32] * len(shapes), stateful=False)
        return name(*tensors)

    dataset = tf.data.Dataset.counter(dtype=tf.int64)
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(deterministic_options())


def make_plate_eval_dataset(
    root: str | os.PathLike,
    split: str = "val",
    *,
    multiple: int,
    max_samples: int | None = None,
    perturbation: PlatePerturbation = VALIDATION_PERTURBATION,
) -> tf.data.Dataset:
    """``model.eval_data.make_eval_dataset`` with a ``plate`` and an all-unknown ``trimap``.

    Returns
    -------
    tf.data.Dataset
        As ``make_eval_dataset`` (batch 1, padded to ``multiple``), plus ``plate``
        (1, H, W, 3): the sample's background perturbed by ``perturbation``; ``trimap`` is 0.5
        everywhere, so metrics over its unknown region are whole-image metrics.
    """

    def plate_of(bg: np.ndarray) -> np.ndarray:
        return perturb_plate(bg[0], perturbation)[None]

    def add_plate(sample: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        plate = tf.numpy_function(plate_of, [sample["bg"]], tf.float32, stateful=False)
        plate.set_shape(sample["bg"].shape)
        trimap = tf.fill(tf.shape(sample["trimap"]), tf.constant(TRIMAP_UNKNOWN, tf.float32))
        return {**sample, "plate": plate, "trimap": trimap}

    dataset = make_eval_dataset(root, split, multiple=multiple, max_samples=max_samples)
    return dataset.map(add_plate)
