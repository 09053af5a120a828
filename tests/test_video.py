"""model/video/: reading upright frames, the four output kinds, alpha, audio, bad input.

Every clip is made here with PyAV (64x48, a dozen frames at most), and every check decodes the
output with PyAV directly rather than with the module under test.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from model.compositing import composite
from model.images import to_uint8
from model.video import (
    VideoError,
    VideoReader,
    VideoWriter,
    is_video_path,
    output_kind,
    probe_video,
)

H, W, N = 48, 64, 8

# requirements allow av 17 (the last with Python 3.10 wheels); two test helpers need av 18.
_AV18 = int(av.__version__.split(".")[0]) >= 18
needs_av18 = pytest.mark.skipif(
    not _AV18,
    reason="av 17 has no set_display_rotation, and its yuva420p to RGBA conversion is garbled",
)
NTSC = Fraction(30000, 1001)


def _rgb(i: int, height: int = H, width: int = W) -> np.ndarray:
    """Frame i: float32 (height, width, 3), smooth ramps plus a block that moves with i."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([xx / (width - 1), yy / (height - 1), np.full_like(xx, 0.25)], axis=-1)
    rgb[8:24, 4 * i : 4 * i + 12] = (0.9, 0.1, 0.6)
    return rgb


def _alpha(i: int, height: int = H, width: int = W) -> np.ndarray:
    """Frame i's matte: float32 (height, width), a left-to-right ramp shifted by i pixels."""
    xx = np.arange(width, dtype=np.float32)
    ramp = np.clip((xx - 8 - i) / (width - 24), 0.0, 1.0)
    return np.broadcast_to(ramp, (height, width)).copy()


def _make_clip(
    path,
    *,
    codec="png",
    pix_fmt="rgb24",
    frames=N,
    fps=NTSC,
    size=(W, H),
    rotation=None,
    tags=None,
    audio_seconds=None,
):
    """Write a clip of _rgb frames with PyAV; optionally a 440 Hz mono AAC track."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = pix_fmt
        if rotation is not None:
            stream.set_display_rotation(rotation)
        stream.metadata.update(tags or {})
        if audio_seconds is not None:
            audio = container.add_stream("aac", rate=44100)
            audio.layout = "mono"
        container.start_encoding()  # writes the header even when there are no frames
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(to_uint8(_rgb(i, size[1], size[0])), format="rgb24")
            frame.pts, frame.time_base = i, 1 / Fraction(fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if audio_seconds is not None:
            samples = round(44100 * audio_seconds)
            tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / 44100)
            for start in range(0, samples, 1024):
                chunk = tone[None, start : start + 1024].astype(np.float32)
                frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                frame.sample_rate, frame.pts = 44100, start
                container.mux(audio.encode(frame))
            container.mux(audio.encode(None))
    return path


def _decode(path, fmt="rgba64le"):
    """All video frames of path as float arrays in [0, 1] (RGBA by default), via PyAV only."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.codec_context.name == "vp9":
            # FFmpeg's native VP9 decoder drops the alpha layer; libvpx's reads it.
            decoder = av.CodecContext.create("libvpx-vp9", "r")
            packets = (p for p in container.demux(stream) if p.size)
            frames = [f for p in packets for f in decoder.decode(p)] + decoder.decode(None)
        else:
            frames = list(container.decode(stream))
        arrays = [
            f.to_ndarray(format=fmt, src_colorspace=f.colorspace, src_color_range=f.color_range)
            for f in frames
        ]
        return [a.astype(np.float32) / np.iinfo(a.dtype).max for a in arrays]


def _luma(path):
    """Grey frames of path as float arrays, read from the Y plane (no swscale conversion).

    Grey has no chroma in any YUV matrix, so limited-range Y maps back as (Y - 16) / 219,
    scaled by 2**(bits - 8) for deeper formats.
    """
    lumas = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            scale = 2 ** (frame.format.components[0].bits - 8)
            dtype = np.uint16 if scale > 1 else np.uint8
            plane = frame.planes[0]
            rows = np.frombuffer(plane, dtype).reshape(frame.height, -1)[:, : frame.width]
            lumas.append((rows.astype(np.float32) - 16 * scale) / (219 * scale))
    return lumas


