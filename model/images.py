"""Safe image I/O at the edges of the pipeline.

Everything inside the library works on float32 arrays in [0, 1] (HxWx3 RGB, HxWx4 RGBA, HxW
alpha or trimap). This module is the only place that converts to and from files, so every
stage gets the same guarantees:

* any of PNG, JPEG, WebP, BMP and TIFF, in 8 or 16 bit, grey, palette, RGB, RGBA or CMYK;
* EXIF orientation applied, so a phone photo is upright;
* the format is sniffed from the bytes, never from the extension;
* images over ``MAX_PIXELS`` (and PIL's decompression bombs) are refused before decoding;
* truncated or corrupt files raise :class:`ImageError`, whose message names the file;
* writes are atomic: a temp file in the same folder, renamed over the target.

Trimaps are read tolerantly: a 3-channel trimap is accepted (its first channel is used) and
values within ``TRIMAP_TOLERANCE`` of 0 or 255 count as background or foreground, which absorbs
JPEG noise. Every other value means unknown.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 100_000_000
"""Largest image (width x height) any stage decodes: 100 megapixels, about 1.2 GB as float32 RGB."""

TRIMAP_TOLERANCE = 16
"""On-disk trimap values <= this are background, >= 255 - this are foreground."""

TRIMAP_UNKNOWN = 0.5
"""In-memory trimap value of the unknown region (background 0.0, foreground 1.0)."""

SUPPORTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "MPO")

# PIL's own bomb check works on the same limit; we check first to give our own message.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class ImageError(ValueError):
    """An image file that cannot be used; ``str(error)`` is ``"<file>: <problem>"``."""

    def __init__(self, source: str | os.PathLike, problem: str):
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


@dataclass(frozen=True)
class ImageInfo:
    """Header facts about an image, read without decoding its pixels."""

    width: int
    height: int
    mode: str
    format: str
    has_alpha: bool

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _open(data: bytes | None, source: str | os.PathLike) -> Image.Image:
    """Open the image header from bytes or a path, mapping every failure to ImageError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data) if data is not None else source)
    except FileNotFoundError:
        raise ImageError(source, "no such file") from None
    except IsADirectoryError:
        raise ImageError(source, "is a directory, not an image") from None
    except PermissionError:
        raise ImageError(source, "permission denied") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(source, f"image too large (over {MAX_PIXELS:,} pixels)") from None
    except UnidentifiedImageError:
        raise ImageError(source, "not a readable image (unknown or corrupt format)") from None
    except OSError as error:
        raise ImageError(source, f"cannot read image ({error})") from None
    if image.format not in SUPPORTED_FORMATS:
        raise ImageError(source, f"unsupported image format {image.format}")
    return image


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )


def _info(image: Image.Image) -> ImageInfo:
    width, height = image.size
    return ImageInfo(width, height, image.mode, image.format or "", _has_alpha(image))


def probe_image(source: bytes | str | os.PathLike, name: str | None = None) -> ImageInfo:
    """Read width, height, mode and format from the header only.

    Parameters
    ----------
    source : bytes or path
        Encoded image bytes or a file path.
    name : str, optional
        What to call the image in error messages when ``source`` is bytes.
    """
    data = source if isinstance(source, bytes) else None
    label = name or ("<bytes>" if data is not None else source)
    with _open(data, label if data is not None else source) as image:
        return _info(image)


