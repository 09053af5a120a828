"""Matting web page and HTTP API: one loaded model behind FastAPI and uvicorn.

Usage::

    python3 serve.py                                  # newest checkpoint on http://127.0.0.1:5003/
    python3 serve.py --checkpoint 12000 --port 8080   # the checkpoint saved at step 12000
    python3 serve.py --checkpoint m.onnx              # onnxruntime, without TensorFlow
    python3 serve.py --log-dir log --workers 2 --queue 16 --max-upload-mb 50
    python3 serve.py --host 0.0.0.0                   # reachable from other machines (no auth!)

    curl -F image=@photo.jpg -F trimap=@trimap.png http://127.0.0.1:5003/api/matte -o cutout.png
    curl -F image=@photo.jpg -F trimap=@trimap.png -F background='#00ff00' -F format=json \\
         http://127.0.0.1:5003/api/matte
    curl -F image=@photo.jpg http://127.0.0.1:5003/api/matte -o cutout.png   # automatic trimap
    curl -F image=@photo.jpg http://127.0.0.1:5003/api/trimap -o trimap.png  # just the trimap
    curl -F image=@photo.jpg -F plate=@empty.jpg http://127.0.0.1:5003/api/matte -o cutout.png

A ``plate`` (a photo of the empty scene, same size) replaces the trimap: the plate model
(``--plate-checkpoint``: the newest ``--task plate`` run, else ``log/pretrained-plate``) is
loaded beside the trimap model when there is one.

Endpoints
    ``GET /``            the page (web/index.html; assets under /static/, nothing external)
    ``GET /api/health``  checkpoint, model config, device, limits and how busy the server is
    ``POST /api/matte``  multipart/form-data; see :func:`create_app` for the fields
    ``POST /api/video``  a clip; answers a job id (``model/video_api.py`` for the fields)
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
import asyncio
import base64
import contextlib
import dataclasses
import ipaddress
import logging
import math
import socket
import sys
import time
import urllib.parse
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from python_multipart.multipart import DEFAULT_MAX_HEADER_SIZE
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from model.auto_trimap import AutoTrimapper, SaliencyWeightsError
from model.checkpoints import CheckpointError
from model.cli import (
    ArgumentParser,
    add_auto_trimap_options,
    add_network_pixels,
    auto_trimap_settings,
)
from model.images import (
    ImageError,
    decode_image,
    decode_trimap,
    encode_png,
    probe_image,
    trimap_to_uint8,
)
from model.inference import (
    DEFAULT_NETWORK_PIXELS,
    Matter,
)
from model.outputs import OUTPUTS, encode_outputs, parse_colour
from model.plate_inference import PlateMatter, check_plate
from model.temporal import DEFAULT_SMOOTHING
from model.tf_startup import install as quiet_tensorflow
from model.video_api import add_video_routes

WEB_DIR = Path(__file__).resolve().parent / "web"
MB = 1024 * 1024


FIELDS = (
    "image",
    "trimap",
    "plate",
    "background",
    "background_image",
    "mask_threshold",
    "format",
    "output",
)
FILE_FIELDS = ("image", "trimap", "plate", "background_image")
MAX_UPLOADS = 3
"""Uploads in one request: the image, a trimap or a plate, and a background image."""

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
"""Host names a loopback (or all-interfaces) server answers to without ``--allowed-host``."""

# Same-origin only: the page must work offline, and a stray CDN reference fails loudly in tests.
_SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' blob: data:; connect-src 'self' blob:;"
        b" style-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]

log = logging.getLogger("serve")


class ApiError(Exception):
    """A request the API refuses; becomes ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class _BodyTooLarge(Exception):
    """Raised from inside the request stream when the body passes the limit."""


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _megabytes(size: float) -> str:
    return f"{size / MB:.3g} MB"


