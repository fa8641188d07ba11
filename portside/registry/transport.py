"""Sending requests to registries: schemes, TLS, retries, redirects, byte caps, errors.

The layer under ``auth``: it knows nothing about tokens, only that an ``Authorization``
header belongs to one origin and is dropped the moment a redirect leaves it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import logging
import os
import random
import re
import ssl
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import httpx

from portside import errors, jsonscan
from portside.redact import redact_text, redact_url
from portside.reference import is_loopback_host
from portside.registry import netstreams
from portside.registry.ratelimit import RateLimit, classify_429, parse_rate_limit, parse_retry_after

log = logging.getLogger("portside.registry")

T = TypeVar("T")

KiB = 1024
MiB = 1024 * KiB
ERROR_BODY_LIMIT = 64 * KiB
MAX_REDIRECTS = 10
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})
# Methods whose request may be sent again after the answer broke off mid-body.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
# RFC 7234 warning: ``299 <agent> "<text>" ["<date>"]``.
_WARNING_299 = re.compile(r'^\s*299\s+\S+\s+"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class ClientOptions:
    """How the client talks to registries; every field has a safe default."""

    # Hosts (``host[:port]``) that may be reached over plain HTTP or unverified TLS.
    insecure: frozenset[str] = frozenset()
    # Extra CA bundle (PEM) trusted on top of the system's.
    ca_file: str | None = None
    # Each request, whole (connect, headers, body, the HTTP/HTTPS probe too), at most
    # this long: a server dripping a byte at a time never trips a per-read timeout.
    timeout: float = 30.0
    connect_timeout: float = 10.0
    # All of this client's requests, retries, backoff and Retry-After waits together,
    # counted from the client's creation; None for a long-lived client (the language
    # server), whose calls are each bounded by ``timeout`` and ``max_retries``.
    deadline: float | None = None
    max_retries: int = 4
    backoff_base: float = 0.5
    backoff_cap: float = 10.0
    retry_after_cap: float = 60.0
    max_manifest_bytes: int = 4 * MiB
    max_config_bytes: int = 8 * MiB
    max_token_bytes: int = 1 * MiB
    max_pages: int = 1000
    user_agent: str = "portside/0.1"


class _BodyBroken(errors.RegistryUnreachable):
    """The connection broke (or the total deadline passed) while a body was read."""


class _Retry(Exception):
    """Internal: this attempt should be repeated after ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__(delay)
        self.delay = delay


@dataclass
class Response:
    """A finished response whose body was read under a cap (or left open to stream)."""

    status: int
    headers: httpx.Headers
    url: httpx.URL
    content: bytes = b""
    stream: httpx.Response | None = field(default=None, repr=False)

    async def aclose(self) -> None:
        if self.stream is not None:
            await self.stream.aclose()


def _scrub_echo(body: bytes, headers: Mapping[str, str] | None) -> bytes:
    """An error body with the credentials we sent masked: a registry or proxy that
    echoes the ``Authorization`` header must not put them into an error message."""
    value = next((v for k, v in (headers or {}).items() if k.lower() == "authorization"), "")
    scheme, _, credentials = value.strip().partition(" ")
    credentials = credentials.strip()
    if not body or not credentials:
        return body
    secrets = [credentials]
    if scheme.lower() == "basic":
        try:
            _user, _, password = base64.b64decode(credentials).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            password = ""
        secrets.append(password)
    text = body.decode("utf-8", "replace")
    scrubbed = redact_text(text, secrets)
    return body if scrubbed == text else scrubbed.encode()


def origin(url: httpx.URL) -> tuple[str, str, int | None]:
    port = url.port or (443 if url.scheme == "https" else 80)
    return url.scheme, url.host, port


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:169.254.169.254 is 169.254.169.254
    return ip


def _zone(host: str) -> str:
    """``public``, ``loopback``, ``private`` or ``never`` (link-local, unspecified,
    multicast, reserved: cloud metadata endpoints and addresses no registry uses).
    Names other than ``localhost`` are not resolved: they count as public.
    """
    if host.lower().rstrip(".") in ("localhost", "localhost.localdomain"):
        return "loopback"
    ip = _ip(host)
    if ip is None:
        return "public"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local or ip.is_unspecified or ip.is_multicast or ip.is_reserved:
        return "never"
    if ip.is_private:
        return "private"
    return "public"


