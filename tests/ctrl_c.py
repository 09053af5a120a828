"""Ctrl-C for the command-line tests: SIGINT to a script's whole process group, as a terminal
sends it, pressed three times, since an impatient user presses it again during the cleanup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def interrupt(script: Path, args: list[str], ready: Callable[[], bool], timeout: float = 60):
    """Run ``script args`` until ``ready()``, press Ctrl-C three times; (exit status, stderr).

    The status is negative (``-2``) when the process died by SIGINT instead of exiting.
    """
    process = subprocess.Popen(
        [sys.executable, str(script), *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert process.poll() is None, "the run ended before it could be interrupted"
            assert time.monotonic() < deadline, "the run did not get going"
            time.sleep(0.01)
        for _ in range(3):
            os.killpg(process.pid, signal.SIGINT)
            time.sleep(0.05)
        _, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode, err