def _split_host(host: str) -> tuple[str, int | None]:
    """``"name:port"`` (IPv6 in brackets) -> (lowercase name, port or None); port -1 if bad."""
    name, colon, port = host.rpartition(":")
    if not colon or name.endswith(":") or (host.startswith("[") and not name.endswith("]")):
        return host.lower(), None  # no port, or a bare IPv6 address
    return name.lower(), int(port) if port.isdigit() else -1


def _refusal(headers: dict[bytes, bytes], allowed_hosts, server_port: int | None, method: str):
    """Why to refuse a request by its Host or Origin header (403), or None.

    Host: a web page can point its own domain name at 127.0.0.1 (DNS rebinding) and then read
    this server as same-origin; its requests still carry that name in Host. Origin: a page on
    another site can post a form here; the browser says which site in Origin.
    """
    host = headers.get(b"host", b"").decode("latin-1")
    if allowed_hosts is not None and "*" not in allowed_hosts:
        name, port = _split_host(host)
        if name not in allowed_hosts or port not in (None, server_port):
            return (
                f"request: Host {host[:100]!r} is not this server's; start it with"
                f" --allowed-host {name[:100]} to answer to that name"
            )
    origin = headers.get(b"origin")
    if method not in ("GET", "HEAD") and origin is not None:
        origin_text = origin.decode("latin-1")
        if origin_text != f"http://{host}":
            return f"request: cross-origin {method} from {origin_text[:100]!r} refused"
    return None


class _Guard:
    """ASGI middleware: Host/Origin checks, security headers, and a cap on request bodies.

    A request with a Host other than ``allowed_hosts`` (None: any), or a non-GET request whose
    Origin is another site, gets 403 before anything is read. A declared ``Content-Length``
    over the cap is refused before anything is read; a body without one (chunked) is counted
    as it streams and stopped at the cap, so neither memory nor the spool on disk can grow
    beyond it.
    """

    def __init__(
        self,
        app,
        max_body: int,
        allowed_hosts: frozenset[str] | None = None,
        path_limits: dict[str, int] | None = None,
    ):
        self.app = app
        self.max_body = max_body
        self.allowed_hosts = allowed_hosts
        # Paths whose bodies have their own cap (a clip upload is larger than three images).
        self.path_limits = path_limits or {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *_SECURITY_HEADERS]}
            await send(message)

        headers = dict(scope["headers"])
        server_port = (scope.get("server") or (None, None))[1]
        problem = _refusal(headers, self.allowed_hosts, server_port, scope["method"])
        if problem:
            await _error(403, problem)(scope, receive, send_with_headers)
            return

        max_body = self.path_limits.get(scope["path"], self.max_body)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            response = _error(
                413,
                f"request: body is {_megabytes(int(declared))}; the limit is"
                f" {_megabytes(max_body)} for all uploads together",
            )
            await response(scope, receive, send_with_headers)
            return

        received = 0

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_body:
                    raise _BodyTooLarge
            return message

        await self.app(scope, counting_receive, send_with_headers)


class _Gate:
    """Admission control: at most ``workers + max_queue`` requests inside at once.

    Only touched from the event loop, so a plain counter is race-free.
    """

    def __init__(self, workers: int, max_queue: int):
        self.workers = workers
        self.max_queue = max_queue
        self.admitted = 0

    @property
    def capacity(self) -> int:
        return self.workers + self.max_queue

    @contextlib.contextmanager
    def enter(self):
        if self.admitted >= self.capacity:
            raise ApiError(
                503,
                f"server busy: {self.admitted} requests are running or waiting (limit"
                f" {self.capacity}: {self.workers} at a time, {self.max_queue} queued);"
                " try again shortly",
                headers={"Retry-After": "1"},
            )
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1


@dataclasses.dataclass
class MatteRequest:
    """A parsed ``POST /api/matte``: raw upload bytes plus validated options."""

    image: bytes
    trimap: bytes | None
    """None: make the trimap automatically."""
    background: tuple[float, float, float] | None
    background_image: bytes | None
    mask_threshold: float
    format: str
    output: str
    name: str
    """The image's file name without its extension, as uploaded (any characters)."""
    plate: bytes | None = None


