"""The page of serve.py in headless Chromium, against the real server on a loopback port.

``python3 serve.py --port 0`` runs as a subprocess with a tiny random checkpoint; selenium drives
the page as a user would: choose files, paint with the mouse, run, download. Expected values
come from the API of the same server (the downloaded cut-out) and from the painted stroke
coordinates (the trimap the page sends). Screenshots are saved as artefacts: in the test's tmp
folder and in ``$ARTIFACTS_DIR`` when it is set.
"""

from __future__ import annotations

import base64
import io
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from model.images import write_png
from tests.test_serve_api import make_tiny_checkpoint, sample_pair

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
HEIGHT, WIDTH = 64, 96

webdriver = pytest.importorskip("selenium.webdriver")
# .ci/run sets MATTING_REQUIRE_BROWSER, so in CI a missing browser fails these tests.
if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()) and not os.environ.get(
    "MATTING_REQUIRE_BROWSER"
):
    pytest.skip("needs Debian's chromium and chromedriver", allow_module_level=True)

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from scripts.engines.browser import CHROMIUM_FLAGS  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Start serve.py on a free loopback port (automatic trimaps on); yield its base URL."""
    log_dir = tmp_path_factory.mktemp("browser_log")
    make_tiny_checkpoint(log_dir)
    stderr = (log_dir / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "serve.py", "--log-dir", str(log_dir), "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(line) for line in process.stdout], daemon=True
    ).start()
    url = None
    deadline = time.monotonic() + 90
    while url is None and time.monotonic() < deadline and process.poll() is None:
        try:
            match = re.search(r"on (http://127\.0\.0\.1:\d+/)", lines.get(timeout=0.5))
        except queue.Empty:
            continue
        url = match.group(1) if match else None
    try:
        if url is None:
            pytest.fail(f"serve.py did not start:\n{(log_dir / 'server.log').read_text()}")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
        stderr.close()


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def driver(tmp_path_factory, downloads):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tmp_path_factory.mktemp("chromium_profile")
    # The scraper's flags, so both run one Chromium setup, with a window the page fits in.
    flags = [flag for flag in CHROMIUM_FLAGS if not flag.startswith("--window-size")]
    for argument in (*flags, f"--user-data-dir={profile}", "--window-size=1400,1000"):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    browser = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    browser.execute_cdp_cmd(
        "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    image, trimap = sample_pair(HEIGHT, WIDTH, seed=3)
    write_png(folder / "photo.png", image)
    write_png(folder / "trimap.png", trimap)
    # A subject the saliency network finds: a dark disc on a plain light background.
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    disc = np.hypot(yy - HEIGHT / 2, xx - WIDTH / 2) <= HEIGHT / 3
    photo = np.where(disc[..., None], [40, 60, 160], [235, 230, 215]).astype(np.uint8)
    write_png(folder / "disc.png", photo)
    return {
        "image": folder / "photo.png",
        "trimap": folder / "trimap.png",
        "disc": folder / "disc.png",
    }


def save_artefact(driver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    driver.save_screenshot(str(path))
    target = os.environ.get("ARTIFACTS_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / name)
    print(f"screenshot: {path}")
    return path


def open_page(driver, url: str) -> None:
    driver.get(url)
    wait(driver, lambda d: "step 7" in d.find_element(By.ID, "health").text)


def wait(driver, condition, seconds: float = 30):
    return WebDriverWait(driver, seconds, poll_frequency=0.05).until(condition)


def run_and_wait(driver) -> None:
    driver.find_element(By.ID, "run").click()
    wait(driver, lambda d: d.find_element(By.ID, "download-rgba").get_attribute("href"))
    error = driver.find_element(By.ID, "error")
    assert not error.is_displayed(), error.text


def blob_bytes(driver, script_expression: str) -> bytes:
    """Bytes of the Blob (or blob: URL) a JS expression gives, read inside the page."""
    encoded = driver.execute_async_script(
        f"""
        const done = arguments[arguments.length - 1];
        let source = {script_expression};
        const blob = typeof source === "string" ? await (await fetch(source)).blob() : source;
        const reader = new FileReader();
        reader.onload = () => done(reader.result.split(",")[1]);
        reader.readAsDataURL(blob);
        """
    )
    return base64.b64decode(encoded)


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_upload_run_and_download(server, driver, files, downloads, tmp_path):
    open_page(driver, server)
    driver.find_element(By.ID, "image-file").send_keys(str(files["image"]))
    driver.find_element(By.ID, "trimap-file").send_keys(str(files["trimap"]))
    wait(driver, lambda d: d.find_element(By.ID, "run").is_enabled())
    # Record whether the progress bar ever shows: the tiny model answers within milliseconds.
    driver.execute_script(
        """
        window.progressSeen = false;
        const bar = document.getElementById("progress");
        new MutationObserver(() => { if (!bar.hidden) window.progressSeen = true; })
          .observe(bar, {attributes: true});
        """
    )
    run_and_wait(driver)
    assert driver.execute_script("return window.progressSeen")

    result = driver.find_element(By.ID, "view-result")
    wait(driver, lambda d: d.execute_script("return arguments[0].complete", result))
    natural = driver.execute_script(
        "return [arguments[0].naturalWidth, arguments[0].naturalHeight]", result
    )
    assert natural == [WIDTH, HEIGHT]
    shown = result.rect
    assert shown["width"] > 100  # enlarged to the panel, not a thumbnail
    assert abs(shown["height"] - shown["width"] * HEIGHT / WIDTH) <= 1
    input_rect = driver.find_element(By.ID, "view-input").rect
    assert (input_rect["width"], input_rect["height"]) == (shown["width"], shown["height"])

    # Nothing outside the server was requested.
    origins = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => new URL(e.name).origin)"
    )
    assert set(origins) <= {server.rstrip("/")}

    driver.find_element(By.ID, "download-rgba").click()
    target = downloads / "photo-rgba.png"
    wait(driver, lambda _d: target.exists() and not list(downloads.glob("*.crdownload")))
    downloaded = decode(target.read_bytes())

    with files["image"].open("rb") as image, files["trimap"].open("rb") as trimap:
        api = httpx.post(
            f"{server}api/matte",
            files={"image": image, "trimap": trimap},
            data={"output": "rgba"},
            timeout=30,
        )
    assert api.status_code == 200, api.text
    expected = decode(api.content)
    assert downloaded.shape == (HEIGHT, WIDTH, 4)
    np.testing.assert_array_equal(downloaded[..., 3], expected[..., 3])
    save_artefact(driver, tmp_path, "serve_upload.png")


def image_offset(canvas, x: float, y: float) -> tuple[int, int]:
    """Offset from the canvas centre, in CSS pixels, of image pixel centre (x, y)."""
    rect = canvas.rect
    scale = rect["width"] / WIDTH
    return round((x + 0.5) * scale - rect["width"] / 2), round(
        (y + 0.5) * scale - rect["height"] / 2
    )


def stroke(driver, canvas, start: tuple[float, float], end: tuple[float, float]) -> None:
    x0, y0 = image_offset(canvas, *start)
    x1, y1 = image_offset(canvas, *end)
    (
        ActionChains(driver)
        .move_to_element_with_offset(canvas, x0, y0)
        .click_and_hold()
        .move_by_offset((x1 - x0) // 2, (y1 - y0) // 2)
        .move_to_element_with_offset(canvas, x1, y1)
        .release()
        .perform()
    )


def test_painted_trimap(server, driver, files, tmp_path):
    open_page(driver, server)
    driver.find_element(By.ID, "image-file").send_keys(str(files["image"]))
    driver.find_element(By.ID, "tab-paint").click()
    canvas = driver.find_element(By.ID, "editor-canvas")
    wait(driver, lambda _d: canvas.is_displayed() and canvas.rect["width"] > 4 * WIDTH)
    driver.find_element(By.ID, "clear").click()  # start from background, not the automatic trimap
    driver.execute_script(
        """
        const size = document.getElementById("brush-size");
        size.value = "6";
        size.dispatchEvent(new Event("input"));
        """
    )
    driver.find_element(By.ID, "brush-fg").click()
    stroke(driver, canvas, (20, 20), (60, 20))
    driver.find_element(By.ID, "brush-unknown").click()
    stroke(driver, canvas, (20, 40), (60, 40))
    driver.find_element(By.ID, "brush-fg").click()
    stroke(driver, canvas, (20, 55), (60, 55))
    driver.find_element(By.ID, "undo").click()  # takes the last stroke back

    # Keep the trimap the page sends.
    driver.execute_script(
        """
        const send = XMLHttpRequest.prototype.send;
        XMLHttpRequest.prototype.send = function (body) {
          if (body instanceof FormData) window.sentTrimap = body.get("trimap");
          return send.call(this, body);
        };
        """
    )
    run_and_wait(driver)
    sent = decode(blob_bytes(driver, "window.sentTrimap"))
    grey = sent if sent.ndim == 2 else sent[..., 0]
    assert grey.shape == (HEIGHT, WIDTH)
    assert set(np.unique(grey)) <= {0, 128, 255}
    # A 6-px brush covers 3 px either side of the stroke line; test 1 px inside that.
    assert (grey[18:23, 21:60] == 255).all()
    assert (grey[38:43, 21:60] == 128).all()
    assert (grey[53:58, :] == 0).all()  # undone
    assert (grey[26:34, :] == 0).all() and (grey[:, :14] == 0).all() and (grey[:, 67:] == 0).all()

    # The trimap panel shows the server's reading of it, which must be the same.
    echoed = decode(blob_bytes(driver, "document.getElementById('view-trimap').src"))
    np.testing.assert_array_equal(echoed, grey)
    alpha = decode(blob_bytes(driver, "document.getElementById('download-rgba').href"))[..., 3]
    assert (alpha[grey == 255] == 255).all() and (alpha[grey == 0] == 0).all()
    save_artefact(driver, tmp_path, "serve_paint.png")


def test_video_upload_progress_and_download(server, driver, tmp_path):
    from test_video_matting import H, W, _truth, decode, make_clip

    from model.compositing import trimap_from_alpha
    from model.images import to_uint8

    frames = 6
    clip = make_clip(tmp_path / "tiny.mp4", frames=frames)
    trimap = trimap_from_alpha(_truth(0), kernel_size=5)
    write_png(tmp_path / "first.png", to_uint8(trimap))
    open_page(driver, server)
    driver.find_element(By.ID, "video-file").send_keys(str(clip))
    driver.find_element(By.ID, "video-trimap-file").send_keys(str(tmp_path / "first.png"))
    wait(driver, lambda d: d.find_element(By.ID, "video-run").is_enabled())
    driver.execute_script(
        """
        window.videoProgressSeen = false;
        const bar = document.getElementById("video-progress");
        new MutationObserver(() => { if (!bar.hidden) window.videoProgressSeen = true; })
          .observe(bar, {attributes: true});
        """
    )
    driver.find_element(By.ID, "video-run").click()
    wait(driver, lambda d: d.find_element(By.ID, "video-download").get_attribute("href"), 90)
    error = driver.find_element(By.ID, "video-error")
    assert not error.is_displayed(), error.text
    assert driver.execute_script("return window.videoProgressSeen")
    assert f"Done: {frames} frames" in driver.find_element(By.ID, "video-status").text

    # The page's download is the job's WebM: every frame, the clip's size, the trimap clamped.
    result = tmp_path / "result.webm"
    result.write_bytes(blob_bytes(driver, "document.getElementById('video-download').href"))
    decoded = decode(result)
    assert len(decoded) == frames and decoded[0].shape == (H, W, 4)
    alpha = decoded[0][..., 3]
    assert alpha[trimap == 1].min() >= 250 and alpha[trimap == 0].max() <= 5
    link = driver.find_element(By.ID, "video-download")
    assert link.get_attribute("download") == "tiny-cutout.webm"
    # Chromium itself can play it: the <video> element loads its metadata at the clip's size.
    video = driver.find_element(By.ID, "video-result")
    wait(driver, lambda d: d.execute_script("return arguments[0].readyState >= 1", video))
    assert driver.execute_script("return arguments[0].videoWidth", video) == W
    save_artefact(driver, tmp_path, "serve_video.png")

    # A file that is not a video gets the server's one-line reason on the page.
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video\n")
    driver.find_element(By.ID, "video-file").send_keys(str(bad))
    wait(driver, lambda d: d.find_element(By.ID, "video-run").is_enabled())
    driver.find_element(By.ID, "video-run").click()
    wait(driver, lambda d: d.find_element(By.ID, "video-error").is_displayed())
    assert "bad.mp4: not a readable video" in driver.find_element(By.ID, "video-error").text


def keep_sent_trimap(driver) -> None:
    """Record the trimap field of the page's next POST (null when it sends none)."""
    driver.execute_script(
        """
        window.sentTrimap = undefined;
        const send = XMLHttpRequest.prototype.send;
        XMLHttpRequest.prototype.send = function (body) {
          if (body instanceof FormData) window.sentTrimap = body.get("trimap");
          return send.call(this, body);
        };
        """
    )


