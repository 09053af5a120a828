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
    python3 eval.py photo.jpg trimap.png out.png --verbose   # name the checkpoint and device

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
    python3 eval.py clip.mp4 out.mov --background-plate empty.png   # difference key (baseline)
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
Bad input gives one line ``error: <file>: <problem>`` on stderr and exit status 2; a runtime
failure gives exit status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.auto_trimap import AutoTrimapper, SaliencyWeightsError, is_trimap_name
from model.checkpoints import PRETRAINED, CheckpointError
from model.cli import (
    ArgumentParser,
    add_auto_trimap_options,
    add_network_pixels,
    auto_trimap_settings,
    first_interrupt_only,
    fraction,
    non_negative_int,
    positive_int,
    unit_interval,
)
from model.errors import first_line
from model.evaluation import IMAGE_SUFFIXES, METHODS, EvaluationError, images_by_stem
from model.images import ImageError, check_trimap_header, read_image, read_trimap, write_bytes
from model.inference import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_NETWORK_PIXELS,
    DEFAULT_OVERLAP,
    DEFAULT_TILE,
)
from model.outputs import encode_outputs, parse_background
from model.plate_evaluation import PLATE_METHODS
from model.plate_inference import read_plate
from model.safe_paths import (
    OutputError,
    check_folder,
    check_not_inputs,
    check_writable,
    files_in,
)
from model.temporal import DEFAULT_MOTION, DEFAULT_SMOOTHING
from model.tf_startup import install as quiet_tensorflow
from model.video import VideoReader, is_video_path, output_kind

BAD_INPUT = 2
RUNTIME_FAILURE = 1
TRIMAP_VALUE = 128
"""The unknown grey of a trimap on disk."""


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
        help="say on stderr which checkpoint runs on which device (CPU or GPU)",
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


class UsageError(ValueError):
    """Arguments that do not fit together; ``str(error)`` is ``"<argument>: <problem>"``."""


@dataclass(frozen=True)
class Job:
    """One image to cut out and the files to write for it."""

    image: Path
    trimap: Path | None
    output: Path
    alpha: Path | None
    saved_trimap: Path | None = None
    plate: bool = False
    align: bool = False


def extra_paths(output: Path) -> dict[str, Path]:
    """Where ``--background`` and ``--mask-threshold`` write, beside ``output``."""
    return {
        kind: output.with_name(f"{output.stem}_{kind}.png")
        for kind in ("composite", "mask", "soft_mask")
    }


def _refuse_trimap_as_output(path: Path) -> None:
    """With two file arguments the second is OUT; refuse it when it is a trimap, which is what
    ``eval.py IMG TRIMAP`` (OUT forgotten) would otherwise overwrite with the cut-out."""
    if is_trimap_name(path) and path.exists():
        raise UsageError(f"{path}: is a trimap, not overwritten; give IMG TRIMAP OUT")
    if path.is_file():
        from PIL import Image

        try:
            with Image.open(path) as image:
                values = set(np.unique(np.asarray(image))) if image.mode == "L" else set()
        except OSError:  # not an image: an earlier output or not ours to judge; OUT may replace it
            return
        if TRIMAP_VALUE in values and values <= {0, TRIMAP_VALUE, 255}:
            raise UsageError(f"{path}: looks like a trimap, not overwritten; give IMG TRIMAP OUT")


def _is_png_name(path: Path) -> bool:
    return path.suffix.lower() == ".png"


def _load_matter(args: argparse.Namespace, *, plate: bool = False):
    from model.inference import Matter
    from model.plate_inference import PlateMatter

    matter = (PlateMatter if plate else Matter).load(
        args.checkpoint,
        args.log_dir,
        network_pixels=args.network_pixels,
        max_pixels=args.max_pixels,
        tile=args.tile,
        overlap=args.overlap,
    )
    if args.verbose:
        ref = matter.ref
        print(f"model: {ref.path} (step {ref.step}) on {matter.device}", file=sys.stderr)
    return matter


def job_outputs(job: Job, options: Outputs) -> dict[str, Path]:
    """The files one job writes, by output kind ("rgba", "alpha", "composite", "mask", ...)."""
    if options.only_mask:
        paths = {"mask" if options.threshold is not None else "soft_mask": job.output}
    else:
        extras = extra_paths(job.output)
        paths = {"rgba": job.output}
        if options.background is not None:
            paths["composite"] = extras["composite"]
        if options.threshold is not None:
            paths.update(mask=extras["mask"], soft_mask=extras["soft_mask"])
    if job.alpha is not None:
        paths["alpha"] = job.alpha
    if job.saved_trimap is not None:
        paths["trimap"] = job.saved_trimap
    return paths


