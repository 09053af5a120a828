"""The network architecture as data: :class:`ModelConfig` is stored in a run's config.json."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from model.classical import PRIORS

TRAINING_PRIOR = PRIORS[0]
"""The prior ``train.py`` gives a new run. ``ModelConfig.prior`` itself defaults to None, which
is what a ``config.json`` written before priors existed (no ``prior`` key) describes."""

ENCODERS = ("unet", "mobilenetv2")
NORMS = ("batch", "group", "none")
TASKS = ("matting", "plate", "trimap")
MOBILENET_MULTIPLE = 32

CONFIG_VERSION = 2
"""Version of the config layout, written as ``"version"`` both at the top of ``config.json``
and inside its ``"model"`` section (an exported ONNX contract carries the section alone).

Version 2 renamed the trimap-conditioned matting generator's task from ``"trimap"`` to
``"matting"`` and gave ``"trimap"`` to the 3-class trimap network. A model section without a
``"version"`` key, or with version 1, predates that: its ``"trimap"`` (or absent) task is read
as ``"matting"`` (see :meth:`ModelConfig.from_dict`)."""

LEGACY_TASKS = {"trimap": "matting"}
"""Task names of version-1 (and unversioned) configs that version 2 calls differently."""


def section_task(section: dict[str, Any]) -> str:
    """The task a config.json ``"model"`` section describes, after the version-1 migration
    (:meth:`ModelConfig.from_dict`), without validating the rest of the section."""
    task = section.get("task", "trimap")
    version = section.get("version", 1)
    if isinstance(version, int) and not isinstance(version, bool) and version >= 2:
        return task
    return LEGACY_TASKS.get(task, task)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the generator and the discriminator; stored in ``config.json``.

    Attributes
    ----------
    encoder : {"unet", "mobilenetv2"}
        ``"unet"`` is a plain U-Net; ``"mobilenetv2"`` uses ``keras.applications.MobileNetV2``
        as encoder (``depth`` is then ignored: its features go down to stride 32).
    base_filters : int
        Channels at full resolution; level ``l`` of the U-Net has ``base_filters * 2**l``.
    depth : int
        Number of 2x downsamplings of the U-Net encoder.
    norm : {"batch", "group", "none"}
        Normalisation after each convolution (group norm uses up to 8 groups).
    disc_filters : int
        Channels of the first discriminator convolution (doubling per layer, capped at 8x).
    disc_layers : int
        Number of stride-2 discriminator convolutions; the logits have stride ``2**disc_layers``
        (pix2pix ``n_layers``: 3 gives the 70x70 PatchGAN with output H/8 x W/8).
    encoder_weights : {"imagenet", None}
        Initial MobileNetV2 weights (only for ``encoder="mobilenetv2"``).
    prior : {None, "closed-form"}
        Classical matte given to the generator as a fifth input channel, which it learns to
        correct (``model.classical.closed_form_prior``); None for RGB + trimap only.
    task : {"matting", "plate", "trimap"}
        What the network is. ``"matting"``: image + trimap (+ prior) -> alpha
        (``model.networks.generator``); ``"plate"``: image + clean background plate -> alpha
        (``model.networks.plate``; no prior, U-Net encoder only); ``"trimap"``: image alone ->
        3-class trimap logits (``model.networks.trimap_net``; no prior, no discriminator).
    previous_alpha : bool
        Plate task only: the generator also sees the previous video frame's alpha as a seventh
        input channel (temporal consistency, ``model.training.temporal_plate``).
    """

    encoder: str = "unet"
    base_filters: int = 32
    depth: int = 4
    norm: str = "batch"
    disc_filters: int = 64
    disc_layers: int = 3
    encoder_weights: str | None = "imagenet"
    prior: str | None = None
    task: str = "matting"
    previous_alpha: bool = False

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.task == "plate" and (self.prior or self.encoder != "unet"):
            raise ValueError("task 'plate' needs prior None and encoder 'unet'")
        if self.task == "trimap" and self.prior:
            raise ValueError("task 'trimap' needs prior None (it sees the image alone)")
        if self.previous_alpha and self.task != "plate":
            raise ValueError("previous_alpha needs task 'plate'")
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {self.encoder!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if self.prior not in (None, *PRIORS):
            raise ValueError(f"prior must be None or one of {PRIORS}, got {self.prior!r}")
        if self.encoder_weights not in ("imagenet", None):
            raise ValueError(
                f"encoder_weights must be 'imagenet' or None, got {self.encoder_weights!r}"
            )
        for name in ("base_filters", "depth", "disc_filters", "disc_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    @property
    def multiple(self) -> int:
        """Input height and width of the generator must be multiples of this."""
        return MOBILENET_MULTIPLE if self.encoder == "mobilenetv2" else 2**self.depth

    @property
    def input_channels(self) -> int:
        """Generator input channels: RGB and trimap (and the prior), RGB and plate RGB (and the
        previous frame's alpha), or RGB alone for the trimap network."""
        if self.task == "plate":
            return 7 if self.previous_alpha else 6
        if self.task == "trimap":
            return 3
        return 5 if self.prior else 4

    @property
    def disc_stride(self) -> int:
        """Discriminator output (B, H/s, W/s, 1) for s = ``disc_stride``."""
        return 2**self.disc_layers

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict of all fields, plus ``"version": CONFIG_VERSION``."""
        return {**dataclasses.asdict(self), "version": CONFIG_VERSION}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; missing keys take their defaults.

        A section without ``"version"`` (or with version 1) is migrated first: its task, absent
        or ``"trimap"``, becomes ``"matting"`` (:data:`LEGACY_TASKS`), because before version 2
        ``"trimap"`` named the trimap-conditioned matting generator.

        Raises
        ------
        ValueError
            On keys that are not fields (listed in the message), a version newer than
            :data:`CONFIG_VERSION`, or invalid values.
        """
        data = dict(data)
        version = data.pop("version", 1)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(f"version must be a positive integer, got {version!r}")
        if version > CONFIG_VERSION:
            raise ValueError(
                f"version {version} is newer than this code understands ({CONFIG_VERSION});"
                " update the project"
            )
        if version < 2:
            data["task"] = section_task(data)
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown model config keys: {', '.join(unknown)} "
                f"(expected some of: {', '.join(sorted(known))})"
            )
        return cls(**data)
