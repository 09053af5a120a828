"""serve.py's video path through FastAPI's TestClient: jobs, progress, results and limits.

Clips come from test_video_matting's generator (64x48, a moving disc); results are decoded with
PyAV directly.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from test_serve_api import make_tiny_checkpoint
from test_video_matting import H, W, _truth, decode, make_clip

from model import server
from model.compositing import trimap_from_alpha
from model.images import encode_png, to_uint8
from model.inference import Matter

N = 5


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("serve_video_log")
    make_tiny_checkpoint(log_dir)
    matter = Matter.load("-1", log_dir=log_dir)
    app = server.create_app(
        matter, max_video_bytes=200_000, max_video_seconds=2.0, max_video_pixels=64 * 48
    )
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory) -> bytes:
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", frames=N).read_bytes()


def _trimap_png() -> bytes:
    return encode_png(to_uint8(trimap_from_alpha(_truth(0), kernel_size=5)))


def _wait(client, job_id: str, seconds: float = 60) -> dict:
    deadline = time.monotonic() + seconds
    seen = []
    while time.monotonic() < deadline:
        state = client.get(f"/api/jobs/{job_id}").json()
        seen.append(state)
        if state["status"] in ("done", "failed"):
            return state
        time.sleep(0.05)
    raise AssertionError(f"job did not finish: {seen[-1]}")


@pytest.mark.slow
@pytest.mark.parametrize("fmt,extra", [("webm", {}), ("mp4", {"background": "#ff0000"})])
def test_job_runs_and_returns_the_clip(client, clip_bytes, tmp_path, fmt, extra):
    response = client.post(
        "/api/video",
        files={"video": ("my clip.mp4", clip_bytes), "trimap": ("t.png", _trimap_png())},
        data={"format": fmt, **extra},
    )
    assert response.status_code == 202, response.text
    job = response.json()
    state = _wait(client, job["id"])
    assert state["status"] == "done", state
    assert state["frames_done"] == N == state["frames_total"]
    assert state["fraction"] == 1.0
    result = client.get(f"/{job['result_url']}")
    assert result.status_code == 200
    assert result.headers["content-type"] == {"webm": "video/webm", "mp4": "video/mp4"}[fmt]
    assert f"my%20clip-cutout.{fmt}" in result.headers["content-disposition"]
    path = tmp_path / f"result.{fmt}"
    path.write_bytes(result.content)
    frames = decode(path)
    assert len(frames) == N and frames[0].shape == (H, W, 4)
    if fmt == "webm":  # the first frame's trimap is clamped
        trimap = trimap_from_alpha(_truth(0), kernel_size=5)
        alpha = frames[0][..., 3]
        assert alpha[trimap == 1].min() >= 250 and alpha[trimap == 0].max() <= 5
    else:  # over red where the trimap says background (away from 4:2:0 chroma at the edge)
        np.testing.assert_allclose(frames[0][:6, :6, :3].reshape(-1, 3)[0], [255, 0, 0], atol=8)


def _post(client, data: bytes, name: str = "clip.mp4", **fields):
    return client.post("/api/video", files={"video": (name, data)}, data=fields)


def test_limits_and_bad_clips(client, clip_bytes, tmp_path):
    too_long = make_clip(tmp_path / "long.mp4", frames=60).read_bytes()  # 2.4 s at 25 fps
    response = _post(client, too_long)
    assert response.status_code == 413
    assert "the clip is 2.4 s long; the limit is 2 s" in response.json()["error"]

    big = make_clip(tmp_path / "big.mp4", frames=2, height=64, width=64).read_bytes()
    response = _post(client, big)
    assert response.status_code == 413
    assert "64x64 frames are over the limit of 3,072 pixels" in response.json()["error"]

    response = _post(client, b"x" * 200_001)
    assert response.status_code == 413 and "video: upload is" in response.json()["error"]

    response = _post(client, b"not a video at all")
    assert response.status_code == 400
    assert response.json()["error"].startswith("video: clip.mp4: not a readable video")

    response = _post(client, clip_bytes, name="clip.gif")
    assert response.status_code == 400 and "not a clip" in response.json()["error"]
    response = _post(client, clip_bytes, format="mp4")
    assert response.status_code == 400 and "give a colour for format mp4" in response.text
    response = client.post(
        "/api/video",
        files={
            "video": ("clip.mp4", clip_bytes),
            "trimap": ("t.png", encode_png(np.zeros((5, 5)))),
        },
    )
    assert response.status_code == 400 and "trimap" in response.json()["error"]

    assert client.get("/api/jobs/nope").status_code == 404
    assert client.get("/api/jobs/nope/result").status_code == 404
    limits = client.get("/api/health").json()["limits"]
    assert limits["max_video_seconds"] == 2.0 and limits["max_video_pixels"] == 3072
