"""Matting networks, one component per module: a U-Net generator, a PatchGAN discriminator,
and the U²-Net-p saliency network (``model.networks.saliency``, imported on its own).

Only ``keras.layers`` and ``keras.ops`` are used, so the models build under the TensorFlow,
JAX and torch backends alike.

Generator
    input  (B, H, W, C) float32: RGB in [0, 1], the trimap in {0, 0.5, 1} and, with
           ``ModelConfig.prior``, the classical matte it corrects (C = 4 or 5)
    output (B, H, W, 1) float32: alpha in [0, 1] (sigmoid, kept in float32 under mixed precision)
    H and W must be multiples of ``ModelConfig.multiple``; pad the input (e.g. reflect) first.

Plate generator (``ModelConfig.task == "plate"``, ``model.networks.plate``)
    input  (B, H, W, 6) float32: RGB then the clean background plate's RGB, in [0, 1]
    output (B, H, W, 1) float32: alpha in [0, 1]

Discriminator (AlphaGAN, Lutz et al. 2018; PatchGAN of pix2pix)
    input  (B, H, W, 4) float32: composite RGB in [0, 1] concatenated with the trimap
    output (B, H/s, W/s, 1) float32 raw logits, s = ``ModelConfig.disc_stride`` (8 by default)

Example
-------
>>> cfg = ModelConfig(base_filters=4, depth=2, disc_filters=4, disc_layers=2)
>>> generator = build_generator(cfg)            # (B, H, W, 4) -> (B, H, W, 1)
>>> discriminator = build_discriminator(cfg)    # (B, H, W, 4) -> (B, H/4, W/4, 1)
"""

from __future__ import annotations

from model.networks.config import ENCODERS, MOBILENET_MULTIPLE, NORMS, TASKS, ModelConfig

# The builders import Keras, and with it TensorFlow (seconds); ModelConfig alone must not, so a
# run's config.json can be read by a TensorFlow-free command (the onnxruntime path of eval.py).
_BUILDERS = {
    "build_discriminator": "model.networks.discriminator",
    "build_generator": "model.networks.generator",
    "clamp_known": "model.networks.generator",
}


def __getattr__(name: str):
    if name in _BUILDERS:
        import importlib

        return getattr(importlib.import_module(_BUILDERS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ENCODERS",
    "MOBILENET_MULTIPLE",
    "NORMS",
    "TASKS",
    "ModelConfig",
    "build_discriminator",
    "build_generator",
    "clamp_known",
]
