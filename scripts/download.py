"""Download foreground and background images for the matting dataset from an image search.

For every query, headless Chromium loads the engine's result page (with its transparency filter
for foregrounds and its large-image filter for backgrounds), scrolls and presses "more results"
until ``--per-query`` full-size image URLs are collected or the page stops growing. A pool of
workers downloads them while the next query is searched. A foreground is kept only if its alpha
channel is useful (not fully opaque, not a plain rectangle, some 0 < alpha < 1); a background
only if it is opaque and its shorter side is at least ``--min-background`` pixels. Output, as
``scripts/combine.py`` reads it::

    OUT/foreground/<sha256[:16]>.png        RGBA PNG
    OUT/background/<sha256[:16]>.jpg|.png   the JPEG bytes as served, other formats as RGB PNG
    OUT/manifest.jsonl                      one record per URL: kind, query, engine, page_url,
                                            url, file, sha256, bytes, width, height, status
                                            (kept/rejected/failed/duplicate), reason

A re-run resumes: URLs already in the manifest are not fetched again, and a query with
``--per-query`` records already is not searched again; ``--retry-failed`` fetches the URLs
whose last record failed once more, straight from the manifest. Chromium comes from Debian's
``chromium`` + ``chromium-driver`` packages, or from a Google Chrome that Selenium Manager finds.

Usage examples::

    python3 scripts/download.py                                  # built-in queries, Bing
    python3 scripts/download.py --engine google --per-query 100 --workers 16
    python3 scripts/download.py --only foreground --foreground-queries my_queries.txt
    python3 scripts/download.py --out /data/raw --min-background 1024 --max-bytes 30000000
    # a loopback copy of a result page (the engine's filter is still appended):
    python3 scripts/download.py --engine bing --search-url 'http://127.0.0.1:8000/s?q={query}'
    MATTING_SEARCH_URL='http://127.0.0.1:8000/s?q={query}' python3 scripts/download.py

A query file has one query per line; blank lines and lines starting with ``#`` are ignored.

A result page that fails before any has loaded (no network, a wrong ``--search-url``) stops the
run with one line; a later one is reported, its query skipped, and the exit status is 1 at the
end.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from model.cli import ArgumentParser, first_interrupt_only, non_negative_int, positive_int
from model.images import MAX_PIXELS
from scripts.engines import ENGINES, search_url
from scripts.engines.browser import BrowserError, SearchError, start_browser
from scripts.fetch import Downloader, Job
from scripts.transfer import Settings
from scripts.vetting import KINDS

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "scripts" / "raw"

# Foregrounds with the detail matting is about: hair, fur, foliage, and translucent materials.
DEFAULT_FOREGROUND_QUERIES = (
    # people
    "person portrait",
    "woman long hair",
    "man curly hair",
    "child smiling",
    "bride with veil",
    "dancer in motion",
    # animals with fur or feathers
    "cat",
    "dog fluffy fur",
    "fox",
    "rabbit",
    "lion mane",
    "bird feathers",
    # plants
    "potted plant",
    "fern leaves",
    "dandelion seed head",
    "tree",
    "bouquet of flowers",
    # glass and other translucent objects
    "wine glass",
    "glass bottle",
    "water splash",
    "smoke",
    "lace fabric",
    "jellyfish",
    "soap bubble",
)

DEFAULT_BACKGROUND_QUERIES = (
    # indoor
    "living room interior",
    "kitchen interior",
    "office interior",
    "library bookshelves",
    "cafe interior",
    # street
    "city street",
    "market street",
    "train station hall",
    "city at night lights",
    # nature
    "forest path",
    "beach",
    "mountain landscape",
    "flower meadow",
    "snowy landscape",
    "sky with clouds",
    # textures
    "brick wall texture",
    "wood grain texture",
    "fabric texture",
    "marble texture",
    "gravel texture",
)


class QueryFileError(ValueError):
    """A query file that cannot be used; ``str(error)`` is ``"<file>: <problem>"``."""


def read_queries(path: str) -> list[str]:
    """Queries from a text file: one per line, blank lines and ``#`` comments ignored."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise QueryFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise QueryFileError(f"{path}: cannot read ({error})") from None
    queries = [line.strip() for line in text.splitlines()]
    queries = [query for query in queries if query and not query.startswith("#")]
    if not queries:
        raise QueryFileError(f"{path}: no queries (one per line; # starts a comment)")
    return queries


