"""A fake image-search site on 127.0.0.1 for the downloader tests.

It serves result pages in the structure each engine's extractor reads (only as much of it as the
extractor needs), and the images they link to, with whatever misbehaviour a test asks for:
delays, error statuses, redirects, missing ``Content-Length``, failing the first requests.

Result pages (``/google/search``, ``/bing/images/search``, ``/ddg/``) show the foreground results
when the query string carries the engine's transparency filter and the background results
otherwise. They render ``INITIAL`` results, add ``PER_SCROLL`` more when scrolled to the bottom,
and (Google, Bing) then show a hidden "more results" button that adds all the rest; DuckDuckGo
has no button and keeps adding on scroll. Result thumbnails are never real resources, so every
request for an image path comes from the downloader.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

INITIAL = 4
PER_SCROLL = 4

# Query-string markers of each engine's foreground (transparency) filter.
TRANSPARENT_MARKERS = {
    "google": ("tbs", "ic:trans"),
    "bing": ("qft", "filterui:photo-transparent"),
    "ddg": ("iaf", "type:transparent"),
}
PAGES = {"/google/search": "google", "/bing/images/search": "bing", "/ddg/": "ddg"}


@dataclass
class Resource:
    """How the site answers one path.

    ``delay`` seconds pass before the answer; ``fail_first`` requests get HTTP 503 first;
    ``location`` makes it a redirect; ``send_length=False`` streams the body without a
    ``Content-Length`` and closes the connection; ``trickle`` sends the body one byte per
    that many seconds (after a correct ``Content-Length``).
    """

    body: bytes = b""
    status: int = 200
    content_type: str = "image/png"
    delay: float = 0.0
    location: str | None = None
    send_length: bool = True
    fail_first: int = 0
    trickle: float = 0.0


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # Clients that give up (timeouts, --max-bytes) reset their connections on purpose.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


@dataclass(frozen=True)
class Search:
    """One result-page request: engine, query, kind served, and the raw query string."""

    engine: str
    query: str
    kind: str
    raw_query: str


@dataclass
class LoopbackSite:
    """The site; use as a context manager, or call :meth:`start` and :meth:`stop`.

    Attributes
    ----------
    resources : dict
        Path -> :class:`Resource`.
    results : dict
        Kind -> list of image paths, in result-page order.
    hits : collections.Counter
        Requests per path (without query string).
    searches : list of Search
    broken_queries : set of str
        Queries whose result page answers HTTP 500.
    """

    resources: dict[str, Resource] = field(default_factory=dict)
    results: dict[str, list[str]] = field(
        default_factory=lambda: {"foreground": [], "background": []}
    )
    hits: Counter = field(default_factory=Counter)
    searches: list[Search] = field(default_factory=list)
    broken_queries: set[str] = field(default_factory=set)

    def __post_init__(self):
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def add(self, path: str, resource: Resource, kind: str | None = None) -> str:
        """Serve ``resource`` at ``path``; list it as a result of ``kind`` if given."""
        self.resources[path] = resource
        if kind:
            self.results[kind].append(path)
        return self.url(path)

    def image_hits(self) -> int:
        """Requests for images and thumbnails: the downloader's, never the browser's."""
        with self._lock:
            return sum(
                n
                for path, n in self.hits.items()
                if path in self.resources or path.startswith("/thumb/")
            )

    def reset_counts(self) -> None:
        with self._lock:
            self.hits.clear()
            self.searches.clear()

    def start(self) -> LoopbackSite:
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; with Nagle's algorithm on, the second
            # waits for the client's delayed ACK (40 ms on Linux loopback).
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_GET(self):
                parts = urlsplit(self.path)
                with site._lock:
                    site.hits[parts.path] += 1
                try:
                    if parts.path in PAGES:
                        self._page(PAGES[parts.path], parts.query)
                    else:
                        self._resource(parts.path)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _send(self, status, content_type, body, headers=()):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def _page(self, engine, raw_query):
                params = parse_qs(raw_query)
                key, marker = TRANSPARENT_MARKERS[engine]
                kind = "foreground" if marker in " ".join(params.get(key, [])) else "background"
                query = params.get("q", [""])[0]
                with site._lock:
                    site.searches.append(Search(engine, query, kind, raw_query))
                if query in site.broken_queries:
                    self._send(500, "text/html", b"<h1>server error</h1>")
                    return
                paths = site.results[kind]
                html = render_page(engine, [_result(site.base, path) for path in paths])
                self._send(200, "text/html; charset=utf-8", html.encode("utf-8"))

            def _resource(self, path):
                resource = site.resources.get(path)
                if resource is None:
                    self._send(404, "text/html", b"<h1>not found</h1>")
                    return
                with site._lock:
                    failing = site.hits[path] <= resource.fail_first
                if resource.delay:
                    time.sleep(resource.delay)
                if failing:
                    self._send(503, "text/html", b"<h1>busy</h1>")
                elif resource.trickle:
                    self.send_response(resource.status)
                    self.send_header("Content-Type", resource.content_type)
                    self.send_header("Content-Length", str(len(resource.body)))
                    self.end_headers()
                    for byte in resource.body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(resource.trickle)
                elif resource.location:
                    self._send(resource.status, "text/html", b"", [("Location", resource.location)])
                elif resource.send_length:
                    self._send(resource.status, resource.content_type, resource.body)
                else:
                    self.send_response(resource.status)
                    self.send_header("Content-Type", resource.content_type)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.close_connection = True
                    for start in range(0, len(resource.body), 16384):
                        self.wfile.write(resource.body[start : start + 16384])

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LoopbackSite:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _result(base: str, path: str) -> dict:
    return {
        "image": base + path,
        # Real engines' thumbnails live elsewhere (gstatic.com, mm.bing.net); a request for one
        # would show the downloader took a thumbnail over the full-size image.
        "thumb": base + "/thumb" + path,
        "page": base + "/page" + path,
    }


_TILE_JS = {
    # Appended tiles carry the /imgres anchor Google adds to a tile once it is interacted with.
    "google": """
