"""The U-Net generator (plain or MobileNetV2 encoder) and the known-region clamp.

Generator
    input  (B, H, W, C) float32: RGB in [0, 1], the trimap in {0, 0.5, 1} and, when
           ``ModelConfig.prior`` is set, a classical alpha in [0, 1] (C = 4 or 5)
    output (B, H, W, 1) float32: alpha in [0, 1] (sigmoid, kept in float32 under mixed precision).
           With a prior the sigmoid's input is logit(prior) plus a learned correction whose last
           layer starts at zero, so an untrained generator returns the prior itself (where the
           prior is only the trimap, pymatting's fallback, the head's own logits instead).
    H and W must be multiples of ``ModelConfig.multiple``; pad the input (e.g. reflect) first.
"""

from __future__ import annotations

import sys
import warnings

import keras
from keras import layers, ops

from model.errors import first_line
from model.losses import unknown_mask
from model.networks.blocks import conv_block, conv_norm_act, unet_body, upsample
from model.networks.config import ModelConfig
from model.networks.plate import build_plate_generator

PRIOR_EPSILON = 0.01
"""The prior is clipped to [eps, 1 - eps] before its logit, which is then at most ~4.6."""

# MobileNetV2 activations used as U-Net skips, at strides 2, 4, 8, 16 and 32 (the last is the
# bottleneck). Expansion activations keep more channels than the narrow block outputs.
MOBILENET_FEATURES = (
    "block_1_expand_relu",  # (B, H/2, W/2, 96)
    "block_3_expand_relu",  # (B, H/4, W/4, 144)
    "block_6_expand_relu",  # (B, H/8, W/8, 192)
    "block_13_expand_relu",  # (B, H/16, W/16, 576)
    "block_16_project",  # (B, H/32, W/32, 320)
)


@keras.saving.register_keras_serializable(package="matting")
class PriorLogit(layers.Layer):
    """logit(clip(prior, eps, 1 - eps)): (B, H, W, 1) -> (B, H, W, 1), at most 4.6 in size."""

    def call(self, prior):
        prior = ops.clip(ops.cast(prior, "float32"), PRIOR_EPSILON, 1.0 - PRIOR_EPSILON)
        return ops.log(prior) - ops.log(1.0 - prior)


@keras.saving.register_keras_serializable(package="matting")
class PriorGate(layers.Layer):
    """1 for a sample whose prior differs from its trimap anywhere, else 0: (B, 1, 1, 1).

    ``model.classical.closed_form_prior`` returns the trimap itself when pymatting cannot
    solve (no definite foreground or background), so a prior equal to the trimap everywhere
    means "no prior"; a solved one differs from 0.5 somewhere in the unknown band.
    """

    def call(self, trimap, prior):
        difference = ops.abs(ops.cast(prior, "float32") - ops.cast(trimap, "float32"))
        return ops.cast(ops.max(difference, axis=(1, 2, 3), keepdims=True) > 1e-6, "float32")


def _alpha_head(x, inputs, cfg: ModelConfig):
    """Full-resolution refinement that sees the raw inputs again, then the sigmoid.

    The raw input skip lets one-pixel structures such as hair strands reach the output even
    where the deeper features have blurred them.

    With a prior, a sample that has one gets ``logit(prior) + correction``: the correction's
    last layer starts at zero (as ControlNet's zero convolutions), so training starts from the
    classical matte instead of from a grey ramp. A sample without one (:class:`PriorGate`) gets
    the head's own logits, ``head_logits``, the same layer a prior-free generator ends in, so
    a warm start from one (``model.training.warm_start``) keeps its answer there.
    """
    x = layers.Concatenate(name="head_input_skip")([x, inputs])  # (B, H, W, F + C)
    x = conv_norm_act(x, cfg.base_filters, cfg.norm, "head_a")  # (B, H, W, F)
    x = conv_norm_act(x, cfg.base_filters, cfg.norm, "head_b")  # (B, H, W, F)
    # float32 logits and sigmoid: in float16 the sigmoid saturates at 0 and 1 too early.
    logits = layers.Conv2D(1, 1, dtype="float32", name="head_logits")(x)  # (B, H, W, 1)
    if cfg.prior:
        correction = layers.Conv2D(
            1, 1, kernel_initializer="zeros", dtype="float32", name="head_correction"
        )(x)  # (B, H, W, 1)
        trimap, prior = inputs[..., 3:4], inputs[..., 4:5]  # (B, H, W, 1) each
        prior_logit = PriorLogit(dtype="float32", name="prior_logit")(prior)  # (B, H, W, 1)
        corrected = layers.Add(dtype="float32", name="corrected_logits")([prior_logit, correction])
        gate = PriorGate(dtype="float32", name="prior_gate")(trimap, prior)  # (B, 1, 1, 1)
        logits = gate * corrected + (1.0 - gate) * logits  # (B, H, W, 1)
    return layers.Activation("sigmoid", dtype="float32", name="alpha")(logits)  # (B, H, W, 1)


def _build_unet(cfg: ModelConfig) -> keras.Model:
    inputs = keras.Input(shape=(None, None, cfg.input_channels), dtype="float32", name="rgb_trimap")
    # (B, H, W, C)
    x = unet_body(inputs, cfg.base_filters, cfg.depth, cfg.norm)  # (B, H, W, F)
    outputs = _alpha_head(x, inputs, cfg)  # (B, H, W, 1)
    return keras.Model(inputs, outputs, name="generator")


