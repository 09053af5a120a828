"""eval.py's photo modes: cut out one image (``run_single``) or a folder (``run_batch``).

Each mode takes eval.py's parsed arguments. Every output is checked before any work (not an
input, no collisions, writable), a job's files are encoded in memory and written atomically
together, and a bad file in a batch is reported and skipped.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.auto_trimap import AutoTrimapper, is_trimap_name
from model.cli import BAD_INPUT, RUNTIME_FAILURE, UsageError, auto_trimap_settings
from model.errors import first_line
from model.evaluation import IMAGE_SUFFIXES, images_by_stem
from model.images import ImageError, check_trimap_header, read_image, read_trimap, write_bytes
from model.outputs import encode_outputs, parse_background
from model.plate_inference import read_plate
from model.safe_paths import check_folder, check_not_inputs, check_writable, files_in
from model.trimap_inference import NetworkTrimapper, make_trimapper

TRIMAP_VALUE = 128
"""The unknown grey of a trimap on disk."""


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


def refuse_trimap_as_output(path: Path) -> None:
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


def load_matter(args: argparse.Namespace, *, plate: bool = False, video: bool = False):
    """The Matter (PlateMatter with ``plate``) of ``--checkpoint`` on ``--engine``; ``video``
    prefers the shipped plate model with the previous-alpha input (``PlateMatter.load``)."""
    from model.engine import describe
    from model.inference import Matter
    from model.plate_inference import PlateMatter

    extra = {"video": video} if plate else {}
    matter = (PlateMatter if plate else Matter).load(
        args.checkpoint,
        args.log_dir,
        engine=args.engine,
        **extra,
        network_pixels=args.network_pixels,
        max_pixels=args.max_pixels,
        tile=args.tile,
        overlap=args.overlap,
    )
    if args.verbose:
        print(f"model: {describe(matter)}", file=sys.stderr)
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
    trimapper: AutoTrimapper | NetworkTrimapper | None = None


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


def check_common(args: argparse.Namespace) -> Outputs:
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
    trimapper = None
    if args.trimap is None:
        trimapper = make_trimapper(
            args.trimap_model,
            saliency_weights=args.saliency_weights,
            settings=settings,
            log_dir=args.log_dir,
        )
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
    options = check_common(args)
    if args.trimap is None:
        refuse_trimap_as_output(args.output)
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
    matter = load_matter(args, plate=plate)
    process(job, matter, options, image=image, trimap=trimap)
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
            refuse_trimap_as_output(job.output)
    return jobs


def run_batch(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    options = check_common(args)
    jobs = batch_jobs(args)
    check_outputs(args, jobs, options)
    matter = load_matter(args, plate=args.background_plate is not None)
    failures = {}
    progress = f"cut out, {matter.engine} on {matter.device}"
    for job in tqdm(jobs, desc=progress, unit="image", file=sys.stderr):
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
