"""Benchmark: the video pipeline's speed against the still-image pipeline, and its flicker.

Clips are synthetic, with exact ground truth (``model.synthetic_clips.moving_clip``): a test
composite's foreground and alpha (``--data``, combine.py's ``test/{fg,alpha,bg}/``) moving
along a smooth random path over its static background, 24 frames, written as H.264 (crf 18)
and read back, so the input carries real compression noise.

Quality (at 640x360, ``--clips`` clips of ``--frames`` frames): each method mattes every frame
of each clip; the table gives whole-frame SAD (sum |alpha - alpha*| / 1000, mean over
frames) and dtSSD (RobustVideoMatting's: 100 x the mean over frames of sqrt(mean over pixels of
((a_t - a_{t-1}) - (g_t - g_{t-1}))^2)), averaged over clips. The methods:

* ``still, trimap per frame`` -- the still-image pipeline frame by frame, each frame with its
  own trimap from its ground truth (``trimap_from_alpha``, 11 px): an oracle no user has;
* ``first-frame trimap, propagated`` -- that trimap for frame 0 only, later trimaps from the
  previous alpha (``model.temporal.propagate_trimap``);
* ``automatic trimap per frame`` -- U²-Net-p trimaps (``model.auto_trimap``), frame by frame;
* ``difference key (baseline)`` -- against the clip's true empty background;
* each of the last three again ``+ blend``: ``temporal_blend`` with the previous frame's alpha
  at ``DEFAULT_SMOOTHING``.

Speed (at 640x360 and 1280x720, ``--speed-frames`` frames of the first clip): the video
pipeline (``model.video_matting.matte_stream``: decode, propagated trimap, matte, foreground
colours, ProRes 4444 encode) against the still pipeline run frame by frame on the same frames
(eval.py's ``process``: read the frame's PNG and its trimap PNG, matte, write an RGBA PNG), in
the same run, after one untimed frame each (traces the network, compiles numba).

Usage::

    python3 bench/video.py --data scripts/data/test           # 2 clips, 24 frames, 8 timed
    python3 bench/video.py --data scripts/data/test --clips 1 --speed-frames 4   # quicker
    python3 bench/video.py --data scripts/data/test --speed-frames 0    # the quality table only
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


import numpy as np

from model import video_matting as vm
from model.compositing import fit_background, trimap_from_alpha
from model.images import read_alpha, read_image, write_png
from model.plate import DifferenceKey
from model.synthetic_clips import moving_clip
from model.temporal import DEFAULT_SMOOTHING, dtssd
from model.video import VideoReader, VideoWriter

FPS = Fraction(24)
TRIMAP_KERNEL = 11
QUALITY_SIZE = (360, 640)
SPEED_SIZES = ((360, 640), (720, 1280))


class TrimapPerFrame:
    """The still pipeline's step: each frame with its own (ground-truth) trimap."""

    name = "still, trimap per frame"

    def __init__(self, matter, trimaps):
        self.matter = matter
        self.trimaps = iter(trimaps)

    def matte(self, frame, previous):
        trimap = next(self.trimaps)
        return vm.FrameMatte(self.matter.predict_alpha(frame, trimap), trimap)


def write_clip(path: Path, frames: list[np.ndarray]) -> None:
    """H.264 of opaque frames (alpha 1, so the writer's composite is the frame itself)."""
    height, width = frames[0].shape[:2]
    opaque = np.ones((height, width), np.float32)
    with VideoWriter(path, width=width, height=height, fps=FPS, background=(0, 0, 0)) as out:
        for frame in frames:
            out.write(frame, opaque)


def make_clip(folder: Path, name: str, size, seed: int, path: Path, frames: int):
    """Write one synthetic clip; returns (decoded frames, true alphas, empty background)."""
    fg = read_image(folder / "fg" / name)
    alpha = read_alpha(folder / "alpha" / name)
    bg = read_image(folder / "bg" / name)
    rng = np.random.default_rng(seed)
    pairs = list(moving_clip(fg, alpha, bg, frames, rng, size=size))
    write_clip(path, [image for image, _ in pairs])
    with VideoReader(path) as clip:
        frames = list(clip)
    return frames, [truth for _, truth in pairs], fit_background(bg, *size)


def methods(matter, saliency):
    """name -> (make_step(truths, plate), smoothing)."""

    def oracle(truths, _plate):
        return TrimapPerFrame(
            matter, [trimap_from_alpha(t, kernel_size=TRIMAP_KERNEL) for t in truths]
        )

    def propagated(truths, _plate):
        return vm.TrimapPropagation(matter, trimap_from_alpha(truths[0], kernel_size=TRIMAP_KERNEL))

    def automatic(_truths, _plate):
        return vm.AutoTrimaps(matter, saliency)

    def keyed(_truths, plate):
        return vm.PlateMatting(DifferenceKey(), plate)

    table = {"still, trimap per frame": (oracle, 0.0)}
    for name, make in (
        ("first-frame trimap, propagated", propagated),
        ("automatic trimap per frame", automatic),
        ("difference key (baseline)", keyed),
    ):
        table[name] = (make, 0.0)
        table[f"{name} + blend"] = (make, DEFAULT_SMOOTHING)
    return table