def parse_background_colour(text: str) -> tuple[float, float, float] | None:
    """The ``background`` field: None for ``transparent``, else an opaque colour.

    Accepts ``#0f0``, ``#00ff00``, ``0,255,0``, ``rgb(0, 255, 0)`` and CSS names
    (``model.outputs.parse_colour``). Unlike the CLI's ``parse_background`` the text is never
    taken as a file path: a client must not be able to name files on the server.

    Returns
    -------
    (r, g, b) floats in [0, 1], or None.

    Raises
    ------
    ApiError
        400 for anything else.
    """
    text = text.strip()
    if text.lower() in ("", "transparent", "none"):
        return None
    colour = parse_colour(text)
    if colour is None:
        raise ApiError(
            400,
            f"background: {text[:40]!r} is not a colour; use transparent, #rrggbb, r,g,b"
            " or a CSS colour name",
        )
    return colour


def _text_field(form, name: str, default: str) -> str:
    values = form.getlist(name)
    if not values:
        return default
    if len(values) > 1:
        raise ApiError(400, f"{name}: given {len(values)} times; give it once")
    if isinstance(values[0], UploadFile):
        raise ApiError(400, f"{name}: expected a text value, got a file upload")
    return values[0]


async def _file_field(form, name: str, max_bytes: int, *, required: bool) -> bytes | None:
    values = form.getlist(name)
    if not values:
        if required:
            raise ApiError(400, f"{name}: missing; upload it as the multipart file field {name!r}")
        return None
    if len(values) > 1:
        raise ApiError(400, f"{name}: given {len(values)} times; give it once")
    upload = values[0]
    if not isinstance(upload, UploadFile):
        raise ApiError(400, f"{name}: expected a file upload, got a text value")
    if upload.size is not None and upload.size > max_bytes:
        raise ApiError(
            413,
            f"{name}: upload is {_megabytes(upload.size)}; the limit is {_megabytes(max_bytes)}",
        )
    data = await upload.read()
    if not data:
        raise ApiError(400, f"{name}: the uploaded file is empty")
    return data


def _check_pixels(data: bytes, name: str, max_pixels: int) -> None:
    """Refuse an over-large image from its header alone, before it waits for a worker."""
    try:
        info = probe_image(data, name)
    except ImageError as error:
        raise _image_error(error) from None
    if info.pixels > max_pixels:
        raise ApiError(
            413,
            f"{name}: image is {info.width}x{info.height} = {info.pixels:,} pixels; the limit"
            f" is {max_pixels:,}",
        )


def _image_error(error: ImageError) -> ApiError:
    status = 413 if error.problem.startswith("image too large") else 400
    return ApiError(status, str(error))


def _form_problem(error: StarletteHTTPException) -> str:
    """Starlette's reason for an unparsable form, or the parser's own where it hides it.

    python-multipart's "Maximum header size exceeded" reaches us as "Invalid multipart data",
    which sends a user with a very long file name looking for a bug in their client.
    """
    cause = getattr(error.__context__, "__cause__", None)
    if cause is not None and "header size" in str(cause):
        return (
            f"a part's headers are over {DEFAULT_MAX_HEADER_SIZE:,} bytes; is its file name"
            " that long? Rename the file and upload it again"
        )
    return str(error.detail)


