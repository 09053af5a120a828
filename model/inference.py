"""Run a trained generator on images of any size and cut out the foreground.

The network needs inputs whose sides are multiples of ``ModelConfig.multiple``, and its memory
grows with the pixel count (about 0.8 KB per pixel for the default ``ModelConfig()``: a
1-megapixel image peaks near 1.4 GB of resident memory with TensorFlow itself). So:

* the network runs only on the window around the trimap's unknown region (``CONTEXT`` pixels
  of surroundings included); outside it the answer is the trimap;
* a window larger than ``network_pixels`` is shrunk (area average; trimap by
  ``compositing.shrink_trimap``) to about that many pixels, the network runs at that working
  resolution, and a fast guided filter (``model.guided_filter.guided_upsample``) brings alpha
  back to full resolution, its edges following the full-resolution colours. This is the
  coarse-to-fine split of RobustVideoMatting and the Fast Guided Filter. It is faster, and for
  the shipped snapshot also more accurate, on its 512x512 test split as on 1-megapixel images
  (see README, "Working resolution"). ``network_pixels=0`` always runs at full resolution;
* a window whose padded size fits ``max_pixels`` runs in one pass, reflect-padded to the
  multiple and cropped back;
* a larger one runs in fixed-size square tiles (``tile`` pixels, ``overlap`` pixels shared with
  each neighbour), one tile at a time, blended with linear (feathered) weights so no seam shows;
* tiles without an unknown trimap pixel are skipped: clamping would overwrite them anyway;
* the trimap's known regions are clamped (0 background, 1 foreground) in the result.

The window, the padding, the tile origins and their blending weights are in ``model/tiling.py``.

A generator with a prior (``ModelConfig.prior``) also gets pymatting's closed-form matte of the
same pixels it sees: solved on the window at the working resolution (or per tile), so its cost
follows the network's and not the photo's size (``model.classical.closed_form_prior``).

Foreground colours come from pymatting's multi-level ``estimate_foreground_ml`` (Germer et al.
2020) at full resolution. It needs about 60 bytes per pixel (0.7 GB at 12 megapixels) on top of
the image, which stays well inside a 3 GB budget, so it is not tiled: tiling would change its
coarse-to-fine result along tile seams.

TensorFlow and pymatting are imported on first use, so a command can check its arguments and
files without loading them. The output files made from a matte are in ``model/outputs.py``.

Example
-------
>>> matter = Matter.load("-1", log_dir="log")          # once
>>> matte = matter.extract(image, trimap)              # many times; thread-safe
>>> write_png("out.png", matte.rgba)
"""

from __future__ import annotations

import logging
import math
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from model.checkpoints import (
    CheckpointRef,
)
from model.compositing import shrink_trimap, unknown_mask
from model.guided_filter import guided_upsample
from model.images import TRIMAP_UNKNOWN
from model.tiling import CONTEXT, feather, network_input, round_up, tile_origins, unknown_window

DEFAULT_NETWORK_PIXELS = 384 * 384
"""Working size: a larger unknown window is shrunk to about this many pixels for the network."""

UPSAMPLE_EPS = 1e-5
"""Guided-filter ridge term for carrying alpha up from the working resolution. Smaller than the
filter's general default (1e-4) so the matte's edges follow the photo's more closely: on the
shipped snapshot it lowered Grad on the 1-megapixel set from 5.57 to 5.33 and on the 512^2
test split's solvable pairs from 4.61 to 4.49, SAD with it (README, "Working resolution")."""

DEFAULT_MAX_PIXELS = 2_000_000
"""Largest padded image (height x width) run in one pass; about 2.2 GB peak (default model)."""

DEFAULT_TILE = 1024
"""Side of the square tiles used above ``max_pixels``."""

DEFAULT_OVERLAP = 64
"""Pixels each tile shares with its neighbour; blended with linear weights."""


@dataclass(frozen=True)
class Matte:
    """The result of :meth:`Matter.extract`.

    Attributes
    ----------
    alpha : ndarray, float32, shape (H, W), values in [0, 1]
    foreground : ndarray, float32, shape (H, W, 3), values in [0, 1]
        Estimated foreground colours F of I = alpha F + (1 - alpha) B, free of the old
        background's tint at the edges.
    """

    alpha: np.ndarray
    foreground: np.ndarray

    @property
    def rgba(self) -> np.ndarray:
        """float32 (H, W, 4): foreground RGB ++ alpha, the cut-out as one straight-alpha image."""
        return np.concatenate([self.foreground, self.alpha[..., None]], axis=2)


