"""Benchmark: concurrent image downloads against a single worker.

A loopback HTTP server answers every image request after a fixed latency (100 ms by default,
standing in for a remote host), serving distinct 64x64 RGBA PNG foregrounds with soft alpha.
The benchmark calls the downloader module (:class:`scripts.fetch.Downloader`) directly with
the URL list, skipping the browser: searching is the same for every configuration, and what
``--workers`` changes is the fetch + vet + save + manifest pipeline measured here. Every image
must come out ``kept``, so a configuration cannot look fast by failing.

Prints a table with the speed-up against ``--workers 1`` from the same run (target: >= 5x at
8 workers).

Usage::

    python3 bench/download.py
    python3 bench/download.py --images 100 --latency 0.05 --workers 1 8 32
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from PIL import Image

from scripts.fetch import Downloader, Job
from scripts.transfer import Settings


def make_images(count: int, size: int = 64) -> list[bytes]:
    """``count`` distinct RGBA PNGs: random colours, alpha a disc with a 6-px soft rim."""
    yy, xx = np.mgrid[:size, :size]
    radius = np.hypot(yy - size / 2, xx - size / 2)
    alpha = np.rint(np.clip((size * 0.35 - radius) / 6, 0, 1) * 255).astype(np.uint8)
    rng = np.random.default_rng(0)
    images = []
    for _ in range(count):
        colours = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(np.dstack([colours, alpha]), "RGBA").save(buffer, "PNG")
        images.append(buffer.getvalue())
    return images


def serve(images: list[bytes], latency: float) -> ThreadingHTTPServer:
    """Start a threaded server on 127.0.0.1 answering ``/<index>.png`` after ``latency`` s."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes; with Nagle's algorithm on, the second
        # waits for the client's delayed ACK (40 ms on Linux loopback).
        disable_nagle_algorithm = True

        def log_message(self, *args):
            pass

        def do_GET(self):
            time.sleep(latency)
            body = images[int(self.path.strip("/").split(".")[0])]
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run(base: str, count: int, workers: int) -> float:
    """Download ``count`` images with ``workers`` into a fresh folder; return the seconds taken."""
    with tempfile.TemporaryDirectory(prefix="bench-download-") as out:
        start = time.perf_counter()
        with Downloader(out, Settings(timeout=10), workers=workers, progress=False) as downloader:
            for index in range(count):
                downloader.submit(Job("foreground", f"{base}/{index}.png"))
        seconds = time.perf_counter() - start
        if downloader.counts["kept"] != count:
            raise RuntimeError(f"workers={workers}: {dict(downloader.counts)}, expected all kept")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_argument_group("benchmark")
    group.add_argument("--images", type=int, default=200, help="images per configuration")
    group.add_argument("--latency", type=float, default=0.1, help="server delay per image, s")
    group.add_argument(
        "--workers", type=int, nargs="+", default=[1, 4, 8, 16], help="configurations to time"
    )
    return parser


def main(args: list[str] | None = None) -> int:
    options = build_parser().parse_args(args)
    workers = sorted(set(options.workers) | {1})
    server = serve(make_images(options.images), options.latency)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        timings = {n: run(base, options.images, n) for n in workers}
    finally:
        server.shutdown()
        server.server_close()
    print(
        f"{options.images} images, {options.latency * 1000:.0f} ms server latency each,"
        " loopback, fetch + vet + save + manifest"
    )
    print(f"| {'config':<10} | {'images':>6} | {'seconds':>7} | {'images/s':>8} | {'ratio':>5} |")
    print(f"|{'-' * 12}|{'-' * 8}|{'-' * 9}|{'-' * 10}|{'-' * 7}|")
    for n, seconds in timings.items():
        ratio = timings[1] / seconds
        print(
            f"| {f'workers={n}':<10} | {options.images:>6} | {seconds:>7.2f} |"
            f" {options.images / seconds:>8.1f} | {ratio:>4.1f}x |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
