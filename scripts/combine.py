"""Composite foregrounds onto backgrounds into a train/val/test matting dataset.

Reads the raw layout that download.py and synthesize.py write (``RAW/foreground/*.png`` with
alpha, ``RAW/background/*``) and, optionally, folders of image/mask pairs matched by file stem
(``DIR/images/NAME.jpg`` + ``DIR/masks/NAME.png``, the layout of DUTS or AISegment; the mask is
the alpha). Writes, for every sample ``<fg>__<bg>``::

    OUT/{train,val,test}/image/NAME.png    RGB composite  I = alpha F + (1 - alpha) B
    OUT/{train,val,test}/trimap/NAME.png   grey {0, 128, 255}
    OUT/{train,val,test}/alpha/NAME.png    grey alpha
    OUT/{train,val,test}/fg/NAME.png       RGB foreground colours F
    OUT/{train,val,test}/bg/NAME.png       RGB background B, fitted to the foreground's size
    OUT/{train,val,test}/prior/NAME.png    16-bit grey closed-form alpha for image + trimap,
                                           the generator's prior (``--no-prior`` skips it)
    OUT/manifest.jsonl                     one record per sample, skipped file and run

Unless ``--no-degrade``, F and B of each sample get matched camera degradations before they are
composited (``scripts/degrade.py``: a foreground colour shift, then the same blur, colour cast,
noise field and JPEG quality for both), drawn per sample and recorded in its manifest record;
the image is composited from the degraded 8-bit F and B as stored, so the equation above holds
for the files. With ``--scales``, each sample's longest side is drawn from the list (up to
1024, i.e. 1 MP), and its foreground shrunk or enlarged to it.

Splits go by foreground identity, so no foreground is in two splits; backgrounds are split too,
so test backgrounds are never seen in training (unless there are too few, then all splits share
them and the manifest says so). Each of the five files is written atomically and the image
last, so a sample is complete iff ``image/NAME.png`` exists: a killed run leaves nothing a later
stage takes as finished, and a re-run makes only the missing samples. Priors are computed after
the samples, from the files on disk, for every sample that has none yet (so a re-run, or a run
over a dataset made with ``--no-prior``, adds just the missing ones).

Usage::

    python3 scripts/combine.py                            # scripts/raw -> scripts/data
    python3 scripts/combine.py demo-out/raw --out demo-out/data --per-fg 4 --test-per-fg 2
    python3 scripts/combine.py scripts/raw --pairs ~/data/DUTS-TR --pairs ~/data/AISegment
    python3 scripts/combine.py --val-fraction 0.05 --test-fraction 0.05 --seed 3 --workers 2
    python3 scripts/combine.py --scales 512,768,1024      # sizes up to 1 MP, drawn per sample
    python3 scripts/combine.py --no-degrade               # clean composites, as before
"""

from __future__ import annotations

import argparse
import hashlib
import signal
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from model.classical import closed_form_prior, has_prior
from model.cli import (
    ArgumentParser,
    add_process_workers,
    first_interrupt_only,
    fraction,
    non_negative_int,
    positive_int,
)
from model.compositing import composite, fit_background, trimap_from_alpha
from model.images import (
    ImageError,
    probe_image,
    read_image,
    read_trimap,
    to_uint8,
    trimap_to_uint8,
    write_png,
)
from model.manifest import append_record, read_records
from scripts import degrade
from scripts.parallel import Workers
from scripts.sources import (
    Background,
    CombineError,
    Foreground,
    check_input,
    find_pairs,
    find_raw,
    load_foreground,
    resize_foreground,
    skipped_record,
    unique,
)
from scripts.splits import SPLITS, assign_splits, choose_backgrounds, split_backgrounds

DEFAULT_RAW = Path(__file__).resolve().parent / "raw"
DEFAULT_OUT = Path(__file__).resolve().parent / "data"
MANIFEST = "manifest.jsonl"
PARTS = ("trimap", "alpha", "fg", "bg", "image")
"""Sample files in the order they are written; the image goes last and marks completion."""
PRIOR_PART = "prior"
"""The closed-form matte of a finished sample, written in a second stage."""


