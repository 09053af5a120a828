"""Background jobs for the web API's video path: one clip at a time, with progress.

A clip takes seconds to minutes, far longer than an HTTP request should wait, so
``POST /api/video`` only stores the upload and answers a job id; a worker thread mattes the clip
(``model.video_matting``) and reports each frame, and the page polls ``GET /api/jobs/ID``.

:class:`VideoJobs` keeps every job's files in its own folder under one temporary root: the
upload, and the result, written atomically by ``VideoWriter``, so a result that exists is
complete. Finished jobs are kept for ``keep_seconds`` (the time a user has to download them)
and at most ``max_jobs`` jobs exist at once, so disk use is bounded. :meth:`VideoJobs.close`
stops a running job at its next frame and deletes everything.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from model.errors import first_line
from model.images import ImageError

OUTPUT_TYPES = {"webm": "video/webm", "mov": "video/quicktime", "mp4": "video/mp4"}
"""Output kinds the API offers, with their media types."""


class JobCancelled(Exception):
    """Raised from the progress callback when the job store is closing."""


class JobsFull(Exception):
    """Every job place is taken by a queued or running job."""


@dataclass
class VideoJob:
    """One clip being matted; the fields the progress endpoint reports."""

    id: str
    folder: Path
    input: Path
    """Where the upload is stored (deleted when the job ends)."""
    output: Path
    filename: str
    """Download name for the result, e.g. ``clip-cutout.webm``."""
    status: str = "queued"
    """``queued``, ``running``, ``done`` or ``failed``."""
    frames_done: int = 0
    frames_total: int | None = None
    error: str | None = None
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None

    def progress(self) -> dict:
        """JSON-ready state: status, frames, fraction, elapsed and estimated remaining seconds."""
        now = self.finished or time.monotonic()
        elapsed = now - self.started if self.started is not None else 0.0
        fraction = None
        remaining = None
        if self.status == "done":
            fraction, remaining = 1.0, 0.0
        elif self.frames_total:
            fraction = min(self.frames_done / self.frames_total, 1.0)
            if self.frames_done:
                rate = elapsed / self.frames_done
                remaining = max(self.frames_total - self.frames_done, 0) * rate
        return {
            "id": self.id,
            "status": self.status,
            "frames_done": self.frames_done,
            "frames_total": self.frames_total,
            "fraction": fraction,
            "seconds": round(elapsed, 2),
            "remaining_seconds": None if remaining is None else round(remaining, 1),
            "error": self.error,
            "filename": self.filename,
        }


# run(input, output, options, on_frame) mattes one clip; on_frame(done, total) reports progress.
Runner = Callable[[Path, Path, dict, Callable[[int, int | None], None]], None]


class VideoJobs:
    """A bounded store of video jobs run one at a time by a worker thread.

    Parameters
    ----------
    run : callable(input, output, options, on_frame)
        Mattes ``input`` into ``output``; raises ImageError (a bad clip) or anything else.
    max_jobs : int
        Jobs that may exist at once (queued, running or finished and not yet expired);
        when all are queued or running, :meth:`create` raises JobsFull.
    keep_seconds : float
        How long a finished job and its result are kept.
    """

    def __init__(self, run: Runner, *, max_jobs: int = 4, keep_seconds: float = 900.0):
        self._run = run
        self.max_jobs = max_jobs
        self.keep_seconds = keep_seconds
        self._root = Path(tempfile.mkdtemp(prefix="matting-video-"))
        self._jobs: dict[str, VideoJob] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="video")

    def create(self, suffix: str, kind: str, stem: str) -> VideoJob:
        """Reserve a job and its folder; the caller writes the upload to ``job.folder``.

        Raises
        ------
        JobsFull
            All ``max_jobs`` places hold jobs that are queued or running.
        """
        with self._lock:
            self._expire()
            if len(self._jobs) >= self.max_jobs:
                finished = [j for j in self._jobs.values() if j.status in ("done", "failed")]
                if not finished:
                    raise JobsFull
                self._drop(min(finished, key=lambda job: job.finished or 0.0))
            job_id = secrets.token_urlsafe(12)
            folder = self._root / job_id
            folder.mkdir()
            job = VideoJob(
                job_id,
                folder,
                folder / f"input{suffix}",
                folder / f"result.{kind}",
                f"{stem}-cutout.{kind}",
            )
            self._jobs[job_id] = job
            return job

    def start(self, job: VideoJob, options: dict) -> None:
        """Queue the job for the worker thread."""
        self._executor.submit(self._work, job, options)

    def discard(self, job: VideoJob) -> None:
        """Forget a job that was refused before it started, and delete its folder."""
        with self._lock:
            self._drop(job)

    def get(self, job_id: str) -> VideoJob | None:
        with self._lock:
            self._expire()
            return self._jobs.get(job_id)

    def busy(self) -> int:
        """Jobs queued or running."""
        with self._lock:
            return sum(job.status in ("queued", "running") for job in self._jobs.values())

    def close(self) -> None:
        """Stop the running job at its next frame, drop queued ones, delete every file."""
        self._closing.set()
        self._executor.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self._root, ignore_errors=True)

    def _work(self, job: VideoJob, options: dict) -> None:
        def on_frame(done: int, total: int | None) -> None:
            if self._closing.is_set():
                raise JobCancelled
            job.frames_done, job.frames_total = done, total

        job.status, job.started = "running", time.monotonic()
        try:
            self._run(job.input, job.output, options, on_frame)
        except JobCancelled:
            job.status, job.error = "failed", "the server is shutting down"
        except ImageError as error:
            job.status, job.error = "failed", str(error)
        except Exception as error:  # reported to the page as one line, like every API error
            job.status, job.error = "failed", f"{type(error).__name__}: {first_line(error)}"
        else:
            job.status = "done"
        finally:
            job.finished = time.monotonic()
            job.input.unlink(missing_ok=True)

    def _expire(self) -> None:
        now = time.monotonic()
        for job in list(self._jobs.values()):
            if job.finished is not None and now - job.finished > self.keep_seconds:
                self._drop(job)

    def _drop(self, job: VideoJob) -> None:
        self._jobs.pop(job.id, None)
        shutil.rmtree(job.folder, ignore_errors=True)
