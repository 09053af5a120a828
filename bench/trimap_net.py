"""Benchmark: the trained trimap network against the U²-Net-p saliency trimaps.

On each sample of a dataset folder (combine.py's ``scripts/data/test`` by default), both
automatic trimap sources get the photo alone:

* ``saliency`` (the baseline, the default of eval.py) -- ``model.auto_trimap.AutoTrimapper``
  with its default thresholds and band;
* ``trimap-net`` -- ``model.trimap_inference.NetworkTrimapper`` of ``--trimap-model``.

Two measurements:

1. the trimap itself against the sample's ground-truth trimap (``trimap/``): per-class IoU and
   pixel accuracy, the mean IoU and the overall accuracy (``model.metrics.class_metrics``),
   averaged over the samples;
2. the image-only cut-out: the matting model (``--checkpoint``, default the shipped one) in the
   automatic trimap's unknown band, scored on the whole image against ``alpha/`` -- the same
   measurement as ``bench/auto.py`` (whose ``run`` this reuses): SAD = sum |a - a*| / 1000,
   MSE, seconds per image.

Usage::

    python3 bench/trimap_net.py --trimap-model log/pretrained-trimap
    python3 bench/trimap_net.py --trimap-model log/run-x --data /tmp/data/test --limit 10
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from bench.auto import run as cutout_scores
from model.cli import ArgumentParser, positive_int
from model.evaluation import find_samples
from model.images import read_image, read_trimap
from model.metrics import class_metrics
from model.trimap_data import trimap_classes

CLASS_NAMES = ("bg", "unknown", "fg")
COLUMNS = ("iou_bg", "iou_unknown", "iou_fg", "miou", "acc_bg", "acc_unknown", "acc_fg",
           "accuracy")  # fmt: skip


def trimap_scores(trimappers: dict, samples) -> dict[str, dict[str, float]]:
    """Mean :data:`COLUMNS` of each trimap source against the samples' ground-truth trimaps."""
    from tqdm import tqdm

    scores = {name: {key: [] for key in COLUMNS} for name in trimappers}
    for sample in tqdm(samples, desc="trimaps", unit="image", file=sys.stderr):
        image = read_image(sample.image)
        truth = trimap_classes(read_trimap(sample.trimap, shape=image.shape[:2]))
        for name, trimapper in trimappers.items():
            found = class_metrics(trimap_classes(trimapper(image)), truth, CLASS_NAMES)
            for key in COLUMNS:
                scores[name][key].append(found[key])
    return {
        name: {key: float(np.mean(values)) for key, values in columns.items()}
        for name, columns in scores.items()
    }


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--trimap-model", required=True, help="trimap run or checkpoint")
    parser.add_argument(
        "--data", type=Path, default=Path("scripts/data/test"), help="image/, trimap/, alpha/"
    )
    parser.add_argument("--limit", type=positive_int, metavar="N", help="only the first N")
    parser.add_argument("--checkpoint", default="-1", help="matting model, as in eval.py")
    parser.add_argument("--log-dir", type=Path, default=Path("log"), help="(default: log)")
    return parser


def main(args: list[str] | None = None) -> int:
    options = build_parser().parse_args(args)
    from model.auto_trimap import AutoTrimapper
    from model.checkpoints import CheckpointError
    from model.inference import Matter
    from model.trimap_inference import NetworkTrimapper

    try:
        samples = find_samples(options.data, options.limit)
        trimappers = {
            "saliency": AutoTrimapper(),
            "trimap-net": NetworkTrimapper(options.trimap_model, options.log_dir),
        }
        matter = Matter.load(options.checkpoint, options.log_dir)
    except (CheckpointError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    trimaps = trimap_scores(trimappers, samples)
    cutouts = cutout_scores(
        {
            name: (lambda image, source=source: matter.predict_alpha(image, source(image)))
            for name, source in trimappers.items()
        },
        samples,
    )
    print(f"trimaps against the ground truth, {len(samples)} samples ({options.data})")
    print(f"{'source':<12}" + "".join(f"{key:>12}" for key in COLUMNS))
    for name, row in trimaps.items():
        print(f"{name:<12}" + "".join(f"{row[key]:>12.4f}" for key in COLUMNS))
    print(f"\nimage-only cut-outs through {matter.ref.run_dir}, whole image")
    print(f"{'source':<12}{'SAD':>9}{'MSE':>9}{'s/image':>9}")
    for name, row in cutouts.items():
        print(f"{name:<12}{row['sad']:>9.2f}{row['mse']:>9.4f}{row['seconds']:>9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
