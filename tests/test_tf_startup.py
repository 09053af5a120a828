"""Tests for model.tf_startup: TensorFlow's start-up notices kept off stderr, and device names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model.images import write_png
from model.tf_startup import NOISE, filtered_stderr, start_runtime

ROOT = Path(__file__).resolve().parents[1]

# Copied from a TensorFlow 2.21 CPU start-up with TF_CPP_MIN_LOG_LEVEL unset, plus the lines a
# CUDA build prints on a machine without a usable GPU (tensorflow/tensorflow#62075).
NOTICES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796183115.437722    8733 port.cc:153] oneDNN custom operations are on. You may"
    " see slightly different numerical results due to floating-point round-off errors from"
    " different computation orders. To turn them off, set the environment variable"
    " `TF_ENABLE_ONEDNN_OPTS=0`.",
    "I0000 00:00:1796183115.535992    8733 cpu_feature_guard.cc:227] This TensorFlow binary is"
    " optimized to use available CPU instructions in performance-critical operations.",
    "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild"
    " TensorFlow with the appropriate compiler flags.",
    "E0000 00:00:1700000000.000000    1234 cuda_dnn.cc:8310] Unable to register cuDNN factory:"
    " Attempting to register factory for plugin cuDNN when one has already been registered",
    "W0000 00:00:1700000000.000000    1234 gpu_device.cc:2344] Cannot dlopen some GPU libraries.",
]
KEPT = [
    "error: log/run/config.json: the checkpoint does not match the architecture",
    "E0000 00:00:1700000000.000000    1234 op_kernel.cc:1000] OP_REQUIRES failed: out of memory",
    "Traceback (most recent call last):",
    "/usr/lib/python3/warnings.py:1: UserWarning: something the user should see",
]


@pytest.mark.parametrize("line", NOTICES)
def test_known_notices_are_noise(line):
    assert NOISE.match(line)


@pytest.mark.parametrize("line", KEPT)
def test_other_lines_are_not_noise(line):
    assert not NOISE.match(line)


def test_filtered_stderr_replays_everything_but_the_notices_in_order(capfd):
    with filtered_stderr():
        # Written below Python, as TensorFlow's C++ code writes them, interleaved with ours.
        os.write(2, f"{NOTICES[0]}\n{KEPT[0]}\n{NOTICES[1]}\n".encode())
        os.write(2, f"{KEPT[2]}\n".encode())
        os.write(2, f"{NOTICES[2]}\n{NOTICES[3]}\n{KEPT[1]}".encode())  # no final newline
    assert capfd.readouterr().err == f"{KEPT[0]}\n{KEPT[2]}\n{KEPT[1]}"


def test_filtered_stderr_restores_stderr_after_an_exception(capfd):
    with pytest.raises(RuntimeError), filtered_stderr():
        os.write(2, b"kept before the failure\n")
        raise RuntimeError("boom")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "kept before the failure\nafter\n"


def test_start_runtime_names_the_device_tensorflow_uses():
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    device = start_runtime()
    if gpus:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "")
        assert device.startswith("GPU:0") and name in device
    else:
        assert device == "CPU"


@pytest.mark.slow
def test_eval_with_a_damaged_checkpoint_prints_exactly_one_line(tmp_path):
    """TensorFlow is imported and the runtime started before the restore fails."""
    from test_inference import write_run

    run = write_run(tmp_path / "log")
    data = next((run / "checkpoints").glob("ckpt-*.data-*"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    image = np.full((40, 48, 3), 0.5, np.float32)
    trimap = np.full((40, 48), 0.5, np.float32)
    write_png(tmp_path / "in.png", image)
    write_png(tmp_path / "trimap.png", trimap)
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "eval.py"), "in.png", "trimap.png", "out.png", "--log-dir=log"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert not (tmp_path / "out.png").exists()


def test_serve_health_names_the_device(tmp_path):
    from fastapi.testclient import TestClient
    from test_inference import write_run

    from model.inference import Matter
    from model.server import create_app

    write_run(tmp_path / "log")
    matter = Matter.load("-1", tmp_path / "log")
    with TestClient(create_app(matter)) as client:
        body = client.get("/api/health").json()
    assert body["device"] == matter.device == start_runtime()
