"""portside.query against real registries: every field and operator, merged sources,
latest, and the planner's request counts (through the recording proxy)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from harness import seed
from harness.catalog import MANY_TAGS_REPO
from harness.images import Blob, Image, build_image, build_index, canonical_json
from harness.proxy import FaultProxy
from harness.registry import Registry, RegistryFactory
from portside.cache import CachedRegistry, CacheStore
from portside.query import NoMatch, Result, latest, resolve_one, run_query
from portside.reference import Reference

pytestmark = pytest.mark.timeout(120)

NOW = dt.datetime(2026, 7, 1, tzinfo=dt.timezone.utc)
REVISION = "org.opencontainers.image.revision"
SOURCE = "org.opencontainers.image.source"


@pytest.fixture
def store(tmp_path: Path) -> CacheStore:
    return CacheStore(str(tmp_path / "cache"))


@pytest.fixture
def cached(store: CacheStore) -> CachedRegistry:
    return CachedRegistry(store=store)


def with_annotations(image: Image, annotations: dict[str, str]) -> Image:
    doc = json.loads(image.manifest.data)
    doc["annotations"] = annotations
    manifest = Blob(image.manifest.media_type, canonical_json(doc))
    return dataclasses.replace(image, manifest=manifest)


# What acme/app holds (created dates and labels differ per build):
#   1.0.0            index amd64+arm64  2026-01-10  revision aaa111
#   1.1.0, v1.1.0    index amd64+arm64  2026-03-01  revision bbb222
#   1.2.0, 1.2       index amd64 only   2026-05-20  revision ccc333
#   1.3.0-rc1,latest index amd64+arm64  2026-06-10  revision ddd444  (latest is a pre-release!)
#   2.0.0-slim       single amd64       2026-06-20  revision eee555, manifest annotation
#   1.0.0-alpine     single arm64       2026-01-11  (a single image for another platform)
BUILDS: list[tuple[str, list[str], list[str] | None, str, str]] = [
    ("b100", ["1.0.0"], ["amd64", "arm64v8"], "2026-01-10T08:00:00Z", "aaa111"),
    ("b110", ["1.1.0", "v1.1.0"], ["amd64", "arm64v8"], "2026-03-01T08:00:00Z", "bbb222"),
    ("b120", ["1.2.0", "1.2"], ["amd64"], "2026-05-20T08:00:00Z", "ccc333"),
    ("b130", ["1.3.0-rc1", "latest"], ["amd64", "arm64v8"], "2026-06-10T08:00:00Z", "ddd444"),
    ("b200", ["2.0.0-slim"], None, "2026-06-20T08:00:00Z", "eee555"),
    ("b101", ["1.0.0-alpine"], ["arm64v8"], "2026-01-11T08:00:00Z", "aaa112"),
]


def seed_app(reg: Registry, repo: str = "acme/app") -> seed.SeedResult:
    for build, tags, archs, created, revision in BUILDS:
        labels = {REVISION: revision}
        artifact: seed.Artifact
        if archs is None:
            artifact = with_annotations(
                build_image(build, created=created, labels=labels),
                {SOURCE: "https://example.test/app"},
            )
        elif len(archs) == 1 and archs[0] != "amd64":
            artifact = build_image(build, arch=archs[0], created=created, labels=labels)
        else:
            artifact = build_index(build, archs, created=created, labels=labels)
        seed.push_image(reg, repo, artifact, tags, via="fs")
    return reg.seeded[repo]


@pytest.fixture
def app(plain_registry: Registry) -> Registry:
    seed_app(plain_registry)
    return plain_registry


async def query(cached: CachedRegistry, text: str, **kw: object) -> list[Result]:
    async with cached:
        return await run_query(text, cached, now=NOW, **kw)  # type: ignore[arg-type]


def tags_of(results: list[Result]) -> list[str]:
    return [r.tag for r in results]


# -- the tag stage: tag, version, variant ---------------------------------------------


async def test_default_order_is_newest_version_first(app: Registry, cached: CachedRegistry) -> None:
    results = await query(cached, app.ref("acme/app"))
    # Plain tags before their variants; tags that are not versions (latest) last.
    assert tags_of(results) == [
        "2.0.0-slim",
        "1.3.0-rc1",
        "1.2.0",
        "1.2",
        "1.1.0",
        "v1.1.0",
        "1.0.0",
        "1.0.0-alpine",
        "latest",
    ]
    seeded = app.seeded["acme/app"]
    for r in results:
        assert str(r.digest) == seeded.tags[r.tag]
        assert r.ref_text() == f"{app.host}/acme/app:{r.tag}@{r.digest}"


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ('tag = "1.2"', ["1.2"]),
        ("tag != latest and tag != 1.2 and version >= 1.2", ["2.0.0-slim", "1.3.0-rc1", "1.2.0"]),
        ('tag ~ "1.*.0"', ["1.2.0", "1.1.0", "1.0.0"]),
        ('tag ~ "1.?.0*"', ["1.3.0-rc1", "1.2.0", "1.1.0", "1.0.0", "1.0.0-alpine"]),
        ('tag =~ "^v?\\d+\\.\\d+\\.\\d+$"', ["1.2.0", "1.1.0", "v1.1.0", "1.0.0"]),
        ("tag in (latest, 1.2, nope)", ["1.2", "latest"]),
        ("tag not in (latest, 1.2) and version ~ 1.2", ["1.2.0"]),
        ("version ~ 1.1", ["1.1.0", "v1.1.0"]),
        ("version = 1.2", ["1.2"]),
        ("version != 1.2 and version < 1.1", ["1.0.0", "1.0.0-alpine"]),
        ("version > 1.2 and version <= 1.3", ["1.2.0"]),
        # "-rc1" is a pre-release of 1.3.0 (versions.py decides that): below 1.3.0.
        ("version > 1.2 and version <= 1.3.0", ["1.3.0-rc1", "1.2.0"]),
        ("version > 1.2 and version < 1.3.0", ["1.3.0-rc1", "1.2.0"]),
        ("version in (1.2.0, 2.0.0)", ["2.0.0-slim", "1.2.0"]),
        ("version ~ 1.3.0 and variant = rc1", []),
        ("version ~ 1.3.0rc1", ["1.3.0-rc1"]),
        ('variant = ""', ["1.3.0-rc1", "1.2.0", "1.2", "1.1.0", "v1.1.0", "1.0.0"]),
        ("variant = slim", ["2.0.0-slim"]),
        ('variant ~ "*l*"', ["2.0.0-slim", "1.0.0-alpine"]),
        ('variant =~ "^al"', ["1.0.0-alpine"]),
        ("variant in (rc1, slim)", ["2.0.0-slim"]),
        # latest has no variant: the condition is false for it, so its negation is true.
        ('not variant != ""', ["1.3.0-rc1", "1.2.0", "1.2", "1.1.0", "v1.1.0", "1.0.0", "latest"]),
        ("(tag = latest or tag = 1.2) and not tag = latest", ["1.2"]),
    ],
)
async def test_tag_fields_and_operators(
    app: Registry, cached: CachedRegistry, where: str, expected: list[str]
) -> None:
    assert tags_of(await query(cached, f"{app.ref('acme/app')} where {where}")) == expected


async def test_order_by_and_limit(app: Registry, cached: CachedRegistry) -> None:
    ref = app.ref("acme/app")
    assert tags_of(
        await query(cached, f"{ref} where version ~ 1 order by version asc limit 3")
    ) == [
        "1.0.0",
        "1.0.0-alpine",
        "1.1.0",
    ]
    assert tags_of(await query(cached, f"{ref} order by tag desc limit 2")) == ["v1.1.0", "latest"]
    by_created = await query(cached, f"{ref} where version ~ 1 order by created desc, tag")
    assert tags_of(by_created)[:3] == ["1.3.0-rc1", "1.2", "1.2.0"]
    assert by_created[0].created == dt.datetime(2026, 6, 10, 8, tzinfo=dt.timezone.utc)
    by_size = await query(cached, f"{ref} where tag in (1.0.0, 2.0.0-slim) order by size desc")
    sizes = [r.fields["size"] for r in by_size]
    assert sizes == sorted(sizes, reverse=True)  # type: ignore[type-var]


# -- the image stages: digest, created, age, label, annotation, size, platform --------


async def test_created_and_age(app: Registry, cached: CachedRegistry) -> None:
    ref = app.ref("acme/app")
    assert tags_of(await query(cached, f"{ref} where created < 2026-03-01 and version ~ 1")) == [
        "1.0.0",
        "1.0.0-alpine",
    ]
    # A date is a whole day: <= includes it, = is any moment of it.
    assert tags_of(await query(cached, f"{ref} where created <= 2026-03-01 and tag = 1.1.0")) == [
        "1.1.0"
    ]
    assert tags_of(await query(cached, f"{ref} where created = 2026-05-20")) == ["1.2.0", "1.2"]
    assert tags_of(
        await query(cached, f"{ref} where created = 2026-05-20T08:00:00Z and tag = 1.2")
    ) == ["1.2"]
    assert tags_of(await query(cached, f"{ref} where created > now - 30d")) == [
        "2.0.0-slim",
        "1.3.0-rc1",
        "latest",
    ]
    assert tags_of(await query(cached, f"{ref} where created >= 15d")) == ["2.0.0-slim"]
    assert tags_of(await query(cached, f"{ref} where age < 15d")) == ["2.0.0-slim"]
    old = await query(cached, f"{ref} where age >= 150d order by age desc")
    assert tags_of(old) == ["1.0.0", "1.0.0-alpine"]
    assert old[0].fields["age"] == int(
        (NOW - dt.datetime(2026, 1, 10, 8, tzinfo=dt.UTC)).total_seconds()
    )
    assert tags_of(await query(cached, f"{ref} where created != 2026-05-20 and age > 100d")) == [
        "1.1.0",
        "v1.1.0",
        "1.0.0",
        "1.0.0-alpine",
    ]


async def test_times_at_the_ends_of_the_calendar(app: Registry, cached: CachedRegistry) -> None:
    ref = app.ref("acme/app")
    assert len(await query(cached, f"{ref} where created > now - 99999999d")) == 9
    assert len(await query(cached, f"{ref} where created <= 9999-12-31")) == 9
    assert await query(cached, f"{ref} where created < 0001-01-01") == []
    assert await query(cached, f"{ref} where created > now + 99999999d") == []


async def test_labels_annotations_and_digests(app: Registry, cached: CachedRegistry) -> None:
    ref = app.ref("acme/app")
    seeded = app.seeded["acme/app"]
    results = await query(cached, f'{ref} where label["{REVISION}"] = "bbb222"')
    assert tags_of(results) == ["1.1.0", "v1.1.0"]
    assert results[0].fields == {f'label["{REVISION}"]': "bbb222"}
    assert tags_of(await query(cached, f"{ref} where label['{REVISION}'] ~ \"a*\"")) == [
        "1.0.0",
        "1.0.0-alpine",
    ]
    assert tags_of(await query(cached, f'{ref} where label["{REVISION}"] =~ "^e"')) == [
        "2.0.0-slim"
    ]
    assert tags_of(await query(cached, f'{ref} where label["missing"] != "x"')) == []
    assert tags_of(await query(cached, f'{ref} where not label["missing"] = "x" limit 1')) == [
        "2.0.0-slim"
    ]
    assert tags_of(await query(cached, f'{ref} where annotation["{SOURCE}"] ~ "https://*"')) == [
        "2.0.0-slim"
    ]
    assert tags_of(
        await query(cached, f'{ref} where annotation["{SOURCE}"] in ("https://example.test/app")')
    ) == ["2.0.0-slim"]
    digest = seeded.tags["1.2.0"]
    assert tags_of(await query(cached, f"{ref} where digest = {digest}")) == ["1.2.0", "1.2"]
    assert tags_of(await query(cached, f'{ref} where digest ~ "{digest[:15]}*"')) == [
        "1.2.0",
        "1.2",
    ]
    assert tags_of(
        await query(cached, f'{ref} where digest =~ "{digest[7:20]}" and tag != 1.2')
    ) == ["1.2.0"]
    # The platform manifest's digest matches too.
    child = seed.platform_digest(seeded, "1.1.0", "arm64v8")
    assert tags_of(
        await query(cached, f"{ref} where digest in ({child}) and platform = linux/arm64")
    ) == ["1.1.0", "v1.1.0"]


async def test_size_is_the_compressed_platform_image(app: Registry, cached: CachedRegistry) -> None:
    ref = app.ref("acme/app")
    image = app.seeded["acme/app"].image("2.0.0-slim").artifact
    assert isinstance(image, Image)
    size = image.config.size + sum(layer.size for layer in image.layers)
    results = await query(cached, f"{ref} where tag = 2.0.0-slim and size = {size}")
    assert tags_of(results) == ["2.0.0-slim"]
    assert results[0].fields == {"tag": "2.0.0-slim", "size": size}
    assert tags_of(await query(cached, f"{ref} where size > 1MB")) == []
    assert len(await query(cached, f"{ref} where size < 1KiB or size >= 1KiB")) == 9


async def test_platform_conditions_make_rows_per_platform(
    app: Registry, cached: CachedRegistry
) -> None:
    ref = app.ref("acme/app")
    seeded = app.seeded["acme/app"]
    arm = await query(cached, f"{ref} where platform = linux/arm64 and version ~ 1")
    assert tags_of(arm) == ["1.3.0-rc1", "1.1.0", "v1.1.0", "1.0.0", "1.0.0-alpine"]
    first = arm[0]
    assert str(first.platform) == "linux/arm64/v8"
    assert str(first.digest) == seeded.tags["1.3.0-rc1"]
    assert str(first.platform_digest) == seed.platform_digest(seeded, "1.3.0-rc1", "arm64v8")
    assert first.ref_text(platform_manifest=True).endswith(f"@{first.platform_digest}")
    assert first.to_json()["platformDigest"] == str(first.platform_digest)
    # A single-platform image: its platform comes from its config.
    alpine = arm[-1]
    assert alpine.platform_digest == alpine.digest
    both = await query(cached, f"{ref} where arch in (amd64, aarch64) and tag = 1.0.0")
    assert [str(r.platform) for r in both] == ["linux/amd64", "linux/arm64/v8"]
    assert tags_of(
        await query(cached, f"{ref} where os = LINUX and arch = amd64 and tag = 1.2")
    ) == ["1.2"]
    assert tags_of(await query(cached, f'{ref} where platform ~ "*/arm64*" and tag ~ "2*"')) == []
    assert tags_of(await query(cached, f'{ref} where platform =~ "amd64$" and tag ~ "2*"')) == [
        "2.0.0-slim"
    ]
    assert [
        str(r.platform) for r in await query(cached, f"{ref} where arch != amd64 and tag = 1.2")
    ] == []
    assert tags_of(
        await query(cached, f'{ref} where os ~ "lin*" and arch =~ "^arm" and tag ~ "1.1*"')
    ) == ["1.1.0"]
    assert tags_of(
        await query(
            cached, f"{ref} where platform in (linux/arm64, linux/s390x) and created < 2026-03-01"
        )
    ) == ["1.0.0", "1.0.0-alpine"]


async def test_the_issue_example_on_official_images(
    registry: Registry, cached: CachedRegistry
) -> None:
    ref = registry.ref("library/python")
    results = await query(
        cached,
        f'{ref} where version ~ 3.12 and variant = "slim-bookworm" and platform = linux/arm64 '
        "and created < 2026-09-01 order by version desc limit 1",
    )
    assert len(results) == 1
    (result,) = results
    seeded = registry.seeded["library/python"]
    assert result.tag.startswith("3.12.") and result.tag.endswith("-slim-bookworm")
    assert str(result.digest) == seeded.tags[result.tag]
    assert str(result.platform_digest) == seed.platform_digest(seeded, result.tag, "arm64v8")
    assert result.created == dt.datetime(2026, 8, 21, tzinfo=dt.timezone.utc)
    data = result.to_json()
    assert set(data) == {
        "repository",
        "tag",
        "reference",
        "digest",
        "platformDigest",
        "platform",
        "created",
        "fields",
    }
    assert data["created"] == "2026-08-21T00:00:00Z"
    assert json.loads(json.dumps(data)) == data


async def test_docker_lists_and_single_platform_images(
    registry: Registry, cached: CachedRegistry
) -> None:
    alpine = await query(
        cached, f"{registry.ref('library/alpine')} where arch = s390x and version ~ 3.23"
    )
    assert tags_of(alpine) == ["3.23.5", "3.23"]
    assert all(str(r.platform) == "linux/s390x" for r in alpine)
    debian = await query(
        cached, f"{registry.ref('library/debian')} where platform = linux/amd64 and version ~ 12"
    )
    assert "12.15" in tags_of(debian)
    assert all(r.platform_digest == r.digest for r in debian)  # single images
    nginx = await query(cached, f"{registry.ref('library/nginx')} where arch = arm64")
    assert nginx == []  # single amd64 images only


# -- several sources: one virtual repository -------------------------------------------


async def test_sources_on_two_registries_are_merged(
    app: Registry, registry_factory: RegistryFactory, cached: CachedRegistry
) -> None:
    mirror = registry_factory()
    seed.push_image(
        mirror,
        "mirror/app",
        build_index("b120", ["amd64"], created="2026-05-20T08:00:00Z", labels={REVISION: "ccc333"}),
        ["1.2.0"],
        via="fs",
    )
    seed.push_image(
        mirror,
        "mirror/app",
        build_image("b140", created="2026-06-25T08:00:00Z", labels={REVISION: "fff666"}),
        ["1.4.0"],
        via="fs",
    )
    text = f"{app.ref('acme/app')}, {mirror.ref('mirror/app')} where version ~ 1 and variant = ''"
    results = await query(cached, text)
    assert [(r.repository.name, r.tag) for r in results] == [
        (f"{mirror.host}/mirror/app", "1.4.0"),
        (f"{app.host}/acme/app", "1.3.0-rc1"),
        (f"{app.host}/acme/app", "1.2.0"),  # a tie: the sources' order decides
        (f"{mirror.host}/mirror/app", "1.2.0"),
        (f"{app.host}/acme/app", "1.2"),
        (f"{app.host}/acme/app", "1.1.0"),
        (f"{app.host}/acme/app", "v1.1.0"),
        (f"{app.host}/acme/app", "1.0.0"),
    ]
    assert results[2].digest == results[3].digest  # the same image in both
    newest = await query(cached, text + " order by created desc limit 1")
    assert newest[0].ref_text().startswith(f"{mirror.host}/mirror/app:1.4.0@sha256:")
    revision = await query(
        cached,
        f'{app.ref("acme/app")},{mirror.ref("mirror/app")} where label["{REVISION}"] = fff666',
    )
    assert [(r.repository.name, r.tag) for r in revision] == [
        (f"{mirror.host}/mirror/app", "1.4.0")
    ]


# -- latest and the policy hook ---------------------------------------------------------


async def test_latest_is_computed_never_trusted(app: Registry, cached: CachedRegistry) -> None:
    base = Reference.parse(app.ref("acme/app"))
    seeded = app.seeded["acme/app"]
    async with cached:
        newest = await latest(base, cached)
        assert newest is not None
        # `latest` points at 1.3.0-rc1; the newest *release* is 1.2.0.
        assert newest.tag == "1.2.0"
        assert str(newest.digest) == seeded.tags["1.2.0"]
        assert (await latest(base.with_tag("latest"), cached)).tag == "1.2.0"  # type: ignore[union-attr]
        # The line is the one `portside check` judges staleness by (Renovate's): the
        # same variant and number of version parts, so 1.0.0's newest is 1.2.0.
        assert (await latest(base.with_tag("1.0.0"), cached)).tag == "1.2.0"  # type: ignore[union-attr]
        assert (await latest(base.with_tag("1.2"), cached)).tag == "1.2"  # type: ignore[union-attr]
        slim = await latest(base.with_tag("2.0.0-slim"), cached)
        assert (
            slim is not None
            and slim.ref_text() == f"{base.name}:2.0.0-slim@{seeded.tags['2.0.0-slim']}"
        )
        assert await latest(base.with_tag("9.9-nothing"), cached) is None


async def test_resolve_one_is_the_pin_hook(app: Registry, cached: CachedRegistry) -> None:
    ref = app.ref("acme/app")
    async with cached:
        one = await resolve_one(
            f'{ref} where variant = "" and created < now - 60d', cached, now=NOW
        )
        assert one.tag == "1.1.0"
        with pytest.raises(NoMatch) as info:
            await resolve_one(f"{ref} where tag = nothing", cached, now=NOW)
    assert info.value.exit_code == 1


# -- the planner, counted at the wire ---------------------------------------------------

ProxyFactory = Callable[..., FaultProxy]


def count(proxy: FaultProxy, fragment: str, method: str | None = None) -> int:
    return sum(
        1 for r in proxy.requests if fragment in r.path and (method is None or r.method == method)
    )


async def test_tag_decided_queries_make_no_manifest_requests_and_warm_ones_none(
    registry: Registry, proxy_factory: ProxyFactory, store: CacheStore
) -> None:
    proxy = proxy_factory(registry)
    text = f'{proxy.host}/{MANY_TAGS_REPO} where version ~ 1.20 and not tag ~ "*5"'
    async with CachedRegistry(store=store) as cached:
        listed = await run_query(text, cached, resolve=False)
    assert len(listed) == 90 and listed[0].tag == "1.20.99" and listed[0].digest is None
    assert count(proxy, "/tags/list") >= 1
    assert count(proxy, "/manifests/") == 0 and count(proxy, "/blobs/") == 0

    # Resolving digests: one HEAD per result (after the limit), no bodies.
    async with CachedRegistry(store=store) as cached:
        top3 = await run_query(text + " limit 3", cached)
    assert tags_of(top3) == ["1.20.99", "1.20.98", "1.20.97"]
    seeded = registry.seeded[MANY_TAGS_REPO]
    assert [str(r.digest) for r in top3] == [seeded.tags[t] for t in tags_of(top3)]
    assert count(proxy, "/manifests/", "HEAD") == 3
    assert count(proxy, "/manifests/", "GET") == 0

    # The same query again on the same cache store: nothing at all reaches the registry.
    seen = len(proxy.requests)
    async with CachedRegistry(store=store) as cached:
        again = await run_query(text + " limit 3", cached)
    assert again == top3
    assert len(proxy.requests) == seen


async def test_early_stop_and_one_fetch_per_image(
    registry: Registry, proxy_factory: ProxyFactory, store: CacheStore
) -> None:
    proxy = proxy_factory(registry)
    ref = f"{proxy.host}/{MANY_TAGS_REPO}"
    # many-tags: tag i is image i % 10, created i % 10 hours after 2024-01-01.
    async with CachedRegistry(store=store) as cached:
        first = await run_query(
            f"{ref} where created >= 2024-01-01T09:00:00Z order by version desc limit 1", cached
        )
    assert tags_of(first) == ["1.20.99"]  # the newest candidate matched: checking stopped
    assert count(proxy, "/manifests/", "GET") == 1
    assert count(proxy, "/blobs/", "GET") == 1

    before_manifests = count(proxy, "/manifests/", "GET")
    before_blobs = count(proxy, "/blobs/", "GET")
    async with CachedRegistry(store=store) as cached:
        oldest_image = await run_query(
            f"{ref} where created < 2024-01-01T01:00:00Z order by version desc limit 1", cached
        )
    assert tags_of(oldest_image) == ["1.20.90"]
    # Ten candidates (1.20.99 .. 1.20.90) are needed; batches of 1, 2, 4, 8 check 15.
    manifests = count(proxy, "/manifests/", "GET") - before_manifests
    assert 10 <= manifests <= 15
    # Ten distinct images at most, one of them already cached: each config once.
    assert count(proxy, "/blobs/", "GET") - before_blobs <= 9

    # Without a tag order nothing can stop early, but every image is still read once.
    seen_blobs = count(proxy, "/blobs/", "GET")
    async with CachedRegistry(store=store) as cached:
        newest = await run_query(
            f"{ref} where version ~ 1.19 order by created desc, version desc limit 2", cached
        )
    assert tags_of(newest) == ["1.19.99", "1.19.89"]
    assert count(proxy, "/blobs/", "GET") - seen_blobs == 0  # all ten configs were cached


async def test_unknown_repository_is_a_registry_error(
    registry: Registry, cached: CachedRegistry
) -> None:
    from portside.errors import NotFound

    with pytest.raises(NotFound):
        await query(cached, registry.ref("nobody/here"))


async def test_fetches_run_concurrently_but_bounded(
    registry: Registry, proxy_factory: ProxyFactory, store: CacheStore
) -> None:
    proxy = proxy_factory(registry)
    proxy.delay("GET", r"/manifests/", 0.5)
    # Ten tags (1.5.10 .. 1.5.19) whose created date must be read: ten slow manifests.
    text = f'{proxy.host}/{MANY_TAGS_REPO} where tag ~ "1.5.1?" and created > 2020-01-01'
    async with CachedRegistry(store=store) as cached:
        results = await run_query(text, cached, concurrency=4)
    assert len(results) == 10
    assert count(proxy, "/manifests/", "GET") == 10
    # Each answer takes at least 0.5 s, so a request that arrived less than 0.5 s before
    # another was still in flight when that one arrived: overlap, not speed, is measured.
    arrivals = sorted(
        r.when for r in proxy.requests if r.method == "GET" and "/manifests/" in r.path
    )
    in_flight = [sum(1 for a in arrivals[:i] if a > t - 0.5) + 1 for i, t in enumerate(arrivals)]
    assert 2 <= max(in_flight) <= 4, in_flight