async def _read_form(request: Request, fields: tuple[str, ...], files: int):
    """The multipart form of a request, with only the named fields (else 400 or 415)."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise ApiError(
            415,
            f"request: expected multipart/form-data, got {content_type or 'no content type'}",
        )
    try:
        form = await request.form(max_files=files, max_fields=len(fields))
    except StarletteHTTPException as error:
        raise ApiError(400, f"request: {_form_problem(error)}") from None
    unknown = sorted(set(form.keys()) - set(fields))
    if unknown:
        raise ApiError(400, f"{unknown[0]}: unknown field; the fields are {', '.join(fields)}")
    return form


def _upload_stem(form) -> str:
    upload_name = getattr(form.get("image"), "filename", None) or "image"
    return Path(upload_name).stem or "image"


async def parse_matte_request(
    request: Request, *, max_upload_bytes: int, max_pixels: int, trimap_required: bool = True
) -> MatteRequest:
    """Read and validate the multipart form of ``POST /api/matte`` (no decoding yet).

    Without ``trimap_required`` a request without a trimap gets ``trimap=None``.
    """
    form = await _read_form(request, FIELDS, MAX_UPLOADS)
    image = await _file_field(form, "image", max_upload_bytes, required=True)
    plate = await _file_field(form, "plate", max_upload_bytes, required=False)
    trimap = await _file_field(
        form, "trimap", max_upload_bytes, required=trimap_required and plate is None
    )
    if trimap is not None and plate is not None:
        raise ApiError(400, "plate: give either a trimap or a plate, not both")
    background_image = await _file_field(form, "background_image", max_upload_bytes, required=False)
    background = parse_background_colour(_text_field(form, "background", "transparent"))
    if background is not None and background_image is not None:
        raise ApiError(400, "background: give either a colour or background_image, not both")

    threshold_text = _text_field(form, "mask_threshold", "0.5")
    try:
        mask_threshold = float(threshold_text)
    except ValueError:
        mask_threshold = math.nan
    if not 0.0 <= mask_threshold <= 1.0:
        raise ApiError(
            400, f"mask_threshold: must be a number from 0 to 1, got {threshold_text[:40]!r}"
        )

    format_ = _text_field(form, "format", "png")
    if format_ not in ("png", "json"):
        raise ApiError(400, f"format: must be png or json, got {format_[:40]!r}")
    has_background = background is not None or background_image is not None
    output = _text_field(form, "output", "composite" if has_background else "rgba")
    if output not in OUTPUTS:
        raise ApiError(400, f"output: must be one of {', '.join(OUTPUTS)}, got {output[:40]!r}")
    if format_ == "json" and "output" in form:
        raise ApiError(400, "output: only with format=png; format=json returns every output")

    if plate is not None and output == "trimap":
        raise ApiError(400, "output: a plate request has no trimap output")
    for name, data in (("image", image), ("trimap", trimap), ("plate", plate)):
        if data is not None:
            _check_pixels(data, name, max_pixels)
    if background_image is not None:
        _check_pixels(background_image, "background_image", max_pixels)

    return MatteRequest(
        image=image,
        trimap=trimap,
        background=background,
        background_image=background_image,
        mask_threshold=mask_threshold,
        format=format_,
        output=output,
        name=_upload_stem(form),
        plate=plate,
    )


async def parse_trimap_request(
    request: Request, *, max_upload_bytes: int, max_pixels: int
) -> tuple[bytes, str]:
    """Read ``POST /api/trimap``'s form, one ``image`` file: (its bytes, its file stem)."""
    form = await _read_form(request, ("image",), 1)
    image = await _file_field(form, "image", max_upload_bytes, required=True)
    _check_pixels(image, "image", max_pixels)
    return image, _upload_stem(form)


def content_disposition(filename: str) -> str:
    """An ``inline`` Content-Disposition for any file name (RFC 6266 with RFC 5987 ``filename*``).

    HTTP headers are Latin-1, so a name such as ``фото.png`` goes in ``filename*`` as
    percent-encoded UTF-8; ``filename`` holds an ASCII stand-in for clients that ignore it.
    """
    fallback = "".join(
        char if char.isascii() and char.isprintable() and char not in '"\\' else "_"
        for char in filename
    )
    encoded = urllib.parse.quote(filename, safe="")
    if fallback == filename:
        return f'inline; filename="{filename}"'
    return f"inline; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


@dataclasses.dataclass
class MatteResult:
    """PNG bytes by output name, and the image size."""

    outputs: dict[str, bytes]
    width: int
    height: int


