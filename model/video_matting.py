"""Cut out a subject through a whole clip: frames in, one matting step per frame, frames out.

The per-frame work is a small *step* object with one method,
``matte(frame, previous) -> FrameMatte``, where ``previous`` is the last frame's result (None
on the first frame). Three steps cover the matting modes:

======================  ============================================================================
:class:`TrimapPropagation`  a trimap for the first frame; each later frame's trimap is re-derived
                        from the previous frame's alpha (``model.temporal.propagate_trimap``)
:class:`AutoTrimaps`    a U²-Net-p saliency trimap per frame (``model.auto_trimap``)
:class:`PlateMatting`   a clean background plate; any ``predict_alpha(image, plate)`` model:
                        ``model.plate_inference.PlateMatter`` (what eval.py uses; a model with
                        ``previous_alpha`` also gets the previous frame's alpha), or
                        ``model.plate.DifferenceKey``, the classic difference key, which is a
                        *baseline* for comparisons, not a learned matte
======================  ============================================================================

:func:`matte_stream` runs a step over a :class:`~model.video.VideoReader` into a
:class:`~model.video.VideoWriter`: alpha, then optionally :func:`model.temporal.temporal_blend`
with the previous frame's alpha in the unknown band (``smoothing``), then foreground colours
(``Matter.foreground``). One frame is in flight at a time, so memory does not grow with the
clip's length; a tqdm bar shows frames per second and the time left.

Example
-------
>>> with VideoReader("clip.mp4") as clip:  # doctest: +SKIP
...     step = TrimapPropagation(matter, first_trimap)
...     with open_writer(clip, "out.webm") as out:
...         matte_stream(clip, out, step)
"""

from __future__ import annotations

import itertools
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.compositing import fit_background, unknown_mask
from model.images import ImageError
from model.inference import Matter
from model.outputs import parse_background
from model.temporal import (
    DEFAULT_BAND,
    DEFAULT_MOTION,
    margin_pixels,
    propagate_trimap,
    temporal_blend,
)
from model.video import VideoError, VideoReader, VideoWriter, is_video_path

MAX_PLATE_FRAMES = 300
"""Most frames ``median_plate`` holds in memory at once (10 s at 30 fps)."""


@dataclass(frozen=True)
class FrameMatte:
    """One frame's result.

    Attributes
    ----------
    alpha : ndarray, float32, shape (H, W), values in [0, 1]
    trimap : ndarray, float32, shape (H, W), values {0, 0.5, 1}
        Where the matte is certain (0, 1) and where it is soft (0.5): foreground colours are
        estimated, and temporal blending applied, in the soft part only.
    """

    alpha: np.ndarray
    trimap: np.ndarray


class TrimapPropagation:
    """First frame: the given trimap. Later frames: ``propagate_trimap`` of the previous alpha.

    Parameters
    ----------
    matter : model.inference.Matter (anything with ``predict_alpha(image, trimap)``)
    first_trimap : ndarray, float32, shape (H, W), values {0, 0.5, 1}
    band, motion : float
        Fractions of the frame's shorter side; see ``model.temporal``.
    """

    name = "first-frame trimap, propagated"

    def __init__(
        self,
        matter,
        first_trimap: np.ndarray,
        *,
        band: float = DEFAULT_BAND,
        motion: float = DEFAULT_MOTION,
    ):
        self.matter = matter
        self.first_trimap = first_trimap
        self.band = margin_pixels(first_trimap.shape, band)
        self.motion = margin_pixels(first_trimap.shape, motion)

    def matte(self, frame: np.ndarray, previous: FrameMatte | None) -> FrameMatte:
        if previous is None:
            trimap = self.first_trimap
        else:
            trimap = propagate_trimap(previous.alpha, band=self.band, motion=self.motion)
        return FrameMatte(self.matter.predict_alpha(frame, trimap), trimap)


