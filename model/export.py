"""Export the shipped networks as .keras, TensorFlow SavedModel, ONNX or TFLite.

Networks: the matting generator (RGB ++ trimap [++ prior] -> alpha), the plate generator
(``ModelConfig.task == "plate"``: RGB ++ plate RGB -> alpha), both restored from a checkpoint
(:func:`export_generator`), and U²-Net-p saliency from its Keras weights file, fixed at
320 x 320 and cut to its fused map (:func:`load_saliency`, :func:`export_saliency`).

Every export writes its artifact and, next to it, the JSON contract of
``model.export_contract`` (``m.onnx`` -> ``m.onnx.json``). Both are written to a temporary name
beside the target and renamed into place, so a failed export leaves nothing half-written.

Dynamic sizes
-------------
Keras' bilinear ``UpSampling2D`` computes its output size with Python comparisons on the input
shape, so it can only be traced at a static height and width (``model.inference.Matter``
retraces per size for that reason). For the graph formats (SavedModel, ONNX, TFLite) the
generator is therefore cloned with :class:`DynamicUpSampling2D` in its place: the same
``tf.image.resize`` call with the size read from ``tf.shape`` at run time, so one graph serves
every size and batch. With ``size`` the graph is traced at that one (batch 1, H, W) instead,
for runtimes and delegates that need static shapes. The ``.keras`` file holds the Keras model
itself, which runs at any size.

Routes
------
* ``keras``: ``Model.save``.
* ``savedmodel``: ``keras.export.ExportArchive`` with one ``serving_default`` signature,
  ``rgb_trimap -> {"alpha": ...}`` (``rgb_plate -> {"alpha"}`` for a plate generator,
  ``image -> {"saliency"}`` for U²-Net-p).
* ``onnx``: ``Model.export(format="onnx")``, which runs tf2onnx on the traced graph (batch norm
  is folded into the convolutions); the output is then renamed ``alpha`` (or ``saliency``) and
  the free dimensions ``batch``, ``height``, ``width``. ``fp16`` stores every float32 weight
  tensor (initializer) as float16 followed by a ``Cast`` to float32 (:func:`store_float16`):
  half the file, and onnxruntime folds the casts away when it opens the session, so the
  network still computes in float32 and only the weights are rounded.
* ``tflite``: the SavedModel above, converted by ``tf.lite.TFLiteConverter.from_saved_model``
  (converting the concrete function directly keeps the variables as resource reads, which the
  interpreter then returns as NaN). ``fp16`` stores the weights as float16.

Example
-------
>>> generator, config, ref = load_generator("-1", log_dir="log")
>>> export_generator(generator, config, "onnx", "m.onnx", source=checkpoint_source(ref))
>>> export_saliency(load_saliency(), "tflite", "u2netp.tflite", source=weights_source(...))
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from model.auto_trimap import DEFAULT_WEIGHTS, load_saliency_model
from model.checkpoints import (
    CheckpointError,
    CheckpointRef,
    read_run_config,
    resolve_checkpoint,
    restore_generator,
)
from model.engine import checkpoint_digest
from model.export_contract import (
    INPUT_NAME,
    OUTPUT_NAME,
    PLATE_INPUT_NAME,
    SALIENCY_INPUT_NAME,
    SALIENCY_OUTPUT_NAME,
    SIGNATURE,
    check_request,
    contract_path,
    make_contract,
    make_saliency_contract,
)
from model.images import atomic_path

ONNX_OPSET = 17
"""Resize with half-pixel coordinates exists since opset 11; 17 is what onnxruntime >= 1.11 runs."""


class DynamicUpSampling2D(keras.layers.Layer):
    """``UpSampling2D`` whose output size is computed in the graph, so H and W stay dynamic.

    ``(B, h, w, c) -> (B, h * size[0], w * size[1], c)`` through the same
    ``tf.image.resize(..., method=interpolation)`` that Keras' TensorFlow backend calls, so the
    results are identical; only the size comes from ``tf.shape`` instead of Python ints.
    """

    def __init__(self, size=(2, 2), interpolation="bilinear", **kwargs):
        super().__init__(**kwargs)
        self.size = tuple(size)
        self.interpolation = interpolation

    def call(self, inputs):
        hw = tf.shape(inputs)[1:3]  # (2,) int32: h, w
        return tf.image.resize(inputs, hw * tf.constant(self.size), method=self.interpolation)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        height = None if height is None else height * self.size[0]
        width = None if width is None else width * self.size[1]
        return batch, height, width, channels

    def get_config(self):
        return {**super().get_config(), "size": self.size, "interpolation": self.interpolation}


def load_generator(checkpoint: str | int = "-1", log_dir: str | os.PathLike = "log"):
    """Resolve ``checkpoint`` as eval.py does and restore its generator.

    Returns
    -------
    (keras.Model, ModelConfig, CheckpointRef)

    Raises
    ------
    CheckpointError
        As ``model.inference.Matter.load``: a one-line message naming the file.
    """
    ref = resolve_checkpoint(checkpoint, log_dir)
    config, _ = read_run_config(ref.run_dir)
    if config.task == "trimap":
        # The export contract describes alpha generators; a trimap network has 3-class logits.
        raise CheckpointError(f"{ref.run_dir}: a trimap network; only alpha generators export")
    return restore_generator(ref, config), config, ref


def checkpoint_source(ref: CheckpointRef) -> dict[str, Any]:
    """The contract's ``source``: which checkpoint the weights came from, and the SHA-256 of
    its files (``model.engine.checkpoint_digest``), by which a stale export is recognised."""
    return {
        "checkpoint": str(ref.path),
        "run": str(ref.run_dir),
        "step": ref.step,
        "sha256": checkpoint_digest(ref.path),
    }


def serving_model(generator: keras.Model) -> keras.Model:
    """A clone of ``generator`` with :class:`DynamicUpSampling2D` in place of ``UpSampling2D``.

    The clone shares no variables with ``generator``; it gets a copy of its weights.
    """

    def clone_layer(layer):
        if isinstance(layer, keras.layers.UpSampling2D):
            return DynamicUpSampling2D(layer.size, layer.interpolation, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    clone = keras.models.clone_model(generator, clone_function=clone_layer)
    clone.set_weights(generator.get_weights())
    return clone


def _input_spec(model: keras.Model, size: tuple[int, int] | None, name: str) -> tf.TensorSpec:
    """(1, H, W, C) for a fixed ``size``, else the model's own (None, None or its size, C)."""
    shape = (1, *size, model.input_shape[-1]) if size else model.input_shape
    return tf.TensorSpec(shape, tf.float32, name=name)


