"""The multipart forms of ``POST /api/matte`` and ``POST /api/trimap``: fields, limits, names.

Everything here runs on the event loop before a request takes a worker: the form is read
and validated, and each image is checked against the pixel limit from its header alone.
"""

from __future__ import annotations

import dataclasses
import math
import urllib.parse
from pathlib import Path

from fastapi import Request
from python_multipart.multipart import DEFAULT_MAX_HEADER_SIZE
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from model.images import ImageError, probe_image
from model.outputs import OUTPUTS, parse_colour
from model.server.guards import ApiError, megabytes

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
            f"{name}: upload is {megabytes(upload.size)}; the limit is {megabytes(max_bytes)}",
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
        raise image_error(error) from None
    if info.pixels > max_pixels:
        raise ApiError(
            413,
            f"{name}: image is {info.width}x{info.height} = {info.pixels:,} pixels; the limit"
            f" is {max_pixels:,}",
        )


def image_error(error: ImageError) -> ApiError:
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
