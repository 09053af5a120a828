"""model/video_matting.py and ``eval.py CLIP [TRIMAP] OUT``.

Clips are made here with PyAV (64x48, a disc moving one pixel per frame over ramps) and every
output is decoded with PyAV directly. The model is the tests' tiny random generator; the
pipeline's wiring is checked with fake matting models whose answers are known.
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from test_inference import write_run
from test_plate import TINY_PLATE

import eval as eval_cli
from model import video_matting as vm
from model.compositing import trimap_from_alpha
from model.images import read_image, to_uint8, write_png
from model.plate import difference_key
from model.plate_inference import PlateMatter
from model.temporal import dtssd, propagate_trimap
from model.video import VideoReader
from tests.ctrl_c import interrupt

ROOT = Path(__file__).resolve().parents[1]
H, W, N = 48, 64, 6


def _truth(i: int, height: int = H, width: int = W) -> np.ndarray:
    """Frame i's matte: a disc of radius 12 with a 3-px soft rim, centre moving right 1 px."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    distance = np.hypot(yy - height / 2, xx - (width / 2 - 6 + i))
    return np.clip((12 - distance) / 3 + 0.5, 0, 1).astype(np.float32)


def _frame(i: int, height: int = H, width: int = W) -> np.ndarray:
    """Frame i: a warm disc over blue-green ramps (a static background)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    bg = np.stack([0.1 + 0 * xx, xx / width, yy / height], axis=-1)
    alpha = _truth(i, height, width)[..., None]
    return (alpha * np.array([0.9, 0.6, 0.2], np.float32) + (1 - alpha) * bg).astype(np.float32)


def _background(height: int = H, width: int = W) -> np.ndarray:
    return _frame(-1000, height, width)  # the disc far outside the frame


def make_clip(path: Path, frames: int = N, height: int = H, width: int = W) -> Path:
    """An H.264 (or, for .mov, PNG-coded) clip of `frames` _frame images at 25 fps."""
    codec, pix_fmt = ("png", "rgb24") if path.suffix == ".mov" else ("libx264", "yuv420p")
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(to_uint8(_frame(i, height, width)), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def decode(path: Path, fmt: str = "rgba") -> list[np.ndarray]:
    """Every frame of a video (libvpx for VP9, so its alpha is read) as uint8 arrays."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.codec_context.name == "vp9":
            decoder = av.CodecContext.create("libvpx-vp9", "r")
            packets = (p for p in container.demux(stream) if p.size)
            frames = [f for p in packets for f in decoder.decode(p)] + decoder.decode(None)
        else:
            frames = list(container.decode(stream))
        return [f.to_ndarray(format=fmt) for f in frames]


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory) -> Path:
    log = tmp_path_factory.mktemp("video_cli") / "log"
    write_run(log)
    return log


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4")


@pytest.fixture
def first_trimap(tmp_path) -> Path:
    path = tmp_path / "first.png"
    write_png(path, to_uint8(trimap_from_alpha(_truth(0), kernel_size=5)))
    return path


def _run(log_dir: Path, *args) -> int:
    return eval_cli.main([*map(str, args), "--log-dir", str(log_dir)])


# ---------------------------------------------------------------- the library, with fakes


class OracleMatter:
    """predict_alpha returns frame i's true matte and records the trimap it was given."""

    def __init__(self):
        self.trimaps = []

    def predict_alpha(self, image, trimap):
        self.trimaps.append(trimap)
        return _truth(len(self.trimaps) - 1)


def test_trimap_propagation_derives_each_trimap_from_the_previous_alpha():
    first = trimap_from_alpha(_truth(0), kernel_size=5)
    matter = OracleMatter()
    step = vm.TrimapPropagation(matter, first, band=0.05, motion=0.05)
    results = list(vm.matte_frames((_frame(i) for i in range(4)), step))
    np.testing.assert_array_equal(matter.trimaps[0], first)
    for i in (1, 2, 3):
        # 5% of 48 px is 2.4, rounded to 2: radius 4.
        np.testing.assert_array_equal(
            matter.trimaps[i], propagate_trimap(_truth(i - 1), band=2, motion=2)
        )
        # The disc moved 1 px, less than the margin: its soft rim lies inside the unknown band.
        soft = (_truth(i) > 0) & (_truth(i) < 1)
        assert (matter.trimaps[i][soft] == 0.5).all()
    np.testing.assert_array_equal(results[3].alpha, _truth(3))


