"""Export a shipped network for other runtimes: .keras, SavedModel, ONNX or TFLite.

``--network generator`` (the default) exports the generator of a checkpoint: the matting
generator (``log/pretrained``) or the background-plate generator (``log/pretrained-plate``),
whichever the run's config.json describes. ``--network saliency`` exports U²-Net-p from its
Keras weights (``--weights``), fixed at 320 x 320, as its fused saliency map.

Each export also writes its contract, ``OUT.json``: tensor names, layout, channels, value
ranges, the spatial multiple, the fixed size if any, the source checkpoint and the model
config (see ``model/export_contract.py``); ``source.sha256`` fingerprints the checkpoint's
files, so eval.py and serve.py run ``<run>/model.onnx`` in place of the run's checkpoint only
while it matches (``model/engine.py``). Height, width and batch stay dynamic unless
``--size`` fixes them (batch 1, for runtimes and delegates that want static shapes).

Usage::

    python3 scripts/export.py --format onnx --out m.onnx          # newest run, else log/pretrained
    python3 scripts/export.py --checkpoint log/pretrained --format tflite --out m.tflite --fp16
    python3 scripts/export.py --checkpoint log/pretrained --format onnx --fp16 \
        --out log/pretrained/model.onnx --force          # the shipped export eval.py runs
    python3 scripts/export.py --format savedmodel --out m_savedmodel --size 384
    python3 scripts/export.py --checkpoint -2 --format keras --out m.keras --force
    python3 scripts/export.py --checkpoint log/pretrained-plate --format onnx --out p.onnx
    python3 scripts/export.py --network saliency --format tflite --out u2netp.tflite

The onnx format needs the converters of requirements-export.txt (tf2onnx, onnx).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from model.auto_trimap import DEFAULT_WEIGHTS
from model.checkpoints import CheckpointError, resolve_checkpoint
from model.cli import ArgumentParser
from model.export_contract import FORMATS, ExportError, check_request, contract_path
from model.tf_startup import install as quiet_tensorflow

NETWORKS = ("generator", "saliency")
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
        description="Export a shipped network as .keras, SavedModel, ONNX or TFLite.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    model = parser.add_argument_group("model")
    model.add_argument(
        "--network",
        choices=NETWORKS,
        default="generator",
        help="generator: a checkpoint's, matting or plate; saliency: U²-Net-p"
        " (default: %(default)s)",
    )
    model.add_argument(
        "--checkpoint",
        help="generator: -1 newest, -2 the one before, N the step, or a path (default: -1)",
    )
    model.add_argument(
        "--weights",
        type=Path,
        help="saliency: U²-Net-p Keras weights"
        " (default: log/pretrained-saliency/u2netp.weights.h5)",
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
        "--fp16",
        action="store_true",
        help="tflite and onnx: store the weights as float16 (half the file; computation stays"
        " float32)",
    )
    export.add_argument("--force", action="store_true", help="replace --out if it exists")
    return parser


def check_network_flags(args: argparse.Namespace) -> None:
    """Raise ExportError for a flag that the chosen ``--network`` does not take."""
    if args.network == "generator" and args.weights is not None:
        raise ExportError("--weights: only --network saliency loads a weights file")
    if args.network == "saliency" and args.checkpoint is not None:
        raise ExportError("--checkpoint: --network saliency loads --weights, not a checkpoint")
    if args.network == "saliency" and args.size is not None:
        raise ExportError("--size: --network saliency is always 320x320; drop --size")


def main(args: argparse.Namespace) -> int:
    # Argument and checkpoint problems are reported before TensorFlow is imported (seconds).
    try:
        check_network_flags(args)
        check_request(args.format, args.out, size=args.size, fp16=args.fp16, force=args.force)
        if args.network == "saliency":
            return export_saliency_network(args)
        ref = resolve_checkpoint(args.checkpoint or "-1", args.log_dir)
    except (CheckpointError, ExportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return BAD_INPUT
    quiet_tensorflow()
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
        return missing_converter(args.format, error)
    size = contract["size"]
    shape = f"{size[0]}x{size[1]}" if size else "any size"
    print(
        f"{args.format}: {args.out} ({shape}, multiple of {contract['spatial_multiple']}),"
        f" contract {contract_path(args.out)}, from {ref.path}"
    )
    return 0


def export_saliency_network(args: argparse.Namespace) -> int:
    """``--network saliency``: U²-Net-p from ``args.weights`` (default: the shipped file)."""
    weights = args.weights or DEFAULT_WEIGHTS
    if not weights.is_file():  # before TensorFlow's start-up, like a bad checkpoint
        raise ExportError(f"{weights}: no such file")
    quiet_tensorflow()
    from model.auto_trimap import SaliencyWeightsError
    from model.export import export_saliency, load_saliency, weights_source

    try:
        network = load_saliency(weights)
        contract = export_saliency(
            network,
            args.format,
            args.out,
            fp16=args.fp16,
            source=weights_source(weights),
            force=args.force,
        )
    except SaliencyWeightsError as error:
        raise ExportError(str(error)) from None
    except ModuleNotFoundError as error:
        return missing_converter(args.format, error)
    height, width = contract["size"]
    print(
        f"{args.format}: {args.out} (U²-Net-p saliency, {height}x{width}),"
        f" contract {contract_path(args.out)}, from {weights}"
    )
    return 0


def missing_converter(fmt: str, error: ModuleNotFoundError) -> int:
    print(
        f"error: --format {fmt} needs {error.name}: pip install -r requirements-export.txt",
        file=sys.stderr,
    )
    return RUNTIME_FAILURE


if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
