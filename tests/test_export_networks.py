"""Export of the other shipped networks: the plate generator and U²-Net-p saliency.

The plate generator's samples are real-size: docs/demo's photo at the working resolution,
384 x 384, with a plate made from the same photo by inpainting the subject away (what a clean
plate of the scene would show). The saliency sample is docs/demo/astronaut.jpg prepared as
U²-Net-p's callers prepare it (Lanczos to 320 x 320, ``normalize_input``). Every fp32 export is
compared with the Keras model it came from, run by the export's own runtime.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

from model.auto_trimap import DEFAULT_WEIGHTS
from model.checkpoints import CheckpointError
from model.export import export_generator, export_saliency, load_generator, load_saliency
from model.export_contract import read_contract
from model.images import read_image
from model.networks import ModelConfig, build_generator
from model.networks.saliency import INPUT_SIZE, build_u2netp, normalize_input
from model.onnx_runner import OnnxGenerator, load_for_matting
from scripts.export import build_parser, main

REPO = Path(__file__).resolve().parents[1]
PRETRAINED_PLATE = REPO / "log" / "pretrained-plate"
WORKING = 384
FP32_TOLERANCE = 1e-4
"""Issue 19: every fp32 export agrees with the Keras model to this max absolute difference."""

TINY_PLATE = ModelConfig(
    encoder="unet", base_filters=4, depth=2, norm="batch", encoder_weights=None, task="plate"
)
# (format, the file or folder it is written to); the SavedModel routes take over five seconds.
FORMATS = [
    ("keras", "m.keras"),
    pytest.param("savedmodel", "m_savedmodel", marks=pytest.mark.slow),
    pytest.param("tflite", "m.tflite", marks=pytest.mark.slow),
    ("onnx", "m.onnx"),
]


@pytest.fixture(scope="module")
def plate_sample() -> np.ndarray:
    """(1, 384, 384, 6) float32: the demo photo ++ a plate of it with the subject inpainted."""
    image = read_image(REPO / "docs" / "demo" / "photo.png")
    image = cv2.resize(image, (WORKING, WORKING), interpolation=cv2.INTER_AREA)
    alpha = cv2.imread(str(REPO / "docs" / "demo" / "alpha.png"), cv2.IMREAD_GRAYSCALE)
    alpha = cv2.resize(alpha, (WORKING, WORKING), interpolation=cv2.INTER_AREA)
    subject = cv2.dilate((alpha > 0).astype(np.uint8), np.ones((9, 9), np.uint8))
    plate = cv2.inpaint((image * 255).round().astype(np.uint8), subject, 5, cv2.INPAINT_TELEA)
    plate = plate.astype(np.float32) / 255
    return np.concatenate([image, plate], axis=2)[None].astype(np.float32)


@pytest.fixture(scope="module")
def saliency_sample() -> np.ndarray:
    """(1, 320, 320, 3) float32: the astronaut photo as U²-Net-p's callers prepare it."""
    photo = Image.open(REPO / "docs" / "demo" / "astronaut.jpg").convert("RGB")
    photo = photo.resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.LANCZOS)
    return normalize_input(np.asarray(photo, np.float32) / 255)[None]


