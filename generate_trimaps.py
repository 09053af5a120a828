"""Make a trimap for each photo automatically, from the U²-Net-p saliency network.

Writes ``<stem>_trimap.png`` (8-bit grey: 0 background, 128 unknown, 255 foreground) next to
each image, or into ``--out DIR``::

    python3 generate_trimaps.py docs/demo/photo.png       # -> docs/demo/photo_trimap.png
    python3 generate_trimaps.py photos/*.jpg --out trimaps/
    python3 generate_trimaps.py photo.jpg --force         # replace an existing photo_trimap.png
    python3 generate_trimaps.py photo.jpg --band 0.04 --foreground 0.9 --background 0.1

Pixels whose saliency is at least ``--foreground`` are foreground, at most ``--background``
background, the rest unknown; then both confident regions give up a margin of ``--band`` x
the shorter image side to the unknown region (``model/auto_trimap.py``). The weights are
``log/pretrained-saliency/u2netp.weights.h5`` (U²-Net-p, Apache-2.0; see its README).

Never overwritten: an input image (not even with ``--force``), and an existing trimap (unless
``--force``; it is kept and reported). Inputs named ``*_trimap.*`` are taken for earlier
outputs and skipped, so running again on ``photos/*`` does not make ``*_trimap_trimap.png``.

Errors: a bad file (missing, not an image, unreadable, a second image whose trimap would land
on the same file) gives one line ``error: <file>: <problem>`` on stderr; the other files are
still processed, and the exit status is 2 at the end. ``--stop-on-error`` stops at the first
one instead. Bad options and unusable weights give one line and exit status 2 straight away;
a failure inside the network gives exit status 1. A progress bar shows for several images.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from model.auto_trimap import SaliencyWeightsError, is_trimap_name, trimap_path
from model.checkpoints import CheckpointError
from model.cli import (
    BAD_INPUT,
    RUNTIME_FAILURE,
    ArgumentParser,
    UsageError,
    add_auto_trimap_options,
    auto_trimap_settings,
)
from model.images import ImageError, read_image, trimap_to_uint8, write_png
from model.tf_startup import install as quiet_tensorflow
from model.trimap_inference import make_trimapper


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="generate_trimaps.py",
        description="Write an automatic trimap for each photo.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    files = parser.add_argument_group("files")
    files.add_argument("images", nargs="+", type=Path, metavar="IMG", help="photos")
    files.add_argument(
        "--out", type=Path, metavar="DIR", help="write the trimaps here (default: beside each)"
    )
    files.add_argument("--force", action="store_true", help="replace existing trimaps")

    add_auto_trimap_options(parser.add_argument_group("trimap"), weights_flag="--weights")

    running = parser.add_argument_group("running")
    running.add_argument(
        "--stop-on-error", action="store_true", help="stop at the first bad file (default: go on)"
    )
    return parser


def plan(images: list[Path], out: Path | None) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Pair each image with its trimap path; return (jobs, one-line problems and notes).

    Problems start with ``error:`` and count as bad input; notes start with ``note:``.
    """
    jobs, messages, claimed = [], [], {}
    for image in dict.fromkeys(images):  # the same file given twice is done once
        if is_trimap_name(image):
            messages.append(f"note: {image}: skipped; its name says it is a trimap already")
            continue
        target = trimap_path(image, out)
        key = target.resolve()
        if key in claimed:
            messages.append(
                f"error: {image}: its trimap {target} is already the trimap of {claimed[key]}"
            )
        else:
            claimed[key] = image
            jobs.append((image, target))
    return jobs, messages


def run(options: argparse.Namespace) -> int:
    from tqdm import tqdm

    try:
        settings = auto_trimap_settings(options)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if options.out is not None and options.out.exists() and not options.out.is_dir():
        raise UsageError(f"{options.out}: --out must be a folder, but this is a file")
    jobs, messages = plan(options.images, options.out)
    inputs = {path.resolve() for path in options.images}
    status = 0
    for message in messages:
        print(message, file=sys.stderr)
        if message.startswith("error:"):
            status = BAD_INPUT
            if options.stop_on_error:
                return status
    trimapper = None
    for image_path, target in tqdm(
        jobs, desc="trimaps", unit="image", file=sys.stderr, disable=len(jobs) < 2
    ):
        if target.exists() and not options.force:
            tqdm.write(f"note: {target}: exists, kept (--force replaces it)", file=sys.stderr)
            continue
        try:
            if target.resolve() in inputs:
                raise ImageError(image_path, f"its trimap {target} is an input; not overwritten")
            image = read_image(image_path)
            if trimapper is None:  # only now: a run with nothing to do never starts TensorFlow
                trimapper = make_trimapper(
                    options.trimap_model, saliency_weights=options.saliency_weights,
                    settings=settings,
                )  # fmt: skip
            trimap = trimapper(image)
            try:
                write_png(target, trimap_to_uint8(trimap))
            except OSError as error:
                raise ImageError(target, f"cannot write ({error.strerror or error})") from None
        except ImageError as error:
            tqdm.write(f"error: {error}", file=sys.stderr)
            status = status or BAD_INPUT
            if options.stop_on_error:
                return status
            continue
        tqdm.write(str(target))
    return status


def main(args: list[str] | None = None) -> int:
    options = build_parser().parse_args(args)
    quiet_tensorflow()  # before the saliency model imports TensorFlow: notices off stderr
    try:
        return run(options)
    except (SaliencyWeightsError, CheckpointError, UsageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # the contract is one line on stderr, never a traceback
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        print(f"error: {type(error).__name__}: {first}", file=sys.stderr)
        return RUNTIME_FAILURE


if __name__ == "__main__":
    sys.exit(main())
