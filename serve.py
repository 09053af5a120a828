"""Matting web page and HTTP API: one loaded model behind FastAPI and uvicorn.

Usage::

    python3 serve.py                                  # newest checkpoint on http://127.0.0.1:5003/
    python3 serve.py --checkpoint 12000 --port 8080   # the checkpoint saved at step 12000
    python3 serve.py --checkpoint m.onnx              # onnxruntime, without TensorFlow
    python3 serve.py --engine tensorflow              # the checkpoint, not the run's model.onnx
    python3 serve.py --log-dir log --workers 2 --queue 16 --max-upload-mb 50
    python3 serve.py --host 0.0.0.0                   # reachable from other machines (no auth!)

    curl -F image=@photo.jpg -F trimap=@trimap.png http://127.0.0.1:5003/api/matte -o cutout.png
    curl -F image=@photo.jpg -F trimap=@trimap.png -F background='#00ff00' -F format=json \\
         http://127.0.0.1:5003/api/matte
    curl -F image=@photo.jpg http://127.0.0.1:5003/api/matte -o cutout.png   # automatic trimap
    curl -F image=@photo.jpg http://127.0.0.1:5003/api/trimap -o trimap.png  # just the trimap
    curl -F image=@photo.jpg -F plate=@empty.jpg http://127.0.0.1:5003/api/matte -o cutout.png

The checkpoint runs on onnxruntime, without TensorFlow, when its run folder holds a
``model.onnx`` exported from it (``log/pretrained`` ships one; ``--engine``, see
``model/engine.py``); the start line and ``/api/health`` say which engine and device run it.

A ``plate`` (a photo of the empty scene, same size) replaces the trimap: the plate model
(``--plate-checkpoint``: the newest ``--task plate`` run, else ``log/pretrained-plate``) is
loaded beside the trimap model when there is one.

Endpoints
    ``GET /``            the page (web/index.html; assets under /static/, nothing external)
    ``GET /api/health``  checkpoint, model config, engine, device, limits and how busy it is
    ``POST /api/matte``  multipart/form-data; see ``model.server.app.create_app`` for the fields
    ``POST /api/video``  a clip; answers a job id (``model/server/video_api.py``)
    ``GET /api/jobs/ID`` the job's progress; ``GET /api/jobs/ID/result`` the finished video
    ``POST /api/trimap`` multipart/form-data with one ``image``: the automatic trimap (PNG)

Without a ``trimap`` field the trimap is made from the image by the U²-Net-p saliency network
(``model/auto_trimap.py``, as ``generate_trimaps.py`` makes it), loaded at the first such request.

The model is loaded once. Requests run in a pool of ``--workers`` threads; at most ``--queue``
more may wait, and any request beyond that gets 503 at once, so memory stays bounded: each
upload is at most ``--max-upload-mb`` and each decoded image at most ``--max-megapixels``.
A request's body is read first, within ``--body-timeout`` seconds (408 beyond), so slow
uploads never hold one of those places. Only the server's own Host names are answered
(``--allowed-host`` adds more) and a POST from another site's page is refused (403).
"""

from __future__ import annotations

import argparse
import sys

import uvicorn

from model.auto_trimap import SaliencyWeightsError
from model.checkpoints import CheckpointError
from model.cli import (
    ArgumentParser,
    add_auto_trimap_options,
    add_engine,
    add_network_pixels,
    auto_trimap_settings,
)
from model.engine import describe
from model.inference import DEFAULT_NETWORK_PIXELS, Matter
from model.plate_inference import PlateMatter
from model.server import MB, allowed_host_names, create_app
from model.server.guards import bind_socket, is_loopback
from model.tf_startup import install as quiet_tensorflow
from model.trimap_inference import make_trimapper


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="serve.py",
        description="Serve the matting web page and HTTP API with one loaded model.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    model = parser.add_argument_group("model")
    model.add_argument(
        "--checkpoint",
        default="-1",
        help="-1 newest, -2 the one before, N>=0 the one saved at step N, or a path",
    )
    model.add_argument("--log-dir", default="log", help="folder holding the training runs")
    add_engine(model)
    model.add_argument(
        "--plate-checkpoint",
        help="plate model for requests with a plate: as --checkpoint, among --task plate runs,"
        " else log/pretrained-plate; 'none': no plate model (default: -1 when one exists)",
    )
    add_network_pixels(model, DEFAULT_NETWORK_PIXELS)

    server = parser.add_argument_group("server")
    server.add_argument(
        "--host", default="127.0.0.1", help="address to bind; loopback unless told otherwise"
    )
    server.add_argument("--port", type=int, default=5003, help="TCP port; 0 picks a free one")
    server.add_argument("--workers", type=int, default=1, help="requests matted at the same time")
    server.add_argument("--queue", type=int, default=8, help="requests that may wait; more get 503")
    server.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer to this Host name (repeatable; '*' for any). Without it only"
        " 127.0.0.1, localhost, [::1] and the --host address are answered, against DNS"
        " rebinding",
    )

    add_auto_trimap_options(
        parser.add_argument_group("automatic trimap (requests without a trimap)"),
        prefix="trimap-",
    )

    limits = parser.add_argument_group("limits")
    limits.add_argument(
        "--max-upload-mb", type=float, default=25.0, help="largest upload (413 beyond)"
    )
    limits.add_argument(
        "--max-megapixels",
        type=float,
        default=16.0,
        help="largest image, width x height in millions of pixels (413 beyond)",
    )
    limits.add_argument(
        "--max-video-mb", type=float, default=50.0, help="largest clip upload (413 beyond)"
    )
    limits.add_argument(
        "--max-video-seconds", type=float, default=30.0, help="longest clip (413 beyond)"
    )
    limits.add_argument(
        "--max-video-megapixels",
        type=float,
        default=2.1,
        help="largest clip frame, width x height in millions of pixels (413 beyond; 1080p)",
    )
    limits.add_argument(
        "--body-timeout",
        type=float,
        default=60.0,
        help="seconds a request may take to upload its body (408 beyond)",
    )
    return parser


