"""The metadata cache (portside.cache) against the real registry.

"No request" is proven by routing the client through the harness's recording proxy and
counting what reached it, or by stopping the proxy altogether.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from harness import seed
from harness.catalog import MANY_TAGS_COUNT, MANY_TAGS_REPO
from harness.proxy import FaultProxy
from harness.registry import Registry
from harness.skopeo import Skopeo
from harness.storage import FsStorage
from portside.cache import (
    CachedRegistry,
    CacheStore,
    NeedsNetwork,
    default_cache_dir,
    entry_file_name,
)
from portside.errors import CacheMiss, DigestMismatch, NotFound, UsageError
from portside.reference import Digest, Reference

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parent.parent

ProxyFactory = Callable[..., FaultProxy]


class Clock:
    """A settable clock so TTLs are tested without sleeping."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def count(proxy: FaultProxy, fragment: str, method: str | None = None) -> int:
    return sum(
        1 for r in proxy.requests if fragment in r.path and (method is None or r.method == method)
    )


def registry_requests(proxy: FaultProxy) -> int:
    """Requests that asked the registry something (the scheme probe and ping excluded)."""
    return sum(1 for r in proxy.requests if r.path.startswith("/v2/") and r.path != "/v2/")


@pytest.fixture
def store(tmp_path: Path) -> CacheStore:
    return CacheStore(str(tmp_path / "cache"))


@pytest.fixture
def app_registry(plain_registry: Registry) -> Registry:
    """A registry of this test's own, holding ``app/web`` tagged 1.0 and 1.1."""
    seed.push_image(plain_registry, "app/web", seed.build_image("web-1"), ["1.0"], via="fs")
    seed.push_image(plain_registry, "app/web", seed.build_image("web-2"), ["1.1"], via="fs")
    return plain_registry


def cached_for(store: CacheStore, **kwargs: object) -> CachedRegistry:
    return CachedRegistry(store=store, **kwargs)  # type: ignore[arg-type]


def publish_1_2(registry: Registry) -> None:
    """The registry moves on: a new image of ``app/web``, tagged 1.2."""
    seed.push_image(registry, "app/web", seed.build_image("web-3"), ["1.2"], via="fs")


async def stale_cached_tags(
    store: CacheStore, clock: Clock, ref: Reference, registry: Registry
) -> None:
    """Leave ``app/web``'s tag list in the cache stale and behind the registry: cached
    as 1.0 and 1.1, then 1.2 published and an hour gone by."""
    async with cached_for(store, clock=clock) as warmup:
        await warmup.tags(ref)
    publish_1_2(registry)
    clock.now += 3600


