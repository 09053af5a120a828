"""Run an exported generator with onnxruntime, without TensorFlow.

Imports only numpy, onnxruntime and the standard library (``model.export_contract``,
``model.checkpoints``; ``model.networks.config`` for :func:`load_for_matting`), so a
server or a command that only needs alpha mattes starts in a fraction of TensorFlow's time and
memory. The ``.onnx`` file comes from ``scripts/export.py --format onnx`` with its contract
``m.onnx.json`` beside it; the contract says the tensor names, the spatial multiple and any
fixed size, and this class checks every batch against it.

Example
-------
>>> network = OnnxGenerator("m.onnx")
>>> batch = np.zeros((1, 384, 384, 4), np.float32)   # RGB in [0, 1] ++ trimap {0, 0.5, 1}
...                                                   # (++ prior: 5 channels, see .channels)
>>> alpha = network(batch)                            # (1, 384, 384, 1) float32 in [0, 1]
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime

from model.checkpoints import CheckpointError, CheckpointRef
from model.export_contract import ContractError, contract_path, read_contract


class OnnxGenerator:
    """An exported generator: ``(B, H, W, C) float32 -> (B, H, W, 1) float32`` alpha.

    Any one-input, one-output export runs here, its contract checked: also the plate
    generator (C = 6) and U²-Net-p saliency (C = 3, fixed 320 x 320, output its fused map).

    Parameters
    ----------
    path : path
        The ``.onnx`` file; its contract is ``path + ".json"``.
    threads : int, optional
        onnxruntime's intra-op threads; None lets it use every core.

    Attributes
    ----------
    contract : dict
        The export contract (``model.export_contract``).
    channels : int
        C: 4 (RGB, trimap), 5 with a prior, 6 for a plate generator, 3 for saliency (the
        contract's input channels).
    multiple : int
        Input height and width must be multiples of this.
    size : (H, W) or None
        The one input size of a fixed-size export.
    device : str
        Where it runs, for start lines: ``"CPU"`` (onnxruntime's CPU execution provider).
    engine : str
        ``"onnxruntime"``, for start lines (``model.engine.describe``).

    Raises
    ------
    ContractError
        No such file, no usable contract, a file onnxruntime cannot load, or a model whose
        input and output names differ from the contract's; one line naming the file.
    """

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise ContractError(f"{self.path}: no such file")
        self.contract: dict[str, Any] = read_contract(self.path, "onnx")
        self.multiple: int = self.contract["spatial_multiple"]
        self.device = "CPU"
        self.engine = "onnxruntime"
        self.channels: int = len(self.contract["input"].get("channels") or ()) or 4
        size = self.contract["size"]
        self.size: tuple[int, int] | None = tuple(size) if size else None
        self._input = self.contract["input"]["name"]
        self._output = self.contract["output"]["name"]
        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self._session = onnxruntime.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph/... types
            lines = str(error).strip().splitlines()
            raise ContractError(
                f"{self.path}: onnxruntime cannot load it ({lines[0] if lines else error!r})"
            ) from None
        inputs = [node.name for node in self._session.get_inputs()]
        outputs = [node.name for node in self._session.get_outputs()]
        if inputs != [self._input] or outputs != [self._output]:
            raise ContractError(
                f"{self.path}: the model's inputs {inputs} and outputs {outputs} differ from its"
                f" contract's {self._input!r} -> {self._output!r}"
            )

    def check_batch(self, batch: np.ndarray) -> None:
        """Raise ValueError unless ``batch`` is what the contract accepts."""
        if batch.ndim != 4 or batch.shape[3] != self.channels:
            raise ValueError(f"batch must be (B, H, W, {self.channels}), got shape {batch.shape}")
        height, width = batch.shape[1:3]
        if self.size is not None and (height, width) != self.size:
            raise ValueError(
                f"{self.path.name} was exported for {self.size[0]}x{self.size[1]} inputs,"
                f" got {height}x{width}"
            )
        if height % self.multiple or width % self.multiple:
            raise ValueError(
                f"batch height and width must be multiples of {self.multiple}, got {height}x{width}"
            )

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Alpha for a network-input batch (``model.tiling.network_input`` builds one).

        Parameters
        ----------
        batch : ndarray, float32, shape (B, H, W, C)
            RGB in [0, 1], the trimap in {0, 0.5, 1} and, for C = 5, the prior in [0, 1]; H and
            W multiples of ``multiple``.

        Returns
        -------
        ndarray, float32, shape (B, H, W, 1), values in [0, 1]; not clamped to the trimap.
        """
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        self.check_batch(batch)
        (alpha,) = self._session.run([self._output], {self._input: batch})
        return alpha


def load_for_matting(path: str | os.PathLike) -> tuple[OnnxGenerator, Any, CheckpointRef]:
    """The generator, its ``ModelConfig`` and a ``CheckpointRef`` for ``model.inference.Matter``.

    The config comes from the contract's ``model_config``; the ref names the ``.onnx`` file,
    with the step of the checkpoint it was exported from (0 if the contract does not say).

    Raises
    ------
    CheckpointError
        Everything :class:`OnnxGenerator` raises as ContractError, a contract without a valid
        model config, or a fixed-size export: a Matter runs windows of every size.
    """
    from model.networks.config import ModelConfig  # plain data: no Keras, no TensorFlow

    try:
        network = OnnxGenerator(path)
    except ContractError as error:
        raise CheckpointError(str(error)) from None
    kind = network.contract.get("network", "generator")
    if kind != "generator":
        raise CheckpointError(f"{network.path}: a {kind} network, not a matting generator")
    if network.size is not None:
        height, width = network.size
        raise CheckpointError(
            f"{network.path}: exported for {height}x{width} inputs only; cut-outs need every"
            " size, so export it without --size"
        )
    try:
        config = ModelConfig.from_dict(network.contract["model_config"])
    except (KeyError, TypeError, ValueError) as error:
        where = contract_path(network.path)
        raise CheckpointError(f"{where}: no usable model_config ({error})") from None
    if config.input_channels != network.channels:
        raise CheckpointError(
            f"{network.path}: takes {network.channels} input channels, but its model_config"
            f" describes {config.input_channels}"
        )
    source = network.contract.get("source") or {}
    step = source.get("step") if isinstance(source.get("step"), int) else 0
    return network, config, CheckpointRef(network.path, network.path.parent, step)