@contextlib.contextmanager
def _staged(out: Path) -> Iterator[Path]:
    """Yield ``tmpdir/<out.name>`` in a private folder beside ``out``; move it onto ``out`` after.

    Works for files and folders alike, and keeps the name's suffix (``Model.save`` insists on
    ``.keras``). An existing ``out`` is replaced only once the new one is complete.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield staging / out.name
        staged = staging / out.name
        if staged.is_dir():
            # mkdtemp made the folder tree private; an export is meant to be read by anyone.
            for folder in [staged, *(p for p in staged.rglob("*") if p.is_dir())]:
                folder.chmod(0o755)
            if out.exists():
                shutil.rmtree(out)
        else:
            staged.chmod(0o644)
        os.replace(staged, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _save_keras(generator: keras.Model, target: Path) -> None:
    generator.save(target)


def _save_savedmodel(generator: keras.Model, target: Path, size, names) -> None:
    input_name, output_name = names
    model = serving_model(generator)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        SIGNATURE,
        lambda batch: {output_name: model(batch, training=False)},
        input_signature=[_input_spec(generator, size, input_name)],
    )
    archive.write_out(str(target), verbose=False)


def _save_onnx(generator: keras.Model, target: Path, size, names, fp16: bool) -> None:
    import onnx

    input_name, output_name = names

    model = serving_model(generator)
    # tf2onnx logs every conversion step at INFO and benign fallbacks at WARNING.
    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            # Keras' numpy-2 shim for tf2onnx probes np.object, which numpy warns about.
            warnings.filterwarnings("ignore", "In the future `np.object`", FutureWarning)
            model.export(
                str(target),
                format="onnx",
                verbose=False,
                input_signature=[_input_spec(generator, size, input_name)],
                opset_version=ONNX_OPSET,
            )
    finally:
        logger.setLevel(level)
    graph_model = onnx.load(str(target))
    _rename_output(graph_model.graph, output_name)
    _name_dimensions(graph_model.graph)
    if fp16:
        store_float16(graph_model.graph)
    onnx.checker.check_model(graph_model)
    onnx.save(graph_model, str(target))


def _rename_output(graph, name: str) -> None:
    """Give the single graph output ``name`` (tf2onnx calls it after a TF op, ``Identity:0``)."""
    (output,) = graph.output
    old = output.name
    for node in graph.node:
        node.output[:] = [name if value == old else value for value in node.output]
        node.input[:] = [name if value == old else value for value in node.input]
    output.name = name


FP16_MIN_ELEMENTS = 16
"""Smaller float32 initializers (scalars such as epsilons, shape-like constants) stay float32:
they weigh nothing, and rounding them would change arithmetic rather than weights."""

FP16_MAX = 65504.0
"""Largest finite float16; a tensor with a larger magnitude stays float32."""


def store_float16(graph) -> int:
    """Store each float32 weight tensor of ``graph`` as float16, cast back to float32 in-graph.

    An initializer ``w`` (float32, at least :data:`FP16_MIN_ELEMENTS` elements, every value
    finite with magnitude <= :data:`FP16_MAX`) becomes ``w__fp16`` (float16) and a node
    ``Cast(w__fp16, to=FLOAT) -> w`` at the head of the graph, so every consumer still reads a
    float32 ``w``: w' = float32(float16(w)), relative error <= 2**-11 per weight (subnormals
    below 6.1e-5 lose more, absolutely at most 3e-8). Edits ``graph`` in place.

    Returns
    -------
    int : how many initializers were converted.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph_inputs = {value.name for value in graph.input}
    kept, casts = [], []
    for tensor in graph.initializer:
        values = numpy_helper.to_array(tensor) if tensor.data_type == TensorProto.FLOAT else None
        if (
            values is None
            or values.size < FP16_MIN_ELEMENTS
            or tensor.name in graph_inputs  # an overridable input must keep its float32 type
            or not np.all(np.abs(values) <= FP16_MAX)  # also False for NaN and inf
        ):
            kept.append(tensor)
            continue
        half = f"{tensor.name}__fp16"
        kept.append(numpy_helper.from_array(values.astype(np.float16), name=half))
        casts.append(helper.make_node("Cast", [half], [tensor.name], to=TensorProto.FLOAT))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    # Casts read only initializers, so placing them first keeps the nodes topologically sorted.
    nodes = [*casts, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    return len(casts)


def _name_dimensions(graph) -> None:
    """Call the free input and output dimensions batch, height, width (tf2onnx: ``unk__123``)."""
    for value in [*graph.input, *graph.output]:
        dims = value.type.tensor_type.shape.dim  # NHWC: the channel count is always fixed
        for dim, label in zip(dims[:3], ("batch", "height", "width"), strict=True):
            if not dim.HasField("dim_value"):
                dim.dim_param = label


def _save_tflite(generator: keras.Model, target: Path, size, names, fp16: bool) -> None:
    with tempfile.TemporaryDirectory(prefix=".savedmodel.", dir=target.parent) as folder:
        saved = Path(folder) / "savedmodel"
        _save_savedmodel(generator, saved, size, names)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved), [SIGNATURE])
        if fp16:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        target.write_bytes(converter.convert())


