"""Cut out the foreground of photos with a trained matting model, or evaluate the model.

One image: writes OUT as an RGBA PNG whose alpha is the predicted matte (the trimap's known
regions clamped) and whose colours are the estimated foreground (pymatting
``estimate_foreground_ml``), so no fringe of the old background remains::

    python3 eval.py photo.jpg trimap.png out.png
    python3 eval.py photo.jpg trimap.png out.png --checkpoint -2 --alpha matte.png
    python3 eval.py photo.jpg trimap.png out.png --background 0,255,0 --mask-threshold 0.5
    python3 eval.py photo.jpg trimap.png out.png --background '#00ff00'
    python3 eval.py photo.jpg trimap.png out.png --background beach.jpg
    python3 eval.py photo.jpg trimap.png out.png --network-pixels 0   # network at full size

The network runs on the window around the trimap's unknown region, at a working resolution of
at most ``--network-pixels`` (384 x 384 by default); a guided filter guided by the
full-resolution photo brings the matte back to full size.

Extra outputs sit beside OUT: ``--background`` writes ``<OUT stem>_composite.png`` (RGB) and
``--mask-threshold`` writes ``<OUT stem>_mask.png`` (0/255) and ``<OUT stem>_soft_mask.png``
(the matte, 8-bit grey).

Batch mode: give folders. Trimaps are matched to images by file stem; outputs are
``OUT/<stem>.png`` (and ``--alpha`` names a folder too). A bad file is reported and skipped;
the exit status is non-zero at the end if any failed::

    python3 eval.py photos/ trimaps/ cutouts/ --alpha mattes/

Evaluation on any folder with ``image/``, ``trimap/`` and ``alpha/`` (matched by stem): prints
mean SAD, MSE x 10^-3, Grad, Conn and seconds per image for the model and pymatting's
closed-form and KNN matting, and writes a CSV and a figure (input | trimap | closed-form | KNN |
ours | ground truth)::

    python3 eval.py --evaluate scripts/data/test
    python3 eval.py --evaluate scripts/data/test --methods ours,closed-form --limit 10

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
import os
import sys
from dataclasses import dataclass
from pathlib import Path

# Before TensorFlow is imported (lazily, by model.inference): keep its start-up chatter quiet.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from model.checkpoints import PRETRAINED, CheckpointError
from model.cli import ArgumentParser, add_network_pixels, non_negative_int, positive_int
from model.errors import first_line
from model.evaluation import IMAGE_SUFFIXES, METHODS, EvaluationError, images_by_stem
from model.images import ImageError, read_image, read_trimap, write_bytes
from model.inference import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_NETWORK_PIXELS,
    DEFAULT_OVERLAP,
    DEFAULT_TILE,
)
from model.outputs import encode_outputs, parse_background
from model.plate_evaluation import PLATE_METHODS
from model.plate_inference import read_plate

BAD_INPUT = 2
RUNTIME_FAILURE = 1


def unit_interval(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="eval.py",
        description="Cut out foregrounds with the matting model, or evaluate it.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    files = parser.add_argument_group("files (a file each, or three folders for batch mode)")
    files.add_argument("input", nargs="?", type=Path, help="photo (or a folder of photos)")
    files.add_argument("trimap", nargs="?", type=Path, help="trimap 0/128/255 (or a folder)")
    files.add_argument("output", nargs="?", type=Path, help="RGBA PNG to write (or a folder)")

    model = parser.add_argument_group("model")
    model.add_argument(
        "--checkpoint",
        default="-1",
        help="-1 newest, -2 the one before, N the step, or a path (default: -1)",
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

    outputs = parser.add_argument_group("extra outputs")
    outputs.add_argument("--alpha", type=Path, help="also write the matte (16-bit grey PNG)")
    outputs.add_argument(
        "--background",
        metavar="COLOUR|IMAGE",
        help="also composite onto a colour (0,255,0 or #00ff00) or an image: OUT_composite.png",
    )
    outputs.add_argument(
        "--mask-threshold",
        type=unit_interval,
        metavar="T",
        help="also write alpha >= T as OUT_mask.png and the matte as OUT_soft_mask.png",
    )

    plates = parser.add_argument_group("background plate (instead of a trimap)")
    plates.add_argument(
        "--background-plate",
        type=Path,
        metavar="PLATE",
        help="photo of the empty scene (or a folder matched by stem); give INPUT OUTPUT only",
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
    plate: bool = False
    align: bool = False


def extra_paths(output: Path) -> dict[str, Path]:
    """Where ``--background`` and ``--mask-threshold`` write, beside ``output``."""
    return {
        kind: output.with_name(f"{output.stem}_{kind}.png")
        for kind in ("composite", "mask", "soft_mask")
    }


def _is_png_name(path: Path) -> bool:
    return path.suffix.lower() == ".png"


def _load_matter(args: argparse.Namespace, *, plate: bool = False):
    from model.inference import Matter
    from model.plate_inference import PlateMatter

    return (PlateMatter if plate else Matter).load(
        args.checkpoint,
        args.log_dir,
        network_pixels=args.network_pixels,
        max_pixels=args.max_pixels,
        tile=args.tile,
        overlap=args.overlap,
    )


def _encode_outputs(job: Job, matte, background, threshold: float | None) -> dict[Path, bytes]:
    """Every file of one job, encoded in memory, so a failure writes none of them."""
    paths = {"rgba": job.output, "alpha": job.alpha, **extra_paths(job.output)}
    names = ["rgba"]
    if job.alpha is not None:
        names.append("alpha")
    if background is not None:
        names.append("composite")
    if threshold is not None:
        names += ["mask", "soft_mask"]
    encoded = encode_outputs(
        names,
        matte.alpha,
        foreground=matte.foreground,
        background=background,
        mask_threshold=threshold,
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


def process(job: Job, matter, background, threshold: float | None, *, image=None, trimap=None):
    """Read (unless given), cut out and write one job; raises ImageError for a bad file."""
    if image is None:
        image = read_image(job.image)
    if trimap is None:
        if job.trimap is None:
            guide = "plate" if job.plate else "trimap"
            raise ImageError(job.image, f"no {guide} with the same file stem")
        if job.plate:
            trimap = read_plate(job.trimap, image, job.image, align=job.align)
        else:
            trimap = read_trimap(job.trimap, shape=image.shape[:2])
    matte = matter.extract(image, trimap)
    _write_all(_encode_outputs(job, matte, background, threshold))


def _check_common(args: argparse.Namespace):
    """Validate options shared by single and batch mode; returns the parsed background."""
    if args.overlap > args.tile // 2:
        raise UsageError(f"--overlap: {args.overlap} is more than half of --tile {args.tile}")
    return parse_background(args.background) if args.background is not None else None


def run_single(args: argparse.Namespace) -> int:
    for path in (args.output, args.alpha):
        if path is not None and not _is_png_name(path):
            raise UsageError(f"{path}: outputs are PNG files; give the name a .png extension")
    background = _check_common(args)
    # Read before loading the model: a bad file is reported in a second, not after TensorFlow.
    image = read_image(args.input)
    plate = args.background_plate is not None
    if plate:
        trimap = read_plate(args.trimap, image, args.input, align=args.align_plate)
    else:
        trimap = read_trimap(args.trimap, shape=image.shape[:2])
    matter = _load_matter(args, plate=plate)
    job = Job(args.input, args.trimap, args.output, args.alpha, plate, args.align_plate)
    process(job, matter, background, args.mask_threshold, image=image, trimap=trimap)
    return 0


def batch_jobs(args: argparse.Namespace) -> list[Job]:
    """One Job per image in the input folder, its trimap matched by stem (None if missing)."""
    plate = args.background_plate is not None
    if not args.trimap.is_dir() and not plate:
        raise UsageError(f"{args.trimap}: the input is a folder, so the trimap must be one too")
    for folder in (args.output, args.alpha):
        if folder is not None and folder.exists() and not folder.is_dir():
            raise UsageError(f"{folder}: batch mode writes into a folder, but this is a file")
    images = images_by_stem(args.input)
    if not images:
        raise UsageError(f"{args.input}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    # One plate file serves every photo (a fixed camera); a folder is matched by stem.
    trimaps = images_by_stem(args.trimap) if args.trimap.is_dir() else None
    return [
        Job(
            path,
            trimaps.get(stem) if trimaps is not None else args.trimap,
            args.output / f"{stem}.png",
            args.alpha / f"{stem}.png" if args.alpha is not None else None,
            plate,
            args.align_plate,
        )
        for stem, path in images.items()
    ]


def run_batch(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    background = _check_common(args)
    jobs = batch_jobs(args)
    matter = _load_matter(args, plate=args.background_plate is not None)
    failures = {}
    for job in tqdm(jobs, desc="cut out", unit="image", file=sys.stderr):
        try:
            process(job, matter, background, args.mask_threshold)
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
    try:
        if options.plates and options.evaluate is None:
            raise UsageError("--plates: only with --evaluate DATA")
        if options.evaluate is not None:
            return run_evaluate(options)
        if options.background_plate is not None:
            _plate_positionals(options)
        if options.input is None or options.trimap is None or options.output is None:
            raise UsageError("arguments: give INPUT TRIMAP OUTPUT, or --evaluate DATA")
        if options.input.is_dir():
            return run_batch(options)
        return run_single(options)
    except (ImageError, CheckpointError, EvaluationError, UsageError) as error:
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
