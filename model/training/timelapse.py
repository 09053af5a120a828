"""A run's timelapse GIF and validation history, made from its sample strips on request."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, ImageDraw

from model.images import atomic_path
from model.manifest import read_records
from model.training.settings import RunError


def make_timelapse(run_dir: str | os.PathLike, *, frame_ms: int = 250, hold_ms: int = 2000) -> Path:
    """Assemble ``run_dir/samples/step_*.png`` into ``run_dir/timelapse.gif``.

    Frames are in step order, each labelled with its step; the last one is held ``hold_ms``.

    Raises
    ------
    RunError
        No sample strips in the run.
    """
    run_dir = Path(run_dir)
    paths = sorted((run_dir / "samples").glob("step_*.png"))
    if not paths:
        raise RunError(f"{run_dir / 'samples'}: no step_*.png sample strips to assemble")
    frames = []
    for path in paths:
        with Image.open(path) as image:
            strip = image.convert("RGB")
        label_height = 16
        frame = Image.new("RGB", (strip.width, strip.height + label_height))
        frame.paste(strip, (0, label_height))
        step = int(path.stem.split("_")[1])
        ImageDraw.Draw(frame).text((4, 2), f"step {step}", fill=(255, 255, 255))
        frames.append(frame)
    width = max(frame.width for frame in frames)
    height = max(frame.height for frame in frames)
    frames = [_pad_frame(frame, width, height) for frame in frames]
    durations = [frame_ms] * (len(frames) - 1) + [hold_ms]
    target = run_dir / "timelapse.gif"
    with atomic_path(target) as temp:
        frames[0].save(
            temp,
            format="GIF",
            save_all=True,
            append_images=frames[1:],
            duration=durations,
            loop=0,
        )
    return target


def _pad_frame(frame: Image.Image, width: int, height: int) -> Image.Image:
    if frame.size == (width, height):
        return frame
    padded = Image.new("RGB", (width, height))
    padded.paste(frame, (0, 0))
    return padded


def read_validation_history(run_dir: str | os.PathLike) -> list[dict]:
    """The records of ``run_dir/validation.jsonl`` in order (empty if there are none)."""
    path = Path(run_dir) / "validation.jsonl"
    return read_records(path) if path.exists() else []
