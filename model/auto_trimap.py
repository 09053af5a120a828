"""Automatic trimaps: a saliency map from U²-Net-p, turned into foreground, background, unknown.

Two steps, usable separately:

* :func:`saliency_map` runs the saliency network on a photo of any size: Lanczos resize to
  320 x 320, U²-Net-p's own normalisation, the fused map min-max stretched to [0, 1] (as
  upstream's ``normPRED`` and rembg do), bilinear resize back to the photo's size.
* :func:`trimap_from_saliency` is pure numpy: pixels at or above ``foreground`` are confident
  foreground, at or below ``background`` confident background, the rest unknown; then both
  confident regions give up a margin of ``band`` x the shorter image side to the unknown
  region, because the saliency edge is only as sharp as a 320 x 320 prediction.

The defaults are rembg's alpha-matting defaults (foreground 240/255, background 10/255, 10 px
of erosion), with the erosion made relative: 10 px is 2 % of a 500 px image.

Example
-------
>>> model = load_saliency_model()                  # log/pretrained-saliency/u2netp.weights.h5
>>> trimap = auto_trimap(model, read_image("photo.jpg"))      # float32 HxW in {0, 0.5, 1}
>>> trimapper = AutoTrimapper(band=0.03)   # the same, loading the network at its first call
>>> trimap = trimapper(read_image("photo.jpg"))
"""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from model.images import TRIMAP_UNKNOWN

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "log/pretrained-saliency/u2netp.weights.h5"
"""The shipped U²-Net-p weights (see the README beside them for provenance and licence)."""

DEFAULT_FOREGROUND = 240 / 255
"""Saliency at or above which a pixel is confident foreground (rembg's 240)."""

DEFAULT_BACKGROUND = 10 / 255
"""Saliency at or below which a pixel is confident background (rembg's 10)."""

DEFAULT_BAND = 0.02
"""Margin each confident region gives up to the unknown band, as a fraction of the shorter side."""


TRIMAP_SUFFIX = "_trimap"
"""``photo.jpg`` gets ``photo_trimap.png``."""