def _write(path, frames=N, fps=NTSC, **options):
    with VideoWriter(path, width=W, height=H, fps=fps, **options) as writer:
        for i in range(frames):
            writer.write(_rgb(i), _alpha(i))
    return path


def _one_line_error(error: VideoError, path) -> str:
    message = str(error)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message


# --- reading ---------------------------------------------------------------------------------


def test_video_paths_are_recognised_by_suffix_in_any_case():
    assert all(is_video_path(f"clip.{s}") for s in ("mp4", "MOV", "webm", "mkv", "Avi"))
    assert not any(is_video_path(p) for p in ("photo.png", "clip.mp4.txt", "mp4"))


def test_reader_gives_exact_frames_and_header_facts(tmp_path):
    # PNG-coded video is lossless RGB, so the reader must return the written bytes exactly.
    path = _make_clip(tmp_path / "clip.mov")
    with VideoReader(path) as reader:
        frames = list(reader)
        info = reader.info
    assert (info.width, info.height, info.fps, info.frames) == (W, H, NTSC, N)
    assert (info.rotation, info.has_audio, info.codec) == (0, False, "png")
    assert info.duration == pytest.approx(N / NTSC, abs=1e-3)
    assert len(frames) == N
    for i, frame in enumerate(frames):
        assert frame.dtype == np.float32 and frame.shape == (H, W, 3)
        np.testing.assert_array_equal(frame, to_uint8(_rgb(i)) / np.float32(255))