def run_matte(
    matter, job: MatteRequest, max_pixels: int, trimapper=None, plate_matter=None
) -> MatteResult:
    """Decode, matte and encode one request; runs in a worker thread.

    Without ``job.trimap`` the trimap is ``trimapper(image)`` (a ``model.auto_trimap``
    ``AutoTrimapper``), and the ``trimap`` output is that automatic trimap.

    Returns
    -------
    MatteResult whose ``outputs`` hold every name in OUTPUTS for ``format=json``, else only
    ``job.output``:

    (``model.outputs`` describes each; ``format=json`` returns all of them.)
    """
    image = decode_image(job.image, "image", max_pixels=max_pixels)
    trimap = None
    if job.plate is not None:
        # The plate model has the same extract/predict_alpha as the trimap model.
        plate = decode_image(job.plate, "plate", max_pixels=max_pixels)
        guide, matter = check_plate(plate, image, "plate"), plate_matter
    else:
        if job.trimap is not None:
            trimap = decode_trimap(
                job.trimap, "trimap", shape=image.shape[:2], max_pixels=max_pixels
            )
        else:
            trimap = trimapper(image)
        guide = trimap
    background = job.background
    if job.background_image is not None:
        background = decode_image(job.background_image, "background_image", max_pixels=max_pixels)

    wanted = set(OUTPUTS) if job.format == "json" else {job.output}
    if trimap is None:
        wanted.discard("trimap")
    needs_colour = bool(wanted & {"rgba", "composite"})
    foreground = None
    if needs_colour:
        matte = matter.extract(image, guide)
        alpha, foreground = matte.alpha, matte.foreground
    else:
        alpha = matter.predict_alpha(image, guide)
    outputs = encode_outputs(
        wanted,
        alpha,
        foreground=foreground,
        trimap=trimap,
        background=background,
        mask_threshold=job.mask_threshold,
    )
    return MatteResult(outputs, width=image.shape[1], height=image.shape[0])


def _describe_matter(matter) -> dict:
    ref = matter.ref
    return {
        "checkpoint": str(ref.path) if ref is not None else None,
        "step": ref.step if ref is not None else None,
        "model": matter.config.to_dict(),
        "device": matter.device,
    }


