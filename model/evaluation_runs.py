"""eval.py's ``--evaluate DATA`` mode: run ``model/evaluation.py`` (or, with ``--plates``,
``model/plate_evaluation.py``) and print the table, write the CSVs and the figure."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from model.checkpoints import PRETRAINED
from model.cli import BAD_INPUT, UsageError
from model.cutout import load_matter
from model.engine import describe
from model.evaluation import METHODS
from model.plate_evaluation import PLATE_METHODS


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
    matter = load_matter(args) if "ours" in methods else None
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
    if matter is not None:
        print(f"ours model: {describe(matter)}")
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
    plate_matter = load_matter(args, plate=True) if "plate" in methods else None
    trimap_matter = None
    if "key-trimap" in methods:
        # The trimap model is the default one (newest trimap run, else log/pretrained).
        from model.inference import Matter

        trimap_matter = Matter.load(
            "-1", args.log_dir, engine=args.engine, network_pixels=args.network_pixels
        )
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
    for label, used in (("plate", plate_matter), ("key-trimap", trimap_matter)):
        if used is not None:
            print(f"{label} model: {describe(used)}")
    label = f"{args.evaluate.resolve().name}-plates-shift{args.plate_shift:g}"
    csv_path = args.csv or Path("evaluation") / f"{label}.csv"
    evaluation.write_summary_csv(csv_path, rows)
    samples_csv = csv_path.with_name(f"{csv_path.stem}_samples.csv")
    evaluation.write_samples_csv(samples_csv, report.results)
    print(f"wrote {csv_path} and {samples_csv}", file=sys.stderr)
    return BAD_INPUT if report.unreadable else 0
