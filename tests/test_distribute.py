"""tf.distribute tests for train.py, each in fresh processes.

Logical devices and the multi-worker runtime must be configured before TensorFlow starts, so
these run ``train.py`` (or a small launcher for it) as child processes.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

REPO = Path(__file__).resolve().parents[1]
TINY_FLAGS = [
    "--base-filters", "4", "--depth", "2", "--disc-filters", "4", "--disc-layers", "2",
    "--crop-size", "32", "--batch-size", "2", "--quiet", "--steps", "4", "--save-every", "2",
]  # fmt: skip

# Splits the CPU into two logical devices before TensorFlow initialises, then runs train.py.
TWO_CPUS = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import train
sys.exit(train.main(sys.argv[1:]))
"""


def ckpt_value(prefix: Path, key: str):
    return tf.train.load_checkpoint(str(prefix)).get_tensor(f"{key}/.ATTRIBUTES/VARIABLE_VALUE")


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def steps_saved(folder: Path) -> list[int]:
    return sorted(int(p.name[len("ckpt-") : -len(".index")]) for p in folder.glob("ckpt-*.index"))


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus(tmp_path, tiny_dataset):
    log = tmp_path / "log"
    command = [sys.executable, "-c", TWO_CPUS, str(tiny_dataset), "--log-dir", str(log)]
    command += ["--run", "m", "--distribute", "mirrored", "--val-every", "2", *TINY_FLAGS]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "2 replica(s), global batch 4, chief" in done.stderr
    assert steps_saved(log / "m" / "checkpoints") == [2, 4]
    assert ckpt_value(log / "m" / "checkpoints" / "ckpt-4", "step") == 4
    assert ckpt_value(log / "m" / "checkpoints" / "ckpt-4", "g_optimizer/_iterations") == 4
    records = (log / "m" / "validation.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in records] == [0, 2, 4]


@pytest.mark.slow
def test_multiworker_with_two_local_processes(tmp_path, tiny_dataset):
    log = tmp_path / "log"
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes, temps = [], []
    for index in range(2):
        # Each worker gets its own TMPDIR, to check that the non-chief cleans up after itself.
        temp = tmp_path / f"tmp{index}"
        temp.mkdir()
        temps.append(temp)
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}}
            ),
            "TMPDIR": str(temp),
        }
        command = [sys.executable, str(REPO / "train.py"), str(tiny_dataset), "--log-dir"]
        command += [str(log), "--run", "mw", "--distribute", "multiworker", *TINY_FLAGS]
        processes.append(
            subprocess.Popen(
                command,
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=300))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
    assert "2 replica(s), global batch 4, chief" in outputs[0][1]
    assert "2 replica(s), global batch 4, worker" in outputs[1][1]
    assert "done: step 4" in outputs[0][0] and "done" not in outputs[1][0]

    # Only the chief's files: one run, its checkpoints at the cadence, nothing left by worker 1.
    assert sorted(p.name for p in log.iterdir()) == ["mw"]
    assert steps_saved(log / "mw" / "checkpoints") == [2, 4]
    assert ckpt_value(log / "mw" / "checkpoints" / "ckpt-4", "step") == 4
    assert ckpt_value(log / "mw" / "checkpoints" / "ckpt-4", "d_optimizer/_iterations") == 4
    assert list(temps[1].glob("matting-worker-*")) == []