@pytest.fixture(scope="module")
def tiny_plate_log(tmp_path_factory) -> Path:
    """A log folder with one plate run, ``tiny``, in the train.py layout (step 3)."""
    log_dir = tmp_path_factory.mktemp("log")
    keras.utils.set_random_seed(2)
    generator = build_generator(TINY_PLATE)
    # Fresh batch norms are the identity, whose folding into the convolutions is trivial.
    rng = np.random.default_rng(2)
    for layer in generator.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            shapes = [weight.shape for weight in layer.get_weights()]
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, shapes[0]).astype(np.float32),
                    rng.normal(0.0, 0.3, shapes[1]).astype(np.float32),
                    rng.normal(0.0, 0.3, shapes[2]).astype(np.float32),
                    rng.uniform(0.2, 2.0, shapes[3]).astype(np.float32),
                ]
            )
    tf.train.CheckpointManager(
        tf.train.Checkpoint(generator=generator), log_dir / "tiny" / "checkpoints", 1, "ckpt"
    ).save(checkpoint_number=3)
    config = {"model": TINY_PLATE.to_dict(), "seed": 2}
    (log_dir / "tiny" / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return log_dir


@pytest.fixture(scope="module")
def tiny_plate(tiny_plate_log):
    return load_generator(str(tiny_plate_log / "tiny"))


@pytest.fixture(scope="module")
def saliency() -> keras.Model:
    return load_saliency()


def _run_export(fmt: str, path: Path, batch: np.ndarray, names: tuple[str, str]) -> np.ndarray:
    """Run an exported model with its own runtime (never the Keras objects that made it)."""
    input_name, output_name = names
    if fmt == "keras":
        return keras.models.load_model(path)(batch, training=False).numpy()
    if fmt == "savedmodel":
        serve = tf.saved_model.load(str(path)).signatures["serving_default"]
        return serve(**{input_name: tf.constant(batch)})[output_name].numpy()
    if fmt == "tflite":
        runner = Interpreter(model_path=str(path)).get_signature_runner("serving_default")
        return runner(**{input_name: batch})[output_name]
    return OnnxGenerator(path)(batch)


def _cli(*argv: str) -> int:
    return main(build_parser().parse_args(list(argv)))


# --- the plate generator ----------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "name"), FORMATS)
def test_plate_generator_every_format_matches_keras_at_any_size(
    fmt, name, tiny_plate, plate_sample, tmp_path
):
    generator, config, ref = tiny_plate
    out = tmp_path / name
    export_generator(generator, config, fmt, out, source={"checkpoint": str(ref.path)})
    contract = read_contract(out, fmt)
    assert contract["input"]["name"] == "rgb_plate"
    assert contract["input"]["shape"] == [None, None, None, 6]
    assert contract["input"]["channels"][3:] == ["plate red", "plate green", "plate blue"]
    assert contract["model_config"]["task"] == "plate"
    assert contract["postprocess"].startswith("none: alpha is final")
    small = np.ascontiguousarray(plate_sample[:, 100:164, 40:136])  # 64 x 96, non-square
    for batch in (plate_sample, small):
        expected = generator(batch, training=False).numpy()
        difference = np.abs(_run_export(fmt, out, batch, ("rgb_plate", "alpha")) - expected)
        assert difference.max() <= FP32_TOLERANCE, (fmt, batch.shape)


def test_plate_onnx_loads_for_matting_with_a_plate_config(tiny_plate_log, tmp_path, capsys):
    out = tmp_path / "p.onnx"
    run = str(tiny_plate_log / "tiny")
    assert _cli("--checkpoint", run, "--format", "onnx", "--out", str(out)) == 0
    assert "onnx: " in capsys.readouterr().out
    network, config, ref = load_for_matting(out)
    assert (config.task, network.channels, ref.step) == ("plate", 6, 3)


@pytest.mark.slow
def test_shipped_plate_generator_onnx_matches_keras(plate_sample, tmp_path):
    out = tmp_path / "p.onnx"
    assert _cli("--checkpoint", str(PRETRAINED_PLATE), "--format", "onnx", "--out", str(out)) == 0
    contract = read_contract(out, "onnx")
    assert contract["source"]["step"] == 800
    assert contract["spatial_multiple"] == 16
    generator = load_generator(str(PRETRAINED_PLATE))[0]
    # Measured on this sample: 1.2e-6 (eager Keras vs onnxruntime, both fp32).
    expected = generator(plate_sample, training=False).numpy()
    assert np.abs(OnnxGenerator(out)(plate_sample) - expected).max() <= FP32_TOLERANCE


# --- U²-Net-p saliency ------------------------------------------------------------------------


@pytest.mark.slow
def test_load_saliency_is_the_fused_map_of_u2netp(saliency, saliency_sample):
    full = build_u2netp()
    full.load_weights(DEFAULT_WEIGHTS)
    outputs = full(saliency_sample, training=False)
    fused = saliency(saliency_sample, training=False).numpy()
    np.testing.assert_array_equal(fused, outputs[0].numpy())
    # The astronaut is salient: the map is not flat (a wrong output or weights would be).
    assert fused.max() > 0.9 and fused.min() < 0.1


@pytest.mark.slow
@pytest.mark.parametrize(("fmt", "name"), [f for f in FORMATS if f != ("onnx", "m.onnx")])
def test_saliency_other_formats_match_keras(fmt, name, saliency, saliency_sample, tmp_path):
    out = tmp_path / name
    contract = export_saliency(saliency, fmt, out, source={"weights": str(DEFAULT_WEIGHTS)})
    assert read_contract(out, fmt) == contract
    assert contract["network"] == "saliency"
    assert contract["size"] == [320, 320]
    assert contract["input"]["shape"] == [None, 320, 320, 3]
    assert "ImageNet" in contract["input"]["normalisation"]
    # Two photos in one batch: the batch stays dynamic.
    batch = np.concatenate([saliency_sample, saliency_sample[:, ::-1]])
    expected = saliency(batch, training=False).numpy()
    difference = np.abs(_run_export(fmt, out, batch, ("image", "saliency")) - expected)
    assert difference.max() <= FP32_TOLERANCE, fmt


@pytest.mark.slow
def test_cli_saliency_onnx_matches_keras_and_is_no_matting_generator(
    saliency, saliency_sample, tmp_path, capsys
):
    out = tmp_path / "s.onnx"
    assert _cli("--network", "saliency", "--format", "onnx", "--out", str(out)) == 0
    assert "U²-Net-p saliency, 320x320" in capsys.readouterr().out
    contract = read_contract(out, "onnx")
    assert contract["source"]["weights"] == str(DEFAULT_WEIGHTS)
    assert len(contract["source"]["sha256"]) == 64
    network = OnnxGenerator(out)
    # Measured on this sample: 3.9e-5, as the Keras model against upstream's own ONNX file.
    expected = saliency(saliency_sample, training=False).numpy()
    assert np.abs(network(saliency_sample) - expected).max() <= FP32_TOLERANCE
    with pytest.raises(ValueError, match="exported for 320x320 inputs, got 384x384"):
        network(np.zeros((1, 384, 384, 3), np.float32))
    with pytest.raises(CheckpointError, match=r"s\.onnx: a saliency network, not a matting"):
        load_for_matting(out)


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--weights", "w.weights.h5"], "--weights: only --network saliency loads a weights file"),
        (
            ["--network", "saliency", "--checkpoint", "-1"],
            "--checkpoint: --network saliency loads --weights, not a checkpoint",
        ),
        (
            ["--network", "saliency", "--size", "320"],
            "--size: --network saliency is always 320x320; drop --size",
        ),
    ],
)
def test_cli_rejects_flags_of_the_other_network(argv, message, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert _cli(*argv, "--format", "onnx", "--out", str(out)) == 2
    assert capsys.readouterr().err == f"error: {message}\n"
    assert list(tmp_path.iterdir()) == []


def test_cli_bad_saliency_weights_are_one_line(tmp_path, capsys):
    out = tmp_path / "s.onnx"
    missing = tmp_path / "nope.weights.h5"
    assert _cli("--network", "saliency", "--weights", str(missing), "--format", "onnx",
                "--out", str(out)) == 2  # fmt: skip
    assert capsys.readouterr().err == f"error: {missing}: no such file\n"
    junk = tmp_path / "junk.weights.h5"
    junk.write_bytes(b"not hdf5")
    assert _cli("--network", "saliency", "--weights", str(junk), "--format", "onnx",
                "--out", str(out)) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.startswith(f"error: {junk}: not U²-Net-p weights (")
    assert err.count("\n") == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["junk.weights.h5"]
