"""Concurrent, resumable image downloads for ``scripts/download.py``: fetch, vet, save, record.

Each URL goes through the same steps on a worker thread:

1. **fetch** (``scripts/transfer.py``) with a per-thread ``requests`` session: connect/read
   timeouts, retries with exponential back-off on connection errors and HTTP 429/5xx, at most
   five redirects, a size cap, and a total ``deadline``, so a server trickling its body a byte
   at a time cannot hold a worker;
2. **de-duplicate** by the sha256 of the bytes (also against earlier runs' manifest records);
3. **vet** the bytes (``scripts/vetting.py``), sniffing the format from the content and
   refusing images over ``max_pixels`` before decoding them. A foreground must have a useful
   alpha channel (not fully opaque, not a plain rectangle, some 0 < alpha < 1); a background
   must be opaque with a shorter side of at least ``min_background`` pixels;
4. **save** atomically under ``<sha256[:16]>`` (``scripts/vetting.py``): foregrounds as RGBA PNG
   in ``foreground/``, backgrounds in ``background/`` with their JPEG bytes untouched, other
   formats as RGB PNG;
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
import sys
import threading
import time
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import requests
from tqdm import tqdm

from model.manifest import append_record, read_records
from scripts.transfer import Interrupted, Refused, Settings, fetch, make_session
from scripts.vetting import KINDS, remove_stale_temps, save, vet

STATUSES = ("kept", "rejected", "failed", "duplicate")
CANCEL_GRACE = 1.0
"""Seconds a cancelled :class:`Downloader` waits for running downloads before abandoning them."""


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
