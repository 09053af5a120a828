"""The training loop and :func:`train`, which wires a run together."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from model.dataset import dataset_error_in, list_samples
from model.eval_data import make_eval_dataset
from model.networks import ModelConfig
from model.plate_data import make_plate_eval_dataset
from model.training.callbacks import (
    CheckpointCallback,
    ImageCallback,
    ProgressCallback,
    ScalarCallback,
    ValidationCallback,
)
from model.training.checkpoint import RunCheckpoint
from model.training.distribute import is_chief, make_strategy
from model.training.gan import (
    MattingGAN,
    build_model,
    make_distributed_dataset,
    make_train_function,
    warm_start,
)
from model.training.settings import TrainSettings
from model.training.trimap_trainer import (
    TrimapValidationCallback,
    build_trimap_trainer,
    make_trimap_distributed_dataset,
)
from model.trimap_data import find_pairs, has_split, make_trimap_dataset


class StopRequest:
    """Set by a signal handler; the loop stops after the step in progress."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def request(self, signum: int) -> None:
        self.signum = signum

    def __bool__(self) -> bool:
        return self.signum is not None


def train_loop(
    model: MattingGAN,
    iterator,
    step: tf.Variable,
    total_steps: int,
    *,
    strategy: tf.distribute.Strategy,
    global_batch: int,
    log_every: int,
    callbacks: list[keras.callbacks.Callback],
    stop: StopRequest | None = None,
) -> dict[str, Any]:
    """Train until ``step`` reaches ``total_steps`` or ``stop`` is set.

    After each step, ``step`` is incremented and every callback gets
    ``on_train_batch_end(step, logs)`` where ``logs`` holds the loss means over the current
    window of ``log_every`` steps (trackers are reset when ``step % log_every == 0``) plus
    ``images_per_second`` (a moving average; the first, tracing step is left out).

    When an exception escapes, callbacks still get ``on_train_end`` (with ``"error": True``;
    the checkpoint callback saves at the step reached) and the exception is re-raised.

    Returns
    -------
    dict
        The last logs, with ``step`` and ``interrupted``.
    """
    stop = stop if stop is not None else StopRequest()
    train_function = make_train_function(model, strategy)
    for callback in callbacks:
        callback.set_model(model)
    for callback in callbacks:
        callback.on_train_begin({"step": int(step.numpy())})
    logs: dict[str, Any] = {}
    rate = None
    end = {"step": int(step.numpy()), "interrupted": False, "error": False}
    try:
        while int(step.numpy()) < total_steps and not stop:
            started = time.perf_counter()
            outputs = train_function(iterator)
            logs = {key: float(value) for key, value in outputs.items()}
            current = int(step.assign_add(1).numpy())
            elapsed = time.perf_counter() - started
            if current > end["step"] + 1:
                instant = global_batch / max(elapsed, 1e-9)
                rate = instant if rate is None else 0.9 * rate + 0.1 * instant
            logs["images_per_second"] = rate or 0.0
            for callback in callbacks:
                callback.on_train_batch_end(current, logs)
            if current % log_every == 0:
                model.reset_metrics()
    except BaseException:
        end = {"step": int(step.numpy()), "interrupted": False, "error": True}
        for callback in callbacks:
            callback.on_train_end(end)
        raise
    end = {"step": int(step.numpy()), "interrupted": bool(stop), "error": False}
    for callback in callbacks:
        callback.on_train_end(end)
    return {**logs, **end}


@dataclass
class TrainResult:
    """What :func:`train` did: the last step, its checkpoint, and why it stopped."""

    step: int
    checkpoint: Path | None
    interrupted_by: int | None
    logs: dict[str, Any]
    best_sad: float | None
    validations: list[dict[str, float]]


