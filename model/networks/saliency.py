"""U²-Net-p salient object detection (Qin et al. 2020), rebuilt in plain Keras 3.

U²-Net: "Going Deeper with Nested U-Structure for Salient Object Detection", Xuebin Qin,
Zichen Zhang, Chenyang Huang, Masood Dehghan, Osmar R. Zaiane and Martin Jagersand, Pattern
Recognition 106, 2020; code and weights under the Apache-2.0 licence
(https://github.com/xuebinqin/U-2-Net). U²-Net-p is its 1.13 M-parameter variant, trained on
DUTS-TR. Only ``keras.layers`` and ``keras.ops`` are used, so it builds under the TensorFlow,
JAX and torch backends alike; importing weights is ``scripts/import_u2netp.py``'s job.

The network is the inference graph of the published model: each "REBNCONV" (conv, batch norm,
ReLU) is one biased 3x3 convolution plus ReLU, because the ONNX export the weights come from
has the batch norm folded into the convolution. Layer names follow the PyTorch module paths
(``stage1.rebnconvin`` -> ``stage1_rebnconvin``), in the order of :func:`conv_layer_names`.

Model
    input   (B, H, W, 3) float32: RGB prepared by :func:`normalize_input`
    outputs seven (B, H, W, 1) float32 sigmoid maps in [0, 1]: the fused map d0 first, then
            the side outputs d1 (full resolution) ... d6 (from 1/32 resolution), as upstream.
    H = W = 320 is what the network was trained at (``INPUT_SIZE``); other sizes build too.

Example
-------
>>> model = build_u2netp()                         # (B, 320, 320, 3) -> 7 x (B, 320, 320, 1)
>>> fused = model.predict(normalize_input(photo_320x320)[None])[0][0, ..., 0]
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

INPUT_SIZE = 320
"""Side of the square input U²-Net-p was trained and exported at."""

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

OUTPUT_NAMES = ("d0", "d1", "d2", "d3", "d4", "d5", "d6")
"""The seven outputs in order; ``d0`` is the fused map that upstream and rembg use."""

# (stage, RSU height, dilated?, input channels): the order of the PyTorch forward pass.
# "RSU-L" is a residual U-block of height L; "RSU-4F" keeps the resolution and dilates instead.
_STAGES = (
    ("stage1", 7, False, 3),
    ("stage2", 6, False, 64),
    ("stage3", 5, False, 64),
    ("stage4", 4, False, 64),
    ("stage5", 4, True, 64),
    ("stage6", 4, True, 64),
    ("stage5d", 4, True, 128),
    ("stage4d", 4, False, 128),
    ("stage3d", 5, False, 128),
    ("stage2d", 6, False, 128),
    ("stage1d", 7, False, 128),
)
_MID = 16  # U²-Net-p's inner width of every RSU block
_OUT = 64  # and its output width


def _rsu_convs(height: int, dilated: bool) -> list[tuple[str, int, int]]:
    """(name, output channels, dilation) of an RSU block's convolutions, in forward order."""
    if dilated:
        down = [("rebnconv1", 1), ("rebnconv2", 2), ("rebnconv3", 4), ("rebnconv4", 8)]
        up = [("rebnconv3d", 4), ("rebnconv2d", 2), ("rebnconv1d", 1)]
    else:
        down = [(f"rebnconv{i}", 1) for i in range(1, height)] + [(f"rebnconv{height}", 2)]
        up = [(f"rebnconv{i}d", 1) for i in range(height - 1, 0, -1)]
    convs = [("rebnconvin", _OUT, 1)]
    convs += [(name, _MID, rate) for name, rate in down]
    convs += [(name, _MID, rate) for name, rate in up[:-1]]
    convs.append((up[-1][0], _OUT, up[-1][1]))
    return convs


def conv_layer_names() -> list[str]:
    """Names of the model's 119 convolutions in the order of the PyTorch forward pass.

    This is also the order of the ``Conv`` nodes in the ONNX export, which lets the importer
    pair them up (and check each pair's kernel shape and dilation).
    """
    names = [f"{stage}_{conv}" for stage, height, dilated, _ in _STAGES
             for conv, _, _ in _rsu_convs(height, dilated)]  # fmt: skip
    return [*names, "side1", "side2", "side3", "side4", "side5", "side6", "outconv"]