def check_destination(target: httpx.URL, registry: httpx.URL, *, what: str) -> None:
    """Where a registry may send us (token realm, redirect hop).

    Only http(s); never from HTTPS down to HTTP. An IP literal inside this machine or
    network is allowed only as the registry's own origin, or when the registry itself is
    as close: a loopback registry may name loopback addresses, a private-network one
    private (or loopback-free) addresses of that network. Link-local, unspecified,
    multicast and reserved addresses (``169.254.169.254``, the cloud metadata endpoint)
    are never followed except to the registry's own origin. A registry on the internet
    must not steer us inside.
    """
    where = registry.netloc.decode()
    if target.scheme not in ("http", "https"):
        raise errors.UnsafeResponse(
            f"{what} uses the scheme {target.scheme!r}; only http and https are followed",
            registry=where,
        )
    if registry.scheme == "https" and target.scheme == "http":
        raise errors.UnsafeResponse(
            f"{what} leads from HTTPS to plain HTTP ({redact_url(str(target))}); refused",
            registry=where,
        )
    zone = _zone(target.host)
    if zone == "public" or origin(target) == origin(registry):
        return
    own = _zone(registry.host)
    allowed = (zone == "loopback" and own == "loopback") or (
        zone == "private" and own in ("private", "loopback")
    )
    if not allowed:
        raise errors.UnsafeResponse(
            f"{what} points into a {'link-local or reserved' if zone == 'never' else zone} "
            f"address ({target.host}); refused",
            registry=where,
            hint="a registry may not send clients to internal addresses it does not own",
        )


def describe_error_body(headers: httpx.Headers, body: bytes) -> tuple[str, list[str]]:
    """A short human text and the spec error codes from an error response body."""
    text = body[:ERROR_BODY_LIMIT]
    ctype = headers.get("content-type", "")
    if "json" in ctype or text.lstrip().startswith(b"{"):
        try:
            doc = jsonscan.loads(text)
        except ValueError:  # not JSON, or nested too deeply to be an honest error body
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("errors"), list):
            codes: list[str] = []
            messages: list[str] = []
            for item in doc["errors"][:20]:
                if not isinstance(item, dict):
                    continue
                code = _printable(str(item.get("code", "")).upper()[:64])
                message = _printable(str(item.get("message", ""))[:200])
                if code:
                    codes.append(code)
                messages.append(f"{code}: {message}" if code else message)
            return "; ".join(m for m in messages if m), codes
    if "html" in ctype or text.lstrip()[:15].lower().startswith((b"<!doctype", b"<html")):
        return "the server answered with an HTML page (a proxy or login portal in the way?)", []
    snippet = text[:200].decode("utf-8", "replace").strip()
    return _printable(snippet), []


def _printable(text: str) -> str:
    """A registry's text for one line of an error: line breaks and controls are spaces."""
    return "".join(ch if ch.isprintable() else " " for ch in text)


_contexts: dict[tuple[object, ...], ssl.SSLContext] = {}