@needs_av18
@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_reader_applies_the_display_matrix(tmp_path, degrees):
    # set_display_rotation takes counter-clockwise degrees, as np.rot90 turns.
    path = _make_clip(tmp_path / "phone.mov", frames=2, rotation=degrees)
    with VideoReader(path) as reader:
        frames = list(reader)
        info = reader.info
    expected = np.rot90(to_uint8(_rgb(1)), degrees // 90) / np.float32(255)
    assert (info.height, info.width) == expected.shape[:2]
    assert info.rotation == degrees % 360
    np.testing.assert_array_equal(frames[1], expected)


def test_reader_applies_an_old_clockwise_rotate_tag(tmp_path):
    # FFV1 in Matroska: lossless RGB in a container that keeps a plain tag as it is.
    path = _make_clip(
        tmp_path / "old.mkv", codec="ffv1", pix_fmt="bgr0", frames=2, tags={"rotate": "90"}
    )
    frames = list(VideoReader(path))
    np.testing.assert_array_equal(frames[0], np.rot90(to_uint8(_rgb(0)), -1) / np.float32(255))


def test_reader_converts_ten_bit_video_at_sixteen_bits(tmp_path):
    # ProRes is 10-bit; 8-bit output would put every value on the 1/255 grid.
    path = _make_clip(tmp_path / "deep.mov", codec="prores_ks", pix_fmt="yuv444p10le", frames=1)
    frame = next(iter(VideoReader(path)))
    assert np.abs(frame - to_uint8(_rgb(0)) / 255).max() < 0.01
    assert not np.allclose(frame * 255, np.rint(frame * 255), atol=1e-3)


def test_reader_honours_full_range_tags(tmp_path):
    # Y = 235 is 235/255 in full (JPEG) range but white in limited range; FFV1 is lossless.
    path = tmp_path / "full.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv444p"
        stream.codec_context.color_range = 2  # AVCOL_RANGE_JPEG
        frame = av.VideoFrame(W, H, "yuv444p")
        for plane, value in zip(frame.planes, (235, 128, 128), strict=True):
            plane.update(np.full(plane.buffer_size, value, np.uint8))
        frame.color_range, frame.pts = 2, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    pixels = next(iter(VideoReader(path)))
    np.testing.assert_allclose(pixels, 235 / 255, atol=1 / 255)


# --- bad input -------------------------------------------------------------------------------


def test_text_file_named_mp4_is_not_a_video(tmp_path):
    path = tmp_path / "x.mp4"
    path.write_text("hello, not a video\n")
    with pytest.raises(VideoError) as caught:
        VideoReader(path)
    assert _one_line_error(caught.value, path).startswith(f"{path}: not a readable video (")


# What a zero-frame file looks like depends on the container: AVI keeps an empty video stream,
# MP4 drops the empty track, and Matroska fails to find its first cluster.
@pytest.mark.parametrize(
    "name,codec,pix_fmt,problem",
    [
        ("empty.avi", "mpeg4", "yuv420p", "no frames"),
        ("empty.mp4", "libx264", "yuv420p", "not a readable video (no video stream)"),
        ("empty.mkv", "ffv1", "bgr0", "not a readable video (End of file)"),
    ],
)
def test_zero_frame_video_is_refused(tmp_path, name, codec, pix_fmt, problem):
    path = _make_clip(tmp_path / name, codec=codec, pix_fmt=pix_fmt, frames=0)
    with pytest.raises(VideoError) as caught:
        probe_video(path)
    assert _one_line_error(caught.value, path) == f"{path}: {problem}"


def test_audio_only_file_is_refused(tmp_path):
    path = tmp_path / "song.mp4"
    with av.open(str(path), "w") as container:
        audio = container.add_stream("aac", rate=44100)
        silence = np.zeros((1, 1024), np.float32)
        frame = av.AudioFrame.from_ndarray(silence, format="flt", layout="mono")
        frame.sample_rate, frame.pts = 44100, 0
        container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
    with pytest.raises(VideoError) as caught:
        probe_video(path)
    assert _one_line_error(caught.value, path) == f"{path}: audio only, no video stream"


def test_codec_without_a_decoder_is_refused(tmp_path):
    # An AVI names its codec by a FourCC; swapping MPEG-4's for an unknown one leaves a valid
    # container whose video nothing can decode.
    source = _make_clip(tmp_path / "ok.avi", codec="mpeg4", pix_fmt="yuv420p", frames=2)
    data = source.read_bytes()
    assert data.count(b"FMP4") == 2
    path = tmp_path / "odd.avi"
    path.write_bytes(data.replace(b"FMP4", b"ZQZQ"))
    with pytest.raises(VideoError) as caught:
        probe_video(path)
    assert "cannot decode its video codec" in _one_line_error(caught.value, path)


def test_frame_size_over_the_limit_is_refused(tmp_path):
    path = _make_clip(tmp_path / "big.mov", frames=1)
    assert probe_video(path, max_pixels=W * H).width == W
    with pytest.raises(VideoError) as caught:
        probe_video(path, max_pixels=W * H - 1)
    message = _one_line_error(caught.value, path)
    assert f"{W}x{H} frames are over the limit of {W * H - 1:,} pixels" in message


def test_missing_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "gone.mp4"
    with pytest.raises(VideoError) as caught:
        VideoReader(path)
    _one_line_error(caught.value, path)


# --- writing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,codec,pix_fmt",
    [
        ("out.mov", "prores", "yuva444p12le"),  # FFmpeg decodes ProRes 4444 at 12 bits
        ("out.webm", "vp9", "yuv420p"),  # the native decoder reports the colour planes only
        ("out.mp4", "h264", "yuv420p"),
    ],
)
def test_video_outputs_keep_rate_count_and_size(tmp_path, name, codec, pix_fmt):
    background = (0.0, 1.0, 0.0) if name.endswith(".mp4") else None
    path = _write(tmp_path / name, background=background)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == (codec, pix_fmt)
        assert (stream.codec_context.width, stream.codec_context.height) == (W, H)
        assert stream.average_rate == NTSC
        assert sum(1 for _ in container.decode(stream)) == N
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temp file left


