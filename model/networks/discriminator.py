"""The PatchGAN discriminator (AlphaGAN, Lutz et al. 2018; PatchGAN of pix2pix).

Discriminator
    input  (B, H, W, 4) float32: composite RGB in [0, 1] concatenated with the trimap
    output (B, H/s, W/s, 1) float32 raw logits, s = ``ModelConfig.disc_stride`` (8 by default)
"""

from __future__ import annotations

import keras
from keras import layers

from model.networks.blocks import conv_norm_act, pix2pix_init
from model.networks.config import ModelConfig


def build_discriminator(cfg: ModelConfig) -> keras.Model:
    """Build the PatchGAN discriminator named ``"discriminator"`` (pix2pix ``NLayerDiscriminator``).

    Each output logit judges one receptive-field patch (70x70 pixels for ``disc_layers=3``).

    Parameters
    ----------
    cfg : ModelConfig

    Returns
    -------
    keras.Model
        ``(B, H, W, 4) float32 -> (B, H/s, W/s, 1) float32`` raw logits (no sigmoid), with
        ``s = cfg.disc_stride = 2**cfg.disc_layers``; input is a composite RGB in [0, 1] then
        the trimap.
    """
    n, f = cfg.disc_layers, cfg.disc_filters
    inputs = keras.Input(shape=(None, None, 4), dtype="float32", name="composite_trimap")
    # (B, H, W, 4)
    # No normalisation on the input layer (pix2pix, DCGAN): there it made GAN training unstable.
    x = conv_norm_act(inputs, f, "none", "d0", kernel_size=4, strides=2, act="lrelu")
    # (B, H/2, W/2, f)
    for i in range(1, n):
        x = conv_norm_act(
            x, f * min(2**i, 8), cfg.norm, f"d{i}", kernel_size=4, strides=2, act="lrelu"
        )
        # (B, H/2^(i+1), W/2^(i+1), f*min(2^i, 8))
    x = conv_norm_act(x, f * min(2**n, 8), cfg.norm, f"d{n}", kernel_size=4, act="lrelu")
    # (B, H/2^n, W/2^n, f*min(2^n, 8))
    logits = layers.Conv2D(
        1, 4, padding="same", kernel_initializer=pix2pix_init(), dtype="float32", name="logits"
    )(x)  # (B, H/2^n, W/2^n, 1)
    return keras.Model(inputs, logits, name="discriminator")
