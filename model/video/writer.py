"""Writing a clip: :class:`VideoWriter` (ProRes or VP9 with alpha, H.264, PNG frames).

The formats, audio copy and colour tags are described in ``model.video``.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import shutil
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from model.compositing import composite
from model.images import atomic_path, encode_png, to_uint8, to_uint16
from model.video.reader import VideoError, ffmpeg_reason

OUTPUT_KINDS = ("mov", "webm", "mp4", "png")
"""What :func:`output_kind` can answer; ``png`` is a folder of PNG frames."""

# ITU-R BT.709 and MPEG (limited) range, as FFmpeg numbers them (AVCOL_SPC/PRI/TRC, AVCOL_RANGE).
_BT709 = 1
_MPEG_RANGE = 1


def output_kind(path: str | os.PathLike) -> str:
    """The kind of output ``path`` asks for: ``mov``, ``webm``, ``mp4`` or ``png`` (a folder).

    A path with no suffix, or an existing folder, is a PNG sequence.
    """
    target = Path(path)
    if target.is_dir() or not target.suffix:
        return "png"
    kind = target.suffix.lower().lstrip(".")
    if kind not in OUTPUT_KINDS[:3]:
        raise VideoError(
            target,
            f"cannot write {target.suffix} video; use .mov (ProRes 4444 + alpha), "
            ".webm (VP9 + alpha), .mp4 (H.264 over a background) or a folder (PNG frames)",
        )
    return kind


@dataclass(frozen=True)
class _Encoder:
    codec: str
    pix_fmt: str
    options: dict[str, str]


# Keyed by (kind, has alpha). The alpha-only (grey) video uses the plain variants.
_ENCODERS = {
    ("mov", True): _Encoder("prores_ks", "yuva444p10le", {"profile": "4444"}),
    ("mov", False): _Encoder("prores_ks", "yuv422p10le", {"profile": "hq"}),
    # Constant quality (b=0 turns libvpx's bitrate target off); row-mt uses both cores.
    ("webm", True): _Encoder("libvpx-vp9", "yuva420p", {"crf": "20", "b": "0", "row-mt": "1"}),
    ("webm", False): _Encoder("libvpx-vp9", "yuv420p", {"crf": "20", "b": "0", "row-mt": "1"}),
    ("mp4", False): _Encoder("libx264", "yuv420p", {"crf": "18", "preset": "medium"}),
}

# Audio codec for a source whose audio the output container cannot hold as it is.
_AUDIO_ENCODERS = {"mov": "aac", "mp4": "aac", "webm": "libopus"}


class _AudioCopy:
    """Feed a source file's first audio stream into an output container alongside the video."""

    def __init__(self, container: av.container.OutputContainer, source: Path, kind: str):
        self._output = container
        self._input = av.open(str(source))
        audio = self._input.streams.audio[0]
        # Output video starts at 0; audio keeps its place relative to the source's video.
        self._start = 0.0
        if self._input.streams.video:
            video = self._input.streams.video[0]
            self._start = float((video.start_time or 0) * video.time_base)
        if audio.codec_context is None:
            raise VideoError(source, "cannot copy its audio (unknown codec)")
        if audio.codec_context.codec.canonical_name in container.supported_codecs:
            self._stream = container.add_stream_from_template(audio)
            units = self._remuxed(audio)
        else:
            codec = _AUDIO_ENCODERS[kind]
            # Opus only runs at 48 kHz (and four lower rates); AAC takes the source's rate.
            rate = 48000 if codec == "libopus" else audio.codec_context.sample_rate
            self._stream = container.add_stream(codec, rate=rate)
            self._stream.layout = audio.codec_context.layout
            units = self._transcoded(audio)
        self._units = units
        self._next = next(units, None)

    def _remuxed(self, audio) -> Iterator[tuple[float, list[av.Packet]]]:
        shift = round(self._start / audio.time_base)
        for packet in self._input.demux(audio):
            if packet.size == 0:  # the demuxer's end-of-stream marker
                continue
            if packet.pts is not None:
                packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            seconds = float(packet.pts * audio.time_base) if packet.pts is not None else 0.0
            packet.stream = self._stream
            yield seconds, [packet]

    def _transcoded(self, audio) -> Iterator[tuple[float, list[av.Packet]]]:
        rate = audio.codec_context.sample_rate
        samples = None
        for frame in self._input.decode(audio):
            if samples is None:
                samples = max(0, round(((frame.time or 0.0) - self._start) * rate))
            seconds = samples / rate
            # Contiguous sample-count timestamps: PyAV's encoder FIFO refuses gaps and overlaps.
            frame.pts, frame.time_base = samples, Fraction(1, rate)
            samples += frame.samples
            yield seconds, self._stream.encode(frame)
        yield math.inf, self._stream.encode(None)

    def mux_until(self, seconds: float) -> None:
        """Mux every audio packet that starts before ``seconds`` (all that are left for inf)."""
        while self._next is not None and self._next[0] < seconds:
            for packet in self._next[1]:
                self._output.mux(packet)
            self._next = next(self._units, None)

    def close(self) -> None:
        self._input.close()