def test_automatic_trimap_without_painting(server, driver, files, tmp_path):
    """Choose an image and run: no painting, no trimap file. Then correct it with Paint."""
    with files["disc"].open("rb") as image:
        api_trimap = httpx.post(f"{server}api/trimap", files={"image": image}, timeout=60)
    assert api_trimap.status_code == 200, api_trimap.text
    automatic = decode(api_trimap.content)
    assert automatic.shape == (HEIGHT, WIDTH)
    assert automatic[HEIGHT // 2, WIDTH // 2] == 255 and automatic[0, 0] == 0
    assert (automatic == 128).any()
    with files["disc"].open("rb") as image:
        api_matte = httpx.post(
            f"{server}api/matte", files={"image": image}, data={"output": "rgba"}, timeout=60
        )
    assert api_matte.status_code == 200, api_matte.text

    open_page(driver, server)
    driver.find_element(By.ID, "image-file").send_keys(str(files["disc"]))
    # The automatic tab is the default, and the page shows the proposed trimap before any run.
    assert driver.find_element(By.ID, "tab-auto").get_attribute("aria-selected") == "true"
    trimap_view = driver.find_element(By.ID, "view-trimap")
    wait(driver, lambda _d: (trimap_view.get_attribute("src") or "").startswith("blob:"))
    proposed = decode(blob_bytes(driver, "document.getElementById('view-trimap').src"))
    np.testing.assert_array_equal(proposed, automatic)
    assert driver.find_element(By.ID, "run").is_enabled()
    keep_sent_trimap(driver)
    run_and_wait(driver)
    assert driver.execute_script("return window.sentTrimap") is None  # the server makes it
    echoed = decode(blob_bytes(driver, "document.getElementById('view-trimap').src"))
    np.testing.assert_array_equal(echoed, automatic)
    rgba = decode(blob_bytes(driver, "document.getElementById('download-rgba').href"))
    np.testing.assert_array_equal(rgba, decode(api_matte.content))
    save_artefact(driver, tmp_path, "serve_auto.png")

    # Paint starts from the automatic trimap; one background stroke corrects it.
    driver.find_element(By.ID, "tab-paint").click()
    canvas = driver.find_element(By.ID, "editor-canvas")
    wait(driver, lambda _d: canvas.is_displayed() and canvas.rect["width"] > 4 * WIDTH)
    driver.execute_script(
        """
        const size = document.getElementById("brush-size");
        size.value = "6";
        size.dispatchEvent(new Event("input"));
        """
    )
    driver.find_element(By.ID, "brush-bg").click()
    stroke(driver, canvas, (WIDTH // 2 - 10, HEIGHT // 2), (WIDTH // 2 + 10, HEIGHT // 2))
    keep_sent_trimap(driver)
    run_and_wait(driver)
    sent = decode(blob_bytes(driver, "window.sentTrimap"))
    grey = sent if sent.ndim == 2 else sent[..., 0]
    painted = np.zeros((HEIGHT, WIDTH), bool)
    painted[HEIGHT // 2 - 4 : HEIGHT // 2 + 5, WIDTH // 2 - 14 : WIDTH // 2 + 15] = True
    # 1 px inside the 6-px brush along the stroke is background; away from it, the proposal.
    assert (grey[HEIGHT // 2 - 2 : HEIGHT // 2 + 3, WIDTH // 2 - 9 : WIDTH // 2 + 10] == 0).all()
    np.testing.assert_array_equal(grey[~painted], automatic[~painted])
    save_artefact(driver, tmp_path, "serve_auto_corrected.png")
