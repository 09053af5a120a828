"""Training callbacks: progress, TensorBoard scalars, checkpoints, validation, image strips."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image
from tqdm import tqdm

from model import metrics as matting_metrics
from model.compositing import composite
from model.images import write_bytes, write_png
from model.manifest import append_record
from model.networks import clamp_known
from model.training.checkpoint import RunCheckpoint
from model.training.gan import model_inputs
from model.training.summaries import write_image, write_scalar
from model.training.timelapse import read_validation_history

VALIDATION_KEYS = ("sad", "mse", "grad", "conn")
PANEL_HEIGHT = 128
"""Height in pixels of each panel of a sample strip (samples are resized to it)."""


# train_loop calls on_train_begin({"step": start}), on_train_batch_end(step, logs) with the
# global step just completed, and on_train_end({"step": step, "interrupted": bool,
# "error": bool}) -- also when an exception escapes the loop (then "error" is True).


class ProgressCallback(keras.callbacks.Callback):
    """A tqdm bar over the global steps with the windowed losses and images/s (stderr)."""

    def __init__(self, total_steps: int, *, disable: bool = False):
        super().__init__()
        self.total_steps = total_steps
        self.disable = disable
        self.bar = None

    def on_train_begin(self, logs=None):
        self.bar = tqdm(
            total=self.total_steps,
            initial=logs["step"],
            unit="step",
            desc="train",
            dynamic_ncols=True,
            disable=self.disable,
        )

    def on_train_batch_end(self, batch, logs=None):
        postfix = {
            key: f"{logs[key]:.4f}"
            for key in ("g_total", "g_alpha", "d_total", "total")
            if key in logs
        }
        if logs.get("images_per_second"):
            postfix["img/s"] = f"{logs['images_per_second']:.1f}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(1)

    def on_train_end(self, logs=None):
        if self.bar is not None:
            self.bar.close()


class ScalarCallback(keras.callbacks.Callback):
    """TensorBoard scalars ``train/<key>`` for every key of the logs, every ``every`` steps."""

    def __init__(self, writer, every: int):
        super().__init__()
        self.writer = writer
        self.every = every

    def on_train_batch_end(self, batch, logs=None):
        if batch % self.every:
            return
        with self.writer.as_default(step=batch):
            for key, value in logs.items():
                write_scalar(f"train/{key}", value, batch)
        self.writer.flush()


class CheckpointCallback(keras.callbacks.Callback):
    """Save every ``every`` global steps and whenever training ends (also on errors).

    An error before the first step of the session saves nothing: the state is the one just
    restored (or freshly initialised), and a checkpoint would only block re-running the run.
    """

    def __init__(self, checkpoint: RunCheckpoint, every: int):
        super().__init__()
        self.checkpoint = checkpoint
        self.every = every
        self.last_path: Path | None = None
        self.start: int | None = None

    def on_train_begin(self, logs=None):
        self.start = logs["step"]

    def on_train_batch_end(self, batch, logs=None):
        if batch % self.every == 0:
            self.last_path = self.checkpoint.save()

    def on_train_end(self, logs=None):
        if not (logs.get("error") and logs["step"] == self.start):
            self.last_path = self.checkpoint.save()


def _valid_crop(sample: dict[str, np.ndarray], *arrays: np.ndarray) -> list[np.ndarray]:
    """Cut the sample's own top-left pixels (``valid`` == 1) out of (H, W[, C]) arrays."""
    valid = sample["valid"][0, ..., 0] > 0.5
    height, width = int(valid.any(axis=1).sum()), int(valid.any(axis=0).sum())
    return [array[:height, :width] for array in arrays]


class _Predictor:
    """Generator inference on eval samples, with known trimap regions clamped."""

    def __init__(self, generator: keras.Model):
        self.generator = generator

        @tf.function(reduce_retracing=True)
        def predict(inputs, trimap):
            alpha = generator(inputs, training=False)  # (1, H, W, 1)
            return clamp_known(alpha, trimap)

        self._predict = predict

    def __call__(self, sample: dict[str, np.ndarray]) -> np.ndarray:
        """Alpha (H, W) float32 of one padded eval sample (batch 1)."""
        if "plate" in sample:
            inputs = model_inputs(sample["image"], sample["plate"])
        else:
            inputs = model_inputs(sample["image"], sample["trimap"], sample.get("prior"))
        return self._predict(inputs, sample["trimap"]).numpy()[0, ..., 0]