def _seconds(text: str) -> float:
    """argparse type: a number of seconds >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {value}")
    return value


def _positive_seconds(text: str) -> float:
    """argparse type: a number of seconds > 0."""
    value = _seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be > 0, not 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="See the module docstring (scripts/download.py) for the output layout.",
    )

    search = parser.add_argument_group("search")
    search.add_argument(
        "--engine",
        choices=sorted(ENGINES),
        default="bing",
        help="image search engine (default: %(default)s)",
    )
    search.add_argument(
        "--foreground-queries",
        metavar="FILE",
        help="file of foreground queries, one per line (default: built-in list)",
    )
    search.add_argument(
        "--background-queries",
        metavar="FILE",
        help="file of background queries, one per line (default: built-in list)",
    )
    search.add_argument(
        "--only", choices=KINDS, help="search only for foregrounds or only for backgrounds"
    )
    search.add_argument(
        "--per-query",
        type=positive_int,
        default=50,
        metavar="N",
        help="image URLs to collect per query (default: %(default)s)",
    )
    search.add_argument(
        "--search-url",
        metavar="TEMPLATE",
        default=os.environ.get("MATTING_SEARCH_URL"),
        help="result-page URL template with a {query} placeholder, replacing the"
        " engine's; its filter is appended (default: $MATTING_SEARCH_URL)",
    )
    search.add_argument(
        "--delay",
        type=_seconds,
        default=1.0,
        metavar="SECONDS",
        help="pause between result pages, to be polite (default: %(default)s)",
    )
    search.add_argument(
        "--page-wait",
        type=_positive_seconds,
        default=2.0,
        metavar="SECONDS",
        help="how long a scrolled result page may take to grow before it counts"
        " as finished (default: %(default)s)",
    )
    search.add_argument(
        "--chromedriver",
        metavar="PATH",
        help="chromedriver to use (default: $MATTING_CHROMEDRIVER, then PATH,"
        " then Selenium Manager)",
    )
    search.add_argument(
        "--chromium",
        metavar="PATH",
        help="Chromium/Chrome binary (default: $MATTING_CHROMIUM, then PATH)",
    )

    filters = parser.add_argument_group("filters")
    filters.add_argument(
        "--min-background",
        type=positive_int,
        default=512,
        metavar="PX",
        help="smallest shorter side of a background (default: %(default)s)",
    )
    filters.add_argument(
        "--max-pixels",
        type=positive_int,
        default=MAX_PIXELS,
        metavar="N",
        help="refuse images with more pixels, before decoding (default: %(default)s)",
    )

    download = parser.add_argument_group("download")
    download.add_argument(
        "--workers",
        type=positive_int,
        default=8,
        help="concurrent downloads (default: %(default)s)",
    )
    download.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=20.0,
        metavar="SECONDS",
        help="seconds to wait to connect and for each read (default: %(default)s)",
    )
    download.add_argument(
        "--deadline",
        type=_positive_seconds,
        default=120.0,
        metavar="SECONDS",
        help="seconds one download may take in all, retries included; a server trickling"
        " its bytes fails after this (default: %(default)s)",
    )
    download.add_argument(
        "--retries",
        type=non_negative_int,
        default=3,
        help="retries on connection errors and HTTP 429/5xx, with"
        " exponential back-off (default: %(default)s)",
    )
    download.add_argument(
        "--max-bytes",
        type=positive_int,
        default=20_000_000,
        metavar="N",
        help="largest download accepted (default: %(default)s)",
    )
    download.add_argument(
        "--retry-failed",
        action="store_true",
        help="fetch again URLs that failed (network/HTTP errors) in a previous run",
    )

    output = parser.add_argument_group("output")
    output.add_argument(
        "--out",
        default=str(DEFAULT_OUT),
        metavar="DIR",
        help="raw folder for foreground/, background/ and manifest.jsonl (default: scripts/raw)",
    )
    output.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _plan(options, queries: dict[str, list[str]], records: list[dict]):
    """(kind, query, how many URLs are still wanted) for every query not yet complete."""
    done = Counter((r.get("kind"), r.get("engine"), r.get("query")) for r in records)
    plan = []
    for kind, kind_queries in queries.items():
        for query in kind_queries:
            missing = options.per_query - done[(kind, options.engine, query)]
            if missing > 0:
                plan.append((kind, query, missing))
    return plan


def _run(options, queries: dict[str, list[str]]) -> int:
    engine = ENGINES[options.engine]
    settings = Settings(
        timeout=options.timeout,
        deadline=options.deadline,
        retries=options.retries,
        max_bytes=options.max_bytes,
        max_pixels=options.max_pixels,
        min_background=options.min_background,
    )
    out = Path(options.out)
    searched = skipped = 0
    with Downloader(
        out,
        settings,
        workers=options.workers,
        retry_failed=options.retry_failed,
        progress=not options.quiet,
    ) as downloader:
        if options.retry_failed:
            downloader.resubmit_failed()
        plan = _plan(options, queries, downloader.records)
        if plan:
            with start_browser(
                chromedriver=options.chromedriver,
                chromium=options.chromium,
                # A result page is heavier than an image: give it at least half a minute.
                page_timeout=max(options.timeout, 30.0),
                page_wait=options.page_wait,
            ) as browser:
                downloader.user_agent = browser.user_agent
                for index, (kind, query, missing) in enumerate(plan):
                    if index and options.delay > 0:
                        time.sleep(options.delay)
                    url = search_url(engine, query, kind, options.search_url)
                    try:
                        hits = browser.collect(
                            engine, url, want=missing, exclude=downloader.known_urls
                        )
                    except SearchError as error:
                        # Before any page has loaded, a failure most likely means no network
                        # or a wrong --search-url: stop with that one line. After, one bad
                        # page should not cost the rest of a long run.
                        if searched == 0:
                            raise
                        tqdm.write(f"warning: {error}; query skipped", file=sys.stderr)
                        skipped += 1
                        continue
                    searched += 1
                    if not hits:
                        tqdm.write(f"warning: {url}: no new results", file=sys.stderr)
                    for hit in hits:
                        downloader.submit(Job(kind, hit.url, query, engine.NAME, hit.page_url, url))
        counts = downloader.wait()
    summary = ", ".join(f"{counts[s]} {s}" for s in ("kept", "rejected", "failed", "duplicate"))
    print(f"{out}: {summary}", file=sys.stderr)
    if skipped:
        print(
            f"error: {skipped} of {skipped + searched} searches failed (warnings above);"
            " run again to retry them",
            file=sys.stderr,
        )
        return 1
    return 0


def main(args: list[str] | None = None) -> int:
    """Run the downloader; return the exit status (0 done, 1 runtime failure, 2 bad input)."""
    options = build_parser().parse_args(args)
    # Retry and driver-discovery warnings would repeat what the manifest and the error say.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    logging.getLogger("selenium").setLevel(logging.CRITICAL)
    if options.search_url is not None and "{query}" not in options.search_url:
        print(
            f"error: {options.search_url}: search URL has no {{query}} placeholder", file=sys.stderr
        )
        return 2
    kinds = [options.only] if options.only else list(KINDS)
    files = {"foreground": options.foreground_queries, "background": options.background_queries}
    defaults = {"foreground": DEFAULT_FOREGROUND_QUERIES, "background": DEFAULT_BACKGROUND_QUERIES}
    try:
        queries = {
            kind: read_queries(files[kind]) if files[kind] else list(defaults[kind])
            for kind in kinds
        }
    except QueryFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        # A second Ctrl-C while the first one's cleanup runs (cancelled downloads, the pool's
        # connections closing) would interrupt that cleanup and print a traceback.
        with first_interrupt_only():
            return _run(options, queries)
    except (BrowserError, SearchError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"error: {error.filename or options.out}: {error.strerror or error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; run again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    status = main()
    # Only exit handlers run from here (the worker pool's, among them); another Ctrl-C would
    # turn the 130 of an interrupted run into a traceback and death by SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(status)
