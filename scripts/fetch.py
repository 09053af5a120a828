"""Concurrent, resumable image downloads for ``scripts/download.py``: fetch, vet, save, record.

Each URL goes through the same steps on a worker thread:

1. **fetch** with a per-thread ``requests`` session: connect/read timeouts, retries with
   exponential back-off on connection errors and HTTP 429/5xx (urllib3 ``Retry``), at most five
   redirects, a size cap (a ``Content-Length`` over the cap is refused before the body is
   read, and a streamed body is abandoned as soon as it passes the cap), and a total
   ``deadline``: a server trickling its body a byte at a time never times out a single read,
   so the body is read as it arrives and abandoned once the deadline has passed;
2. **de-duplicate** by the sha256 of the bytes (also against earlier runs' manifest records);
3. **vet** the bytes, sniffing the format from the content (never the extension or
   ``Content-Type``) with :func:`model.images.probe_image` and :func:`model.images.decode_image`,
   which refuse images over ``max_pixels`` before decoding them. A foreground must have a useful
   alpha channel (:func:`model.compositing.alpha_problem` with ``require_partial=True``: not
   fully opaque, not a plain rectangle, some 0 < alpha < 1); a background must be opaque with a
   shorter side of at least ``min_background`` pixels;
4. **save** atomically under ``<sha256[:16]>``: foregrounds as RGBA PNG in ``foreground/``,
   backgrounds in ``background/`` with their JPEG bytes untouched, other formats as RGB PNG;
5. **record** one line in ``manifest.jsonl`` (:func:`model.manifest.append_record`) with
   status ``kept``, ``rejected`` (the content is unsuitable), ``failed`` (network or HTTP
   error) or ``duplicate``, and the reason.

A URL already in the manifest is never fetched again, so an interrupted run resumes where it
stopped; a file is written before its record, so a kill between the two only costs one re-fetch.
Leaving the ``with`` block on an exception (Ctrl-C) drops the queued downloads, stops the
running ones at their next read without a record (they are fetched again next time), and
waits at most ``CANCEL_GRACE`` seconds for them: the workers are daemon threads, so one
stuck in a read cannot hold the process open.

Usage::

    with Downloader("scripts/raw", Settings(timeout=10), workers=8) as downloader:
        for url in urls:
            downloader.submit(Job("background", url))
    print(downloader.counts)
"""

from __future__ import annotations

import hashlib
import queue
import re
import sys
import threading
import time
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import requests
from requests.adapters import HTTPAdapter
from tqdm import tqdm
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError
from urllib3.util.retry import Retry

from model.compositing import alpha_problem
from model.images import MAX_PIXELS, ImageError, decode_image, probe_image, write_bytes, write_png
from model.manifest import append_record, read_records

KINDS = ("foreground", "background")
STATUSES = ("kept", "rejected", "failed", "duplicate")
RETRY_STATUSES = (429, 500, 502, 503, 504)
MAX_REDIRECTS = 5
CHUNK_BYTES = 64 * 1024
CANCEL_GRACE = 1.0
"""Seconds a cancelled :class:`Downloader` waits for running downloads before abandoning them."""
JPEG_FORMATS = ("JPEG", "MPO")
DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/124.0 Safari/537.36"
)

# What atomic_path leaves behind when the process is killed mid-write: ".<name>.<random>.tmp".
_STALE_TEMP = re.compile(r"^\.[0-9a-f]{16}\.(png|jpg)\..+\.tmp$")


@dataclass(frozen=True)
class Job:
    """One image URL to fetch, with its provenance.

    ``kind`` is ``"foreground"`` or ``"background"``; ``query``, ``engine``, ``page_url``
    (the page showing the image) and ``search_url`` (the result page it was found on) are only
    recorded.
    """

    kind: str
    url: str
    query: str | None = None
    engine: str | None = None
    page_url: str | None = None
    search_url: str | None = None


