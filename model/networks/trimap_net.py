"""The trimap network: a 3-class U-Net from the image alone (``ModelConfig.task == "trimap"``).

Model
    input  (B, H, W, 3) float32: RGB in [0, 1]
    output (B, H, W, 3) float32: logits of background, unknown and foreground, in that order
           (class c is the trimap value c / 2: 0, 0.5, 1). Logits stay float32 under mixed
           precision, for the softmax and cross-entropy.
    H and W must be multiples of ``ModelConfig.multiple``; pad the input (e.g. reflect) first.

With ``encoder="mobilenetv2"`` (what train.py's trimap runs use) the encoder is ImageNet
MobileNetV2 with the generator's skips (``model.networks.generator``): its features carry over
to real photos better than a U-Net trained from scratch on synthetic composites. The decoder
is the generator's, without trimap guides. ``encoder="unet"`` is the plain U-Net body
(``model.networks.blocks.unet_body``), for tiny test models.
"""

from __future__ import annotations

import keras
from keras import layers

from model.networks.blocks import conv_block, conv_norm_act, unet_body, upsample
from model.networks.config import ModelConfig
from model.networks.generator import MOBILENET_FEATURES, mobilenet_v2

TRIMAP_CLASSES = 3
"""Background, unknown, foreground: class c is trimap value c / 2."""


def _mobilenet_body(rgb, cfg: ModelConfig):
    """(B, H, W, 3) RGB in [0, 1] -> (B, H/2, W/2, F) decoder features."""
    base = mobilenet_v2(cfg.encoder_weights)
    encoder = keras.Model(
        base.input, [base.get_layer(name).output for name in MOBILENET_FEATURES], name="encoder"
    )
    # MobileNetV2 was trained on inputs in [-1, 1].
    scaled = layers.Rescaling(2.0, offset=-1.0, name="to_mobilenet_range")(rgb)  # (B, H, W, 3)
    *skips, x = encoder(scaled)  # skips at H/2..H/16; x (B, H/32, W/32, 320)
    for level in reversed(range(1, len(skips) + 1)):
        filters = cfg.base_filters * 2 ** min(level, 3)
        x = upsample(x, filters, cfg.norm, f"dec{level}")  # (B, H/2^l, W/2^l, F*2^min(l,3))
        x = layers.Concatenate(name=f"dec{level}_skip")([x, skips[level - 1]])
        x = conv_block(x, filters, cfg.norm, f"dec{level}")  # (B, H/2^l, W/2^l, F*2^min(l,3))
    return upsample(x, cfg.base_filters, cfg.norm, "dec0")  # (B, H, W, F)


def build_trimap_network(cfg: ModelConfig) -> keras.Model:
    """Build the trimap network named ``"generator"`` (so checkpoints and snapshots treat it
    like the other tasks' networks).

    Parameters
    ----------
    cfg : ModelConfig
        ``task == "trimap"``; ``encoder``, ``base_filters``, ``depth`` (U-Net only), ``norm``
        and ``encoder_weights`` shape it.

    Returns
    -------
    keras.Model
        ``(B, H, W, 3) float32 RGB in [0, 1] -> (B, H, W, 3) float32 logits`` (background,
        unknown, foreground).
    """
    inputs = keras.Input(shape=(None, None, 3), dtype="float32", name="rgb")  # (B, H, W, 3)
    if cfg.encoder == "mobilenetv2":
        x = _mobilenet_body(inputs, cfg)  # (B, H, W, F)
    else:
        x = unet_body(inputs, cfg.base_filters, cfg.depth, cfg.norm)  # (B, H, W, F)
    # The raw image again at full resolution: the band edge follows image edges.
    x = layers.Concatenate(name="head_input_skip")([x, inputs])  # (B, H, W, F + 3)
    x = conv_norm_act(x, cfg.base_filters, cfg.norm, "head_a")  # (B, H, W, F)
    logits = layers.Conv2D(TRIMAP_CLASSES, 1, dtype="float32", name="trimap_logits")(x)
    # (B, H, W, 3)
    return keras.Model(inputs, logits, name="generator")