class NoisyStep:
    """A step whose alpha is the truth plus fresh noise in the band, every frame."""

    def __init__(self):
        self.rng = np.random.default_rng(0)
        self.index = 0

    def matte(self, frame, previous):
        truth = _truth(self.index)
        self.index += 1
        trimap = np.full(truth.shape, 0.5, np.float32)
        noise = self.rng.normal(0, 0.1, truth.shape).astype(np.float32)
        return vm.FrameMatte(np.clip(truth + noise, 0, 1), trimap)


def test_smoothing_follows_the_blend_of_the_previous_output():
    still = _frame(0)  # the same picture every frame: every pixel is still
    plain = [r.alpha for r in vm.matte_frames([still] * 3, NoisyStep())]
    smooth = [r.alpha for r in vm.matte_frames([still] * 3, NoisyStep(), smoothing=0.5)]
    np.testing.assert_array_equal(smooth[0], plain[0])
    np.testing.assert_allclose(smooth[1], 0.5 * plain[1] + 0.5 * smooth[0], atol=1e-6)
    np.testing.assert_allclose(smooth[2], 0.5 * plain[2] + 0.5 * smooth[1], atol=1e-6)


def test_plate_step_runs_the_difference_key_baseline():
    step = vm.plate_step(_background())
    assert step.name == "plate: difference key (baseline)"
    result = step.matte(_frame(2), None)
    np.testing.assert_array_equal(result.alpha, difference_key(_frame(2), _background()))
    assert (result.trimap[result.alpha == 1][:1] >= 0.5).all()


def test_the_key_on_a_static_clip_has_no_flicker():
    # Identical frames and an identical truth: dtSSD is exactly 0 for the key's frame-by-frame
    # matte (it is a function of the frame alone), and not 0 once the subject moves.
    frames = [_frame(3)] * 4
    alphas = np.stack([r.alpha for r in vm.matte_frames(frames, vm.plate_step(_background()))])
    assert dtssd(alphas, np.stack([_truth(3)] * 4)) == 0.0
    moving = [_frame(i) for i in range(4)]
    alphas = np.stack([r.alpha for r in vm.matte_frames(moving, vm.plate_step(_background()))])
    assert dtssd(alphas, np.stack([_truth(3)] * 4)) > 0.1


def test_median_plate_removes_a_subject_that_moves_through(tmp_path):
    # The disc covers any one pixel in under half of these frames only far from its path's
    # middle, so check the median against the background where that holds.
    path = make_clip(tmp_path / "long.mov", frames=40, height=48, width=64)
    plate = vm.median_plate(path, 0, 40)
    assert plate.shape == (H, W, 3)
    covered = np.mean([_truth(i) > 0 for i in range(40)], axis=0)
    rarely = covered < 0.4
    assert rarely.sum() > 0.5 * H * W
    np.testing.assert_allclose(plate[rarely], _background()[rarely], atol=2 / 255)
    with pytest.raises(vm.VideoError, match="the clip has only 40"):
        vm.median_plate(path, 50, 60)


def test_parse_frame_range():
    assert vm.parse_frame_range("0:30") == (0, 30)
    for bad in ("5", "3:3", "-1:4", "a:b", "4:2"):
        with pytest.raises(ValueError, match="not a frame range"):
            vm.parse_frame_range(bad)


# ---------------------------------------------------------------- eval.py CLIP [TRIMAP] OUT