@dataclass(frozen=True)
class Settings:
    """Download and vetting limits.

    Attributes
    ----------
    timeout : float
        Seconds to wait to connect, and for each read of the response.
    deadline : float
        Seconds one download may take in all, from the request to the last byte of the body
        (retries included); a slower one fails with reason "too slow".
    retries : int
        Retries after a connection error or an HTTP 429/500/502/503/504 answer; the waits
        between them are ``backoff * 2**(n-1)`` seconds after the first immediate retry.
    backoff : float
        Back-off factor in seconds. ``Retry-After`` is not honoured: a server asking for minutes
        would stall a worker.
    max_bytes : int
        Largest response body accepted, in bytes.
    max_pixels : int
        Largest image (width x height) decoded; bigger ones are refused from their header.
    min_background : int
        Smallest shorter side of a background, in pixels.
    user_agent : str
        Sent with every request (``scripts/download.py`` uses the browser's).
    """

    timeout: float = 20.0
    deadline: float = 120.0
    retries: int = 3
    backoff: float = 0.5
    max_bytes: int = 20_000_000
    max_pixels: int = MAX_PIXELS
    min_background: int = 512
    user_agent: str = DEFAULT_USER_AGENT


@dataclass(frozen=True)
class Verdict:
    """The outcome of vetting one image: ``status`` is "kept" or "rejected"."""

    status: str
    reason: str | None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    pixels: np.ndarray | None = None


class Interrupted(Exception):
    """A download stopped because its Downloader was cancelled; it gets no record."""


