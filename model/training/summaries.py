"""TensorBoard summaries written without importing the tensorboard package."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from model.images import encode_png

# Summaries are written with the low-level tf.summary.write and the plugin names TensorBoard
# reads, so training does not need the tensorboard package (only viewing does).


def _metadata(plugin: str) -> summary_pb2.SummaryMetadata:
    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin)
    )


def write_scalar(tag: str, value: float, step: int) -> None:
    """A TensorBoard scalar (under the writer set as default)."""
    tf.summary.write(tag, tf.constant(value, tf.float32), step=step, metadata=_metadata("scalars"))


def write_image(tag: str, pixels: np.ndarray, step: int) -> None:
    """A TensorBoard image from (H, W, 3) float in [0, 1] (under the writer set as default)."""
    height, width = pixels.shape[:2]
    tensor = tf.constant([str(width).encode(), str(height).encode(), encode_png(pixels)])
    tf.summary.write(tag, tensor, step=step, metadata=_metadata("images"))
