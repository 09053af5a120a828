"""Argument parsing shared by the command-line tools: one-line errors, checked number types.

``argparse`` normally answers bad arguments with the usage text and ``prog: error: ...``; the
project's convention is a single ``error: <what>: <problem>`` line and exit code 2, which
:class:`ArgumentParser` gives.
"""

from __future__ import annotations

import argparse
import os
import sys
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


def probability(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], not {value}")
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