class PeriodicValidation(keras.callbacks.Callback):
    """Validation on a schedule, with its records and the best checkpoint.

    Validates at step 0 of a new run, every ``every`` steps, and at the end of training
    (unless it was interrupted). Means over the samples go to TensorBoard (``val/<metric>``),
    to ``run_dir/validation.jsonl`` and, when ``best_key`` is the best so far, the state is
    saved in ``best/`` and described in ``best/best.json``. Subclasses say what is scored
    (:meth:`scores`) and which mean picks the best checkpoint.

    Attributes
    ----------
    best_key : str
        The mean that picks the best checkpoint.
    higher_is_better : bool
        Whether a larger ``best_key`` is better.
    best : float
        The best ``best_key`` so far (restored from ``best/best.json`` on resume).
    history : list of dict
        ``{"step": ..., <metric>: mean, ...}`` for each validation of this process.
    """

    best_key = "sad"
    higher_is_better = False

    def __init__(
        self,
        dataset_fn,
        every: int,
        checkpoint: RunCheckpoint,
        *,
        writer=None,
        run_dir: Path | None = None,
    ):
        super().__init__()
        self.dataset_fn = dataset_fn
        self.every = every
        self.checkpoint = checkpoint
        self.writer = writer
        self.run_dir = run_dir
        self.last_step: int | None = None
        self.best = -math.inf if self.higher_is_better else math.inf
        self.history: list[dict[str, float]] = []

    def scores(self) -> dict[str, list[float]]:
        """Per-sample values of each metric over ``dataset_fn()``."""
        raise NotImplementedError

    def _improves(self, value: float) -> bool:
        return value > self.best if self.higher_is_better else value < self.best

    def on_train_begin(self, logs=None):
        best_file = self.checkpoint.best_dir / "best.json"
        if best_file.exists():
            record = json.loads(best_file.read_text(encoding="utf-8"))
            self.best = float(record[self.best_key])
        if self.run_dir is not None:
            done = read_validation_history(self.run_dir)
            self.last_step = done[-1]["step"] if done else None
        if logs["step"] == 0:
            self.validate(0)

    def on_train_batch_end(self, batch, logs=None):
        if batch % self.every == 0:
            self.validate(batch)

    def on_train_end(self, logs=None):
        if not (logs.get("interrupted") or logs.get("error")) and logs["step"] != self.last_step:
            self.validate(logs["step"])

    def validate(self, step: int) -> dict[str, float]:
        """Score the val samples, record the means and keep the best; returns the means."""
        means = {key: float(np.mean(values)) for key, values in self.scores().items()}
        self.last_step = step
        self.history.append({"step": step, **means})
        if self.writer is not None:
            with self.writer.as_default(step=step):
                for key, value in means.items():
                    write_scalar(f"val/{key}", value, step)
            self.writer.flush()
        if self.run_dir is not None:
            append_record(self.run_dir / "validation.jsonl", {"step": step, **means})
        if self.best_key in means and self._improves(means[self.best_key]):
            self.best = means[self.best_key]
            self.checkpoint.save_best()
            record = {"step": step, **means}
            write_bytes(self.checkpoint.best_dir / "best.json", json.dumps(record).encode())
        return means


class ValidationCallback(PeriodicValidation):
    """SAD, MSE, Grad and Conn on the val split; keeps the best checkpoint by SAD.

    Each metric is computed per image on its own (unpadded) pixels over the trimap's unknown
    region (see ``model.metrics``); the schedule and records are :class:`PeriodicValidation`'s.
    """

    best_key = "sad"
    higher_is_better = False

    def on_train_begin(self, logs=None):
        self.predictor = _Predictor(self.model.generator)
        super().on_train_begin(logs)

    def scores(self) -> dict[str, list[float]]:
        scores = {key: [] for key in VALIDATION_KEYS}
        for batch in self.dataset_fn():
            sample = {key: value.numpy() for key, value in batch.items()}
            pred = self.predictor(sample)
            pred, gt, trimap = _valid_crop(
                sample, pred, sample["alpha"][0, ..., 0], sample["trimap"][0, ..., 0]
            )
            for key, value in matting_metrics.all_metrics(pred, gt, trimap).items():
                scores[key].append(value)
        return scores