class Refused(Exception):
    """A download that ends before vetting; carries its manifest ``status`` and ``reason``."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def make_session(settings: Settings) -> requests.Session:
    """A ``requests`` session with the retry policy of ``settings`` mounted for http(s)."""
    retry = Retry(
        total=settings.retries,
        connect=settings.retries,
        read=0,
        status=settings.retries,
        other=0,
        backoff_factor=settings.backoff,
        backoff_max=30.0,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET"}),
        raise_on_status=False,
        respect_retry_after_header=False,
    )
    session = requests.Session()
    session.max_redirects = MAX_REDIRECTS
    session.headers.update({"User-Agent": settings.user_agent, "Accept": "image/*,*/*;q=0.8"})
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _network_reason(error: requests.RequestException) -> str:
    # requests re-raises a read timeout while streaming as a ConnectionError.
    if isinstance(error, requests.Timeout) or "timed out" in str(error).lower():
        return "timeout"
    if isinstance(error, requests.TooManyRedirects):
        return f"too many redirects (over {MAX_REDIRECTS})"
    if isinstance(error, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema)):
        return "invalid URL"
    if isinstance(error, requests.ConnectionError):
        text = str(error)
        if "NameResolutionError" in text or "Name or service not known" in text:
            return "connection failed (host not found)"
        if "Connection refused" in text:
            return "connection failed (refused)"
        return "connection failed"
    return f"request failed ({type(error).__name__})"


def _body_chunks(response: requests.Response):
    """The body as it arrives, each piece as soon as one read returns it.

    ``iter_content`` waits for a whole chunk, which a trickling server takes hours to fill;
    errors are wrapped as ``iter_content`` wraps them.
    """
    try:
        while chunk := response.raw.read1(CHUNK_BYTES, decode_content=True):
            yield chunk
    except ProtocolError as error:
        raise requests.exceptions.ChunkedEncodingError(error) from None
    except DecodeError as error:
        raise requests.exceptions.ContentDecodingError(error) from None
    except ReadTimeoutError as error:
        raise requests.ConnectionError(error) from None


def fetch(
    session: requests.Session,
    url: str,
    settings: Settings,
    referer: str | None = None,
    stop: threading.Event | None = None,
):
    """Download ``url`` into memory, refusing bodies over ``settings.max_bytes``.

    The body must arrive within ``settings.deadline`` seconds of the request. ``stop``, when
    set, ends the download at its next read with :class:`Interrupted`.

    Returns
    -------
    (bytes, str)
        The body and the final URL after redirects.

    Raises
    ------
    Refused
        ``failed`` for network and HTTP errors and for a missed deadline, ``rejected`` for a
        body over the cap.
    Interrupted
        ``stop`` was set.
    """
    headers = {"Referer": referer} if referer else {}
    timeout = (settings.timeout, settings.timeout)
    started = time.monotonic()
    too_slow = f"too slow (not complete within --deadline {settings.deadline:g} s)"
    try:
        with session.get(url, stream=True, timeout=timeout, headers=headers) as response:
            if response.status_code >= 400:
                raise Refused("failed", f"HTTP {response.status_code}")
            too_large = f"too large (over --max-bytes {settings.max_bytes:,} bytes)"
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > settings.max_bytes:
                raise Refused("rejected", too_large)
            body = bytearray()
            for chunk in _body_chunks(response):
                if stop is not None and stop.is_set():
                    raise Interrupted(url)
                if time.monotonic() - started > settings.deadline:
                    raise Refused("failed", too_slow)
                body += chunk
                if len(body) > settings.max_bytes:
                    raise Refused("rejected", too_large)
            return bytes(body), response.url
    except (Refused, Interrupted):
        raise
    except requests.RequestException as error:
        raise Refused("failed", _network_reason(error)) from None
    # A hostile server can push http.client/urllib3 into errors requests does not wrap; one
    # URL must never end the run.
    except Exception as error:
        raise Refused("failed", f"request failed ({type(error).__name__})") from None


def vet(data: bytes, kind: str, settings: Settings, name: str = "<bytes>") -> Verdict:
    """Decide whether downloaded bytes make a usable foreground or background.

    Parameters
    ----------
    data : bytes
        The encoded image, format unknown.
    kind : {"foreground", "background"}
    settings : Settings
        ``max_pixels`` and ``min_background`` are used.
    name : str
        What to call the image in reasons.

    Returns
    -------
    Verdict
        ``kept`` with ``pixels`` (float32 HxWx4 RGBA in [0, 1] for foregrounds and backgrounds
        with an alpha channel, else HxWx3 RGB; EXIF orientation applied), or
        ``rejected`` with a reason: the decoder's (not an image, too many pixels, truncated...),
        an alpha problem for foregrounds ("fully opaque", "plain rectangle",
        "no partial transparency", "fully transparent"), or for backgrounds "not opaque" /
        "too small".
    """
    try:
        info = probe_image(data, name)
        if kind == "background" and min(info.width, info.height) < settings.min_background:
            return Verdict(
                "rejected",
                f"too small ({info.width}x{info.height}; shorter side under"
                f" --min-background {settings.min_background})",
                info.width,
                info.height,
                info.format,
            )
        keep_alpha = kind == "foreground" or info.has_alpha
        pixels = decode_image(data, name, keep_alpha=keep_alpha, max_pixels=settings.max_pixels)
    except ImageError as error:
        return Verdict("rejected", error.problem)
    # Hostile files make PIL's decoders raise arbitrary exception types; one must not end the run.
    except Exception as error:
        return Verdict("rejected", f"cannot decode image ({type(error).__name__})")
    height, width = pixels.shape[:2]
    if kind == "foreground":
        problem = alpha_problem(pixels[..., 3], require_partial=True)
    elif pixels.shape[2] == 4 and (pixels[..., 3] < 1.0).any():
        problem = "not opaque (has transparent pixels)"
    else:
        problem = None
    if problem:
        return Verdict("rejected", problem, width, height, info.format)
    return Verdict("kept", None, width, height, info.format, pixels)


def save(out_dir: Path, kind: str, digest: str, data: bytes, verdict: Verdict) -> str:
    """Write a kept image atomically; return its path relative to ``out_dir``."""
    if kind == "foreground":
        relative = f"foreground/{digest[:16]}.png"
        write_png(out_dir / relative, verdict.pixels)
    elif verdict.format in JPEG_FORMATS:
        relative = f"background/{digest[:16]}.jpg"
        write_bytes(out_dir / relative, data)
    else:
        relative = f"background/{digest[:16]}.png"
        write_png(out_dir / relative, verdict.pixels[..., :3])
    return relative


def remove_stale_temps(out_dir: Path) -> int:
    """Delete temp files a killed run left in ``foreground/`` and ``background/``; count them."""
    removed = 0
    for kind in KINDS:
        folder = out_dir / kind
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if _STALE_TEMP.match(path.name):
                path.unlink(missing_ok=True)
                removed += 1
    return removed


class Downloader:
    """Fetch, vet and save images on a pool of threads, one manifest record per URL.

    Reads ``out_dir/manifest.jsonl`` first: its URLs are skipped and its hashes count for
    de-duplication. Use as a context manager; leaving the block waits for queued downloads, or,
    when the block raised, cancels them (see :meth:`close`).

    Parameters
    ----------
    out_dir : path-like
        The raw folder: ``foreground/``, ``background/`` and ``manifest.jsonl`` live there.
    settings : Settings
    workers : int
        Concurrent downloads.
    retry_failed : bool
        Fetch again URLs whose last record is ``failed`` (network or HTTP errors).
    progress : bool
        Show a tqdm bar on stderr.

    Attributes
    ----------
    counts : collections.Counter
        Records written in this run by status.
    user_agent : str
        May be changed before the first :meth:`submit`.
    """

    def __init__(
        self,
        out_dir,
        settings: Settings,
        *,
        workers: int = 8,
        retry_failed: bool = False,
        progress: bool = True,
    ):
        self.out_dir = Path(out_dir)
        self.manifest = self.out_dir / "manifest.jsonl"
        self.settings = settings
        self.user_agent = settings.user_agent
        self.counts: Counter[str] = Counter()
        self.stale_temps_removed = remove_stale_temps(self.out_dir)
        self.records = [r for r in read_records(self.manifest) if r.get("url")]
        last_status = {r["url"]: r.get("status") for r in self.records}
        self._known = {
            url for url, status in last_status.items() if not (retry_failed and status == "failed")
        }
        self._hashes = {
            r["sha256"]: r.get("file") or r["url"]
            for r in self.records
            if r.get("sha256") and r.get("status") in ("kept", "rejected")
        }
        self._lock = threading.Lock()
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._futures: list[Future] = []
        self._workers = workers
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._progress = progress
        # Made at the first submit, so a run that fails before downloading prints one line.
        self._bar: tqdm | None = None

    @property
    def known_urls(self) -> frozenset[str]:
        """URLs recorded in earlier runs or queued in this one."""
        return frozenset(self._known)

    def __enter__(self) -> Downloader:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        self.close(cancel=exc_type is not None)

    def submit(self, job: Job) -> bool:
        """Queue ``job``; False (and nothing queued) when its URL is already known."""
        if job.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {job.kind!r}")
        if job.url in self._known:
            return False
        self._known.add(job.url)
        if self._bar is None:
            self._bar = tqdm(
                total=0, unit="img", desc="download", file=sys.stderr, disable=not self._progress
            )
        self._bar.total += 1
        self._bar.refresh()
        future: Future = Future()
        self._futures.append(future)
        self._jobs.put((future, job))
        if len(self._threads) < self._workers:
            # Daemon threads, unlike ThreadPoolExecutor's: the interpreter does not wait for a
            # worker stuck in a read when the run is cancelled.
            thread = threading.Thread(
                target=self._work, name=f"download-{len(self._threads)}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return True

    def resubmit_failed(self) -> int:
        """Queue again every URL whose last record is ``failed``, with that record's provenance.

        Only a Downloader made with ``retry_failed`` does; otherwise those URLs are known and
        skipped. Searching alone would not bring them back: a query with enough records is
        not searched again, whatever their status. Returns how many were queued.
        """
        last = {record["url"]: record for record in self.records}
        jobs = [
            Job(
                record["kind"],
                url,
                record.get("query"),
                record.get("engine"),
                record.get("page_url"),
                record.get("search_url"),
            )
            for url, record in last.items()
            if record.get("status") == "failed" and record.get("kind") in KINDS
        ]
        return sum(self.submit(job) for job in jobs)

    def wait(self) -> Counter[str]:
        """Block until every queued job is recorded; return :attr:`counts`."""
        for future in self._futures:
            future.result()
        return self.counts

    def close(self, *, cancel: bool = False) -> None:
        """Finish the downloads and release resources.

        With ``cancel``, queued downloads are dropped and running ones stop at their next read
        without a record; this waits at most ``CANCEL_GRACE`` seconds for them.
        """
        if cancel:
            self._stop.set()
            for future in self._futures:
                future.cancel()  # only those not started yet
        for _ in self._threads:
            self._jobs.put(None)
        give_up = time.monotonic() + CANCEL_GRACE
        for thread in self._threads:
            thread.join(max(0.0, give_up - time.monotonic()) if cancel else None)
        if not cancel:
            self.wait()
        for session in self._sessions:
            session.close()
        if self._bar is not None:
            self._bar.close()

    def _work(self) -> None:
        while (item := self._jobs.get()) is not None:
            future, job = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                self._process(job)
            except BaseException as error:
                future.set_exception(error)
            else:
                future.set_result(None)

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = make_session(self.settings)
            session.headers["User-Agent"] = self.user_agent
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def _claim(self, digest: str, label: str) -> str | None:
        """Register a content hash; return what already had it, or None if it is new."""
        with self._lock:
            owner = self._hashes.get(digest)
            if owner is None:
                self._hashes[digest] = label
            return owner

    def _process(self, job: Job) -> None:
        record = {
            "kind": job.kind,
            "query": job.query,
            "engine": job.engine,
            "search_url": job.search_url,
            "page_url": job.page_url,
            "url": job.url,
            "final_url": None,
            "file": None,
            "sha256": None,
            "bytes": None,
            "width": None,
            "height": None,
            "format": None,
            "status": None,
            "reason": None,
        }
        try:
            data, final_url = fetch(
                self._session(), job.url, self.settings, job.page_url, self._stop
            )
        except Interrupted:
            return
        except Refused as refusal:
            if self._stop.is_set():
                return  # most likely the cancellation's doing; fetch it again next run
            record.update(status=refusal.status, reason=refusal.reason)
            self._record(record)
            return
        digest = hashlib.sha256(data).hexdigest()
        record.update(final_url=final_url, sha256=digest, bytes=len(data))
        owner = self._claim(digest, job.url)
        if owner is not None:
            record.update(status="duplicate", reason=f"same content as {owner}")
            self._record(record)
            return
        verdict = vet(data, job.kind, self.settings, name=job.url)
        record.update(
            status=verdict.status,
            reason=verdict.reason,
            width=verdict.width,
            height=verdict.height,
            format=verdict.format,
        )
        if verdict.status == "kept":
            try:
                record["file"] = save(self.out_dir, job.kind, digest, data, verdict)
            except OSError as error:
                record.update(status="failed", reason=f"cannot write file ({error.strerror})")
            else:
                with self._lock:
                    self._hashes[digest] = record["file"]
        self._record(record)

    def _record(self, record: dict) -> None:
        append_record(self.manifest, record)
        with self._lock:
            self.counts[record["status"]] += 1
            postfix = {status: self.counts[status] for status in STATUSES if self.counts[status]}
        self._bar.set_postfix(postfix, refresh=False)
        self._bar.update(1)
