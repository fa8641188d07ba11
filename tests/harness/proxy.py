"""A fault-injecting HTTP proxy in front of the real registry, and a recording "other host".

``FaultProxy`` forwards every request (method, path, query, headers, body) to the upstream
registry and streams the answer back, unless a rule says otherwise. Rules match on method
and a path regex, optionally only the first N times, and can: answer by themselves
(429/503 storms, WWW-Authenticate variants, HTML errors), override headers of the real
answer, replace or corrupt its body (the registry lying about a digest), drop the
connection after N bytes, delay, serve an endless body or endless pagination, or redirect
to another host. Location and Link headers from upstream are rewritten to the proxy so
uploads through the proxy keep going through it. Every request is recorded.

``Recorder`` is the same server without an upstream: "another host" that answers
configurable responses and records what reached it (to prove credentials never leak).

Everything is bounded: buffered bodies, endless bodies (bytes and seconds), upstream
timeouts and delays all stop, and ``stop()`` ends every in-flight loop.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlencode, urlsplit

from .recording import LoopbackServer, RecordedRequest, RecordingHandler

if TYPE_CHECKING:
    from .registry import Registry

Headers = list[tuple[str, str]]
HeaderSpec = Mapping[str, str] | Sequence[tuple[str, str]]
Transform = Callable[[int, Headers, bytes], tuple[int, Headers, bytes]]

# A response body the proxy reads whole (to corrupt, replace or transform it).
BUFFERED_BODY_CAP = 64 << 20
# Endless bodies stop at whichever comes first (plus when the client goes away).
ENDLESS_BYTES_CAP = 256 << 20
ENDLESS_SECONDS_CAP = 20.0
# A drip outlasts any test's hang guard, so a client without a total deadline fails it.
DRIP_SECONDS_CAP = 600.0
UPSTREAM_TIMEOUT = 30.0
MAX_DELAY = 60.0

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
}

TOO_MANY_REQUESTS_BODY = json.dumps(
    {"errors": [{"code": "TOOMANYREQUESTS", "message": "You have reached your pull rate limit."}]}
).encode()
UNAVAILABLE_BODY = json.dumps(
    {"errors": [{"code": "UNAVAILABLE", "message": "service unavailable"}]}
).encode()


def _header_list(spec: HeaderSpec | None) -> Headers:
    if spec is None:
        return []
    if isinstance(spec, Mapping):
        return [(str(k), str(v)) for k, v in spec.items()]
    return [(str(k), str(v)) for k, v in spec]


def _apply_headers(headers: Headers, override: Headers, remove: Sequence[str]) -> Headers:
    """Drop ``remove`` and every name in ``override``, then append ``override``.

    Several entries with one name in ``override`` all survive (two WWW-Authenticate).
    """
    drop = {n.lower() for n in remove} | {k.lower() for k, _ in override}
    return [(k, v) for k, v in headers if k.lower() not in drop] + list(override)


@dataclass
class FaultRule:
    """What to do with requests whose method and path match.

    ``method`` None matches any; ``path`` is a regex searched in the path; ``query`` a
    regex searched in the raw query string. ``times`` limits the rule to its first N
    matches; ``hits`` counts them. A delay combines with any action.
    """

    method: str | None = None
    path: str = ""
    query: str | None = None
    times: int | None = None
    delay: float = 0.0
    # Answer without asking upstream (status, headers, body).
    respond: bool = False
    status: int | None = None
    headers: Headers = field(default_factory=list)
    remove_headers: Sequence[str] = ()
    body: bytes | None = None
    content_type: str | None = None
    # Change the real answer.
    corrupt_at: int | None = None  # flip the byte at this offset (negative: from end)
    drop_after: int | None = None  # send headers and N body bytes, then cut the connection
    transform: Transform | None = None
    # Synthesised answers.
    endless: bool = False
    endless_chunk: bytes = b"0123456789abcdef" * 4096
    endless_interval: float = 0.0
    endless_content_length: int | None = None  # declare a length (a huge one) or none
    endless_pagination: str | None = None  # "relative", "absolute" or "same"
    redirect_to: str | None = None  # base URL; the request's path and query are appended
    redirect_keep_path: bool = True
    # One byte every ``drip_interval`` seconds, of the headers or (after whole headers
    # announcing a large Content-Length) of the body.
    drip_interval: float | None = None
    drip_body: bool = False
    hits: int = 0

    def matches(self, request: RecordedRequest) -> bool:
        if self.method is not None and self.method.upper() != request.method:
            return False
        if self.path and re.search(self.path, request.path) is None:
            return False
        if self.query is not None:
            raw_query = urlsplit(request.target).query
            if re.search(self.query, raw_query) is None:
                return False
        return self.times is None or self.hits < self.times


class _ProxyHandler(RecordingHandler):
    pass


class FaultProxy(LoopbackServer):
    """A recording, fault-injecting proxy on a free 127.0.0.1 port.

    ``upstream`` is a URL or a ``Registry`` (whose CA is then trusted); None makes a pure
    responder (see ``Recorder``). ``ssl_context`` serves the proxy itself over TLS.
    """

    handler_class = _ProxyHandler

    def __init__(
        self,
        upstream: str | Registry | None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        upstream_context: ssl.SSLContext | None = None,
        default_status: int = 200,
        default_headers: HeaderSpec | None = None,
        default_body: bytes = b"",
    ) -> None:
        super().__init__(ssl_context=ssl_context)
        if upstream is not None and not isinstance(upstream, str):
            upstream_context = upstream_context or (
                upstream.tls.client_context() if upstream.tls else None
            )
            upstream = upstream.url
        self.upstream = upstream.rstrip("/") if upstream else None
        self.upstream_context = upstream_context
        self.default_status = default_status
        self.default_headers = _header_list(default_headers)
        self.default_body = default_body
        self.rules: list[FaultRule] = []
        self._rules_lock = threading.Lock()

    # -- rules -------------------------------------------------------------------------
    def add_rule(self, rule: FaultRule) -> FaultRule:
        with self._rules_lock:
            self.rules.append(rule)
        return rule

    def clear_rules(self) -> None:
        with self._rules_lock:
            self.rules.clear()

    def _take_rule(self, request: RecordedRequest) -> FaultRule | None:
        with self._rules_lock:
            for rule in self.rules:
                if rule.matches(request):
                    rule.hits += 1
                    return rule
        return None

    def respond(
        self,
        method: str | None,
        path: str,
        status: int = 200,
        body: bytes | str = b"",
        headers: HeaderSpec | None = None,
        *,
        times: int | None = None,
        content_type: str | None = "application/json",
        delay: float = 0.0,
    ) -> FaultRule:
        """Answer matching requests with this response instead of the upstream's."""
        data = body.encode() if isinstance(body, str) else body
        return self.add_rule(
            FaultRule(
                method,
                path,
                times=times,
                respond=True,
                status=status,
                headers=_header_list(headers),
                body=data,
                content_type=content_type,
                delay=delay,
            )
        )

    def fail(
        self,
        method: str | None,
        path: str,
        status: int = 503,
        *,
        times: int | None = 1,
        retry_after: str | int | None = None,
        headers: HeaderSpec | None = None,
        body: bytes | None = None,
    ) -> FaultRule:
        """``status`` for the first ``times`` matches, then pass through (429/503 storms)."""
        extra = _header_list(headers)
        if retry_after is not None:
            extra.append(("Retry-After", str(retry_after)))
        if body is None:
            body = TOO_MANY_REQUESTS_BODY if status == 429 else UNAVAILABLE_BODY
        return self.respond(method, path, status, body, extra, times=times)

    def set_headers(
        self,
        method: str | None,
        path: str,
        headers: HeaderSpec,
        *,
        status: int | None = None,
        remove: Sequence[str] = (),
        times: int | None = None,
    ) -> FaultRule:
        """Forward, then add/override (and remove) headers of the real answer."""
        return self.add_rule(
            FaultRule(
                method,
                path,
                times=times,
                status=status,
                headers=_header_list(headers),
                remove_headers=tuple(remove),
            )
        )

    def replace_body(
        self,
        method: str | None,
        path: str,
        body: bytes,
        *,
        keep_length: bool = False,
        times: int | None = None,
    ) -> FaultRule:
        """Forward, then send ``body`` instead (Content-Length fixed unless keep_length)."""
        rule = FaultRule(method, path, times=times, body=body)
        if keep_length:
            rule.transform = lambda s, h, _b: (s, h, body)
            rule.body = None
        return self.add_rule(rule)

    def corrupt(
        self, method: str | None, path: str, *, offset: int = -2, times: int | None = None
    ) -> FaultRule:
        """Forward, flip one byte of the body, keep every header (digest now a lie)."""
        return self.add_rule(FaultRule(method, path, times=times, corrupt_at=offset))

    def drop_after(
        self, method: str | None, path: str, nbytes: int = 0, *, times: int | None = None
    ) -> FaultRule:
        """Forward, send the headers and ``nbytes`` of the body, then cut the connection."""
        return self.add_rule(FaultRule(method, path, times=times, drop_after=nbytes))

    def delay(
        self, method: str | None, path: str, seconds: float, *, times: int | None = None
    ) -> FaultRule:
        """Wait ``seconds`` (capped) before forwarding."""
        return self.add_rule(FaultRule(method, path, times=times, delay=seconds))

    def transform(
        self, method: str | None, path: str, fn: Transform, *, times: int | None = None
    ) -> FaultRule:
        """Forward, then ``fn(status, headers, body) -> (status, headers, body)``."""
        return self.add_rule(FaultRule(method, path, times=times, transform=fn))

    def endless_body(
        self,
        method: str | None,
        path: str,
        *,
        status: int = 200,
        headers: HeaderSpec | None = None,
        content_length: int | None = None,
        chunk: bytes | None = None,
        interval: float = 0.0,
        times: int | None = None,
    ) -> FaultRule:
        """A body that never ends (bounded by the harness caps); optionally a declared
        ``content_length`` and a pause of ``interval`` seconds between chunks (slow body).
        """
        rule = FaultRule(
            method,
            path,
            times=times,
            status=status,
            headers=_header_list(headers),
            endless=True,
            endless_interval=interval,
            endless_content_length=content_length,
        )
        if chunk is not None:
            rule.endless_chunk = chunk
        return self.add_rule(rule)

    def drip(
        self,
        method: str | None,
        path: str,
        *,
        interval: float = 0.5,
        body: bool = False,
        times: int | None = None,
    ) -> FaultRule:
        """Answer one byte every ``interval`` seconds, for up to ``DRIP_SECONDS_CAP``:
        the headers themselves (never finished), or with ``body`` whole headers and then
        the body. No read ever waits long, so only a total deadline ends the request.
        """
        return self.add_rule(
            FaultRule(method, path, times=times, drip_interval=interval, drip_body=body)
        )

    def endless_pagination(
        self, path: str = r"/tags/list$", *, link: str = "relative", times: int | None = None
    ) -> FaultRule:
        """Tag pages that always link to a next page: new URLs (``relative`` or
        ``absolute``) or the very same URL again (``same``).
        """
        if link not in ("relative", "absolute", "same"):
            raise ValueError("link must be relative, absolute or same")
        return self.add_rule(FaultRule("GET", path, times=times, endless_pagination=link))

    def redirect(
        self,
        method: str | None,
        path: str,
        to: str,
        *,
        status: int = 307,
        keep_path: bool = True,
        times: int | None = None,
    ) -> FaultRule:
        """Answer with ``status`` and ``Location: to + original path?query``."""
        return self.add_rule(
            FaultRule(
                method,
                path,
                times=times,
                status=status,
                redirect_to=to.rstrip("/"),
                redirect_keep_path=keep_path,
            )
        )

    # -- serving -----------------------------------------------------------------------
    def handle(self, handler: RecordingHandler, request: RecordedRequest) -> None:
        rule = self._take_rule(request)
        if rule is not None and rule.delay > 0:
            self.stopping.wait(min(rule.delay, MAX_DELAY))
        if rule is not None and rule.redirect_to is not None:
            target = rule.redirect_to + (request.target if rule.redirect_keep_path else "")
            handler.send_simple(rule.status or 307, b"", [("Location", target)])
            return
        if rule is not None and rule.endless_pagination is not None:
            self._paginate(handler, request, rule.endless_pagination)
            return
        if rule is not None and rule.endless:
            self._endless(handler, rule)
            return
        if rule is not None and rule.drip_interval is not None:
            self._drip(handler, rule.drip_interval, body=rule.drip_body)
            return
        if rule is not None and rule.respond:
            headers = list(rule.headers)
            if rule.content_type and not any(k.lower() == "content-type" for k, _ in headers):
                headers.append(("Content-Type", rule.content_type))
            handler.send_simple(rule.status or 200, rule.body or b"", headers, content_type=None)
            return
        if self.upstream is None:
            handler.send_simple(
                self.default_status, self.default_body, self.default_headers, content_type=None
            )
            return
        self._forward(handler, request, handler.request_body, rule)

    def _send_head(self, handler: RecordingHandler, status: int, headers: Headers) -> None:
        handler.send_response_only(status)
        for key, value in headers:
            handler.send_header(key, value)
        handler.send_header("Connection", "close")
        handler.end_headers()

    def _rewrite_url(self, value: str) -> str:
        assert self.upstream is not None
        return value.replace(self.upstream, self.url)

    def _upstream_connection(self) -> http.client.HTTPConnection:
        assert self.upstream is not None
        parts = urlsplit(self.upstream)
        if parts.scheme == "https":
            return http.client.HTTPSConnection(
                parts.netloc, timeout=UPSTREAM_TIMEOUT, context=self.upstream_context
            )
        return http.client.HTTPConnection(parts.netloc, timeout=UPSTREAM_TIMEOUT)

    def _forward(
        self,
        handler: RecordingHandler,
        request: RecordedRequest,
        body: bytes,
        rule: FaultRule | None,
    ) -> None:
        assert self.upstream is not None
        conn = self._upstream_connection()
        try:
            # putheader per entry: repeated headers (skopeo sends one Accept per media
            # type) must reach the registry as sent, not collapsed by a dict.
            conn.putrequest(
                request.method, request.target, skip_host=True, skip_accept_encoding=True
            )
            conn.putheader("Host", urlsplit(self.upstream).netloc)
            for key, value in request.headers:
                if key.lower() in HOP_BY_HOP or key.lower() in ("host", "content-length"):
                    continue
                conn.putheader(key, value)
            if body or request.method in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            response = conn.getresponse()
            out_headers: Headers = []
            for key, value in response.getheaders():
                if key.lower() in HOP_BY_HOP:
                    continue
                if key.lower() in ("location", "link", "content-location"):
                    value = self._rewrite_url(value)
                out_headers.append((key, value))
            status = response.status
            if rule is not None:
                out_headers = _apply_headers(out_headers, rule.headers, rule.remove_headers)
                status = rule.status or status
            no_body = request.method == "HEAD" or status in (204, 304) or 100 <= status < 200
            needs_body = rule is not None and (
                rule.body is not None or rule.corrupt_at is not None or rule.transform is not None
            )
            if no_body:
                self._send_head(handler, status, out_headers)
                return
            if rule is not None and rule.drop_after is not None:
                if not any(k.lower() == "content-length" for k, _ in out_headers):
                    # Declare the full length, so the cut is a detectable truncation.
                    data = response.read(BUFFERED_BODY_CAP)
                    out_headers.append(("Content-Length", str(len(data))))
                else:
                    data = response.read(rule.drop_after)
                self._send_head(handler, status, out_headers)
                handler.wfile.write(data[: rule.drop_after])
                handler.wfile.flush()
                with contextlib.suppress(OSError):
                    handler.connection.shutdown(socket.SHUT_RDWR)
                return
            if needs_body:
                assert rule is not None
                data = response.read(BUFFERED_BODY_CAP)
                if rule.body is not None:
                    data = rule.body
                if rule.body is not None or response.chunked:
                    out_headers = _apply_headers(
                        out_headers, [("Content-Length", str(len(data)))], ()
                    )
                if rule.corrupt_at is not None and data:
                    i = rule.corrupt_at % len(data)
                    data = data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]
                if rule.transform is not None:
                    status, out_headers, data = rule.transform(status, out_headers, data)
                self._send_head(handler, status, out_headers)
                handler.wfile.write(data)
                return
            # Stream, keeping upstream's framing: never hold a big blob in memory.
            chunked = bool(response.chunked)
            if chunked:
                out_headers.append(("Transfer-Encoding", "chunked"))
            self._send_head(handler, status, out_headers)
            while not self.stopping.is_set():
                chunk = response.read1(64 << 10) if chunked else response.read(64 << 10)
                if not chunk:
                    break
                if chunked:
                    handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                else:
                    handler.wfile.write(chunk)
            if chunked:
                handler.wfile.write(b"0\r\n\r\n")
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
                return
            message = json.dumps(
                {"errors": [{"code": "UNAVAILABLE", "message": f"proxy upstream error: {exc}"}]}
            ).encode()
            with contextlib.suppress(OSError):
                handler.send_simple(502, message)
        finally:
            conn.close()

    def _endless(self, handler: RecordingHandler, rule: FaultRule) -> None:
        headers = list(rule.headers)
        if rule.endless_content_length is not None:
            headers.append(("Content-Length", str(rule.endless_content_length)))
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("Content-Type", "application/octet-stream"))
        self._send_head(handler, rule.status or 200, headers)
        if handler.command == "HEAD":
            return
        sent = 0
        deadline = time.monotonic() + ENDLESS_SECONDS_CAP
        while (
            sent < ENDLESS_BYTES_CAP and time.monotonic() < deadline and not self.stopping.is_set()
        ):
            handler.wfile.write(rule.endless_chunk)
            sent += len(rule.endless_chunk)
            if rule.endless_interval:
                self.stopping.wait(rule.endless_interval)

    def _drip(self, handler: RecordingHandler, interval: float, *, body: bool) -> None:
        drops: Iterator[bytes]
        if body:
            handler.wfile.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000000\r\nConnection: close\r\n\r\n"
            )
            handler.wfile.flush()
            drops = itertools.repeat(b" ")
        else:
            head = b"HTTP/1.1 200 OK\r\nX-Drip: "
            drops = itertools.chain((bytes([c]) for c in head), itertools.repeat(b"a"))
        deadline = time.monotonic() + DRIP_SECONDS_CAP
        for drop in drops:
            if self.stopping.is_set() or time.monotonic() > deadline:
                return
            handler.wfile.write(drop)  # raises once the client has gone: ends the thread
            handler.wfile.flush()
            self.stopping.wait(interval)

    def _paginate(self, handler: RecordingHandler, request: RecordedRequest, link: str) -> None:
        last = request.param("last") or "page-000000"
        try:
            page = int(last.rsplit("-", 1)[1]) + 1
        except (IndexError, ValueError):
            page = 1
        repo = request.path.removeprefix("/v2/").removesuffix("/tags/list")
        tag = f"page-{page:06d}"
        body = json.dumps({"name": repo, "tags": [tag]}).encode()
        if link == "same":
            next_url = request.target
        else:
            query = {k: v[0] for k, v in parse_qs(urlsplit(request.target).query).items()}
            query.update({"n": query.get("n", "1"), "last": tag})
            next_url = f"{request.path}?{urlencode(query)}"
            if link == "absolute":
                next_url = self.url + next_url
        handler.send_simple(200, body, [("Link", f'<{next_url}>; rel="next"')])


class Recorder(FaultProxy):
    """'Another host': answers ``default_status/headers/body`` (or rules) and records.

    Use it as a redirect target, a token realm on a foreign host, a notifications
    endpoint, or a credential-helper's server, and assert on ``requests``.
    """

    def __init__(
        self,
        *,
        default_status: int = 200,
        default_headers: HeaderSpec | None = None,
        default_body: bytes = b"",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(
            None,
            ssl_context=ssl_context,
            default_status=default_status,
            default_headers=default_headers,
            default_body=default_body,
        )

    def authorization_headers(self) -> list[str]:
        """Every Authorization header that reached this host (should usually be none)."""
        return [r.authorization for r in self.log.all() if r.authorization]
