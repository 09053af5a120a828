"""The JSON contract written next to every exported model (``m.onnx`` -> ``m.onnx.json``).

An exported network is only usable if its caller knows what to feed it: which tensor, which
layout, which channels in which range, which sizes. ``scripts/export.py`` writes that down
here, once, and the runners (``model.onnx_runner``, or anyone's own code) read it back.

This module imports only the standard library, so a TensorFlow-free runtime can use it.

Contract (``contract_version`` 1)::

    {
      "contract_version": 1,
      "format": "onnx",                     # keras | savedmodel | onnx | tflite
      "file": "m.onnx",                     # the artifact, relative to this JSON
      "network": "generator",               # generator | saliency (see below)
      "precision": "float32",               # the weights as stored: float32 or float16
      "compute": "float32",                 # what the network computes in (always float32)
      "input":  {"name": "rgb_trimap", "dtype": "float32", "layout": "NHWC",
                 "shape": [null, null, null, 4],
                 "channels": ["red", "green", "blue", "trimap"], "range": [0.0, 1.0],
                 # ... "prior" as a fifth channel (shape [..., 5]) for a generator with one
                 "normalisation": "..."},
      "output": {"name": "alpha", "dtype": "float32", "layout": "NHWC",
                 "shape": [null, null, null, 1], "channels": ["alpha"], "range": [0.0, 1.0],
                 "activation": "sigmoid"},
      "spatial_multiple": 32,               # H and W must be multiples of this
      "size": null,                         # or [H, W] when the export has a fixed size
      "signature": "serving_default",       # savedmodel and tflite only
      "preprocess": "...", "postprocess": "...",
      "source": {"checkpoint": "...", "run": "...", "step": 2400,
                 "sha256": "..."},          # of the checkpoint's files (model.engine)
      "model_config": {...},                # the run's config.json "model" section
      "exported_with": {"tensorflow": "2.21.0", "keras": "3.15.1", ...}
    }

``precision`` float16 (``scripts/export.py --fp16``): TFLite stores the weights as float16 and
dequantises them; ONNX stores each float32 weight tensor as float16 followed by a ``Cast`` to
float32, which onnxruntime folds when it opens the session. Either way only the weights are
rounded (relative error <= 2**-11) and the computation stays float32.

A plate generator (``ModelConfig.task == "plate"``) takes ``rgb_plate``: six channels, the
photo's RGB then the clean plate's, and its postprocess has no trimap to clamp to. The saliency
network (``"network": "saliency"``, U²-Net-p) takes ``image``, ImageNet-normalised RGB at a
fixed 320 x 320, and gives ``saliency``, its fused map; its ``source`` names the weights file
and its ``model_config`` is ``{"name": "u2netp", ...}``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

CONTRACT_VERSION = 1
FORMATS = ("keras", "savedmodel", "onnx", "tflite")
INPUT_NAME = "rgb_trimap"
OUTPUT_NAME = "alpha"
SIGNATURE = "serving_default"
PLATE_INPUT_NAME = "rgb_plate"
SALIENCY_INPUT_NAME = "image"
SALIENCY_OUTPUT_NAME = "saliency"
INPUT_CHANNELS = ("red", "green", "blue", "trimap")
PLATE_CHANNELS = ("red", "green", "blue", "plate red", "plate green", "plate blue")
PRIOR_CHANNEL = "prior"
"""Fifth input channel of a generator with a prior (``ModelConfig.prior``)."""
NORMALISATION = (
    "red, green, blue: sRGB values divided by 255 (no mean or std); trimap: 0 background,"
    " 0.5 unknown, 1 foreground (the 8-bit levels 0, 128, 255); prior, when present: the"
    " closed-form matte in [0, 1] of the same pixels (model.classical.closed_form_prior)"
)
PREPROCESS = (
    "pad height and width up to multiples of spatial_multiple by reflection at the bottom and"
    " right, run, crop the output back"
)
POSTPROCESS = (
    "the output is not clamped to the trimap: set alpha to 0 where the trimap is 0 and to 1"
    " where it is 1"
)
PLATE_NORMALISATION = (
    "red, green, blue: the photo's sRGB values divided by 255 (no mean or std); plate red,"
    " green, blue: the clean background plate, likewise, at the photo's size and aligned to it"
    " (model.plate_inference.align_plate); the network computes |photo - plate| itself"
)
PLATE_POSTPROCESS = "none: alpha is final (no trimap to clamp to); clip to [0, 1] if resampled"
SALIENCY_SIZE = (320, 320)
"""U²-Net-p's input size: what it was trained at; its resize layers are built for it."""
SALIENCY_NORMALISATION = (
    "x = (rgb / max(rgb) - mean) / std per channel, rgb the photo in [0, 1], max its largest"
    " value over all pixels and channels (left unscaled if 0), ImageNet mean (0.485, 0.456,"
    " 0.406) and std (0.229, 0.224, 0.225) (model.networks.saliency.normalize_input)"
)
SALIENCY_PREPROCESS = "resize the RGB photo to 320 x 320 (Lanczos), then normalise"
SALIENCY_POSTPROCESS = (
    "the output is U²-Net-p's first (fused, d0) map, already through a sigmoid; the six side"
    " maps are not exported. Stretch it to [0, 1] by its own minimum and maximum, then resize"
    " it back to the photo's size (model.auto_trimap.saliency_map)"
)