OUTPUT_LABELS = {
    "rgba": "the output",
    "alpha": "--alpha",
    "composite": "--background's composite",
    "mask": "the mask",
    "soft_mask": "the soft mask",
    "trimap": "--save-trimap",
}


def check_outputs(args: argparse.Namespace, jobs: list[Job], options: Outputs) -> None:
    """Before any work: refuse outputs that are inputs, collide, or cannot be written.

    In batch mode an output folder must not be an input folder, and no output file may be a
    file of the input folders (a hard or symbolic link to one included).

    Raises
    ------
    OutputError
    """
    inputs: list[tuple[str, Path | None]] = []
    if args.background is not None and Path(args.background).is_file():
        inputs.append(("the --background image", Path(args.background)))
    if args.input.is_dir():
        folders = [("the input folder", args.input)]
        if args.trimap is not None and args.trimap.is_dir():
            folders.append(("the trimap folder", args.trimap))
        elif args.trimap is not None:  # one plate for every photo
            inputs.append(("the plate", args.trimap))
        targets = (
            ("the output folder", args.output),
            ("--alpha", args.alpha),
            ("--save-trimap", args.save_trimap),
        )
        for label, folder in targets:
            if folder is not None:
                check_folder(folder, label, folders)
                check_writable(folder, folder=True)
        found = files_in([folder for _, folder in folders], IMAGE_SUFFIXES)
        inputs += [("an input", path) for path in found]
    else:
        guide = "the plate" if args.background_plate is not None else "the trimap"
        inputs += [("the input image", args.input), (guide, args.trimap)]
    outputs = [
        (OUTPUT_LABELS[kind], path)
        for job in jobs
        for kind, path in job_outputs(job, options).items()
    ]
    check_not_inputs(outputs, inputs)
    if not args.input.is_dir():
        for _, path in outputs:
            check_writable(path)


def _encode_outputs(job: Job, alpha, foreground, trimap, options: Outputs) -> dict[Path, bytes]:
    """Every file of one job, encoded in memory, so a failure writes none of them."""
    paths = job_outputs(job, options)
    encoded = encode_outputs(
        paths,
        alpha,
        foreground=foreground,
        trimap=trimap,
        background=options.background,
        mask_threshold=options.threshold,
    )
    return {paths[name]: data for name, data in encoded.items()}


def _write_all(files: dict[Path, bytes]) -> None:
    """Write each file atomically; if one fails, remove those this call already wrote."""
    written = []
    try:
        for path, data in files.items():
            write_bytes(path, data)
            written.append(path)
    except OSError as error:
        for path in written:
            path.unlink(missing_ok=True)
        raise ImageError(path, f"cannot write ({error.strerror or error})") from None


@dataclass(frozen=True)
class Outputs:
    """What to make of each matte: ``--background``, ``--mask-threshold``, ``--only-mask``,
    and the automatic trimaps for jobs without a trimap (None: such a job is an error)."""

    background: object = None
    threshold: float | None = None
    only_mask: bool = False
    trimapper: AutoTrimapper | None = None


def process(job: Job, matter, options: Outputs, *, image=None, trimap=None):
    """Read (unless given), cut out and write one job; raises ImageError for a bad file."""
    if image is None:
        if job.trimap is not None and not job.plate:
            check_trimap_header(job.image, job.trimap)
        image = read_image(job.image)
    if trimap is None:
        if job.trimap is not None and job.plate:
            trimap = read_plate(job.trimap, image, job.image, align=job.align)
        elif job.trimap is not None:
            trimap = read_trimap(job.trimap, shape=image.shape[:2])
        elif options.trimapper is not None:
            trimap = options.trimapper(image)
        else:
            guide = "plate" if job.plate else "trimap"
            raise ImageError(job.image, f"no {guide} with the same file stem")
    if options.only_mask:  # no colours to estimate
        alpha, foreground = matter.predict_alpha(image, trimap), None
    else:
        matte = matter.extract(image, trimap)
        alpha, foreground = matte.alpha, matte.foreground
    _write_all(_encode_outputs(job, alpha, foreground, trimap, options))