def train(
    data: str | os.PathLike,
    run_dir: str | os.PathLike,
    cfg: ModelConfig,
    settings: TrainSettings,
    *,
    resume: str | os.PathLike | None = None,
    init_from: keras.Model | None = None,
    strategy: tf.distribute.Strategy | None = None,
    stop: StopRequest | None = None,
    progress: bool = True,
    on_restored: Callable[[], None] | None = None,
) -> TrainResult:
    """Build the model, restore ``resume`` if given, and train with all callbacks.

    Parameters
    ----------
    data : path
        Dataset root written by ``scripts/combine.py`` (``train`` and, for validation and
        images, ``val`` splits).
    run_dir : path
        ``log/<run>``; its ``config.json`` is written by the caller (:func:`start_run`).
    cfg : ModelConfig
    settings : TrainSettings
    resume : path, optional
        Checkpoint prefix to continue from (step, weights and optimiser state).
    init_from : keras.Model, optional
        A trained generator whose weights a new run starts from (:func:`warm_start`).
    strategy : tf.distribute.Strategy, optional
        From :func:`make_strategy`; default ``make_strategy(settings.distribute)``.
    stop : StopRequest, optional
        Checked after every step.
    progress : bool
        Show the tqdm bar (on the chief).
    on_restored : callable, optional
        Called once the model is built and ``resume`` restored, before this function writes
        anything: train.py writes ``config.json`` there, so a checkpoint that cannot be
        restored leaves the run as it was.

    Raises
    ------
    model.dataset.DatasetError, CheckpointError
        Bad data or a checkpoint of another architecture, before training starts; or a sample
        that cannot be decoded when it is first read (the DatasetError names the file; the
        checkpoint callback has saved the steps done).
    """
    strategy = strategy or make_strategy(settings.distribute)
    chief = is_chief(strategy)
    run_dir = Path(run_dir)
    keras.utils.set_random_seed(settings.seed)
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(
        "mixed_float16" if settings.mixed_precision else "float32"
    )
    checkpoint = None
    try:
        build_cfg = cfg
        if resume is not None and cfg.encoder_weights is not None:
            # The checkpoint replaces the encoder weights anyway; skip loading ImageNet ones.
            build_cfg = dataclasses.replace(cfg, encoder_weights=None)
        trimap = cfg.task == "trimap"
        if trimap:
            model = build_trimap_trainer(build_cfg, settings, strategy)
        else:
            model = build_model(build_cfg, settings, strategy)
        checkpoint = RunCheckpoint(model, run_dir, keep=settings.keep, chief=chief)
        start = 0
        if resume is None and init_from is not None:
            warm_start(model.generator, init_from)
        if resume is not None:
            start = checkpoint.restore(resume)
            for optimizer in (model.g_optimizer, getattr(model, "d_optimizer", None)):
                if optimizer is not None:
                    optimizer.learning_rate = settings.lr  # a resumed run may change --lr
        if on_restored is not None:
            on_restored()
        replicas = strategy.num_replicas_in_sync
        prior = cfg.prior is not None
        plate = cfg.task == "plate"
        if trimap:
            n_train = len(find_pairs(data, "train"))
            batches = make_trimap_distributed_dataset(data, settings, strategy, start)
        else:
            n_train = len(list_samples(data, "train", prior=prior))
            batches = make_distributed_dataset(data, settings, strategy, start, prior, plate)
        total = settings.total_steps(n_train, replicas)
        iterator = iter(batches)

        def eval_dataset(max_samples: int):
            if trimap:
                return make_trimap_dataset(
                    data,
                    "val",
                    size=settings.crop_size,
                    batch_size=settings.batch_size,
                    repeat=False,
                    max_samples=max_samples,
                )
            if plate:
                return make_plate_eval_dataset(
                    data, "val", multiple=cfg.multiple, max_samples=max_samples
                )
            return make_eval_dataset(
                data, "val", multiple=cfg.multiple, max_samples=max_samples, prior=prior
            )

        writer = tf.summary.create_file_writer(str(run_dir / "tensorboard")) if chief else None
        saver = CheckpointCallback(checkpoint, settings.save_every)
        callbacks: list[keras.callbacks.Callback] = [
            ProgressCallback(total, disable=not (progress and chief))
        ]
        if writer is not None:
            callbacks.append(ScalarCallback(writer, settings.log_every))
        callbacks.append(saver)
        validation = None
        validate = settings.val_every and settings.max_val_samples
        # The trimap network may train without a val split (DUTS has none); the matting model
        # has been checked to have one (model.training.plan.check_data).
        if validate and (not trimap or has_split(data, "val")):
            validation_class = TrimapValidationCallback if trimap else ValidationCallback
            validation = validation_class(
                lambda: eval_dataset(settings.max_val_samples),
                settings.val_every,
                checkpoint,
                writer=writer,
                run_dir=run_dir if chief else None,
            )
            callbacks.append(validation)
        if chief and settings.image_every and settings.image_samples and not trimap:
            callbacks.append(
                ImageCallback(
                    lambda: eval_dataset(settings.image_samples),
                    settings.image_every,
                    run_dir,
                    writer,
                )
            )
        try:
            logs = train_loop(
                model,
                iterator,
                checkpoint.step,
                total,
                strategy=strategy,
                global_batch=settings.batch_size * replicas,
                log_every=settings.log_every,
                callbacks=callbacks,
                stop=stop,
            )
        except tf.errors.OpError as error:
            # A sample that turned out unreadable mid-run: report the file, not TF's stack.
            found = dataset_error_in(error)
            if found is None:
                raise
            raise found from None
        if writer is not None:
            writer.close()
        return TrainResult(
            step=logs["step"],
            checkpoint=saver.last_path if chief else None,
            interrupted_by=stop.signum if stop else None,
            logs=logs,
            best_sad=validation.best if validation and validation.history and not trimap else None,
            validations=validation.history if validation else [],
        )
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
        if checkpoint is not None:
            checkpoint.close()