def _resize_height(array: np.ndarray, height: int) -> np.ndarray:
    """Resize (H, W, 3) float in [0, 1] to the given height, keeping the aspect ratio."""
    image = Image.fromarray(np.rint(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8))
    width = max(1, round(image.width * height / image.height))
    return np.asarray(image.resize((width, height), Image.BILINEAR), dtype=np.float32) / 255.0


def _checkerboard(height: int, width: int, cell: int = 8) -> np.ndarray:
    """Light/dark grey checkerboard (H, W, 3), the usual backdrop for transparency."""
    yy, xx = np.mgrid[0:height, 0:width]
    light = ((yy // cell + xx // cell) % 2).astype(np.float32)
    return np.repeat((0.6 + 0.25 * light)[..., None], 3, axis=2)


def sample_strip(rows: Iterable[dict[str, np.ndarray]], height: int = PANEL_HEIGHT) -> np.ndarray:
    """Stack one row per sample: input | trimap | predicted alpha | true alpha | composite.

    Parameters
    ----------
    rows : iterable of dict
        ``image``, ``fg`` (H, W, 3), ``trimap``, ``pred``, ``alpha`` (H, W), float32 in [0, 1].
        The composite is ``fg`` over a checkerboard with the predicted alpha.
    height : int
        Each row is resized to this height; narrower rows are padded with black on the right.

    Returns
    -------
    ndarray, float32, shape (rows * height, max row width, 3), values in [0, 1]
    """
    lines = []
    for row in rows:
        grey = [np.repeat(row[key][..., None], 3, axis=2) for key in ("trimap", "pred", "alpha")]
        backdrop = _checkerboard(*row["pred"].shape)
        over = composite(row["fg"], row["pred"], backdrop)
        panels = [row["image"], *grey, over]
        # Resized one by one so that interpolation never blends neighbouring panels.
        lines.append(np.concatenate([_resize_height(p, height) for p in panels], axis=1))
    width = max(line.shape[1] for line in lines)
    padded = [np.pad(line, ((0, 0), (0, width - line.shape[1]), (0, 0))) for line in lines]
    return np.concatenate(padded, axis=0)


class ImageCallback(keras.callbacks.Callback):
    """Sample strips of a fixed set of val samples: TensorBoard image and PNG.

    Written at step 0 of a new run, every ``every`` steps, and at the end of training, to
    ``run_dir/samples/step_XXXXXXX.png`` (the timelapse frames) and to TensorBoard as the image
    ``samples``.
    """

    def __init__(self, dataset_fn, every: int, run_dir: Path, writer=None):
        super().__init__()
        self.dataset_fn = dataset_fn
        self.every = every
        self.samples_dir = Path(run_dir) / "samples"
        self.writer = writer
        self.last_step: int | None = None

    def on_train_begin(self, logs=None):
        self.predictor = _Predictor(self.model.generator)
        self.samples = [
            {key: value.numpy() for key, value in batch.items()} for batch in self.dataset_fn()
        ]
        if logs["step"] == 0:
            self.write(0)

    def on_train_batch_end(self, batch, logs=None):
        if batch % self.every == 0:
            self.write(batch)

    def on_train_end(self, logs=None):
        done = (self.samples_dir / f"step_{logs['step']:07d}.png").exists()
        if not (logs.get("interrupted") or logs.get("error") or done):
            self.write(logs["step"])

    def write(self, step: int) -> Path:
        rows = []
        for sample in self.samples:
            pred = self.predictor(sample)
            image, fg, trimap, alpha, pred = _valid_crop(
                sample,
                sample["image"][0],
                sample["fg"][0],
                sample["trimap"][0, ..., 0],
                sample["alpha"][0, ..., 0],
                pred,
            )
            rows.append({"image": image, "fg": fg, "trimap": trimap, "alpha": alpha, "pred": pred})
        strip = sample_strip(rows)
        path = self.samples_dir / f"step_{step:07d}.png"
        write_png(path, strip)
        if self.writer is not None:
            with self.writer.as_default(step=step):
                write_image("samples", strip, step)
            self.writer.flush()
        self.last_step = step
        return path
