"""HTTP API of serve.py through FastAPI's TestClient (no uvicorn, no network).

Expected images are computed independently of the server: the same checkpoint is run through
``Matter.predict_alpha``/``extract`` directly and composited with ``model.compositing``; known
trimap regions must come back exactly 0 or 1 (the contract's clamp).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import uvicorn
from fastapi.testclient import TestClient
from PIL import Image

import serve
from model import server
from model.compositing import composite
from model.images import encode_png, to_uint8, to_uint16
from model.inference import Matter
from model.outputs import OUTPUTS

STEP = 7
HEIGHT, WIDTH = 23, 37  # not multiples of the tiny model's 4, so padding and cropping run
MAX_UPLOAD = 200_000
MAX_PIXELS = 5_000


def make_tiny_checkpoint(log_dir: Path, step: int = STEP) -> Path:
    """Save a random tiny generator in the run layout of the contracts: returns the run folder.

    ``log_dir/tiny/checkpoints/ckpt-<step>.*`` and ``log_dir/tiny/config.json``.
    """
    import tensorflow as tf

    from model.networks import ModelConfig, build_generator

    config = ModelConfig(base_filters=4, depth=2)
    run = log_dir / "tiny"
    generator = build_generator(config)
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(generator=generator), run / "checkpoints", 3, checkpoint_name="ckpt"
    )
    manager.save(checkpoint_number=step)
    (run / "config.json").write_text(json.dumps({"model": config.to_dict()}), encoding="utf-8")
    return run


def sample_pair(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 RGB image and uint8 trimap {0, 128, 255}: a foreground disc in an unknown ring."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    distance = np.hypot(yy - height / 2, xx - width / 2)
    trimap = np.where(distance < 5, 255, np.where(distance < 10, 128, 0)).astype(np.uint8)
    return image, trimap


def png(array: np.ndarray) -> bytes:
    return encode_png(array)


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("serve_log")
    make_tiny_checkpoint(root)
    return root


@pytest.fixture(scope="module")
def matter(log_dir) -> Matter:
    return Matter.load("-1", log_dir=log_dir)


@pytest.fixture(scope="module")
def client(matter):
    app = server.create_app(matter, max_upload_bytes=MAX_UPLOAD, max_pixels=MAX_PIXELS, max_queue=2)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def pair():
    return sample_pair(HEIGHT, WIDTH)


@pytest.fixture(scope="module")
def reference(matter, pair):
    """What the server must return, computed without it."""
    image_u8, trimap_u8 = pair
    image = image_u8.astype(np.float32) / 255.0
    trimap = np.select([trimap_u8 == 0, trimap_u8 == 255], [0.0, 1.0], 0.5).astype(np.float32)
    matte = matter.extract(image, trimap)
    return {"image": image, "trimap": trimap, "alpha": matte.alpha, "fg": matte.foreground}


def post(client, pair, **fields):
    """POST /api/matte with the sample pair; ``fields`` override or add form values/files."""
    image_u8, trimap_u8 = pair
    files = {"image": ("photo.png", png(image_u8)), "trimap": ("trimap.png", png(trimap_u8))}
    data = {}
    for name, value in fields.items():
        files.pop(name, None)
        if isinstance(value, tuple):
            files[name] = value
        elif value is not None:
            data[name] = value
    return client.post("/api/matte", files=files, data=data)


def assert_error(response, status: int, *fragments: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    message = response.json()["error"]
    for fragment in fragments:
        assert fragment in message, message


# ---------------------------------------------------------------- outputs


def test_default_png_is_the_rgba_cutout(client, pair, reference):
    response = post(client, pair)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert 'filename="photo-rgba.png"' in response.headers["content-disposition"]
    rgba = decode(response.content)
    assert rgba.shape == (HEIGHT, WIDTH, 4)
    np.testing.assert_array_equal(rgba[..., 3], to_uint8(reference["alpha"]))
    np.testing.assert_array_equal(rgba[..., :3], to_uint8(reference["fg"]))
    # The clamp of the contract, by hand: trimap 0 -> alpha 0, trimap 255 -> alpha 255.
    trimap_u8 = pair[1]
    assert (rgba[..., 3][trimap_u8 == 0] == 0).all()
    assert (rgba[..., 3][trimap_u8 == 255] == 255).all()


def test_alpha_output_is_16_bit(client, pair, reference):
    response = post(client, pair, output="alpha")
    assert response.status_code == 200, response.text
    image = Image.open(io.BytesIO(response.content))
    assert image.mode.startswith("I")  # 16-bit grey
    np.testing.assert_array_equal(np.asarray(image), to_uint16(reference["alpha"]))


def test_soft_mask_output_is_8_bit_alpha(client, pair, reference):
    soft = decode(post(client, pair, output="soft_mask").content)
    assert soft.dtype == np.uint8 and soft.shape == (HEIGHT, WIDTH)
    np.testing.assert_array_equal(soft, to_uint8(reference["alpha"]))


@pytest.mark.parametrize("threshold", [0.25, 0.75])
def test_mask_output_thresholds_alpha(client, pair, reference, threshold):
    mask = decode(post(client, pair, output="mask", mask_threshold=str(threshold)).content)
    expected = np.where(reference["alpha"] >= threshold, 255, 0)
    np.testing.assert_array_equal(mask, expected)


def test_mask_threshold_changes_the_mask(client, pair, reference):
    unknown = reference["alpha"][(reference["alpha"] > 0) & (reference["alpha"] < 1)]
    # Random weights put unknown alphas strictly inside (0.25, 0.75) often enough to tell apart.
    assert ((unknown >= 0.25) & (unknown < 0.75)).any()
    low = decode(post(client, pair, output="mask", mask_threshold="0.25").content)
    high = decode(post(client, pair, output="mask", mask_threshold="0.75").content)
    assert (low >= high).all() and (low != high).any()


def test_trimap_output_echoes_a_tolerant_read(client, pair):
    trimap_u8 = pair[1]
    # An RGB trimap with JPEG-like noise near 0 and 255 reads as {0, 128, 255} (DESIGN.md).
    noisy = trimap_u8.astype(np.int16) + np.where(
        trimap_u8 == 0, 9, np.where(trimap_u8 == 255, -9, 0)
    )
    rgb = np.repeat(noisy.astype(np.uint8)[..., None], 3, axis=2)
    echoed = decode(post(client, pair, trimap=("t.png", png(rgb)), output="trimap").content)
    np.testing.assert_array_equal(echoed, trimap_u8)


def test_composite_over_a_colour(client, pair, reference):
    response = post(client, pair, background="#00ff00")
    assert response.status_code == 200, response.text
    assert 'filename="photo-composite.png"' in response.headers["content-disposition"]
    result = decode(response.content)
    assert result.shape == (HEIGHT, WIDTH, 3)
    green = np.broadcast_to(np.float32([0, 1, 0]), (HEIGHT, WIDTH, 3))
    expected = to_uint8(composite(reference["fg"], reference["alpha"], green))
    assert np.abs(result.astype(int) - expected).max() <= 1  # float rounding only
    trimap_u8 = pair[1]
    assert (result[trimap_u8 == 0] == [0, 255, 0]).all()


@pytest.mark.parametrize("text", ["0,255,0", "lime", "rgb(0, 255, 0)", "#0f0"])
def test_colour_spellings(client, pair, text):
    result = decode(post(client, pair, background=text).content)
    assert (result[pair[1] == 0] == [0, 255, 0]).all()


def test_composite_over_an_image(client, pair, reference):
    rng = np.random.default_rng(5)
    backdrop = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    result = decode(post(client, pair, background_image=("bg.png", png(backdrop))).content)
    # Same size, so fitting the background changes nothing.
    expected = composite(reference["fg"], reference["alpha"], backdrop.astype(np.float32) / 255)
    assert np.abs(result.astype(int) - to_uint8(expected)).max() <= 1


def test_composite_without_background_is_the_cutout(client, pair):
    rgba = post(client, pair, output="rgba").content
    assert post(client, pair, output="composite").content == rgba


def test_json_holds_every_output(client, pair, reference):
    response = post(client, pair, format="json", background="#ff0000", mask_threshold="0.4")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"], body["step"]) == (WIDTH, HEIGHT, STEP)
    assert body["mask_threshold"] == 0.4
    assert set(body["outputs"]) == set(OUTPUTS)
    for name, data in body["outputs"].items():
        single = post(client, pair, output=name, background="#ff0000", mask_threshold="0.4")
        np.testing.assert_array_equal(decode(base64.b64decode(data)), decode(single.content))
    rgba = decode(base64.b64decode(body["outputs"]["rgba"]))
    np.testing.assert_array_equal(rgba[..., 3], to_uint8(reference["alpha"]))


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("fields", "status", "fragments"),
    [
        ({"image": None}, 400, ("image: missing",)),
        ({"trimap": None}, 400, ("trimap: missing",)),
        ({"image": ("x.png", b"not an image")}, 400, ("image: not a readable image",)),
        ({"image": ("x.png", b"")}, 400, ("image: the uploaded file is empty",)),
        ({"trimap": ("t.png", b"\x89PNG\r\n\x1a\n trunc")}, 400, ("trimap:",)),
        ({"background": "reddish"}, 400, ("background: 'reddish' is not a colour",)),
        ({"background_image": ("b.png", b"junk")}, 400, ("background_image: not a readable",)),
        ({"mask_threshold": "abc"}, 400, ("mask_threshold: must be a number from 0 to 1",)),
        ({"mask_threshold": "1.5"}, 400, ("mask_threshold:", "'1.5'")),
        ({"mask_threshold": "nan"}, 400, ("mask_threshold:",)),
        ({"format": "gif"}, 400, ("format: must be png or json",)),
        ({"output": "depth"}, 400, ("output: must be one of rgba",)),
        ({"output": "alpha", "format": "json"}, 400, ("output: only with format=png",)),
        ({"threshold": "0.5"}, 400, ("threshold: unknown field",)),
        ({"image": "a string"}, 400, ("image: expected a file upload",)),
        ({"format": ("f.txt", b"json")}, 400, ("format: expected a text value",)),
    ],
)
def test_bad_fields_name_the_problem(client, pair, fields, status, fragments):
    assert_error(post(client, pair, **fields), status, *fragments)


def test_colour_and_background_image_together(client, pair):
    backdrop = png(np.zeros((4, 4, 3), np.uint8))
    response = post(client, pair, background="red", background_image=("b.png", backdrop))
    assert_error(response, 400, "background: give either a colour or background_image")


def test_trimap_of_another_size(client, pair):
    response = post(client, pair, trimap=("t.png", png(np.zeros((10, 12), np.uint8))))
    assert_error(response, 400, "trimap: trimap is 12x10 but the image is 37x23")


def test_field_given_twice(client, pair):
    image_u8, trimap_u8 = pair
    files = [
        ("image", ("a.png", png(image_u8))),
        ("image", ("b.png", png(image_u8))),
        ("trimap", ("t.png", png(trimap_u8))),
    ]
    assert_error(client.post("/api/matte", files=files), 400, "image: given 2 times")


def test_not_multipart(client):
    response = client.post("/api/matte", json={"image": "x"})
    assert_error(response, 415, "request: expected multipart/form-data", "application/json")


def test_upload_over_the_size_limit(client, pair):
    big = png(np.random.default_rng(1).integers(0, 256, (300, 300, 3), dtype=np.uint8))
    assert len(big) > MAX_UPLOAD  # noise does not compress
    response = post(client, pair, image=("big.png", big))
    assert_error(response, 413, "image: upload is", "the limit is 0.191 MB")


def test_declared_body_over_the_limit(client):
    limit = 3 * MAX_UPLOAD + server.MB
    response = client.post(
        "/api/matte",
        content=b"x" * (limit + 1),
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert_error(response, 413, "request: body is")


def test_streamed_body_over_the_limit(client):
    limit = 3 * MAX_UPLOAD + server.MB
    chunks = (b"x" * 65536 for _ in range(limit // 65536 + 2))  # no Content-Length: chunked
    response = client.post(
        "/api/matte", content=chunks, headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert_error(response, 413, "request: body is over the limit")


def test_image_over_the_pixel_limit(client):
    image_u8, trimap_u8 = sample_pair(80, 80)  # 6,400 > 5,000 pixels, yet a small upload
    response = client.post(
        "/api/matte",
        files={"image": ("i.png", png(image_u8)), "trimap": ("t.png", png(trimap_u8))},
    )
    assert_error(response, 413, "image: image is 80x80 = 6,400 pixels; the limit is 5,000")


def test_background_over_the_pixel_limit(client, pair):
    backdrop = png(np.zeros((100, 60, 3), np.uint8))
    assert_error(post(client, pair, background_image=("b.png", backdrop)), 413, "background_image:")


def test_unknown_route_and_method(client):
    assert_error(client.get("/api/nothing"), 404, "/api/nothing: not found")
    assert_error(client.get("/api/matte"), 405, "GET /api/matte: method not allowed")


class _Blocking:
    """A Matter whose calls wait until ``release`` is set, to hold the pool full."""

    def __init__(self, matter: Matter):
        self._matter = matter
        self.ref = matter.ref
        self.config = matter.config
        self.device = matter.device
        self.engine = matter.engine
        self.release = threading.Event()

    def predict_alpha(self, image, trimap):
        assert self.release.wait(30)
        return self._matter.predict_alpha(image, trimap)

    def extract(self, image, trimap):
        assert self.release.wait(30)
        return self._matter.extract(image, trimap)


def test_full_queue_gets_503_and_recovers(matter, pair):
    blocking = _Blocking(matter)
    app = server.create_app(blocking, max_queue=1, workers=1)
    with TestClient(app) as test_client:
        answers = []
        threads = [
            threading.Thread(target=lambda: answers.append(post(test_client, pair)))
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 20
        while test_client.get("/api/health").json()["busy"] < 2:  # one running, one waiting
            assert time.monotonic() < deadline
            time.sleep(0.02)
        rejected = post(test_client, pair)
        assert_error(rejected, 503, "server busy: 2 requests", "1 at a time, 1 queued")
        assert rejected.headers["retry-after"] == "1"
        blocking.release.set()
        for thread in threads:
            thread.join(30)
        assert [answer.status_code for answer in answers] == [200, 200]
        assert test_client.get("/api/health").json()["busy"] == 0
        assert post(test_client, pair).status_code == 200


# ---------------------------------------------------------------- page and health


def test_health(client, log_dir):
    body = client.get("/api/health").json()
    assert body["status"] == "ok"
    assert body["step"] == STEP
    assert body["checkpoint"] == str(log_dir / "tiny" / "checkpoints" / f"ckpt-{STEP}")
    assert body["model"]["base_filters"] == 4
    assert body["engine"] == "tensorflow"  # the run has no model.onnx
    assert body["limits"] == {
        "workers": 1,
        "queue": 2,
        "max_upload_bytes": MAX_UPLOAD,
        "max_pixels": MAX_PIXELS,
        "max_video_bytes": 50 * server.MB,  # create_app's defaults
        "max_video_seconds": 30.0,
        "max_video_pixels": 1920 * 1080,
    }


def test_page_and_assets_are_local(client):
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    html = page.text
    assert "http://" not in html and "https://" not in html and 'src="//' not in html
    for asset, kind in (("static/app.js", "javascript"), ("static/style.css", "text/css")):
        assert f'"{asset}"' in html
        response = client.get(f"/{asset}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
        assert "http://" not in response.text and "https://" not in response.text


# ---------------------------------------------------------------- command line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "0"], "error: --workers: must be at least 1, got 0"),
        (["--queue", "-1"], "error: --queue: must be 0 or more, got -1"),
        (["--port", "70000"], "error: --port: must be 0-65535, got 70000"),
        (["--max-upload-mb", "0"], "error: --max-upload-mb: must be positive, got 0.0"),
        (["--body-timeout", "0"], "error: --body-timeout: must be positive, got 0.0"),
    ],
)
def test_cli_rejects_bad_options(capsys, args, message):
    assert serve.main(args) == 2
    assert capsys.readouterr().err.strip() == message


def test_cli_reports_a_missing_checkpoint(capsys, tmp_path):
    assert serve.main(["--log-dir", str(tmp_path), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {tmp_path}: no checkpoint found") and "\n" not in err


def test_cli_reports_a_busy_port(capsys, log_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert serve.main(["--log-dir", str(log_dir), "--port", str(port)]) == 1
    assert capsys.readouterr().err.strip() == f"error: 127.0.0.1:{port}: Address already in use"


# ---------------------------------------------------------------- hostile clients


def test_non_latin1_file_name_gets_an_rfc_5987_name(client, pair):
    image_u8, trimap_u8 = pair
    files = {"image": ("фото.png", png(image_u8)), "trimap": ("t.png", png(trimap_u8))}
    response = client.post("/api/matte", files=files)
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"] == (
        "inline; filename=\"____-rgba.png\"; filename*=UTF-8''%D1%84%D0%BE%D1%82%D0%BE-rgba.png"
    )


def test_quotes_in_a_file_name_cannot_break_the_header():
    header = server.content_disposition('a"b\\c.png')
    assert header == "inline; filename=\"a_b_c.png\"; filename*=UTF-8''a%22b%5Cc.png"


def test_a_very_long_file_name_gets_a_clear_message(client, pair):
    image_u8, trimap_u8 = pair
    files = {"image": ("a" * 5000 + ".png", png(image_u8)), "trimap": ("t.png", png(trimap_u8))}
    response = client.post("/api/matte", files=files)
    assert_error(response, 400, "request: a part's headers are over 4,224 bytes", "file name")


@pytest.fixture(scope="module")
def guarded(matter):
    app = server.create_app(matter, allowed_hosts=server.allowed_host_names("127.0.0.1", []))
    with TestClient(app, base_url="http://127.0.0.1:5003") as test_client:
        yield test_client


@pytest.mark.parametrize("host", ["127.0.0.1:5003", "localhost:5003", "[::1]:5003", "LOCALHOST"])
def test_own_host_names_are_answered(guarded, host):
    assert guarded.get("/api/health", headers={"host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example:5003", "evil.example", "127.0.0.1:80", "[::2]"])
def test_other_host_names_are_refused(guarded, host):
    # A DNS-rebinding page reaches 127.0.0.1 under its own name, which is what Host carries.
    response = guarded.get("/api/health", headers={"host": host})
    assert_error(response, 403, f"request: Host {host!r} is not this server's", "--allowed-host")


def test_allowed_host_option(matter):
    names = server.allowed_host_names("0.0.0.0", ["Photos.LAN"])
    assert names == {"127.0.0.1", "localhost", "[::1]", "photos.lan"}
    assert server.allowed_host_names("::1", []) == {"127.0.0.1", "localhost", "[::1]"}
    app = server.create_app(matter, allowed_hosts=names)
    with TestClient(app, base_url="http://photos.lan:5003") as test_client:
        assert test_client.get("/api/health").status_code == 200
    app = server.create_app(matter, allowed_hosts={"*"})
    with TestClient(app, base_url="http://anything.example:5003") as test_client:
        assert test_client.get("/api/health").status_code == 200


def test_cross_origin_post_is_refused(guarded, pair):
    image_u8, trimap_u8 = pair
    files = {"image": ("p.png", png(image_u8)), "trimap": ("t.png", png(trimap_u8))}
    response = guarded.post("/api/matte", files=files, headers={"origin": "http://evil.example"})
    assert_error(response, 403, "request: cross-origin POST from 'http://evil.example' refused")
    response = guarded.post("/api/matte", files=files, headers={"origin": "null"})
    assert_error(response, 403, "cross-origin POST from 'null'")
    # The page itself posts with its own origin, and curl sends none.
    own = guarded.post("/api/matte", files=files, headers={"origin": "http://127.0.0.1:5003"})
    assert own.status_code == 200, own.text
    assert guarded.post("/api/matte", files=files).status_code == 200


@contextlib.contextmanager
def live_server(app):
    """Run ``app`` under uvicorn on 127.0.0.1 in a thread; yields the port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_config=None, log_level="info", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.02)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


