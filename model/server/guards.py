"""The HTTP guards of serve.py's app: Host/Origin checks, body caps, admission, binding.

``Guard`` is ASGI middleware that refuses a request with a foreign Host (DNS rebinding) or a
cross-site Origin (403), or a body over its cap (413), and adds the security headers; ``Gate``
lets at most ``workers + max_queue`` requests in (503 beyond). ``ApiError`` is how every part
of the API refuses a request: it becomes ``{"error": message}`` with its status.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket

from fastapi.responses import JSONResponse

MB = 1024 * 1024

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
"""Host names a loopback (or all-interfaces) server answers to without ``--allowed-host``."""

# Same-origin only: the page must work offline, and a stray CDN reference fails loudly in tests.
_SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' blob: data:; connect-src 'self' blob:;"
        b" style-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class ApiError(Exception):
    """A request the API refuses; becomes ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class BodyTooLarge(Exception):
    """Raised from inside the request stream when the body passes the limit."""


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def megabytes(size: float) -> str:
    return f"{size / MB:.3g} MB"


def _split_host(host: str) -> tuple[str, int | None]:
    """``"name:port"`` (IPv6 in brackets) -> (lowercase name, port or None); port -1 if bad."""
    name, colon, port = host.rpartition(":")
    if not colon or name.endswith(":") or (host.startswith("[") and not name.endswith("]")):
        return host.lower(), None  # no port, or a bare IPv6 address
    return name.lower(), int(port) if port.isdigit() else -1


def _refusal(headers: dict[bytes, bytes], allowed_hosts, server_port: int | None, method: str):
    """Why to refuse a request by its Host or Origin header (403), or None.

    Host: a web page can point its own domain name at 127.0.0.1 (DNS rebinding) and then read
    this server as same-origin; its requests still carry that name in Host. Origin: a page on
    another site can post a form here; the browser says which site in Origin.
    """
    host = headers.get(b"host", b"").decode("latin-1")
    if allowed_hosts is not None and "*" not in allowed_hosts:
        name, port = _split_host(host)
        if name not in allowed_hosts or port not in (None, server_port):
            return (
                f"request: Host {host[:100]!r} is not this server's; start it with"
                f" --allowed-host {name[:100]} to answer to that name"
            )
    origin = headers.get(b"origin")
    if method not in ("GET", "HEAD") and origin is not None:
        origin_text = origin.decode("latin-1")
        if origin_text != f"http://{host}":
            return f"request: cross-origin {method} from {origin_text[:100]!r} refused"
    return None


class Guard:
    """ASGI middleware: Host/Origin checks, security headers, and a cap on request bodies.

    A request with a Host other than ``allowed_hosts`` (None: any), or a non-GET request whose
    Origin is another site, gets 403 before anything is read. A declared ``Content-Length``
    over the cap is refused before anything is read; a body without one (chunked) is counted
    as it streams and stopped at the cap, so neither memory nor the spool on disk can grow
    beyond it.
    """

    def __init__(
        self,
        app,
        max_body: int,
        allowed_hosts: frozenset[str] | None = None,
        path_limits: dict[str, int] | None = None,
    ):
        self.app = app
        self.max_body = max_body
        self.allowed_hosts = allowed_hosts
        # Paths whose bodies have their own cap (a clip upload is larger than three images).
        self.path_limits = path_limits or {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *_SECURITY_HEADERS]}
            await send(message)

        headers = dict(scope["headers"])
        server_port = (scope.get("server") or (None, None))[1]
        problem = _refusal(headers, self.allowed_hosts, server_port, scope["method"])
        if problem:
            await error_response(403, problem)(scope, receive, send_with_headers)
            return

        max_body = self.path_limits.get(scope["path"], self.max_body)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            response = error_response(
                413,
                f"request: body is {megabytes(int(declared))}; the limit is"
                f" {megabytes(max_body)} for all uploads together",
            )
            await response(scope, receive, send_with_headers)
            return

        received = 0

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_body:
                    raise BodyTooLarge
            return message

        await self.app(scope, counting_receive, send_with_headers)


class Gate:
    """Admission control: at most ``workers + max_queue`` requests inside at once.

    Only touched from the event loop, so a plain counter is race-free.
    """

    def __init__(self, workers: int, max_queue: int):
        self.workers = workers
        self.max_queue = max_queue
        self.admitted = 0

    @property
    def capacity(self) -> int:
        return self.workers + self.max_queue

    @contextlib.contextmanager
    def enter(self):
        if self.admitted >= self.capacity:
            raise ApiError(
                503,
                f"server busy: {self.admitted} requests are running or waiting (limit"
                f" {self.capacity}: {self.workers} at a time, {self.max_queue} queued);"
                " try again shortly",
                headers={"Retry-After": "1"},
            )
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allowed_host_names(host: str, extra: list[str]) -> set[str]:
    """Host names the server answers to: loopback names, the bound address, and ``extra``."""
    names = {name.lower() for name in extra} | set(LOOPBACK_HOSTS)
    if host not in ("0.0.0.0", "::", ""):
        names.add(f"[{host}]".lower() if ":" in host else host.lower())
    return names


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    return sock
