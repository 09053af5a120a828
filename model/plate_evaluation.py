"""Evaluate background-plate matting on a dataset with clean backgrounds and perturbed plates.

A dataset here is a folder with ``image/``, ``alpha/`` and ``bg/`` (as ``scripts/combine.py``
writes every split), files matched by stem. Each sample's plate is its clean background made
imperfect by one fixed :class:`model.plate.PlatePerturbation` (by default: shifted 2 px right,
6 % brighter, Gaussian noise of sigma 0.01 seeded by the sample's index), as a plate shot a
moment before or after the photo would be. Three methods get the same (photo, plate) pairs:

* ``plate`` -- the plate generator (:class:`model.plate_inference.PlateMatter`);
* ``difference-key`` -- the classical key, |photo - plate| thresholded and feathered
  (:func:`model.plate.difference_key`);
* ``key-trimap`` -- the trimap model (:class:`model.inference.Matter`) given a trimap made from
  the difference key (:func:`model.plate.key_trimap`): what one could do without a plate model.

Scores are the Deep Image Matting metrics of ``model.metrics`` over the **whole image** (an
all-unknown trimap): a plate method has no trimap, and its worst errors (shadows, a moved plate)
lie far from the subject's edge. Results, tables and CSVs are those of ``model.evaluation``.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from model.evaluation import EvaluationError, Report, Result, images_by_stem
from model.images import TRIMAP_UNKNOWN, ImageError, read_alpha, read_image
from model.plate import PlatePerturbation, difference_key, key_trimap, perturb_plate

PLATE_METHODS = ("plate", "difference-key", "key-trimap")
"""Method names accepted by :func:`evaluate_plates`, in table order."""

DEFAULT_PERTURBATION = PlatePerturbation(shift=(2.0, 0.0), gain=1.06, noise=0.01)
"""The acceptance perturbation: 2 px to the right, 6 % brighter, noise sigma 0.01."""


def find_plate_samples(root: str | Path, limit: int | None = None) -> list[tuple[str, dict]]:
    """``(stem, {"image", "alpha", "bg": path})`` for every stem in all three folders, sorted.

    Raises
    ------
    EvaluationError
        A folder is missing, or no stem is in all three.
    """
    root = Path(root)
    listings = {}
    for kind in ("image", "alpha", "bg"):
        if not (root / kind).is_dir():
            raise EvaluationError(f"{root}: no {kind}/ subfolder (need image/, alpha/, bg/)")
        listings[kind] = images_by_stem(root / kind)
    stems = sorted(set.intersection(*(set(files) for files in listings.values())))
    if not stems:
        raise EvaluationError(f"{root}: no file stem is in all of image/, alpha/ and bg/")
    return [(stem, {kind: listings[kind][stem] for kind in listings}) for stem in stems[:limit]]


def evaluate_plates(
    samples: Sequence[tuple[str, dict]],
    methods: Sequence[str],
    *,
    plate_matter=None,
    trimap_matter=None,
    perturbation: PlatePerturbation = DEFAULT_PERTURBATION,
    progress: bool = True,
    on_error: Callable[[str], None] | None = None,
) -> Report:
    """Run every plate method on every sample and score it over the whole image.

    Parameters
    ----------
    samples : from :func:`find_plate_samples`
    methods : subset of PLATE_METHODS
    plate_matter : PlateMatter, needed for ``"plate"``
    trimap_matter : Matter, needed for ``"key-trimap"``
    perturbation : PlatePerturbation
        Applied to every sample's ``bg``; its ``seed`` is offset by the sample's index.
    progress : bool
        Show a tqdm bar on stderr.
    on_error : callable, optional
        Called with one line per unreadable sample (recorded with NaN scores).

    Returns
    -------
    model.evaluation.Report
        ``results`` only (no figure panels); ``seconds`` times the alpha estimation alone,
        after a first call that traces the network for each new shape.
    """
    from tqdm import tqdm

    # scipy (for the metrics) takes half a second to import; eval.py imports this module for
    # PLATE_METHODS even for a plain cut-out.
    from model.metrics import all_metrics

    unknown = sorted(set(methods) - set(PLATE_METHODS))
    if unknown:
        raise ValueError(f"unknown methods {', '.join(unknown)}; choose from {PLATE_METHODS}")
    if "plate" in methods and plate_matter is None:
        raise ValueError('the "plate" method needs a PlateMatter')
    if "key-trimap" in methods and trimap_matter is None:
        raise ValueError('the "key-trimap" method needs a Matter')
    report = Report()
    for index, (name, paths) in enumerate(
        tqdm(samples, desc="evaluate plates", unit="image", disable=not progress, file=sys.stderr)
    ):
        try:
            image = read_image(paths["image"])
            truth = read_alpha(paths["alpha"])
            background = read_image(paths["bg"])
            for kind, shape in (("alpha", truth.shape), ("bg", background.shape[:2])):
                if shape != image.shape[:2]:
                    raise ImageError(paths[kind], "size differs from the image's")
        except ImageError as error:
            if on_error:
                on_error(str(error))
            report.results.extend(Result(m, name, error=str(error)) for m in methods)
            report.unreadable.append(name)
            continue
        sample_perturbation = dataclasses.replace(perturbation, seed=perturbation.seed + index)
        plate = perturb_plate(background, sample_perturbation)
        whole = np.full(truth.shape, TRIMAP_UNKNOWN, np.float32)
        for method in methods:
            alpha, seconds = _run(method, image, plate, plate_matter, trimap_matter)
            scores = all_metrics(alpha, truth, whole)
            report.results.append(Result(method, name, seconds=seconds, **scores))
    return report


def _run(method, image, plate, plate_matter, trimap_matter) -> tuple[np.ndarray, float]:
    """(alpha, seconds) of one method; a call that traced a new shape is timed again."""

    def once() -> np.ndarray:
        if method == "difference-key":
            return difference_key(image, plate)
        if method == "plate":
            return plate_matter.predict_alpha(image, plate)
        return trimap_matter.predict_alpha(image, key_trimap(difference_key(image, plate)))

    matter = plate_matter if method == "plate" else trimap_matter
    traced = len(matter.traced_shapes) if matter is not None else 0
    start = time.perf_counter()
    alpha = once()
    if matter is not None and len(matter.traced_shapes) > traced:
        start = time.perf_counter()
        alpha = once()
    return alpha, time.perf_counter() - start
