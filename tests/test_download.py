"""scripts/download.py end to end: real headless Chromium against a loopback search site.

Every image is generated here with numpy/PIL, so the expected kept files are known in advance:
a kept foreground is ``<sha256 of the served bytes>[:16].png`` holding exactly the generated
RGBA pixels, a kept JPEG background is the served bytes unchanged. Expected rejection reasons
follow from how each image was built (see the comment next to each). The browser tests need
Debian's chromium and chromium-driver (.ci/run installs them).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image

from scripts import download
from scripts.engines import ENGINES, search_url
from scripts.fetch import Downloader, Job
from scripts.transfer import Settings
from tests.loopback_site import LoopbackSite, Resource

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "download.py"
PAGE_PATHS = {
    "google": "/google/search?q={query}",
    "bing": "/bing/images/search?q={query}&form=HDRSC2",
    "duckduckgo": "/ddg/?q={query}",
}
MAX_BYTES = 200_000
MIN_BACKGROUND = 100

# .ci/run sets MATTING_REQUIRE_BROWSER, so in CI a missing browser fails these tests.
needs_chromium = pytest.mark.skipif(
    not (Path("/usr/bin/chromedriver").exists() or os.environ.get("MATTING_CHROMEDRIVER"))
    and not os.environ.get("MATTING_REQUIRE_BROWSER"),
    reason="needs chromium + chromium-driver (apt-get install chromium chromium-driver)",
)


# ---------------------------------------------------------------------------------------------
# Images


def encode(array: np.ndarray, mode: str, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def disc_alpha(height: int, width: int, soft: bool) -> np.ndarray:
    """uint8 disc of radius 14 centred in the image; ``soft`` ramps it over 5 px (partial alpha)."""
    yy, xx = np.mgrid[:height, :width]
    radius = np.hypot(yy - height / 2, xx - width / 2)
    alpha = np.clip((14 - radius) / 5, 0, 1) if soft else (radius < 14).astype(float)
    return np.rint(alpha * 255).astype(np.uint8)


def soft_rgba(seed: int, height: int = 40, width: int = 48) -> np.ndarray:
    """Random colours with a soft disc alpha: the only kind of foreground worth keeping."""
    colours = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return np.dstack([colours, disc_alpha(height, width, soft=True)])


def opaque_rgb(seed: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height RGBA pixels and that has no pixel data at all."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture
def site():
    with LoopbackSite() as running:
        yield running


def query_file(tmp_path: Path, name: str, *queries: str) -> str:
    path = tmp_path / name
    path.write_text("# test queries\n\n" + "\n".join(queries) + "\n", encoding="utf-8")
    return str(path)


def cli_args(site, engine, out, tmp_path, *extra):
    return [
        "--engine", engine,
        "--search-url", site.url(PAGE_PATHS[engine]),
        "--foreground-queries", query_file(tmp_path, "fg.txt", "fluffy cat"),
        "--background-queries", query_file(tmp_path, "bg.txt", "city street"),
        "--per-query", "30",
        "--out", str(out),
        "--workers", "4",
        "--timeout", "1",
        "--retries", "1",
        "--max-bytes", str(MAX_BYTES),
        "--min-background", str(MIN_BACKGROUND),
        "--delay", "0",
        "--page-wait", "0.5",
        "--quiet",
        *extra,
    ]  # fmt: skip


def records_by_url(out: Path) -> dict[str, dict]:
    lines = (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    by_url = {record["url"]: record for record in records}
    assert len(by_url) == len(records), "one record per URL"
    return by_url


def files_in(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir()} if folder.is_dir() else set()


def run_cli(*args, env=None, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# No browser: URL templates, query files, flags


@pytest.mark.parametrize(
    ("engine", "kind", "expected"),
    [
        # Hand-written from each engine's documented filter parameters.
        ("google", "foreground", "https://www.google.com/search?q=long+hair&udm=2&hl=en&tbs=ic:trans"),
        ("google", "background", "https://www.google.com/search?q=long+hair&udm=2&hl=en&tbs=isz:l"),
        ("bing", "foreground", "https://www.bing.com/images/search?q=long+hair&form=HDRSC2&first=1"
                               "&qft=+filterui:photo-transparent"),
        ("duckduckgo", "foreground", "https://duckduckgo.com/?q=long+hair&iax=images&ia=images"
                                     "&iaf=type:transparent"),
        ("duckduckgo", "background", "https://duckduckgo.com/?q=long+hair&iax=images&ia=images"
                                     "&iaf=size:Large"),
    ],
)  # fmt: skip
def test_search_url_appends_the_engine_filter(engine, kind, expected):
    assert search_url(ENGINES[engine], "long hair", kind) == expected


def test_search_url_template_override_keeps_the_filter():
    bing = ENGINES["bing"]
    assert (
        search_url(bing, "glass & ice", "foreground", "http://127.0.0.1:9/s/{query}")
        == "http://127.0.0.1:9/s/glass+%26+ice?qft=+filterui:photo-transparent"
    )
    assert (
        search_url(bing, "a", "background", "http://h/s?q={query}&x=1")
        == "http://h/s?q=a&x=1&qft=+filterui:imagesize-large"
    )


def test_read_queries_skips_comments_and_blank_lines(tmp_path):
    path = tmp_path / "q.txt"
    path.write_text("# people\nlong hair\n\n  curly hair  \n#x\n", encoding="utf-8")
    assert download.read_queries(str(path)) == ["long hair", "curly hair"]


def test_builtin_queries_cover_the_hard_categories():
    foreground = " ".join(download.DEFAULT_FOREGROUND_QUERIES)
    for word in ("hair", "fur", "plant", "glass", "smoke"):
        assert word in foreground
    background = " ".join(download.DEFAULT_BACKGROUND_QUERIES)
    for word in ("interior", "street", "forest", "texture"):
        assert word in background


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--foreground-queries", "/nonexistent/q.txt"], "error: /nonexistent/q.txt: no such file"),
        (
            ["--search-url", "http://127.0.0.1:9/s"],
            "error: http://127.0.0.1:9/s: search URL has no",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, capsys):
    assert download.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(message)
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "0"], "error: argument --workers: must be >= 1, not 0"),
        (["--timeout", "0"], "error: argument --timeout: must be > 0, not 0"),
        (["--delay", "soon"], "error: argument --delay: 'soon' is not a number"),
    ],
)
def test_bad_flag_values_are_one_line_and_exit_2(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        download.main(args)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == message


def test_empty_query_file_is_refused(tmp_path, capsys):
    path = query_file(tmp_path, "empty.txt")
    assert download.main(["--background-queries", path]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"error: {path}: no queries (one per line; # starts a comment)"
    )


def test_missing_chromedriver_is_one_line_without_traceback(tmp_path):
    result = run_cli(
        "--only", "background", "--out", str(tmp_path / "raw"), "--quiet",
        env={"MATTING_CHROMEDRIVER": "/nonexistent/chromedriver"},
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "error: cannot start Chromium: /nonexistent/chromedriver: no such chromedriver; install"
        " Debian's chromium and chromium-driver (apt-get install chromium chromium-driver) or"
        " Google Chrome"
    ]


def test_chromedriver_that_does_not_start_is_reported(tmp_path, capsys):
    code = download.main(
        ["--only", "background", "--out", str(tmp_path / "raw"), "--chromedriver", "/bin/false"]
    )
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot start Chromium (")
    assert err.endswith("(apt-get install chromium chromium-driver) or Google Chrome")
    assert len(err.splitlines()) == 1


def test_retry_failed_fetches_only_failed_urls_again(site, tmp_path):
    site.add("/img/ok.png", Resource(encode(soft_rgba(7), "RGBA")))
    site.add("/img/later.png", Resource(status=404))
    jobs = [
        Job("foreground", site.url("/img/ok.png")),
        Job("foreground", site.url("/img/later.png")),
    ]
    settings = Settings(timeout=2, retries=0)
    with Downloader(tmp_path, settings, workers=2, progress=False) as downloader:
        assert [downloader.submit(job) for job in jobs] == [True, True]
    assert [r["status"] for r in all_records(tmp_path)] in (["kept", "failed"], ["failed", "kept"])

    later = encode(soft_rgba(8), "RGBA")
    site.resources["/img/later.png"] = Resource(later)
    site.reset_counts()
    with Downloader(tmp_path, settings, workers=2, progress=False) as downloader:
        assert [downloader.submit(job) for job in jobs] == [False, False]
    assert site.image_hits() == 0
    with Downloader(tmp_path, settings, retry_failed=True, progress=False) as downloader:
        assert [downloader.submit(job) for job in jobs] == [False, True]
    assert (site.hits["/img/ok.png"], site.hits["/img/later.png"]) == (0, 1)
    last = all_records(tmp_path)[-1]
    assert (last["url"], last["status"]) == (site.url("/img/later.png"), "kept")
    assert last["file"] == f"foreground/{sha(later)[:16]}.png"


def test_resubmit_failed_queues_failed_urls_with_their_provenance(site, tmp_path):
    site.add("/img/ok.png", Resource(encode(soft_rgba(9), "RGBA")))
    site.add("/img/later.png", Resource(status=404))
    search = site.url("/s?q=cat")
    jobs = [
        Job("foreground", site.url(path), "cat", "bing", site.url("/page" + path), search)
        for path in ("/img/ok.png", "/img/later.png")
    ]
    settings = Settings(timeout=2, retries=0)
    with Downloader(tmp_path, settings, workers=2, progress=False) as downloader:
        for job in jobs:
            downloader.submit(job)
        assert downloader.resubmit_failed() == 0  # nothing had failed before this run
    later = encode(soft_rgba(10), "RGBA")
    site.resources["/img/later.png"] = Resource(later)
    site.reset_counts()
    with Downloader(tmp_path, settings, progress=False) as downloader:
        assert downloader.resubmit_failed() == 0  # without retry_failed, failed URLs are known
    with Downloader(tmp_path, settings, retry_failed=True, progress=False) as downloader:
        assert downloader.resubmit_failed() == 1
    assert (site.hits["/img/ok.png"], site.hits["/img/later.png"]) == (0, 1)
    last = all_records(tmp_path)[-1]
    expected = {"url": jobs[1].url, "status": "kept", "query": "cat", "engine": "bing"}
    assert {key: last[key] for key in expected} == expected
    assert (last["page_url"], last["search_url"]) == (jobs[1].page_url, search)


def all_records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------------------------------------
# The real thing: Chromium + loopback site


def populate(site: LoopbackSite) -> dict:
    """Serve every case once; return {path: (status, reason fragment)} and the kept files."""
    fg, bg = "foreground", "background"
    soft = {seed: soft_rgba(seed) for seed in range(1, 6)}
    soft_png = {seed: encode(array, "RGBA") for seed, array in soft.items()}
    expected = {}

    def case(path, resource, kind, status, reason=None):
        site.add(path, resource, kind)
        expected[path] = (status, reason)

    # Same bytes at two URLs: whichever finishes second is the duplicate.
    case("/img/fg/soft.png", Resource(soft_png[1]), fg, "kept|duplicate")
    case("/img/fg/soft-copy.png", Resource(soft_png[1]), fg, "kept|duplicate")
    # A PNG behind a .jpg name and an image/jpeg type: the content decides.
    case("/img/fg/disguised.jpg", Resource(soft_png[2], content_type="image/jpeg"), fg, "kept")
    site.add("/img/fg/target.png", Resource(soft_png[3]))
    case("/img/fg/moved", Resource(status=302, location="/img/fg/target.png"), fg, "kept")
    # 503 once, then the image: one urllib3 retry gets it.
    case("/img/fg/flaky.png", Resource(soft_png[4], fail_first=1), fg, "kept")
    case("/img/fg/opaque.png", Resource(encode(opaque_rgb(1, 40, 48), "RGB")), fg,
         "rejected", "fully opaque")  # fmt: skip
    rectangle = np.zeros((40, 48, 4), np.uint8)
    rectangle[..., :3] = 200
    rectangle[5:30, 8:40, 3] = 255
    case("/img/fg/rectangle.png", Resource(encode(rectangle, "RGBA")), fg,
         "rejected", "plain rectangle")  # fmt: skip
    cutout = np.dstack([opaque_rgb(2, 40, 48), disc_alpha(40, 48, soft=False)])
    case("/img/fg/cutout.png", Resource(encode(cutout, "RGBA")), fg,
         "rejected", "no partial transparency")  # fmt: skip
    case("/img/fg/truncated.png", Resource(soft_png[5][: len(soft_png[5]) // 2]), fg,
         "rejected", "truncated")  # fmt: skip
    case("/img/fg/page.png", Resource(b"<!doctype html><title>x</title>hello"), fg,
         "rejected", "not a readable image")  # fmt: skip
    # 30000 x 30000 = 900 Mpx, over images.MAX_PIXELS (100 Mpx), in a 57-byte file.
    case("/img/fg/bomb.png", Resource(png_header_only(30000, 30000)), fg,
         "rejected", "image too large")  # fmt: skip
    big = b"\x89PNG\r\n\x1a\n" + bytes(MAX_BYTES)
    case("/img/fg/big.png", Resource(big), fg, "rejected", "too large (over --max-bytes")
    case("/img/fg/big-stream.png", Resource(big, send_length=False), fg,
         "rejected", "too large (over --max-bytes")  # fmt: skip
    # Sleeps past --timeout 1 before answering.
    case("/img/fg/slow.png", Resource(soft_png[1], delay=2.5), fg, "failed", "timeout")
    case("/img/fg/missing.png", Resource(status=404), fg, "failed", "HTTP 404")
    case("/img/fg/broken.png", Resource(status=500), fg, "failed", "HTTP 500")

    photo = encode(opaque_rgb(3, 120, 160), "RGB", "JPEG")
    plain = encode(opaque_rgb(4, 130, 150), "RGB")
    solid = np.dstack([opaque_rgb(5, 140, 150), np.full((140, 150), 255, np.uint8)])
    solid_png = encode(solid, "RGBA")
    holes = np.dstack([opaque_rgb(6, 150, 150), disc_alpha(150, 150, soft=True)])
    case("/img/bg/photo.jpg", Resource(photo, content_type="image/jpeg"), bg, "kept")
    case("/img/bg/plain.png", Resource(plain), bg, "kept")
    case("/img/bg/solid-rgba.png", Resource(solid_png), bg, "kept")
    case("/img/bg/small.jpg", Resource(encode(opaque_rgb(7, 60, 80), "RGB", "JPEG")), bg,
         "rejected", "too small (80x60")  # fmt: skip
    case("/img/bg/holes.png", Resource(encode(holes, "RGBA")), bg, "rejected", "not opaque")

    kept = {
        "foreground": {f"{sha(soft_png[seed])[:16]}.png": soft[seed] for seed in (1, 2, 3, 4)},
        "background": {
            f"{sha(photo)[:16]}.jpg": photo,
            f"{sha(plain)[:16]}.png": opaque_rgb(4, 130, 150),
            f"{sha(solid_png)[:16]}.png": solid[..., :3],
        },
    }
    return {"expected": expected, "kept": kept}


@needs_chromium
@pytest.mark.slow
def test_download_keeps_exactly_the_useful_images_and_resumes(site, tmp_path, capsys):
    cases = populate(site)
    out = tmp_path / "raw"
    assert download.main(cli_args(site, "bing", out, tmp_path)) == 0

    # The foreground query carried Bing's transparency filter, the background one did not.
    searches = {(s.query, s.kind): s.raw_query for s in site.searches}
    assert searches == {
        ("fluffy cat", "foreground"): "q=fluffy+cat&form=HDRSC2&qft=+filterui:photo-transparent",
        ("city street", "background"): "q=city+street&form=HDRSC2&qft=+filterui:imagesize-large",
    }
    records = records_by_url(out)
    assert set(records) == {site.url(path) for path in cases["expected"]}
    for path, (status, reason) in cases["expected"].items():
        record = records[site.url(path)]
        assert record["status"] in status.split("|"), (path, record)
        if reason:
            assert reason in record["reason"], (path, record["reason"])
        assert record["engine"] == "bing" and record["page_url"] == site.url("/page" + path)
    pair = {records[site.url(p)]["status"] for p in ("/img/fg/soft.png", "/img/fg/soft-copy.png")}
    assert pair == {"kept", "duplicate"}
    assert records[site.url("/img/fg/moved")]["final_url"] == site.url("/img/fg/target.png")

    # Exactly the expected files, with exactly the generated pixels (or bytes, for the JPEG).
    assert files_in(out / "foreground") == set(cases["kept"]["foreground"])
    assert files_in(out / "background") == set(cases["kept"]["background"])
    for name, pixels in cases["kept"]["foreground"].items():
        with Image.open(out / "foreground" / name) as image:
            assert (image.format, image.mode) == ("PNG", "RGBA")
            np.testing.assert_array_equal(np.asarray(image), pixels)
    for name, expected in cases["kept"]["background"].items():
        if name.endswith(".jpg"):
            assert (out / "background" / name).read_bytes() == expected
        else:
            with Image.open(out / "background" / name) as image:
                assert image.mode == "RGB"
                np.testing.assert_array_equal(np.asarray(image), expected)
    kept_files = {r["file"] for r in records.values() if r["status"] == "kept"}
    assert kept_files == {
        f"{kind}/{name}" for kind in cases["kept"] for name in cases["kept"][kind]
    }

    # Each image fetched once: the flaky and the failing one twice (one retry); no thumbnails.
    hits = {path: site.hits[path] for path in cases["expected"]}
    twice = {"/img/fg/flaky.png", "/img/fg/broken.png"}
    assert hits == {path: 2 if path in twice else 1 for path in cases["expected"]}
    assert not any(path.startswith("/thumb/") for path in site.hits)
    assert capsys.readouterr().err.strip().endswith("7 kept, 10 rejected, 3 failed, 1 duplicate")

    # A second run fetches nothing and records nothing.
    site.reset_counts()
    manifest = (out / "manifest.jsonl").read_bytes()
    assert download.main(cli_args(site, "bing", out, tmp_path)) == 0
    assert site.image_hits() == 0
    assert (out / "manifest.jsonl").read_bytes() == manifest

    # --retry-failed fetches exactly the three failed URLs again, even when every query is
    # complete (--per-query 1) and so is not searched again.
    site.reset_counts()
    searches = len(site.searches)
    retry = ["--retry-failed", "--per-query", "1"]
    assert download.main([*cli_args(site, "bing", out, tmp_path), *retry]) == 0
    failed = {path for path, (status, _) in cases["expected"].items() if status == "failed"}
    assert len(failed) == 3 and len(site.searches) == searches
    assert {path for path in cases["expected"] if site.hits[path]} == failed
    retried = all_records(out)[-3:]
    assert {r["url"] for r in retried} == {site.url(path) for path in failed}
    assert all(r["status"] == "failed" and r["query"] == "fluffy cat" for r in retried)


@needs_chromium
@pytest.mark.slow
def test_google_reads_script_data_and_anchors_and_presses_more(site, tmp_path):
    images = {i: encode(soft_rgba(100 + i), "RGBA") for i in range(12)}
    for i, data in images.items():
        site.add(f"/img/g{i}.png", Resource(data), "foreground")
    out = tmp_path / "raw"
    args = cli_args(site, "google", out, tmp_path, "--only", "foreground", "--per-query", "10")
    assert download.main(args) == 0

    assert [s.raw_query for s in site.searches] == ["q=fluffy+cat&tbs=ic:trans"]
    records = records_by_url(out)
    # The page shows 4 results from script data, 4 more after a scroll, the other 4 only after
    # "Show more results": 10 wanted means the button was pressed, and the last 2 never fetched.
    assert set(records) == {site.url(f"/img/g{i}.png") for i in range(10)}
    assert all(r["status"] == "kept" for r in records.values())
    assert site.hits["/img/g10.png"] == site.hits["/img/g11.png"] == 0
    anchored = records[site.url("/img/g5.png")]
    assert anchored["page_url"] == site.url("/page/img/g5.png")
    assert files_in(out / "foreground") == {f"{sha(images[i])[:16]}.png" for i in range(10)}


@needs_chromium
@pytest.mark.slow
def test_duckduckgo_clicks_tiles_for_full_size_urls_and_scrolls(site, tmp_path):
    images = {i: encode(soft_rgba(200 + i), "RGBA") for i in range(7)}
    for i, data in images.items():
        site.add(f"/img/d{i}.png", Resource(data), "foreground")
    out = tmp_path / "raw"
    args = cli_args(site, "duckduckgo", out, tmp_path, "--only", "foreground")
    assert download.main(args) == 0

    assert [s.raw_query for s in site.searches] == ["q=fluffy+cat&iaf=type:transparent"]
    records = records_by_url(out)
    # 4 tiles at first and 3 added by scrolling; the proxied URLs were unwrapped to originals.
    assert set(records) == {site.url(f"/img/d{i}.png") for i in range(7)}
    assert {r["page_url"] for r in records.values()} == {
        site.url(f"/page/img/d{i}.png") for i in range(7)
    }
    assert files_in(out / "foreground") == {f"{sha(images[i])[:16]}.png" for i in range(7)}


@needs_chromium
def test_unreachable_search_page_is_one_line(tmp_path):
    port = closed_port()
    result = run_cli(
        "--only", "foreground", "--foreground-queries", query_file(tmp_path, "q.txt", "cat"),
        "--search-url", f"http://127.0.0.1:{port}/images?q={{query}}",
        "--out", str(tmp_path / "raw"),
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: http://127.0.0.1:{port}/images?q=cat&qft=+filterui:photo-transparent:"
        " search page unreachable (ERR_CONNECTION_REFUSED)"
    ]


@needs_chromium
@pytest.mark.slow
def test_a_failing_search_after_a_good_one_is_skipped(site, tmp_path, capsys):
    images = {i: encode(soft_rgba(300 + i), "RGBA") for i in range(3)}
    for i, data in images.items():
        site.add(f"/img/s{i}.png", Resource(data), "foreground")
    site.broken_queries.add("wet dog")
    queries = query_file(tmp_path, "three.txt", "fluffy cat", "wet dog", "red fox")
    out = tmp_path / "raw"
    args = cli_args(site, "bing", out, tmp_path, "--only", "foreground")
    assert download.main([*args, "--foreground-queries", queries]) == 1

    # The broken page was skipped and the third query still searched; every image was saved.
    assert [s.query for s in site.searches] == ["fluffy cat", "wet dog", "red fox"]
    assert files_in(out / "foreground") == {f"{sha(images[i])[:16]}.png" for i in range(3)}
    err = capsys.readouterr().err.strip().splitlines()
    broken = site.url("/bing/images/search?q=wet+dog&form=HDRSC2&qft=+filterui:photo-transparent")
    assert f"warning: {broken}: search page returned HTTP 500; query skipped" in err
    assert err[-1] == "error: 1 of 3 searches failed (warnings above); run again to retry them"


@needs_chromium
def test_search_page_http_error_is_one_line(site, tmp_path, capsys):
    template = site.url("/down?q={query}")
    args = ["--only", "background", "--background-queries", query_file(tmp_path, "q.txt", "sea")]
    code = download.main([*args, "--search-url", template, "--out", str(tmp_path / "raw")])
    assert code == 1
    assert capsys.readouterr().err.strip() == (
        f"error: {site.url('/down?q=sea&qft=+filterui:imagesize-large')}:"
        " search page returned HTTP 404"
    )


@needs_chromium
@pytest.mark.slow
def test_killed_run_leaves_nothing_half_written_and_resumes(site, tmp_path):
    images = {i: encode(soft_rgba(300 + i, 64, 64), "RGBA") for i in range(10)}
    for i, data in images.items():
        site.add(f"/img/k{i}.png", Resource(data, delay=0.4), "foreground")
    out = tmp_path / "raw"
    args = cli_args(site, "bing", out, tmp_path, "--only", "foreground", "--workers", "2")
    args[args.index("--timeout") + 1] = "5"
    # The killed run takes its result page from the environment instead of --search-url.
    flag = args.index("--search-url")
    env_args = args[:flag] + args[flag + 2 :]
    # Its own process group, so the kill takes chromedriver and Chromium down with it.
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), *env_args],
        cwd=ROOT,
        # TMPDIR: the killed run cannot delete its Chromium profile; keep it in tmp_path.
        env={**os.environ, "MATTING_SEARCH_URL": args[flag + 1], "TMPDIR": str(tmp_path)},
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while len([n for n in files_in(out / "foreground") if not n.startswith(".")]) < 2:
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no files appeared"
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    killed_records = all_records(out)
    assert len(killed_records) < len(images), "killed too late to prove anything"
    # What atomic_path leaves behind if the kill lands mid-write.
    (out / "foreground" / ".0123456789abcdef.png.k1ll3d.tmp").write_bytes(b"\x89PNG half")

    for path in site.resources:
        site.resources[path].delay = 0
    site.reset_counts()
    assert download.main(args) == 0

    assert not [n for n in files_in(out / "foreground") if n.startswith(".") or n.endswith(".tmp")]
    records = records_by_url(out)
    assert set(records) == {site.url(f"/img/k{i}.png") for i in range(10)}
    assert {r["status"] for r in records.values()} == {"kept"}
    # Resuming goes by the manifest: a recorded URL is never fetched again, every other one is
    # (also one whose file the kill left without its record). Counted per URL, since a request
    # retried under load would make a total miscount.
    recorded = {urlsplit(record["url"]).path for record in killed_records}
    fetched = {path for path in site.resources if site.hits[path]}
    assert fetched == set(site.resources) - recorded
    assert files_in(out / "foreground") == {f"{sha(images[i])[:16]}.png" for i in range(10)}
    for i, data in images.items():
        with Image.open(out / "foreground" / f"{sha(data)[:16]}.png") as image:
            np.testing.assert_array_equal(np.asarray(image), soft_rgba(300 + i, 64, 64))


# ---------------------------------------------------------------------------------------------
# Hostile servers and Ctrl-C


def test_a_trickling_server_fails_at_the_deadline(site, tmp_path):
    # One byte every 20 ms: each read succeeds well within --timeout, and the whole body
    # would take 4 s, so only a total deadline can end it sooner.
    trickled = encode(soft_rgba(11), "RGBA")[:200]
    site.add("/img/slow.png", Resource(trickled, trickle=0.02))
    site.add("/img/ok.png", Resource(encode(soft_rgba(12), "RGBA")))
    settings = Settings(timeout=2, retries=0, deadline=1.0)
    start = time.monotonic()
    with Downloader(tmp_path, settings, workers=2, progress=False) as downloader:
        downloader.submit(Job("foreground", site.url("/img/slow.png")))
        downloader.submit(Job("foreground", site.url("/img/ok.png")))
    assert time.monotonic() - start < 3
    records = records_by_url(tmp_path)
    slow = records[site.url("/img/slow.png")]
    assert (slow["status"], slow["reason"]) == (
        "failed",
        "too slow (not complete within --deadline 1 s)",
    )
    assert records[site.url("/img/ok.png")]["status"] == "kept"


@needs_chromium
def test_ctrl_c_ends_the_run_at_once_and_keeps_the_manifest(site, tmp_path):
    fast = {i: encode(soft_rgba(400 + i, 48, 48), "RGBA") for i in range(2)}
    for i, data in fast.items():
        site.add(f"/img/fast{i}.png", Resource(data), "foreground")
    slow = {i: encode(soft_rgba(500 + i, 48, 48), "RGBA") for i in range(2)}
    for i, data in slow.items():
        # Minutes per image at this rate, yet every read returns well within --timeout.
        site.add(f"/img/slow{i}.png", Resource(data, trickle=0.05), "foreground")
    out = tmp_path / "raw"
    args = cli_args(site, "bing", out, tmp_path, "--only", "foreground", "--workers", "4")
    args += ["--deadline", "600"]
    args[args.index("--timeout") + 1] = "5"
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), *args],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        manifest = out / "manifest.jsonl"
        while not (manifest.exists() and len(all_records(out)) == len(fast)) or not all(
            site.hits[f"/img/slow{i}.png"] for i in slow
        ):
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the downloads did not start"
            time.sleep(0.02)
        time.sleep(0.3)
        interrupted = time.monotonic()
        for _ in range(3):  # what Ctrl-C in a terminal does, pressed again while it stops
            os.killpg(process.pid, signal.SIGINT)
            time.sleep(0.05)
        _, err = process.communicate(timeout=30)
        seconds = time.monotonic() - interrupted
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130, err
    assert seconds < 3, f"took {seconds:.1f} s to stop"
    assert err.strip().splitlines()[-1] == "error: interrupted; run again to resume"
    assert "Traceback" not in err
    # Only finished downloads have records; the interrupted ones are fetched on resume.
    records = records_by_url(out)
    assert set(records) == {site.url(f"/img/fast{i}.png") for i in fast}
    assert {r["status"] for r in records.values()} == {"kept"}

    for path in site.resources:
        site.resources[path].trickle = 0
    assert download.main(args) == 0
    records = records_by_url(out)
    assert {r["status"] for r in records.values()} == {"kept"}
    assert len(records) == len(fast) + len(slow)
