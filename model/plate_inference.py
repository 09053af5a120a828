"""Cut out the subject of a photo given a clean plate (a photo of the empty scene).

:class:`PlateMatter` is :class:`model.inference.Matter` for the plate generator
(``ModelConfig.task == "plate"``): the whole photo and the plate are shrunk (area average) to a
working resolution of about ``network_pixels`` pixels, the network runs once on both, and a fast
guided filter (``model.guided_filter.guided_upsample``) guided by the full-resolution photo
brings alpha back to full size. Foreground colours come from pymatting's
``estimate_foreground_ml``, as for the trimap model (``Matter.foreground``).

:func:`read_plate` reads and checks a plate against its photo: the same size (or aligned on
request by :func:`align_plate`, OpenCV's ECC with a homography), not the photo itself.

Example
-------
>>> matter = PlateMatter.load()                       # log/pretrained-plate unless a plate run
>>> plate = read_plate("empty.jpg", image, "photo.jpg")
>>> matte = matter.extract(image, plate)              # Matte(alpha, foreground)
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

from model.guided_filter import guided_upsample
from model.images import ImageError, read_image
from model.inference import DEFAULT_NETWORK_PIXELS, Matte, Matter

ALIGN_SIDE = 512
"""ECC alignment runs on greyscale copies whose longer side is at most this many pixels."""

ALIGN_ITERATIONS = 200
ALIGN_EPSILON = 1e-5

PLATE_NETWORK_PIXELS = DEFAULT_NETWORK_PIXELS
"""Default working size of the plate model: the trimap model's, 384 x 384 pixels."""


