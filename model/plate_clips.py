"""Short training clips for the temporal plate generator, made from still composites.

RobustVideoMatting trains its recurrent network on clips made from still images moved along
smooth random paths; this does the same with a combine.py split's ``fg/``, ``alpha/`` and
``bg/``. One clip (:func:`training_clip`):

1. a random square window of the sample's foreground and alpha (a random zoom: 40-100 % of
   the shorter side) and an independent window of its background, both resized to the crop;
2. the cut-out moves along ``model.synthetic_clips.smooth_path`` over the static background
   (up to 2-15 % of the crop side over the clip), ``I_t = alpha_t F_t + (1 - alpha_t) B``;
3. every frame gets its own sensor noise (sigma up to ``FRAME_NOISE_MAX``) and, with
   probability ``EXPOSURE_PROBABILITY``, a small flicker of exposure, so the network meets the
   frame-to-frame noise that makes a still model's matte flicker;
4. the plate is the clean background, exact with probability ``EXACT_PLATE_PROBABILITY``
   (a locked-off camera, the video case) else perturbed as for still training
   (``model.plate.random_perturbation``), plus noise of its own.

Example
-------
>>> clips = ClipSampler("scripts/data", "train", crop=128, frames=4, seed=0)  # doctest: +SKIP
>>> batch = clips.batch(4)          # dict of float32 arrays, see ClipSampler.batch
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from model.dataset import list_samples
from model.images import read_alpha, read_image
from model.plate import PlatePerturbation, perturb_plate, random_perturbation
from model.synthetic_clips import shift, smooth_path

FRAME_NOISE_MAX = 0.02
EXPOSURE_PROBABILITY = 0.3
EXPOSURE_FLICKER = 0.02
"""Largest per-frame exposure change (a fraction) when a clip flickers."""
EXACT_PLATE_PROBABILITY = 0.5
PLATE_NOISE_MAX = 0.01


def _window(array: np.ndarray, rng: np.random.Generator, crop: int, zoom: float) -> np.ndarray:
    """A random square window of ``zoom`` x the shorter side, resized to crop x crop."""
    height, width = array.shape[:2]
    side = max(1, round(zoom * min(height, width)))
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    window = array[top : top + side, left : left + side]
    return cv2.resize(window, (crop, crop), interpolation=cv2.INTER_AREA)


def training_clip(
    fg: np.ndarray,
    alpha: np.ndarray,
    bg: np.ndarray,
    rng: np.random.Generator,
    *,
    crop: int,
    frames: int,
    noise_max: float = FRAME_NOISE_MAX,
    flicker_probability: float = EXPOSURE_PROBABILITY,
) -> dict[str, np.ndarray]:
    """One clip of ``frames`` frames, ``crop`` x ``crop`` (steps in the module docstring).

    Parameters
    ----------
    fg : ndarray, float32, shape (h, w, 3); alpha : float32, shape (h, w); values in [0, 1]
    bg : ndarray, float32, shape (h', w', 3), values in [0, 1]
    rng : numpy.random.Generator
    crop, frames : int
        Frame side in pixels and clip length (>= 2).
    noise_max, flicker_probability : float
        Largest per-frame noise sigma; chance of an exposure flicker (0, 0: exact composites).

    Returns
    -------
    dict of float32 arrays: ``image`` (T, S, S, 3) and ``alpha`` (T, S, S, 1) per frame,
    ``fg`` (T, S, S, 3) the moved foreground, ``bg`` (S, S, 3) the scene and ``plate``
    (S, S, 3) its clean plate; all in [0, 1]. ``image[t]`` is
    ``alpha[t] fg[t] + (1 - alpha[t]) bg`` up to the frame's noise and exposure.
    """
    zoom = float(rng.uniform(0.4, 1.0))
    fg_crop = _window(np.dstack([fg, alpha]), rng, crop, zoom)
    scene = _window(bg, rng, crop, float(rng.uniform(0.4, 1.0)))
    path = smooth_path(frames, rng, float(rng.uniform(0.02, 0.15)) * crop)
    flicker = rng.random() < flicker_probability
    noise = float(rng.uniform(0.0, noise_max))
    images, alphas, fgs = [], [], []
    for dy, dx in path:
        moved = shift(fg_crop, dy, dx)
        moved_fg, moved_alpha = moved[..., :3], np.clip(moved[..., 3:], 0.0, 1.0)
        image = moved_alpha * moved_fg + (1.0 - moved_alpha) * scene
        if flicker:
            image = image * (1.0 + rng.uniform(-EXPOSURE_FLICKER, EXPOSURE_FLICKER))
        image = image + rng.normal(0.0, noise, image.shape)
        images.append(np.clip(image, 0.0, 1.0))
        alphas.append(moved_alpha)
        fgs.append(moved_fg)
    if rng.random() < EXACT_PLATE_PROBABILITY:
        perturbation = PlatePerturbation(
            noise=float(rng.uniform(0.0, PLATE_NOISE_MAX)), seed=int(rng.integers(2**31))
        )
    else:
        perturbation = random_perturbation(rng)
    return {
        "image": np.stack(images).astype(np.float32),
        "alpha": np.stack(alphas).astype(np.float32),
        "fg": np.stack(fgs).astype(np.float32),
        "bg": scene.astype(np.float32),
        "plate": perturb_plate(scene, perturbation),
    }


class ClipSampler:
    """Draws :func:`training_clip` clips from a combine.py split, reproducibly from ``seed``.

    Parameters
    ----------
    root : path-like
        The dataset folder (``scripts/data``); ``root/split`` holds ``fg/``, ``alpha/``, ``bg/``.
    split : str
    crop, frames : int
        As for :func:`training_clip`.
    seed : int
    """

    def __init__(
        self, root: str | os.PathLike, split: str, *, crop: int, frames: int, seed: int = 0
    ):
        if crop < 8 or frames < 2:
            raise ValueError(f"crop must be >= 8 and frames >= 2, not {crop} and {frames}")
        self.folder = Path(root) / split
        self.stems = list_samples(root, split)
        self.crop, self.frames = crop, frames
        self.rng = np.random.default_rng(seed)

    def clip(self) -> dict[str, np.ndarray]:
        """One clip of a random sample."""
        stem = self.stems[int(self.rng.integers(len(self.stems)))]
        name = f"{stem}.png"
        fg = read_image(self.folder / "fg" / name)
        alpha = read_alpha(self.folder / "alpha" / name)
        bg = read_image(self.folder / "bg" / name)
        return training_clip(fg, alpha, bg, self.rng, crop=self.crop, frames=self.frames)

    def batch(self, size: int) -> dict[str, np.ndarray]:
        """``size`` clips stacked: ``image``, ``fg`` (B, T, S, S, 3); ``alpha`` (B, T, S, S, 1);
        ``bg``, ``plate`` (B, S, S, 3); float32 in [0, 1]."""
        clips = [self.clip() for _ in range(size)]
        return {key: np.stack([clip[key] for clip in clips]) for key in clips[0]}