def test_png_sequence_is_lossless_rgba(tmp_path):
    folder = _write(tmp_path / "frames")
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"frame_{i:06d}.png" for i in range(N)]
    for i, name in enumerate(names):
        with Image.open(folder / name) as image:
            assert image.mode == "RGBA"
            pixels = np.asarray(image)
        np.testing.assert_array_equal(pixels, to_uint8(np.dstack([_rgb(i), _alpha(i)])))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]


def test_existing_empty_folder_takes_a_png_sequence(tmp_path):
    folder = tmp_path / "out.d"
    folder.mkdir()
    assert output_kind(folder) == "png"
    _write(folder, frames=2)
    assert len(list(folder.iterdir())) == 2


# Measured on these frames (worst frame): ProRes 4444 alpha max 0.0011, colour max 0.003;
# VP9 at crf 20 alpha max 0.004, colour mean 0.008 but max 0.31, where 4:2:0 chroma blurs the
# magenta block's edges. Alpha has its own full-resolution plane in both, hence max 0.02.
@pytest.mark.parametrize(
    "name,rgb_error,rgb_tol",
    [("a.mov", np.max, 0.02), pytest.param("a.webm", np.mean, 0.02, marks=needs_av18)],
)
def test_alpha_survives(tmp_path, name, rgb_error, rgb_tol):
    decoded = _decode(_write(tmp_path / name))
    assert len(decoded) == N
    for i, rgba in enumerate(decoded):
        assert np.abs(rgba[..., 3] - _alpha(i)).max() < 0.02
        assert rgb_error(np.abs(rgba[..., :3] - _rgb(i))) < rgb_tol


def test_mp4_is_composited_over_a_background_video_that_holds_its_last_frame(tmp_path):
    plates = [np.full((H, W, 3), level, np.float32) for level in (0.2, 0.5, 0.8)]
    decoded = _decode(_write(tmp_path / "over.mp4", background=iter(plates)), fmt="rgb48le")
    assert len(decoded) == N
    for i, rgb in enumerate(decoded):
        expected = composite(_rgb(i), _alpha(i), plates[min(i, 2)])
        # H.264 at crf 18 with 4:2:0 chroma: measured mean 0.004, max 0.12 at the block's edges.
        assert np.abs(rgb - expected).mean() < 0.015