def _area(image: np.ndarray, height: int, width: int) -> np.ndarray:
    if image.shape[:2] == (height, width):
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def align_plate(plate: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Warp ``plate`` onto ``image``: resize to its size, then an ECC homography.

    The plate is first resized to the image's size; OpenCV's ``findTransformECC``
    (Evangelidis and Psarakis 2008, ``MOTION_HOMOGRAPHY``) then finds the homography that best
    maps the image's grey levels onto the plate's, on copies at most ``ALIGN_SIDE`` pixels
    long and Gaussian-smoothed (the subject is an outlier it mostly tolerates), and the plate
    is warped with it at full size (borders reflected).

    Parameters
    ----------
    plate : ndarray, float32, shape (h, w, 3), values in [0, 1]
    image : ndarray, float32, shape (H, W, 3), values in [0, 1]

    Returns
    -------
    ndarray, float32, shape (H, W, 3), values in [0, 1]

    Raises
    ------
    ValueError
        ECC did not converge (the two photos share too little).
    """
    height, width = image.shape[:2]
    plate = _area(plate, height, width) if plate.shape[:2] != (height, width) else plate
    scale = min(1.0, ALIGN_SIDE / max(height, width))
    small_h, small_w = max(1, round(height * scale)), max(1, round(width * scale))

    def grey(pixels: np.ndarray) -> np.ndarray:
        pixels = cv2.cvtColor(_area(pixels, small_h, small_w), cv2.COLOR_RGB2GRAY)
        return cv2.GaussianBlur(pixels.astype(np.float32), (0, 0), 1.0)

    warp = np.eye(3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, ALIGN_ITERATIONS, ALIGN_EPSILON)
    try:
        _, warp = cv2.findTransformECC(
            grey(image), grey(plate), warp, cv2.MOTION_HOMOGRAPHY, criteria, None, 1
        )
    except cv2.error as error:
        reason = str(error).strip().splitlines()[-1]
        raise ValueError(f"ECC alignment did not converge ({reason})") from None
    # The warp maps small image coordinates to small plate coordinates; conjugate by the scale.
    to_small = np.diag([scale, scale, 1.0]).astype(np.float32)
    full = np.linalg.inv(to_small) @ warp @ to_small
    aligned = cv2.warpPerspective(
        plate,
        full,
        (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT_101,
    )
    return np.clip(aligned, 0.0, 1.0).astype(np.float32)


def read_plate(
    path: str | os.PathLike,
    image: np.ndarray,
    image_path: str | os.PathLike | None = None,
    *,
    align: bool = False,
) -> np.ndarray:
    """Read the clean plate for ``image`` and check that it can serve as one.

    Parameters
    ----------
    path : path-like
        The plate file.
    image : ndarray, float32, shape (H, W, 3), values in [0, 1]
        The photo it belongs to.
    image_path : path-like, optional
        The photo's file, to refuse the photo itself given as its plate.
    align : bool
        Resize and align the plate onto the photo (:func:`align_plate`) instead of refusing a
        plate of another size.

    Returns
    -------
    ndarray, float32, shape (H, W, 3), values in [0, 1]

    Raises
    ------
    ImageError
        Missing or unreadable; the photo's own file; of another size (without ``align``);
        not alignable; or pixel for pixel the photo.
    """
    path = Path(path)
    same = image_path is not None and path.exists() and Path(image_path).exists()
    if same and os.path.samefile(path, image_path):
        raise ImageError(path, "is the photo itself; the plate is a photo of the empty scene")
    return check_plate(read_image(path), image, path, align=align)


def check_plate(
    plate: np.ndarray, image: np.ndarray, source: str | os.PathLike, *, align: bool = False
) -> np.ndarray:
    """Check a decoded plate against its photo (see :func:`read_plate`); ``source`` names it
    in errors. Returns the plate, aligned with ``align``.

    Raises
    ------
    ImageError
        Another size (without ``align``), not alignable, or pixel for pixel the photo.
    """
    if align:
        try:
            plate = align_plate(plate, image)
        except ValueError as error:
            raise ImageError(source, f"cannot align the plate with the photo: {error}") from None
    elif plate.shape != image.shape:
        raise ImageError(
            source,
            f"plate is {plate.shape[1]}x{plate.shape[0]} but the photo is"
            f" {image.shape[1]}x{image.shape[0]} (--align-plate resizes and aligns it)",
        )
    if np.array_equal(plate, image):
        raise ImageError(source, "has the same pixels as the photo; a plate shows the empty scene")
    return plate


class PlateMatter(Matter):
    """The plate generator loaded once; alpha and foreground for (photo, plate) pairs.

    Construction and options as :class:`model.inference.Matter` (``network_pixels`` is the
    working size; ``max_pixels`` bounds the network's input when ``network_pixels`` is 0;
    tiling options are accepted and unused). Thread-safe; calls are serialised.
    """

    def __init__(self, generator, config, ref=None, **options):
        if config.task != "plate":
            raise ValueError(f"PlateMatter needs a plate model, got task {config.task!r}")
        options.setdefault("network_pixels", PLATE_NETWORK_PIXELS)
        super().__init__(generator, config, ref, **options)

    @classmethod
    def load(
        cls,
        checkpoint: str | int = "-1",
        log_dir: str | Path = "log",
        engine: str = "auto",
        *,
        video: bool = False,
        **options,
    ) -> PlateMatter:
        """Restore a plate generator: ``checkpoint`` and ``engine`` as for ``Matter.load``, where
        numbers index the newest plate run under ``log_dir``, else ``log_dir/pretrained-plate``
        (with ``video``, ``log_dir/pretrained-plate-video`` before it, where it exists).

        Raises
        ------
        CheckpointError
            No such checkpoint, an unusable one, or one of a trimap model.
        """
        from model.engine import load_generator

        generator = load_generator(checkpoint, log_dir, engine=engine, task="plate", video=video)
        return cls(*generator, **options)

    def _budget(self, height: int, width: int) -> tuple[int, int]:
        """Network size: ``working_size``, and never over ``max_pixels`` when that is 0."""
        small_h, small_w = self.working_size(height, width)
        if small_h * small_w <= self.max_pixels:
            return small_h, small_w
        scale = math.sqrt(self.max_pixels / (small_h * small_w))
        multiple = self.config.multiple
        return (
            max(multiple, int(small_h * scale) // multiple * multiple),
            max(multiple, int(small_w * scale) // multiple * multiple),
        )

    @property
    def uses_previous_alpha(self) -> bool:
        """Whether the network takes the previous video frame's alpha (``predict_alpha``'s
        ``previous``); ``ModelConfig.previous_alpha``."""
        return self.config.previous_alpha

    def predict_alpha(
        self, image: np.ndarray, plate: np.ndarray, previous: np.ndarray | None = None
    ) -> np.ndarray:
        """Alpha matte of ``image`` given its clean ``plate``.

        Parameters
        ----------
        image, plate : ndarray, float32, shape (H, W, 3), values in [0, 1]; any H, W >= 1
        previous : ndarray, float32, shape (H, W), values in [0, 1], optional
            The previous video frame's alpha, for a model with :attr:`uses_previous_alpha`
            (None: a first frame or a still, fed as zeros, as in training); ignored otherwise.

        Returns
        -------
        ndarray, float32, shape (H, W), values in [0, 1]
        """
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be (H, W, 3), got shape {image.shape}")
        if plate.shape != image.shape:
            raise ValueError(f"plate shape {plate.shape} differs from the image's {image.shape}")
        height, width = image.shape[:2]
        small_h, small_w = self._budget(height, width)
        image_small = _area(image, small_h, small_w)
        plate_small = _area(plate, small_h, small_w)
        multiple = self.config.multiple
        padded_h, padded_w = -(-small_h // multiple) * multiple, -(-small_w // multiple) * multiple
        channels = [image_small, plate_small]
        if self.uses_previous_alpha:
            if previous is None:
                previous = np.zeros((small_h, small_w), np.float32)
            elif previous.shape != image.shape[:2]:
                raise ValueError(f"previous alpha {previous.shape} is not {image.shape[:2]}")
            channels.append(_area(previous, small_h, small_w).reshape(small_h, small_w, 1))
        stacked = np.concatenate(channels, axis=2, dtype=np.float32)
        pad = ((0, padded_h - small_h), (0, padded_w - small_w), (0, 0))
        if pad[0][1] or pad[1][1]:
            # Reflection continues both photos' texture, so the padding holds no fake subject.
            stacked = np.pad(stacked, pad, mode="reflect")
        with self._lock:
            alpha = self._run(stacked[None])[:small_h, :small_w]
        if (small_h, small_w) != (height, width):
            alpha = guided_upsample(alpha, image_small, image)
        return np.clip(alpha, 0.0, 1.0).astype(np.float32)

    def extract(self, image: np.ndarray, plate: np.ndarray) -> Matte:
        """Alpha (:meth:`predict_alpha`) and foreground colours (:meth:`matte`)."""
        return self.matte(image, self.predict_alpha(image, plate))

    def matte(self, image: np.ndarray, alpha: np.ndarray) -> Matte:
        """The Matte of a predicted alpha, with foreground colours (``Matter.foreground``).

        Alpha below half an 8-bit level is set to 0 and above ``1 -`` that to 1 (invisible in
        any output), so colours are estimated only around the subject's soft edges.
        """
        half_level = 0.5 / 255.0
        alpha = np.where(alpha < half_level, 0.0, alpha)
        alpha = np.where(alpha > 1.0 - half_level, 1.0, alpha).astype(np.float32)
        band = np.where((alpha > 0.0) & (alpha < 1.0), np.float32(0.5), alpha)
        return Matte(alpha, self.foreground(image, band, alpha))
