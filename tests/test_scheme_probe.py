"""The scheme probe: plain HTTP first for loopback and insecure hosts, HTTPS when the
port speaks TLS, and SSL contexts made only when an https request is sent.

Public hosts are HTTPS only and never probed (tests/test_client_transport.py); a TLS
registry whose CA is unknown is a TLSError, not a fall back to HTTP (same file).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from harness.registry import Registry
from portside import errors
from portside.reference import Reference
from portside.registry import transport as transport_mod
from portside.registry.client import ClientOptions, RegistryClient
from portside.registry.credentials import Credential, CredentialStore
from portside.registry.transport import Transport

LOOPBACK = "127.0.0.1:5999"
API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}
TLS_PORT_ANSWER = b"Client sent an HTTP request to an HTTPS server.\n"


def opts(**kw: Any) -> ClientOptions:
    base: dict[str, Any] = {"max_retries": 0, "timeout": 5.0}
    base.update(kw)
    return ClientOptions(**base)


def mock(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.MockTransport:
    return httpx.MockTransport(handler)


@pytest.fixture
def no_default_ssl_context(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail the test if anything builds a verifying SSL context (the CA-store load)."""
    calls: list[str] = []

    def refuse(*args: object, **kwargs: object) -> ssl.SSLContext:
        calls.append("create_default_context")
        raise AssertionError("an SSL context was built for a plain-HTTP registry")

    monkeypatch.setattr(ssl, "create_default_context", refuse)
    return calls


async def test_plain_loopback_registry_is_http_without_any_ssl_context(
    plain_registry: Registry, no_default_ssl_context: list[str]
) -> None:
    ref = Reference.parse(f"{plain_registry.host}/probe/plain")
    async with RegistryClient(opts()) as client:
        assert (await client._transport.base_url(plain_registry.host)).scheme == "http"
        await client.ping(plain_registry.host)
        with pytest.raises(errors.NotFound):
            await client.list_tags(ref)
    assert no_default_ssl_context == []


async def test_tls_loopback_registry_is_https(tls_registry: Registry) -> None:
    assert tls_registry.ca_file is not None
    transport = Transport(opts(ca_file=str(tls_registry.ca_file)))
    try:
        assert (await transport.base_url(tls_registry.host)).scheme == "https"
    finally:
        await transport.aclose()


async def test_the_plain_http_client_refuses_any_tls_peer(tls_registry: Registry) -> None:
    # Should an https URL ever reach the plain-HTTP client, it must fail, not go
    # unverified: that client's SSL context trusts no CA at all.
    transport = Transport(opts())
    try:
        with pytest.raises(httpx.ConnectError) as info:
            await transport._client("http").get(f"https://{tls_registry.host}/v2/")
        assert transport_mod._is_certificate_error(info.value)
    finally:
        await transport.aclose()


class _Fixed(CredentialStore):
    def __init__(self, credential: Credential) -> None:
        super().__init__()
        self._credential = credential

    def get(self, registry: str) -> Credential | None:
        return self._credential


async def test_the_probe_never_carries_credentials() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if "authorization" not in request.headers:
            return httpx.Response(
                401, headers={**API_VERSION, "WWW-Authenticate": 'Basic realm="r"'}
            )
        return httpx.Response(200, headers=API_VERSION, json={"name": "a/b", "tags": ["1"]})

    credential = Credential(username="u", password="probe-secret", source="test")
    async with RegistryClient(
        opts(), credentials=_Fixed(credential), http_transport=mock(handler)
    ) as client:
        assert await client.list_tags(Reference.parse(f"{LOOPBACK}/a/b")) == ["1"]
    probe = seen[0]
    assert probe.url == httpx.URL(f"http://{LOOPBACK}/v2/")
    assert "authorization" not in probe.headers
    assert all(r.url.scheme == "http" for r in seen)
    assert any("authorization" in r.headers for r in seen[1:])


@pytest.mark.parametrize(
    "plain_answer",
    [
        pytest.param(lambda: httpx.Response(400, content=TLS_PORT_ANSWER), id="go-400"),
        pytest.param(
            lambda: httpx.Response(400, text="The plain HTTP request was sent to HTTPS port"),
            id="nginx-400",
        ),
        pytest.param(lambda: (_ for _ in ()).throw(httpx.ReadError("reset")), id="reset"),
        pytest.param(
            lambda: (_ for _ in ()).throw(httpx.RemoteProtocolError("disconnected")),
            id="closed",
        ),
    ],
)
async def test_a_tls_port_is_found_by_the_plain_answer(
    plain_answer: Callable[[], httpx.Response],
) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.scheme == "http":
            return plain_answer()
        return httpx.Response(200, headers=API_VERSION, json={})

    transport = Transport(opts(), http_transport=mock(handler))
    try:
        assert (await transport.base_url(LOOPBACK)).scheme == "https"
    finally:
        await transport.aclose()
    assert seen == [f"http://{LOOPBACK}/v2/", f"https://{LOOPBACK}/v2/"]


async def test_a_plain_server_that_is_no_registry_stays_http() -> None:
    # Not registry-like (404, no API header): TLS is asked, the port does not speak it,
    # so the answer is http, as before the plain step existed; the ping then says
    # what is wrong.
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.scheme == "https":
            raise httpx.ConnectError("[SSL: WRONG_VERSION_NUMBER] wrong version number")
        return httpx.Response(404, text="not here")

    async with RegistryClient(opts(), http_transport=mock(handler)) as client:
        assert (await client._transport.base_url(LOOPBACK)).scheme == "http"
        with pytest.raises(errors.NotARegistry):
            await client.ping(LOOPBACK)


async def test_nothing_listening_is_unreachable_without_a_tls_attempt() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.scheme)
        raise httpx.ConnectError("[Errno 111] Connection refused")

    transport = Transport(opts(), http_transport=mock(handler))
    try:
        with pytest.raises(errors.RegistryUnreachable) as info:
            await transport.base_url(LOOPBACK)
    finally:
        await transport.aclose()
    assert not isinstance(info.value, errors.TLSError)
    assert seen == ["http"]


async def test_insecure_host_is_probed_in_plain_http_first() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, headers=API_VERSION, json={})

    transport = Transport(
        opts(insecure=frozenset({"registry.lan:5000"})), http_transport=mock(handler)
    )
    try:
        assert (await transport.base_url("registry.lan:5000")).scheme == "http"
        # Not insecure, not loopback: HTTPS without asking anything.
        assert (await transport.base_url("registry.lan:5001")).scheme == "https"
    finally:
        await transport.aclose()
    assert seen == ["http://registry.lan:5000/v2/"]


async def test_https_requests_build_the_verifying_context_lazily() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=API_VERSION, json={})

    transport = Transport(opts(), http_transport=mock(handler))
    try:
        assert transport._clients == {}
        await transport.base_url(LOOPBACK)
        assert set(transport._clients) == {"http"}
        base = await transport.base_url("registry.example.com")
        assert set(transport._clients) == {"http"}  # no request yet, no context
        await transport.send("GET", base.join("/v2/"), registry=base)
        assert set(transport._clients) == {"http", "https"}
    finally:
        await transport.aclose()