class ContractError(ValueError):
    """A missing, unreadable or inconsistent export contract; the message names the file."""


class ExportError(ValueError):
    """An export that cannot be made as asked; the message names the path or the option."""


def contract_path(artifact: str | os.PathLike) -> Path:
    """Where the contract of ``artifact`` lives: the artifact's path plus ``.json``."""
    return Path(f"{artifact}.json")


def check_request(
    fmt: str,
    out: Path,
    *,
    size: tuple[int, int] | None,
    fp16: bool,
    force: bool,
    multiple: int | None = None,
) -> None:
    """Raise ExportError if the export cannot be made as asked.

    Needs no TensorFlow, so a command can answer before paying for its import; the size is
    checked against ``multiple`` when the architecture's is given.
    """
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if fmt == "keras" and out.suffix != ".keras":
        raise ExportError(f"{out}: a Keras model file must end in .keras")
    if fmt == "keras" and size:
        raise ExportError("--size: a .keras model always runs at any size; drop --size")
    if fp16 and fmt not in ("tflite", "onnx"):
        raise ExportError("--fp16: only the tflite and onnx formats store float16 weights")
    if size and multiple and any(side % multiple for side in size):
        raise ExportError(
            f"--size {size[0]}x{size[1]}: height and width must be multiples of {multiple}"
        )
    if (out.exists() or contract_path(out).exists()) and not force:
        raise ExportError(f"{out}: already exists (use --force to replace it)")


def make_contract(
    fmt: str,
    artifact: str | os.PathLike,
    *,
    multiple: int,
    size: tuple[int, int] | None,
    model_config: dict[str, Any],
    source: dict[str, Any] | None,
    precision: str = "float32",
    exported_with: dict[str, Any] | None = None,
    prior: bool = False,
    task: str = "matting",
) -> dict[str, Any]:
    """The contract of one generator export (see the module docstring for the fields).

    ``prior``: the generator takes a fifth input channel, the classical prior. ``task``:
    ``"matting"`` (RGB ++ trimap [++ prior]) or ``"plate"`` (RGB ++ plate RGB).
    """
    if task == "plate":
        channels = list(PLATE_CHANNELS)
    else:
        channels = [*INPUT_CHANNELS, PRIOR_CHANNEL] if prior else list(INPUT_CHANNELS)
    batch = 1 if size else None
    height, width = size if size else (None, None)
    contract = {
        "contract_version": CONTRACT_VERSION,
        "format": fmt,
        "file": Path(artifact).name,
        "network": "generator",
        "precision": precision,
        "compute": "float32",
        "input": {
            "name": PLATE_INPUT_NAME if task == "plate" else INPUT_NAME,
            "dtype": "float32",
            "layout": "NHWC",
            "shape": [batch, height, width, len(channels)],
            "channels": channels,
            "range": [0.0, 1.0],
            "normalisation": PLATE_NORMALISATION if task == "plate" else NORMALISATION,
        },
        "output": {
            "name": OUTPUT_NAME,
            "dtype": "float32",
            "layout": "NHWC",
            "shape": [batch, height, width, 1],
            "channels": ["alpha"],
            "range": [0.0, 1.0],
            "activation": "sigmoid",
        },
        "spatial_multiple": multiple,
        "size": list(size) if size else None,
        "preprocess": PREPROCESS,
        "postprocess": PLATE_POSTPROCESS if task == "plate" else POSTPROCESS,
        "source": source,
        "model_config": model_config,
        "exported_with": exported_with or {},
    }
    if fmt in ("savedmodel", "tflite"):
        contract["signature"] = SIGNATURE
    return contract


