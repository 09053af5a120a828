"""The web API's video path: upload a clip, follow its job, download the result.

Endpoints (added to the app of ``model/server/app.py`` by :func:`add_video_routes`)

``POST /api/video``
    multipart/form-data: ``video`` (file, required; mp4, mov, webm, mkv or avi), ``trimap``
    (file, optional: the first frame's trimap, carried forward; without it every frame gets
    an automatic trimap), ``format`` (``webm`` VP9 + alpha, the default; ``mov`` ProRes 4444 +
    alpha; ``mp4`` H.264 over ``background``), ``background`` (a colour, for ``mp4``).
    Answers 202 ``{"id", "status_url", "result_url"}``. Refused at once: a clip over
    ``max_bytes`` (413), over ``max_seconds`` long (413), with frames over ``max_pixels`` (413),
    or one that is not a readable video (400); 503 while every job place is busy.
``GET /api/jobs/ID``
    ``{"status": queued|running|done|failed, "frames_done", "frames_total", "fraction",
    "seconds", "remaining_seconds", "error", "filename"}``.
``GET /api/jobs/ID/result``
    The finished file (409 while running, or with the error if it failed; 404 unknown ID).

Errors answer ``{"error": "<field>: <problem>"}`` as the rest of the API does.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from model.images import ImageError, decode_trimap
from model.outputs import parse_colour
from model.server.guards import MB, error_response
from model.server.video_jobs import OUTPUT_TYPES, JobsFull, VideoJobs
from model.video import VIDEO_SUFFIXES, VideoError, VideoReader

FIELDS = ("video", "trimap", "format", "background")
CHUNK = MB


class _Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def make_runner(matter, max_pixels: int):
    """The job body: matte one uploaded clip with a first-frame trimap or automatic trimaps."""
    saliency = []  # loaded on the first automatic-trimap job, then kept

    def run(source: Path, output: Path, options: dict, on_frame) -> None:
        from model import video_matting as vm

        with VideoReader(source, max_pixels=max_pixels) as clip:
            trimap = options.get("trimap")
            if trimap is not None:
                step = vm.TrimapPropagation(matter, trimap)
            else:
                if not saliency:
                    from model.auto_trimap import load_saliency_model

                    saliency.append(load_saliency_model())
                step = vm.AutoTrimaps(matter, saliency[0])
            with vm.open_writer(clip, output, background=options.get("background")) as writer:
                vm.matte_stream(
                    clip,
                    writer,
                    step,
                    smoothing=options["smoothing"],
                    progress=False,
                    on_frame=on_frame,
                )

    return run


def _text(form, name: str, default: str) -> str:
    value = form.get(name)
    if value is None:
        return default
    if isinstance(value, UploadFile):
        raise _Refused(400, f"{name}: expected a text value, got a file upload")
    return value.strip()


async def _save(upload: UploadFile, target: Path, max_bytes: int) -> int:
    """Copy an upload to ``target`` a chunk at a time; 413 past ``max_bytes``."""
    size = 0
    with target.open("wb") as out:
        while chunk := await upload.read(CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise _Refused(413, f"video: upload is over the limit of {max_bytes / MB:.3g} MB")
            out.write(chunk)
    if not size:
        raise _Refused(400, "video: the uploaded file is empty")
    return size


def _check_clip(path: Path, name: str, *, max_pixels: int, max_seconds: float):
    """Open the stored clip as the job will; refuse it the way the API answers."""
    try:
        with VideoReader(path, max_pixels=max_pixels) as clip:
            info = clip.info
    except VideoError as error:
        status = 413 if "over the limit" in error.problem else 400
        raise _Refused(status, f"video: {name}: {error.problem}") from None
    seconds = info.duration
    if seconds is None and info.frames:
        seconds = info.frames / info.fps
    if seconds is None or not math.isfinite(seconds):
        raise _Refused(400, f"video: {name}: unknown duration")
    if seconds > max_seconds:
        raise _Refused(
            413, f"video: {name}: the clip is {seconds:.1f} s long; the limit is {max_seconds:g} s"
        )
    return info


async def _parse(request: Request, jobs: VideoJobs, limits: dict):
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise _Refused(415, f"request: expected multipart/form-data, got {content_type or 'none'}")
    try:
        form = await request.form(max_files=2, max_fields=len(FIELDS))
    except StarletteHTTPException as error:
        raise _Refused(400, f"request: {error.detail}") from None
    unknown = sorted(set(form.keys()) - set(FIELDS))
    if unknown:
        raise _Refused(400, f"{unknown[0]}: unknown field; the fields are {', '.join(FIELDS)}")
    upload = form.get("video")
    if not isinstance(upload, UploadFile):
        raise _Refused(400, "video: missing; upload the clip as the multipart file field 'video'")
    name = Path(upload.filename or "clip.mp4").name
    suffix = Path(name).suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise _Refused(400, f"video: {name}: not a clip ({', '.join(VIDEO_SUFFIXES)})")
    kind = _text(form, "format", "webm")
    if kind not in OUTPUT_TYPES:
        raise _Refused(400, f"format: must be one of {', '.join(OUTPUT_TYPES)}, got {kind[:20]!r}")
    background = None
    if "background" in form:
        background = parse_colour(_text(form, "background", ""))
        if background is None:
            raise _Refused(400, "background: not a colour; use #rrggbb, r,g,b or a CSS name")
    if (kind == "mp4") != (background is not None):
        raise _Refused(400, "background: give a colour for format mp4 (no alpha), and only then")
    if upload.size is not None and upload.size > limits["max_bytes"]:
        raise _Refused(
            413,
            f"video: upload is {upload.size / MB:.3g} MB; the limit is"
            f" {limits['max_bytes'] / MB:.3g} MB",
        )
    trimap_upload = form.get("trimap")
    trimap_bytes = None
    if trimap_upload is not None:
        if not isinstance(trimap_upload, UploadFile):
            raise _Refused(400, "trimap: expected a file upload, got a text value")
        trimap_bytes = await trimap_upload.read()
    try:
        job = jobs.create(suffix, kind, Path(name).stem or "clip")
    except JobsFull:
        message = "server busy: every video job place is taken; try again later"
        raise _Refused(503, message) from None
    try:
        await _save(upload, job.input, limits["max_bytes"])
        info = await asyncio.to_thread(
            _check_clip,
            job.input,
            name,
            max_pixels=limits["max_pixels"],
            max_seconds=limits["max_seconds"],
        )
        trimap = None
        if trimap_bytes is not None:
            try:
                trimap = decode_trimap(trimap_bytes, "trimap", shape=(info.height, info.width))
            except ImageError as error:
                raise _Refused(400, str(error)) from None
    except BaseException:
        jobs.discard(job)
        raise
    return job, {"trimap": trimap, "background": background, "smoothing": limits["smoothing"]}


def add_video_routes(
    app: FastAPI,
    matter,
    *,
    max_bytes: int,
    max_seconds: float,
    max_pixels: int,
    smoothing: float,
    max_jobs: int = 4,
) -> VideoJobs:
    """Add ``POST /api/video`` and ``GET /api/jobs/...`` to ``app``; returns the job store.

    The caller closes the store at shutdown (:meth:`VideoJobs.close`).
    """
    jobs = VideoJobs(make_runner(matter, max_pixels), max_jobs=max_jobs)
    limits = {
        "max_bytes": max_bytes,
        "max_seconds": max_seconds,
        "max_pixels": max_pixels,
        "smoothing": smoothing,
    }

    @app.post("/api/video", status_code=202)
    async def video(request: Request):
        try:
            job, options = await _parse(request, jobs, limits)
        except _Refused as refused:
            return error_response(refused.status, refused.message)
        jobs.start(job, options)
        return JSONResponse(
            {
                "id": job.id,
                "status_url": f"api/jobs/{job.id}",
                "result_url": f"api/jobs/{job.id}/result",
            },
            status_code=202,
        )

    @app.get("/api/jobs/{job_id}")
    async def job_status(job_id: str):
        job = jobs.get(job_id)
        if job is None:
            return error_response(404, f"job {job_id[:40]}: not found (finished jobs expire)")
        return JSONResponse(job.progress(), headers={"Cache-Control": "no-store"})

    @app.get("/api/jobs/{job_id}/result")
    async def job_result(job_id: str):
        job = jobs.get(job_id)
        if job is None:
            return error_response(404, f"job {job_id[:40]}: not found (finished jobs expire)")
        if job.status == "failed":
            return error_response(409, f"job {job_id}: failed: {job.error}")
        if job.status != "done":
            return error_response(
                409, f"job {job_id}: not finished ({job.frames_done} frames so far)"
            )
        kind = job.output.suffix.lstrip(".")
        return FileResponse(
            job.output,
            media_type=OUTPUT_TYPES[kind],
            filename=job.filename,
            content_disposition_type="inline",
        )

    return jobs