def mobilenet_v2(weights: str | None) -> keras.Model:
    """MobileNetV2 1.0 without top for any input size; falls back to random weights offline."""

    def build(weights: str | None) -> keras.Model:
        with warnings.catch_warnings():
            # Keras warns that it loads the 224x224 weights for an undefined input size; the
            # convolution weights are the same for every size, so that is what we want.
            warnings.filterwarnings("ignore", message=".*input_shape.* is undefined")
            return keras.applications.MobileNetV2(
                include_top=False, weights=weights, input_shape=(None, None, 3)
            )

    if weights != "imagenet":
        return build(weights)
    try:
        return build("imagenet")
    except Exception as exc:  # get_file raises a bare Exception when the download fails
        print(
            "notice: ImageNet weights for MobileNetV2 unavailable "
            f"({type(exc).__name__}: {first_line(exc)}); using random initialisation",
            file=sys.stderr,
        )
        return build(None)


def _build_mobilenet_unet(cfg: ModelConfig) -> keras.Model:
    inputs = keras.Input(shape=(None, None, cfg.input_channels), dtype="float32", name="rgb_trimap")
    # (B, H, W, C)
    rgb = inputs[..., :3]  # (B, H, W, 3)
    guides = inputs[..., 3:]  # (B, H, W, C - 3): the trimap, then the prior if there is one
    base = mobilenet_v2(cfg.encoder_weights)
    encoder = keras.Model(
        base.input, [base.get_layer(name).output for name in MOBILENET_FEATURES], name="encoder"
    )
    # MobileNetV2 was trained on inputs in [-1, 1].
    scaled = layers.Rescaling(2.0, offset=-1.0, name="to_mobilenet_range")(rgb)  # (B, H, W, 3)
    *skips, x = encoder(scaled)  # skips at H/2..H/16 (see MOBILENET_FEATURES); x (B,H/32,W/32,320)
    for level in reversed(range(len(skips) + 1)):
        # Capped at 8F: the encoder is already light, a 16F decoder would dominate the weights.
        filters = cfg.base_filters * 2 ** min(level, 3)
        x = upsample(x, filters, cfg.norm, f"dec{level}")  # (B, H/2^l, W/2^l, F*2^min(l,3))
        if level == 0:
            break
        # The encoder sees RGB only, so the decoder gets the trimap (and prior) at every scale;
        # average pooling is an area resize, so a pixel near the band edge gets a fraction.
        small = layers.AveragePooling2D(2**level, name=f"trimap_{2**level}")(guides)  # (.., C-3)
        x = layers.Concatenate(name=f"dec{level}_skip")([x, skips[level - 1], small])
        x = conv_block(x, filters, cfg.norm, f"dec{level}")  # (B, H/2^l, W/2^l, F*2^min(l,3))
    outputs = _alpha_head(x, inputs, cfg)  # (B, H, W, 1)
    return keras.Model(inputs, outputs, name="generator")


def build_generator(cfg: ModelConfig) -> keras.Model:
    """Build the alpha-matting generator named ``"generator"``.

    Parameters
    ----------
    cfg : ModelConfig

    Returns
    -------
    keras.Model
        ``(B, H, W, C) float32 -> (B, H, W, 1) float32`` in [0, 1]; input channels are RGB in
        [0, 1], the trimap in {0, 0.5, 1}, and the prior in [0, 1] when ``cfg.prior`` is set
        (``C = cfg.input_channels``). H and W must be multiples of ``cfg.multiple``.
        Known regions are not clamped here (see :func:`clamp_known`), so training gets
        gradients everywhere. For ``cfg.task == "plate"`` it is the plate generator instead
        (``model.networks.plate``: RGB ++ plate RGB, 6 channels); for ``"trimap"`` the trimap
        network (``model.networks.trimap_net``: RGB -> 3-class logits).
    """
    if cfg.task == "plate":
        return build_plate_generator(cfg)
    if cfg.task == "trimap":
        # Here: trimap_net builds on this module's MobileNetV2 encoder.
        from model.networks.trimap_net import build_trimap_network

        return build_trimap_network(cfg)
    if cfg.encoder == "mobilenetv2":
        return _build_mobilenet_unet(cfg)
    return _build_unet(cfg)


def clamp_known(alpha, trimap):
    r"""Replace alpha by the trimap where the trimap is certain.

    .. math:: \hat\alpha = \alpha \text{ if } |t - 0.5| < 0.25 \text{ else } [t > 0.5]

    Parameters
    ----------
    alpha : tensor, float, shape (B, H, W, 1), values in [0, 1]
    trimap : tensor, float, shape (B, H, W, 1), values in {0, 0.5, 1}

    Returns
    -------
    tensor, same dtype and shape as ``alpha``: 0 in background, 1 in foreground, ``alpha`` in
    the unknown band.
    """
    alpha = ops.convert_to_tensor(alpha)
    dtype = keras.backend.standardize_dtype(alpha.dtype)
    trimap = ops.cast(trimap, dtype)
    return ops.where(unknown_mask(trimap) > 0, alpha, ops.cast(trimap > 0.5, dtype))
