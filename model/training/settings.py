"""Training settings (every default in one place) and run folders: names, config.json."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from model.checkpoints import (
    PRETRAINED,
    run_checkpoints,
    trained_runs,
)
from model.images import write_bytes
from model.losses import LossWeights
from model.networks import ModelConfig
from model.networks.config import CONFIG_VERSION

DISTRIBUTE_CHOICES = ("auto", "none", "mirrored", "multiworker")


@dataclass(frozen=True)
class TrainSettings:
    """Every training setting and its default; ``train.py`` flags map one-to-one onto these.

    Attributes
    ----------
    crop_size : int
        Side of the square training crops (pixels); a multiple of the model's ``multiple``.
    augment : bool
        Colour jitter, re-composition onto other backgrounds and re-drawn trimaps.
    max_val_samples : int
        Validation uses the first this many samples of the ``val`` split (sorted names).
    epochs : int
        Length of training in passes over the train split, ``ceil(n_train / global batch)``
        steps each; ignored when ``steps`` is set.
    steps : int or None
        Train until the global step reaches this (a resumed run counts from its saved step).
    batch_size : int
        Crops per replica per step; the global batch is ``batch_size * replicas``.
    lr : float
        Adam learning rate of both G and D (beta_1 = 0.5 as in pix2pix).
    seed : int
        Seeds weight initialisation and, with the start step, the data pipeline.
    mixed_precision : bool
        ``mixed_float16`` compute with dynamic loss scaling (useful on GPUs).
    jit : bool
        XLA-compile the train step.
    distribute : {"auto", "none", "mirrored", "multiworker"}
        See :func:`make_strategy`.
    gan : bool
        False (``--no-gan``) trains the generator alone, without D or the adversarial term.
    alpha_weight, comp_weight, grad_weight, sobel_weight, lap_weight, d_coeff : float
        Weights of the generator loss terms (see ``model.losses``); ``d_coeff`` weighs the
        adversarial term.
    gan_mode : {"lsgan", "nonsaturating"}
    save_every : int
        Save a checkpoint whenever the global step is a multiple of this.
    keep : int
        Regular checkpoints kept (oldest deleted first); ``best/`` keeps one more.
    val_every : int
        Validate when the step is a multiple of this, at step 0 and at the end; 0 disables
        validation (and the best checkpoint).
    image_every : int
        Write a sample strip and TensorBoard image grid every this many steps; 0 disables.
    image_samples : int
        Validation samples shown in each strip (the first ones, always the same).
    log_every : int
        Losses are averaged over windows of this many steps and written to TensorBoard at
        the end of each window.
    init_from : str or None
        Checkpoint whose generator weights a new run starts from
        (``model.training.gan.warm_start``); stored as the resolved path.
    """

    # data
    crop_size: int = 320
    augment: bool = True
    max_val_samples: int = 32
    # optimisation
    epochs: int = 100
    steps: int | None = None
    batch_size: int = 8
    lr: float = 2e-4
    seed: int = 0
    mixed_precision: bool = False
    jit: bool = False
    distribute: str = "auto"
    # losses and GAN
    gan: bool = True
    alpha_weight: float = LossWeights.alpha
    comp_weight: float = LossWeights.composition
    grad_weight: float = LossWeights.gradient
    sobel_weight: float = LossWeights.sobel
    lap_weight: float = LossWeights.laplacian
    d_coeff: float = LossWeights.adversarial
    gan_mode: str = LossWeights.gan_mode
    # checkpoints
    save_every: int = 100
    keep: int = 5
    # logging
    val_every: int = 500
    image_every: int = 100
    image_samples: int = 4
    log_every: int = 10
    init_from: str | None = None

    def __post_init__(self) -> None:
        positive = ("crop_size", "batch_size", "epochs", "save_every", "keep", "log_every")
        non_negative = ("max_val_samples", "val_every", "image_every", "image_samples")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"--{_flag(name)} must be >= 1, not {getattr(self, name)}")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ValueError(f"--{_flag(name)} must be >= 0, not {getattr(self, name)}")
        if self.steps is not None and self.steps < 0:
            raise ValueError(f"--steps must be >= 0, not {self.steps}")
        if not self.lr > 0:
            raise ValueError(f"--lr must be > 0, not {self.lr}")
        if self.distribute not in DISTRIBUTE_CHOICES:
            raise ValueError(f"--distribute must be one of {', '.join(DISTRIBUTE_CHOICES)}")
        self.loss_weights()

    def loss_weights(self) -> LossWeights:
        """The generator loss weights; raises ValueError on a negative weight."""
        return LossWeights(
            alpha=self.alpha_weight,
            composition=self.comp_weight,
            gradient=self.grad_weight,
            sobel=self.sobel_weight,
            laplacian=self.lap_weight,
            adversarial=self.d_coeff,
            gan_mode=self.gan_mode,
        )

    def total_steps(self, train_samples: int, replicas: int) -> int:
        """The global step at which training ends: ``steps``, else ``epochs`` passes."""
        if self.steps is not None:
            return self.steps
        return self.epochs * math.ceil(train_samples / (self.batch_size * replicas))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainSettings:
        """Inverse of :meth:`to_dict`; keys that are not fields (e.g. ``data``) are ignored."""
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


def _flag(name: str) -> str:
    return name.replace("_", "-")


class RunError(ValueError):
    """A run that cannot be started or resumed as asked; the message starts with its path."""


def new_run_name(log_dir: str | os.PathLike, now: datetime | None = None) -> str:
    """A fresh run name ``run-YYYYmmdd-HHMMSS`` (with ``-2``, ``-3``... if it is taken)."""
    base = f"run-{(now or datetime.now()):%Y%m%d-%H%M%S}"
    name, index = base, 1
    while (Path(log_dir) / name).exists():
        index += 1
        name = f"{base}-{index}"
    return name


def check_run_name(name: str) -> None:
    """Refuse names that are not a plain folder name, and the shipped ``pretrained`` run."""
    if name == PRETRAINED:
        raise RunError(
            f"--run {name}: that folder is the shipped snapshot; training never writes it"
        )
    if not name or name in (".", "..") or "/" in name or os.sep in name:
        raise RunError(f"--run {name!r}: must be a plain folder name under --log-dir")


def start_run(
    log_dir: str | os.PathLike,
    name: str,
    cfg: ModelConfig,
    settings: TrainSettings,
    data: str | os.PathLike,
    *,
    write: bool = True,
) -> Path:
    """Create ``log_dir/name`` for a new run and write its ``config.json``.

    Raises
    ------
    RunError
        The name is refused, or the run already holds checkpoints (resume it or pick another
        name). A run folder without checkpoints (one that stopped before its first save) is
        reused.
    """
    check_run_name(name)
    run_dir = Path(log_dir) / name
    refs = run_checkpoints(run_dir)
    if refs:
        raise RunError(
            f"{run_dir}: already holds checkpoints (up to step {refs[-1].step}); pass --resume"
            " to continue it, or --run NAME for a new run"
        )
    if write:
        write_run_config(run_dir, cfg, settings, data)
    return run_dir


def resume_target(log_dir: str | os.PathLike, name: str | None) -> Path:
    """The run folder ``--resume`` continues: ``log_dir/name``, else the newest trained run."""
    if name is None:
        runs = trained_runs(log_dir)
        if not runs:
            raise RunError(f"{log_dir}: no trained run to resume (train one first)")
        return runs[0]
    check_run_name(name)
    run_dir = Path(log_dir) / name
    refs = run_checkpoints(run_dir)
    if not refs:
        raise RunError(f"{run_dir}: no checkpoint to resume from")
    return run_dir


def write_run_config(
    run_dir: Path, cfg: ModelConfig, settings: TrainSettings, data: str | os.PathLike
) -> None:
    """Write ``run_dir/config.json`` atomically (see the module docstring for its fields)."""
    config = {
        "model": cfg.to_dict(),
        "train": {**settings.to_dict(), "data": str(data)},
        "seed": settings.seed,
        "version": CONFIG_VERSION,
    }
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    write_bytes(run_dir / "config.json", text.encode("utf-8"))
