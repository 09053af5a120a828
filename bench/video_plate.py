"""Benchmark: plate-mode video matting against the difference key (issue 16's acceptance).

Each clip is synthetic with exact ground truth: a fresh procedural foreground
(``scripts/procedural.py``, seeds 5000 + i, which the dataset never used) moving along a smooth
random path (``model.synthetic_clips.moving_clip``) over a static procedural background, 24
frames at 640x360, written as H.264 (crf 18) and read back, so the input carries real
compression noise; ``plate.png`` is the exact empty background.

Rows, all on the same decoded frames in the same run (lower is better):

* ``eval.py --background-plate`` -- the command line itself, ``eval.py clip.mp4 out.mov
  --background-plate plate.png`` with the first ``--models`` checkpoint and the default
  ``--smoothing``; the .mov is decoded back with PyAV (checked: T RGBA frames of the clip's
  size), so ProRes rounding is included;
* per ``--models`` checkpoint, without the blend: ``frame by frame``
  (``PlateMatting(feed_previous=False)``: no previous alpha, as a still model), and for a model
  with ``previous_alpha`` also ``previous alpha`` (each frame gets the previous output);
* ``difference key`` (``model.plate.DifferenceKey``, the one the still benchmark uses), and
  ``+ blend``.

SAD is whole-frame, sum |alpha - alpha*| / 1000 averaged over frames; dtSSD is
RobustVideoMatting's (``model.temporal.dtssd``); both averaged over clips. The ratios divide by
the difference key's with the same blending. The issue's acceptance: the eval.py row's SAD at
most 0.5x the key's, and its dtSSD no worse.

Usage::

    python3 bench/video_plate.py                 # 4 clips, pretrained-plate-video and -plate
    python3 bench/video_plate.py --clips 2 --models log/my-temporal-run log/pretrained-plate
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import av
import numpy as np

from model import video_matting as vm
from model.compositing import fit_background
from model.images import read_image, write_png
from model.plate import DifferenceKey
from model.synthetic_clips import moving_clip
from model.temporal import DEFAULT_SMOOTHING, dtssd
from model.video import VideoReader, VideoWriter
from scripts import procedural

ROOT = Path(__file__).resolve().parents[1]
FPS = Fraction(24)
FAMILIES = ("fur", "hair", "lace", "defocus", "glass", "smoke", "motion")
FIRST_SEED = 5000
KEY = "difference key"


def make_clip(index: int, size: tuple[int, int], frames: int, folder: Path):
    """Write clip ``index`` and its plate; returns (clip path, plate path, true alphas (T,H,W))."""
    family = FAMILIES[index % len(FAMILIES)]
    rng = np.random.default_rng(FIRST_SEED + index)
    colour, alpha = procedural.make_foreground(family, rng, 512, 512)
    background = procedural.make_background(rng, 2 * size[0], 2 * size[1])
    pairs = list(moving_clip(colour, alpha, background, frames, rng, size=size))
    clip, plate = folder / f"clip{index}.mp4", folder / f"plate{index}.png"
    opaque = np.ones(size, np.float32)  # alpha 1: the writer's composite is the frame itself
    with VideoWriter(clip, width=size[1], height=size[0], fps=FPS, background=(0, 0, 0)) as out:
        for image, _ in pairs:
            out.write(image, opaque)
    write_png(plate, fit_background(background, *size))
    return clip, plate, np.stack([truth for _, truth in pairs])


def decode_alpha(path: Path) -> np.ndarray:
    """The alpha plane of every frame of an RGBA video, float32 (T, H, W) in [0, 1]."""
    with av.open(str(path)) as container:
        frames = container.decode(container.streams.video[0])
        planes = [f.to_ndarray(format="rgba64le")[..., 3] for f in frames]
    return np.stack(planes).astype(np.float32) / 65535.0


def scores(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(whole-frame SAD / 1000 averaged over frames, dtSSD)."""
    sad = float(np.abs(predicted - truth).sum(axis=(1, 2)).mean() / 1000)
    return sad, dtssd(predicted, truth)


def run_cli(clip: Path, plate: Path, out: Path, checkpoint: str, truth: np.ndarray) -> np.ndarray:
    """``eval.py clip out.mov --background-plate plate`` (a process of its own, as a user runs
    it); the decoded alpha, checked."""
    args = [str(clip), str(out), "--background-plate", str(plate), "--checkpoint", checkpoint]
    command = [sys.executable, str(ROOT / "eval.py"), *args]
    if subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL).returncode != 0:
        raise SystemExit(f"error: eval.py {' '.join(args)} failed")
    alpha = decode_alpha(out)
    if alpha.shape != truth.shape:
        raise SystemExit(f"error: {out}: {alpha.shape} frames, expected {truth.shape}")
    return alpha