def _validate(args: argparse.Namespace) -> str | None:
    if not 0 <= args.port <= 65535:
        return f"--port: must be 0-65535, got {args.port}"
    if args.workers < 1:
        return f"--workers: must be at least 1, got {args.workers}"
    if args.queue < 0:
        return f"--queue: must be 0 or more, got {args.queue}"
    if not args.max_upload_mb > 0:
        return f"--max-upload-mb: must be positive, got {args.max_upload_mb}"
    if not args.max_megapixels > 0:
        return f"--max-megapixels: must be positive, got {args.max_megapixels}"
    for name in ("max_video_mb", "max_video_seconds", "max_video_megapixels"):
        if not getattr(args, name) > 0:
            return f"--{name.replace('_', '-')}: must be positive, got {getattr(args, name)}"
    if not args.body_timeout > 0:
        return f"--body-timeout: must be positive, got {args.body_timeout}"
    return None


def _load_plate_matter(options: argparse.Namespace):
    """The plate model, or None for 'none' and, by default, when there is none to load."""
    if options.plate_checkpoint == "none":
        return None
    try:
        return PlateMatter.load(
            options.plate_checkpoint or "-1",
            log_dir=options.log_dir,
            engine=options.engine,
            network_pixels=options.network_pixels,
        )
    except CheckpointError as error:
        if options.plate_checkpoint is not None:
            raise
        print(f"notice: no plate model, plate requests get 400 ({error})", file=sys.stderr)
        return None


def main(args: list[str] | None = None) -> int:
    options = build_parser().parse_args(args)
    quiet_tensorflow()
    problem = _validate(options)
    try:
        # Checked now (the file exists, the thresholds fit); the network loads at first use.
        trimapper = make_trimapper(
            options.trimap_model,
            saliency_weights=options.saliency_weights,
            settings=auto_trimap_settings(options, prefix="trimap-"),
            log_dir=options.log_dir,
        )
    except (SaliencyWeightsError, CheckpointError, ValueError) as error:
        problem = problem or str(error)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2

    # Bind before the slow model load, so a busy port is reported at once.
    try:
        sock = bind_socket(options.host, options.port)
    except OSError as error:
        print(f"error: {options.host}:{options.port}: {error.strerror or error}", file=sys.stderr)
        return 1
    with sock:
        if not is_loopback(options.host):
            print(
                f"warning: listening on {options.host}: other machines can reach this server,"
                " which has no authentication; it answers only to the Host names"
                " 127.0.0.1, localhost, [::1], the --host address and --allowed-host",
                file=sys.stderr,
            )
        try:
            matter = Matter.load(
                options.checkpoint,
                log_dir=options.log_dir,
                engine=options.engine,
                network_pixels=options.network_pixels,
            )
            plate_matter = _load_plate_matter(options)
        except CheckpointError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2

        app = create_app(
            matter,
            max_upload_bytes=int(options.max_upload_mb * MB),
            max_pixels=int(options.max_megapixels * 1_000_000),
            max_queue=options.queue,
            workers=options.workers,
            body_timeout=options.body_timeout,
            allowed_hosts=allowed_host_names(options.host, options.allowed_host),
            max_video_bytes=int(options.max_video_mb * MB),
            max_video_seconds=options.max_video_seconds,
            max_video_pixels=int(options.max_video_megapixels * 1_000_000),
            trimapper=trimapper,
            plate_matter=plate_matter,
        )
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        print(f"serving checkpoint {describe(matter)}, on http://{shown}:{port}/", flush=True)
        server = uvicorn.Server(uvicorn.Config(app, log_level="info", timeout_graceful_shutdown=5))
        server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