def _check_common(args: argparse.Namespace) -> Outputs:
    """Validate options shared by single and batch mode; returns what to make of each matte."""
    if args.overlap > args.tile // 2:
        raise UsageError(f"--overlap: {args.overlap} is more than half of --tile {args.tile}")
    if args.only_mask and args.background is not None:
        raise UsageError("--only-mask: writes no colours, so --background has nothing to show")
    try:
        settings = auto_trimap_settings(args, prefix="trimap-")
    except ValueError as error:
        raise UsageError(str(error)) from None
    # Made only for a run without trimaps; it loads the network at its first image.
    trimapper = AutoTrimapper(args.saliency_weights, **settings) if args.trimap is None else None
    return Outputs(
        parse_background(args.background) if args.background is not None else None,
        args.mask_threshold,
        args.only_mask,
        trimapper,
    )


def run_single(args: argparse.Namespace) -> int:
    for path in (args.output, args.alpha, args.save_trimap):
        if path is not None and not _is_png_name(path):
            raise UsageError(f"{path}: outputs are PNG files; give the name a .png extension")
    options = _check_common(args)
    if args.trimap is None:
        _refuse_trimap_as_output(args.output)
    plate = args.background_plate is not None
    job = Job(
        args.input, args.trimap, args.output, args.alpha, args.save_trimap, plate, args.align_plate
    )
    check_outputs(args, [job], options)
    # Read before loading the model: a bad file is reported in a second, not after TensorFlow;
    # the headers first, so a trimap of the wrong size is refused before a huge image is decoded.
    if args.trimap is not None and not plate:
        check_trimap_header(args.input, args.trimap)
    image = read_image(args.input)
    if plate:
        trimap = read_plate(args.trimap, image, args.input, align=args.align_plate)
    elif args.trimap is not None:
        trimap = read_trimap(args.trimap, shape=image.shape[:2])
    else:
        trimap = options.trimapper(image)
    matter = _load_matter(args, plate=plate)
    process(job, matter, options, image=image, trimap=trimap)
    return 0


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
        step = vm.plate_step(plate, _load_matter(args, plate=True)) if plate is not None else None
        if step is None:
            matter = _load_matter(args)
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