class AutoTrimaps:
    """Every frame gets its own automatic trimap (``model.auto_trimap.auto_trimap``).

    Parameters
    ----------
    matter : model.inference.Matter
    saliency_model : keras.Model
        From ``model.auto_trimap.load_saliency_model``.
    **trimap_options
        ``foreground``, ``background``, ``band`` for ``auto_trimap``.
    """

    name = "automatic trimap per frame"

    def __init__(self, matter, saliency_model, **trimap_options):
        self.matter = matter
        self.saliency_model = saliency_model
        self.trimap_options = trimap_options

    def matte(self, frame: np.ndarray, previous: FrameMatte | None) -> FrameMatte:
        from model.auto_trimap import auto_trimap

        trimap = auto_trimap(self.saliency_model, frame, **self.trimap_options)
        return FrameMatte(self.matter.predict_alpha(frame, trimap), trimap)


class PlateMatting:
    """Matte each frame against a clean plate of the empty scene.

    Parameters
    ----------
    plate_matter : object with ``predict_alpha(image, plate) -> alpha``
        A trained plate model, or ``model.plate.DifferenceKey()`` (the baseline).
    plate : ndarray, float32, shape (H, W, 3), values in [0, 1]
        The frame size's empty scene (:func:`median_plate`, or a photo).
    band : float
        Fraction of the shorter side around the soft pixels where foreground colours are
        estimated (the trimap of :class:`FrameMatte`).
    feed_previous : bool
        Give a model that takes it (``uses_previous_alpha``) the previous frame's output alpha;
        False runs such a model frame by frame (no previous alpha, as on a first frame).
    """

    def __init__(
        self,
        plate_matter,
        plate: np.ndarray,
        *,
        band: float = DEFAULT_BAND,
        feed_previous: bool = True,
    ):
        self.plate_matter = plate_matter
        self.plate = plate
        self.band = margin_pixels(plate.shape[:2], band)
        self.feed_previous = feed_previous and getattr(plate_matter, "uses_previous_alpha", False)
        self.name = f"plate: {getattr(plate_matter, 'name', type(plate_matter).__name__)}"

    def matte(self, frame: np.ndarray, previous: FrameMatte | None) -> FrameMatte:
        if self.feed_previous:
            last = previous.alpha if previous is not None else None
            alpha = self.plate_matter.predict_alpha(frame, self.plate, last)
        else:
            alpha = self.plate_matter.predict_alpha(frame, self.plate)
        return FrameMatte(alpha, propagate_trimap(alpha, band=self.band, motion=0))


Step = TrimapPropagation | AutoTrimaps | PlateMatting


def plate_step(plate: np.ndarray, plate_matter=None) -> PlateMatting:
    """Plate mode with ``plate_matter`` (a ``PlateMatter``), or the difference-key baseline
    when None."""
    from model.plate import DifferenceKey

    return PlateMatting(plate_matter if plate_matter is not None else DifferenceKey(), plate)


def parse_frame_range(text: str) -> tuple[int, int]:
    """``"A:B"`` -> (A, B): frames A to B-1, counted from 0, as a Python slice; B > A >= 0."""
    start, colon, stop = text.partition(":")
    try:
        first, last = int(start), int(stop)
    except ValueError:
        first = last = -1
    if not colon or first < 0 or last <= first:
        raise ValueError(f"{text!r} is not a frame range A:B with 0 <= A < B")
    return first, last


def median_plate(
    path: str | os.PathLike, start: int, stop: int, *, max_pixels: int | None = None
) -> np.ndarray:
    """The empty scene from frames ``start`` to ``stop - 1`` of a clip: their per-pixel median.

    The median ignores a subject that passes through fewer than half of those frames, and
    sensor noise. The frames are held in memory together (at most :data:`MAX_PLATE_FRAMES`).

    Returns
    -------
    ndarray, float32, shape (H, W, 3), values in [0, 1]

    Raises
    ------
    VideoError
        A range longer than MAX_PLATE_FRAMES, or one that starts past the clip's end.
    """
    if stop - start > MAX_PLATE_FRAMES:
        raise VideoError(
            path, f"--plate-frames {start}:{stop} is over {MAX_PLATE_FRAMES} frames; take fewer"
        )
    options = {} if max_pixels is None else {"max_pixels": max_pixels}
    frames = []
    with VideoReader(path, **options) as clip:
        for index, frame in enumerate(clip):
            if index >= stop:
                break
            if index >= start:
                frames.append(frame)
    if not frames:
        raise VideoError(path, f"--plate-frames {start}:{stop}: the clip has only {index + 1}")
    return np.median(np.stack(frames), axis=0).astype(np.float32)


