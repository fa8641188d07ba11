"""Recorded HTTP requests and a small threaded loopback server to build test servers on.

The token issuer, the fault proxy and the recorder all record every request they see so
tests can assert on exactly what a client sent (one ``scope=`` per scope, no
``Authorization`` header when anonymous, no credentials sent to another host, ...).
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from re import Pattern
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .ports import LOOPBACK, wait_for

# Bodies above this size are counted but not kept: a test that uploads a big blob through
# the proxy must not make the harness hold it all in memory twice.
RECORDED_BODY_CAP = 1 << 20
# Request bodies the servers are willing to read at all (uploads through the proxy).
REQUEST_BODY_CAP = 256 << 20


@dataclass(frozen=True)
class RecordedRequest:
    """One request as a server received it."""

    method: str
    target: str  # the request target exactly as sent: path plus query
    path: str
    query: dict[str, list[str]]
    headers: tuple[tuple[str, str], ...]
    body: bytes
    body_size: int
    form: dict[str, list[str]]
    when: float = field(default_factory=time.time)

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        values = self.header_all(name)
        return values[0] if values else None

    def header_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for k, v in self.headers if k.lower() == lname]

    @property
    def authorization(self) -> str | None:
        return self.header("Authorization")

    def param(self, name: str) -> str | None:
        """The first query parameter ``name``, or None."""
        values = self.query.get(name)
        return values[0] if values else None

    def params(self, name: str) -> list[str]:
        return list(self.query.get(name, []))

    def form_value(self, name: str) -> str | None:
        values = self.form.get(name)
        return values[0] if values else None


class RequestLog:
    """A thread-safe list of recorded requests with small query helpers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[RecordedRequest] = []

    def append(self, request: RecordedRequest) -> None:
        with self._lock:
            self._items.append(request)

    def all(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._items)

    def __iter__(self) -> Iterator[RecordedRequest]:
        return iter(self.all())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def matching(
        self, method: str | None = None, path: str | Pattern[str] | None = None
    ) -> list[RecordedRequest]:
        """Requests whose method equals ``method`` and whose path matches regex ``path``."""
        import re

        rx = re.compile(path) if isinstance(path, str) else path
        return [
            r
            for r in self.all()
            if (method is None or r.method == method.upper())
            and (rx is None or rx.search(r.path) is not None)
        ]

    @property
    def last(self) -> RecordedRequest:
        items = self.all()
        if not items:
            raise LookupError("no request was recorded")
        return items[-1]

    def wait_for(
        self, predicate: Callable[[RecordedRequest], bool], *, timeout: float = 5.0
    ) -> RecordedRequest:
        """Wait (bounded) until a request satisfying ``predicate`` was recorded."""

        def probe() -> RecordedRequest | None:
            return next((r for r in self.all() if predicate(r)), None)

        return wait_for(probe, timeout=timeout, what="a matching request")


def _read_chunked(rfile: Any, cap: int) -> bytes:
    """Decode a chunked request body (httpx sends generator bodies this way)."""
    out = bytearray()
    while True:
        line = rfile.readline(1024)
        if not line:
            break
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            # Trailers end with an empty line.
            while rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                pass
            break
        if len(out) + size > cap:
            raise ValueError("request body over the harness cap")
        out += rfile.read(size)
        rfile.readline(1024)
    return bytes(out)


class RecordingHandler(BaseHTTPRequestHandler):
    """Reads a whole request, records it, and hands it to the owning server's ``handle``."""

    protocol_version = "HTTP/1.1"
    # A client that stops talking must not pin a handler thread for ever.
    timeout = 30
    server: _Server
    # The whole request body (the recorded copy may be truncated).
    request_body: bytes = b""

    def log_message(self, format: str, *args: Any) -> None:
        # Quiet: pytest shows our own assertions, not an access log.
        return

    def _record(self) -> tuple[RecordedRequest, bytes]:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = _read_chunked(self.rfile, REQUEST_BODY_CAP)
        else:
            length = int(self.headers.get("Content-Length") or 0)
            if length > REQUEST_BODY_CAP:
                raise ValueError("request body over the harness cap")
            body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        form: dict[str, list[str]] = {}
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("application/x-www-form-urlencoded"):
            form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        recorded = RecordedRequest(
            method=self.command,
            target=self.path,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers=tuple(self.headers.items()),
            body=body[:RECORDED_BODY_CAP],
            body_size=len(body),
            form=form,
        )
        return recorded, body

    def _dispatch(self) -> None:
        # One request per connection keeps framing trivial and makes "drop the
        # connection" faults unambiguous.
        self.close_connection = True
        try:
            request, self.request_body = self._record()
        except ValueError as exc:
            self.send_error(413, str(exc))
            return
        self.server.owner.log.append(request)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, TimeoutError):
            self.server.owner.handle(self, request)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _dispatch

    def send_simple(
        self,
        status: int,
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
        *,
        content_type: str | None = "application/json",
    ) -> None:
        """Send a complete response with a correct Content-Length (no body for HEAD)."""
        self.send_response(status)
        names = {k.lower() for k, _ in headers or []}
        if content_type and "content-type" not in names:
            self.send_header("Content-Type", content_type)
        for key, value in headers or []:
            if key.lower() != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: LoopbackServer
    ssl_context: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        # TLS handshakes happen here, in the per-connection thread, so a client that
        # connects and never speaks cannot stall the accept loop.
        if self.ssl_context is not None:
            request.settimeout(RecordingHandler.timeout)
            try:
                request = self.ssl_context.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                request.close()
                return
        super().finish_request(request, client_address)


class LoopbackServer:
    """Base of the harness's HTTP servers: a threaded server on a free 127.0.0.1 port.

    Subclasses implement ``handle(handler, request)``. Use as a context manager or call
    ``start()`` / ``stop()``; ``stop`` is idempotent and bounded.
    """

    handler_class: type[RecordingHandler] = RecordingHandler

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.log = RequestLog()
        self._ssl_context = ssl_context
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> LoopbackServer:
        if self._server is not None:
            return self
        self.stopping.clear()
        server = _Server((LOOPBACK, 0), self.handler_class)
        server.owner = self
        server.ssl_context = self._ssl_context
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, the way an image reference names it."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def scheme(self) -> str:
        return "https" if self._ssl_context is not None else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.log.all()

    def handle(self, handler: RecordingHandler, request: RecordedRequest) -> None:
        raise NotImplementedError