class _EncodedSink:
    """One video file being encoded: RGBA (alpha kinds), RGB (mp4) or grey frames."""

    def __init__(
        self,
        temp: Path,
        kind: str,
        alpha: bool,
        size: tuple[int, int],
        fps: Fraction,
        audio_from: Path | None,
    ):
        encoder = _ENCODERS[(kind, alpha)]
        self._fps = fps
        self._pix_fmt = encoder.pix_fmt
        # 10-bit codecs get 16-bit input to keep their precision; 8-bit ones get 8-bit input,
        # which swscale converts without dithering.
        self._deep = "10le" in encoder.pix_fmt
        self._container = av.open(str(temp), "w", format=kind)
        try:
            stream = self._container.add_stream(encoder.codec, rate=fps, options=encoder.options)
            stream.width, stream.height = size
            stream.pix_fmt = encoder.pix_fmt
            context = stream.codec_context
            context.colorspace = context.color_primaries = context.color_trc = _BT709
            context.color_range = _MPEG_RANGE
            self._stream = stream
            self._audio = _AudioCopy(self._container, audio_from, kind) if audio_from else None
        except BaseException:
            self._container.close()
            raise
        self._index = 0

    def write(self, image: np.ndarray) -> None:
        """Encode one float32 frame in [0, 1]: (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA."""
        formats = {2: "gray", 3: "rgb24", 4: "rgba"}
        if self._deep:
            formats = {2: "gray16le", 3: "rgb48le", 4: "rgba64le"}
        channels = 2 if image.ndim == 2 else image.shape[2]
        pixels = to_uint16(image) if self._deep else to_uint8(image)
        frame = av.VideoFrame.from_ndarray(pixels, format=formats[channels])
        frame = frame.reformat(
            format=self._pix_fmt, dst_colorspace="ITU709", dst_color_range="MPEG"
        )
        frame.pts, frame.time_base = self._index, 1 / self._fps
        if self._audio is not None:
            self._audio.mux_until(float(self._index / self._fps))
        self._container.mux(self._stream.encode(frame))
        self._index += 1

    def finish(self) -> None:
        """Flush the encoder and the rest of the audio; only after the last frame succeeded."""
        self._container.mux(self._stream.encode(None))
        if self._audio is not None:
            self._audio.mux_until(math.inf)

    def close(self) -> None:
        if self._audio is not None:
            self._audio.close()
        self._container.close()