def _to_float(image: Image.Image, keep_alpha: bool) -> np.ndarray:
    """Convert any PIL mode to float32 RGB or RGBA in [0, 1], keeping 16-bit precision."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        grey = np.asarray(image, dtype=np.float32)
        scale = 65535.0 if mode != "I" or grey.max(initial=0) > 255 else 255.0
        grey = np.clip(grey / scale, 0.0, 1.0)
        rgb = np.repeat(grey[..., None], 3, axis=2)
        if keep_alpha:
            return np.concatenate([rgb, np.ones_like(grey)[..., None]], axis=2)
        return rgb
    if mode == "F":
        grey = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
        return _to_float(Image.fromarray((grey * 65535).astype(np.uint16)), keep_alpha)
    if mode == "CMYK":
        image = image.convert("RGB")
    elif mode in ("RGB;16", "RGBA;16", "RGB;48"):
        image = image.convert("RGBA" if keep_alpha else "RGB")
    target = "RGBA" if keep_alpha else "RGB"
    if image.mode != target:
        # Flatten transparency only after converting palettes so their alpha is not lost.
        if _has_alpha(image):
            image = image.convert("RGBA")
        image = image.convert(target)
    return np.asarray(image, dtype=np.float32) / 255.0


def _decode(image: Image.Image, source, keep_alpha: bool, max_pixels: int) -> np.ndarray:
    info = _info(image)
    if info.pixels > max_pixels:
        raise ImageError(
            source,
            f"image too large ({info.width}x{info.height} = {info.pixels:,} pixels;"
            f" the limit is {max_pixels:,})",
        )
    if info.width < 1 or info.height < 1:
        raise ImageError(source, "image has no pixels")
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
        return _to_float(image, keep_alpha)
    except OSError as error:
        reason = "truncated file" if "truncated" in str(error) else str(error)
        raise ImageError(source, f"cannot decode image ({reason})") from None
    except (ValueError, SyntaxError) as error:
        raise ImageError(source, f"cannot decode image ({error})") from None


def decode_image(
    data: bytes, name: str = "<bytes>", *, keep_alpha: bool = False, max_pixels: int = MAX_PIXELS
) -> np.ndarray:
    """Decode encoded image bytes; see :func:`read_image`."""
    with _open(data, name) as image:
        return _decode(image, name, keep_alpha, max_pixels)


def read_image(
    path: str | os.PathLike, *, keep_alpha: bool = False, max_pixels: int = MAX_PIXELS
) -> np.ndarray:
    """Read an image file as float32 RGB (or RGBA) in [0, 1].

    Parameters
    ----------
    path : path-like
        PNG, JPEG, WebP, BMP or TIFF; 8 or 16 bit; grey, palette, RGB, RGBA or CMYK.
    keep_alpha : bool
        Return HxWx4 with the alpha channel (1.0 where the file has none) instead of HxWx3.
    max_pixels : int
        Refuse images with more pixels than this, before decoding them.

    Returns
    -------
    ndarray, float32, shape (H, W, 3) or (H, W, 4), values in [0, 1], EXIF orientation applied.

    Raises
    ------
    ImageError
        Missing, unreadable, truncated, unsupported or too large; the message names ``path``.
    """
    with _open(None, path) as image:
        return _decode(image, path, keep_alpha, max_pixels)


def read_alpha(path: str | os.PathLike, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read a matte or mask as float32 HxW in [0, 1].

    A file with an alpha channel gives that channel; otherwise its luminance
    (Rec. 601: 0.299 R + 0.587 G + 0.114 B, identical to the value of a grey file).
    """
    with _open(None, path) as image:
        has_alpha = _has_alpha(image)
        pixels = _decode(image, path, has_alpha, max_pixels)
    if has_alpha:
        return np.ascontiguousarray(pixels[..., 3])
    return (pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)).astype(np.float32)


def trimap_from_uint8(values: np.ndarray) -> np.ndarray:
    """Map on-disk trimap levels to the in-memory convention.

    Parameters
    ----------
    values : ndarray, shape (H, W), any integer or float dtype in [0, 255]

    Returns
    -------
    ndarray, float32, shape (H, W): 0.0 where values <= TRIMAP_TOLERANCE, 1.0 where
    values >= 255 - TRIMAP_TOLERANCE, 0.5 (unknown) everywhere else.
    """
    trimap = np.full(values.shape, TRIMAP_UNKNOWN, dtype=np.float32)
    trimap[values <= TRIMAP_TOLERANCE] = 0.0
    trimap[values >= 255 - TRIMAP_TOLERANCE] = 1.0
    return trimap


def trimap_to_uint8(trimap: np.ndarray) -> np.ndarray:
    """In-memory trimap {0, 0.5, 1} (float, HxW) to on-disk levels {0, 128, 255} (uint8)."""
    levels = np.full(trimap.shape, 128, dtype=np.uint8)
    levels[trimap <= 0.25] = 0
    levels[trimap >= 0.75] = 255
    return levels


def read_trimap(
    path: str | os.PathLike, *, shape: tuple[int, int] | None = None, max_pixels: int = MAX_PIXELS
) -> np.ndarray:
    """Read a trimap as float32 HxW with values exactly {0.0, 0.5, 1.0}.

    Grey files are used as they are; 3- or 4-channel files contribute their first channel, so an
    RGB trimap painted in an editor works. See :func:`trimap_from_uint8` for the tolerance.

    Parameters
    ----------
    shape : (H, W), optional
        The image size the trimap must match. A different size is an error, never a resize.
    """
    with _open(None, path) as image:
        return _trimap(image, path, shape, max_pixels)


