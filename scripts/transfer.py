"""One image URL into memory, for ``scripts/fetch.py``: the session, its retries, and the caps.

A per-thread ``requests`` session (:func:`make_session`) with connect/read timeouts, retries with
exponential back-off on connection errors and HTTP 429/5xx (urllib3 ``Retry``), and at most five
redirects; :func:`fetch` adds a size cap (a ``Content-Length`` over the cap is refused before the
body is read, and a streamed body is abandoned as soon as it passes the cap) and a total
``deadline``: a server trickling its body a byte at a time never times out a single read, so
the body is read as it arrives and abandoned once the deadline has passed. Every failure is a
:class:`Refused` carrying the manifest status and reason.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError
from urllib3.util.retry import Retry

from model.images import MAX_PIXELS

RETRY_STATUSES = (429, 500, 502, 503, 504)
MAX_REDIRECTS = 5
CHUNK_BYTES = 64 * 1024
DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/124.0 Safari/537.36"
)


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
