"""The onnxruntime inference path: ``Matter.load("m.onnx")``, ``eval.py`` and ``serve.py``.

Tiny generators (one plain, one taking the closed-form prior as a fifth channel) are saved as a
train.py run and exported with ``model.export``; the TensorFlow path on the run is the
reference the ONNX path must reproduce.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_inference import write_run

import eval as eval_cli
from model.checkpoints import CheckpointError
from model.export import export_generator, load_generator
from model.images import read_image, read_trimap, write_png
from model.inference import Matter
from model.networks import ModelConfig

ROOT = Path(__file__).resolve().parents[1]
PLAIN = ModelConfig(base_filters=4, depth=2, norm="batch", encoder_weights=None)
PRIOR = dataclasses.replace(PLAIN, prior="closed-form")
HEIGHT, WIDTH = 45, 61
ALPHA_TOLERANCE = 1e-4
"""Issue 19's fp32 parity bound, applied to the whole Matter pipeline's alpha."""


def _export(log: Path, cfg: ModelConfig, name: str, size=None) -> tuple[Path, Path]:
    """(run folder, .onnx path) for a fresh generator of ``cfg``."""
    run = write_run(log, name, cfg)
    generator, config, ref = load_generator(str(run), log)
    out = log.parent / f"{name}.onnx"
    export_generator(generator, config, "onnx", out, size=size, source={"step": ref.step})
    return run, out


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    log = tmp_path_factory.mktemp("onnx") / "log"
    return {"plain": _export(log, PLAIN, "plain"), "prior": _export(log, PRIOR, "prior")}


@pytest.fixture
def pair(tmp_path) -> tuple[Path, Path]:
    """A photo-like image and a trimap with a wavy unknown band, written as PNG."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    image = np.stack([yy / HEIGHT, xx / WIDTH, 0.5 + 0.4 * np.sin(xx / 5)], axis=-1)
    image = np.clip(image + rng.normal(0, 0.03, image.shape), 0, 1).astype(np.float32)
    edge = HEIGHT / 2 + 6 * np.sin(xx / 7)
    trimap = np.where(yy < edge - 5, 0.0, np.where(yy > edge + 5, 1.0, 0.5)).astype(np.float32)
    write_png(tmp_path / "in.png", image)
    write_png(tmp_path / "trimap.png", trimap)
    return tmp_path / "in.png", tmp_path / "trimap.png"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["plain", "prior"])
@pytest.mark.parametrize("network_pixels", [0, 24 * 24])
def test_onnx_matter_matches_the_tensorflow_matter(exported, pair, kind, network_pixels):
    run, onnx_path = exported[kind]
    image, trimap = read_image(pair[0]), read_trimap(pair[1])
    reference = Matter.load(str(run), network_pixels=network_pixels)
    matter = Matter.load(str(onnx_path), network_pixels=network_pixels)
    assert matter.config == reference.config
    assert (matter.engine, matter.device) == ("onnxruntime", "CPU")
    assert (matter.ref.path, matter.ref.step) == (onnx_path, 7)
    channels = ["red", "green", "blue", "trimap"] + (["prior"] if kind == "prior" else [])
    assert matter.generator.contract["input"]["channels"] == channels
    assert matter.generator.contract["input"]["shape"] == [None, None, None, len(channels)]
    expected = reference.predict_alpha(image, trimap)
    alpha = matter.predict_alpha(image, trimap)
    assert np.abs(alpha - expected).max() <= ALPHA_TOLERANCE
    # The network's answer, not the clamp's: the band holds values strictly between 0 and 1.
    assert ((alpha > 0.01) & (alpha < 0.99)).sum() > 100


@pytest.mark.slow
def test_eval_with_onnx_never_imports_tensorflow_and_writes_the_same_cutout(
    exported, pair, tmp_path
):
    run, onnx_path = exported["prior"]
    assert eval_cli.main([*map(str, pair), str(tmp_path / "tf.png"), "--checkpoint", str(run)]) == 0
    code = (
        "import sys, eval\n"
        "status = eval.main(sys.argv[1:])\n"
        "print(sorted(name for name in ('tensorflow', 'keras') if name in sys.modules))\n"
        "sys.exit(status)\n"
    )
    out = tmp_path / "onnx.png"
    args = [*map(str, pair), str(out), "--checkpoint", str(onnx_path), "--verbose"]
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert result.stderr.splitlines() == [f"model: {onnx_path} (step 7), onnxruntime on CPU"]
    with Image.open(tmp_path / "tf.png") as expected, Image.open(out) as got:
        difference = np.abs(np.asarray(got, np.int16) - np.asarray(expected, np.int16))
    # Alpha within 1e-4 can still round to the neighbouring 8-bit level.
    assert difference.max() <= 1


def test_serve_with_onnx_imports_no_tensorflow(exported):
    code = (
        "import sys, serve\n"
        "from model.server import create_app\n"
        "from model.inference import Matter\n"
        "matter = Matter.load(sys.argv[1])\n"
        "create_app(matter)\n"
        "print(sorted(name for name in ('tensorflow', 'keras') if name in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(exported["plain"][1])],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
def test_fixed_size_export_is_refused_in_one_line(exported, pair, tmp_path, capsys):
    log = exported["plain"][0].parent
    _, fixed = _export(log, PLAIN, "fixed", size=(32, 32))
    status = eval_cli.main([*map(str, pair), str(tmp_path / "o.png"), "--checkpoint", str(fixed)])
    assert status == 2
    assert capsys.readouterr().err == (
        f"error: {fixed}: exported for 32x32 inputs only; cut-outs need every size,"
        " so export it without --size\n"
    )
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda path: Path(f"{path}.json").unlink(), "no export contract beside"),
        (lambda path: path.write_bytes(b"not onnx"), "onnxruntime cannot load it"),
        (
            lambda path: _edit_contract(path, model_config={"depth": "deep"}),
            "no usable model_config",
        ),
        (
            lambda path: _edit_contract(path, model_config={**PLAIN.to_dict(), "prior": None}),
            "takes 5 input channels, but its model_config describes 4",
        ),
    ],
)
def test_broken_exports_are_checkpoint_errors(exported, tmp_path, damage, message):
    _, original = exported["prior"]
    path = tmp_path / "m.onnx"
    path.write_bytes(original.read_bytes())
    Path(f"{path}.json").write_bytes(Path(f"{original}.json").read_bytes())
    damage(path)
    with pytest.raises(CheckpointError, match=message) as error:
        Matter.load(str(path))
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def _edit_contract(path: Path, **fields) -> None:
    contract_file = Path(f"{path}.json")
    contract = json.loads(contract_file.read_text(encoding="utf-8"))
    contract.update(fields)
    contract_file.write_text(json.dumps(contract), encoding="utf-8")
