"""Headless Chromium for the image-search engines: start it, load a result page, collect URLs.

Chromium is found in this order: ``chromedriver`` given explicitly (``--chromedriver`` or the
``MATTING_CHROMEDRIVER`` environment variable), a ``chromedriver`` on ``PATH`` (Debian's
``chromium-driver`` installs ``/usr/bin/chromedriver`` for ``/usr/bin/chromium``), and last
Selenium Manager, which finds a Google Chrome installed elsewhere. Every session gets a fresh
temporary profile, removed when the browser closes.

Usage::

    with start_browser() as browser:
        hits = browser.collect(engines.ENGINES["bing"], url, want=50)
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from types import ModuleType
from urllib.parse import urljoin, urlsplit

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service

from model.errors import first_line

INSTALL_HINT = (
    "install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
    " or Google Chrome"
)

# Without the background-networking flags Chromium's own update, sync and metrics traffic
# competes for connections, and on restricted networks many page loads are refused.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1366,1000",
)

_STATE_JS = """
const navigation = performance.getEntriesByType('navigation')[0] || {};
return [document.documentURI, navigation.responseStatus || 0,
        document.body ? document.body.innerText.slice(0, 2000) : ''];
"""

_SIZE_JS = """
return [document.documentElement.scrollHeight, document.getElementsByTagName('*').length];
"""

_SCROLL_JS = "window.scrollTo(0, document.documentElement.scrollHeight);"

# Clicks the first visible element matching a selector; failing that, a button whose label says
# "more results" / "more images", which survives class-name churn on the result pages.
_CLICK_JS = """
const selectors = arguments[0];
const fallback = arguments[1];
const visible = (el) => el.getClientRects().length > 0 && !el.disabled;
for (const selector of selectors) {
  for (const el of document.querySelectorAll(selector)) {
    if (visible(el)) { el.click(); return true; }
  }
}
if (!fallback) return false;
const label = /^(show |see |load )?more (results|images)$/i;
for (const el of document.querySelectorAll('button, input[type=button], input[type=submit]')) {
  if (visible(el) && label.test((el.innerText || el.value || '').trim())) {
    el.click(); return true;
  }
}
return false;
"""

# Chromium's network error codes, as its error page and chromedriver spell them.
_NET_ERROR = re.compile(r"\bERR_[A-Z_]+\b")

# Rounds of scrolling that may add page content but no new results before giving up.
_BARREN_ROUNDS = 3
_POLL_SECONDS = 0.1


class BrowserError(RuntimeError):
    """Chromium could not be started; the message is one line saying what to install."""


class SearchError(RuntimeError):
    """A result page could not be loaded; ``str(error)`` is ``"<url>: <problem>"``."""

    def __init__(self, url: str, problem: str):
        self.url = url
        self.problem = problem
        super().__init__(f"{url}: {problem}")


@dataclass(frozen=True)
class Hit:
    """One search result.

    Attributes
    ----------
    url : str
        The image to download: the full-size image when the page exposes it, else the thumbnail.
    page_url : str or None
        The page showing the image, when the engine says.
    full_size : bool
        False when only a thumbnail was found.
    """

    url: str
    page_url: str | None
    full_size: bool


def _service_and_binary(chromedriver: str | None, chromium: str | None) -> tuple[Service, str]:
    """The chromedriver service and Chromium binary to use; an empty binary lets driver choose."""
    driver_path = chromedriver or os.environ.get("MATTING_CHROMEDRIVER")
    binary = chromium or os.environ.get("MATTING_CHROMIUM") or ""
    if driver_path:
        if not os.path.isfile(driver_path) or not os.access(driver_path, os.X_OK):
            raise BrowserError(
                f"cannot start Chromium: {driver_path}: no such chromedriver; {INSTALL_HINT}"
            )
    else:
        driver_path = shutil.which("chromedriver") or ""
    if driver_path and not binary:
        binary = shutil.which("chromium") or shutil.which("chromium-browser") or ""
    # An empty executable path makes Selenium ask Selenium Manager for a driver.
    return Service(executable_path=driver_path or None, log_output=subprocess.DEVNULL), binary


class Browser:
    """A running headless Chromium; use :func:`start_browser` to make one.

    Parameters
    ----------
    driver : selenium.webdriver.Chrome
    profile_dir : str
        Temporary ``--user-data-dir``, deleted by :meth:`close`.
    page_wait : float
        Seconds to wait for a scrolled page to grow before deciding it has no more results.
    """

    def __init__(self, driver: webdriver.Chrome, profile_dir: str, page_wait: float):
        self.driver = driver
        self.profile_dir = profile_dir
        self.page_wait = page_wait
        # Sites that refuse "HeadlessChrome" serve a normal browser; downloads reuse this string.
        agent = driver.execute_script("return navigator.userAgent")
        self.user_agent = agent.replace("HeadlessChrome", "Chrome")
        driver.execute_cdp_cmd("Network.setUserAgentOverride", {"userAgent": self.user_agent})

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Quit Chromium and delete its temporary profile."""
        with contextlib.suppress(WebDriverException):
            self.driver.quit()
        shutil.rmtree(self.profile_dir, ignore_errors=True)

    def load(self, url: str) -> None:
        """Open ``url``; raise :class:`SearchError` if it cannot be reached or is an HTTP error."""
        try:
            self.driver.get(url)
            uri, status, text = self.driver.execute_script(_STATE_JS)
        except TimeoutException:
            raise SearchError(url, "search page timed out") from None
        except WebDriverException as error:
            code = _NET_ERROR.search(str(error))
            detail = code.group(0) if code else first_line(error)[:160]
            raise SearchError(url, f"search page unreachable ({detail})") from None
        if uri.startswith("chrome-error:"):
            code = _NET_ERROR.search(text)
            detail = f" ({code.group(0)})" if code else ""
            raise SearchError(url, f"search page unreachable{detail}")
        if status >= 400:
            raise SearchError(url, f"search page returned HTTP {status}")

    def _size(self) -> tuple[int, int]:
        height, elements = self.driver.execute_script(_SIZE_JS)
        return int(height), int(elements)

    def _grows(self, before: tuple[int, int]) -> bool:
        """Wait up to ``page_wait`` seconds for the page height or element count to change."""
        deadline = time.monotonic() + self.page_wait
        while True:
            if self._size() != before:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_SECONDS)

    def _extract(self, engine: ModuleType, budget: int, base: str) -> list[Hit]:
        hits = []
        for item in self.driver.execute_async_script(engine.EXTRACT_JS, budget) or []:
            image, thumb = item.get("image"), item.get("thumb")
            url = urljoin(base, image or thumb or "")
            if urlsplit(url).scheme not in ("http", "https"):
                continue
            page = item.get("page")
            hits.append(Hit(url, urljoin(base, page) if page else None, bool(image)))
        return hits

    def collect(
        self, engine: ModuleType, url: str, *, want: int, exclude: frozenset[str] = frozenset()
    ) -> list[Hit]:
        """Load a result page and gather up to ``want`` new image URLs from it.

        Scrolls to the bottom and presses the engine's "more results" button until ``want``
        results not in ``exclude`` are found or the page stops growing.

        Parameters
        ----------
        engine : module
            One of :data:`scripts.engines.ENGINES`.
        url : str
            The result page, from :func:`scripts.engines.search_url`.
        want : int
            How many new results to return at most.
        exclude : frozenset of str
            Image URLs to skip (already downloaded or queued); they do not count towards
            ``want``.

        Returns
        -------
        list of Hit
            In page order, without duplicates; full-size URLs where the page has them.

        Raises
        ------
        SearchError
            The page cannot be loaded.
        """
        self.load(url)
        if engine.CONSENT_BUTTONS and self.driver.execute_script(
            _CLICK_JS, list(engine.CONSENT_BUTTONS), False
        ):
            self.load(url)
        found: dict[str, Hit] = {}
        seen: set[str] = set()
        barren = 0
        try:
            while len(found) < want:
                count = len(seen)
                for hit in self._extract(engine, want - len(found), url):
                    seen.add(hit.url)
                    if hit.url not in exclude and hit.url not in found:
                        found[hit.url] = hit
                if len(found) >= want:
                    break
                if len(seen) > count:
                    barren = 0
                    # The extractor may stop early (DuckDuckGo clicks a few tiles per call).
                    continue
                barren += 1
                before = self._size()
                self.driver.execute_script(_SCROLL_JS)
                self.driver.execute_script(_CLICK_JS, list(engine.MORE_BUTTONS), True)
                if barren > _BARREN_ROUNDS or not self._grows(before):
                    break
        except TimeoutException:
            raise SearchError(url, "result page stopped responding") from None
        except WebDriverException as error:
            raise SearchError(url, f"browser failed ({first_line(error)[:160]})") from None
        return list(found.values())[:want]


