"""TensorFlow's start-up, quiet: its C++ notices filtered from stderr, and the device it runs on.

TensorFlow prints notices on stderr while it is imported, before its logging is configured, so
``TF_CPP_MIN_LOG_LEVEL`` does not reach them::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1796183070.678536    7271 port.cc:153] oneDNN custom operations are on. ...

(twice: two of its libraries each carry a copy of absl), plus, depending on the build and the
machine, CPU-feature, CUDA-factory, TensorRT and device-creation lines. A command that fails
would then print five lines where the contract is one. Turning oneDNN off
(``TF_ENABLE_ONEDNN_OPTS=0``) silences one notice but costs about 30 % of the speed, so instead
:func:`install` hooks the import: while ``tensorflow`` is imported, file descriptor 2 points at
a temporary file, and afterwards every line that is not a known notice (:data:`NOISE`) is
written to the real stderr, in order. Nothing else is lost: Python warnings and any unknown
C++ line are replayed. :func:`start_runtime` does the same around the runtime's first start
(where a GPU build announces the devices it created) and names the device.

Each command calls :func:`install` before anything imports TensorFlow; the import itself stays
lazy, so a bad argument is still answered before TensorFlow is loaded.

Example
-------
>>> install()                      # first thing in a CLI; cheap, imports nothing
>>> from model.inference import Matter
>>> start_runtime()                # 'CPU' or 'GPU:0 (NVIDIA H200)'
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile
from collections.abc import Iterator

NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    # absl's INFO lines (level letter I): start-up notices by definition.
    r"|I\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] "
    # WARNING and ERROR lines that every CPU-only or GPU machine prints and no user can act on.
    r"|[WE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] .*("
    r"Unable to register cu(DNN|FFT|BLAS) factory|TF-TRT Warning|Could not find TensorRT"
    r"|computation placer already registered|failed call to cuInit|Could not find cuda drivers"
    r"|Cannot dlopen some GPU libraries|oneDNN custom operations)"
    # The second line of cpu_feature_guard's notice.
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler"
)
"""Known start-up notices (matched at the start of a line); every other line is replayed."""


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Send file descriptor 2 to a temporary file; on exit replay it without :data:`NOISE` lines.

    Works below Python, so it also catches what C++ libraries write. Lines from other threads
    in the meantime are delayed, not lost. Nested use replays into the outer capture.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().splitlines(keepends=True) if not _noise(line)]
            if kept:
                os.write(2, b"".join(kept))


def _noise(line: bytes) -> bool:
    return bool(NOISE.match(line.decode("utf-8", "replace")))


class _QuietLoader(importlib.abc.Loader):
    """Wraps TensorFlow's own loader: runs its import under :func:`filtered_stderr`."""

    def __init__(self, loader: importlib.abc.Loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        with filtered_stderr():
            self._loader.exec_module(module)

    def __getattr__(self, name: str):
        # get_resource_reader, is_package, get_filename...: whatever importlib asks the real one.
        return getattr(self._loader, name)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` with the other finders and hands back a spec with a quiet loader."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        # One import only; the other finders must not see this one again while searching.
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def install() -> None:
    """Make the coming ``import tensorflow`` (by anyone, e.g. Keras) quiet on stderr.

    Also sets ``TF_CPP_MIN_LOG_LEVEL=2`` unless the caller chose a level, which hides the
    runtime's later INFO and WARNING messages. Does nothing if TensorFlow is already imported
    or the hook is already installed; imports nothing heavy.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietFinder())


_device: str | None = None


def start_runtime() -> str:
    """Start TensorFlow's runtime quietly (once) and name the device its ops run on.

    Returns
    -------
    str
        ``"GPU:0 (NVIDIA H200)"`` (TensorFlow places ops on the first GPU; more are counted, as
        in ``"GPU:0 (NVIDIA H200; 2 GPUs visible)"``) or ``"CPU"``.
    """
    global _device
    if _device is None:
        install()
        with filtered_stderr():
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            # Creating the logical devices is the runtime's start; a GPU build logs it.
            tf.config.list_logical_devices()
            _device = _gpu_name(tf, gpus) if gpus else "CPU"
    return _device


def _gpu_name(tf, gpus: list) -> str:
    details = tf.config.experimental.get_device_details(gpus[0])
    name = details.get("device_name", "")
    more = f"; {len(gpus)} GPUs visible" if len(gpus) > 1 else ""
    label = f"{name}{more}" if name else more.lstrip("; ")
    return f"GPU:0 ({label})" if label else "GPU:0"
