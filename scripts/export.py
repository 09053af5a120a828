"""Export the matting generator for other runtimes: .keras, SavedModel, ONNX or TFLite.

Each export also writes its contract, ``OUT.json``: tensor names, layout, channels, value
ranges, the spatial multiple, the fixed size if any, the source checkpoint and the model
config (see ``model/export_contract.py``). Height, width and batch stay dynamic unless
``--size`` fixes them (batch 1, for runtimes and delegates that want static shapes).

Usage::

    python3 scripts/export.py --format onnx --out m.onnx          # newest run, else log/pretrained
    python3 scripts/export.py --checkpoint log/pretrained --format tflite --out m.tflite --fp16
    python3 scripts/export.py --format savedmodel --out m_savedmodel --size 384
    python3 scripts/export.py --checkpoint -2 --format keras --out m.keras --force

The onnx format needs the converters of requirements-export.txt (tf2onnx, onnx).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse

from model.checkpoints import CheckpointError, resolve_checkpoint
from model.cli import ArgumentParser
from model.export_contract import FORMATS, ExportError, check_request, contract_path

BAD_INPUT = 2
RUNTIME_FAILURE = 1


def size_argument(text: str) -> tuple[int, int]:
    """argparse type for --size: ``N`` (square) or ``HxW``."""
    parts = text.lower().split("x")
    if len(parts) > 2 or not all(part.strip().isdigit() for part in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not N or HxW")
    values = [int(part) for part in parts]
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: sides must be positive")
    return values[0], values[-1]


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="scripts/export.py",
        description="Export the matting generator as .keras, SavedModel, ONNX or TFLite.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    model = parser.add_argument_group("model")
    model.add_argument(
        "--checkpoint",
        default="-1",
        help="-1 newest, -2 the one before, N the step, or a path (default: -1)",
    )
    model.add_argument(
        "--log-dir", type=Path, default=Path("log"), help="runs folder (default: log)"
    )
    export = parser.add_argument_group("export")
    export.add_argument("--format", required=True, choices=FORMATS, help="what to write")
    export.add_argument(
        "--out", type=Path, required=True, help="file to write (a folder for savedmodel)"
    )
    export.add_argument(
        "--size",
        type=size_argument,
        help="fix the input to N x N or H x W pixels, batch 1 (default: dynamic)",
    )
    export.add_argument(
        "--fp16", action="store_true", help="tflite only: store the weights as float16"
    )
    export.add_argument("--force", action="store_true", help="replace --out if it exists")
    return parser


def main(args: argparse.Namespace) -> int:
    # Argument and checkpoint problems are reported before TensorFlow is imported (seconds).
    try:
        ref = resolve_checkpoint(args.checkpoint, args.log_dir)
        check_request(args.format, args.out, size=args.size, fp16=args.fp16, force=args.force)
    except (CheckpointError, ExportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return BAD_INPUT
    from model.export import checkpoint_source, export_generator, load_generator

    try:
        generator, config, ref = load_generator(str(ref.path))
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return BAD_INPUT
    try:
        contract = export_generator(
            generator,
            config,
            args.format,
            args.out,
            size=args.size,
            fp16=args.fp16,
            source=checkpoint_source(ref),
            force=args.force,
        )
    except ExportError as error:  # a --size that is not a multiple of the architecture's
        print(f"error: {error}", file=sys.stderr)
        return BAD_INPUT
    except ModuleNotFoundError as error:
        print(
            f"error: --format {args.format} needs {error.name}:"
            " pip install -r requirements-export.txt",
            file=sys.stderr,
        )
        return RUNTIME_FAILURE
    size = contract["size"]
    shape = f"{size[0]}x{size[1]}" if size else "any size"
    print(
        f"{args.format}: {args.out} ({shape}, multiple of {contract['spatial_multiple']}),"
        f" contract {contract_path(args.out)}, from {ref.path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