def _start_upload(port: int, declared: int) -> socket.socket:
    """A client that sends its headers and the first bytes of a body, then stalls."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn.sendall(
        b"POST /api/matte HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\n"
        b"Content-Length: %d\r\n\r\n--b\r\n" % declared
    )
    return conn


def test_slow_uploads_time_out_and_do_not_take_the_queue(matter, pair):
    # Nine stalled uploads against 1 worker + 8 queue places: the old server admitted each
    # one before reading its body and answered every real request 503.
    app = server.create_app(matter, workers=1, max_queue=8, body_timeout=1.5)
    with live_server(app) as port:
        stalled = [_start_upload(port, 100_000) for _ in range(9)]
        time.sleep(0.3)  # let the server accept them all
        image_u8, trimap_u8 = pair
        files = {"image": ("p.png", png(image_u8)), "trimap": ("t.png", png(trimap_u8))}
        real = requests.post(f"http://127.0.0.1:{port}/api/matte", files=files, timeout=20)
        assert real.status_code == 200, real.text
        for conn in stalled:
            with conn:
                answer = conn.makefile("rb").read()
            assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
            assert b"the upload did not arrive within 1.5 seconds" in answer


def test_client_disconnecting_mid_upload_logs_one_line(matter, caplog):
    app = server.create_app(matter)
    with live_server(app) as port, caplog.at_level(logging.INFO):
        conn = _start_upload(port, 100_000)
        conn.sendall(b"Content-Disposition: form-data; name=image; filename=a.png\r\n\r\n")
        time.sleep(0.2)
        conn.close()
        deadline = time.monotonic() + 10
        while not any("disconnected" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
            time.sleep(0.05)
        time.sleep(0.3)  # anything else the server logs about it comes now
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in problems] == [
        "POST /api/matte: client disconnected before sending its whole body"
    ]
    assert all(r.exc_info is None for r in caplog.records)