def _check_pair(image: np.ndarray, trimap: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3), got shape {image.shape}")
    if trimap.shape != image.shape[:2]:
        raise ValueError(f"trimap shape {trimap.shape} differs from the image's {image.shape[:2]}")


def clamp_to_trimap(alpha: np.ndarray, trimap: np.ndarray) -> np.ndarray:
    """Set alpha to the trimap where the trimap is certain (``networks.clamp_known`` in numpy).

    Parameters
    ----------
    alpha : ndarray, float32, shape (H, W), values in [0, 1]
    trimap : ndarray, float32, shape (H, W), values {0, 0.5, 1}

    Returns
    -------
    ndarray, float32, shape (H, W): exactly 0 in background, exactly 1 in foreground.
    """
    unknown = unknown_mask(trimap)
    return np.where(unknown, alpha, trimap > 0.5).astype(np.float32)


def estimate_foreground(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Foreground colours F for I = alpha F + (1 - alpha) B (pymatting ``estimate_foreground_ml``).

    Parameters
    ----------
    image : ndarray, float32, shape (H, W, 3), values in [0, 1]
    alpha : ndarray, float32, shape (H, W), values in [0, 1]

    Returns
    -------
    ndarray, float32, shape (H, W, 3), values in [0, 1]
    """
    if max(alpha.shape) < 2:
        # The multi-level solver divides by log2 of the longest side; one pixel has nothing to
        # separate, and its colour is the best estimate of F.
        return image.astype(np.float32, copy=True)
    # pymatting compiles numba kernels on import: load it only when a matte is extracted.
    from pymatting import estimate_foreground_ml

    return np.asarray(estimate_foreground_ml(image, alpha), dtype=np.float32)


class Matter:
    """A generator loaded once, predicting alpha mattes for any number of images.

    Parameters
    ----------
    generator : keras.Model or callable
        ``(1, H, W, C) -> (1, H, W, 1)`` as built by ``model.networks.build_generator`` (C = 4,
        or 5 with a prior), run in a ``tf.function``; or any numpy callable with that signature,
        such as ``model.onnx_runner.OnnxGenerator``, which then runs without TensorFlow.
    config : ModelConfig
        Its architecture; ``config.multiple`` sets the padding.
    ref : CheckpointRef, optional
        Where the weights came from (None for an untrained model, e.g. in benchmarks).
    network_pixels : int
        Windows with more pixels run at a working resolution of about this many pixels and are
        guided-upsampled; 0 runs every window at full resolution.
    max_pixels : int
        Padded images up to this many pixels run in one pass; larger ones are tiled.
    tile, overlap : int
        Tile side (rounded up to ``config.multiple``) and the overlap between neighbours.

    Attributes
    ----------
    device : str
        What the network runs on, for start lines: ``"CPU"`` or ``"GPU:0 (NVIDIA H200)"``.
    engine : str
        What runs it: ``"tensorflow"``, ``"onnxruntime"`` or, for another numpy callable,
        its ``engine`` attribute (else ``"numpy"``).

    Notes
    -----
    Calls are serialised by a lock: TensorFlow already spreads one call over all cores, and two
    concurrent calls would double the peak memory. Each new input shape is traced once (listed
    in ``traced_shapes``); tiles all have one shape, so a tiled image costs a single trace.
    """

    def __init__(
        self,
        generator,
        config,
        ref: CheckpointRef | None = None,
        *,
        network_pixels: int = DEFAULT_NETWORK_PIXELS,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        tile: int = DEFAULT_TILE,
        overlap: int = DEFAULT_OVERLAP,
    ):
        multiple = config.multiple
        tile = round_up(max(tile, multiple), multiple)
        if network_pixels < 0:
            raise ValueError(f"network_pixels must be 0 or positive, got {network_pixels}")
        if max_pixels < 1:
            raise ValueError(f"max_pixels must be positive, got {max_pixels}")
        if not 0 <= overlap <= tile // 2:
            raise ValueError(f"overlap must be between 0 and half the tile ({tile // 2})")
        self.generator = generator
        self.config = config
        self.ref = ref
        self.network_pixels = network_pixels
        self.max_pixels = max_pixels
        self.tile = tile
        self.overlap = overlap
        self._lock = threading.Lock()
        # Input shapes the network has run at; each new one costs a trace (seconds), which a
        # benchmark or an evaluation should not time.
        self.traced_shapes: set[tuple[int, ...]] = set()
        keras = sys.modules.get("keras")
        if keras is not None and isinstance(generator, keras.Model):
            import tensorflow as tf

            from model.tf_startup import start_runtime

            self.device = start_runtime()
            self.engine = "tensorflow"
            # autograph=False: a functional Keras model has no Python control flow to convert.
            self._forward = tf.function(
                lambda batch: generator(batch, training=False), autograph=False
            )
            tf.get_logger().addFilter(_expected_retracing)
        else:
            self.device = getattr(generator, "device", "CPU")
            self.engine = getattr(generator, "engine", "numpy")
            self._forward = generator

    @classmethod
    def load(
        cls,
        checkpoint: str | int = "-1",
        log_dir: str | Path = "log",
        engine: str = "auto",
        **options,
    ) -> Matter:
        """Build the generator described by the run's ``config.json`` and restore its weights.

        Parameters
        ----------
        checkpoint : str or int
            ``-1`` newest, ``-k`` k-th newest, ``N >= 0`` saved at step N, or a path; see
            ``model.checkpoints.resolve_checkpoint`` (newest trained run, else
            ``log_dir/pretrained``).
            A path ending in ``.onnx`` is an export (``scripts/export.py --format onnx``), run
            by onnxruntime without importing TensorFlow (``model.onnx_runner``).
        log_dir : path
        engine : {"auto", "tensorflow", "onnx"}
            Which runtime runs a checkpoint (``model.engine``): by default the run's own
            ``model.onnx`` export when it matches the checkpoint, else TensorFlow.
        **options
            ``network_pixels``, ``max_pixels``, ``tile``, ``overlap`` for :class:`Matter`.

        Raises
        ------
        CheckpointError
            No such checkpoint, an unreadable one, or one saved from another architecture than
            its ``config.json`` describes; for ``.onnx``, a missing or inconsistent contract, a
            fixed-size export or no onnxruntime; an engine that cannot run it. The message is
            one line naming the file.
        """
        from model.engine import load_generator

        return cls(*load_generator(checkpoint, log_dir, engine=engine), **options)

    def predict_alpha(self, image: np.ndarray, trimap: np.ndarray) -> np.ndarray:
        """Alpha matte for one image.

        Parameters
        ----------
        image : ndarray, float32, shape (H, W, 3), values in [0, 1]; any H, W >= 1
        trimap : ndarray, float32, shape (H, W), values {0, 0.5, 1}

        Returns
        -------
        ndarray, float32, shape (H, W), values in [0, 1]; exactly the trimap where it is 0 or 1.
        """
        _check_pair(image, trimap)
        unknown = unknown_mask(trimap)
        alpha = np.zeros(trimap.shape, np.float32)
        if unknown.any():
            # Outside the unknown region the answer is the trimap; the network runs only on
            # the window around it, with CONTEXT pixels of surroundings to look at.
            window = unknown_window(unknown, self.config.multiple, CONTEXT)
            with self._lock:
                alpha[window] = self._predict_window(image[window], trimap[window], unknown[window])
        return clamp_to_trimap(alpha, trimap)

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) the network runs at for a window of (height, width).

        The window's own size when it has at most ``network_pixels`` pixels (or that is 0);
        otherwise about ``network_pixels`` pixels at the same aspect ratio, each side rounded to
        a multiple of ``config.multiple`` so the network needs no padding (and windows of
        similar sizes share one traced shape).
        """
        if not self.network_pixels or height * width <= self.network_pixels:
            return height, width
        scale = math.sqrt(self.network_pixels / (height * width))
        multiple = self.config.multiple

        def side(length: int) -> int:
            return min(length, max(multiple, round(length * scale / multiple) * multiple))

        return side(height), side(width)

    def _predict_window(
        self, image: np.ndarray, trimap: np.ndarray, unknown: np.ndarray
    ) -> np.ndarray:
        """Unclamped alpha for one window, at full or at the working resolution."""
        height, width = trimap.shape
        small_h, small_w = self.working_size(height, width)
        if (small_h, small_w) == (height, width):
            return self._predict_full_size(image, trimap, unknown)
        image_small = cv2.resize(image, (small_w, small_h), interpolation=cv2.INTER_AREA)
        trimap_small = shrink_trimap(trimap, small_h, small_w)
        unknown_small = trimap_small == TRIMAP_UNKNOWN
        alpha_small = self._predict_full_size(image_small, trimap_small, unknown_small)
        # Certain pixels fitted as exactly 0 or 1 anchor the local linear models at the band.
        alpha_small = clamp_to_trimap(alpha_small, trimap_small)
        upsampled = guided_upsample(alpha_small, image_small, image, eps=UPSAMPLE_EPS)
        return np.clip(upsampled, 0.0, 1.0)

    def _predict_full_size(
        self, image: np.ndarray, trimap: np.ndarray, unknown: np.ndarray
    ) -> np.ndarray:
        """Unclamped alpha at the given size: in one pass within ``max_pixels``, else tiled."""
        multiple = self.config.multiple
        height, width = trimap.shape
        padded_h, padded_w = round_up(height, multiple), round_up(width, multiple)
        if padded_h * padded_w <= self.max_pixels:
            batch = network_input(image, trimap, padded_h, padded_w, self._prior(image, trimap))
            return self._run(batch)[:height, :width]
        return self._predict_tiled(image, trimap, unknown)

    def extract(self, image: np.ndarray, trimap: np.ndarray) -> Matte:
        """Alpha (:meth:`predict_alpha`) and foreground colours (:meth:`foreground`)."""
        alpha = self.predict_alpha(image, trimap)
        return Matte(alpha, self.foreground(image, trimap, alpha))

    @staticmethod
    def foreground(image: np.ndarray, trimap: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """Foreground colours for a predicted matte (:func:`estimate_foreground`).

        Colours are estimated in the window around the unknown region only; outside it alpha is
        0 or 1, where F is the image itself (or invisible).

        Returns
        -------
        ndarray, float32, shape (H, W, 3), values in [0, 1]
        """
        foreground = image.astype(np.float32, copy=True)
        unknown = unknown_mask(trimap)
        if unknown.any():
            window = unknown_window(unknown, 1, CONTEXT)
            foreground[window] = estimate_foreground(image[window], alpha[window])
        return foreground

    def _prior(self, image: np.ndarray, trimap: np.ndarray) -> np.ndarray | None:
        """The classical matte this generator corrects, or None when it takes no prior."""
        if self.config.prior is None:
            return None
        from model.classical import closed_form_prior

        return closed_form_prior(image, trimap)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        """(1, h, w, C) float32 -> (h, w) float32 alpha, unclamped."""
        self.traced_shapes.add(batch.shape)
        return np.asarray(self._forward(batch))[0, :, :, 0]

    def _tile_windows(self, height: int, width: int) -> Iterator[tuple[int, int, int, int]]:
        multiple = self.config.multiple
        tile_h = min(self.tile, round_up(height, multiple))
        tile_w = min(self.tile, round_up(width, multiple))
        for top in tile_origins(height, tile_h, self.overlap, multiple):
            for left in tile_origins(width, tile_w, self.overlap, multiple):
                yield top, left, tile_h, tile_w

    def _predict_tiled(
        self, image: np.ndarray, trimap: np.ndarray, unknown: np.ndarray
    ) -> np.ndarray:
        """Blend tiles: alpha = sum_t w_t alpha_t / sum_t w_t over the tiles covering a pixel.

        Every tile has the same padded shape (one trace). Pixels that no computed tile covers lie
        in tiles without unknown pixels and are set by the clamp afterwards.
        """
        height, width = trimap.shape
        total = np.zeros((height, width), np.float32)
        weights = np.zeros((height, width), np.float32)
        for top, left, tile_h, tile_w in self._tile_windows(height, width):
            rows = slice(top, min(top + tile_h, height))
            cols = slice(left, min(left + tile_w, width))
            if not unknown[rows, cols].any():
                continue
            tile_image, tile_trimap = image[rows, cols], trimap[rows, cols]
            prior = self._prior(tile_image, tile_trimap)
            batch = network_input(tile_image, tile_trimap, tile_h, tile_w, prior)
            alpha = self._run(batch)
            weight = np.outer(feather(tile_h, self.overlap), feather(tile_w, self.overlap))
            used_h, used_w = rows.stop - top, cols.stop - left
            total[rows, cols] += alpha[:used_h, :used_w] * weight[:used_h, :used_w]
            weights[rows, cols] += weight[:used_h, :used_w]
        np.divide(total, weights, out=total, where=weights > 0)
        return total


def _expected_retracing(record: logging.LogRecord) -> bool:
    """Logging filter: drop TensorFlow's warning that a function keeps being traced.

    Every new input size needs its own trace (Keras' bilinear UpSampling2D wants static
    shapes), so a batch of photos of many sizes retraces by design; the warning would only
    alarm the user.
    """
    return "triggered tf.function retracing" not in record.getMessage()