@pytest.mark.parametrize("background", ["colour", "image"])
def test_mp4_background_colour_or_image(tmp_path, background):
    image = np.zeros((H // 2, W // 2, 3), np.float32)
    image[..., 2] = 1.0  # blue, at half size: stretched to the frame
    spec = (0.0, 0.0, 1.0) if background == "colour" else image
    decoded = _decode(_write(tmp_path / "over.mp4", frames=2, background=spec), fmt="rgb48le")
    blue = np.broadcast_to(np.float32([0, 0, 1]), (H, W, 3))
    assert np.abs(decoded[1] - composite(_rgb(1), _alpha(1), blue)).mean() < 0.015


def test_mp4_pads_an_odd_size_to_even(tmp_path):
    path = tmp_path / "odd.mp4"
    with VideoWriter(path, width=W - 1, height=H - 1, fps=25, background=(1, 1, 1)) as writer:
        writer.write(_rgb(0, H - 1, W - 1), np.ones((H - 1, W - 1), np.float32))
    (frame,) = _decode(path, fmt="rgb48le")
    assert frame.shape == (H, W, 3)
    # The added row and column repeat the last ones (the red ramp is 1 at the right edge).
    assert np.abs(frame[:, -1, 0] - 1.0).max() < 0.05


# Measured max error: ProRes 422 HQ 0.001; VP9 0.005 and H.264 0.021, both 8-bit and lossy.
@pytest.mark.parametrize(
    "name,tol", [("alpha.mov", 0.005), ("alpha.webm", 0.03), ("alpha.mp4", 0.03)]
)
def test_alpha_only_video_alongside(tmp_path, name, tol):
    _write(tmp_path / "main.mov", alpha_path=tmp_path / name)
    decoded = _luma(tmp_path / name)
    assert len(decoded) == N
    for i, grey in enumerate(decoded):
        assert np.abs(grey - _alpha(i)).max() < tol


def test_alpha_only_png_sequence_is_sixteen_bit(tmp_path):
    _write(tmp_path / "main.mov", frames=2, alpha_path=tmp_path / "mattes")
    with Image.open(tmp_path / "mattes" / "frame_000001.png") as image:
        grey = np.asarray(image).astype(np.float32) / 65535
    np.testing.assert_allclose(grey, _alpha(1), atol=1 / 65535)


@pytest.mark.parametrize(
    "name,codec,remuxed",
    [("o.mov", "aac", True), ("o.mp4", "aac", True), ("o.webm", "opus", False)],
)
def test_audio_is_kept(tmp_path, name, codec, remuxed):
    frames = 12
    source = _make_clip(
        tmp_path / "talk.mov",
        codec="libx264",
        pix_fmt="yuv420p",
        frames=frames,
        fps=25,
        audio_seconds=frames / 25,
    )
    background = (0, 0, 0) if name.endswith(".mp4") else None
    out = _write(tmp_path / name, frames=frames, fps=25, audio_from=source, background=background)
    with av.open(str(out)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.name == codec
        packets = [bytes(p) for p in container.demux(stream) if p.size]
    with av.open(str(out)) as container:
        stream = container.streams.audio[0]
        samples = np.concatenate([f.to_ndarray()[0] for f in container.decode(stream)])
        rate = stream.codec_context.sample_rate
    # Encoder priming and padding add up to a few codec frames (1024 samples for AAC).
    assert len(samples) / rate == pytest.approx(frames / 25, abs=0.05)
    # It is the source's 440 Hz tone, not silence.
    spectrum = np.abs(np.fft.rfft(samples))
    assert np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()] == pytest.approx(440, abs=5)
    if remuxed:
        with av.open(str(source)) as container:
            stream = container.streams.audio[0]
            assert packets == [bytes(p) for p in container.demux(stream) if p.size]


@pytest.mark.parametrize("name", ["out.mov", "out.webm", "out.mp4", "frames"])
def test_interrupted_writer_leaves_no_output(tmp_path, name):
    background = (0, 0, 0) if name.endswith(".mp4") else None
    writer = VideoWriter(
        tmp_path / name,
        width=W,
        height=H,
        fps=25,
        background=background,
        alpha_path=tmp_path / "alpha.mov",
    )
    with pytest.raises(KeyboardInterrupt), writer:
        writer.write(_rgb(0), _alpha(0))
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_interrupted_writer_keeps_the_previous_file(tmp_path):
    path = tmp_path / "out.mov"
    path.write_bytes(b"the finished video from an earlier run")
    with pytest.raises(KeyboardInterrupt), VideoWriter(path, width=W, height=H, fps=25):
        raise KeyboardInterrupt
    assert path.read_bytes() == b"the finished video from an earlier run"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mov"]


@pytest.mark.parametrize(
    "name,options,problem",
    [
        ("out.mkv", {}, "cannot write .mkv video"),
        ("out.mp4", {}, "an .mp4 has no alpha channel; give a background"),
        ("out.mov", {"background": (0, 0, 0)}, "a background applies to .mp4 output"),
    ],
)
def test_writer_refuses_bad_requests(tmp_path, name, options, problem):
    with pytest.raises(VideoError) as caught:
        VideoWriter(tmp_path / name, width=W, height=H, fps=25, **options)
    assert problem in _one_line_error(caught.value, tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_png_sequence_refuses_a_folder_with_files(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(VideoError) as caught:
        VideoWriter(folder, width=W, height=H, fps=25)
    assert "needs a new or empty folder" in _one_line_error(caught.value, folder)
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]


def test_writer_rejects_frames_of_the_wrong_size(tmp_path):
    with (
        pytest.raises(ValueError, match="frames must be"),
        VideoWriter(tmp_path / "out.mov", width=W, height=H, fps=25) as writer,
    ):
        writer.write(_rgb(0, H, W + 2), _alpha(0, H, W + 2))
    assert list(tmp_path.iterdir()) == []