def start_browser(
    *,
    chromedriver: str | None = None,
    chromium: str | None = None,
    page_timeout: float = 30.0,
    page_wait: float = 2.0,
) -> Browser:
    """Start headless Chromium with a fresh temporary profile.

    Parameters
    ----------
    chromedriver : str, optional
        Path of ``chromedriver``; default ``$MATTING_CHROMEDRIVER``, then ``PATH``, then
        Selenium Manager.
    chromium : str, optional
        Path of the Chromium/Chrome binary; default ``$MATTING_CHROMIUM``, then ``chromium`` on
        ``PATH`` when a ``chromedriver`` was found, else whatever the driver finds.
    page_timeout : float
        Seconds a result page may take to load.
    page_wait : float
        Seconds to wait for a scrolled page to grow; see :class:`Browser`.

    Raises
    ------
    BrowserError
        Chromium or chromedriver is missing or does not start; the message says what to install.
    """
    service, binary = _service_and_binary(chromedriver, chromium)
    options = webdriver.ChromeOptions()
    if binary:
        options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile_dir = tempfile.mkdtemp(prefix="matting-chromium-")
    options.add_argument(f"--user-data-dir={profile_dir}")
    try:
        driver = webdriver.Chrome(service=service, options=options)
    except (WebDriverException, OSError) as error:
        shutil.rmtree(profile_dir, ignore_errors=True)
        raise BrowserError(
            f"cannot start Chromium ({first_line(error)[:160]}); {INSTALL_HINT}"
        ) from None
    try:
        driver.set_page_load_timeout(page_timeout)
        driver.set_script_timeout(max(page_timeout, 60.0))
        return Browser(driver, profile_dir, page_wait)
    except WebDriverException as error:
        driver.quit()
        shutil.rmtree(profile_dir, ignore_errors=True)
        raise BrowserError(
            f"cannot start Chromium ({first_line(error)[:160]}); {INSTALL_HINT}"
        ) from None