def verifying_context(ca_file: str | None) -> ssl.SSLContext:
    """A verifying SSL context: the system CA store plus ``ca_file``, made once per
    process for each ``ca_file`` (loading the store costs 20-30 ms; a context is safe to
    share between clients). OpenSSL reads ``SSL_CERT_FILE``/``SSL_CERT_DIR`` when the
    store is loaded, so they are part of the key; so is ``ca_file``'s modification
    time, so that an edited bundle is read again."""
    try:
        stamp = os.stat(ca_file).st_mtime_ns if ca_file else None
    except OSError:
        stamp = None  # load_verify_locations reports it
    key = (ca_file, stamp, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    context = _contexts.get(key)
    if context is None:
        context = ssl.create_default_context()
        if ca_file:
            context.load_verify_locations(ca_file)
        _contexts[key] = context
    return context


class _NoCookies(httpx.Cookies):
    """A jar that never fills: see :class:`_RegistryHTTPClient`."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _RegistryHTTPClient(httpx.AsyncClient):
    """httpx's client keeping no cookies, as docker's, containerd's and skopeo's registry
    clients keep none: a registry's ``Set-Cookie`` is never sent back, and no response
    is parsed for one (a tenth of a HEAD's CPU, measured on a watch round)."""

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        raise TypeError("a registry client keeps no cookies")


_NO_COOKIES = _NoCookies()


class Transport:
    """One httpx client per TLS mode; per-host scheme, backoff gate and quota state."""

    def __init__(
        self, options: ClientOptions, *, http_transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.options = options
        self._http_transport = http_transport
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._schemes: dict[str, str] = {}
        self._base_urls: dict[str, httpx.URL] = {}  # made once: parsing one costs ~20 µs
        self._probe_locks: dict[str, asyncio.Lock] = {}
        self._not_before: dict[str, float] = {}
        self._paused: dict[str, errors.RateLimited] = {}
        self._paused_until: dict[str, float] = {}
        self._rate_limits: dict[str, RateLimit] = {}
        self._warned: set[str] = set()
        self.warnings: list[str] = []
        self._deadline_at = (
            time.monotonic() + options.deadline if options.deadline is not None else None
        )

    # -- setup -----------------------------------------------------------------------

    def _kind(self, url: httpx.URL) -> str:
        """Which client sends to ``url``: ``http``, ``https`` or ``https-unverified``."""
        if url.scheme != "https":
            return "http"
        return "https-unverified" if self.is_insecure(url.netloc.decode()) else "https"

    def _client(self, kind: str) -> httpx.AsyncClient:
        """The client for one kind of connection (see :meth:`_kind`), made on first use.

        Each kind has its own SSL context, made here and only here, when the first
        request of that kind is sent: a verifying context loads the system CA store
        (20-30 ms), which a plain-HTTP registry on loopback never needs.

        - ``https``: verified against the system CAs plus ``ca_file``
          (:func:`verifying_context`).
        - ``https-unverified``: TLS without verification, for ``--insecure-registry``
          hosts only.
        - ``http``: plain HTTP. httpx wants a context even so; it gets a bare one that
          trusts no CA at all, so that should an ``https`` URL ever reach this client
          its handshake fails instead of going unverified.
        """
        client = self._clients.get(kind)
        if client is None:
            ssl_context: ssl.SSLContext | bool
            if kind == "https":
                ssl_context = verifying_context(self.options.ca_file)
            elif kind == "https-unverified":
                ssl_context = False
            elif kind == "http":
                # PROTOCOL_TLS_CLIENT verifies by default; with no CA loaded, nothing passes.
                ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            else:  # pragma: no cover - a programming error
                raise ValueError(f"unknown client kind {kind!r}")
            timeout = httpx.Timeout(self.options.timeout, connect=self.options.connect_timeout)
            limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
            transport = self._http_transport
            if transport is None and sys.version_info >= (3, 11):
                transport = netstreams.AsyncioHTTPTransport(verify=ssl_context, limits=limits)
            client = _RegistryHTTPClient(
                verify=ssl_context,
                timeout=timeout,
                follow_redirects=False,
                headers={"User-Agent": self.options.user_agent},
                transport=transport,
                limits=limits,
                trust_env=False,
            )
            self._clients[kind] = client
        return client

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    def is_insecure(self, host: str) -> bool:
        return host in self.options.insecure or host.split(":")[0] in self.options.insecure

    def may_use_http(self, host: str) -> bool:
        return self.is_insecure(host) or is_loopback_host(host)

    def rate_limit(self, host: str) -> RateLimit | None:
        return self._rate_limits.get(host)

    # -- time budget -----------------------------------------------------------------

    def _remaining(self) -> float:
        """Seconds left of the whole-client deadline (infinite without one)."""
        if self._deadline_at is None:
            return float("inf")
        return self._deadline_at - time.monotonic()

    def _request_timeout(self, host: str) -> float:
        """How long the next request to ``host`` may take: ``timeout``, or less when the
        deadline is nearer; DeadlineExceeded when it has passed."""
        remaining = self._remaining()
        if remaining <= 0:
            raise self._deadline_exceeded(host, "no time was left for another request")
        return min(self.options.timeout, remaining)

    @property
    def deadline_at(self) -> float | None:
        """The whole-client deadline as a ``time.monotonic()`` value, if there is one."""
        return self._deadline_at

    def request_deadline(self, host: str) -> float:
        """A ``time.monotonic()`` value bounding one request to ``host`` started now."""
        return time.monotonic() + self._request_timeout(host)

    def _fits(self, delay: float) -> bool:
        """Whether waiting ``delay`` seconds still leaves time for another try."""
        return delay < self._remaining()

    def _deadline_exceeded(self, host: str, what: str) -> errors.DeadlineExceeded:
        return errors.DeadlineExceeded(
            f"{what} within the deadline of {self.options.deadline:g} s",
            registry=host,
            hint="the registry is slow or keeps failing; check the network, or raise --deadline",
        )

    def _timed_out(self, host: str, seconds: float, what: str) -> errors.RegistryError:
        """The error for a request to ``host`` that took its whole ``seconds``."""
        if seconds < self.options.timeout:  # cut short by the deadline, not by --timeout
            return self._deadline_exceeded(host, f"{what} did not finish")
        return errors.RegistryUnreachable(
            f"{what} did not finish within {seconds:g} s",
            registry=host,
            hint="the registry is slow to answer; check the network, or raise --timeout",
        )

    async def base_url(self, host: str) -> httpx.URL:
        """``https://host`` or, for loopback and insecure hosts that do not speak TLS, ``http``."""
        known = self._base_urls.get(host)
        if known is not None:
            return known
        scheme = self._schemes.get(host)
        if scheme is None:
            if not self.may_use_http(host):
                scheme = "https"
                self._schemes[host] = scheme
            else:
                lock = self._probe_locks.setdefault(host, asyncio.Lock())
                async with lock:
                    scheme = self._schemes.get(host)
                    if scheme is None:
                        scheme = await self._probe(host)
                        self._schemes[host] = scheme
        url = self._base_urls[host] = httpx.URL(f"{scheme}://{host}")
        return url

    async def _probe(self, host: str) -> str:
        """Loopback/insecure hosts: plain HTTP when the port answers it like a registry,
        else HTTPS (verified, unless the host is marked insecure).

        Plain HTTP is asked first because it is cheap (no SSL context, no handshake) and
        it is what a local registry usually speaks. The probe is ``GET /v2/`` with no
        credentials, on the client that has none. An answer "looks like a registry"
        when it carries ``Docker-Distribution-API-Version`` or is 200/401; anything
        else (a TLS port's ``400 Client sent an HTTP request to an HTTPS server``, a
        reset connection, an unrelated server) is settled by the TLS probe, exactly
        as before this plain-HTTP step existed, so a TLS registry with an unknown CA
        still ends in ``TLSError``. Hosts neither loopback nor insecure never get here
        (:meth:`base_url`): they are HTTPS only.
        """
        client = self._client("http")
        seconds = self._request_timeout(host)
        deadline = time.monotonic() + seconds
        try:
            # wait_for: httpx's timeouts are per read, and a server may drip its headers.
            response = await asyncio.wait_for(
                client.send(client.build_request("GET", f"http://{host}/v2/"), stream=True),
                timeout=seconds,
            )
        except asyncio.TimeoutError:
            # A TLS port answers a plain request at once (400 or a close): this one is slow.
            raise self._timed_out(host, seconds, "GET /v2/ (plain HTTP probe)") from None
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout) as exc:
            # Nothing listens, or nothing answers: TLS on the same port would not fare
            # better. (A TLS server answers a plain request at once, with 400 or a close.)
            raise self._connect_error(exc, host) from None
        except httpx.HTTPError:
            pass  # reset, or bytes that are not HTTP (a TLS alert): ask in TLS
        else:
            registry = _looks_like_registry(response)
            # Read the (capped) body so that the connection can serve the next request;
            # on failure _read_capped has closed it, and only the headers mattered.
            with contextlib.suppress(errors.RegistryError):
                await _read_capped(response, ERROR_BODY_LIMIT, truncate=True, deadline=deadline)
            if registry:
                return "http"
        return await self._probe_tls(host)

    async def _probe_tls(self, host: str) -> str:
        """HTTPS when the port completes a TLS handshake, HTTP when it does not speak TLS."""
        kind = "https-unverified" if self.is_insecure(host) else "https"
        seconds = self._request_timeout(host)
        try:
            client = self._client(kind)
            # Only the handshake matters: the body is never read. The headers are waited
            # for, so a server dripping them is cut off at ``seconds``.
            response = await asyncio.wait_for(
                client.send(client.build_request("GET", f"https://{host}/v2/"), stream=True),
                timeout=seconds,
            )
            await response.aclose()
            return "https"
        except asyncio.TimeoutError:
            raise self._timed_out(host, seconds, "GET /v2/ (HTTPS probe)") from None
        except httpx.ConnectError as exc:
            if _is_certificate_error(exc):
                raise self._connect_error(exc, host) from None
            if _is_tls_protocol_error(exc):
                return "http"
            raise self._connect_error(exc, host) from None
        except httpx.HTTPError as exc:
            raise self._connect_error(exc, host) from None

    # -- sending ---------------------------------------------------------------------

    async def send(
        self,
        method: str,
        url: httpx.URL,
        *,
        registry: httpx.URL,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        max_bytes: int = ERROR_BODY_LIMIT,
        stream: bool = False,
        retry: bool = True,
        raise_for_limits: bool = True,
    ) -> Response:
        """Send with retries (408/429/5xx, connection errors) and manual redirects.

        ``registry`` is the origin the request is for: redirects and realms are judged
        against it. The body must be ``bytes`` so that a retry resends it whole.
        """
        if content is not None and not isinstance(content, (bytes, bytearray)):
            # A stream cannot be resent whole after a retry; callers buffer first.
            raise TypeError("Transport.send needs the request body as bytes")
        host = url.netloc.decode()
        attempt = 0
        while True:
            await self._wait_gate(host)
            try:
                return await self._attempt(
                    method,
                    url,
                    host=host,
                    registry=registry,
                    headers=headers,
                    content=content,
                    max_bytes=max_bytes,
                    stream=stream,
                    may_retry=retry and attempt < self.options.max_retries,
                    attempt=attempt + 1,
                    raise_for_limits=raise_for_limits,
                )
            except _Retry as again:
                attempt += 1
                self._push_gate(host, again.delay)
            except _BodyBroken as broken:
                if not (retry and attempt < self.options.max_retries and method in _IDEMPOTENT):
                    raise
                delay = self._backoff(attempt + 1)
                if not self._fits(delay):
                    raise self._deadline_exceeded(
                        host, f"{broken.detail}; no time was left to try again"
                    ) from None
                attempt += 1
                self._push_gate(host, delay)

    async def _attempt(
        self,
        method: str,
        url: httpx.URL,
        *,
        host: str,
        registry: httpx.URL,
        headers: Mapping[str, str] | None,
        content: bytes | None,
        max_bytes: int,
        stream: bool,
        may_retry: bool,
        attempt: int,
        raise_for_limits: bool,
    ) -> Response:
        """One try: a finished Response, or ``_Retry`` / ``_BodyBroken`` for the loop.

        A retry is offered only when its wait still fits in the deadline; otherwise
        this try's own error is raised at once.
        """
        seconds = self._request_timeout(host)
        deadline = time.monotonic() + seconds
        backoff = self._backoff(attempt)
        try:
            # The total deadline also bounds a server that drips its headers.
            response = await _within(
                seconds,
                self._send_following_redirects(
                    method, url, registry=registry, headers=headers, content=content
                ),
            )
        except asyncio.TimeoutError:
            if may_retry and self._fits(backoff):
                raise _Retry(backoff) from None
            raise self._timed_out(host, seconds, f"{method} {url.path}") from None
        except httpx.TransportError as exc:
            if may_retry and self._fits(backoff) and _retryable_exception(exc):
                raise _Retry(backoff) from None
            raise self._connect_error(exc, host) from None

        self._record_headers(host, response.headers)
        if response.status_code in _RETRYABLE:
            try:
                body = await _read_capped(
                    response, ERROR_BODY_LIMIT, truncate=True, deadline=deadline
                )
            except _BodyBroken:
                body = b""
            body = _scrub_echo(body, headers)
            delay_hint = parse_retry_after(response.headers.get("retry-after"))
            # A Retry-After beyond the cap or the deadline is honoured by not asking
            # again now: retrying earlier than the registry said only hammers it.
            too_long = delay_hint is not None and delay_hint > self.options.retry_after_cap
            wait = delay_hint if delay_hint is not None else backoff
            if may_retry and not too_long:
                if self._fits(wait):
                    raise _Retry(wait)
                if response.status_code != 429:  # a 429 says more as RateLimited, below
                    raise self._deadline_exceeded(
                        host,
                        f"{method} {url.path} answered {response.status_code}; asking again "
                        f"after {wait:.1f} s would not finish",
                    )
            if response.status_code == 429 and raise_for_limits:
                raise self._rate_limited(host, response, body, delay_hint)
            return Response(response.status_code, response.headers, response.url, body)

        if method == "HEAD":
            # A HEAD answer has no body: its Content-Length is the size of what a GET
            # would return (a blob of any size), nothing to read or to cap. Reading the
            # empty body (not just closing) lets the connection go back to the pool.
            await response.aread()
            return Response(response.status_code, response.headers, response.url, b"")

        if stream and 200 <= response.status_code < 300:
            length = response.headers.get("content-length")
            if length and length.isdigit() and int(length) > max_bytes:
                await response.aclose()
                raise errors.TooLarge(
                    f"{redact_url(str(response.url))} is {int(length)} bytes, over the "
                    f"limit of {max_bytes}",
                    registry=registry.netloc.decode(),
                )
            return Response(response.status_code, response.headers, response.url, stream=response)
        cap = max_bytes if 200 <= response.status_code < 300 else ERROR_BODY_LIMIT
        body = await _read_capped(
            response,
            cap,
            truncate=not (200 <= response.status_code < 300),
            registry=registry,
            deadline=deadline,
        )
        if not 200 <= response.status_code < 300:
            body = _scrub_echo(body, headers)
        return Response(response.status_code, response.headers, response.url, body)

    async def _send_following_redirects(
        self,
        method: str,
        url: httpx.URL,
        *,
        registry: httpx.URL,
        headers: Mapping[str, str] | None,
        content: bytes | None,
    ) -> httpx.Response:
        current_headers = dict(headers or {})
        current_url = url
        current_method = method
        for _hop in range(MAX_REDIRECTS + 1):
            client = self._client(self._kind(current_url))
            request = client.build_request(
                current_method, current_url, headers=current_headers, content=content
            )
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s %s", current_method, redact_url(str(current_url)))
            try:
                response = await client.send(request, stream=True)
            except httpx.ConnectError as exc:
                if _is_certificate_error(exc):
                    raise self._connect_error(exc, current_url.netloc.decode()) from None
                raise
            if response.status_code not in _REDIRECTS or "location" not in response.headers:
                return response
            await response.aclose()
            target = current_url.join(response.headers["location"])
            check_destination(target, registry, what="a redirect")
            if response.status_code == 303 or (
                response.status_code in (301, 302) and current_method == "POST"
            ):
                current_method, content = "GET", None
            if origin(target) != origin(current_url):
                # Credentials belong to one origin; a hop elsewhere gets none of them.
                # A body may hold them too (a token POST's refresh token): never carried.
                if content:
                    raise errors.UnsafeResponse(
                        f"a redirect would resend the body of a {current_method} to another "
                        f"origin ({redact_url(str(target))}); refused",
                        registry=registry.netloc.decode(),
                    )
                current_headers = {
                    k: v for k, v in current_headers.items() if k.lower() != "authorization"
                }
            current_url = target
        raise errors.InvalidResponse(
            f"more than {MAX_REDIRECTS} redirects for {redact_url(str(url))}",
            registry=registry.netloc.decode(),
        )

    # -- retries, gates and quota ----------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        # Full jitter: spread retries of many concurrent requests over the window.
        ceiling = min(self.options.backoff_cap, self.options.backoff_base * (2 ** (attempt - 1)))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not crypto

    def _push_gate(self, host: str, delay: float) -> None:
        until = time.monotonic() + max(0.0, delay)
        self._not_before[host] = max(self._not_before.get(host, 0.0), until)

    async def _wait_gate(self, host: str) -> None:
        paused = self._paused_until.get(host)
        if paused is not None:
            if time.monotonic() < paused:
                # At its limit: fail fast until the reset instead of hammering the host.
                first = self._paused[host]
                raise errors.RateLimited(
                    f"{first.detail}; paused until its reset, no request was sent",
                    registry=host,
                    hint=first.hint,
                    reset_at=first.reset_at,
                    kind=first.kind,
                )
            del self._paused_until[host]
            self._paused.pop(host, None)
        wait = self._not_before.get(host, 0.0) - time.monotonic()
        if wait > 0:
            if not self._fits(wait):
                # Another request's Retry-After or backoff reaches past the deadline.
                raise self._deadline_exceeded(host, f"waiting {wait:.0f} s to ask again")
            await asyncio.sleep(wait)

    def _record_headers(self, host: str, headers: httpx.Headers) -> None:
        limit = parse_rate_limit(headers)
        if limit is not None:
            self._rate_limits[host] = limit
        for warning in headers.get_list("warning"):
            # Warning: 299 - "text" ["date"]: shown once, never acted on.
            match = _WARNING_299.match(warning)
            if match is None:
                continue
            text = match.group(1).replace('\\"', '"')
            text = "".join(ch if ch.isprintable() else " " for ch in text)[:300]
            if text in self._warned:
                continue
            self._warned.add(text)
            self.warnings.append(f"{host}: {text}")
            log.warning("registry %s says: %s", host, text)

    def _rate_limited(
        self, host: str, response: httpx.Response, body: bytes, delay_hint: float | None
    ) -> errors.RateLimited:
        import datetime as dt

        kind = classify_429(body)
        reset_in = delay_hint
        if reset_in is None:
            reset = response.headers.get("ratelimit-reset") or response.headers.get(
                "x-ratelimit-reset"
            )
            if reset and reset.isdigit():
                value = int(reset)
                # Either seconds from now or a Unix time; the size tells which.
                reset_in = float(value) if value < 10**9 else max(0.0, value - time.time())
        reset_at = (
            dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=reset_in)
            if reset_in is not None
            else None
        )
        messages = {
            "pull-limit": "the pull rate limit of this registry account is used up",
            "toomanyrequests": "the registry reports TOOMANYREQUESTS",
            "too-many-requests": "the registry answered 429 Too Many Requests",
        }
        when = f"try again after {reset_at:%H:%M:%S} UTC" if reset_at else "try again later"
        hint = when
        if kind == "pull-limit":
            hint = f"log in to raise the limit, or {when}"
        exc = errors.RateLimited(
            messages[kind], registry=host, hint=hint, reset_at=reset_at, kind=kind
        )
        if reset_in:
            self._paused[host] = exc
            self._paused_until[host] = time.monotonic() + min(reset_in, 3600.0)
        return exc

    def _connect_error(self, exc: httpx.HTTPError, host: str) -> errors.RegistryError:
        if isinstance(exc, httpx.ConnectError) and _is_certificate_error(exc):
            return errors.TLSError(
                "the TLS certificate could not be verified",
                registry=host,
                hint="pass --ca-file with the registry's CA, or mark it --insecure-registry "
                "if you trust the network",
            )
        if isinstance(exc, httpx.ConnectError) and _is_tls_protocol_error(exc):
            return errors.TLSError(
                "the TLS handshake failed (does this port speak HTTPS?)",
                registry=host,
                hint="plain HTTP is used only for loopback and --insecure-registry hosts",
            )
        if isinstance(exc, httpx.TimeoutException):
            return errors.RegistryUnreachable(
                f"timed out ({type(exc).__name__})",
                registry=host,
                hint="check the network, or raise --timeout",
            )
        detail = str(exc.__cause__ or exc) or type(exc).__name__
        return errors.RegistryUnreachable(
            f"cannot connect: {redact_url(detail)[:200]}",
            registry=host,
            hint="check the host name, the port and that the registry is running",
        )


async def _within(seconds: float, awaitable: Awaitable[T]) -> T:
    """``awaitable``'s result, or ``asyncio.TimeoutError`` after ``seconds``: on 3.11+
    without the task ``asyncio.wait_for`` wraps every request in."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, timeout=seconds)


def _looks_like_registry(response: httpx.Response) -> bool:
    """Whether a plain-HTTP ``/v2/`` answer came from a registry speaking plain HTTP."""
    if "docker-distribution-api-version" in response.headers:
        return True
    return response.status_code in (200, 401)


def _ssl_reason(exc: BaseException) -> ssl.SSLError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError):
            return current
        current = current.__cause__ or current.__context__
    return None


def _is_certificate_error(exc: BaseException) -> bool:
    return isinstance(_ssl_reason(exc), ssl.SSLCertVerificationError)


def _is_tls_protocol_error(exc: BaseException) -> bool:
    err = _ssl_reason(exc)
    if err is not None and not isinstance(err, ssl.SSLCertVerificationError):
        return True
    # A plain-HTTP server may just close the connection on a ClientHello.
    text = str(exc).lower()
    return "wrong version number" in text or "record layer" in text or "eof" in text


def _retryable_exception(exc: httpx.TransportError) -> bool:
    if isinstance(exc, httpx.ConnectError) and (_ssl_reason(exc) is not None):
        return False
    return isinstance(
        exc,
        (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError, httpx.TimeoutException),
    )


async def bounded_chunks(response: httpx.Response, deadline: float | None) -> AsyncIterator[bytes]:
    """``response``'s body chunks; ``TimeoutError`` once ``deadline`` (a
    ``time.monotonic()`` value) passes, however steadily the bytes drip in."""
    iterator = response.aiter_bytes().__aiter__()
    while True:
        try:
            if deadline is None:
                chunk = await iterator.__anext__()
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                chunk = await asyncio.wait_for(iterator.__anext__(), timeout=remaining)
        except StopAsyncIteration:
            return
        except asyncio.TimeoutError:  # not yet the builtin TimeoutError on Python 3.10
            raise TimeoutError from None
        yield chunk


async def _read_capped(
    response: httpx.Response,
    cap: int,
    *,
    truncate: bool,
    registry: httpx.URL | None = None,
    deadline: float | None = None,
) -> bytes:
    """Read at most ``cap`` bytes. Over it: cut (error bodies) or TooLarge (payloads).

    ``deadline`` (a ``time.monotonic()`` value) bounds the whole read, so a body that
    drips a byte at a time cannot hold the caller for ever. A broken connection, a body
    shorter than its ``Content-Length`` or the deadline raise ``_BodyBroken`` (a
    ``RegistryUnreachable``), which ``Transport.send`` retries for idempotent requests.
    """
    where = registry.netloc.decode() if registry else None
    try:
        length = response.headers.get("content-length")
        if not truncate and length and length.isdigit() and int(length) > cap:
            raise errors.TooLarge(
                f"{redact_url(str(response.url))} announces {int(length)} bytes, over the "
                f"limit of {cap}",
                registry=where,
                hint="raise the limit only if you trust this registry",
            )
        chunks: list[bytes] = []
        total = 0
        try:
            async for chunk in bounded_chunks(response, deadline):
                total += len(chunk)
                if total > cap:
                    if truncate:
                        chunks.append(chunk[: cap - (total - len(chunk))])
                        break
                    raise errors.TooLarge(
                        f"{redact_url(str(response.url))} sent more than the limit of {cap} bytes",
                        registry=where,
                        hint="raise the limit only if you trust this registry",
                    )
                chunks.append(chunk)
        except TimeoutError:
            raise _BodyBroken(
                f"reading {redact_url(str(response.url))} did not finish within the time limit",
                registry=where,
                hint="the registry sends too slowly; check the network, or raise --timeout",
            ) from None
        return b"".join(chunks)
    except httpx.TransportError as exc:
        raise _BodyBroken(
            f"the connection broke while reading {redact_url(str(response.url))}: "
            f"{type(exc).__name__}",
            registry=where,
            hint="the body was cut short (or shorter than its Content-Length); try again",
        ) from None
    finally:
        await response.aclose()


def raise_for_status(
    response: Response,
    *,
    registry: str,
    repository: str | None,
    what: str,
    ok: Sequence[int] = (200,),
) -> None:
    """Turn a non-success response into the typed error a person can act on."""
    if response.status in ok:
        return
    text, codes = describe_error_body(response.headers, response.content)
    detail = f": {text}" if text else ""
    status = response.status

    def error(
        cls: type[errors.RegistryError], message: str, hint: str | None = None
    ) -> errors.RegistryError:
        return cls(message, registry=registry, repository=repository, hint=hint, status=status)

    if status == 404 or {"MANIFEST_UNKNOWN", "BLOB_UNKNOWN", "NAME_UNKNOWN"} & set(codes):
        raise error(errors.NotFound, f"{what} not found{detail}")
    if status == 401:
        raise error(
            errors.Unauthorized,
            f"{what}: authentication required{detail}",
            "log in (docker login) or check the credentials for this registry",
        )
    if status == 403 or "DENIED" in codes:
        raise error(
            errors.Denied,
            f"{what}: access denied{detail}",
            "the credentials work but lack the rights for this",
        )
    if status >= 500 or status == 408:
        raise error(errors.ServerError, f"{what}: the registry answered {status}{detail}")
    if "UNSUPPORTED" in codes or status == 405:
        raise error(errors.RegistryError, f"{what}: the registry does not support this{detail}")
    raise error(errors.RegistryError, f"{what}: unexpected answer {status}{detail}")