# -- the store ----------------------------------------------------------------------------


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PORTSIDE_CACHE_DIR", str(tmp_path / "explicit"))
    assert default_cache_dir() == str(tmp_path / "explicit")
    monkeypatch.delenv("PORTSIDE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == str(tmp_path / "xdg" / "portside")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == str(tmp_path / "home" / ".cache" / "portside")


@pytest.mark.parametrize(
    "parts",
    [
        ("..", "..", ".."),
        ("registry", "../../etc/passwd"),
        ("a/b", "c"),
        ("/abs", "x"),
        ("x\0y", "z"),
        ("ÄÖ", "Latest"),
        ("h" * 300, "r" * 300),
    ],
)
def test_entry_names_cannot_escape(parts: tuple[str, ...]) -> None:
    name = entry_file_name(parts)
    assert name.endswith(".json")
    stem = name[: -len(".json")]
    assert set(stem) <= set("abcdefghijklmnopqrstuvwxyz0123456789_-%+")
    assert len(name) <= 210
    assert "/" not in name
    assert ".." not in name


def test_entry_names_are_distinct() -> None:
    keys = [
        ("a", "b+c"),
        ("a+b", "c"),
        ("a", "b", "c"),
        ("A", "b"),
        ("a", "b"),
        ("a", "B"),
        ("a.b", "c"),
        ("a%2eb", "c"),
    ]
    names = {entry_file_name(k) for k in keys}
    assert len(names) == len(keys)
    assert entry_file_name(("127.0.0.1:5000", "library/python")) == (
        "127%2e0%2e0%2e1%3a5000+library%2fpython.json"
    )


def test_entries_round_trip_and_tolerate_damage(store: CacheStore) -> None:
    key = ("tags", "example.com", "team/app")
    store.put_entry(key, ["1", "2"], fetched_at=123.5, etag='"abc"')
    entry = store.get_entry(key)
    assert entry is not None
    assert (entry.value, entry.fetched_at, entry.etag) == (["1", "2"], 123.5, '"abc"')
    path = Path(store._entry_path(key))
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    good = path.read_bytes()
    for damaged in (good[: len(good) // 2], b"", b"\xff\xfe", b"[]", b"null", b'{"key": 1}'):
        path.write_bytes(damaged)
        assert store.get_entry(key) is None
    # An entry filed under another key (a hash collision, a copied file) is not served.
    doc = json.loads(good)
    doc["key"] = ["tags", "example.com", "other/app"]
    path.write_text(json.dumps(doc))
    assert store.get_entry(key) is None
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_reading_entries_needs_no_json_module(store: CacheStore) -> None:
    tags_key = ("tags", "example.com", "team/app")
    store.put_entry(tags_key, ["1.0", "1.1"], fetched_at=1.5, etag='"x"')
    resolve_key = ("resolve", "example.com", "team/app", "1.0")
    descriptor = {"mediaType": "application/json", "digest": "sha256:" + "a" * 64, "size": 3}
    store.put_entry(resolve_key, descriptor, fetched_at=2.0)
    store.remember_images(["example.com/team/app"])
    code = textwrap.dedent(
        f"""
        import sys
        from portside.cache import CacheStore
        store = CacheStore({str(Path(store.root).parent)!r})
        tags = store.get_entry({tags_key!r})
        resolved = store.get_entry({resolve_key!r})
        print(tags.value, tags.fetched_at, tags.etag, resolved.value, store.recent_images())
        print(sorted(m for m in ("json", "re", "enum", "functools") if m in sys.modules))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.splitlines()
    assert out[0] == f"['1.0', '1.1'] 1.5 \"x\" {descriptor!r} ['example.com/team/app']"
    assert out[1] == "[]"


def test_blobs_are_verified_on_write_and_read(store: CacheStore) -> None:
    data = b'{"architecture":"amd64","os":"linux"}'
    digest = Digest.of(data)
    store.put_blob(digest, data + b" ")  # does not match: refused
    assert store.get_blob(digest) is None
    store.put_blob(digest, data)
    assert store.get_blob(digest) == data
    path = Path(store._digest_path("blobs", digest))
    path.write_bytes(data[:-1] + b"X")  # bit rot, a torn write, an edit
    assert store.get_blob(digest) is None
    assert not path.exists(), "a corrupt file is dropped so it is refetched"


async def test_corrupt_manifest_file_is_a_miss_then_refetched(
    registry: Registry, proxy_factory: ProxyFactory, store: CacheStore
) -> None:
    proxy = proxy_factory(registry)
    ref = Reference.parse(f"{proxy.host}/library/debian:bookworm")
    async with cached_for(store) as cached:
        first = await cached.manifest(ref)
    path = Path(store._digest_path("manifests", first.digest))
    raw = path.read_bytes()
    path.write_bytes(raw.replace(b'"schemaVersion":2', b'"schemaVersion":3'))
    assert store.get_manifest(first.digest, where="test") is None
    before = count(proxy, "/manifests/", "GET")
    async with cached_for(store) as cached:
        again = await cached.manifest(ref)
    assert again.raw == first.raw
    assert count(proxy, "/manifests/", "GET") == before + 1
    assert store.get_manifest(first.digest, where="test") is not None


# -- hits make no requests ----------------------------------------------------------------


async def test_warm_tags_make_no_request_even_with_the_registry_gone(
    registry: Registry, proxy_factory: ProxyFactory, store: CacheStore
) -> None:
    proxy = proxy_factory(registry)
    ref = Reference.parse(f"{proxy.host}/{MANY_TAGS_REPO}")
    async with cached_for(store) as cached:
        tags = await cached.tags(ref)
    assert len(tags) == MANY_TAGS_COUNT
    assert count(proxy, "/tags/list") >= 1
    seen = len(proxy.requests)
    # A new instance (as a new process would be) answers from disk.
    async with cached_for(store) as cached:
        assert await cached.tags(ref) == tags
        assert cached._client is None, "no client was even created"
    assert len(proxy.requests) == seen
    proxy.stop()
    async with cached_for(store) as cached:
        assert await cached.tags(ref) == tags
    # And without an event loop at all.
    cached = cached_for(store)
    assert cached.run_from_cache(cached.tags(ref)) == tags


async def test_warm_inspect_chain_makes_no_request(
    registry: Registry, proxy_factory: ProxyFactory, store: CacheStore
) -> None:
    from portside.images import inspect

    proxy = proxy_factory(registry)
    ref = Reference.parse(f"{proxy.host}/library/python:3.13")
    async with cached_for(store) as cached:
        cold = await inspect(cached, ref)
    seen = len(proxy.requests)
    proxy.stop()
    cached = cached_for(store)
    warm = cached.run_from_cache(inspect(cached, ref))
    assert warm == cold
    assert len(proxy.requests) == seen


def test_run_from_cache_needs_network_on_a_cold_cache(store: CacheStore) -> None:
    cached = cached_for(store)
    ref = Reference.parse("127.0.0.1:9/nothing/here:1")
    with pytest.raises(NeedsNetwork):
        cached.run_from_cache(cached.tags(ref))
    with pytest.raises(NeedsNetwork):
        cached.run_from_cache(cached.manifest(ref))


# -- freshness ----------------------------------------------------------------------------


async def test_fresh_then_stale_refreshes_inline(
    app_registry: Registry, proxy_factory: ProxyFactory, store: CacheStore
) -> None:
    proxy = proxy_factory(app_registry)
    clock = Clock()
    ref = Reference.parse(f"{proxy.host}/app/web")
    async with cached_for(store, clock=clock, tags_ttl=60) as cached:
        assert sorted(await cached.tags(ref)) == ["1.0", "1.1"]
        publish_1_2(app_registry)
        clock.now += 59
        assert sorted(await cached.tags(ref)) == ["1.0", "1.1"], "fresh: no refetch"
        assert count(proxy, "/tags/list") == 1
        clock.now += 2
        assert sorted(await cached.tags(ref)) == ["1.0", "1.1", "1.2"], "stale: refetched"
        assert count(proxy, "/tags/list") == 2
        assert cached.warnings == []


async def test_stale_tag_list_revalidates_with_etag(
    app_registry: Registry, proxy_factory: ProxyFactory, store: CacheStore
) -> None:
    """distribution sends no ETag on tag lists; registries that do (the proxy adds one
    here) are asked with If-None-Match, and a 304 keeps the cached list."""
    proxy = proxy_factory(app_registry)
    proxy.set_headers("GET", r"/tags/list$", {"ETag": '"tags-v1"'}, times=1)
    clock = Clock()
    ref = Reference.parse(f"{proxy.host}/app/web")
    async with cached_for(store, clock=clock, tags_ttl=60) as cached:
        assert sorted(await cached.tags(ref)) == ["1.0", "1.1"]
        unchanged = proxy.respond("GET", r"/tags/list$", 304, b"", times=1, content_type=None)
        clock.now += 61
        assert sorted(await cached.tags(ref)) == ["1.0", "1.1"]
        assert unchanged.hits == 1
        conditional = [r for r in proxy.requests if r.path.endswith("/tags/list")][-1]
        assert conditional.header("if-none-match") == '"tags-v1"'
        # The 304 renewed the entry: fresh again, no request within the TTL.
        clock.now += 59
        await cached.tags(ref)
        assert count(proxy, "/tags/list") == 2
        # Past the TTL, a registry answering 200 replaces the list (and its ETag).
        publish_1_2(app_registry)
        clock.now += 2
        assert sorted(await cached.tags(ref)) == ["1.0", "1.1", "1.2"]
    assert store.get_entry(("tags", ref.registry, "anonymous", ref.repository)).etag is None  # type: ignore[union-attr]


async def test_stale_while_revalidate(
    app_registry: Registry, proxy_factory: ProxyFactory, store: CacheStore
) -> None:
    proxy = proxy_factory(app_registry)
    clock = Clock()
    ref = Reference.parse(f"{proxy.host}/app/web")
    await stale_cached_tags(store, clock, ref, app_registry)
    # Slow registry: the stale answer must not wait for it.
    proxy.delay("GET", r"/tags/list$", 1.0)
    async with cached_for(store, clock=clock, allow_stale=True) as cached:
        answers = await asyncio.gather(*(cached.tags(ref) for _ in range(5)))
        # Answered while the refresh (delayed 1 s at the proxy) is still on its way.
        assert _inflight(cached), "the stale answers waited for the refresh"
        assert all(sorted(a) == ["1.0", "1.1"] for a in answers)
        await cached.drain()
        assert count(proxy, "/tags/list") == 2, "one background refresh for five callers"
        # The refresh landed: fresh again, with the new tag, and no further request.
        assert sorted(await cached.tags(ref)) == ["1.0", "1.1", "1.2"]
        assert count(proxy, "/tags/list") == 2


async def test_fetched_counts_answers_from_the_registry_not_from_the_cache(
    app_registry: Registry, proxy_factory: ProxyFactory, store: CacheStore
) -> None:
    proxy = proxy_factory(app_registry)
    clock = Clock()
    ref = Reference.parse(f"{proxy.host}/app/web")
    await stale_cached_tags(store, clock, ref, app_registry)
    async with cached_for(store, clock=clock, allow_stale=True) as cached:
        assert cached.fetched == 0
        assert sorted(await cached.tags(ref)) == ["1.0", "1.1"]  # stale, refreshing
        await cached.drain()
        # The background refresh landed: what the cache answers may have changed.
        assert cached.fetched == 1
        assert sorted(await cached.tags(ref)) == ["1.0", "1.1", "1.2"]
        await cached.drain()
        assert cached.fetched == 1  # answered from the cache: nothing new
        proxy.stop()
        clock.now += 3600
        await cached.tags(ref)  # stale again; its refresh fails
        await cached.drain()
        assert cached.fetched == 1, "a failed fetch brought nothing new"


async def test_concurrent_inline_refreshes_share_one_request(
    app_registry: Registry, proxy_factory: ProxyFactory, store: CacheStore
) -> None:
    proxy = proxy_factory(app_registry)
    clock = Clock()
    ref = Reference.parse(f"{proxy.host}/app/web:1.0")
    async with cached_for(store, clock=clock) as cached:
        await cached.tags(ref)
        await cached.resolve(ref)
        clock.now += 3600
        proxy.delay(None, r"/(tags/list|manifests/1\.0)$", 0.3)
        results = await asyncio.gather(
            *(cached.tags(ref) for _ in range(4)), *(cached.resolve(ref) for _ in range(4))
        )
    # One request each to fill the cache, then one each for eight stale callers.
    assert count(proxy, "/tags/list") == 2
    assert count(proxy, "/manifests/1.0", "HEAD") == 2
    assert len({str(r) for r in results[4:]}) == 1


async def test_stale_tag_revalidates_with_head_only(
    app_registry: Registry, proxy_factory: ProxyFactory, store: CacheStore
) -> None:
    proxy = proxy_factory(app_registry)
    clock = Clock()
    ref = Reference.parse(f"{proxy.host}/app/web:1.0")
    async with cached_for(store, clock=clock) as cached:
        first = await cached.manifest(ref)
    assert count(proxy, "/manifests/", "GET") == 1  # one GET gave digest and body
    assert count(proxy, "/manifests/", "HEAD") == 0
    clock.now += 3600
    async with cached_for(store, clock=clock) as cached:
        again = await cached.manifest(ref)
    assert again.digest == first.digest
    assert count(proxy, "/manifests/", "HEAD") == 1
    assert count(proxy, "/manifests/", "GET") == 1, "unchanged digest: body from the cache"
    # The tag moves: HEAD sees the new digest, the new body is fetched by digest.
    moved = seed.push_image(app_registry, "app/web", seed.build_image("web-9"), ["1.0"], via="fs")
    clock.now += 3600
    async with cached_for(store, clock=clock) as cached:
        newer = await cached.manifest(ref)
    assert str(newer.digest) == moved.digest
    assert any(r.path.endswith(f"/manifests/{moved.digest}") for r in proxy.requests)


async def test_stale_answer_served_when_registry_unreachable(
    app_registry: Registry, proxy_factory: ProxyFactory, store: CacheStore
) -> None:
    proxy = proxy_factory(app_registry)
    clock = Clock()
    host = proxy.host
    ref = Reference.parse(f"{host}/app/web:1.1")
    async with cached_for(store, clock=clock) as cached:
        tags = await cached.tags(ref)
        descriptor = await cached.resolve(ref)
    clock.now += 7200
    proxy.stop()
    async with cached_for(store, clock=clock, options=_quick()) as cached:
        assert await cached.tags(ref) == tags
        assert await cached.resolve(ref) == descriptor
        assert len(cached.warnings) == 2
        assert all("cached 2 h ago" in w for w in cached.warnings)
        assert host in cached.warnings[0]


async def test_stale_answer_served_on_5xx_but_not_on_not_found(
    app_registry: Registry, proxy_factory: ProxyFactory, store: CacheStore
) -> None:
    proxy = proxy_factory(app_registry)
    clock = Clock()
    ref = Reference.parse(f"{proxy.host}/app/web:1.1")
    async with cached_for(store, clock=clock) as cached:
        await cached.resolve(ref)
    clock.now += 7200
    proxy.fail(None, r"/manifests/1\.1$", 503, times=None)
    async with cached_for(store, clock=clock, options=_quick()) as cached:
        await cached.resolve(ref)
        assert cached.warnings
        assert "cached" in cached.warnings[0]
    proxy.clear_rules()
    # "It answered no" is not "it did not answer": a deleted tag is not served stale.
    FsStorage(app_registry.root).untag("app/web", "1.1")
    async with cached_for(store, clock=clock) as cached:
        with pytest.raises(NotFound):
            await cached.resolve(ref)


async def test_refresh_bypasses_fresh_entries(
    app_registry: Registry, proxy_factory: ProxyFactory, store: CacheStore
) -> None:
    proxy = proxy_factory(app_registry)
    ref = Reference.parse(f"{proxy.host}/app/web")
    async with cached_for(store) as cached:
        await cached.tags(ref)
    async with cached_for(store, refresh=True) as cached:
        await cached.tags(ref)
    assert count(proxy, "/tags/list") == 2
    with pytest.raises(UsageError):
        cached_for(store, refresh=True, offline=True)


# -- offline ------------------------------------------------------------------------------


async def test_offline_serves_any_age_and_misses_clearly(
    app_registry: Registry, proxy_factory: ProxyFactory, store: CacheStore
) -> None:
    proxy = proxy_factory(app_registry)
    clock = Clock()
    ref = Reference.parse(f"{proxy.host}/app/web:1.0")
    async with cached_for(store, clock=clock) as cached:
        tags = await cached.tags(ref)
    clock.now += 86400 * 30
    proxy.stop()
    async with cached_for(store, clock=clock, offline=True) as cached:
        assert await cached.tags(ref) == tags
        with pytest.raises(CacheMiss) as miss:
            await cached.manifest(ref)
        assert cached._client is None
    assert "offline" in miss.value.message
    assert ref.familiar in miss.value.message
    assert miss.value.hint
    assert "without --offline" in miss.value.hint
    assert miss.value.exit_code == 5


# -- integrity ----------------------------------------------------------------------------


async def test_nothing_unverified_is_cached(
    registry: Registry, proxy_factory: ProxyFactory, store: CacheStore
) -> None:
    proxy = proxy_factory(registry)
    ref = Reference.parse(f"{proxy.host}/library/nginx:stable")
    proxy.corrupt("GET", r"/manifests/", times=None)
    async with cached_for(store) as cached:
        with pytest.raises(DigestMismatch):
            await cached.manifest(ref)
    root = Path(store.root)
    assert not list(root.glob("manifests/*/*"))
    assert not list(root.glob("resolve/*"))
    proxy.clear_rules()
    proxy.corrupt("GET", r"/blobs/", times=None)
    async with cached_for(store) as cached:
        manifest = await cached.manifest(ref)
        assert manifest.config is not None
        with pytest.raises(DigestMismatch):
            await cached.config(ref, manifest.config.digest)
    assert not list(root.glob("blobs/*/*"))


# -- agrees with skopeo -------------------------------------------------------------------


async def test_answers_match_skopeo(registry: Registry, store: CacheStore) -> None:
    skopeo = Skopeo.for_registry(registry)
    ref = Reference.parse(registry.ref("library/alpine", "3.24"))
    async with cached_for(store) as cached:
        tags = await cached.tags(ref)
        descriptor = await cached.resolve(ref)
        manifest = await cached.manifest(ref)
    assert tags == skopeo.list_tags(registry.ref("library/alpine"))
    assert str(descriptor.digest) == skopeo.digest(registry.ref("library/alpine", "3.24"))
    assert manifest.raw == skopeo.inspect_raw(registry.ref("library/alpine", "3.24"))
    assert str(descriptor.digest) == registry.seeded["library/alpine"].digest("3.24")


# -- several processes --------------------------------------------------------------------

_WRITER = textwrap.dedent(
    """
    import sys
    from portside.cache import CacheStore
    store = CacheStore(sys.argv[1])
    me = sys.argv[2]
    key = ("tags", "example.com", "shared/repo")
    value = [f"{me}-{i}" for i in range(20000)]
    bad = 0
    for n in range(60):
        store.put_entry(key, value, fetched_at=float(n))
        entry = store.get_entry(key)
        if entry is None or not isinstance(entry.value, list) or len(entry.value) != 20000:
            bad += 1
        elif len({t.split("-")[0] for t in entry.value}) != 1:
            bad += 1
    print(bad, store.write_errors)
    """
)


def test_processes_writing_one_key_at_once(tmp_path: Path) -> None:
    root = str(tmp_path / "cache")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, root, f"w{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for i in range(4)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
        assert out.split() == [b"0", b"0"], "every read saw one whole writer's value"
    entry = CacheStore(root).get_entry(("tags", "example.com", "shared/repo"))
    assert entry is not None
    assert len(entry.value) == 20000  # type: ignore[arg-type]
    leftovers = [p for p in Path(root).rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def _quick() -> object:
    """Client options that give up quickly (tests of unreachable registries)."""
    from portside.registry.transport import ClientOptions

    return ClientOptions(timeout=5.0, connect_timeout=2.0, max_retries=1, backoff_base=0.05)


# -- cancellation -------------------------------------------------------------------------


async def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition never became true"
        await asyncio.sleep(0.01)


def _inflight(cached: CachedRegistry) -> list[asyncio.Future[object]]:
    return list(cached._tasks)


async def test_cancelling_the_only_waiter_cancels_the_fetch(
    app_registry: Registry, proxy_factory: ProxyFactory, store: CacheStore
) -> None:
    proxy = proxy_factory(app_registry)
    ref = Reference.parse(f"{proxy.host}/app/web")
    proxy.delay("GET", r"/tags/list$", 5.0, times=1)
    async with cached_for(store) as cached:
        waiter = asyncio.ensure_future(cached.tags(ref))
        await _until(lambda: count(proxy, "/tags/list") == 1)
        (fetch,) = _inflight(cached)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        # The shared fetch (and the HTTP request under it) is cancelled, not awaited:
        # it ends while the proxy still holds the request back.
        await _until(fetch.done, timeout=3.0)
        assert fetch.cancelled()
        assert cached._inflight == {}
        # A new caller starts a fetch of its own (the delay rule is used up) and gets
        # an answer: it did not join the cancelled one.
        assert sorted(await cached.tags(ref)) == ["1.0", "1.1"]
        assert count(proxy, "/tags/list") == 2


async def test_a_waiter_that_stays_keeps_the_shared_fetch(
    app_registry: Registry, proxy_factory: ProxyFactory, store: CacheStore
) -> None:
    proxy = proxy_factory(app_registry)
    ref = Reference.parse(f"{proxy.host}/app/web")
    proxy.delay("GET", r"/tags/list$", 0.5, times=1)
    async with cached_for(store) as cached:
        first = asyncio.ensure_future(cached.tags(ref))
        second = asyncio.ensure_future(cached.tags(ref))
        await _until(lambda: count(proxy, "/tags/list") == 1)
        (fetch,) = _inflight(cached)
        first.cancel()
        assert sorted(await second) == ["1.0", "1.1"]
        assert first.cancelled() and not fetch.cancelled()
        assert count(proxy, "/tags/list") == 1


async def test_background_refresh_survives_a_cancelled_joiner(
    app_registry: Registry, proxy_factory: ProxyFactory, store: CacheStore
) -> None:
    proxy = proxy_factory(app_registry)
    clock = Clock()
    ref = Reference.parse(f"{proxy.host}/app/web")
    await stale_cached_tags(store, clock, ref, app_registry)
    proxy.delay("GET", r"/tags/list$", 0.5, times=1)
    async with cached_for(store, clock=clock, allow_stale=True) as cached:
        assert sorted(await cached.tags(ref)) == ["1.0", "1.1"]  # stale; refresh spawned
        (refresh,) = _inflight(cached)
        # A caller that needs the network joins the running refresh, then gives up.
        cached.allow_stale = False
        joiner = asyncio.ensure_future(cached.tags(ref))
        await asyncio.sleep(0.05)
        joiner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await joiner
        await cached.drain()
        assert not refresh.cancelled() and refresh.exception() is None
        cached.allow_stale = True
        assert sorted(await cached.tags(ref)) == ["1.0", "1.1", "1.2"]
        assert count(proxy, "/tags/list") == 2


async def test_catalog_is_cached_with_the_tags_ttl(
    app_registry: Registry, proxy_factory: ProxyFactory, store: CacheStore
) -> None:
    proxy = proxy_factory(app_registry)
    clock = Clock()
    async with cached_for(store, clock=clock, tags_ttl=60) as cached:
        assert "app/web" in await cached.catalog(proxy.host)
        assert "app/web" in await cached.catalog(proxy.host)
        assert count(proxy, "/v2/_catalog") == 1
        clock.now += 61
        await cached.catalog(proxy.host)
        assert count(proxy, "/v2/_catalog") == 2
    async with cached_for(store, offline=True, clock=clock) as offline:
        assert "app/web" in offline.run_from_cache(offline.catalog(proxy.host))
