"""Reading a clip: :class:`VideoReader` yields upright float32 RGB frames (see ``model.video``)."""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from model.images import ImageError

VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".mkv", ".avi")
"""File suffixes (lower case) that :func:`is_video_path` treats as video input."""

MAX_VIDEO_PIXELS = 7680 * 4320
"""Largest frame (width x height) a reader accepts by default: 8K UHD, about 400 MB as float32."""


class VideoError(ImageError):
    """A video file that cannot be used; ``str(error)`` is ``"<file>: <problem>"``.

    A subclass of :class:`~model.images.ImageError`, so every CLI that prints a bad image as
    one line prints a bad video the same way.
    """


@dataclass(frozen=True)
class VideoInfo:
    """Header facts about a clip, as its frames will come out of :class:`VideoReader`."""

    width: int
    """Frame width in pixels, after rotation."""
    height: int
    """Frame height in pixels, after rotation."""
    fps: Fraction
    """Average frame rate, exact (``Fraction(30000, 1001)`` for NTSC)."""
    frames: int | None
    """Frame count from the header, or None where the container does not say (WebM, MKV)."""
    rotation: int
    """Degrees (0, 90, 180 or 270) by which frames are turned counter-clockwise when read."""
    has_audio: bool
    codec: str
    """FFmpeg's name of the video codec, e.g. ``h264``."""
    duration: float | None
    """Seconds, from the container header; None when unknown."""


def is_video_path(path: str | os.PathLike) -> bool:
    """True when ``path`` has a video suffix (see ``VIDEO_SUFFIXES``), whatever its case."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def ffmpeg_reason(error: av.FFmpegError) -> str:
    """FFmpeg's own words for ``error`` (its strerror), for the one-line message."""
    return error.strerror or str(error)


def _rotation(frame: av.VideoFrame, stream: av.video.stream.VideoStream) -> int:
    """Counter-clockwise turn, a multiple of 90 degrees in [0, 360), that makes frames upright."""
    # FFmpeg moves the container's display matrix onto each decoded frame; frame.rotation is
    # its counter-clockwise angle. Files from older muxers carry a clockwise `rotate` tag only.
    degrees = float(frame.rotation)
    if not degrees:
        tags = {key.lower(): value for key, value in stream.metadata.items()}
        with contextlib.suppress(ValueError):
            degrees = -float(tags.get("rotate", 0))
    # Odd angles are rounded to the nearest quarter turn: they do not occur in practice.
    return round(degrees / 90) % 4 * 90


class VideoReader:
    """Decode a clip one upright float32 RGB frame at a time.

    Parameters
    ----------
    path : str or PathLike
        Any container and codec the bundled FFmpeg decodes (the suffix is not trusted).
    max_pixels : int
        Largest accepted width x height, checked from the header before decoding.

    Raises
    ------
    VideoError
        When the file is not a readable video, has no video stream, no decoder, a frame size
        over ``max_pixels`` or no frames. Iterating raises it for a frame that fails to decode.

    Examples
    --------
    >>> with VideoReader("clip.mp4") as clip:  # doctest: +SKIP
    ...     for frame in clip:  # float32 (clip.info.height, clip.info.width, 3) in [0, 1]
    ...         ...
    """

    def __init__(self, path: str | os.PathLike, *, max_pixels: int = MAX_VIDEO_PIXELS):
        self.path = Path(path)
        try:
            self._container = av.open(str(self.path))
        except av.FFmpegError as error:
            raise VideoError(self.path, f"not a readable video ({ffmpeg_reason(error)})") from None
        try:
            self.info = self._open(max_pixels)
        except BaseException:
            self._container.close()
            raise

    def _open(self, max_pixels: int) -> VideoInfo:
        container = self._container
        if not container.streams.video:
            if container.streams.audio:
                raise VideoError(self.path, "audio only, no video stream")
            raise VideoError(self.path, "not a readable video (no video stream)")
        stream = container.streams.video[0]
        self._stream = stream
        if stream.codec_context is None:
            raise VideoError(self.path, "cannot decode its video codec (no decoder in this FFmpeg)")
        self._check_size(stream.codec_context.width, stream.codec_context.height, max_pixels)
        fps = stream.average_rate or stream.guessed_rate
        if not fps:
            raise VideoError(self.path, "unknown frame rate")
        stream.thread_type = "AUTO"
        self._frames = self._decoded()
        first = next(self._frames, None)
        if first is None:
            raise VideoError(self.path, "no frames")
        # A header may leave the size to the first frame; frames that change size mid-stream
        # are scaled to the first one's, so every frame has the size promised in `info`.
        self._check_size(first.width, first.height, max_pixels)
        self._size = (first.width, first.height)
        self._first: av.VideoFrame | None = first
        self._turns = _rotation(first, stream) // 90
        width, height = (first.height, first.width) if self._turns % 2 else self._size
        duration = None
        if stream.duration is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        return VideoInfo(
            width=width,
            height=height,
            fps=Fraction(fps),
            frames=stream.frames or None,
            rotation=self._turns * 90,
            has_audio=bool(container.streams.audio),
            codec=stream.codec_context.name,
            duration=duration,
        )

    def _check_size(self, width: int, height: int, max_pixels: int) -> None:
        if width * height > max_pixels:
            raise VideoError(
                self.path, f"{width}x{height} frames are over the limit of {max_pixels:,} pixels"
            )

    def _decoded(self) -> Iterator[av.VideoFrame]:
        try:
            yield from self._container.decode(self._stream)
        except av.FFmpegError as error:
            codec = self._stream.codec_context.name
            raise VideoError(
                self.path, f"cannot decode its {codec} video ({ffmpeg_reason(error)})"
            ) from None

    def _to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        deep = frame.format.components[0].bits > 8
        pixels = frame.to_ndarray(
            format="rgb48le" if deep else "rgb24",
            width=self._size[0],
            height=self._size[1],
            # Explicit, so conversion follows the stream's own tags (BT.709 or 601, limited or
            # full range) whatever PyAV's defaults, whose documentation and behaviour differ.
            src_colorspace=frame.colorspace,
            src_color_range=frame.color_range,
        )
        rgb = np.ascontiguousarray(np.rot90(pixels, self._turns), dtype=np.float32)
        rgb /= 65535.0 if deep else 255.0
        return rgb

    def __iter__(self) -> Iterator[np.ndarray]:
        """Yield float32 (height, width, 3) RGB frames in [0, 1]; a reader is iterated once."""
        if self._first is None:
            raise RuntimeError(f"{self.path}: a VideoReader can be iterated only once")
        first, self._first = self._first, None
        for frame in itertools.chain([first], self._frames):
            yield self._to_rgb(frame)

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def probe_video(path: str | os.PathLike, *, max_pixels: int = MAX_VIDEO_PIXELS) -> VideoInfo:
    """Check that ``path`` is a usable clip (decoding its first frame) and return its facts."""
    with VideoReader(path, max_pixels=max_pixels) as reader:
        return reader.info
