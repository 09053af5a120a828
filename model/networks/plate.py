"""The background-plate generator: image + clean plate -> alpha, no trimap (BGMv2's idea).

Plate generator
    input  (B, H, W, 6) float32: the image RGB then the plate RGB, both in [0, 1]
    output (B, H, W, 1) float32: alpha in [0, 1] (sigmoid, kept in float32)
    H and W must be multiples of ``ModelConfig.multiple`` (``2**depth``).

With ``ModelConfig.previous_alpha`` the input has a seventh channel, the previous video frame's
alpha in [0, 1] (all zeros where there is none), so the network can keep its matte steady from
frame to frame (RobustVideoMatting feeds a recurrent state for the same reason). It is the
*last* channel of the features that both the encoder and the full-resolution head see, so
``model.training.gan.warm_start`` from a six-channel model gives it zero weights: the warm-started
network computes exactly what the still model did until training teaches it to use the channel.

The network also sees ``|image - plate|`` per channel, computed inside (so callers pass only
the two photographs): the difference is what separates subject from scene, and the raw colours
let it tell a subject from a plate that is slightly shifted, re-exposed or noisy, which a plain
difference key cannot (``model.plate.difference_key``).
"""

from __future__ import annotations

import keras
from keras import layers, ops

from model.networks.blocks import conv_norm_act, unet_body
from model.networks.config import ModelConfig


@keras.saving.register_keras_serializable(package="matting")
class PlateFeatures(layers.Layer):
    """(B, H, W, 6) image ++ plate -> (B, H, W, 9) image ++ plate ++ |image - plate|;
    (B, H, W, 7) with the previous alpha -> (B, H, W, 10), the previous alpha last."""

    def call(self, inputs):
        image, plate = inputs[..., :3], inputs[..., 3:6]
        features = [image, plate, ops.abs(image - plate), inputs[..., 6:]]
        return ops.concatenate(features, axis=-1)


def build_plate_generator(cfg: ModelConfig) -> keras.Model:
    """Build the plate generator named ``"generator"``: a U-Net over image, plate, difference.

    Parameters
    ----------
    cfg : ModelConfig
        ``task == "plate"``; ``base_filters``, ``depth`` and ``norm`` shape the U-Net.

    Returns
    -------
    keras.Model
        ``(B, H, W, C) float32 -> (B, H, W, 1) float32`` in [0, 1], C = ``cfg.input_channels``
        (6, or 7 with ``cfg.previous_alpha``); H and W multiples of ``cfg.multiple``.
    """
    channels = cfg.input_channels
    inputs = keras.Input(shape=(None, None, channels), dtype="float32", name="rgb_plate")
    features = PlateFeatures(name="plate_features")(inputs)  # (B, H, W, C + 3)
    x = unet_body(features, cfg.base_filters, cfg.depth, cfg.norm)  # (B, H, W, F)
    # The raw features again at full resolution, so one-pixel strands survive the pooling.
    x = layers.Concatenate(name="head_input_skip")([x, features])  # (B, H, W, F + C + 3)
    x = conv_norm_act(x, cfg.base_filters, cfg.norm, "head_a")  # (B, H, W, F)
    # float32 logits and sigmoid: in float16 the sigmoid saturates at 0 and 1 too early.
    x = layers.Conv2D(1, 1, dtype="float32", name="head_logits")(x)  # (B, H, W, 1)
    outputs = layers.Activation("sigmoid", dtype="float32", name="alpha")(x)  # (B, H, W, 1)
    return keras.Model(inputs, outputs, name="generator")