@dataclass(frozen=True)
class Task:
    """One sample to make: a foreground on a background, and where and how to write it."""

    name: str
    split: str
    foreground: Foreground
    background: Background
    out: str
    seed: int
    max_size: int
    kernel: tuple[int, int]
    scales: tuple[int, ...] | None = None
    degrade: bool = False


# ---------------------------------------------------------------------------------------------
# Sample plan


def sample_name(foreground: Foreground, background: Background) -> str:
    return f"{foreground.name}__{background.name}"


def sample_seed(seed: int, name: str) -> int:
    """Seed of a sample's own random stream (background crop, trimap kernel).

    Its size and its degradations come from ``default_rng([sample_seed, SCALE_STREAM])`` and
    ``default_rng([sample_seed, DEGRADE_STREAM])``, so turning either option on or off leaves
    every other draw of the sample as it was.
    """
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


SCALE_STREAM, DEGRADE_STREAM = 1, 2


def sample_scale(task: Task) -> int | None:
    """The sample's longest side drawn from ``task.scales``, or None without scales."""
    if not task.scales:
        return None
    rng = np.random.default_rng([sample_seed(task.seed, task.name), SCALE_STREAM])
    return int(rng.choice(task.scales))


def sample_degradations(task: Task, long_side: int) -> dict | None:
    """The sample's degradation parameters (``degrade.draw``), or None when they are off."""
    if not task.degrade:
        return None
    rng = np.random.default_rng([sample_seed(task.seed, task.name), DEGRADE_STREAM])
    return degrade.draw(rng, long_side)


def sample_path(out: Path, split: str, part: str, name: str) -> Path:
    return out / split / part / f"{name}.png"


def misplaced_samples(
    out: Path, splits: dict[str, str], pools: dict[str, list[Background]]
) -> list[Path]:
    """Images of earlier runs whose foreground or background now belongs to another split.

    A re-run with another ``--seed`` or other fractions, or with foregrounds added to a small
    set, can assign a foreground elsewhere; its old samples would then put it in two splits.
    Samples of foregrounds or backgrounds no longer used are not counted.
    """
    backgrounds = {b.name for pool in pools.values() for b in pool}
    misplaced = []
    for split in SPLITS:
        pool = {b.name for b in pools[split]}
        for path in sorted((out / split / "image").glob("*.png")):
            # Names never start or end with "_", but may contain "__": try every separator.
            at = path.stem.find("__")
            while at > 0:
                fg, bg = path.stem[:at], path.stem[at + 2 :]
                if fg in splits and bg in backgrounds:
                    if splits[fg] != split or bg not in pool:
                        misplaced.append(path)
                    break
                at = path.stem.find("__", at + 1)
    return misplaced


# ---------------------------------------------------------------------------------------------
# Making samples (runs in the workers)

_cache: dict[tuple[Foreground, int], tuple[np.ndarray, ...]] = {}