def decode_trimap(
    data: bytes,
    name: str = "<bytes>",
    *,
    shape: tuple[int, int] | None = None,
    max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
    """Decode trimap bytes (an upload) exactly as :func:`read_trimap` reads a file."""
    with _open(data, name) as image:
        return _trimap(image, name, shape, max_pixels)


def _trimap(image: Image.Image, source, shape: tuple[int, int] | None, max_pixels: int):
    pixels = _decode(image, source, False, max_pixels)
    trimap = trimap_from_uint8(np.rint(pixels[..., 0] * 255.0))
    if shape is not None and trimap.shape != tuple(shape):
        raise ImageError(source, _size_problem(*trimap.shape[::-1], *shape[::-1]))
    return trimap


def check_trimap_header(image: str | os.PathLike, trimap: str | os.PathLike) -> None:
    """Refuse a trimap whose size cannot match the image's, from the two headers alone.

    Cheap (no pixel is decoded), so a command can call it before decoding a large image:
    :func:`read_trimap` gives the same message only after both are decoded. EXIF orientation
    may swap an image's width and height, so a trimap of the transposed size is left for
    :func:`read_trimap` to judge.

    Raises
    ------
    ImageError
        Either file is unreadable (naming it), or the trimap is a different size (naming the
        trimap, with the message :func:`read_trimap` gives).
    """
    image_info = probe_image(image)
    trimap_info = probe_image(trimap)
    size = (image_info.width, image_info.height)
    if (trimap_info.width, trimap_info.height) not in (size, size[::-1]):
        raise ImageError(trimap, _size_problem(trimap_info.width, trimap_info.height, *size))


def _size_problem(width: int, height: int, image_width: int, image_height: int) -> str:
    return (
        f"trimap is {width}x{height} but the image is {image_width}x{image_height};"
        " they must be the same size"
    )


def read_uint8(path: str | os.PathLike, *, grey: bool) -> np.ndarray:
    """Decode an 8-bit file of our own (combine.py's PNGs) fast, as raw levels, for training.

    No EXIF, size or bit-depth checks: the training pipeline reads each file thousands of
    times and combine.py already validated it. OpenCV decodes about twice as fast as Pillow.

    Returns
    -------
    ndarray, uint8: shape (H, W) when ``grey``, else (H, W, 3) in OpenCV's **BGR** order (the
    dataset folds the swap to RGB into its colour jitter matrix, saving a pass per pixel).

    Raises
    ------
    ImageError
        The file is missing or cannot be decoded.
    """
    # Imported here so that the commands that never train do not pay for loading OpenCV.
    import cv2

    pixels = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
    if pixels is None:
        if not Path(path).is_file():
            raise ImageError(path, "no such file")
        raise ImageError(path, "cannot decode image (truncated or corrupt file)")
    return pixels


def to_uint8(array: np.ndarray) -> np.ndarray:
    """float in [0, 1] -> uint8 in [0, 255] with rounding; uint8 passes through unchanged."""
    if array.dtype == np.uint8:
        return array
    return np.rint(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)


def to_uint16(array: np.ndarray) -> np.ndarray:
    """float in [0, 1] -> uint16 in [0, 65535] with rounding; uint8 is scaled by 257."""
    if array.dtype == np.uint8:
        return array.astype(np.uint16) * 257
    return np.rint(np.clip(array, 0.0, 1.0) * 65535.0).astype(np.uint16)


def _file_mode() -> int:
    # Read once at import: os.umask can only be read by setting it, which races with threads.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _file_mode()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    A reader never sees a half-written file: either the old file (or none) or the complete
    new one. On an exception the temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        handle, temp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
        )
    except OSError as error:
        raise _about_target(error, target) from error
    os.close(handle)
    temp = Path(temp_name)
    try:
        yield temp
        # mkstemp creates 0600; a finished file gets the mode a plain open() would give it.
        os.chmod(temp, _FILE_MODE)
        os.replace(temp, target)
    except OSError as error:
        if str(temp) not in (error.filename, error.filename2):
            raise
        raise _about_target(error, target) from error
    finally:
        temp.unlink(missing_ok=True)


def _about_target(error: OSError, target: Path) -> OSError:
    """The same error, naming ``target``: the temporary file's name means nothing to a user."""
    # OSError(errno, ...) picks the matching subclass (IsADirectoryError, ...), so callers that
    # catch one still do.
    return OSError(error.errno, error.strerror, str(target))


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as temp:
        temp.write_bytes(data)


def encode_png(array: np.ndarray, *, bits: int = 8, compress_level: int = 1) -> bytes:
    """Encode HxW (grey), HxWx3 (RGB) or HxWx4 (RGBA) pixels as PNG bytes.

    Parameters
    ----------
    array : ndarray, float in [0, 1] or uint8
    bits : 8 or 16
        16 keeps the precision of a float matte (grey only; colour is written as 8 bit,
        since PIL cannot write 16-bit colour PNG).
    compress_level : int
        zlib level 0-9. Level 1 is several times faster than PIL's default 6, with files
        about 10 % larger, which suits datasets that are written once and read often.
    """
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"cannot write an array of shape {array.shape} as PNG")
    if bits == 16 and array.ndim == 2:
        image = Image.fromarray(to_uint16(array))
    elif bits in (8, 16):
        image = Image.fromarray(to_uint8(array))
    else:
        raise ValueError(f"bits must be 8 or 16, not {bits}")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def write_png(
    path: str | os.PathLike, array: np.ndarray, *, bits: int = 8, compress_level: int = 1
) -> None:
    """Write pixels as a PNG atomically; see :func:`encode_png` for the arguments."""
    write_bytes(path, encode_png(array, bits=bits, compress_level=compress_level))
