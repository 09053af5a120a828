"""A process pool for the data scripts that degrades to a plain loop for one worker.

Workers come from a ``forkserver`` context: each is forked from a small clean server process,
not from the caller, which may hold threads (tqdm's monitor, OpenCV's thread pool, TensorFlow
in a test session) that make a plain ``fork`` unsafe. OpenCV's own threading is turned off in
every worker (and in the single-worker loop), so N workers use N cores and the 1 -> N worker
scaling measured by bench/combine.py means what it says.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import cv2

Task = TypeVar("Task")
Result = TypeVar("Result")


def _init_worker() -> None:
    cv2.setNumThreads(1)
    # Ctrl-C reaches the whole process group; the parent ends the pool, and a worker's own
    # KeyboardInterrupt would only print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Workers:
    """Context manager running tasks on ``count`` processes, or in this one when ``count`` is 1.

    Parameters
    ----------
    count : int
        Number of worker processes (>= 1).
    preload : str, optional
        Module the pool's server imports once up front (the module of the task functions), so
        forked workers start without re-importing it.

    Examples
    --------
    >>> with Workers(2) as workers:  # doctest: +SKIP
    ...     for result in workers.imap_unordered(work, tasks):
    ...         ...
    """

    def __init__(self, count: int, preload: str | None = None):
        self.count = max(1, count)
        self.preload = preload
        self._pool = None
        self._threads = None

    def __enter__(self) -> Workers:
        if self.count == 1:
            self._threads = cv2.getNumThreads()
            cv2.setNumThreads(1)
        else:
            context = multiprocessing.get_context("forkserver")
            if self.preload:
                context.set_forkserver_preload([self.preload])
            self._pool = context.Pool(self.count, initializer=_init_worker)
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        if self._pool is not None:
            # A clean exit lets the workers finish and run their finalizers (killed ones can
            # leave semaphores the resource tracker reports as leaked at exit); an error or
            # Ctrl-C stops them at once.
            if exc_type is None:
                self._pool.close()
            else:
                self._pool.terminate()
            self._pool.join()
            self._pool = None
        if self._threads is not None:
            cv2.setNumThreads(self._threads)
            self._threads = None

    def imap_unordered(
        self, function: Callable[[Task], Result], tasks: Iterable[Task]
    ) -> Iterator[Result]:
        """Results of ``function(task)`` for every task, in completion order."""
        if self._pool is None:
            return map(function, tasks)
        return self._pool.imap_unordered(function, tasks, chunksize=1)
