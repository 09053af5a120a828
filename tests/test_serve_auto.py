"""serve.py without a trimap: POST /api/matte with the image alone, and POST /api/trimap.

The expected trimap is made in the test by ``auto_trimap`` with its own saliency model, and the
expected matte by the same checkpoint through ``Matter.extract``; the server must agree.
"""

from __future__ import annotations

import base64

import numpy as np
import pytest
from fastapi.testclient import TestClient
from test_serve_api import assert_error, decode, make_tiny_checkpoint, png

import serve
from model import server
from model.auto_trimap import AutoTrimapper, auto_trimap, load_saliency_model
from model.images import to_uint8, trimap_to_uint8
from model.inference import Matter

pytestmark = pytest.mark.slow  # the saliency network loads in seconds

HEIGHT, WIDTH = 48, 72


def disc_photo() -> np.ndarray:
    """uint8 (48, 72, 3): a dark disc of radius 14 on a plain light background, some noise."""
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    disc = np.hypot(yy - 24, xx - 36) <= 14
    image = np.where(disc[..., None], [40, 60, 160], [235, 230, 215]).astype(np.float32)
    return np.clip(image + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def matter(tmp_path_factory) -> Matter:
    root = tmp_path_factory.mktemp("serve_auto")
    make_tiny_checkpoint(root)
    return Matter.load("-1", log_dir=root)


@pytest.fixture(scope="module")
def client(matter):
    app = server.create_app(matter, trimapper=AutoTrimapper(band=0.05))
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def reference(matter):
    image = disc_photo().astype(np.float32) / 255.0
    trimap = auto_trimap(load_saliency_model(), image, band=0.05)
    matte = matter.extract(image, trimap)
    return {"trimap": trimap, "alpha": matte.alpha}


def test_matte_without_a_trimap_uses_the_automatic_one(client, reference):
    response = client.post(
        "/api/matte", files={"image": ("disc.png", png(disc_photo()))}, data={"format": "json"}
    )
    assert response.status_code == 200, response.text
    outputs = {
        name: decode(base64.b64decode(data)) for name, data in response.json()["outputs"].items()
    }
    trimap = outputs["trimap"]
    np.testing.assert_array_equal(trimap, trimap_to_uint8(reference["trimap"]))
    assert trimap[24, 36] == 255 and trimap[0, 0] == 0  # the disc is found
    assert (trimap == 128).any()
    alpha = outputs["rgba"][..., 3]
    np.testing.assert_array_equal(alpha, to_uint8(reference["alpha"]))
    assert (alpha[trimap == 255] == 255).all() and (alpha[trimap == 0] == 0).all()


def test_trimap_endpoint_returns_the_automatic_trimap(client, reference):
    response = client.post("/api/trimap", files={"image": ("my disc.png", png(disc_photo()))})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-disposition"] == 'inline; filename="my disc-trimap.png"'
    np.testing.assert_array_equal(decode(response.content), trimap_to_uint8(reference["trimap"]))


@pytest.mark.parametrize(
    ("files", "status", "fragment"),
    [
        ({}, 400, "image: missing"),
        ({"image": ("x.png", b"not an image")}, 400, "image: not a readable image"),
        ({"trimap": ("t.png", b"x")}, 400, "trimap: unknown field; the fields are image"),
    ],
)
def test_trimap_endpoint_errors(client, files, status, fragment):
    if files:
        response = client.post("/api/trimap", files=files)
    else:  # a multipart form with no part at all
        headers = {"content-type": "multipart/form-data; boundary=b"}
        response = client.post("/api/trimap", content=b"--b--\r\n", headers=headers)
    assert_error(response, status, fragment)


def test_health_says_trimaps_are_automatic(client, matter):
    assert client.get("/api/health").json()["auto_trimap"] is True
    app = server.create_app(matter)  # no trimapper: trimaps are required
    with TestClient(app) as plain:
        assert plain.get("/api/health").json()["auto_trimap"] is False
        response = plain.post("/api/trimap", files={"image": ("d.png", png(disc_photo()))})
        assert_error(response, 404, "this server makes no automatic trimaps")
        response = plain.post("/api/matte", files={"image": ("d.png", png(disc_photo()))})
        assert_error(response, 400, "trimap: missing")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--saliency-weights", "no.weights.h5"], "error: no.weights.h5: no such file"),
        (
            ["--trimap-foreground", "0.2", "--trimap-background", "0.3"],
            "error: --trimap-background 0.3 must be below --trimap-foreground 0.2",
        ),
    ],
)
def test_cli_rejects_bad_trimap_options(capsys, args, message):
    assert serve.main(args) == 2
    assert capsys.readouterr().err.strip() == message