def _quantised_foreground(
    source: Foreground, max_size: int, long_side: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """8-bit colour and alpha of a foreground, resized to ``long_side`` when one is given.

    The decoded foreground is kept for this worker's next sample: the samples of a foreground
    are queued one after another, so with a one-entry cache each worker decodes each
    foreground about once.
    """
    key = (source, max_size)
    if key not in _cache:
        colour, alpha = load_foreground(source, max_size)
        _cache.clear()
        _cache[key] = (colour, alpha, to_uint8(colour), to_uint8(alpha))
    colour, alpha, colour8, alpha8 = _cache[key]
    if long_side is None or long_side == max(alpha.shape):
        return colour8, alpha8
    colour, alpha = resize_foreground(colour, alpha, long_side)
    return to_uint8(colour), to_uint8(alpha)


def _sample_record(
    task: Task,
    width: int,
    height: int,
    kernel: int | None,
    scale: int | None = None,
    degradations: dict | None = None,
) -> dict:
    return {
        "kind": "sample",
        "name": task.name,
        "split": task.split,
        "fg": task.foreground.image,
        "mask": task.foreground.mask,
        "bg": task.background.path,
        "seed": task.seed,
        "sample_seed": sample_seed(task.seed, task.name),
        "trimap_kernel": kernel,
        "width": width,
        "height": height,
        "scale": scale,
        "degradations": degradations,
        "status": "kept",
        "reason": None,
    }


def make_sample(task: Task) -> dict:
    """Write one sample's five files, the image last, and return its manifest record.

    The composite is made from the 8-bit foreground, alpha and background exactly as written,
    so ``image == round(alpha F + (1 - alpha) B)`` holds for the files on disk, also when F and
    B were degraded (``scripts/degrade.py``: that happens before compositing). The sample's
    random stream (``sample_seed``) draws the background crop, then the trimap kernel; its
    size (with ``task.scales``) and its degradations (with ``task.degrade``) come from streams
    of their own. An unreadable input gives a record with status "skipped" and the reason
    instead.
    """
    out = Path(task.out)
    scale = sample_scale(task)
    try:
        fg8, alpha8 = _quantised_foreground(task.foreground, task.max_size, scale)
        background = read_image(task.background.path)
    except ImageError as error:
        return {
            "kind": "sample",
            "name": task.name,
            "split": task.split,
            "status": "skipped",
            "reason": str(error),
        }
    height, width = alpha8.shape
    rng = np.random.default_rng(sample_seed(task.seed, task.name))
    bg8 = to_uint8(fit_background(background, height, width, rng))
    kernel = int(rng.integers(task.kernel[0], task.kernel[1] + 1))
    degradations = sample_degradations(task, max(height, width))
    if degradations is not None:
        fg8, bg8 = degrade.apply(fg8, bg8, degradations)
    alpha = alpha8.astype(np.float32) / 255.0
    trimap = trimap_to_uint8(trimap_from_alpha(alpha, kernel_size=kernel))
    fg = fg8.astype(np.float32) / 255.0
    image = to_uint8(composite(fg, alpha, bg8.astype(np.float32) / 255.0))
    for part, pixels in zip(PARTS, (trimap, alpha8, fg8, bg8, image), strict=True):
        write_png(sample_path(out, task.split, part, task.name), pixels)
    record = _sample_record(task, width, height, kernel, scale, degradations)
    append_record(out / MANIFEST, record)
    return record


def make_prior(job: tuple[str, str, str]) -> dict:
    """Write the closed-form prior of one finished sample and return its manifest record.

    ``job`` is ``(out, split, name)``. The prior is solved on the 8-bit image and trimap as
    stored, the same inputs a reader of the dataset gets. A trimap without definite foreground
    or background gets the trimap itself (``model.classical.closed_form_prior``), recorded as
    ``"fallback": true``.
    """
    out, split, name = job
    image_path = sample_path(Path(out), split, "image", name)
    try:
        image = read_image(image_path)
        trimap = read_trimap(sample_path(Path(out), split, "trimap", name), shape=image.shape[:2])
    except ImageError as error:
        return {
            "kind": "prior",
            "name": name,
            "split": split,
            "status": "skipped",
            "reason": str(error),
        }
    write_png(
        sample_path(Path(out), split, PRIOR_PART, name), closed_form_prior(image, trimap), bits=16
    )
    return {
        "kind": "prior",
        "name": name,
        "split": split,
        "status": "kept",
        "method": "closed-form",
        "fallback": not has_prior(trimap),
    }


def _add_priors(workers: Workers, out: Path, tasks: list[Task]) -> Counter:
    """Compute the missing priors of the finished samples among ``tasks``; count per split."""
    jobs = [
        (str(out), task.split, task.name)
        for task in tasks
        if sample_path(out, task.split, "image", task.name).exists()
        and not sample_path(out, task.split, PRIOR_PART, task.name).exists()
    ]
    made: Counter = Counter()
    results = workers.imap_unordered(make_prior, jobs)
    for record in tqdm(results, total=len(jobs), desc="prior", unit="sample"):
        append_record(out / MANIFEST, record)
        if record["status"] == "kept":
            made[record["split"]] += 1
        else:
            tqdm.write(f"skipped prior {record['name']}: {record['reason']}", file=sys.stderr)
    return made


# ---------------------------------------------------------------------------------------------
# The command line


def kernel_range(text: str) -> tuple[int, int]:
    """argparse type: ``MIN,MAX`` (or one number) -> (min, max) with 1 <= min <= max."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not MIN,MAX in pixels") from None
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or not 1 <= values[0] <= values[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: need 1 <= MIN <= MAX")
    return values[0], values[1]


MIN_SCALE = 32
MAX_SCALE = 1024
"""Sample sides ``--scales`` accepts: a long side of 1024 keeps a sample within 1 MP."""


def scale_list(text: str) -> tuple[int, ...]:
    """argparse type: ``PX[,PX...]`` sample long sides, each in [MIN_SCALE, MAX_SCALE]."""
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of pixel sizes like 512,1024"
        ) from None
    for value in values:
        if not MIN_SCALE <= value <= MAX_SCALE:
            raise argparse.ArgumentTypeError(
                f"{value} is outside {MIN_SCALE}-{MAX_SCALE} (1024 px keeps a sample within 1 MP)"
            )
    return values


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        description="Composite foregrounds onto backgrounds into train/val/test samples.",
    )
    sources = parser.add_argument_group("inputs and output")
    sources.add_argument(
        "raw",
        nargs="?",
        type=Path,
        default=DEFAULT_RAW,
        help="raw folder with foreground/ and background/ (default scripts/raw)",
    )
    sources.add_argument(
        "--pairs",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="also use DIR/images/NAME.* with DIR/masks/NAME.* as foregrounds (repeatable)",
    )
    sources.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="dataset folder (default scripts/data)"
    )
    sampling = parser.add_argument_group("samples")
    sampling.add_argument(
        "--per-fg",
        type=positive_int,
        default=20,
        help="backgrounds per training foreground (default 20)",
    )
    sampling.add_argument(
        "--test-per-fg",
        type=positive_int,
        default=5,
        help="backgrounds per validation or test foreground (default 5)",
    )
    sampling.add_argument(
        "--max-size",
        type=positive_int,
        default=1024,
        help="longest side of a sample; larger foregrounds are shrunk (default 1024)",
    )
    sampling.add_argument(
        "--scales",
        type=scale_list,
        default=None,
        metavar="PX[,PX...]",
        help="draw each sample's longest side from these sizes (e.g. 512,768,1024; at most 1024,"
        " i.e. 1 MP), enlarging or shrinking its foreground; default: the foreground's own size,"
        " at most --max-size",
    )
    sampling.add_argument(
        "--no-degrade",
        dest="degrade",
        action="store_false",
        help="store clean composites: no matched blur, colour cast, noise or JPEG of F and B,"
        " and no foreground colour shift (the samples of earlier versions)",
    )
    sampling.add_argument(
        "--trimap-kernel",
        type=kernel_range,
        default=(1, 29),
        metavar="MIN,MAX",
        help="range of the trimap's dilation kernel diameter in pixels (default 1,29)",
    )
    splits = parser.add_argument_group("splits")
    splits.add_argument(
        "--val-fraction",
        type=fraction,
        default=0.1,
        help="share of foregrounds for validation (default 0.1)",
    )
    splits.add_argument(
        "--test-fraction",
        type=fraction,
        default=0.1,
        help="share of foregrounds for testing (default 0.1)",
    )
    splits.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="seed of splits, background choice, crops and trimaps (default 0)",
    )
    sampling.add_argument(
        "--no-prior",
        dest="prior",
        action="store_false",
        help="do not compute each sample's closed-form prior (prior/NAME.png), which the default"
        " generator needs; a later run without this flag adds the missing ones",
    )
    add_process_workers(parser)
    return parser


def _clean_temporaries(out: Path) -> int:
    """Remove temp files a killed run left behind (atomic writes' ``.NAME.*.tmp``)."""
    removed = 0
    for folder in [out] + [out / split / part for split in SPLITS for part in (*PARTS, PRIOR_PART)]:
        if folder.is_dir():
            for path in folder.glob(".*.tmp"):
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def _check_inputs(
    workers: Workers,
    foregrounds: list[Foreground],
    backgrounds: list[Background],
    max_size: int,
    skipped: list[dict],
) -> tuple[list[Foreground], list[Background]]:
    """Decode every input once; return the usable ones sorted by name, add the rest to
    ``skipped``."""
    jobs: list[tuple[str, object]] = [("foreground", (fg, max_size)) for fg in foregrounds]
    jobs += [("background", bg) for bg in backgrounds]
    usable: dict[str, list] = {"foreground": [], "background": []}
    results = workers.imap_unordered(check_input, jobs)
    for kind, item, reason in tqdm(results, total=len(jobs), desc="check", unit="file"):
        if reason is None:
            usable[kind].append(item)
        else:
            path = item.image if kind == "foreground" else item.path
            skipped.append(skipped_record(kind, path, reason))
    return (
        sorted(usable["foreground"], key=lambda f: f.name),
        sorted(usable["background"], key=lambda b: b.name),
    )


def _plan(
    options: argparse.Namespace,
    foregrounds: list[Foreground],
    splits: dict[str, str],
    pools: dict[str, list[Background]],
) -> list[Task]:
    """Every sample of the run, in foreground order (so workers reuse a decoded foreground)."""
    per_split = {"train": options.per_fg, "val": options.test_per_fg, "test": options.test_per_fg}
    tasks = []
    for fg in foregrounds:
        split = splits[fg.name]
        for bg in choose_backgrounds(fg.name, pools[split], per_split[split], options.seed):
            tasks.append(
                Task(
                    sample_name(fg, bg),
                    split,
                    fg,
                    bg,
                    str(options.out),
                    options.seed,
                    options.max_size,
                    options.trimap_kernel,
                    options.scales,
                    options.degrade,
                )
            )
    return tasks


def _run_record(
    options: argparse.Namespace,
    splits: dict[str, str],
    pools: dict[str, list[Background]],
    note: str | None,
) -> dict:
    return {
        "kind": "run",
        "status": "started",
        "seed": options.seed,
        "per_fg": options.per_fg,
        "test_per_fg": options.test_per_fg,
        "val_fraction": options.val_fraction,
        "test_fraction": options.test_fraction,
        "max_size": options.max_size,
        "scales": list(options.scales) if options.scales else None,
        "degrade": options.degrade,
        "trimap_kernel": list(options.trimap_kernel),
        "foregrounds": {split: sum(s == split for s in splits.values()) for split in SPLITS},
        "backgrounds": "shared" if note else {split: len(pools[split]) for split in SPLITS},
        "reason": note,
    }


def run(options: argparse.Namespace) -> int:
    """The whole combine run; raises CombineError, ImageError or OSError on failures."""
    out: Path = options.out
    if out.exists() and not out.is_dir():
        raise CombineError(out, "not a folder")
    skipped: list[dict] = []
    foregrounds, backgrounds = find_raw(options.raw)
    for folder in options.pairs:
        foregrounds += find_pairs(folder, skipped)
    foregrounds = unique(foregrounds, "foreground", skipped)
    backgrounds = unique(backgrounds, "background", skipped)
    sources = ", ".join(str(p) for p in [options.raw / "foreground", *options.pairs])
    if not foregrounds:
        raise CombineError(sources, "no foreground images")

    out.mkdir(parents=True, exist_ok=True)
    _clean_temporaries(out)
    manifest = out / MANIFEST
    known = read_records(manifest)
    logged = {(r.get("kind"), r.get("file"), r.get("reason")) for r in known}
    recorded = {
        r.get("name") for r in known if r.get("kind") == "sample" and r.get("status") == "kept"
    }

    with Workers(options.workers, preload=__name__) as workers:
        good_fgs, good_bgs = _check_inputs(
            workers, foregrounds, backgrounds, options.max_size, skipped
        )
        for record in skipped:
            tqdm.write(f"skipped {record['file']}: {record['reason']}", file=sys.stderr)
            if (record["kind"], record["file"], record["reason"]) not in logged:
                append_record(manifest, record)
        if not good_fgs:
            raise CombineError(
                sources, f"no usable foreground ({len(foregrounds)} skipped; reasons in {manifest})"
            )
        if not good_bgs:
            raise CombineError(
                options.raw / "background", f"no usable background (reasons in {manifest})"
            )

        names = [f.name for f in good_fgs]
        splits = assign_splits(
            names, options.seed, options.val_fraction, options.test_fraction, "foreground"
        )
        present = set(splits.values())
        needs = {
            "train": options.per_fg if "train" in present else 0,
            "val": options.test_per_fg if "val" in present else 0,
            "test": options.test_per_fg if "test" in present else 0,
        }
        pools, note = split_backgrounds(
            good_bgs, options.seed, options.val_fraction, options.test_fraction, needs
        )
        misplaced = misplaced_samples(out, splits, pools)
        if misplaced:
            raise CombineError(
                misplaced[0],
                f"made by an earlier run, but its foreground or background is now in another split"
                f" ({len(misplaced)} such samples; other --seed, fractions or inputs?); use a new"
                f" --out, or delete them",
            )
        append_record(manifest, _run_record(options, splits, pools, note))
        if note:
            tqdm.write(f"note: {note}", file=sys.stderr)

        finished: Counter = Counter()
        todo = []
        tasks = _plan(options, good_fgs, splits, pools)
        for task in tasks:
            image = sample_path(out, task.split, "image", task.name)
            if not image.exists():
                todo.append(task)
                continue
            finished[task.split] += 1
            if task.name not in recorded:
                # Killed between the image and its record: the sample is complete, log it.
                info = probe_image(image)
                degradations = sample_degradations(task, max(info.width, info.height))
                append_record(
                    manifest,
                    _sample_record(
                        task, info.width, info.height, None, sample_scale(task), degradations
                    ),
                )

        made: Counter = Counter()
        failed: Counter = Counter()
        results = workers.imap_unordered(make_sample, todo)
        for record in tqdm(results, total=len(todo), desc="combine", unit="sample"):
            if record["status"] == "kept":
                made[record["split"]] += 1
            else:
                failed[record["split"]] += 1
                append_record(manifest, record)
                tqdm.write(f"skipped sample {record['name']}: {record['reason']}", file=sys.stderr)
        priors = _add_priors(workers, out, tasks) if options.prior else Counter()

    for split in SPLITS:
        print(
            f"{split:5s}: {sum(s == split for s in splits.values())} foregrounds,"
            f" {finished[split] + made[split]} samples ({made[split]} new,"
            f" {finished[split]} already there, {failed[split]} skipped"
            + (f"; {priors[split]} new priors)" if options.prior else ")")
        )
    print(f"skipped: {len(skipped)} input files (reasons in {manifest})")
    parts = "image,trimap,alpha,fg,bg,prior" if options.prior else "image,trimap,alpha,fg,bg"
    print(f"data: {out}/{{train,val,test}}/{{{parts}}}/")
    return 0


def main(args: list[str] | None = None) -> int:
    options = build_parser().parse_args(args)
    try:
        # A second Ctrl-C during the first one's cleanup (the worker pool's shutdown) would
        # interrupt it and print a traceback.
        with first_interrupt_only():
            return run(options)
    except (CombineError, ImageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        where = error.filename or options.out
        print(f"error: {where}: {error.strerror or error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"error: {options.out}: interrupted; run again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    status = main()
    # Only exit handlers run from here (the worker pool's, among them); another Ctrl-C would
    # turn the 130 of an interrupted run into a traceback and death by SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(status)
