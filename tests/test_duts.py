"""scripts/duts.py: a tiny DUTS-shaped zip, extracted from disk and downloaded from 127.0.0.1
(resumed with a Range request), and the one-line errors of bad input."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from model.trimap_data import find_pairs
from scripts import duts

ROOT = Path(__file__).resolve().parents[1]


def _png(pixels: np.ndarray) -> bytes:
    return cv2.imencode(".png", pixels)[1].tobytes()


def duts_zip(names=("ILSVRC_1", "sun_2"), top: str = "DUTS-TR") -> bytes:
    """A DUTS-shaped zip: ``<top>/<top>-Image/NAME.jpg`` and ``<top>-Mask/NAME.png``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{top}/", b"")
        for index, name in enumerate(names):
            mask = np.zeros((24, 32), np.uint8)
            mask[6:18, 4 + index : 20] = 255
            image = cv2.imencode(".jpg", np.dstack([mask] * 3))[1].tobytes()
            archive.writestr(f"{top}/{top}-Image/{name}.jpg", image)
            archive.writestr(f"{top}/{top}-Mask/{name}.png", _png(mask))
    return buffer.getvalue()


class _RangeSite:
    """Serves one file on 127.0.0.1 and honours ``Range: bytes=N-`` with 206."""

    def __init__(self, body: bytes):
        self.body, self.ranges = body, []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path != "/DUTS-TR.zip":
                    self.send_error(404)
                    return
                start = 0
                header = self.headers.get("Range")
                site.ranges.append(header)
                if header:
                    start = int(header.split("=")[1].rstrip("-"))
                self.send_response(206 if header else 200)
                self.send_header("Content-Length", str(len(site.body) - start))
                self.end_headers()
                self.wfile.write(site.body[start:])

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = "/DUTS-TR.zip") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site():
    served = _RangeSite(duts_zip())
    yield served
    served.close()


def test_local_zip_is_extracted_into_the_trimap_layout(tmp_path):
    source = tmp_path / "DUTS-TR.zip"
    source.write_bytes(duts_zip())
    assert duts.main(["--zip", str(source), "--out", str(tmp_path / "out")]) == 0
    pairs = find_pairs(tmp_path / "out", "train")
    assert [pair.name for pair in pairs] == ["ILSVRC_1", "sun_2"]
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    # A second run keeps what is there; --force replaces it.
    mask = tmp_path / "out/DUTS-TR/DUTS-TR-Mask/sun_2.png"
    mask.write_bytes(b"edited")
    assert duts.main(["--zip", str(source), "--out", str(tmp_path / "out")]) == 0
    assert mask.read_bytes() == b"edited"
    assert duts.main(["--zip", str(source), "--out", str(tmp_path / "out"), "--force"]) == 0
    assert mask.read_bytes() != b"edited"


def test_download_from_loopback_resumes_a_partial_file(tmp_path, site):
    out = tmp_path / "out"
    part = out / ".download" / "DUTS-TR.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(site.body[:100])  # what an interrupted run left
    assert duts.main(["--url", site.url(), "--out", str(out), "--quiet", "--keep-zip"]) == 0
    assert site.ranges == ["bytes=100-"]
    assert (out / ".download" / "DUTS-TR.zip").read_bytes() == site.body
    assert not part.exists()
    assert [pair.name for pair in find_pairs(out, "train")] == ["ILSVRC_1", "sun_2"]


def test_download_without_keep_zip_removes_it(tmp_path, site):
    assert duts.main(["--url", site.url(), "--out", str(tmp_path), "--quiet"]) == 0
    assert site.ranges == [None]
    assert not (tmp_path / ".download" / "DUTS-TR.zip").exists()


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "scripts/duts.py", *args], cwd=ROOT, capture_output=True, text=True
    )


def test_bad_input_gives_one_line(tmp_path, site):
    not_zip = tmp_path / "x.zip"
    not_zip.write_bytes(b"not a zip")
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("photos/a.jpg", b"")
    unsafe = tmp_path / "unsafe.zip"
    with zipfile.ZipFile(unsafe, "w") as archive:
        archive.writestr("../DUTS-TR/DUTS-TR-Image/a.jpg", b"")
    cases = {
        str(tmp_path / "missing.zip"): "no such file",
        str(not_zip): "not a readable zip",
        str(other): "no DUTS-TR/DUTS-TR-Image + DUTS-TR-Mask",
        str(unsafe): "unsafe member name",
    }
    for source, problem in cases.items():
        result = _run("--zip", source, "--out", str(tmp_path / "out"))
        assert result.returncode == 2, result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {source}: {problem}")
    result = _run("--url", site.url("/missing.zip"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {site.url('/missing.zip')}: HTTP 404"
    assert not (tmp_path / "out" / "DUTS-TR").exists()
