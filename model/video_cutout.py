"""eval.py's video mode: ``eval.py CLIP [TRIMAP] OUT`` through ``model/video_matting.py``."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from model.cli import UsageError, first_interrupt_only
from model.cutout import load_matter
from model.images import read_image, read_trimap
from model.safe_paths import check_not_inputs, check_writable
from model.video import VideoReader, output_kind


def run_video(args: argparse.Namespace) -> int:
    """``eval.py CLIP [TRIMAP] OUT``: matte a clip frame by frame (model/video_matting.py)."""
    from model import video_matting as vm

    if args.output is None:  # CLIP OUT: the second name is the output
        args.trimap, args.output = None, args.trimap
    if args.output is None:
        raise UsageError("arguments: give CLIP OUT, or CLIP TRIMAP OUT")
    if args.mask_threshold is not None:
        raise UsageError("--mask-threshold: applies to photos, not to a clip")
    modes = [args.trimap, args.background_plate, args.plate_frames]
    if sum(mode is not None for mode in modes) > 1:
        raise UsageError("arguments: give one of TRIMAP, --background-plate or --plate-frames")
    for path in (args.output, args.alpha):
        if path is not None:
            output_kind(path)
    inputs = [
        ("the input clip", args.input),
        ("the trimap", args.trimap),
        ("the --background-plate image", args.background_plate),
    ]
    if args.background is not None and Path(args.background).is_file():
        inputs.append(("the --background file", Path(args.background)))
    check_not_inputs([("the output", args.output), ("--alpha", args.alpha)], inputs)
    for path in (args.output, args.alpha):
        if path is not None:
            check_writable(path, folder=output_kind(path) == "png")
    if (output_kind(args.output) == "mp4") != (args.background is not None):
        raise UsageError(
            "--background: give one for an .mp4 OUT (it has no alpha channel), and only then"
        )
    with contextlib.ExitStack() as stack:
        # Everything that can be refused is, before the model loads and before OUT exists.
        clip = stack.enter_context(VideoReader(args.input))
        width, height = clip.info.width, clip.info.height
        background = None
        if args.background is not None:
            background = vm.load_background(args.background, width, height)
            if isinstance(background, VideoReader):
                stack.enter_context(background)
        plate = trimap = None
        if args.background_plate is not None:
            plate = read_image(args.background_plate)
            vm.check_plate(plate, clip, args.background_plate)
        elif args.plate_frames is not None:
            try:
                start, stop = vm.parse_frame_range(args.plate_frames)
            except ValueError as error:
                raise UsageError(f"--plate-frames: {error}") from None
            plate = vm.median_plate(args.input, start, stop)
        elif args.trimap is not None:
            trimap = read_trimap(args.trimap, shape=(height, width))
        step = None
        if plate is not None:
            step = vm.plate_step(plate, load_matter(args, plate=True, video=True))
        if step is None:
            matter = load_matter(args)
            if trimap is not None:
                step = vm.TrimapPropagation(matter, trimap, motion=args.motion)
            else:
                from model.auto_trimap import load_saliency_model

                step = vm.AutoTrimaps(matter, load_saliency_model())
        writer = stack.enter_context(
            vm.open_writer(clip, args.output, alpha_path=args.alpha, background=background)
        )
        with first_interrupt_only():
            frames = vm.matte_stream(clip, writer, step, smoothing=args.smoothing)
    print(f"wrote {frames} frames ({step.name}) to {args.output}", file=sys.stderr)
    return 0
