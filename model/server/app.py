"""serve.py's FastAPI app: the page, ``/api/health``, ``/api/matte``, ``/api/trimap``, video.

:func:`create_app` wires the guards (``guards.py``), the form parsing (``forms.py``), the
matting of one request (``matting.py``) and the video jobs (``video_api.py``) around one
loaded model.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from model.images import ImageError, decode_image, encode_png, trimap_to_uint8
from model.outputs import OUTPUTS
from model.server.forms import (
    MAX_UPLOADS,
    content_disposition,
    image_error,
    parse_matte_request,
    parse_trimap_request,
)
from model.server.guards import MB, ApiError, BodyTooLarge, Gate, Guard, error_response, megabytes
from model.server.matting import describe_matter, run_matte
from model.server.video_api import add_video_routes
from model.temporal import DEFAULT_SMOOTHING

WEB_DIR = Path(__file__).resolve().parents[2] / "web"

log = logging.getLogger("serve")


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
    gate = Gate(workers, max_queue)
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
        Guard,
        max_body=MAX_UPLOADS * max_upload_bytes + MB,
        path_limits={"/api/video": video_body},
        allowed_hosts=None if allowed_hosts is None else frozenset(allowed_hosts),
    )

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, error: ApiError):
        return error_response(error.status, error.message, error.headers)

    @app.exception_handler(BodyTooLarge)
    async def body_too_large(request: Request, _error_: BodyTooLarge):
        limit = MAX_UPLOADS * max_upload_bytes + MB
        if request.url.path == "/api/video":
            limit = video_body
        return error_response(413, f"request: body is over the limit of {megabytes(limit)}")

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, _error_: ClientDisconnect):
        # Nobody is left to read an answer; one line, not the traceback of a server fault.
        log.warning(
            "%s %s: client disconnected before sending its whole body",
            request.method,
            request.url.path,
        )
        return error_response(400, "request: client disconnected")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        if error.status_code == 404:
            message = f"{request.url.path}: not found"
        elif error.status_code == 405:
            message = f"{request.method} {request.url.path}: method not allowed"
        else:
            message = f"request: {error.detail}"
        return error_response(error.status_code, message, getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception):
        log.exception("%s %s failed", request.method, request.url.path)
        return error_response(500, f"internal error: {type(error).__name__}; see the server log")

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
            **describe_matter(matter),
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
            "plate_model": describe_matter(plate_matter) if plate_matter is not None else None,
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
                raise image_error(error) from None
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
                "step": describe_matter(matter)["step"],
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
