"""Layer blocks shared by the generator and the discriminator (plain Keras 3)."""

from __future__ import annotations

import math

import keras
from keras import layers


def norm_layer(kind: str, channels: int, name: str) -> layers.Layer | None:
    if kind == "batch":
        return layers.BatchNormalization(name=f"{name}_bn")
    if kind == "group":
        return layers.GroupNormalization(groups=math.gcd(8, channels), name=f"{name}_gn")
    return None


def conv_norm_act(
    x, filters: int, norm: str, name: str, *, kernel_size: int = 3, strides: int = 1, act="relu"
):
    """Convolution -> optional norm -> activation; spatial size divided by ``strides``."""
    normalise = norm_layer(norm, filters, name)
    # A bias is redundant in front of a normalisation that subtracts the mean.
    x = layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=normalise is None,
        kernel_initializer="he_normal" if act == "relu" else pix2pix_init(),
        name=f"{name}_conv",
    )(x)  # (B, h/strides, w/strides, filters)
    if normalise is not None:
        x = normalise(x)  # (B, h/strides, w/strides, filters)
    if act == "relu":
        return layers.ReLU(name=f"{name}_relu")(x)  # (B, h/strides, w/strides, filters)
    return layers.LeakyReLU(negative_slope=0.2, name=f"{name}_lrelu")(x)  # (B, h/s, w/s, filters)


def conv_block(x, filters: int, norm: str, name: str):
    """Two 3x3 conv-norm-ReLU layers at constant resolution: (B, h, w, c) -> (B, h, w, filters)."""
    x = conv_norm_act(x, filters, norm, f"{name}_a")  # (B, h, w, filters)
    return conv_norm_act(x, filters, norm, f"{name}_b")  # (B, h, w, filters)


def upsample(x, filters: int, norm: str, name: str):
    """Bilinear 2x resize then a 3x3 conv; unlike a transposed conv it makes no checkerboard."""
    x = layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_resize")(x)  # (B, 2h, 2w, c)
    return conv_norm_act(x, filters, norm, f"{name}_up")  # (B, 2h, 2w, filters)


def pix2pix_init() -> keras.initializers.Initializer:
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


def unet_body(x, base_filters: int, depth: int, norm: str):
    """The plain U-Net's encoder and decoder: (B, H, W, C) -> (B, H, W, base_filters).

    ``depth`` 2x max-poolings down, each level's two convolutions kept as a skip, then bilinear
    upsampling back with the skip concatenated at every level. H and W must be multiples of
    2**depth. Layer names (``enc{l}``, ``bottleneck``, ``dec{l}``) are part of the checkpoints.
    """
    skips = []
    for level in range(depth):
        filters = base_filters * 2**level
        x = conv_block(x, filters, norm, f"enc{level}")  # (B, H/2^l, W/2^l, F*2^l)
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"enc{level}_pool")(x)  # (B, H/2^(l+1), W/2^(l+1), F*2^l)
    x = conv_block(x, base_filters * 2**depth, norm, "bottleneck")  # (B, H/2^d, W/2^d, F*2^d)
    for level in reversed(range(depth)):
        filters = base_filters * 2**level
        x = upsample(x, filters, norm, f"dec{level}")  # (B, H/2^l, W/2^l, F*2^l)
        x = layers.Concatenate(name=f"dec{level}_skip")([x, skips[level]])  # (.., 2*F*2^l)
        x = conv_block(x, filters, norm, f"dec{level}")  # (B, H/2^l, W/2^l, F*2^l)
    return x