@pytest.mark.slow
@pytest.mark.parametrize("name", ["out.mov", "out.webm", "out.mp4", "frames"])
def test_every_output_kind_has_the_clips_frames(log_dir, clip, first_trimap, tmp_path, name):
    out = tmp_path / name
    extra = ["--background", "#00ff00"] if name.endswith(".mp4") else []
    assert _run(log_dir, clip, first_trimap, out, "--alpha", tmp_path / "matte.mov", *extra) == 0
    if name == "frames":
        pngs = sorted(out.iterdir())
        assert [p.name for p in pngs] == [f"frame_{i:06d}.png" for i in range(N)]
        frames = [np.asarray(Image.open(p)) for p in pngs]
    else:
        frames = decode(out)
    assert len(frames) == N
    assert all(f.shape == (H, W, 4) for f in frames)
    with VideoReader(out if name != "frames" else clip) as result:
        assert result.info.fps == 25
    mattes = decode(tmp_path / "matte.mov", fmt="gray")
    assert len(mattes) == N and mattes[0].shape == (H, W)
    # The first frame's trimap is clamped: 255 on its foreground, 0 on its background
    # (within 3 levels: ProRes 422 HQ, then swscale's 10-bit limited to 8-bit full range).
    trimap = np.asarray(Image.open(first_trimap))
    assert mattes[0][trimap == 255].min() >= 252 and mattes[0][trimap == 0].max() <= 3
    if name == "out.mp4":
        # Away from the disc (4:2:0 chroma blurs colours over 2 px at its edge): green.
        corner = frames[0][:8, :8, :3].reshape(-1, 3)
        np.testing.assert_allclose(corner, np.broadcast_to([0, 255, 0], corner.shape), atol=6)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []


@pytest.mark.slow
def test_first_frame_trimap_is_carried_through_the_clip(log_dir, clip, first_trimap, tmp_path):
    out = tmp_path / "out.mov"
    assert _run(log_dir, clip, first_trimap, out) == 0
    alphas = [f[..., 3] for f in decode(out)]
    assert len(alphas) == N
    yy, xx = np.mgrid[0:H, 0:W]
    centre = np.hypot(yy - H / 2, xx - (W / 2 - 6)) <= 2
    for i, alpha in enumerate(alphas):
        # The random tiny model answers about 0.5 in the band, so each frame's trimap keeps
        # the previous certain region less the 1-px margin (2% of 48 px): the first frame's
        # disc centre stays clamped to 1, the corners to 0, through the whole clip.
        assert alpha[centre].min() >= 254, i
        assert alpha[:4, :4].max() <= 1 and alpha[-4:, -4:].max() <= 1, i


@pytest.mark.slow
def test_plate_mode_runs_the_plate_model(log_dir, clip, tmp_path):
    plate = tmp_path / "plate.png"
    write_png(plate, _background())
    out = tmp_path / "out.mov"
    plate_log = tmp_path / "log"
    write_run(plate_log, "plate-run", TINY_PLATE)
    args = ("--background-plate", plate, "--smoothing", "0")
    assert eval_cli.main([*map(str, (clip, out, *args)), "--log-dir", str(plate_log)]) == 0
    alphas = [f[..., 3].astype(np.float32) / 255 for f in decode(out)]
    matter = PlateMatter.load("-1", plate_log)
    with VideoReader(clip) as frames:
        expected = [matter.predict_alpha(frame, read_image(plate)) for frame in frames]
    assert len(alphas) == len(expected) == N
    for alpha, truth in zip(alphas, expected, strict=True):
        assert np.abs(alpha - truth).max() < 0.02  # ProRes 4444's alpha rounding


@pytest.mark.slow
def test_plate_mode_gives_every_frame_of_a_24_frame_clip_as_rgba(tmp_path):
    # The acceptance shape: eval.py clip.mp4 out.mov --background-plate plate.png on a
    # 24-frame clip with a static background gives 24 RGBA frames of the input's size.
    clip = make_clip(tmp_path / "clip24.mp4", frames=24, height=40, width=56)
    plate = tmp_path / "plate.png"
    write_png(plate, _background(40, 56))
    plate_log = tmp_path / "log"
    write_run(plate_log, "plate-run", TINY_PLATE)
    out = tmp_path / "out.mov"
    args = [str(clip), str(out), "--background-plate", str(plate), "--log-dir", str(plate_log)]
    assert eval_cli.main(args) == 0
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "prores"
        frames = [f.to_ndarray(format="rgba") for f in container.decode(stream)]
    assert len(frames) == 24
    assert all(frame.shape == (40, 56, 4) for frame in frames)


def test_plate_mode_without_a_plate_model_is_one_line(log_dir, clip, tmp_path, capsys):
    plate = tmp_path / "plate.png"
    write_png(plate, _background())
    assert _run(log_dir, clip, tmp_path / "out.mov", "--background-plate", plate) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no trained plate run" in err
    assert not (tmp_path / "out.mov").exists()


