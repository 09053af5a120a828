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
import signal
import sys
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from model.cli import (
    ArgumentParser,
    add_process_workers,
    first_interrupt_only,
    fraction,
    non_negative_int,
    positive_int,
)
from model.images import ImageError, probe_image
from model.manifest import append_record, read_records
from scripts import samples
from scripts.parallel import Workers
from scripts.samples import (
    MANIFEST,
    PRIOR_PART,
    Task,
    clean_temporaries,
    make_prior,
    make_sample,
    sample_degradations,
    sample_name,
    sample_path,
    sample_record,
    sample_scale,
)
from scripts.sources import (
    Background,
    CombineError,
    Foreground,
    check_inputs,
    find_pairs,
    find_raw,
    unique,
)
from scripts.splits import (
    SPLITS,
    assign_splits,
    choose_backgrounds,
    misplaced_samples,
    split_backgrounds,
)

DEFAULT_RAW = Path(__file__).resolve().parent / "raw"
DEFAULT_OUT = Path(__file__).resolve().parent / "data"


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
    clean_temporaries(out)
    manifest = out / MANIFEST
    known = read_records(manifest)
    logged = {(r.get("kind"), r.get("file"), r.get("reason")) for r in known}
    recorded = {
        r.get("name") for r in known if r.get("kind") == "sample" and r.get("status") == "kept"
    }

    with Workers(options.workers, preload=samples.__name__) as workers:
        good_fgs, good_bgs = check_inputs(
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
                    sample_record(
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