function tile(r) {
  const div = document.createElement('div');
  div.className = 'isv-r tile';
  const a = document.createElement('a');
  a.href = '/imgres?imgurl=' + encodeURIComponent(r.image) +
           '&imgrefurl=' + encodeURIComponent(r.page);
  a.appendChild(document.createElement('img'));
  div.appendChild(a);
  return div;
}""",
    "bing": """
function tile(r) {
  const div = document.createElement('div');
  div.className = 'imgpt tile';
  const a = document.createElement('a');
  a.className = 'iusc';
  a.setAttribute('m', JSON.stringify({murl: r.image, purl: r.page, turl: r.thumb}));
  a.appendChild(document.createElement('img'));
  div.appendChild(a);
  return div;
}""",
    "ddg": """
function tile(r) {
  const div = document.createElement('div');
  div.className = 'tile tile--img has-detail';
  const img = document.createElement('img');
  img.className = 'tile--img__img';
  img.setAttribute('data-src', '/iu/?u=' + encodeURIComponent(r.thumb) + '&f=1');
  const a = document.createElement('a');
  a.className = 'tile--img__sub';
  a.href = r.page;
  a.textContent = 'source';
  div.appendChild(img);
  div.appendChild(a);
  // The detail pane fills in asynchronously, as on the real page.
  div.addEventListener('click', () => setTimeout(() => {
    document.querySelector('img.detail__media__img-highres').setAttribute(
      'src', '/iu/?u=' + encodeURIComponent(r.image) + '&f=1');
  }, 30));
  return div;
}""",
}

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{engine} results</title>
<style>.tile {{ height: 400px; border: 1px solid #888; }}</style></head>
<body>
{header}
<div id="results"></div>
{more}
{data}
<script>
const ALL = {results};
const INITIAL = {initial};
const PER_SCROLL = {per_scroll};
let scrollBatches = {scroll_batches};
let next = 0;
let busy = false;
const results = document.getElementById('results');
const more = document.getElementById('more');
{tile_js}
function append(count) {{
  for (let i = 0; i < count && next < ALL.length; i++) results.appendChild(tile(ALL[next++]));
}}
{initial_js}
window.addEventListener('scroll', () => {{
  if (busy || scrollBatches <= 0) return;
  if (window.innerHeight + window.scrollY < document.documentElement.scrollHeight - 100) return;
  busy = true;
  scrollBatches -= 1;
  setTimeout(() => {{
    append(PER_SCROLL);
    busy = false;
    if (scrollBatches <= 0 && more && next < ALL.length) more.style.display = 'inline-block';
  }}, 50);
}});
if (more) more.addEventListener('click', () => setTimeout(() => {{
  append(ALL.length);
  more.style.display = 'none';
}}, 50));
</script>
</body></html>
"""


def render_page(engine: str, results: list[dict]) -> str:
    """HTML of one result page listing ``results`` (dicts of image, thumb and page URLs)."""
    header, more, data = "", "", ""
    initial_js = "append(INITIAL);"
    if engine == "google":
        # Google's first results have no anchors; their full-size URLs are in the script data,
        # as ["url",height,width] triples next to gstatic thumbnails.
        triples = [["https://encrypted-tbn0.gstatic.com/images?q=tbn:ANd9Gc", 180, 180]]
        triples += [[r["image"], 600, 400] for r in results[:INITIAL]]
        payload = json.dumps({"key": "ds:1", "data": [None, triples]}, separators=(",", ":"))
        data = f"<script>AF_initDataCallback({payload});</script>"
        initial_js = (
            "for (; next < Math.min(INITIAL, ALL.length); next++) {"
            " const div = document.createElement('div'); div.className = 'isv-r tile';"
            " div.appendChild(document.createElement('img')); results.appendChild(div); }"
        )
        more = '<input id="more" class="mye4qd" type="button" value="Show more results"'
        more += ' style="display:none">'
    elif engine == "bing":
        more = '<a id="more" class="btn_seemore" href="javascript:void(0)" style="display:none">'
        more += "See more images</a>"
    else:
        header = '<div class="detail"><img class="detail__media__img-highres" src=""></div>'
    rest = max(len(results) - INITIAL, 0)
    # Google and Bing add one batch on scroll, then need the button; DuckDuckGo only scrolls.
    scroll_batches = 1 if more else -(-rest // PER_SCROLL)
    return _PAGE.format(
        engine=engine,
        header=header,
        more=more,
        data=data,
        results=json.dumps(results),
        initial=INITIAL,
        per_scroll=PER_SCROLL,
        scroll_batches=scroll_batches,
        tile_js=_TILE_JS[engine],
        initial_js=initial_js,
    )
