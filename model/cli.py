"""Argument parsing shared by the command-line tools: one-line errors, checked number types.

``argparse`` normally answers bad arguments with the usage text and ``prog: error: ...``; the
project's convention is a single ``error: <what>: <problem>`` line and exit code 2, which
:class:`ArgumentParser` gives.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one ``error: ...`` line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {message}\n")
        raise SystemExit(2)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return value


def fraction(text: str) -> float:
    """argparse type: a number in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), not {value}")
    return value


def add_process_workers(parser: argparse.ArgumentParser) -> None:
    """The "running" group: ``--workers`` processes, all CPU cores by default."""
    parser.add_argument_group("running").add_argument(
        "--workers",
        type=positive_int,
        default=os.cpu_count() or 1,
        help="worker processes (default: all CPU cores)",
    )


def add_network_pixels(group: argparse._ArgumentGroup, default: int) -> None:
    """``--network-pixels`` of eval.py and serve.py (``model.inference.Matter``'s option)."""
    group.add_argument(
        "--network-pixels",
        type=non_negative_int,
        default=default,
        help="run the network at about this many pixels and guided-upsample its matte; 0 runs"
        " it at full resolution (default: %(default)s)",
    )


def add_engine(group: argparse._ArgumentGroup) -> None:
    """``--engine`` of eval.py and serve.py (``model.engine``)."""
    from model.engine import ENGINES

    group.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="auto: the run's own model.onnx on onnxruntime when it was exported from this"
        " checkpoint (no TensorFlow import), else TensorFlow; tensorflow: always TensorFlow;"
        " onnx: the export or an error (default: %(default)s)",
    )


@contextlib.contextmanager
def first_interrupt_only() -> Iterator[None]:
    """Turn the first Ctrl-C into KeyboardInterrupt and ignore every later one.

    An impatient user presses Ctrl-C again while the first one's cleanup (deleting a temp
    file, closing an encoder) runs; a second KeyboardInterrupt there would leave the temp file
    behind and print a traceback instead of the one-line message. Main thread only. After an
    interrupt, SIGINT stays ignored: the process is on its way out.
    """
    interrupted = False

    def handler(_signum, _frame):
        nonlocal interrupted
        interrupted = True
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        if not interrupted:
            signal.signal(signal.SIGINT, previous)


def unit_interval(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], not {value}")
    return value


def band_fraction(text: str) -> float:
    """argparse type: a number in [0, 0.5]."""
    value = unit_interval(text)
    if value > 0.5:
        raise argparse.ArgumentTypeError(f"must be in [0, 0.5], not {value}")
    return value


def add_auto_trimap_options(
    group: argparse._ArgumentGroup, prefix: str = "", weights_flag: str = "--saliency-weights"
) -> None:
    """The automatic trimap's thresholds, band and weights (``model/auto_trimap.py``).

    generate_trimaps.py takes them as ``--foreground``/``--background``/``--band``; eval.py and
    serve.py, where ``--background`` names the backdrop of a composite, as ``--trimap-*``
    (``prefix="trimap-"``). The values land in ``trimap_foreground``, ``trimap_background``,
    ``trimap_band`` and ``saliency_weights`` whatever the flags are called; read them with
    :func:`auto_trimap_settings`. ``--trimap-model`` (``trimap_model``) picks the source:
    ``saliency`` or a trimap-network checkpoint (``model.trimap_inference.make_trimapper``).
    """
    # Here, not at the top: the other tools need none of auto_trimap's imports (OpenCV).
    from model.auto_trimap import (
        DEFAULT_BACKGROUND,
        DEFAULT_BAND,
        DEFAULT_FOREGROUND,
        DEFAULT_WEIGHTS,
    )

    group.add_argument(
        f"--{prefix}foreground",
        dest="trimap_foreground",
        type=unit_interval,
        default=DEFAULT_FOREGROUND,
        metavar="T",
        help="saliency >= T is foreground (default: 240/255 = %(default).3f)",
    )
    group.add_argument(
        f"--{prefix}background",
        dest="trimap_background",
        type=unit_interval,
        default=DEFAULT_BACKGROUND,
        metavar="T",
        help="saliency <= T is background (default: 10/255 = %(default).3f)",
    )
    group.add_argument(
        f"--{prefix}band",
        dest="trimap_band",
        type=band_fraction,
        default=DEFAULT_BAND,
        metavar="F",
        help="margin of unknown pixels on each side of the uncertain region, as a fraction of"
        " the shorter image side (default: %(default)s)",
    )
    group.add_argument(
        weights_flag,
        dest="saliency_weights",
        type=Path,
        default=DEFAULT_WEIGHTS,
        metavar="FILE",
        help="U²-Net-p Keras weights (default: log/pretrained-saliency/u2netp.weights.h5)",
    )
    group.add_argument(
        "--trimap-model",
        default="saliency",
        metavar="PATH|saliency",
        help="where automatic trimaps come from: 'saliency' (U²-Net-p, the thresholds and band"
        " above) or a trimap network trained with train.py --task trimap (a run folder or"
        " checkpoint, e.g. log/pretrained-trimap) (default: %(default)s)",
    )


def auto_trimap_settings(options: argparse.Namespace, prefix: str = "") -> dict[str, float]:
    """``foreground``, ``background`` and ``band`` from :func:`add_auto_trimap_options`' flags.

    Raises
    ------
    ValueError
        The background threshold is not below the foreground one; the message names the flags
        as given (``--background 0.4 must be below --foreground 0.3``).
    """
    foreground, background = options.trimap_foreground, options.trimap_background
    if background >= foreground:
        raise ValueError(
            f"--{prefix}background {background} must be below --{prefix}foreground {foreground}"
        )
    return {"foreground": foreground, "background": background, "band": options.trimap_band}


BAD_INPUT = 2
"""Exit status for bad input: a file, an argument or a checkpoint that cannot be used."""
RUNTIME_FAILURE = 1
"""Exit status for anything else that went wrong."""


class UsageError(ValueError):
    """Arguments that do not fit together; ``str(error)`` is ``"<argument>: <problem>"``."""