def measure_quality(matter, saliency, clips) -> dict[str, tuple[float, float]]:
    from tqdm import tqdm

    scores: dict[str, list[tuple[float, float]]] = {}
    table = methods(matter, saliency)
    total = len(table) * sum(len(frames) for frames, _, _ in clips)
    with tqdm(total=total, desc="quality", unit="frame") as bar:
        for frames, truths, plate in clips:
            for name, (make, smoothing) in table.items():
                alphas = []
                for result in vm.matte_frames(frames, make(truths, plate), smoothing=smoothing):
                    alphas.append(result.alpha)
                    bar.update()
                predicted, truth = np.stack(alphas), np.stack(truths)
                sad = float(np.abs(predicted - truth).sum(axis=(1, 2)).mean() / 1000)
                scores.setdefault(name, []).append((sad, dtssd(predicted, truth)))
    return {name: tuple(np.mean(values, axis=0)) for name, values in scores.items()}


def measure_speed(matter, folder: Path, name: str, size, frames: int, work: Path) -> tuple:
    """(video fps, still fps) on ``frames`` frames of one clip at ``size``."""
    from model.cutout import Job, Outputs, process

    short = work / f"speed_{size[1]}x{size[0]}.mp4"
    images, truths, _ = make_clip(folder, name, size, 0, short, frames + 1)
    first = trimap_from_alpha(truths[0], kernel_size=TRIMAP_KERNEL)
    # Warm-up (untimed): trace the network at these shapes and compile numba, both pipelines.
    jobs = []
    for index, (image, truth) in enumerate(zip(images, truths, strict=True)):
        write_png(work / f"frame{index}.png", image)
        write_png(work / f"trimap{index}.png", trimap_from_alpha(truth, kernel_size=TRIMAP_KERNEL))
        jobs.append(
            Job(
                work / f"frame{index}.png",
                work / f"trimap{index}.png",
                work / f"cut{index}.png",
                None,
            )
        )
    process(jobs[0], matter, Outputs())

    start = time.perf_counter()
    for job in jobs[1:]:
        process(job, matter, Outputs())
    still = frames / (time.perf_counter() - start)

    def video_run(path: Path) -> float:
        begin = time.perf_counter()
        with VideoReader(path) as clip, vm.open_writer(clip, work / "out.mov") as out:
            count = vm.matte_stream(
                clip,
                out,
                vm.TrimapPropagation(matter, first),
                smoothing=DEFAULT_SMOOTHING,
                progress=False,
            )
        return count / (time.perf_counter() - begin)

    video_run(short)  # warm-up
    return video_run(short), still


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        type=Path,
        default=Path("scripts/data/test"),
        help="a split folder with fg/, alpha/, bg/",
    )
    data.add_argument("--clips", type=int, default=2, help="clips for the quality table (2)")
    data.add_argument("--frames", type=int, default=24, help="frames per quality clip (24)")
    data.add_argument(
        "--speed-frames", type=int, default=8, help="timed frames per size (8; 0: no speed table)"
    )
    model = parser.add_argument_group("model")
    model.add_argument("--checkpoint", default="-1", help="as eval.py's (default: -1, newest)")
    model.add_argument("--log-dir", type=Path, default=Path("log"), help="runs folder (log)")
    return parser


def main(args: list[str] | None = None) -> int:
    options = build_parser().parse_args(args)
    names = sorted(path.name for path in (options.data / "alpha").glob("*.png"))
    if not names:
        print(
            f"error: {options.data}: no alpha/*.png (give a combine.py split folder)",
            file=sys.stderr,
        )
        return 2
    from model.auto_trimap import load_saliency_model
    from model.inference import Matter

    matter = Matter.load(options.checkpoint, options.log_dir)
    saliency = load_saliency_model()
    # Evenly spread over the split, so the clips are different subjects.
    picks = [names[i * len(names) // options.clips] for i in range(options.clips)]
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        clips = [
            make_clip(
                options.data, name, QUALITY_SIZE, seed, work / f"clip{seed}.mp4", options.frames
            )
            for seed, name in enumerate(picks)
        ]
        quality = measure_quality(matter, saliency, clips)
        del clips
        speeds = {
            size: measure_speed(matter, options.data, picks[0], size, options.speed_frames, work)
            for size in SPEED_SIZES
            if options.speed_frames
        }
    print(
        f"\nquality at {QUALITY_SIZE[1]}x{QUALITY_SIZE[0]}, {options.clips} clips x"
        f" {options.frames} frames (blend strength {DEFAULT_SMOOTHING}; lower is better)"
    )
    print(f"| {'method':<42} | SAD    | dtSSD |")
    print(f"|{'-' * 44}|--------|-------|")
    for name, (sad, flicker) in quality.items():
        print(f"| {name:<42} | {sad:6.2f} | {flicker:5.2f} |")
    if not speeds:
        return 0
    print(
        f"\nspeed on this CPU ({os.cpu_count()} cores), {options.speed_frames} frames,"
        " first-frame trimap"
    )
    print("| size      | video pipeline fps | still pipeline fps | ratio |")
    print("|-----------|--------------------|--------------------|-------|")
    for (height, width), (video, still) in speeds.items():
        print(
            f"| {f'{width}x{height}':<9} | {video:18.2f} | {still:18.2f} | {video / still:5.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