def _versions(fmt: str) -> dict[str, Any]:
    versions: dict[str, Any] = {"tensorflow": tf.__version__, "keras": keras.__version__}
    if fmt == "onnx":
        import tf2onnx

        versions.update(tf2onnx=tf2onnx.__version__, onnx_opset=ONNX_OPSET)
    return versions


def export_generator(
    generator: keras.Model,
    config,
    fmt: str,
    out: str | os.PathLike,
    *,
    size: tuple[int, int] | None = None,
    fp16: bool = False,
    source: dict[str, Any] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Write ``generator`` in format ``fmt`` to ``out`` and its contract to ``out.json``.

    Parameters
    ----------
    generator : keras.Model
        ``(B, H, W, C) -> (B, H, W, 1)`` from ``model.networks.build_generator``; C is 4, 5
        with a prior, or 6 for a plate generator (RGB ++ plate RGB).
    config : ModelConfig
        Its architecture (the contract records it and its spatial multiple).
    fmt : {"keras", "savedmodel", "onnx", "tflite"}
    out : path
        A file (a folder for ``savedmodel``); ``.keras`` files must end in ``.keras``.
    size : (H, W), optional
        Trace at this one input size (batch 1); None keeps batch, H and W dynamic.
    fp16 : bool
        TFLite and ONNX: store the weights as float16 (computation stays float32).
    source : dict, optional
        Where the weights came from (:func:`checkpoint_source`).
    force : bool
        Replace an existing ``out``.

    Returns
    -------
    dict : the contract written to ``out.json``.

    Raises
    ------
    ExportError
        An impossible request (see :func:`check_request`).
    """
    out = Path(out)
    check_request(fmt, out, size=size, fp16=fp16, multiple=config.multiple, force=force)
    plate = config.task == "plate"
    names = (PLATE_INPUT_NAME if plate else INPUT_NAME, OUTPUT_NAME)
    _write_artifact(generator, fmt, out, size, fp16, names)
    contract = make_contract(
        fmt,
        out,
        multiple=config.multiple,
        size=size,
        model_config=config.to_dict(),
        source=source,
        precision="float16" if fp16 else "float32",
        exported_with=_versions(fmt),
        prior=config.prior is not None,
        task=config.task,
    )
    _write_contract(out, contract)
    return contract


def _write_artifact(model: keras.Model, fmt: str, out: Path, size, fp16: bool, names) -> None:
    """``model`` in format ``fmt`` at ``out``, staged and renamed into place."""
    with _staged(out) as target:
        if fmt == "keras":
            _save_keras(model, target)
        elif fmt == "savedmodel":
            _save_savedmodel(model, target, size, names)
        elif fmt == "onnx":
            _save_onnx(model, target, size, names, fp16)
        else:
            _save_tflite(model, target, size, names, fp16)


def _write_contract(out: Path, contract: dict[str, Any]) -> None:
    with atomic_path(contract_path(out)) as temp:
        temp.write_text(json.dumps(contract, indent=2) + "\n", encoding="utf-8")


def load_saliency(weights: str | os.PathLike = DEFAULT_WEIGHTS) -> keras.Model:
    """U²-Net-p at 320 x 320 with ``weights``, cut to its first output, the fused map.

    Returns
    -------
    keras.Model
        ``(B, 320, 320, 3) float32 -> (B, 320, 320, 1) float32`` in [0, 1]: ``d0`` of
        ``model.networks.saliency.build_u2netp``. Its input is ``normalize_input``'s.

    Raises
    ------
    SaliencyWeightsError
        As ``model.auto_trimap.load_saliency_model``: one line naming the file.
    """
    network = load_saliency_model(weights)
    # The six side maps only supervise training; every caller (rembg, saliency_map) reads d0.
    return keras.Model(network.input, network.outputs[0], name="u2netp_fused")


def export_saliency(
    network: keras.Model,
    fmt: str,
    out: str | os.PathLike,
    *,
    fp16: bool = False,
    source: dict[str, Any] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Write the fused U²-Net-p of :func:`load_saliency` as ``fmt`` to ``out``, and its contract.

    The input is fixed at 320 x 320 (the network's resize layers are built for it); the batch
    stays dynamic. Parameters, return value and errors as :func:`export_generator`.
    """
    out = Path(out)
    check_request(fmt, out, size=None, fp16=fp16, force=force)
    _write_artifact(network, fmt, out, None, fp16, (SALIENCY_INPUT_NAME, SALIENCY_OUTPUT_NAME))
    contract = make_saliency_contract(
        fmt,
        out,
        source=source,
        precision="float16" if fp16 else "float32",
        exported_with=_versions(fmt),
    )
    _write_contract(out, contract)
    return contract


def weights_source(weights: str | os.PathLike) -> dict[str, Any]:
    """The contract's ``source`` for a weights file: its path and SHA-256."""
    digest = hashlib.sha256(Path(weights).read_bytes()).hexdigest()
    return {"weights": str(weights), "sha256": digest}
