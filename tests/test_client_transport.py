"""The registry client's transport against the real registry, misbehaviour via FaultProxy.

REGISTRY-CLIENT-CHECKLIST sections "Transport and retries", "Pagination", "Rate limits"
and the slow/endless-body line of "Malicious or broken registries". Every retry claim is
proved by counting requests in the proxy's log.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import gzip
import itertools
import json
import math
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from harness.proxy import FaultProxy, Recorder
from harness.recording import RecordedRequest, RecordingHandler
from harness.registry import Registry
from harness.skopeo import Skopeo
from harness.tls import TLSBundle
from portside import errors
from portside.reference import Digest, Reference
from portside.registry.client import ClientOptions, RegistryClient
from portside.registry.ratelimit import RateLimit, parse_retry_after
from portside.registry.transport import Transport, check_destination

MANY = "portside-test/many-tags"
MANIFESTS = r"/manifests/"
TAGS = r"/tags/list$"


def opts(**kw: Any) -> ClientOptions:
    """Fast options: tiny backoff, a short total deadline."""
    base: dict[str, Any] = {
        "backoff_base": 0.02,
        "backoff_cap": 0.05,
        "retry_after_cap": 3.0,
        "max_retries": 3,
        "timeout": 5.0,
    }
    base.update(kw)
    return ClientOptions(**base)


@pytest.fixture(scope="module")
def py_tag(registry: Registry) -> tuple[str, str]:
    """A library/python tag (an OCI index) and its digest."""
    seeded = registry.seeded["library/python"]
    tag = sorted(seeded.tags)[0]
    return tag, seeded.digest(tag)


def ref(server: FaultProxy | Registry, repo: str, tag: str | None = None) -> Reference:
    return Reference.parse(f"{server.host}/{repo}" + (f":{tag}" if tag else ""))


def count(proxy: FaultProxy, method: str, path: str) -> int:
    return len(proxy.log.matching(method, path))


# -- retries ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_retryable_statuses_are_retried(
    fault_proxy: FaultProxy, py_tag: tuple[str, str], status: int
) -> None:
    tag, digest = py_tag
    fault_proxy.fail("GET", MANIFESTS, status, times=2)
    async with RegistryClient(opts()) as client:
        manifest = await client.get_manifest(ref(fault_proxy, "library/python", tag))
    assert str(manifest.digest) == digest
    assert count(fault_proxy, "GET", MANIFESTS) == 3


@pytest.mark.parametrize(
    ("status", "code", "exc"),
    [
        (400, "TAG_INVALID", errors.RegistryError),
        (403, "DENIED", errors.Denied),
        (404, "MANIFEST_UNKNOWN", errors.NotFound),
        (405, "UNSUPPORTED", errors.RegistryError),
        (409, "CONFLICT", errors.RegistryError),
    ],
)
async def test_other_4xx_are_not_retried(
    fault_proxy: FaultProxy,
    py_tag: tuple[str, str],
    status: int,
    code: str,
    exc: type[errors.RegistryError],
) -> None:
    body = json.dumps({"errors": [{"code": code, "message": "no"}]})
    fault_proxy.respond("GET", MANIFESTS, status, body)
    async with RegistryClient(opts()) as client:
        with pytest.raises(exc) as info:
            await client.get_manifest(ref(fault_proxy, "library/python", py_tag[0]))
    assert info.value.status == status
    assert code in str(info.value)
    assert count(fault_proxy, "GET", MANIFESTS) == 1


async def test_retries_stop_after_max_retries_with_a_typed_error(
    fault_proxy: FaultProxy, py_tag: tuple[str, str]
) -> None:
    fault_proxy.fail("GET", MANIFESTS, 503, times=None)
    async with RegistryClient(opts(max_retries=2)) as client:
        with pytest.raises(errors.ServerError) as info:
            await client.get_manifest(ref(fault_proxy, "library/python", py_tag[0]))
    assert "503" in str(info.value) and "UNAVAILABLE" in str(info.value)
    assert count(fault_proxy, "GET", MANIFESTS) == 3


def test_backoff_is_capped_and_jittered() -> None:
    transport = Transport(ClientOptions(backoff_base=0.5, backoff_cap=4.0))
    for attempt in range(1, 12):
        ceiling = min(4.0, 0.5 * 2 ** (attempt - 1))
        delays = [transport._backoff(attempt) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 40  # jittered, not one fixed value
    assert max(transport._backoff(30) for _ in range(100)) <= 4.0


async def test_backoff_waits_between_attempts_and_is_capped(
    fault_proxy: FaultProxy, py_tag: tuple[str, str]
) -> None:
    fault_proxy.fail("GET", MANIFESTS, 503, times=3)
    async with RegistryClient(opts(backoff_base=0.1, backoff_cap=0.15)) as client:
        await client.get_manifest(ref(fault_proxy, "library/python", py_tag[0]))
    times = [r.when for r in fault_proxy.log.matching("GET", MANIFESTS)]
    assert len(times) == 4
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Lower bounds are what backoff promises; upper ones only rule out hangs.
    assert all(0.04 <= g <= 3.0 for g in gaps), gaps


async def test_backoff_is_shared_per_host(
    fault_proxy: FaultProxy, registry: Registry, py_tag: tuple[str, str]
) -> None:
    """While one request waits out a Retry-After, others to that host wait too;
    requests to another host do not.
    """
    tag, _ = py_tag
    fault_proxy.fail("GET", TAGS, 503, times=1, retry_after=1)
    async with RegistryClient(opts()) as client:
        first = asyncio.create_task(client.list_tags(ref(fault_proxy, "library/python")))
        for _ in range(200):
            if fault_proxy.log.matching("GET", TAGS):
                break
            await asyncio.sleep(0.01)
        failed_at = fault_proxy.log.matching("GET", TAGS)[0].when
        await client.get_manifest(ref(registry, "library/python", tag))  # another host
        # Answered while the paused host still waits out its Retry-After.
        assert not first.done()
        assert len(fault_proxy.log.matching("GET", TAGS)) == 1
        await client.get_manifest(ref(fault_proxy, "library/python", tag))
        assert await first
    manifest_at = fault_proxy.log.matching("GET", MANIFESTS)[0].when
    assert manifest_at - failed_at >= 0.85


async def test_retry_after_seconds_is_honoured(
    fault_proxy: FaultProxy, py_tag: tuple[str, str]
) -> None:
    fault_proxy.fail("GET", MANIFESTS, 503, times=1, retry_after=1)
    async with RegistryClient(opts()) as client:
        started = time.monotonic()
        await client.get_manifest(ref(fault_proxy, "library/python", py_tag[0]))
    assert time.monotonic() - started >= 0.95
    assert count(fault_proxy, "GET", MANIFESTS) == 2


async def test_retry_after_http_date_is_honoured(
    fault_proxy: FaultProxy, py_tag: tuple[str, str]
) -> None:
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    fault_proxy.fail("GET", MANIFESTS, 429, times=1, retry_after=when)
    async with RegistryClient(opts()) as client:
        started = time.monotonic()
        await client.get_manifest(ref(fault_proxy, "library/python", py_tag[0]))
    # The date has one-second resolution: between one and two seconds from now.
    assert 0.9 <= time.monotonic() - started <= 6.0
    assert count(fault_proxy, "GET", MANIFESTS) == 2


@pytest.mark.parametrize("value", ["soon", "-5", "1.5e3", "Thu, 99 Foo 2024", ""])
async def test_nonsense_retry_after_falls_back_to_backoff(
    fault_proxy: FaultProxy, py_tag: tuple[str, str], value: str
) -> None:
    fault_proxy.fail("GET", MANIFESTS, 503, times=1, headers={"Retry-After": value})
    async with RegistryClient(opts()) as client:
        started = time.monotonic()
        await client.get_manifest(ref(fault_proxy, "library/python", py_tag[0]))
    assert time.monotonic() - started < 5.0  # 1.5e3 read as seconds would be 25 minutes
    assert count(fault_proxy, "GET", MANIFESTS) == 2


def test_parse_retry_after() -> None:
    now = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 01 May 2024 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", now=now) == 0.0
    for nonsense in (None, "", "soon", "-1", "1.5", "Mon, 01 Jan 99999 00:00:00 GMT"):
        assert parse_retry_after(nonsense, now=now) is None


async def test_retry_after_beyond_the_cap_is_not_waited_out_nor_hammered(
    fault_proxy: FaultProxy, py_tag: tuple[str, str]
) -> None:
    fault_proxy.fail("GET", MANIFESTS, 503, times=None, retry_after=120)
    async with RegistryClient(opts(retry_after_cap=1.0)) as client:
        started = time.monotonic()
        with pytest.raises(errors.ServerError):
            await client.get_manifest(ref(fault_proxy, "library/python", py_tag[0]))
    assert time.monotonic() - started < 10  # honouring it would take 120 s
    assert count(fault_proxy, "GET", MANIFESTS) == 1


# -- request bodies --------------------------------------------------------------------


async def test_bytes_body_is_resent_whole_on_retry(
    plain_registry: Registry, proxy_factory: Callable[..., FaultProxy]
) -> None:
    proxy = proxy_factory(plain_registry)
    data = b"portside retry body " * 5000
    proxy.fail("PUT", r"/blobs/uploads/", 503, times=1)
    target = ref(proxy, "retry/body", "x")
    async with RegistryClient(opts()) as client:
        result = await client.upload_blob(target, data)
        assert await client.get_blob(target, result.descriptor_digest) == data
    puts = proxy.log.matching("PUT", r"/blobs/uploads/")
    assert len(puts) == 2
    assert all(p.body_size == len(data) and p.body == data[: len(p.body)] for p in puts)


async def test_a_stream_body_is_refused_rather_than_resent_half_consumed() -> None:
    async def chunks() -> Any:
        yield b"a"

    transport = Transport(opts())
    url = httpx.URL("https://registry.example.com/v2/")
    with pytest.raises(TypeError):
        await transport.send("PUT", url, registry=url, content=chunks())  # type: ignore[arg-type]
    await transport.aclose()


# -- broken connections ----------------------------------------------------------------


async def test_connection_dropped_mid_body_is_retried_for_get(
    fault_proxy: FaultProxy, py_tag: tuple[str, str]
) -> None:
    tag, digest = py_tag
    fault_proxy.drop_after("GET", MANIFESTS, 20, times=1)
    async with RegistryClient(opts()) as client:
        manifest = await client.get_manifest(ref(fault_proxy, "library/python", tag))
    assert str(manifest.digest) == digest
    assert count(fault_proxy, "GET", MANIFESTS) == 2


async def test_connection_always_dropped_gives_a_clear_error(
    fault_proxy: FaultProxy, py_tag: tuple[str, str]
) -> None:
    fault_proxy.drop_after("GET", MANIFESTS, 20)
    async with RegistryClient(opts(max_retries=2)) as client:
        started = time.monotonic()
        with pytest.raises(errors.RegistryUnreachable, match="connection broke"):
            await client.get_manifest(ref(fault_proxy, "library/python", py_tag[0]))
    assert time.monotonic() - started < 3
    assert count(fault_proxy, "GET", MANIFESTS) == 3


async def test_connection_dropped_mid_blob_stream_is_a_clear_error(
    fault_proxy: FaultProxy, registry: Registry, py_tag: tuple[str, str]
) -> None:
    image = registry.seeded["library/python"].image(py_tag[0])
    layer = image.artifact.children[0].layers[0]  # type: ignore[union-attr]
    fault_proxy.drop_after("GET", r"/blobs/", 10)
    async with RegistryClient(opts()) as client:
        target = ref(fault_proxy, "library/python")
        with pytest.raises(errors.RegistryUnreachable, match="connection broke"):
            await client.get_blob(target, Digest.parse(layer.digest))


# -- error bodies ----------------------------------------------------------------------


async def test_spec_error_body_reports_every_code(
    fault_proxy: FaultProxy, py_tag: tuple[str, str]
) -> None:
    body = {
        "errors": [
            {"code": "NAME_INVALID", "message": "bad name"},
            {"code": "TAG_INVALID", "message": "bad tag", "detail": {"x": 1}},
            {"code": "SIZE_INVALID", "message": "bad size"},
        ]
    }
    fault_proxy.respond("GET", MANIFESTS, 400, json.dumps(body))
    async with RegistryClient(opts()) as client:
        with pytest.raises(errors.RegistryError) as info:
            await client.get_manifest(ref(fault_proxy, "library/python", py_tag[0]))
    text = str(info.value)
    for code in ("NAME_INVALID", "TAG_INVALID", "SIZE_INVALID"):
        assert code in text
    assert "library/python" in text and fault_proxy.host in text


async def test_html_error_page_from_a_proxy(
    fault_proxy: FaultProxy, py_tag: tuple[str, str]
) -> None:
    page = b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1>" + b"x" * 5000 + b"</html>"
    fault_proxy.respond("GET", MANIFESTS, 502, page, content_type="text/html")
    async with RegistryClient(opts(max_retries=1)) as client:
        with pytest.raises(errors.ServerError) as info:
            await client.get_manifest(ref(fault_proxy, "library/python", py_tag[0]))
    assert "HTML" in str(info.value)
    assert "<h1>" not in str(info.value) and len(str(info.value)) < 600


@pytest.mark.parametrize(
    ("status", "exc"),
    [(404, errors.NotFound), (500, errors.ServerError), (418, errors.RegistryError)],
)
async def test_huge_error_bodies_are_read_bounded(
    fault_proxy: FaultProxy, py_tag: tuple[str, str], status: int, exc: type[Exception]
) -> None:
    fault_proxy.endless_body(
        "GET", MANIFESTS, status=status, headers={"Content-Type": "application/json"}
    )
    async with RegistryClient(opts(max_retries=1)) as client:
        started = time.monotonic()
        with pytest.raises(exc) as info:
            await client.get_manifest(ref(fault_proxy, "library/python", py_tag[0]))
    assert time.monotonic() - started < 3
    assert len(str(info.value)) < 600


# -- HTTPS, TLS, redirects -------------------------------------------------------------


def _no_network(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"unexpected request {request.url}")


@pytest.mark.parametrize(
    "host", ["registry.example.com", "registry.example.com:5000", "8.8.8.8:5000", "ghcr.io"]
)
async def test_public_hosts_are_https_without_probing(host: str) -> None:
    transport = Transport(opts(), http_transport=httpx.MockTransport(_no_network))
    assert (await transport.base_url(host)).scheme == "https"
    await transport.aclose()


async def test_public_registry_is_never_contacted_over_http() -> None:
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        if request.url.path.endswith("/tags/list"):
            return httpx.Response(200, json={"name": "team/app", "tags": ["1", "2"]})
        return httpx.Response(200, json={})

    async with RegistryClient(opts(), http_transport=httpx.MockTransport(handler)) as client:
        tags = await client.list_tags(Reference.parse("registry.example.com/team/app"))
    assert tags == ["1", "2"]
    assert seen and all(u.scheme == "https" for u in seen)


async def test_tls_registry_with_its_ca(tls_registry: Registry) -> None:
    assert tls_registry.ca_file is not None
    target = ref(tls_registry, "tls/check", "x")
    data = b"over TLS with a custom CA"
    async with RegistryClient(opts(ca_file=str(tls_registry.ca_file))) as client:
        await client.ping(tls_registry.host)
        result = await client.upload_blob(target, data)
        assert await client.get_blob(target, result.descriptor_digest) == data


async def test_tls_registry_without_its_ca_is_a_tls_error_not_http(
    tls_registry: Registry,
) -> None:
    async with RegistryClient(opts()) as client:
        with pytest.raises(errors.TLSError) as info:
            await client.list_tags(ref(tls_registry, "tls/check"))
    assert info.value.hint and "ca-file" in info.value.hint
    assert "certificate" in str(info.value)


async def test_https_to_http_redirect_is_refused(
    registry: Registry,
    tls_bundle: TLSBundle,
    proxy_factory: Callable[..., FaultProxy],
    recorder: Recorder,
    py_tag: tuple[str, str],
) -> None:
    proxy = proxy_factory(registry, ssl_context=tls_bundle.server_context())
    proxy.redirect("GET", MANIFESTS, recorder.url)
    async with RegistryClient(opts(ca_file=str(tls_bundle.ca_file))) as client:
        with pytest.raises(errors.UnsafeResponse, match="plain HTTP"):
            await client.get_manifest(ref(proxy, "library/python", py_tag[0]))
    assert recorder.requests == []
    assert count(proxy, "GET", MANIFESTS) == 1


@pytest.mark.parametrize(
    ("target", "registry", "allowed"),
    [
        ("https://169.254.169.254/latest/meta-data/", "https://10.0.0.5:5000", False),
        ("http://169.254.169.254/", "http://127.0.0.1:5000", False),
        ("https://[::ffff:169.254.169.254]/", "https://10.0.0.5", False),
        ("https://[fe80::1]/", "https://[fe80::2]", False),
        ("https://0.0.0.0:5000/", "https://10.0.0.5:5000", False),
        ("https://127.0.0.1:9999/", "https://10.0.0.5:5000", False),
        ("https://10.0.0.1/", "https://registry.example.com", False),
        ("https://localhost/", "https://registry.example.com", False),
        ("ftp://10.0.0.5/", "https://10.0.0.5", False),
        ("https://10.0.0.6/token", "https://10.0.0.5:5000", True),
        ("http://127.0.0.1:9999/token", "http://127.0.0.1:5000", True),
        ("https://169.254.10.10:5000/x", "https://169.254.10.10:5000", True),  # its own
        ("https://auth.docker.io/token", "https://registry-1.docker.io", True),
    ],
)
def test_redirect_and_realm_destinations(target: str, registry: str, allowed: bool) -> None:
    if allowed:
        check_destination(httpx.URL(target), httpx.URL(registry), what="a redirect")
    else:
        with pytest.raises(errors.UnsafeResponse):
            check_destination(httpx.URL(target), httpx.URL(registry), what="a redirect")


async def test_warning_299_is_shown_once_and_not_acted_on(
    fault_proxy: FaultProxy, py_tag: tuple[str, str]
) -> None:
    fault_proxy.set_headers(
        None,
        r"^/v2/",
        [
            ("Warning", '299 - "this registry is deprecated, move to new.example"'),
            ("Warning", '199 - "miscellaneous, ignored"'),
        ],
    )
    async with RegistryClient(opts()) as client:
        target = ref(fault_proxy, "library/python", py_tag[0])
        await client.get_manifest(target)
        await client.head_manifest(target)
        await client.list_tags(target)
        assert client.warnings == [
            f"{fault_proxy.host}: this registry is deprecated, move to new.example"
        ]


# -- pagination ------------------------------------------------------------------------


class PagingProxy(FaultProxy):
    """distribution 2.8 ignores ``n`` on tag lists; this proxy pages the real list as the
    spec says (``n``, ``last``, lexical order) with a ``Link`` that is an absolute path
    (``relative``), an absolute URL (``absolute``), or a relative reference to resolve
    against the request URL (``path-relative``: ``list?...``, ``dot-segments``:
    ``../tags/list?...``, ``query-only``: ``?...``).
    """

    link = "relative"

    def handle(self, handler: RecordingHandler, request: RecordedRequest) -> None:
        if not (
            request.method == "GET"
            and request.path.startswith("/v2/")
            and request.path.endswith("/tags/list")
        ):
            super().handle(handler, request)
            return
        assert self.upstream is not None
        answer = httpx.get(self.upstream + request.path, timeout=10)
        tags = sorted(answer.json()["tags"])
        n = int(request.param("n") or 100)
        last = request.param("last")
        if last is not None:
            tags = [t for t in tags if t > last]
        page, more = tags[:n], len(tags) > n
        headers = []
        if more:
            query = urlencode({"n": n, "last": page[-1]})
            target = {
                "relative": f"{request.path}?{query}",
                "absolute": f"{self.url}{request.path}?{query}",
                "path-relative": f"list?{query}",
                "dot-segments": f"../tags/list?{query}",
                "query-only": f"?{query}",
            }[self.link]
            headers.append(("Link", f'<{target}>; rel="next"'))
        body = json.dumps({"name": answer.json()["name"], "tags": page}).encode()
        handler.send_simple(200, body, headers)


@pytest.fixture
def paging_proxy(registry: Registry) -> Iterator[PagingProxy]:
    proxy = PagingProxy(registry)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.mark.parametrize("link", ["relative", "absolute"])
async def test_pagination_follows_links_like_skopeo(
    paging_proxy: PagingProxy, registry: Registry, link: str
) -> None:
    paging_proxy.link = link
    async with RegistryClient(opts()) as client:
        tags = await client.list_tags(ref(paging_proxy, MANY), page_size=250)
    pages = paging_proxy.log.matching("GET", TAGS)
    assert len(pages) == math.ceil(2100 / 250)
    assert all(p.param("n") == "250" for p in pages)
    assert [p.param("last") for p in pages[1:]] == [tags[i * 250 - 1] for i in range(1, 9)]
    assert tags == sorted(tags)  # the pages came in the spec's lexical order
    # distribution returns its own order; skopeo, the second client, agrees on the set.
    expected = Skopeo.for_registry(registry).list_tags(f"{registry.host}/{MANY}")
    assert len(expected) == 2100
    assert tags == sorted(expected)
    assert sorted(tags) == sorted(registry.seeded[MANY].tags)


@pytest.mark.parametrize("link", ["path-relative", "dot-segments", "query-only"])
async def test_pagination_resolves_relative_links_against_the_request_url(
    paging_proxy: PagingProxy, registry: Registry, link: str
) -> None:
    """RFC 3986: ``list?n=..``, ``../tags/list?n=..`` and ``?n=..`` are relative to
    ``/v2/REPO/tags/list?...``, the URL that was asked, not to the registry's root (which
    would ask ``/list``, ``/tags/list`` or ``/?n=..`` and get no tags)."""
    paging_proxy.link = link
    async with RegistryClient(opts()) as client:
        tags = await client.list_tags(ref(paging_proxy, MANY), page_size=250)
    pages = math.ceil(2100 / 250)
    asked = [r for r in paging_proxy.requests if r.path != "/v2/"]
    assert [r.path for r in asked] == [f"/v2/{MANY}/tags/list"] * pages
    assert [r.param("n") for r in asked] == ["250"] * pages
    assert [r.param("last") for r in asked] == [None] + [tags[i * 250 - 1] for i in range(1, 9)]
    assert len(tags) == len(set(tags)) == 2100
    # The whole list, as one unpaginated request and skopeo (the second client) see it.
    unpaginated = httpx.get(f"{registry.url}/v2/{MANY}/tags/list", timeout=10).json()["tags"]
    assert tags == sorted(unpaginated)
    assert tags == sorted(Skopeo.for_registry(registry).list_tags(f"{registry.host}/{MANY}"))


@pytest.mark.parametrize("where", ["other-host", "other-scheme"])
async def test_pagination_refuses_another_origin(
    fault_proxy: FaultProxy, recorder: Recorder, where: str
) -> None:
    base = recorder.url if where == "other-host" else f"https://{fault_proxy.host}"
    link = f'<{base}/v2/{MANY}/tags/list?n=100&last=1.0.99>; rel="next"'
    fault_proxy.set_headers("GET", TAGS, {"Link": link})
    async with RegistryClient(opts()) as client:
        with pytest.raises(errors.UnsafeResponse, match="another origin"):
            await client.list_tags(ref(fault_proxy, MANY))
    assert recorder.requests == []
    assert count(fault_proxy, "GET", TAGS) == 1


@pytest.mark.parametrize("link", ["relative", "absolute"])
async def test_endless_pagination_stops_at_the_page_cap(fault_proxy: FaultProxy, link: str) -> None:
    fault_proxy.endless_pagination(link=link)
    async with RegistryClient(opts(max_pages=25)) as client:
        started = time.monotonic()
        with pytest.raises(errors.InvalidResponse, match="more than 25 pages"):
            await client.list_tags(ref(fault_proxy, MANY), page_size=1)
    assert time.monotonic() - started < 10
    assert count(fault_proxy, "GET", TAGS) == 25


async def test_pagination_looping_on_itself_stops(fault_proxy: FaultProxy) -> None:
    fault_proxy.endless_pagination(link="same")
    async with RegistryClient(opts()) as client:
        with pytest.raises(errors.InvalidResponse, match="loop"):
            await client.list_tags(ref(fault_proxy, MANY), page_size=1)
    assert count(fault_proxy, "GET", TAGS) <= 3


async def test_a_registrys_cookies_are_not_kept(
    fault_proxy: FaultProxy, py_tag: tuple[str, str]
) -> None:
    """As docker's, containerd's and skopeo's clients: a ``Set-Cookie`` (a load
    balancer's stickiness, a session) is never sent back."""
    tag, digest = py_tag
    fault_proxy.set_headers("HEAD", MANIFESTS, {"Set-Cookie": "session=s3cr3t; Path=/"})
    async with RegistryClient(opts()) as client:
        first = await client.head_manifest(ref(fault_proxy, "library/python", tag))
        second = await client.head_manifest(ref(fault_proxy, "library/python", tag))
    assert str(first.digest) == str(second.digest) == digest
    heads = fault_proxy.log.matching("HEAD", MANIFESTS)
    assert len(heads) == 2
    assert [r.header("cookie") for r in fault_proxy.log.all()] == [None] * len(
        fault_proxy.log.all()
    )


