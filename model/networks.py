"""Matting networks: a U-Net generator and a PatchGAN discriminator (plain Keras 3).

Only ``keras.layers`` and ``keras.ops`` are used, so the models build under the TensorFlow,
JAX and torch backends alike.

Generator
    input  (B, H, W, C) float32: RGB in [0, 1], the trimap in {0, 0.5, 1} and, when
           ``ModelConfig.prior`` is set, a classical alpha in [0, 1] (C = 4 or 5)
    output (B, H, W, 1) float32: alpha in [0, 1] (sigmoid, kept in float32 under mixed precision).
           With a prior the sigmoid's input is logit(prior) plus a learned correction whose last
           layer starts at zero, so an untrained generator returns the prior itself.
    H and W must be multiples of ``ModelConfig.multiple``; pad the input (e.g. reflect) first.

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

import dataclasses
import math
import sys
import warnings
from dataclasses import dataclass
from typing import Any

import keras
from keras import layers, ops

from model.classical import PRIORS

ENCODERS = ("unet", "mobilenetv2")
PRIOR_EPSILON = 0.01
"""The prior is clipped to [eps, 1 - eps] before its logit, which is then at most ~4.6."""
NORMS = ("batch", "group", "none")
MOBILENET_MULTIPLE = 32

# MobileNetV2 activations used as U-Net skips, at strides 2, 4, 8, 16 and 32 (the last is the
# bottleneck). Expansion activations keep more channels than the narrow block outputs.
_MOBILENET_FEATURES = (
    "block_1_expand_relu",  # (B, H/2, W/2, 96)
    "block_3_expand_relu",  # (B, H/4, W/4, 144)
    "block_6_expand_relu",  # (B, H/8, W/8, 192)
    "block_13_expand_relu",  # (B, H/16, W/16, 576)
    "block_16_project",  # (B, H/32, W/32, 320)
)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the generator and the discriminator; stored in ``config.json``.

    Attributes
    ----------
    encoder : {"unet", "mobilenetv2"}
        ``"unet"`` is a plain U-Net; ``"mobilenetv2"`` uses ``keras.applications.MobileNetV2``
        as encoder (``depth`` is then ignored: its features go down to stride 32).
    base_filters : int
        Channels at full resolution; level ``l`` of the U-Net has ``base_filters * 2**l``.
    depth : int
        Number of 2x downsamplings of the U-Net encoder.
    norm : {"batch", "group", "none"}
        Normalisation after each convolution (group norm uses up to 8 groups).
    disc_filters : int
        Channels of the first discriminator convolution (doubling per layer, capped at 8x).
    disc_layers : int
        Number of stride-2 discriminator convolutions; the logits have stride ``2**disc_layers``
        (pix2pix ``n_layers``: 3 gives the 70x70 PatchGAN with output H/8 x W/8).
    encoder_weights : {"imagenet", None}
        Initial MobileNetV2 weights (only for ``encoder="mobilenetv2"``).
    prior : {None, "closed-form"}
        Classical matte given to the generator as a fifth input channel, which it learns to
        correct (``model.classical.closed_form_prior``); None for RGB + trimap only.
    """

    encoder: str = "unet"
    base_filters: int = 32
    depth: int = 4
    norm: str = "batch"
    disc_filters: int = 64
    disc_layers: int = 3
    encoder_weights: str | None = "imagenet"
    prior: str | None = None

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {self.encoder!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if self.encoder_weights not in ("imagenet", None):
            raise ValueError(
                f"encoder_weights must be 'imagenet' or None, got {self.encoder_weights!r}"
            )
        if self.prior not in (None, *PRIORS):
            raise ValueError(f"prior must be None or one of {PRIORS}, got {self.prior!r}")
        for name in ("base_filters", "depth", "disc_filters", "disc_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    @property
    def multiple(self) -> int:
        """Input height and width of the generator must be multiples of this."""
        return MOBILENET_MULTIPLE if self.encoder == "mobilenetv2" else 2**self.depth

    @property
    def input_channels(self) -> int:
        """Generator input channels: RGB, trimap, and the prior when there is one."""
        return 5 if self.prior else 4

    @property
    def disc_stride(self) -> int:
        """Discriminator output (B, H/s, W/s, 1) for s = ``disc_stride``."""
        return 2**self.disc_layers

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict of all fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; missing keys take their defaults.

        Raises
        ------
        ValueError
            On keys that are not fields (listed in the message) or invalid values.
        """
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown model config keys: {', '.join(unknown)} "
                f"(expected some of: {', '.join(sorted(known))})"
            )
        return cls(**data)


def _norm(kind: str, channels: int, name: str) -> layers.Layer | None:
    if kind == "batch":
        return layers.BatchNormalization(name=f"{name}_bn")
    if kind == "group":
        return layers.GroupNormalization(groups=math.gcd(8, channels), name=f"{name}_gn")
    return None


def _conv_norm_act(
    x, filters: int, norm: str, name: str, *, kernel_size: int = 3, strides: int = 1, act="relu"
):
    """Convolution -> optional norm -> activation; spatial size divided by ``strides``."""
    norm_layer = _norm(norm, filters, name)
    # A bias is redundant in front of a normalisation that subtracts the mean.
    x = layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=norm_layer is None,
        kernel_initializer="he_normal" if act == "relu" else _pix2pix_init(),
        name=f"{name}_conv",
    )(x)  # (B, h/strides, w/strides, filters)
    if norm_layer is not None:
        x = norm_layer(x)  # (B, h/strides, w/strides, filters)
    if act == "relu":
        return layers.ReLU(name=f"{name}_relu")(x)  # (B, h/strides, w/strides, filters)
    return layers.LeakyReLU(negative_slope=0.2, name=f"{name}_lrelu")(x)  # (B, h/s, w/s, filters)


def _conv_block(x, filters: int, norm: str, name: str):
    """Two 3x3 conv-norm-ReLU layers at constant resolution: (B, h, w, c) -> (B, h, w, filters)."""
    x = _conv_norm_act(x, filters, norm, f"{name}_a")  # (B, h, w, filters)
    return _conv_norm_act(x, filters, norm, f"{name}_b")  # (B, h, w, filters)


def _upsample(x, filters: int, norm: str, name: str):
    """Bilinear 2x resize then a 3x3 conv; unlike a transposed conv it makes no checkerboard."""
    x = layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_resize")(x)  # (B, 2h, 2w, c)
    return _conv_norm_act(x, filters, norm, f"{name}_up")  # (B, 2h, 2w, filters)


@keras.saving.register_keras_serializable(package="matting")
class PriorLogit(layers.Layer):
    """logit(clip(prior, eps, 1 - eps)): (B, H, W, 1) -> (B, H, W, 1), at most 4.6 in size."""

    def call(self, prior):
        prior = ops.clip(ops.cast(prior, "float32"), PRIOR_EPSILON, 1.0 - PRIOR_EPSILON)
        return ops.log(prior) - ops.log(1.0 - prior)


def _alpha_head(x, inputs, cfg: ModelConfig):
    """Full-resolution refinement that sees the raw inputs again, then the sigmoid.

    The raw input skip lets one-pixel structures such as hair strands reach the output even
    where the deeper features have blurred them. With a prior, the head predicts a correction
    of the prior's logit; its last layer starts at zero (as ControlNet's zero convolutions), so
    training starts from the classical matte instead of from a grey ramp.
    """
    x = layers.Concatenate(name="head_input_skip")([x, inputs])  # (B, H, W, F + C)
    x = _conv_norm_act(x, cfg.base_filters, cfg.norm, "head_a")  # (B, H, W, F)
    x = _conv_norm_act(x, cfg.base_filters, cfg.norm, "head_b")  # (B, H, W, F)
    # float32 logits and sigmoid: in float16 the sigmoid saturates at 0 and 1 too early.
    if not cfg.prior:
        x = layers.Conv2D(1, 1, dtype="float32", name="head_logits")(x)  # (B, H, W, 1)
        return layers.Activation("sigmoid", dtype="float32", name="alpha")(x)  # (B, H, W, 1)
    correction = layers.Conv2D(
        1, 1, kernel_initializer="zeros", dtype="float32", name="head_logits"
    )(x)  # (B, H, W, 1)
    prior_logit = PriorLogit(dtype="float32", name="prior_logit")(inputs[..., 4:5])  # (B, H, W, 1)
    x = layers.Add(dtype="float32", name="corrected_logits")([prior_logit, correction])
    return layers.Activation("sigmoid", dtype="float32", name="alpha")(x)  # (B, H, W, 1)


def _build_unet(cfg: ModelConfig) -> keras.Model:
    inputs = keras.Input(shape=(None, None, cfg.input_channels), dtype="float32", name="rgb_trimap")
    # (B, H, W, C)
    x = inputs
    skips = []
    for level in range(cfg.depth):
        filters = cfg.base_filters * 2**level
        x = _conv_block(x, filters, cfg.norm, f"enc{level}")  # (B, H/2^l, W/2^l, F*2^l)
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"enc{level}_pool")(x)  # (B, H/2^(l+1), W/2^(l+1), F*2^l)
    bottom = cfg.base_filters * 2**cfg.depth
    x = _conv_block(x, bottom, cfg.norm, "bottleneck")  # (B, H/2^depth, W/2^depth, F*2^depth)
    for level in reversed(range(cfg.depth)):
        filters = cfg.base_filters * 2**level
        x = _upsample(x, filters, cfg.norm, f"dec{level}")  # (B, H/2^l, W/2^l, F*2^l)
        x = layers.Concatenate(name=f"dec{level}_skip")([x, skips[level]])  # (.., 2*F*2^l)
        x = _conv_block(x, filters, cfg.norm, f"dec{level}")  # (B, H/2^l, W/2^l, F*2^l)
    outputs = _alpha_head(x, inputs, cfg)  # (B, H, W, 1)
    return keras.Model(inputs, outputs, name="generator")


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _mobilenet_v2(weights: str | None) -> keras.Model:
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
            f"({_one_line(exc)}); using random initialisation",
            file=sys.stderr,
        )
        return build(None)


def _build_mobilenet_unet(cfg: ModelConfig) -> keras.Model:
    inputs = keras.Input(shape=(None, None, cfg.input_channels), dtype="float32", name="rgb_trimap")
    # (B, H, W, C)
    rgb = inputs[..., :3]  # (B, H, W, 3)
    guides = inputs[..., 3:]  # (B, H, W, C - 3): the trimap, then the prior if there is one
    base = _mobilenet_v2(cfg.encoder_weights)
    encoder = keras.Model(
        base.input, [base.get_layer(name).output for name in _MOBILENET_FEATURES], name="encoder"
    )
    # MobileNetV2 was trained on inputs in [-1, 1].
    scaled = layers.Rescaling(2.0, offset=-1.0, name="to_mobilenet_range")(rgb)  # (B, H, W, 3)
    *skips, x = encoder(scaled)  # skips at H/2..H/16 (see _MOBILENET_FEATURES); x (B,H/32,W/32,320)
    for level in reversed(range(len(skips) + 1)):
        # Capped at 8F: the encoder is already light, a 16F decoder would dominate the weights.
        filters = cfg.base_filters * 2 ** min(level, 3)
        x = _upsample(x, filters, cfg.norm, f"dec{level}")  # (B, H/2^l, W/2^l, F*2^min(l,3))
        if level == 0:
            break
        # The encoder sees RGB only, so the decoder gets the trimap (and prior) at every scale;
        # average pooling is an area resize, so a pixel near the band edge gets a fraction.
        small = layers.AveragePooling2D(2**level, name=f"trimap_{2**level}")(guides)  # (.., C-3)
        x = layers.Concatenate(name=f"dec{level}_skip")([x, skips[level - 1], small])
        x = _conv_block(x, filters, cfg.norm, f"dec{level}")  # (B, H/2^l, W/2^l, F*2^min(l,3))
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
        gradients everywhere.
    """
    if cfg.encoder == "mobilenetv2":
        return _build_mobilenet_unet(cfg)
    return _build_unet(cfg)


def _pix2pix_init() -> keras.initializers.Initializer:
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


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
    x = _conv_norm_act(inputs, f, "none", "d0", kernel_size=4, strides=2, act="lrelu")
    # (B, H/2, W/2, f)
    for i in range(1, n):
        x = _conv_norm_act(
            x, f * min(2**i, 8), cfg.norm, f"d{i}", kernel_size=4, strides=2, act="lrelu"
        )
        # (B, H/2^(i+1), W/2^(i+1), f*min(2^i, 8))
    x = _conv_norm_act(x, f * min(2**n, 8), cfg.norm, f"d{n}", kernel_size=4, act="lrelu")
    # (B, H/2^n, W/2^n, f*min(2^n, 8))
    logits = layers.Conv2D(
        1, 4, padding="same", kernel_initializer=_pix2pix_init(), dtype="float32", name="logits"
    )(x)  # (B, H/2^n, W/2^n, 1)
    return keras.Model(inputs, logits, name="discriminator")


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
    unknown = ops.abs(trimap - 0.5) < 0.25
    return ops.where(unknown, alpha, ops.cast(trimap > 0.5, dtype))
