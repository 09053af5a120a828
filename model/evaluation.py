"""Evaluate the model side by side with pymatting's closed-form and KNN matting.

Every method gets the same image/trimap pairs and is scored with the Deep Image Matting
metrics of ``model.metrics`` over the trimap's unknown region. A dataset is any folder with
``image/``, ``trimap/`` and ``alpha/`` subfolders whose files are matched by stem (extensions may
differ), so ``scripts/data/test`` and public benchmarks such as Composition-1k or
Distinctions-646 (rearranged into the three folders) work alike.

Timing: ``seconds`` is the wall time of the alpha estimation alone for one image, after a
warm-up that compiles pymatting's numba kernels; a call of ours that had to trace the network
for a new input shape is run and timed again, so one-off start-up costs are not charged.
Foreground-colour estimation is not included: every method would need the same step.

Example
-------
>>> samples = find_samples("scripts/data/test", limit=20)
>>> report = evaluate(samples, ["ours", "closed-form"], matter=Matter.load())
>>> print(format_table(summarise(report.results)))
"""

from __future__ import annotations

import csv
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from model.classical import pymatting_alpha, warm_up_pymatting
from model.images import ImageError, atomic_path, read_alpha, read_image, read_trimap, to_uint8

METHODS = ("ours", "closed-form", "knn")
"""Method names accepted by :func:`evaluate`, in table order."""

FIGURE_ORDER = ("closed-form", "knn", "ours")
"""Column order of the methods in the figure: the baselines first, ours next to the truth."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")

CELL = 192
"""Side of one figure cell in pixels; images are fitted inside it without distortion."""

HEADER = 24
"""Height of the figure's label row in pixels."""

MARGIN = 2
"""Pixels of ground left around each thumbnail inside its cell."""


class EvaluationError(ValueError):
    """A dataset folder that cannot be evaluated; ``str(error)`` is ``"<path>: <problem>"``."""


@dataclass(frozen=True)
class Sample:
    """One image/trimap/ground-truth triple, matched by file stem."""

    name: str
    image: Path
    trimap: Path
    alpha: Path


@dataclass(frozen=True)
class Result:
    """Scores of one method on one sample; ``error`` is set (and scores are NaN) if it failed."""

    method: str
    sample: str
    sad: float = math.nan
    mse: float = math.nan
    grad: float = math.nan
    conn: float = math.nan
    seconds: float = math.nan
    error: str | None = None


@dataclass
class Report:
    """Everything :func:`evaluate` produced.

    Attributes
    ----------
    results : list of Result, one per (sample, method), samples in order.
    panels : list of dict
        For the first few samples: ``{"name", "input", "trimap", "truth", <method>...}`` as small
        uint8 thumbnails (fitted inside ``CELL`` x ``CELL``) for :func:`make_figure`.
    unreadable : list of str
        Names of samples whose files could not be read (all their results carry the error).
    """

    results: list[Result] = field(default_factory=list)
    panels: list[dict] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


def images_by_stem(folder: str | Path) -> dict[str, Path]:
    """Image files directly in ``folder`` (by suffix, hidden files skipped), keyed by stem."""
    files = {}
    # Sorted so that with two files of one stem the choice is deterministic (.jpg before .png).
    for path in sorted(Path(folder).iterdir()):
        if (
            path.is_file()
            and path.suffix.lower() in IMAGE_SUFFIXES
            and not path.name.startswith(".")
        ):
            files.setdefault(path.stem, path)
    return files


def find_samples(root: str | Path, limit: int | None = None) -> list[Sample]:
    """Samples of a dataset folder, sorted by name.

    Parameters
    ----------
    root : path
        Holds ``image/``, ``trimap/`` and ``alpha/``; files are matched by stem.
    limit : int, optional
        Keep only the first ``limit`` samples.

    Raises
    ------
    EvaluationError
        A subfolder is missing, or no stem is present in all three.
    """
    root = Path(root)
    if not root.is_dir():
        raise EvaluationError(f"{root}: no such folder")
    listings = {}
    for kind in ("image", "trimap", "alpha"):
        folder = root / kind
        if not folder.is_dir():
            raise EvaluationError(f"{root}: no {kind}/ subfolder (need image/, trimap/, alpha/)")
        listings[kind] = images_by_stem(folder)
    names = sorted(set(listings["image"]) & set(listings["trimap"]) & set(listings["alpha"]))
    if not names:
        raise EvaluationError(f"{root}: no image with both a trimap and an alpha of the same stem")
    if limit is not None:
        names = names[:limit]
    return [
        Sample(name, listings["image"][name], listings["trimap"][name], listings["alpha"][name])
        for name in names
    ]