class _PngSink:
    """A folder of numbered PNG frames: 8-bit RGBA, or 16-bit grey for an alpha-only sequence."""

    def __init__(self, folder: Path):
        self._folder = folder
        self._index = 0

    def write(self, image: np.ndarray) -> None:
        bits = 16 if image.ndim == 2 else 8
        name = f"frame_{self._index:06d}.png"
        (self._folder / name).write_bytes(encode_png(image, bits=bits))
        self._index += 1

    def finish(self) -> None:
        """Nothing to flush: each frame is a complete file."""

    def close(self) -> None:
        """Nothing to close: files are written whole by :meth:`write`."""


@contextlib.contextmanager
def _atomic_folder(path: Path) -> Iterator[Path]:
    """Yield a new temp folder beside ``path``; on success it is renamed onto ``path``."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise VideoError(path, "already exists; a PNG sequence needs a new or empty folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    # A plain mkdir, not mkdtemp's 0700, so the finished folder has the usual permissions.
    temp.mkdir()
    try:
        yield temp
        os.replace(temp, path)  # replaces an empty folder; refuses a non-empty one
    finally:
        shutil.rmtree(temp, ignore_errors=True)


_BackgroundSpec = tuple[float, float, float] | np.ndarray | Iterable[np.ndarray]


class _Background:
    """The frames an .mp4 is composited over, each float32 (height, width, 3) in [0, 1]."""

    def __init__(self, background: _BackgroundSpec, width: int, height: int):
        self._size = (width, height)
        self._frames: Iterator[np.ndarray] | None = None
        self._current: np.ndarray | None = None
        if isinstance(background, (tuple, list, np.ndarray)):
            array = np.asarray(background, dtype=np.float32)
            if array.shape == (3,):
                self._current = np.broadcast_to(array, (height, width, 3))
            elif array.ndim == 3 and array.shape[2] == 3:
                self._current = self._fit(array)
            else:
                raise ValueError(
                    f"a background is an RGB colour (3,) or image (H, W, 3), not {array.shape}"
                )
        else:
            self._frames = iter(background)

    def _fit(self, image: np.ndarray) -> np.ndarray:
        if image.shape[1::-1] == self._size:
            return image
        # Stretched to the frame: the caller crops or letterboxes first if that matters.
        return cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)

    def next(self) -> np.ndarray:
        if self._frames is not None:
            # A background video shorter than the clip holds its last frame.
            frame = next(self._frames, None)
            if frame is not None:
                self._current = self._fit(frame)
        if self._current is None:
            raise ValueError("the background video has no frames")
        return self._current


class VideoWriter:
    """Stream matted frames to a video file or PNG folder chosen by the path's suffix.

    Use it as a context manager: the output appears at ``path`` (and ``alpha_path``) only when
    the ``with`` block ends without an exception; otherwise, Ctrl-C included, the temp file or
    folder is deleted and any earlier file at ``path`` is left as it was.

    Parameters
    ----------
    path : str or PathLike
        ``.mov``, ``.webm``, ``.mp4``, or a folder (no suffix, or an existing empty folder);
        see the module docstring for the codecs.
    width, height : int
        Frame size. An ``.mp4`` gets one replicated row or column added to an odd size,
        since 4:2:0 H.264 needs even dimensions.
    fps : Fraction
        Frame rate; frame ``i`` is stamped ``i / fps`` exactly (variable frame rate becomes
        constant).
    audio_from : str or PathLike, optional
        A file whose first audio stream is copied (remuxed, or transcoded where the container
        cannot hold its codec). A PNG sequence has no audio and ignores it.
    background : optional
        Required for ``.mp4`` and refused otherwise: an RGB colour (3 floats in [0, 1]), an
        image (float32 (H, W, 3)), or an iterable of such frames (e.g. a :class:`VideoReader`)
        that holds its last frame if it runs out. Images of another size are stretched.
    alpha_path : str or PathLike, optional
        Also write the alpha as a grey video here (its own suffix picks the kind; ``.mov`` is
        ProRes 422 HQ, a folder gets 16-bit grey PNGs).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        width: int,
        height: int,
        fps: Fraction,
        audio_from: str | os.PathLike | None = None,
        background: _BackgroundSpec | None = None,
        alpha_path: str | os.PathLike | None = None,
    ):
        self.path = Path(path)
        self.kind = output_kind(self.path)
        self._size = (width, height)
        self._fps = Fraction(fps)
        self._pad = (0, 0)
        self._background = None
        if self.kind == "mp4":
            if background is None:
                raise VideoError(self.path, "an .mp4 has no alpha channel; give a background")
            self._background = _Background(background, width, height)
            self._pad = (height % 2, width % 2)
        elif background is not None:
            raise VideoError(self.path, f"a background applies to .mp4 output, not {self.kind}")
        if audio_from is not None:
            try:
                with av.open(str(audio_from)) as source:
                    if not source.streams.audio:
                        audio_from = None
            except av.FFmpegError as error:
                raise VideoError(
                    audio_from, f"not a readable video ({ffmpeg_reason(error)})"
                ) from None
        self._stack = contextlib.ExitStack()
        try:
            self._sink = self._open(self.path, self.kind, self.kind != "mp4", audio_from)
            self._alpha_sink = None
            if alpha_path is not None:
                alpha_path = Path(alpha_path)
                self._alpha_sink = self._open(alpha_path, output_kind(alpha_path), False, None)
        except BaseException:
            self._stack.__exit__(*sys.exc_info())
            raise
        self.frames_written = 0

    def _open(self, path: Path, kind: str, alpha: bool, audio_from) -> _EncodedSink | _PngSink:
        if kind == "png":
            return _PngSink(self._stack.enter_context(_atomic_folder(path)))
        temp = self._stack.enter_context(atomic_path(path))
        size = (self._size[0] + self._pad[1], self._size[1] + self._pad[0])
        try:
            sink = _EncodedSink(temp, kind, alpha, size, self._fps, audio_from)
        except av.FFmpegError as error:
            raise VideoError(path, f"cannot start writing ({ffmpeg_reason(error)})") from None
        self._stack.callback(sink.close)
        return sink

    def write(self, fg: np.ndarray, alpha: np.ndarray) -> None:
        """Append one frame.

        Parameters
        ----------
        fg : ndarray, float32, shape (height, width, 3), values in [0, 1]
            Foreground colours (for ``.mp4``, composited as I = alpha F + (1 - alpha) B).
        alpha : ndarray, float32, shape (height, width), values in [0, 1]
        """
        height, width = self._size[1], self._size[0]
        if fg.shape != (height, width, 3) or alpha.shape != (height, width):
            raise ValueError(
                f"{self.path}: frames must be ({height}, {width}, 3) and ({height}, {width}), "
                f"not {fg.shape} and {alpha.shape}"
            )
        if self._background is not None:
            image = composite(fg, alpha, self._background.next())
            image = np.pad(image, ((0, self._pad[0]), (0, self._pad[1]), (0, 0)), mode="edge")
        else:
            image = np.dstack([fg, alpha])
        try:
            self._sink.write(image)
            if self._alpha_sink is not None:
                self._alpha_sink.write(alpha)
        except av.FFmpegError as error:
            raise VideoError(
                self.path, f"cannot encode frame {self.frames_written} ({ffmpeg_reason(error)})"
            ) from None
        self.frames_written += 1

    def _finish(self) -> None:
        try:
            self._sink.finish()
            if self._alpha_sink is not None:
                self._alpha_sink.finish()
        except av.FFmpegError as error:
            raise VideoError(self.path, f"cannot finish writing ({ffmpeg_reason(error)})") from None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc_info) -> bool:
        if exc_info[0] is None:
            try:
                self._finish()
            except BaseException:
                self._stack.__exit__(*sys.exc_info())
                raise
        # Closes the containers, then renames the temp files (success) or deletes them.
        return self._stack.__exit__(*exc_info)

    def close(self) -> None:
        """Finish and publish the output, as leaving a ``with`` block without an error does."""
        self.__exit__(None, None, None)
