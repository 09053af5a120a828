"""Cut out the foreground of photos with a trained matting model, or evaluate the model.

One image: ``eval.py IMG [TRIMAP] OUT`` writes OUT as an RGBA PNG whose alpha is the predicted
matte (the trimap's known regions clamped) and whose colours are the estimated foreground
(pymatting ``estimate_foreground_ml``), so no fringe of the old background remains::

    python3 eval.py photo.jpg trimap.png out.png
    python3 eval.py photo.jpg trimap.png out.png --checkpoint -2 --alpha matte.png
    python3 eval.py photo.jpg trimap.png out.png --background 0,255,0 --mask-threshold 0.5
    python3 eval.py photo.jpg trimap.png out.png --background '#00ff00'
    python3 eval.py photo.jpg trimap.png out.png --background beach.jpg
    python3 eval.py photo.jpg trimap.png out.png --network-pixels 0   # network at full size
    python3 eval.py photo.jpg trimap.png out.png --checkpoint m.onnx  # onnxruntime, no TensorFlow
    python3 eval.py photo.jpg trimap.png out.png --engine tensorflow  # not the run's model.onnx
    python3 eval.py photo.jpg trimap.png out.png --verbose   # name the checkpoint, engine, device

Without a trimap (two file arguments, ``IMG OUT``) the trimap is made automatically from the
U²-Net-p saliency network, as ``generate_trimaps.py`` makes it, and the matting model still
pulls the matte: a true matte, not a mask. ``--save-trimap`` keeps that trimap (to correct it
and run again with it); ``--only-mask`` (rembg's ``-om``) writes the matte as OUT instead of
the cut-out, or with ``--mask-threshold`` the binary mask::

    python3 eval.py photo.jpg out.png
    python3 eval.py photo.jpg out.png --save-trimap photo_trimap.png --trimap-band 0.04
    python3 eval.py photo.jpg matte.png --only-mask

The network runs on the window around the trimap's unknown region, at a working resolution of
at most ``--network-pixels`` (384 x 384 by default); a guided filter guided by the
full-resolution photo brings the matte back to full size.

Extra outputs sit beside OUT: ``--background`` writes ``<OUT stem>_composite.png`` (RGB) and
``--mask-threshold`` writes ``<OUT stem>_mask.png`` (0/255) and ``<OUT stem>_soft_mask.png``
(the matte, 8-bit grey).

Batch mode: give folders. Trimaps are matched to images by file stem; outputs are
``OUT/<stem>.png`` (and ``--alpha`` and ``--save-trimap`` name folders too). With two folders
there are no trimaps and every image gets an automatic one. A bad file is reported and
skipped; the exit status is non-zero at the end if any failed::

    python3 eval.py photos/ trimaps/ cutouts/ --alpha mattes/
    python3 eval.py photos/ cutouts/ --save-trimap trimaps/

Evaluation on any folder with ``image/``, ``trimap/`` and ``alpha/`` (matched by stem): prints
mean SAD, MSE x 10^-3, Grad, Conn and seconds per image for the model and pymatting's
closed-form and KNN matting, and writes a CSV and a figure (input | trimap | closed-form | KNN |
ours | ground truth)::

    python3 eval.py --evaluate scripts/data/test
    python3 eval.py --evaluate scripts/data/test --methods ours,closed-form --limit 10

Video (.mp4 .mov .webm .mkv .avi in; OUT's kind from its name: .mov ProRes 4444 + alpha, .webm
VP9 + alpha, .mp4 H.264 over --background, a folder of RGBA PNGs). Frame rate, frame count and
audio are kept; ``--alpha`` also writes the matte as a video (see README, "Video")::

    python3 eval.py clip.mp4 first_frame_trimap.png out.mov    # trimap carried forward
    python3 eval.py clip.mp4 out.webm                           # automatic trimap per frame
    python3 eval.py clip.mp4 out.mov --background-plate empty.png   # the plate model
    python3 eval.py clip.mp4 out.mov --plate-frames 0:30        # plate = median of frames 0-29
    python3 eval.py clip.mp4 out.mp4 --background beach.mp4 --alpha matte.mov

Background plate (a photo of the empty scene) instead of a trimap: give INPUT OUTPUT and
``--background-plate``; the plate model (newest ``--task plate`` run, else
``log/pretrained-plate``) predicts alpha for the whole photo. A plate of another size is an
error unless ``--align-plate`` resizes it and aligns it with an OpenCV ECC homography. In batch
mode the plate is a folder matched by stem, or one file for every photo. ``--evaluate DATA
--plates`` compares the plate model, a difference key and the trimap model fed the key's trimap
on ``image/``, ``alpha/`` and ``bg/`` with perturbed plates (whole-image metrics)::

    python3 eval.py photo.jpg out.png --background-plate empty.jpg --background beach.jpg
    python3 eval.py photo.jpg out.png --background-plate empty.jpg --align-plate
    python3 eval.py photos/ cutouts/ --background-plate empty.jpg
    python3 eval.py --evaluate scripts/data/test --plates --plate-shift 4

The checkpoint defaults to the newest trained run under ``--log-dir``, else its ``pretrained/``.
A run folder holding ``model.onnx`` exported from that very checkpoint (``log/pretrained``
ships one; see ``model/engine.py``) runs on onnxruntime without importing TensorFlow, which
starts in a third of the time; ``--engine tensorflow`` always runs the checkpoint.
Bad input gives one line ``error: <file>: <problem>`` on stderr and exit status 2; a runtime
failure gives exit status 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from model.auto_trimap import SaliencyWeightsError
from model.checkpoints import CheckpointError
from model.cli import (
    BAD_INPUT,
    RUNTIME_FAILURE,
    ArgumentParser,
    UsageError,
    add_auto_trimap_options,
    add_engine,
    add_network_pixels,
    fraction,
    non_negative_int,
    positive_int,
    unit_interval,
)
from model.cutout import run_batch, run_single
from model.errors import first_line
from model.evaluation import METHODS, EvaluationError
from model.images import ImageError
from model.inference import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_NETWORK_PIXELS,
    DEFAULT_OVERLAP,
    DEFAULT_TILE,
)
from model.plate_evaluation import PLATE_METHODS
from model.safe_paths import OutputError
from model.temporal import DEFAULT_MOTION, DEFAULT_SMOOTHING
from model.tf_startup import install as quiet_tensorflow
from model.video import is_video_path
from model.video_cutout import run_video


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="eval.py",
        description="Cut out foregrounds with the matting model, or evaluate it.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    files = parser.add_argument_group(
        "files: IMG [TRIMAP] OUT, a file each or folders for batch mode; without TRIMAP the"
        " trimap is automatic"
    )
    files.add_argument("input", nargs="?", type=Path, help="photo (or a folder of photos)")
    files.add_argument(
        "trimap", nargs="?", type=Path, help="trimap 0/128/255 (or a folder); optional"
    )
    files.add_argument("output", nargs="?", type=Path, help="RGBA PNG to write (or a folder)")

    model = parser.add_argument_group("model")
    model.add_argument(
        "--checkpoint",
        default="-1",
        help="-1 newest, -2 the one before, N the step, a path, or an exported .onnx file"
        " (run by onnxruntime; default: -1)",
    )
    model.add_argument(
        "--log-dir", type=Path, default=Path("log"), help="runs folder (default: log)"
    )
    add_engine(model)
    add_network_pixels(model, DEFAULT_NETWORK_PIXELS)
    model.add_argument(
        "--max-pixels",
        type=positive_int,
        default=DEFAULT_MAX_PIXELS,
        help="at full resolution, run in one pass up to this many pixels, tile above"
        " (default: %(default)s)",
    )
    model.add_argument(
        "--tile",
        type=positive_int,
        default=DEFAULT_TILE,
        help="tile side in pixels (default: %(default)s)",
    )
    model.add_argument(
        "--overlap",
        type=non_negative_int,
        default=DEFAULT_OVERLAP,
        help="pixels shared by neighbouring tiles (default: %(default)s)",
    )

    model.add_argument(
        "--verbose",
        action="store_true",
        help="say on stderr which checkpoint runs with which engine on which device (CPU or GPU)",
    )

    outputs = parser.add_argument_group("extra outputs")
    outputs.add_argument(
        "--alpha", type=Path, help="also write the matte (16-bit grey PNG; for a clip, a video)"
    )
    outputs.add_argument(
        "--background",
        metavar="COLOUR|IMAGE|VIDEO",
        help="also composite onto a colour (0,255,0 or #00ff00) or an image: OUT_composite.png;"
        " for a clip, what an .mp4 OUT is composited over (a video too)",
    )
    outputs.add_argument(
        "--mask-threshold",
        type=unit_interval,
        metavar="T",
        help="also write alpha >= T as OUT_mask.png and the matte as OUT_soft_mask.png",
    )
    outputs.add_argument(
        "--only-mask",
        "-om",
        action="store_true",
        help="write the matte (8-bit grey) as OUT instead of the cut-out; with --mask-threshold"
        " the binary mask",
    )
    outputs.add_argument(
        "--save-trimap",
        type=Path,
        metavar="PATH",
        help="also write the trimap used (the automatic one without TRIMAP; a folder in batch"
        " mode)",
    )

    add_auto_trimap_options(
        parser.add_argument_group("automatic trimap (without TRIMAP; see generate_trimaps.py)"),
        prefix="trimap-",
    )

    video = parser.add_argument_group("video (INPUT is a clip)")
    video.add_argument(
        "--plate-frames",
        metavar="A:B",
        help="the plate is the median of the clip's frames A to B-1, which show the empty scene",
    )
    video.add_argument(
        "--smoothing",
        type=fraction,
        default=DEFAULT_SMOOTHING,
        metavar="S",
        help="blend alpha with the previous frame's where the picture is still, 0 = off"
        " (default: %(default)s)",
    )
    video.add_argument(
        "--motion",
        type=fraction,
        default=DEFAULT_MOTION,
        metavar="F",
        help="with a first-frame trimap: how far the subject may move per frame, as a fraction"
        " of the shorter side (default: %(default)s)",
    )

    plates = parser.add_argument_group("background plate (instead of a trimap)")
    plates.add_argument(
        "--background-plate",
        type=Path,
        metavar="PLATE",
        help="photo of the empty scene (a folder matched by stem for a folder of photos; one"
        " photo for a clip); give INPUT OUTPUT only",
    )
    plates.add_argument(
        "--align-plate",
        action="store_true",
        help="resize the plate to the photo and align it (OpenCV ECC, homography model)",
    )
    plates.add_argument(
        "--plates",
        action="store_true",
        help="with --evaluate: plate methods on image/, alpha/, bg/ with perturbed plates",
    )
    plates.add_argument(
        "--plate-shift", type=float, default=2.0, help="--plates: px to the right (%(default)s)"
    )
    plates.add_argument(
        "--plate-gain", type=float, default=1.06, help="--plates: exposure (%(default)s)"
    )
    plates.add_argument(
        "--plate-noise", type=float, default=0.01, help="--plates: noise sigma (%(default)s)"
    )

    evaluation = parser.add_argument_group("evaluation")
    evaluation.add_argument(
        "--evaluate", type=Path, metavar="DATA", help="folder with image/, trimap/, alpha/"
    )
    evaluation.add_argument(
        "--methods",
        help=f"comma-separated subset of {','.join(METHODS)}"
        f" (with --plates: {','.join(PLATE_METHODS)}); default all",
    )
    evaluation.add_argument(
        "--limit", type=positive_int, metavar="N", help="only the first N samples"
    )
    evaluation.add_argument(
        "--csv", type=Path, help="summary CSV (default: <run>/evaluation/ or ./evaluation/)"
    )
    evaluation.add_argument("--figure", type=Path, help="figure PNG (default: beside the CSV)")
    evaluation.add_argument(
        "--figure-samples",
        type=non_negative_int,
        default=4,
        metavar="N",
        help="rows in the figure (default: 4)",
    )
    return parser


def _plate_positionals(options: argparse.Namespace) -> None:
    """With --background-plate the positionals are INPUT OUTPUT: move OUTPUT into place and
    keep the plate where the trimap would be."""
    if options.output is not None:
        raise UsageError("--background-plate: give INPUT OUTPUT (the plate replaces the trimap)")
    options.output, options.trimap = options.trimap, options.background_plate


def main(args: list[str] | None = None) -> int:
    parser = build_parser()
    options = parser.parse_args(args)
    # Before anything imports TensorFlow (lazily, with the model): its notices stay off stderr.
    quiet_tensorflow()
    try:
        if options.plates and options.evaluate is None:
            raise UsageError("--plates: only with --evaluate DATA")
        if options.evaluate is not None:
            # Only here: the metrics need scipy, which a plain cut-out never pays for.
            from model.evaluation_runs import run_evaluate

            return run_evaluate(options)
        if options.input is not None and is_video_path(options.input):
            return run_video(options)
        if options.background_plate is not None:
            _plate_positionals(options)
        if options.output is None and options.trimap is not None:  # IMG OUT: no trimap
            options.output, options.trimap = options.trimap, None
        if options.input is None or options.output is None:
            raise UsageError("arguments: give IMG [TRIMAP] OUT, or --evaluate DATA")
        if options.input.is_dir():
            return run_batch(options)
        return run_single(options)
    except (
        ImageError,
        CheckpointError,
        EvaluationError,
        OutputError,
        UsageError,
        SaliencyWeightsError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # the contract is one line on stderr, never a traceback
        print(f"error: {type(error).__name__}: {first_line(error)}", file=sys.stderr)
        return RUNTIME_FAILURE


if __name__ == "__main__":
    sys.exit(main())