def batch_jobs(args: argparse.Namespace) -> list[Job]:
    """One Job per image in the input folder, its trimap (or plate) matched by stem (None if
    missing or if there is no trimap folder)."""
    plate = args.background_plate is not None
    if args.trimap is not None and not args.trimap.is_dir() and not plate:
        raise UsageError(f"{args.trimap}: the input is a folder, so the trimap must be one too")
    for folder in (args.output, args.alpha, args.save_trimap):
        if folder is not None and folder.exists() and not folder.is_dir():
            raise UsageError(f"{folder}: batch mode writes into a folder, but this is a file")
    images = images_by_stem(args.input)
    if not images:
        raise UsageError(f"{args.input}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    # One plate file serves every photo (a fixed camera); a folder is matched by stem.
    trimaps = None
    if args.trimap is not None and args.trimap.is_dir():
        trimaps = images_by_stem(args.trimap)

    def inside(folder: Path | None, stem: str) -> Path | None:
        return folder / f"{stem}.png" if folder is not None else None

    jobs = [
        Job(
            path,
            trimaps.get(stem) if trimaps is not None else args.trimap,
            args.output / f"{stem}.png",
            inside(args.alpha, stem),
            inside(args.save_trimap, stem),
            plate,
            args.align_plate,
        )
        for stem, path in images.items()
    ]
    if args.trimap is None:  # ``eval.py photos/ trimaps/`` must not write over the trimaps
        for job in jobs:
            _refuse_trimap_as_output(job.output)
    return jobs


def run_batch(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    options = _check_common(args)
    jobs = batch_jobs(args)
    check_outputs(args, jobs, options)
    matter = _load_matter(args, plate=args.background_plate is not None)
    failures = {}
    for job in tqdm(jobs, desc=f"cut out on {matter.device}", unit="image", file=sys.stderr):
        try:
            process(job, matter, options)
        except ImageError as error:
            failures[job.image] = BAD_INPUT
            tqdm.write(f"error: {error}", file=sys.stderr)
        except Exception as error:  # one failing image must not stop the rest of the batch
            failures[job.image] = RUNTIME_FAILURE
            tqdm.write(f"error: {job.image}: {first_line(error)}", file=sys.stderr)
    print(f"wrote {len(jobs) - len(failures)} of {len(jobs)} to {args.output}", file=sys.stderr)
    if failures:
        print(f"error: {len(failures)} of {len(jobs)} images failed", file=sys.stderr)
        return min(failures.values())
    return 0


def _default_outputs(args: argparse.Namespace, matter) -> tuple[Path, Path]:
    """CSV and figure paths: ``<run>/evaluation/`` for a trained run, else ``./evaluation/``."""
    label = args.evaluate.resolve().name
    folder = Path("evaluation")
    if matter is not None:
        label += f"-step{matter.ref.step}"
        if matter.ref.run_dir.name != PRETRAINED:
            folder = matter.ref.run_dir / "evaluation"
    csv_path = args.csv or folder / f"{label}.csv"
    figure = args.figure or csv_path.with_suffix(".png")
    return csv_path, figure


def run_evaluate(args: argparse.Namespace) -> int:
    from model import evaluation
    from model.images import write_png

    if any(path is not None for path in (args.input, args.trimap, args.output)):
        raise UsageError("--evaluate: takes a dataset folder; give no input/trimap/output files")
    choices = PLATE_METHODS if args.plates else METHODS
    methods = [name.strip() for name in (args.methods or ",".join(choices)).split(",")]
    methods = [name for name in methods if name]
    unknown = [name for name in methods if name not in choices]
    if unknown or not methods:
        raise UsageError(f"--methods: {args.methods!r}; choose from {', '.join(choices)}")
    if args.plates:
        return run_plate_evaluate(args, methods)
    samples = evaluation.find_samples(args.evaluate, args.limit)
    skipped = evaluation.unmatched(args.evaluate)
    if skipped:
        print(
            f"warning: {len(skipped)} images without a trimap or alpha are skipped:"
            f" {', '.join(skipped[:5])}{' ...' if len(skipped) > 5 else ''}",
            file=sys.stderr,
        )
    matter = _load_matter(args) if "ours" in methods else None
    report = evaluation.evaluate(
        samples,
        methods,
        matter,
        figure_samples=args.figure_samples,
        on_error=lambda message: print(f"error: {message}", file=sys.stderr),
    )
    rows = evaluation.summarise(report.results)
    print(evaluation.format_table(rows))
    common = evaluation.solved_by_all(report.results)
    if any(row["failed"] for row in rows):
        pairs = len({result.sample for result in report.results})
        print(f"\non the {len(common)} of {pairs} pairs that every method solved:")
        print(evaluation.format_table(evaluation.summarise(report.results, common)))
    csv_path, figure_path = _default_outputs(args, matter)
    samples_csv = csv_path.with_name(f"{csv_path.stem}_samples.csv")
    evaluation.write_summary_csv(csv_path, rows)
    evaluation.write_samples_csv(samples_csv, report.results)
    if report.panels:
        write_png(figure_path, evaluation.make_figure(report.panels, methods))
    print(f"wrote {csv_path}, {samples_csv} and {figure_path}", file=sys.stderr)
    return BAD_INPUT if report.unreadable else 0


def run_plate_evaluate(args: argparse.Namespace, methods: list[str]) -> int:
    from model import evaluation
    from model.plate import PlatePerturbation
    from model.plate_evaluation import evaluate_plates, find_plate_samples

    samples = find_plate_samples(args.evaluate, args.limit)
    perturbation = PlatePerturbation(
        shift=(args.plate_shift, 0.0), gain=args.plate_gain, noise=args.plate_noise
    )
    plate_matter = _load_matter(args, plate=True) if "plate" in methods else None
    trimap_matter = None
    if "key-trimap" in methods:
        # The trimap model is the default one (newest trimap run, else log/pretrained).
        from model.inference import Matter

        trimap_matter = Matter.load("-1", args.log_dir, network_pixels=args.network_pixels)
    report = evaluate_plates(
        samples,
        methods,
        plate_matter=plate_matter,
        trimap_matter=trimap_matter,
        perturbation=perturbation,
        on_error=lambda message: print(f"error: {message}", file=sys.stderr),
    )
    rows = evaluation.summarise(report.results)
    print(f"plate: {perturbation}")
    print(evaluation.format_table(rows))
    label = f"{args.evaluate.resolve().name}-plates-shift{args.plate_shift:g}"
    csv_path = args.csv or Path("evaluation") / f"{label}.csv"
    evaluation.write_summary_csv(csv_path, rows)
    samples_csv = csv_path.with_name(f"{csv_path.stem}_samples.csv")
    evaluation.write_samples_csv(samples_csv, report.results)
    print(f"wrote {csv_path} and {samples_csv}", file=sys.stderr)
    return BAD_INPUT if report.unreadable else 0


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
