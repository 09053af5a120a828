"""Automatic trimaps from a trained trimap network (``train.py DATA --task trimap``).

:class:`NetworkTrimapper` is a drop-in for ``model.auto_trimap.AutoTrimapper`` (the U²-Net-p
saliency trimaps): called with a photo, it returns a trimap. The photo is resized whole to the
run's training size (``crop_size`` in its config.json, the aspect ratio not kept, as in
training; see ``model.trimap_data``), the softmax of the logits is resized bilinearly back to
the photo's size, and each pixel takes the most probable class.

:func:`make_trimapper` turns the ``--trimap-model`` option of eval.py, serve.py and
generate_trimaps.py into one or the other: ``saliency`` (the default) or a checkpoint of a
trimap run (same selectors as ``--checkpoint``: a run folder, a checkpoint prefix, -1...).

Example
-------
>>> trimapper = NetworkTrimapper("log/pretrained-trimap")
>>> trimap = trimapper(read_image("photo.jpg"))          # float32 (H, W) in {0, 0.5, 1}
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import cv2
import numpy as np

from model.checkpoints import CheckpointError, read_run_config, resolve_checkpoint

SALIENCY = "saliency"
"""``--trimap-model`` value for the U²-Net-p saliency trimaps (``model.auto_trimap``)."""

DEFAULT_SIZE = 256
"""Working size of a run whose config.json records no crop size."""


class NetworkTrimapper:
    """Trimaps from a trimap-network checkpoint, loading it at the first call.

    Parameters
    ----------
    checkpoint : str or path
        A trimap run or checkpoint (``model.checkpoints.resolve_checkpoint`` selectors; numbers
        index the newest ``--task trimap`` run under ``log_dir``).
    log_dir : path

    Raises
    ------
    CheckpointError
        No such checkpoint, or one that is not a trimap network (checked here, before anything
        slow; the weights themselves are read at the first call).
    """

    def __init__(self, checkpoint: str | os.PathLike, log_dir: str | os.PathLike = "log"):
        self.ref = resolve_checkpoint(str(checkpoint), log_dir, task="trimap")
        self.config, settings = read_run_config(self.ref.run_dir)
        if self.config.task != "trimap":
            raise CheckpointError(
                f"{self.ref.run_dir}: a {self.config.task} model, not a trimap network"
                " (train one with: python3 train.py DATA --task trimap)"
            )
        self.size = int(settings.get("crop_size") or DEFAULT_SIZE)
        if self.size % self.config.multiple:
            raise CheckpointError(
                f"{self.ref.run_dir / 'config.json'}: crop_size {self.size} is not a multiple of"
                f" {self.config.multiple}"
            )
        self._network = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the network has been loaded (by a first call)."""
        return self._network is not None

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """Class probabilities of a photo, at its size.

        Parameters
        ----------
        image : ndarray, shape (H, W, 3), float32 in [0, 1]

        Returns
        -------
        ndarray, float32, shape (H, W, 3): background, unknown, foreground; each pixel sums to 1
        (up to the bilinear resize, which keeps sums).
        """
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an RGB image of shape (H, W, 3), got {image.shape}")
        from model.checkpoints import restore_generator

        height, width = image.shape[:2]
        small = cv2.resize(
            np.asarray(image, np.float32), (self.size, self.size), interpolation=cv2.INTER_AREA
        )
        with self._lock:
            if self._network is None:
                self._network = restore_generator(self.ref, self.config)
            logits = np.asarray(self._network(small[None], training=False))[0]  # (S, S, 3)
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        softmax = (shifted / shifted.sum(axis=-1, keepdims=True)).astype(np.float32)
        return cv2.resize(softmax, (width, height), interpolation=cv2.INTER_LINEAR)

    def saliency(self, image: np.ndarray) -> np.ndarray:
        """Foreground probability (H, W) float32 in [0, 1], the counterpart of
        ``AutoTrimapper.saliency``."""
        return np.clip(self.probabilities(image)[..., 2], 0.0, 1.0)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Trimap of ``image`` (H, W, 3) float32 in [0, 1]: float32 (H, W) in {0, 0.5, 1}."""
        return np.argmax(self.probabilities(image), axis=-1).astype(np.float32) / 2.0


def make_trimapper(
    trimap_model: str | os.PathLike,
    *,
    saliency_weights: str | os.PathLike | None = None,
    settings: dict[str, float] | None = None,
    log_dir: str | os.PathLike = "log",
):
    """The automatic trimap source that ``--trimap-model`` names.

    ``"saliency"``: ``model.auto_trimap.AutoTrimapper(saliency_weights, **settings)``;
    anything else: :class:`NetworkTrimapper` of that checkpoint (the saliency thresholds and
    band do not apply to it).

    Raises
    ------
    SaliencyWeightsError, CheckpointError, ValueError
        As the two constructors.
    """
    if str(trimap_model) == SALIENCY:
        from model.auto_trimap import DEFAULT_WEIGHTS, AutoTrimapper

        return AutoTrimapper(Path(saliency_weights or DEFAULT_WEIGHTS), **(settings or {}))
    return NetworkTrimapper(trimap_model, log_dir)
