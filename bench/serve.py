"""Benchmark: serve.py under concurrent load, and its resident memory over many requests.

Starts the real server (``python3 serve.py --port P --checkpoint C``, P a free loopback port)
as a subprocess and posts one 512x512 image + trimap pair (a procedural ``fur`` foreground over
a textured background, trimap from ``model.compositing.trimap_from_alpha``) to ``/api/matte``
as PNG uploads, asking for the default output (the RGBA cut-out: alpha + foreground colours).
Load comes from ``--concurrency`` client threads sharing one ``httpx.Client``, each sending
its next request as soon as the last one is answered. Every answer must be 200 with a PNG.

The server gets ``--queue`` equal to the highest concurrency, so no request is refused with
503 (the default queue of 8 would refuse some at 16). Before the timed rows, 10 requests
warm it up (the first traces the network); its VmRSS is read then, and again once
``--memory-requests`` (500) requests have been served in all, topping up with sequential
requests if the rows sent fewer.

Prints requests/s and p50/p95 latency per concurrency, with the ratio of requests/s against
concurrency 1 from the same run, then the memory growth (target: <= 10% from 10 to 500
requests).

The checkpoint is resolved like serve.py's (``--checkpoint``, default -1, the newest under
``--log-dir``) once, here, and handed to the server as a path, so a training run saving new
checkpoints meanwhile changes nothing. serve.py refuses to start without a checkpoint, so with
none at all (and the default -1) the bench saves a throwaway one in a temporary log folder: the
default ``ModelConfig()`` with random weights (the tests' ``make_tiny_checkpoint`` approach at
full size), which serves at the same speed as a trained one.

Usage::

    python3 bench/serve.py                                   # 100 requests at 1, 4 and 16
    python3 bench/serve.py --requests 40 --concurrency 1,4 --memory-requests 100   # quicker
    python3 bench/serve.py --log-dir log --checkpoint -2 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
import httpx  # noqa: E402
import numpy as np  # noqa: E402

from model.checkpoints import CheckpointError, resolve_checkpoint  # noqa: E402

SIZE = 512
WARMUP = 10
GROWTH_TARGET = 0.10
"""Server VmRSS after ``--memory-requests`` / after 10 requests must be at most 1 + this."""


def make_upload(size: int = SIZE, seed: int = 0) -> dict[str, tuple[str, bytes, str]]:
    """The multipart files of one request: a procedural image and its trimap, as PNG bytes."""
    from model.compositing import composite, trimap_from_alpha
    from model.images import encode_png, trimap_to_uint8
    from scripts import procedural

    rng = np.random.default_rng(seed)
    colour, alpha = procedural.make_foreground("fur", rng, size, size)
    image = composite(colour, alpha, procedural.make_background(rng, size, size))
    trimap = trimap_to_uint8(trimap_from_alpha(alpha, kernel_size=11))
    return {
        "image": ("photo.png", encode_png(image), "image/png"),
        "trimap": ("trimap.png", encode_png(trimap), "image/png"),
    }


def make_throwaway_checkpoint(log_dir: Path) -> Path:
    """Save the default generator with random weights as ``log_dir/bench/checkpoints/ckpt-0``.

    Same layout as the tests' ``make_tiny_checkpoint``; returns the checkpoint prefix.
    """
    import keras
    import tensorflow as tf

    from model.networks import ModelConfig, build_generator

    keras.utils.set_random_seed(0)
    config = ModelConfig(encoder_weights=None)
    run = log_dir / "bench"
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(generator=build_generator(config)),
        run / "checkpoints",
        1,
        checkpoint_name="ckpt",
    )
    prefix = manager.save(checkpoint_number=0)
    (run / "config.json").write_text(json.dumps({"model": config.to_dict()}), encoding="utf-8")
    return Path(prefix)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def vm_rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB, from /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


class Server:
    """serve.py in a subprocess on a free loopback port; its output goes to ``log_path``."""

    def __init__(self, checkpoint: str, log_path: Path, queue: int, workers: int):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        command = [sys.executable, str(ROOT / "serve.py"), "--port", str(self.port)]
        command += ["--checkpoint", checkpoint, "--queue", str(queue), "--workers", str(workers)]
        self._log = open(log_path, "wb")  # noqa: SIM115 -- closed in stop()
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, timeout: float = 600) -> dict:
        """Poll ``/api/health`` until it answers; returns its JSON."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve.py exited with {self.process.returncode}: {self.tail()}")
            try:
                response = httpx.get(f"{self.base}/api/health", timeout=5)
                if response.status_code == 200:
                    return response.json()
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"serve.py not ready after {timeout:.0f} s: {self.tail()}")

    def tail(self, lines: int = 3) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:]) or "no output"

    def rss_mb(self) -> float:
        return vm_rss_mb(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


class Load:
    """Posts the upload to ``/api/matte`` from threads; counts every request sent."""

    def __init__(self, base: str, files: dict):
        self.url = f"{base}/api/matte"
        self.files = files
        self.client = httpx.Client(timeout=600, limits=httpx.Limits(max_connections=64))
        self.sent = 0
        self._lock = threading.Lock()

    def post(self) -> float:
        """One request; returns its latency in seconds. Raises on anything but a 200 PNG."""
        start = time.perf_counter()
        response = self.client.post(self.url, files=self.files)
        latency = time.perf_counter() - start
        with self._lock:
            self.sent += 1
        if response.status_code != 200 or not response.content.startswith(b"\x89PNG"):
            raise RuntimeError(f"/api/matte answered {response.status_code}: {response.text[:200]}")
        return latency

    def run(self, requests: int, concurrency: int) -> tuple[float, list[float]]:
        """``requests`` requests from ``concurrency`` threads; (wall seconds, latencies)."""
        latencies: list[float] = []
        errors: list[BaseException] = []
        remaining = [requests]
        lock = threading.Lock()

        def worker():
            while True:
                with lock:
                    if remaining[0] <= 0 or errors:
                        return
                    remaining[0] -= 1
                try:
                    latency = self.post()
                except Exception as error:
                    errors.append(error)
                    return
                with lock:
                    latencies.append(latency)

        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - start
        if errors:
            raise errors[0]
        return seconds, latencies

    def close(self) -> None:
        self.client.close()


def parse_concurrency(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give counts such as 1,4,16") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every concurrency must be >= 1")
    return values


def resolve_model(checkpoint: str, log_dir: Path, temp: Path) -> tuple[str, str]:
    """The checkpoint prefix to serve and a description; makes a throwaway one if none exist."""
    try:
        ref = resolve_checkpoint(checkpoint, log_dir)
    except CheckpointError as error:
        if str(checkpoint).strip() != "-1":
            raise
        prefix = make_throwaway_checkpoint(temp / "log")
        return str(prefix), (
            f"no checkpoint under {log_dir} ({str(error).split(';')[0].split(': ', 1)[-1]}),"
            f" so a throwaway {prefix}: the default ModelConfig() with random weights, which"
            " serves at the same speed as a trained one"
        )
    section = ref.config.get("model", {})
    arch = ", ".join(f"{key} {section[key]}" for key in ("encoder", "base_filters", "depth"))
    return str(ref.path), f"checkpoint {ref.path} (step {ref.step}; {arch})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_argument_group("benchmark")
    group.add_argument("--requests", type=int, default=100, help="requests per concurrency (100)")
    group.add_argument(
        "--concurrency",
        type=parse_concurrency,
        default=[1, 4, 16],
        help="client threads per row, comma-separated (1,4,16); 1 is always run, the baseline",
    )
    group.add_argument(
        "--memory-requests",
        type=int,
        default=500,
        help="read the server's RSS again after this many requests in all (500)",
    )
    group.add_argument("--workers", type=int, default=1, help="serve.py --workers (1)")
    model = parser.add_argument_group("model")
    model.add_argument("--checkpoint", default="-1", help="as serve.py's (default: -1, newest)")
    model.add_argument("--log-dir", type=Path, default=Path("log"), help="runs folder (log)")
    return parser


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main(args: list[str] | None = None) -> int:
    opts = build_parser().parse_args(args)
    if opts.requests < 1 or opts.workers < 1 or opts.memory_requests <= WARMUP:
        print(
            f"error: --requests and --workers must be >= 1, --memory-requests > {WARMUP}",
            file=sys.stderr,
        )
        return 2
    levels = sorted(set(opts.concurrency) | {1})
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as temp:
        try:
            checkpoint, described = resolve_model(opts.checkpoint, opts.log_dir, Path(temp))
        except CheckpointError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        files = make_upload()
        server = Server(checkpoint, Path(temp) / "serve.log", max(levels), opts.workers)
        try:
            started = time.perf_counter()
            server.wait_ready()
            print(
                f"serve.py ready in {time.perf_counter() - started:.1f} s; model: {described};"
                f" {os.cpu_count()} CPU cores; {SIZE}x{SIZE} PNG image + trimap, RGBA answer;"
                f" --workers {opts.workers} --queue {max(levels)}",
                flush=True,
            )
            load = Load(server.base, files)
            try:
                load.run(WARMUP, 1)
                rss_warm = server.rss_mb()
                rows = []
                for level in levels:
                    seconds, latencies = load.run(opts.requests, level)
                    rows.append((level, seconds, latencies))
                    print(f"  concurrency {level}: {opts.requests / seconds:.2f} requests/s")
                top_up = max(opts.memory_requests - load.sent, 0)
                if top_up:
                    print(f"  {top_up} more requests for the memory reading", flush=True)
                    load.run(top_up, 1)
                rss_end, sent = server.rss_mb(), load.sent
            finally:
                load.close()
        finally:
            server.stop()

    print()
    header = f"| {'concurrency':>11} | {'requests':>8} | {'requests/s':>10} |"
    header += f" {'p50 s':>7} | {'p95 s':>7} | {'ratio':>6} |"
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    baseline = opts.requests / rows[0][1]
    for level, seconds, latencies in rows:
        rate = len(latencies) / seconds
        print(
            f"| {level:>11} | {len(latencies):>8} | {rate:>10.2f} |"
            f" {percentile(latencies, 50):>7.3f} | {percentile(latencies, 95):>7.3f} |"
            f" {rate / baseline:>5.2f}x |"
        )
    growth = rss_end / rss_warm - 1
    verdict = "ok" if growth <= GROWTH_TARGET else "ABOVE TARGET"
    print()
    print(f"server VmRSS after {WARMUP} requests: {rss_warm:.0f} MB")
    print(f"server VmRSS after {sent} requests: {rss_end:.0f} MB")
    print(
        f"growth: {growth:+.1%} (target <= {GROWTH_TARGET:.0%}) {verdict};"
        " the machine may be shared, so rates are noisy"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
