"""model.engine: a run's own model.onnx runs in place of its checkpoint, and only while it
matches it (``--engine auto``); ``--engine tensorflow`` and ``--engine onnx`` force the choice.

A tiny run (train.py layout) gets ``model.onnx`` exported from its checkpoint, as the shipped
snapshot has; the TensorFlow path on the same checkpoint is the reference.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_inference import write_run
from test_onnx_inference import PLAIN, pair  # noqa: F401 (a fixture)

import eval as eval_cli
from model import engine
from model.checkpoints import CheckpointError, resolve_checkpoint
from model.export import checkpoint_source, export_generator, load_generator
from model.images import read_image, read_trimap
from model.inference import Matter

ROOT = Path(__file__).resolve().parents[1]


def _with_export(log: Path, name: str) -> Path:
    """A run whose folder holds model.onnx (+ .json) exported from its checkpoint."""
    run = write_run(log, name, PLAIN)
    generator, config, ref = load_generator(str(run), log)
    export_generator(
        generator, config, "onnx", run / engine.EXPORT_NAME, source=checkpoint_source(ref)
    )
    return run


@pytest.fixture(scope="module")
def log(tmp_path_factory) -> Path:
    log = tmp_path_factory.mktemp("engine") / "log"
    _with_export(log, "run")
    return log


@pytest.fixture
def stale(log, tmp_path) -> Path:
    """A copy of the run with a newer checkpoint saved after the export: -1 resolves to it."""
    copy = tmp_path / "log"
    shutil.copytree(log / "run", copy / "run")
    write_run(copy, "run", PLAIN, step=9)
    return copy


def test_digest_is_the_sha256_of_index_then_data(log):
    ref = resolve_checkpoint("-1", log)
    index, data = ref.path.with_suffix(".index"), Path(f"{ref.path}.data-00000-of-00001")
    expected = hashlib.sha256(index.read_bytes() + data.read_bytes()).hexdigest()
    assert engine.checkpoint_digest(ref.path) == expected


def test_auto_runs_the_matching_export_and_tensorflow_agrees(log, pair):  # noqa: F811
    matter = Matter.load("-1", log)
    assert (matter.engine, matter.device) == ("onnxruntime", "CPU")
    assert (matter.ref.path, matter.ref.step) == (log / "run" / "model.onnx", 7)
    assert engine.describe(matter) == f"{log / 'run' / 'model.onnx'} (step 7), onnxruntime on CPU"
    reference = Matter.load("-1", log, engine="tensorflow")
    assert reference.engine == "tensorflow"
    assert reference.ref.path == log / "run" / "checkpoints" / "ckpt-7"
    image, trimap = read_image(pair[0]), read_trimap(pair[1])
    alpha = matter.predict_alpha(image, trimap)
    assert np.abs(alpha - reference.predict_alpha(image, trimap)).max() <= 1e-4
    assert ((alpha > 0.01) & (alpha < 0.99)).sum() > 100  # the network's answer, not the clamp's


def test_stale_export_is_ignored_with_a_one_line_notice(stale):
    notices = []
    ref = resolve_checkpoint("-1", stale)
    assert ref.step == 9
    assert engine.choose_export(ref, "auto", notices.append) is None
    assert len(notices) == 1 and "\n" not in notices[0]
    assert notices[0].startswith(
        f"{stale / 'run' / 'model.onnx'}: exported from another checkpoint than {ref.path}"
        " (sha256 differs), so TensorFlow runs it; re-export: python3 scripts/export.py"
    )


def test_stale_export_through_eval_is_one_notice_then_tensorflow(stale, pair, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "out.png"
    args = [*map(str, pair), str(out), "--log-dir", str(stale), "--verbose"]
    assert eval_cli.main(args) == 0
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("notice: ") and "sha256 differs" in lines[0]
    checkpoint = stale / "run" / "checkpoints" / "ckpt-9"
    assert lines[1].startswith(f"model: {checkpoint} (step 9), tensorflow on ")
    assert out.is_file()


def test_engine_onnx_with_a_stale_export_is_a_one_line_error(stale, pair, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "out.png"
    args = [*map(str, pair), str(out), "--log-dir", str(stale), "--engine", "onnx"]
    assert eval_cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --engine onnx: ")
    assert "sha256 differs" in err and "--fp16" in err
    assert not out.exists()


def test_engine_onnx_without_export_or_runtime_is_an_error(log, tmp_path, monkeypatch):
    bare = write_run(tmp_path / "log", "bare", PLAIN)
    with pytest.raises(CheckpointError, match=f"^--engine onnx: {bare}: no model.onnx export"):
        Matter.load("-1", tmp_path / "log", engine="onnx")
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        engine.importlib.util,
        "find_spec",
        lambda name, *rest: None if name == "onnxruntime" else find_spec(name, *rest),
    )
    ref = resolve_checkpoint("-1", log)
    # auto falls back quietly (the GPU install leaves onnxruntime out on purpose)...
    assert engine.choose_export(ref, "auto", notice=pytest.fail) is None
    # ...onnx says why.
    with pytest.raises(CheckpointError, match="onnxruntime is not installed"):
        engine.choose_export(ref, "onnx")


def test_an_onnx_file_refuses_engine_tensorflow(log):
    with pytest.raises(CheckpointError, match="--engine tensorflow takes a checkpoint"):
        Matter.load(str(log / "run" / "model.onnx"), engine="tensorflow")


@pytest.mark.parametrize(("onnx_gpu", "expected"), [(False, None), (True, "model.onnx")])
def test_auto_leaves_a_usable_gpu_to_tensorflow(log, monkeypatch, onnx_gpu, expected):
    monkeypatch.setattr(engine, "gpu_for_tensorflow", lambda: True)
    monkeypatch.setattr(engine, "onnx_gpu", lambda: onnx_gpu)
    export = engine.choose_export(resolve_checkpoint("-1", log), "auto", notice=pytest.fail)
    assert (export.name if export else None) == expected


def test_gpu_for_tensorflow_respects_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert engine.gpu_for_tensorflow() is False


def _modules_after_eval(args: list[str]) -> subprocess.CompletedProcess:
    """Run eval.main(args) in a fresh interpreter; stdout lists tensorflow, keras and
    onnxruntime if they were imported."""
    code = (
        "import sys, eval\n"
        "status = eval.main(sys.argv[1:])\n"
        "names = ('tensorflow', 'keras', 'onnxruntime')\n"
        "print(sorted(name for name in names if name in sys.modules))\n"
        "sys.exit(status)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_default_imports_no_tensorflow_and_engine_tensorflow_no_onnxruntime(
    log,
    pair,  # noqa: F811
    tmp_path,
):
    common = [*map(str, pair)]
    auto = _modules_after_eval([*common, str(tmp_path / "a.png"), "--log-dir", str(log)])
    assert auto.returncode == 0, auto.stderr
    assert auto.stdout.strip() == "['onnxruntime']"
    forced = _modules_after_eval(
        [*common, str(tmp_path / "t.png"), "--log-dir", str(log), "--engine", "tensorflow"]
    )
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.strip() == "['keras', 'tensorflow']"