def unmatched(root: str | Path) -> list[str]:
    """Stems of ``root/image`` that lack a trimap or an alpha (reported, then skipped)."""
    root = Path(root)
    images = images_by_stem(root / "image")
    trimaps, alphas = images_by_stem(root / "trimap"), images_by_stem(root / "alpha")
    return sorted(name for name in images if name not in trimaps or name not in alphas)


def _thumbnail(array: np.ndarray) -> np.ndarray:
    """uint8 copy of an image or matte scaled to fit inside the cell, less a 2-px margin.

    Shrinking averages (box filter); enlarging a small test image repeats pixels (nearest), so
    a matte's fine structure is shown as it is rather than smoothed.
    """
    picture = Image.fromarray(to_uint8(array))
    side = CELL - 2 * MARGIN
    scale = min(side / picture.width, side / picture.height)
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.NEAREST
    return np.asarray(picture.resize(size, resample))


def figure_indices(total: int, count: int) -> set[int]:
    """``count`` indices spread evenly over ``range(total)``, the first one included."""
    count = min(count, total)
    return {index * total // count for index in range(count)} if count > 0 else set()


def evaluate(
    samples: Sequence[Sample],
    methods: Sequence[str],
    matter=None,
    *,
    figure_samples: int = 4,
    progress: bool = True,
    on_error: Callable[[str], None] | None = None,
) -> Report:
    """Run every method on every sample and score it.

    Parameters
    ----------
    samples : list of Sample
    methods : subset of METHODS
    matter : model.inference.Matter, optional
        Needed when ``"ours"`` is among the methods.
    figure_samples : int
        Keep thumbnails of this many samples, evenly spaced through ``samples`` (so a folder
        sorted by name shows several kinds of foreground), for :func:`make_figure`.
    progress : bool
        Show a tqdm bar on stderr.
    on_error : callable, optional
        Called with a one-line message for each sample or method that fails; the sample (or that
        method on it) is then recorded with NaN scores and the evaluation goes on.

    Returns
    -------
    Report
    """
    from tqdm import tqdm

    # scipy (for the metrics) takes a third of a second to import; a cut-out never needs it.
    from model.metrics import all_metrics

    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown methods {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    if "ours" in methods and matter is None:
        raise ValueError('the "ours" method needs a loaded model (matter)')
    report = Report()
    warm_up_pymatting(methods)
    shown = figure_indices(len(samples), figure_samples)
    for index, sample in enumerate(
        tqdm(samples, desc="evaluate", unit="image", disable=not progress, file=sys.stderr)
    ):
        try:
            image = read_image(sample.image)
            trimap = read_trimap(sample.trimap, shape=image.shape[:2])
            truth = read_alpha(sample.alpha)
            if truth.shape != trimap.shape:
                raise ImageError(
                    sample.alpha,
                    f"alpha is {truth.shape[1]}x{truth.shape[0]} but the image is"
                    f" {image.shape[1]}x{image.shape[0]}",
                )
        except ImageError as error:
            if on_error:
                on_error(str(error))
            report.results.extend(Result(m, sample.name, error=str(error)) for m in methods)
            report.unreadable.append(sample.name)
            continue
        panel = None
        if index in shown:
            panel = {"name": sample.name, "input": _thumbnail(image), "trimap": _thumbnail(trimap)}
            panel["truth"] = _thumbnail(truth)
        for method in methods:
            start = time.perf_counter()
            try:
                if method == "ours":
                    traced = len(matter.traced_shapes)
                    alpha = matter.predict_alpha(image, trimap)
                    if len(matter.traced_shapes) > traced:
                        # That call traced the network for a new input shape: time a second.
                        start = time.perf_counter()
                        alpha = matter.predict_alpha(image, trimap)
                else:
                    alpha = pymatting_alpha(method, image, trimap)
            except (ValueError, MemoryError) as error:
                message = f"{sample.image}: {method} failed ({error})"
                if on_error:
                    on_error(message)
                report.results.append(Result(method, sample.name, error=message))
                continue
            seconds = time.perf_counter() - start
            scores = all_metrics(alpha, truth, trimap)
            report.results.append(Result(method, sample.name, seconds=seconds, **scores))
            if panel is not None:
                panel[method] = _thumbnail(alpha)
        if panel is not None:
            report.panels.append(panel)
    return report


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def solved_by_all(results: Sequence[Result]) -> set[str]:
    """Samples that every method scored, so that means over them compare like with like.

    pymatting refuses a trimap without foreground (or background) pixels, as many glass and
    smoke samples have, while the network answers every one; a mean over each method's own
    successes would then compare different sets of pairs.
    """
    samples = {result.sample for result in results}
    for result in results:
        if result.error is not None:
            samples.discard(result.sample)
    return samples


def summarise(results: Sequence[Result], samples: set[str] | None = None) -> list[dict]:
    """Per-method means over the samples where the method succeeded.

    With ``samples``, only those samples count (see :func:`solved_by_all`).

    Returns
    -------
    list of dict, one per method in first-seen order, with keys ``method``, ``samples``
    (scored), ``failed``, ``sad``, ``mse_e3`` (MSE x 1000, as papers print it), ``grad``,
    ``conn`` and ``seconds`` (mean per image). Means are NaN when no sample was scored.
    """
    if samples is not None:
        results = [r for r in results if r.sample in samples]
    rows = []
    for method in dict.fromkeys(result.method for result in results):
        mine = [r for r in results if r.method == method]
        scored = [r for r in mine if r.error is None]
        rows.append(
            {
                "method": method,
                "samples": len(scored),
                "failed": len(mine) - len(scored),
                "sad": _mean([r.sad for r in scored]),
                "mse_e3": _mean([r.mse * 1000.0 for r in scored]),
                "grad": _mean([r.grad for r in scored]),
                "conn": _mean([r.conn for r in scored]),
                "seconds": _mean([r.seconds for r in scored]),
            }
        )
    return rows


SUMMARY_COLUMNS = ("method", "samples", "failed", "sad", "mse_e3", "grad", "conn", "seconds")
SAMPLE_COLUMNS = ("method", "sample", "sad", "mse_e3", "grad", "conn", "seconds", "error")


def format_table(rows: Sequence[dict]) -> str:
    """The summary as an aligned text table (SAD, MSE x 10^-3, Grad, Conn, s/image)."""
    header = ("method", "n", "failed", "SAD", "MSE(e-3)", "Grad", "Conn", "s/image")
    lines = [f"{header[0]:<12}" + "".join(f"{name:>10}" for name in header[1:])]
    for row in rows:
        numbers = [row[key] for key in SUMMARY_COLUMNS[3:]]
        lines.append(
            f"{row['method']:<12}{row['samples']:>10}{row['failed']:>10}"
            + "".join(f"{value:>10.3f}" for value in numbers)
        )
    return "\n".join(lines)


def _write_csv(path: Path, columns: Sequence[str], rows: Sequence[dict]) -> None:
    with atomic_path(path) as temp, open(temp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def write_summary_csv(path: str | Path, rows: Sequence[dict]) -> None:
    """One row per method: ``SUMMARY_COLUMNS``; written atomically."""
    _write_csv(Path(path), SUMMARY_COLUMNS, rows)


def write_samples_csv(path: str | Path, results: Sequence[Result]) -> None:
    """One row per (method, sample): ``SAMPLE_COLUMNS`` (MSE x 1000); written atomically."""
    rows = [
        {
            "method": r.method,
            "sample": r.sample,
            "sad": r.sad,
            "mse_e3": r.mse * 1000.0,
            "grad": r.grad,
            "conn": r.conn,
            "seconds": r.seconds,
            "error": r.error or "",
        }
        for r in results
    ]
    _write_csv(Path(path), SAMPLE_COLUMNS, rows)


def figure_columns(methods: Sequence[str]) -> list[tuple[str, str]]:
    """(panel key, label) per figure column: input | trimap | methods | ground truth."""
    labels = {"closed-form": "closed-form", "knn": "KNN", "ours": "ours"}
    columns = [("input", "input"), ("trimap", "trimap")]
    columns += [(m, labels[m]) for m in FIGURE_ORDER if m in methods]
    return [*columns, ("truth", "ground truth")]


def make_figure(panels: Sequence[dict], methods: Sequence[str]) -> np.ndarray:
    """A grid image: one row per sample, columns from :func:`figure_columns`, labelled on top.

    Every thumbnail is centred in a CELL x CELL cell on a mid-grey ground (grey mattes are shown
    as grey images), so samples of different aspect ratios line up.

    Returns
    -------
    ndarray, uint8, shape (HEADER + CELL * len(panels), CELL * n_columns, 3)
    """
    columns = figure_columns(methods)
    grid = Image.new("RGB", (CELL * len(columns), HEADER + CELL * len(panels)), (128, 128, 128))
    draw = ImageDraw.Draw(grid)
    draw.rectangle((0, 0, grid.width, HEADER - 1), fill=(255, 255, 255))
    font = ImageFont.load_default()
    for index, (_, label) in enumerate(columns):
        width = draw.textlength(label, font=font)
        draw.text((index * CELL + (CELL - width) / 2, 6), label, fill=(0, 0, 0), font=font)
    for row, panel in enumerate(panels):
        for index, (key, _) in enumerate(columns):
            if key not in panel:
                continue  # that method failed on this sample: leave the cell blank
            cell = Image.fromarray(panel[key]).convert("RGB")
            left = index * CELL + (CELL - cell.width) // 2
            top = HEADER + row * CELL + (CELL - cell.height) // 2
            grid.paste(cell, (left, top))
    return np.asarray(grid)