# ---------------------------------------------------------------- bad input: one line, no file


def _make_audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        audio = container.add_stream("aac", rate=44100)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt")
        frame.sample_rate, frame.pts = 44100, 0
        container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
    return path


def _make_empty(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        container.start_encoding()
    return path


def _make_huge(path: Path) -> Path:
    """One black 8192x4320 PNG-coded frame: over the 8K UHD (7680x4320) limit."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("png", rate=25)
        stream.width, stream.height, stream.pix_fmt = 8192, 4320, "rgb24"
        frame = av.VideoFrame(8192, 4320, "rgb24")
        frame.planes[0].update(bytes(frame.planes[0].buffer_size))
        frame.pts = 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.mark.parametrize(
    "name,make,problem",
    [
        ("text.mp4", lambda p: p.write_text("not a video\n"), "not a readable video ("),
        ("empty.avi", _make_empty, "no frames"),
        ("song.mp4", _make_audio_only, "audio only, no video stream"),
        ("huge.mov", _make_huge, "8192x4320 frames are over the limit of 33,177,600 pixels"),
    ],
)
def test_bad_clip_is_one_line_and_no_output(log_dir, tmp_path, capsys, name, make, problem):
    path = tmp_path / name
    make(path)
    before = set(tmp_path.iterdir())
    assert _run(log_dir, path, tmp_path / "out.mov", "--alpha", tmp_path / "a.mov") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {path}: "), err
    assert problem in err
    assert set(tmp_path.iterdir()) == before


@pytest.mark.parametrize(
    "extra,problem",
    [
        (["--mask-threshold", "0.5"], "--mask-threshold: applies to photos"),
        (["--plate-frames", "5:2"], "--plate-frames: '5:2' is not a frame range"),
        (["--plate-frames", "0:2", "--background-plate", "p.png"], "give one of TRIMAP"),
    ],
)
def test_bad_video_arguments(log_dir, clip, tmp_path, capsys, extra, problem):
    assert _run(log_dir, clip, tmp_path / "out.mov", *extra) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and problem in err, err
    assert list(tmp_path.iterdir()) == []


def test_output_kind_and_background_are_checked_before_the_model(log_dir, clip, tmp_path, capsys):
    assert _run(log_dir, clip, tmp_path / "out.mp4") == 2
    assert "give one for an .mp4 OUT" in capsys.readouterr().err
    assert _run(log_dir, clip, tmp_path / "out.webm", "--background", "red") == 2
    assert "give one for an .mp4 OUT" in capsys.readouterr().err
    assert _run(log_dir, clip, tmp_path / "out.gif") == 2
    assert "cannot write .gif video" in capsys.readouterr().err
    assert _run(log_dir, clip, clip) == 2
    assert "is the input clip" in capsys.readouterr().err
    plate = tmp_path / "plate.png"
    write_png(plate, np.zeros((10, 10, 3), np.float32))
    assert _run(log_dir, clip, tmp_path / "o.mov", "--background-plate", plate) == 2
    assert "the plate is 10x10 but the clip's frames are 64x48" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plate.png"]


@pytest.mark.slow
def test_ctrl_c_mid_run_exits_130_and_leaves_no_file(log_dir, tmp_path, first_trimap):
    clip = make_clip(tmp_path / "long.mp4", frames=400)
    out = tmp_path / "out.mov"

    def started() -> bool:  # the writer's temp file exists: frames are being matted
        return any(p.name.startswith(".out.mov.") for p in tmp_path.iterdir())

    args = [str(clip), str(first_trimap), str(out), "--log-dir", str(log_dir)]
    status, err = interrupt(ROOT / "eval.py", args, started)
    assert status == 130, err
    lines = [line for line in re.split(r"[\r\n]", err) if line.strip()]
    assert lines[-1] == "error: interrupted", err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.png", "long.mp4"]


def test_a_clip_is_never_its_own_output(log_dir, clip, tmp_path, capsys):
    own = tmp_path / "own.mov"
    own.write_bytes(clip.read_bytes())
    link = tmp_path / "link.mov"
    link.symlink_to(own)
    before = own.read_bytes()
    for out in (own, link):
        assert _run(log_dir, own, out) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "the input clip" in err, err
    assert own.read_bytes() == before