def pipeline_rows(models: dict[str, object], plate: np.ndarray):
    """row name -> (make_step(), smoothing): the models without the blend (the eval.py row has
    it), the key with and without."""
    rows = {}
    for label, matter in models.items():
        variants = [("frame by frame", False)]
        if getattr(matter, "uses_previous_alpha", False):
            variants.append(("previous alpha", True))
        for kind, feed in variants:
            rows[f"{label}: {kind}"] = (
                lambda m=matter, f=feed: vm.PlateMatting(m, plate, feed_previous=f),
                0.0,
            )
    make_key = lambda: vm.PlateMatting(DifferenceKey(), plate)  # noqa: E731
    rows[KEY] = (make_key, 0.0)
    rows[f"{KEY} + blend"] = (make_key, DEFAULT_SMOOTHING)
    return rows


def measure(options) -> dict[str, list[tuple[float, float]]]:
    from model.plate_inference import PlateMatter

    models = {path: PlateMatter.load(path) for path in options.models}
    results: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        for index in range(options.clips):
            clip, plate_path, truth = make_clip(index, options.size, options.frames, work)
            cli = run_cli(clip, plate_path, work / f"out{index}.mov", options.models[0], truth)
            results.setdefault("eval.py --background-plate", []).append(scores(cli, truth))
            with VideoReader(clip) as reader:
                frames = list(reader)
            plate = read_image(plate_path)
            for name, (make, smoothing) in pipeline_rows(models, plate).items():
                alphas = [r.alpha for r in vm.matte_frames(frames, make(), smoothing=smoothing)]
                results.setdefault(name, []).append(scores(np.stack(alphas), truth))
            print(f"clip {index} ({FAMILIES[index % len(FAMILIES)]}) done", file=sys.stderr)
    return results


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    clips = parser.add_argument_group("clips")
    clips.add_argument("--clips", type=int, default=4, help="number of clips (4)")
    clips.add_argument("--frames", type=int, default=24, help="frames per clip (24)")
    clips.add_argument(
        "--size", type=int, nargs=2, default=(360, 640), metavar=("H", "W"), help="(360 640)"
    )
    models = parser.add_argument_group("models")
    models.add_argument(
        "--models",
        nargs="+",
        default=["log/pretrained-plate-video", "log/pretrained-plate"],
        help="plate checkpoints; the first is eval.py's (log/pretrained-plate-video, then the"
        " still log/pretrained-plate)",
    )
    return parser


def main(args: list[str] | None = None) -> int:
    options = build_parser().parse_args(args)
    options.size = tuple(options.size)
    results = measure(options)
    mean = {name: np.mean(values, axis=0) for name, values in results.items()}
    key = {0.0: mean[KEY], DEFAULT_SMOOTHING: mean[f"{KEY} + blend"]}
    height, width = options.size
    print(
        f"\n{options.clips} clips x {options.frames} frames at {width}x{height}, exact plate;"
        f" blend strength {DEFAULT_SMOOTHING} (eval.py's default); lower is better"
    )
    print(f"| {'method':<52} | SAD    | dtSSD | SAD / key | dtSSD / key |")
    print(f"|{'-' * 54}|--------|-------|-----------|-------------|")
    for name, (sad, flicker) in mean.items():
        blended = name.endswith("+ blend") or name.startswith("eval.py")
        reference = key[DEFAULT_SMOOTHING if blended else 0.0]
        print(
            f"| {name:<52} | {sad:6.2f} | {flicker:5.2f} | {sad / reference[0]:9.2f} |"
            f" {flicker / reference[1]:11.2f} |"
        )
    sad, flicker = mean["eval.py --background-plate"]
    reference = key[DEFAULT_SMOOTHING]
    passed = sad <= 0.5 * reference[0] and flicker <= reference[1]
    print(
        f"\nacceptance (eval.py vs the key + blend): SAD ratio {sad / reference[0]:.2f} (<= 0.5),"
        f" dtSSD {flicker:.2f} vs {reference[1]:.2f}: {'PASS' if passed else 'FAIL'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
