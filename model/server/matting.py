"""One ``POST /api/matte`` request matted: decode, matte with a trimap or plate, encode."""

from __future__ import annotations

import dataclasses

from model.images import decode_image, decode_trimap
from model.outputs import OUTPUTS, encode_outputs
from model.plate_inference import check_plate
from model.server.forms import MatteRequest


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


def describe_matter(matter) -> dict:
    ref = matter.ref
    return {
        "checkpoint": str(ref.path) if ref is not None else None,
        "step": ref.step if ref is not None else None,
        "model": matter.config.to_dict(),
        "engine": matter.engine,
        "device": matter.device,
    }