# -- rate limits -----------------------------------------------------------------------


async def test_rate_limit_headers_are_exposed(
    fault_proxy: FaultProxy, py_tag: tuple[str, str]
) -> None:
    target = ref(fault_proxy, "library/python", py_tag[0])
    async with RegistryClient(opts()) as client:
        await client.get_manifest(target)
        assert client.rate_limit(fault_proxy.host) is None  # unknown, never zero
        fault_proxy.set_headers(
            "HEAD",
            MANIFESTS,
            {
                "ratelimit-limit": "100;w=21600",
                "ratelimit-remaining": "76;w=21600",
                "docker-ratelimit-source": "203.0.113.9",
            },
        )
        await client.head_manifest(target)
        limit = client.rate_limit(fault_proxy.host)
    assert limit == RateLimit(100, 76, 21600, "203.0.113.9")
    assert limit.describe() == "76 of 100 per 6 h left"


PULL_LIMIT = json.dumps(
    {
        "errors": [
            {
                "code": "TOOMANYREQUESTS",
                "message": "You have reached your pull rate limit. You may increase the limit "
                "by authenticating and upgrading: https://www.docker.com/increase-rate-limit",
            }
        ]
    }
).encode()
SPEC_429 = json.dumps({"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]}).encode()


async def test_429_kinds_get_distinct_messages(
    fault_proxy: FaultProxy, py_tag: tuple[str, str]
) -> None:
    target = ref(fault_proxy, "library/python", py_tag[0])
    seen: dict[str, str] = {}
    async with RegistryClient(opts(max_retries=0)) as client:
        for kind, body in (
            ("pull-limit", PULL_LIMIT),
            ("too-many-requests", b""),
            ("toomanyrequests", SPEC_429),
        ):
            fault_proxy.fail("GET", MANIFESTS, 429, times=1, body=body)
            with pytest.raises(errors.RateLimited) as info:
                await client.get_manifest(target)
            assert info.value.kind == kind
            assert info.value.status == 429
            seen[kind] = str(info.value)
        # No reset time was given: the host is not paused.
        await client.get_manifest(target)
    assert len(set(seen.values())) == 3
    assert "log in" in seen["pull-limit"]
    assert "TOOMANYREQUESTS" in seen["toomanyrequests"]


async def test_host_at_its_limit_is_paused_not_hammered(
    fault_proxy: FaultProxy, registry: Registry, py_tag: tuple[str, str]
) -> None:
    fault_proxy.fail("GET", MANIFESTS, 429, times=None, retry_after=3600, body=PULL_LIMIT)
    async with RegistryClient(opts(retry_after_cap=1.0)) as client:
        started = time.monotonic()
        with pytest.raises(errors.RateLimited) as first:
            await client.get_manifest(ref(fault_proxy, "library/python", py_tag[0]))
        assert first.value.reset_at is not None
        left = first.value.reset_at - dt.datetime.now(dt.timezone.utc)
        assert 3500 < left.total_seconds() <= 3600
        assert count(fault_proxy, "GET", MANIFESTS) == 1
        before = len(fault_proxy.log)
        with pytest.raises(errors.RateLimited, match="no request was sent"):
            await client.list_tags(ref(fault_proxy, "library/python"))
        assert len(fault_proxy.log) == before
        assert time.monotonic() - started < 10  # the reset is an hour away
        # Another host is not affected.
        await client.get_manifest(ref(registry, "library/python", py_tag[0]))


async def test_429_within_the_budget_is_retried(
    fault_proxy: FaultProxy, py_tag: tuple[str, str]
) -> None:
    fault_proxy.fail("GET", MANIFESTS, 429, times=1, retry_after=1)
    async with RegistryClient(opts()) as client:
        await client.get_manifest(ref(fault_proxy, "library/python", py_tag[0]))
    assert count(fault_proxy, "GET", MANIFESTS) == 2


# -- deadlines and byte caps -----------------------------------------------------------


async def test_slow_dripping_body_hits_the_deadline(
    fault_proxy: FaultProxy, py_tag: tuple[str, str]
) -> None:
    # Twenty bytes a second: no single read times out and the 4 MiB cap is far away.
    fault_proxy.endless_body(
        "GET", MANIFESTS, chunk=b" ", interval=0.05, headers={"Content-Type": "application/json"}
    )
    async with RegistryClient(opts(timeout=1.0, max_retries=0)) as client:
        started = time.monotonic()
        with pytest.raises(errors.RegistryUnreachable, match="time limit"):
            await client.get_manifest(ref(fault_proxy, "library/python", py_tag[0]))
    assert time.monotonic() - started < 8  # the body never ends; the delay is 10 s


async def test_no_answer_hits_the_deadline(
    fault_proxy: FaultProxy, py_tag: tuple[str, str]
) -> None:
    fault_proxy.delay("GET", MANIFESTS, 10)
    async with RegistryClient(opts(timeout=0.5, max_retries=1)) as client:
        started = time.monotonic()
        with pytest.raises(errors.RegistryUnreachable):
            await client.get_manifest(ref(fault_proxy, "library/python", py_tag[0]))
    assert time.monotonic() - started < 8  # the body never ends; the delay is 10 s
    assert count(fault_proxy, "GET", MANIFESTS) == 2


async def test_endless_blob_hits_the_byte_cap(
    fault_proxy: FaultProxy, registry: Registry, py_tag: tuple[str, str]
) -> None:
    config = registry.seeded["library/python"].image(py_tag[0]).config_digest
    fault_proxy.endless_body("GET", r"/blobs/")
    async with RegistryClient(opts()) as client:
        started = time.monotonic()
        with pytest.raises(errors.TooLarge):
            await client.get_blob(
                ref(fault_proxy, "library/python"), Digest.parse(config), max_bytes=1 << 20
            )
    assert time.monotonic() - started < 3


async def test_decompression_bomb_hits_the_byte_cap(
    fault_proxy: FaultProxy, py_tag: tuple[str, str]
) -> None:
    bomb = gzip.compress(b"{" + b" " * (64 << 20), compresslevel=9)
    assert len(bomb) < 1 << 20
    fault_proxy.respond("GET", MANIFESTS, 200, bomb, {"Content-Encoding": "gzip"})
    async with RegistryClient(opts()) as client:
        with pytest.raises(errors.TooLarge):
            await client.get_manifest(ref(fault_proxy, "library/python", py_tag[0]))