def create_app(
    matter,
    *,
    max_upload_bytes: int = 25 * MB,
    max_pixels: int = 16_000_000,
    max_queue: int = 8,
    workers: int = 1,
    body_timeout: float = 60.0,
    allowed_hosts: Collection[str] | None = None,
    max_video_bytes: int = 50 * MB,
    max_video_seconds: float = 30.0,
    max_video_pixels: int = 1920 * 1080,
    trimapper=None,
    plate_matter=None,
) -> FastAPI:
    """Build the FastAPI app around a loaded model.

    Parameters
    ----------
    matter : model.inference.Matter
        Shared by all requests; its ``extract``/``predict_alpha`` must be thread-safe.
    max_upload_bytes : int
        Largest single upload; a request body may hold three (image, trimap, background).
    max_pixels : int
        Largest width x height of any uploaded image (checked from the header, before decoding).
    max_queue : int
        Requests that may wait while ``workers`` run; one more gets 503.
    workers : int
        Requests matted at the same time (threads sharing ``matter``).
    body_timeout : float
        Seconds a request may take to send its whole body; a slower one gets 408. The body
        is read before the request takes one of the ``workers + max_queue`` places, so slow
        uploads cannot crowd out the others.
    allowed_hosts : collection of str, optional
        Host names (lowercase, IPv6 in brackets) the server answers to, ``"*"`` for any; a
        Host with a port must use the server's. None (the default, for tests and embedding)
        checks no Host. ``main`` passes LOOPBACK_HOSTS, the bound address and
        ``--allowed-host``.
    trimapper : model.auto_trimap.AutoTrimapper, optional
        Makes the trimap of a request without one, and serves ``POST /api/trimap``; None
        (tests, embedding) makes ``trimap`` required and ``/api/trimap`` answer 404.
    plate_matter : model.plate_inference.PlateMatter, optional
        Serves requests with a ``plate``; without it they get 400.

    ``POST /api/matte`` multipart fields
        ``image`` (file, required), ``trimap`` (file, same size; 0 background, 128 unknown,
        255 foreground; without it the automatic trimap) or ``plate`` (file, same size: the
        empty scene; then there is no ``trimap`` output), ``background`` (``transparent`` or
        a colour such as ``#00ff00``), ``background_image`` (file), ``mask_threshold`` (0..1,
        default 0.5), ``format`` (``png`` or ``json``), ``output`` (one of OUTPUTS, png only;
        default ``composite`` with a background, else ``rgba``).
        ``format=json`` answers ``{"width", "height", "step", "seconds", "mask_threshold",
        "outputs": {name: base64 PNG}}``. Errors answer ``{"error": "<field>: <problem>"}``.
    max_video_bytes, max_video_seconds, max_video_pixels
        Limits of ``POST /api/video`` (413 beyond); see ``model/video_api.py``.
    """
    if workers < 1 or max_queue < 0:
        raise ValueError(f"need workers >= 1 and max_queue >= 0, got {workers}, {max_queue}")
    gate = _Gate(workers, max_queue)
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="matte")

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        executor.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(video_jobs.close)

    # No Swagger page: it loads its scripts from a CDN, which the page's CSP (local only) blocks.
    # The schema is at /openapi.json.
    app = FastAPI(title="GAN matting", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.gate = gate
    # Three uploads plus room for the text fields and multipart framing.
    video_body = max_video_bytes + max_upload_bytes + MB  # a clip and its trimap
    app.add_middleware(
        _Guard,
        max_body=MAX_UPLOADS * max_upload_bytes + MB,
        path_limits={"/api/video": video_body},
        allowed_hosts=None if allowed_hosts is None else frozenset(allowed_hosts),
    )

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, error: ApiError):
        return _error(error.status, error.message, error.headers)

    @app.exception_handler(_BodyTooLarge)
    async def body_too_large(request: Request, _error_: _BodyTooLarge):
        limit = MAX_UPLOADS * max_upload_bytes + MB
        if request.url.path == "/api/video":
            limit = video_body
        return _error(413, f"request: body is over the limit of {_megabytes(limit)}")

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, _error_: ClientDisconnect):
        # Nobody is left to read an answer; one line, not the traceback of a server fault.
        log.warning(
            "%s %s: client disconnected before sending its whole body",
            request.method,
            request.url.path,
        )
        return _error(400, "request: client disconnected")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        if error.status_code == 404:
            message = f"{request.url.path}: not found"
        elif error.status_code == 405:
            message = f"{request.method} {request.url.path}: method not allowed"
        else:
            message = f"request: {error.detail}"
        return _error(error.status_code, message, getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception):
        log.exception("%s %s failed", request.method, request.url.path)
        return _error(500, f"internal error: {type(error).__name__}; see the server log")

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    video_jobs = add_video_routes(
        app,
        matter,
        max_bytes=max_video_bytes,
        max_seconds=max_video_seconds,
        max_pixels=max_video_pixels,
        smoothing=DEFAULT_SMOOTHING,
    )

    @app.get("/api/health")
    async def health():
        return {
            "status": "ok",
            **_describe_matter(matter),
            "busy": gate.admitted,
            "limits": {
                "workers": workers,
                "queue": max_queue,
                "max_upload_bytes": max_upload_bytes,
                "max_pixels": max_pixels,
                "max_video_bytes": max_video_bytes,
                "max_video_seconds": max_video_seconds,
                "max_video_pixels": max_video_pixels,
            },
            "outputs": list(OUTPUTS),
            "auto_trimap": trimapper is not None,
            "plate_model": _describe_matter(plate_matter) if plate_matter is not None else None,
        }

    async def within_body_timeout(parse):
        try:
            return await asyncio.wait_for(parse, body_timeout)
        except TimeoutError:
            raise ApiError(
                408,
                f"request: the upload did not arrive within {body_timeout:g} seconds",
                headers={"Connection": "close"},
            ) from None

    async def in_worker(function, *args):
        """Run ``function(*args)`` in the pool; (its result, seconds); ImageError -> 4xx."""
        with gate.enter():
            start = time.perf_counter()
            loop = asyncio.get_running_loop()
            try:
                result = await loop.run_in_executor(executor, function, *args)
            except ImageError as error:
                raise _image_error(error) from None
            return result, time.perf_counter() - start

    def automatic_trimap(image_bytes: bytes) -> bytes:
        image = decode_image(image_bytes, "image", max_pixels=max_pixels)
        return encode_png(trimap_to_uint8(trimapper(image)))

    @app.post("/api/trimap")
    async def trimap_endpoint(request: Request):
        if trimapper is None:
            raise ApiError(404, "/api/trimap: this server makes no automatic trimaps")
        image, name = await within_body_timeout(
            parse_trimap_request(request, max_upload_bytes=max_upload_bytes, max_pixels=max_pixels)
        )
        data, seconds = await in_worker(automatic_trimap, image)
        headers = {
            "X-Processing-Seconds": f"{seconds:.3f}",
            "Cache-Control": "no-store",
            "Content-Disposition": content_disposition(f"{name}-trimap.png"),
        }
        return Response(data, media_type="image/png", headers=headers)

    @app.post("/api/matte")
    async def matte(request: Request):
        job = await within_body_timeout(
            parse_matte_request(
                request,
                max_upload_bytes=max_upload_bytes,
                max_pixels=max_pixels,
                trimap_required=trimapper is None,
            )
        )
        if job.plate is not None and plate_matter is None:
            raise ApiError(400, "plate: this server has no plate model (log/pretrained-plate)")
        result, seconds = await in_worker(
            run_matte, matter, job, max_pixels, trimapper, plate_matter
        )
        headers = {"X-Processing-Seconds": f"{seconds:.3f}", "Cache-Control": "no-store"}
        if job.format == "json":
            body = {
                "width": result.width,
                "height": result.height,
                "step": _describe_matter(matter)["step"],
                "seconds": round(seconds, 3),
                "mask_threshold": job.mask_threshold,
                "outputs": {
                    name: base64.b64encode(data).decode("ascii")
                    for name, data in result.outputs.items()
                },
            }
            return JSONResponse(body, headers=headers)
        headers["Content-Disposition"] = content_disposition(f"{job.name}-{job.output}.png")
        return Response(result.outputs[job.output], media_type="image/png", headers=headers)

    return app


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


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allowed_host_names(host: str, extra: list[str]) -> set[str]:
    """Host names the server answers to: loopback names, the bound address, and ``extra``."""
    names = {name.lower() for name in extra} | set(LOOPBACK_HOSTS)
    if host not in ("0.0.0.0", "::", ""):
        names.add(f"[{host}]".lower() if ":" in host else host.lower())
    return names


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    return sock


def _load_plate_matter(options: argparse.Namespace):
    """The plate model, or None for 'none' and, by default, when there is none to load."""
    if options.plate_checkpoint == "none":
        return None
    try:
        return PlateMatter.load(
            options.plate_checkpoint or "-1",
            log_dir=options.log_dir,
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
        trimapper = AutoTrimapper(
            options.saliency_weights, **auto_trimap_settings(options, prefix="trimap-")
        )
    except (SaliencyWeightsError, ValueError) as error:
        problem = problem or str(error)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2

    # Bind before the slow model load, so a busy port is reported at once.
    try:
        sock = _bind(options.host, options.port)
    except OSError as error:
        print(f"error: {options.host}:{options.port}: {error.strerror or error}", file=sys.stderr)
        return 1
    with sock:
        if not _is_loopback(options.host):
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
        print(
            f"serving checkpoint {matter.ref.path} (step {matter.ref.step}, {matter.device})"
            f" on http://{shown}:{port}/",
            flush=True,
        )
        server = uvicorn.Server(uvicorn.Config(app, log_level="info", timeout_graceful_shutdown=5))
        server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