def make_saliency_contract(
    fmt: str,
    artifact: str | os.PathLike,
    *,
    source: dict[str, Any] | None,
    precision: str = "float32",
    exported_with: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The contract of one U²-Net-p export: fixed 320 x 320, any batch, one output map."""
    height, width = SALIENCY_SIZE
    contract = {
        "contract_version": CONTRACT_VERSION,
        "format": fmt,
        "file": Path(artifact).name,
        "network": "saliency",
        "precision": precision,
        "compute": "float32",
        "input": {
            "name": SALIENCY_INPUT_NAME,
            "dtype": "float32",
            "layout": "NHWC",
            "shape": [None, height, width, 3],
            "channels": ["red", "green", "blue"],
            # (0 - 0.485) / 0.229 and (1 - 0.406) / 0.225: the extremes of the normalisation.
            "range": [-2.2, 2.7],
            "normalisation": SALIENCY_NORMALISATION,
        },
        "output": {
            "name": SALIENCY_OUTPUT_NAME,
            "dtype": "float32",
            "layout": "NHWC",
            "shape": [None, height, width, 1],
            "channels": ["saliency"],
            "range": [0.0, 1.0],
            "activation": "sigmoid",
        },
        # The size is fixed, so no multiple constrains it further.
        "spatial_multiple": 1,
        "size": [height, width],
        "preprocess": SALIENCY_PREPROCESS,
        "postprocess": SALIENCY_POSTPROCESS,
        "source": source,
        "model_config": {"name": "u2netp", "height": height, "width": width},
        "exported_with": exported_with or {},
    }
    if fmt in ("savedmodel", "tflite"):
        contract["signature"] = SIGNATURE
    return contract


def read_contract(artifact: str | os.PathLike, fmt: str | None = None) -> dict[str, Any]:
    """Read and check the contract next to ``artifact``.

    Parameters
    ----------
    artifact : path
        The exported model (``m.onnx``); its contract is ``m.onnx.json``.
    fmt : str, optional
        The format the caller can run; another one is an error.

    Raises
    ------
    ContractError
        No contract, not JSON, another contract version or format, or missing fields.
    """
    path = contract_path(artifact)
    try:
        contract = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContractError(
            f"{path}: no export contract beside {Path(artifact).name}"
            " (scripts/export.py writes one with every export)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ContractError(f"{path}: unreadable export contract ({error})") from None
    if not isinstance(contract, dict):
        raise ContractError(f"{path}: an export contract is a JSON object")
    version = contract.get("contract_version")
    if version != CONTRACT_VERSION:
        raise ContractError(
            f"{path}: contract_version {version!r}, this code reads {CONTRACT_VERSION}"
        )
    if fmt is not None and contract.get("format") != fmt:
        raise ContractError(f"{path}: describes a {contract.get('format')!r} export, not {fmt!r}")
    try:
        names = contract["input"]["name"], contract["output"]["name"]
        multiple = contract["spatial_multiple"]
        size = contract["size"]
    except (KeyError, TypeError) as error:
        raise ContractError(f"{path}: missing field {error}") from None
    if not all(isinstance(name, str) for name in names):
        raise ContractError(f"{path}: input and output names must be strings")
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        raise ContractError(f"{path}: spatial_multiple must be a positive integer")
    if size is not None and not (
        isinstance(size, list) and len(size) == 2 and all(_is_multiple(v, multiple) for v in size)
    ):
        raise ContractError(f"{path}: size must be null or [H, W], multiples of {multiple}")
    return contract


def _is_multiple(value: Any, multiple: int) -> bool:
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and value > 0
        and not value % multiple
    )