def _conv_relu(x, filters: int, dilation: int, name: str):
    x = layers.Conv2D(filters, 3, padding="same", dilation_rate=dilation, name=name)(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _upsample_like(x, target, name: str):
    """Bilinear resize of ``x`` to ``target``'s height and width (PyTorch's _upsample_like).

    With ``antialias=False`` this is half-pixel bilinear interpolation, the same as PyTorch's
    ``F.interpolate(mode="bilinear", align_corners=False)`` that the weights were trained with.
    """
    height, width = target.shape[1], target.shape[2]
    return layers.Resizing(height, width, interpolation="bilinear", name=name)(x)


def _pool(x, name: str):
    # "same" padding on a 2x2/2 pool gives ceil(n / 2) outputs, PyTorch's ceil_mode=True.
    return layers.MaxPooling2D(2, strides=2, padding="same", name=name)(x)


def _rsu(x, stage: str, height: int, dilated: bool):
    """Residual U-block: (bs, h, w, c) -> (bs, h, w, 64)."""
    convs = iter(_rsu_convs(height, dilated))

    def conv(tensor):
        name, filters, rate = next(convs)
        return _conv_relu(tensor, filters, rate, f"{stage}_{name}")

    hxin = conv(x)  # (bs, h, w, 64)
    if dilated:
        # RSU-4F: no pooling; growing dilation 1, 2, 4, 8 widens the receptive field instead.
        downs = [conv(hxin)]  # (bs, h, w, 16)
        for _ in range(3):
            downs.append(conv(downs[-1]))  # (bs, h, w, 16)
        hx = downs[-1]
        for level in (3, 2, 1):
            hx = conv(layers.Concatenate(name=f"{stage}_cat{level}")([hx, downs[level - 1]]))
        return layers.Add(name=f"{stage}_residual")([hx, hxin])  # (bs, h, w, 64)

    downs = [conv(hxin)]  # (bs, h, w, 16)
    for level in range(2, height):
        pooled = _pool(downs[-1], f"{stage}_pool{level - 1}")  # (bs, h/2^(l-1), w/2^(l-1), 16)
        downs.append(conv(pooled))
    hx = conv(downs[-1])  # (bs, h/2^(L-2), w/2^(L-2), 16), dilation 2 at the bottom
    for level in range(height - 1, 0, -1):
        skip = downs[level - 1]
        if hx.shape[1:3] != skip.shape[1:3]:
            hx = _upsample_like(hx, skip, f"{stage}_up{level}")
        hx = conv(layers.Concatenate(name=f"{stage}_cat{level}")([hx, skip]))
    return layers.Add(name=f"{stage}_residual")([hx, hxin])  # (bs, h, w, 64)


def build_u2netp(height: int = INPUT_SIZE, width: int = INPUT_SIZE) -> keras.Model:
    """U²-Net-p: (B, height, width, 3) -> seven (B, height, width, 1) sigmoid maps.

    Parameters
    ----------
    height, width : int
        Input size. The weights were trained at 320 x 320 (``INPUT_SIZE``); other sizes build
        and run (pooling rounds up, as PyTorch's ``ceil_mode``), but are not what upstream uses.

    Returns
    -------
    keras.Model named ``"u2netp"``; outputs in the order of ``OUTPUT_NAMES`` (fused first).
    Shapes in the comments are for the default 320 x 320.
    """
    if height < 1 or width < 1:
        raise ValueError(f"input size must be positive, got {height}x{width}")
    stages = {name: (rsu_height, dilated) for name, rsu_height, dilated, _ in _STAGES}

    def stage(x, name):
        return _rsu(x, name, *stages[name])

    inputs = keras.Input((height, width, 3), name="image")  # (bs, 320, 320, 3)
    hx1 = stage(inputs, "stage1")  # (bs, 320, 320, 64)
    hx2 = stage(_pool(hx1, "pool12"), "stage2")  # (bs, 160, 160, 64)
    hx3 = stage(_pool(hx2, "pool23"), "stage3")  # (bs, 80, 80, 64)
    hx4 = stage(_pool(hx3, "pool34"), "stage4")  # (bs, 40, 40, 64)
    hx5 = stage(_pool(hx4, "pool45"), "stage5")  # (bs, 20, 20, 64)
    hx6 = stage(_pool(hx5, "pool56"), "stage6")  # (bs, 10, 10, 64)

    decoded = {}
    hx = hx6
    for level, skip in ((5, hx5), (4, hx4), (3, hx3), (2, hx2), (1, hx1)):
        up = _upsample_like(hx, skip, f"up{level + 1}")  # (bs, skip h, skip w, 64)
        cat = layers.Concatenate(name=f"cat{level}d")([up, skip])  # (bs, ..., 128)
        hx = decoded[level] = stage(cat, f"stage{level}d")  # (bs, ..., 64)
    decoded[6] = hx6

    sides = []
    for level in range(1, 7):
        side = layers.Conv2D(1, 3, padding="same", name=f"side{level}")(decoded[level])
        if level > 1:
            side = _upsample_like(side, sides[0], f"side{level}_up")  # (bs, 320, 320, 1)
        sides.append(side)  # (bs, 320, 320, 1)
    fused = layers.Conv2D(1, 1, name="outconv")(
        layers.Concatenate(name="sides")(sides)  # (bs, 320, 320, 6)
    )  # (bs, 320, 320, 1)
    # Sigmoids in float32 even under a mixed-precision policy: thresholds are applied to them.
    outputs = [
        layers.Activation("sigmoid", dtype="float32", name=name)(logits)
        for name, logits in zip(OUTPUT_NAMES, [fused, *sides], strict=True)
    ]  # 7 x (bs, 320, 320, 1)
    return keras.Model(inputs, outputs, name="u2netp")


def normalize_input(image: np.ndarray) -> np.ndarray:
    """Prepare an RGB image the way U²-Net-p was trained: scale by its maximum, then ImageNet.

    Upstream (``ToTensorLab`` in U-2-Net's ``data_loader.py``) and rembg both divide the image
    by its own maximum value before subtracting the ImageNet mean and dividing by its standard
    deviation, so a dark photo is brightened to peak at 1. Resizing to ``INPUT_SIZE`` is the
    caller's job (rembg: Lanczos, before this scaling).

        x = (image / max(image) - IMAGENET_MEAN) / IMAGENET_STD

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), float in [0, 1]
        RGB. An all-black image (maximum 0) is left unscaled, where upstream would divide by 0.

    Returns
    -------
    ndarray, float32, shape (H, W, 3), roughly in [-2.2, 2.7].
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got {image.shape}")
    image = np.asarray(image, dtype=np.float32)
    peak = float(image.max(initial=0.0))
    scaled = image / peak if peak > 0.0 else image
    return ((scaled - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32)