def load_background(text: str, width: int, height: int):
    """A ``--background`` for video: a colour, an image (fitted to the frame), or a clip.

    Returns
    -------
    (r, g, b) floats in [0, 1]; ndarray float32 (height, width, 3) scaled to cover the frame
    and centre-cropped, as stills do; or an open :class:`VideoReader` (the caller closes it).
    """
    if is_video_path(text) and Path(text).is_file():
        return VideoReader(text)
    background = parse_background(text)
    if isinstance(background, np.ndarray):
        return fit_background(background, height, width)
    return background


def open_writer(
    clip: VideoReader,
    out: str | os.PathLike,
    *,
    alpha_path: str | os.PathLike | None = None,
    background=None,
) -> VideoWriter:
    """A :class:`VideoWriter` with the clip's size, frame rate and audio."""
    return VideoWriter(
        out,
        width=clip.info.width,
        height=clip.info.height,
        fps=clip.info.fps,
        audio_from=clip.path,
        background=background,
        alpha_path=alpha_path,
    )


def expected_frames(clip: VideoReader) -> int | None:
    """The clip's frame count from its header, else estimated from duration x fps."""
    info = clip.info
    if info.frames:
        return info.frames
    if info.duration:
        return max(1, math.floor(info.duration * info.fps + 0.5))
    return None


def matte_frames(
    frames: Iterable[np.ndarray], step: Step, *, smoothing: float = 0.0
) -> Iterator[FrameMatte]:
    """Yield each frame's matte: ``step.matte``, then ``temporal_blend`` with ``smoothing``.

    Parameters
    ----------
    frames : iterable of ndarray, float32, shape (H, W, 3), values in [0, 1]
    step : a step (see the module docstring)
    smoothing : float in [0, 1)
        ``temporal_blend``'s strength, applied in the unknown band of each frame's trimap
        against the previous frame's *output*; 0 leaves frames to the step alone.
    """
    previous: FrameMatte | None = None
    previous_frame = None
    for frame in frames:
        result = step.matte(frame, previous)
        if smoothing and previous is not None:
            alpha = temporal_blend(
                result.alpha,
                previous.alpha,
                frame,
                previous_frame,
                strength=smoothing,
                where=unknown_mask(result.trimap),
            )
            result = FrameMatte(alpha, result.trimap)
        yield result
        previous, previous_frame = result, frame


def matte_stream(
    clip: VideoReader,
    writer: VideoWriter,
    step: Step,
    *,
    smoothing: float = 0.0,
    progress: bool = True,
    on_frame: Callable[[int, int | None], None] | None = None,
) -> int:
    """Matte every frame of ``clip`` (:func:`matte_frames`) and write it; returns the count.

    Foreground colours are estimated in each frame's unknown band (``Matter.foreground``).

    Parameters
    ----------
    smoothing : float in [0, 1)
        See :func:`matte_frames`.
    progress : bool
        Show a tqdm bar (frames/s and time left) on stderr.
    on_frame : callable(done, total), optional
        Called after each written frame; ``total`` is :func:`expected_frames`. It may raise to
        stop the run (the writer then discards its output).
    """
    from tqdm import tqdm

    total = expected_frames(clip)
    done = 0
    # Two iterators over one reader: tee keeps only the frame matte_frames is working on.
    frames, colours = itertools.tee(clip)
    with tqdm(
        total=total, desc="matte", unit="frame", file=sys.stderr, disable=not progress
    ) as bar:
        for frame, result in zip(
            colours, matte_frames(frames, step, smoothing=smoothing), strict=True
        ):
            foreground = Matter.foreground(frame, result.trimap, result.alpha)
            writer.write(foreground, result.alpha)
            done += 1
            bar.update()
            if on_frame is not None:
                on_frame(done, total)
    return done


def check_plate(plate: np.ndarray, clip: VideoReader, name: str | os.PathLike) -> None:
    """Refuse a plate whose size is not the clip's (never silently resized)."""
    height, width = plate.shape[:2]
    if (width, height) != (clip.info.width, clip.info.height):
        raise ImageError(
            name,
            f"the plate is {width}x{height} but the clip's frames are"
            f" {clip.info.width}x{clip.info.height}",
        )