def trimap_path(image: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Where the automatic trimap of ``image`` goes: ``<stem>_trimap.png`` beside it, or in
    ``out`` when given (``docs/demo/photo.png`` -> ``docs/demo/photo_trimap.png``)."""
    image = Path(image)
    folder = image.parent if out is None else Path(out)
    return folder / f"{image.stem}{TRIMAP_SUFFIX}.png"


def is_trimap_name(path: str | os.PathLike) -> bool:
    """Whether the file name says it is a trimap already (``*_trimap.<ext>``)."""
    return Path(path).stem.endswith(TRIMAP_SUFFIX)


class SaliencyWeightsError(ValueError):
    """Weights that cannot be loaded; ``str(error)`` is ``"<file>: <problem>"``."""


def load_saliency_model(weights: str | os.PathLike = DEFAULT_WEIGHTS):
    """Build U²-Net-p (320 x 320) and load ``weights`` (a Keras ``.weights.h5`` file).

    Raises
    ------
    SaliencyWeightsError
        Missing file, wrong suffix, or a file that is not U²-Net-p weights.
    """
    path = Path(weights)
    if not path.is_file():
        raise SaliencyWeightsError(f"{path}: no such file")
    if not path.name.endswith(".weights.h5"):
        raise SaliencyWeightsError(f"{path}: not a Keras weights file (*.weights.h5)")
    # Only now: a wrong path is reported without waiting for TensorFlow to start.
    from model.networks.saliency import build_u2netp

    model = build_u2netp()
    try:
        # Keras warns once per unmatched layer before it raises; the one-line error says it all.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.load_weights(path)
    except Exception as error:  # h5py, Keras and OSError all surface here; one line is the contract
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SaliencyWeightsError(f"{path}: not U²-Net-p weights ({first})") from None
    return model


def _resize(channels: np.ndarray, width: int, height: int, method: int) -> np.ndarray:
    """Resize an (H, W) or (H, W, C) float32 array channel by channel with PIL's float mode.

    PIL widens its filter when shrinking (antialiasing), which cv2's Lanczos does not; rembg
    resizes with PIL's Lanczos, so the network sees the same kind of input.
    """
    planes = channels[..., None] if channels.ndim == 2 else channels
    resized = [
        np.asarray(Image.fromarray(np.ascontiguousarray(planes[..., c]), mode="F").resize(
            (width, height), method))
        for c in range(planes.shape[2])
    ]  # fmt: skip
    stacked = np.stack(resized, axis=-1).astype(np.float32)
    return stacked[..., 0] if channels.ndim == 2 else stacked


def saliency_map(model, image: np.ndarray) -> np.ndarray:
    """Fused U²-Net-p saliency of a photo of any size, min-max stretched, at the photo's size.

    Parameters
    ----------
    model : keras.Model
        From :func:`load_saliency_model` (or :func:`model.networks.saliency.build_u2netp`).
    image : ndarray, shape (H, W, 3), float32 in [0, 1]
        RGB photo.

    Returns
    -------
    ndarray, float32, shape (H, W), values in [0, 1]: 1 on the most salient pixel and 0 on
    the least (a constant prediction gives all zeros).
    """
    from keras import ops

    from model.networks.saliency import normalize_input

    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got {image.shape}")
    height, width = image.shape[:2]
    size = model.input_shape[1:3]
    small = _resize(np.asarray(image, dtype=np.float32), size[1], size[0], Image.LANCZOS)
    # Lanczos rings past the input range at sharp edges; rembg's uint8 round trip clips too.
    batch = normalize_input(np.clip(small, 0.0, 1.0))[None]
    fused = ops.convert_to_numpy(model(batch, training=False)[0])[0, ..., 0]
    low, high = float(fused.min()), float(fused.max())
    stretched = (fused - low) / (high - low) if high > low else np.zeros_like(fused)
    full = _resize(stretched.astype(np.float32), width, height, Image.BILINEAR)
    return np.clip(full, 0.0, 1.0).astype(np.float32)


def band_pixels(shape: tuple[int, int], band: float) -> int:
    """The margin in pixels for a relative ``band``: ``round(band * min(H, W))``."""
    return round(band * min(shape))


def _keep_farther_than(mask: np.ndarray, margin: int) -> np.ndarray:
    """Pixels of ``mask`` whose Euclidean distance to the nearest pixel outside it is > margin.

    The image border does not count as outside: an object cut by the frame keeps its pixels
    at the frame.
    """
    if margin == 0:
        return mask
    # Exact Euclidean distance to the nearest zero pixel (Felzenszwalb's algorithm in OpenCV).
    distance = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return distance > margin


def trimap_from_saliency(
    saliency: np.ndarray,
    *,
    foreground: float = DEFAULT_FOREGROUND,
    background: float = DEFAULT_BACKGROUND,
    band: float = DEFAULT_BAND,
) -> np.ndarray:
    """Turn a saliency (foreground probability) map into a trimap.

    With ``r = round(band * min(H, W))`` and ``d_F(p)``, ``d_B(p)`` the Euclidean distances
    from pixel p to the nearest pixel with saliency below ``foreground`` (resp. above
    ``background``), the image border not counting::

        trimap(p) = 1.0  if saliency(p) >= foreground and d_F(p) > r
                    0.0  if saliency(p) <= background and d_B(p) > r
                    0.5  otherwise (unknown)

    So the unknown region is every pixel between the thresholds, widened by ``r`` pixels into
    each confident region; across a sharp saliency edge it is ``2 r`` pixels wide.

    Parameters
    ----------
    saliency : ndarray, shape (H, W), float in [0, 1]
    foreground, background : float
        Thresholds, ``0 <= background < foreground <= 1``.
    band : float
        Margin as a fraction of the shorter side, in [0, 0.5].

    Returns
    -------
    ndarray, float32, shape (H, W), values in {0.0, 0.5, 1.0} (``model.images`` trimap
    convention; ``trimap_to_uint8`` gives the on-disk 0/128/255).

    Raises
    ------
    ValueError
        A map that is not 2-D or has values outside [0, 1] (or NaN), or bad parameters.
    """
    saliency = np.asarray(saliency)
    if saliency.ndim != 2 or saliency.size == 0:
        raise ValueError(f"expected a saliency map of shape (H, W), got {saliency.shape}")
    if not (np.all(saliency >= 0.0) and np.all(saliency <= 1.0)):  # NaN fails both
        raise ValueError("saliency values must be in [0, 1]")
    if not 0.0 <= background < foreground <= 1.0:
        raise ValueError(
            f"thresholds must satisfy 0 <= background < foreground <= 1, got background"
            f" {background} and foreground {foreground}"
        )
    if not 0.0 <= band <= 0.5:
        raise ValueError(f"band must be in [0, 0.5], got {band}")
    margin = band_pixels(saliency.shape, band)
    trimap = np.full(saliency.shape, TRIMAP_UNKNOWN, dtype=np.float32)
    trimap[_keep_farther_than(saliency >= foreground, margin)] = 1.0
    trimap[_keep_farther_than(saliency <= background, margin)] = 0.0
    return trimap


def auto_trimap(
    model,
    image: np.ndarray,
    *,
    foreground: float = DEFAULT_FOREGROUND,
    background: float = DEFAULT_BACKGROUND,
    band: float = DEFAULT_BAND,
) -> np.ndarray:
    """Trimap of a photo from the saliency network: :func:`saliency_map` then
    :func:`trimap_from_saliency`. Returns float32 (H, W) in {0, 0.5, 1}."""
    return trimap_from_saliency(
        saliency_map(model, image), foreground=foreground, background=background, band=band
    )


class AutoTrimapper:
    """:func:`auto_trimap` with fixed settings, loading the saliency network at its first call.

    eval.py and serve.py hold one: a run or a server whose every request brings a trimap never
    starts the network. Calls are serialised by a lock (one model, shared by threads).

    Parameters
    ----------
    weights : path
        U²-Net-p weights; a missing file is reported here, before anything slow.
    foreground, background, band : float
        As in :func:`trimap_from_saliency`.

    Raises
    ------
    SaliencyWeightsError
        No file at ``weights``.
    ValueError
        Thresholds or band out of range.
    """

    def __init__(
        self,
        weights: str | os.PathLike = DEFAULT_WEIGHTS,
        *,
        foreground: float = DEFAULT_FOREGROUND,
        background: float = DEFAULT_BACKGROUND,
        band: float = DEFAULT_BAND,
    ):
        self.weights = Path(weights)
        if not self.weights.is_file():
            raise SaliencyWeightsError(f"{self.weights}: no such file")
        # The same checks as every call will make, now rather than at the first image.
        trimap_from_saliency(np.zeros((1, 1), np.float32), foreground=foreground,
                             background=background, band=band)  # fmt: skip
        self.settings = {"foreground": foreground, "background": background, "band": band}
        self._model = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the network has been loaded (by a first call)."""
        return self._model is not None

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Trimap of ``image`` (H, W, 3) float32 in [0, 1]: float32 (H, W) in {0, 0.5, 1}.

        Raises
        ------
        SaliencyWeightsError
            At the first call, when the file is not U²-Net-p weights.
        """
        return trimap_from_saliency(self.saliency(image), **self.settings)

    def saliency(self, image: np.ndarray) -> np.ndarray:
        """:func:`saliency_map` of ``image``: float32 (H, W) in [0, 1]."""
        with self._lock:
            if self._model is None:
                self._model = load_saliency_model(self.weights)
            return saliency_map(self._model, image)
