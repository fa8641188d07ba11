"""Registry operations against the real registry, cross-checked with skopeo.

Tags, manifests, configs and blobs as read by Portside must be exactly what an
independent client (skopeo) sees; uploads must leave the registry holding exactly the
bytes we meant, whichever path (monolithic, chunked, mount) they took.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from harness import seed
from harness.proxy import FaultProxy, Recorder
from harness.registry import Registry, RegistryFactory
from harness.skopeo import Skopeo
from portside import errors
from portside.reference import Digest, Reference
from portside.registry import mediatypes as mt
from portside.registry.client import ClientOptions, RegistryClient
from portside.registry.manifest import Platform

FAST = ClientOptions(backoff_base=0.01, backoff_cap=0.05, max_retries=2)


def ref(reg: Registry | FaultProxy | Recorder, text: str) -> Reference:
    return Reference.parse(f"{reg.host}/{text}")


def layer_bytes(content: bytes) -> bytes:
    buf = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w") as tar,
    ):
        info = tarfile.TarInfo("hello.txt")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def image_parts(text: bytes) -> tuple[bytes, bytes, bytes]:
    """(layer, config, manifest) of a tiny OCI image."""
    layer = layer_bytes(text)
    diff_id = "sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2026-01-02T03:04:05Z",
            "config": {"Labels": {"org.opencontainers.image.version": "1.0"}},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        },
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {
                "mediaType": mt.OCI_CONFIG,
                "digest": str(Digest.of(config)),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": mt.OCI_LAYER_GZIP,
                    "digest": str(Digest.of(layer)),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    return layer, config, manifest


# -- reading ---------------------------------------------------------------------------


async def test_tags_match_skopeo(registry: Registry) -> None:
    skopeo = Skopeo.for_registry(registry)
    async with RegistryClient() as client:
        for repo in ("library/python", "library/alpine", "portside-test/many-tags"):
            tags = await client.list_tags(ref(registry, repo))
            assert sorted(tags) == sorted(skopeo.list_tags(f"{registry.host}/{repo}"))
            assert set(tags) == set(registry.seeded[repo].tags)


async def test_tags_paginated_equal_unpaginated(registry: Registry) -> None:
    async with RegistryClient() as client:
        r = ref(registry, "portside-test/many-tags")
        whole = await client.list_tags(r)
        paged = await client.list_tags(r, page_size=100)
    assert len(whole) >= 2000
    assert paged == whole


async def test_missing_repository_and_tag_are_not_found(registry: Registry) -> None:
    async with RegistryClient() as client:
        with pytest.raises(errors.NotFound) as missing_repo:
            await client.list_tags(ref(registry, "library/does-not-exist"))
        assert "library/does-not-exist" in str(missing_repo.value)
        with pytest.raises(errors.NotFound) as missing_tag:
            await client.head_manifest(ref(registry, "library/python:0.0.0-nope"))
        assert "0.0.0-nope" in str(missing_tag.value)
        assert missing_tag.value.exit_code == 3


@pytest.mark.parametrize(
    ("repo", "tag"),
    [("library/python", "3.13"), ("library/alpine", "3.22"), ("library/debian", "bookworm")],
)
async def test_manifest_digests_match_skopeo(registry: Registry, repo: str, tag: str) -> None:
    skopeo = Skopeo.for_registry(registry)
    image_ref = f"{registry.host}/{repo}:{tag}"
    async with RegistryClient() as client:
        head = await client.head_manifest(ref(registry, f"{repo}:{tag}"))
        manifest = await client.get_manifest(ref(registry, f"{repo}:{tag}"))
    assert str(head.digest) == skopeo.digest(image_ref) == registry.seeded[repo].digest(tag)
    assert manifest.digest == head.digest
    assert manifest.raw == skopeo.inspect_raw(image_ref)
    assert manifest.media_type == head.media_type


async def test_index_platforms_and_children(registry: Registry) -> None:
    pushed = registry.seeded["library/python"].image("3.13")
    async with RegistryClient() as client:
        r = ref(registry, "library/python:3.13")
        index = await client.get_manifest(r)
        assert index.is_index
        keys = {str(p) for p in index.platforms}
        assert {"linux/amd64", "linux/arm64/v8"} <= keys
        image, parent = await client.get_image_manifest(r, Platform("linux", "arm64"))
        assert parent is not None and parent.digest == index.digest
        assert str(image.digest) == pushed.platform_digests["linux/arm64/v8"]
        config = await client.get_config(r, image)
    assert config.platform == Platform("linux", "arm64", "v8")
    assert str(config.digest) == pushed.config_digests["linux/arm64/v8"]
    skopeo_config = Skopeo.for_registry(registry).inspect_config(
        f"{registry.host}/library/python@{image.digest}"
    )
    assert config.created == skopeo_config["created"]
    assert config.labels == skopeo_config.get("config", {}).get("Labels", {})


async def test_platform_not_in_index_names_available_ones(registry: Registry) -> None:
    async with RegistryClient() as client:
        with pytest.raises(errors.InvalidReference) as exc:
            await client.get_image_manifest(
                ref(registry, "library/python:3.13"), Platform("plan9", "mips")
            )
    assert "plan9/mips" in str(exc.value)
    assert "linux/amd64" in str(exc.value)


async def test_docker_media_types_single_image(registry: Registry) -> None:
    async with RegistryClient() as client:
        r = ref(registry, "library/nginx:latest")
        manifest = await client.get_manifest(r)
        assert manifest.media_type == mt.DOCKER_MANIFEST
        assert manifest.config is not None
        blob = await client.get_blob(r, manifest.config.digest)
    assert Digest.of(blob) == manifest.config.digest


# -- writing ---------------------------------------------------------------------------


async def push_tiny_image(
    client: RegistryClient, target: Reference, text: bytes, **upload: object
) -> tuple[Digest, list[object]]:
    layer, config, manifest = image_parts(text)
    results = [
        await client.upload_blob(target, layer, **upload),  # type: ignore[arg-type]
        await client.upload_blob(target, config),
    ]
    digest = await client.put_manifest(target, manifest, mt.OCI_MANIFEST)
    return digest, results


async def test_push_monolithic_then_skopeo_sees_it(plain_registry: Registry) -> None:
    target = ref(plain_registry, "acme/app:1.0")
    async with RegistryClient() as client:
        digest, results = await push_tiny_image(client, target, b"hello monolithic")
        assert [r.existed for r in results] == [False, False]  # type: ignore[attr-defined]
        # Pushing the same image again uploads nothing.
        again, results = await push_tiny_image(client, target, b"hello monolithic")
        assert again == digest
        assert all(r.existed for r in results)  # type: ignore[attr-defined]
    skopeo = Skopeo.for_registry(plain_registry)
    assert skopeo.digest(f"{plain_registry.host}/acme/app:1.0") == str(digest)
    assert skopeo.list_tags(f"{plain_registry.host}/acme/app") == ["1.0"]


async def test_push_chunked_follows_locations(
    plain_registry: Registry, proxy_factory: Callable[..., FaultProxy]
) -> None:
    proxy = proxy_factory(plain_registry)
    target = ref(proxy, "acme/chunked:1")
    # Incompressible, so the gzip'd layer stays ~128 KiB: four chunks at least.
    big = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(4096))
    async with RegistryClient() as client:
        digest, _ = await push_tiny_image(client, target, big, chunk_size=32 * 1024)
    patches = proxy.log.matching("PATCH", r"/blobs/uploads/")
    assert len(patches) >= 2
    ranges = [p.header("content-range") for p in patches]
    assert ranges[0] is not None and ranges[0].startswith("0-")
    assert Skopeo.for_registry(plain_registry).digest(
        f"{plain_registry.host}/acme/chunked:1"
    ) == str(digest)


async def test_cross_repository_mount(plain_registry: Registry) -> None:
    source = ref(plain_registry, "acme/base:1")
    async with RegistryClient() as client:
        await push_tiny_image(client, source, b"shared base layer")
        layer, _, _ = image_parts(b"shared base layer")
        result = await client.upload_blob(
            ref(plain_registry, "acme/derived:1"), layer, mount_from="acme/base"
        )
        assert result.mounted
        assert await client.blob_exists(ref(plain_registry, "acme/derived:1"), Digest.of(layer))


async def test_failed_upload_is_cancelled(
    plain_registry: Registry, proxy_factory: Callable[..., FaultProxy]
) -> None:
    proxy = proxy_factory(plain_registry)
    proxy.respond("PUT", r"/blobs/uploads/", 400, '{"errors":[{"code":"DIGEST_INVALID"}]}')
    async with RegistryClient(FAST) as client:
        with pytest.raises(errors.RegistryError) as exc:
            await client.upload_blob(ref(proxy, "acme/cancel:1"), b"payload")
    assert "DIGEST_INVALID" in str(exc.value)
    assert proxy.log.matching("DELETE", r"/blobs/uploads/"), "the upload session was not deleted"


async def test_upload_location_on_another_host_gets_no_credentials(
    registry_factory: RegistryFactory,
    proxy_factory: Callable[..., FaultProxy],
    recorder: Recorder,
    docker_config: object,
) -> None:
    reg = registry_factory(auth="basic")
    proxy = proxy_factory(reg)
    docker_config(auths={proxy.host: (reg.username, reg.password)})  # type: ignore[operator]

    def elsewhere(status: int, headers: list[tuple[str, str]], body: bytes) -> object:
        kept = [(k, v) for k, v in headers if k.lower() != "location"]
        return status, [*kept, ("Location", f"{recorder.url}/upload/xyz?sig=abc")], body

    proxy.transform("POST", r"/blobs/uploads/$", elsewhere)  # type: ignore[arg-type]
    async with RegistryClient(FAST) as client:
        with pytest.raises(errors.PortsideError):
            await client.upload_blob(ref(proxy, "acme/elsewhere:1"), b"payload")
    puts = [r for r in recorder.requests if r.method == "PUT"]
    assert puts, "the upload never reached the storage host"
    assert all(r.authorization is None for r in recorder.requests)
    assert puts[0].param("digest") == str(Digest.of(b"payload"))
    assert puts[0].param("sig") == "abc"  # the signed query is kept
    # Basic credentials did go to the registry itself.
    assert any(r.authorization for r in proxy.log.all())


async def test_readonly_registry_refuses_push(readonly_registry: Registry) -> None:
    async with RegistryClient(FAST) as client:
        with pytest.raises(errors.RegistryError) as exc:
            await client.upload_blob(ref(readonly_registry, "library/alpine:x"), b"data")
    assert "library/alpine" in str(exc.value)


async def test_delete_manifest_by_digest(plain_registry: Registry) -> None:
    target = ref(plain_registry, "acme/gone:1")
    async with RegistryClient() as client:
        digest, _ = await push_tiny_image(client, target, b"to be deleted")
        await client.delete_manifest(target.with_digest(digest))
        with pytest.raises(errors.NotFound):
            await client.get_manifest(target.with_digest(digest))


async def test_referrers_fall_back_to_tag_schema(plain_registry: Registry) -> None:
    """distribution 2.8 has no referrers API: Portside keeps the fallback tag itself."""
    target = ref(plain_registry, "acme/signed:1")
    async with RegistryClient() as client:
        subject, sig_digest = await _signed(client, target, b"subject image")
        found = await client.referrers(target.with_digest(subject))
        filtered = await client.referrers(
            target.with_digest(subject), artifact_type="application/vnd.other"
        )
    assert [d.digest for d in found] == [sig_digest]
    assert found[0].artifact_type == "application/vnd.example.signature"
    assert filtered == []
    tags = Skopeo.for_registry(plain_registry).list_tags(f"{plain_registry.host}/acme/signed")
    assert f"sha256-{subject.hex}" in tags


async def _signed(client: RegistryClient, target: Reference, text: bytes) -> tuple[Digest, Digest]:
    """(subject, signature): a tiny image and an artifact whose subject it is."""
    subject, _ = await push_tiny_image(client, target, text)
    subject_manifest = await client.get_manifest(target)
    empty = b"{}"
    await client.upload_blob(target, empty)
    signature = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "artifactType": "application/vnd.example.signature",
            "config": {"mediaType": mt.OCI_EMPTY, "digest": str(Digest.of(empty)), "size": 2},
            "layers": [{"mediaType": mt.OCI_EMPTY, "digest": str(Digest.of(empty)), "size": 2}],
            "subject": subject_manifest.descriptor.to_json(),
        }
    ).encode()
    sig_ref = target.repository_ref().with_digest(Digest.of(signature))
    return subject, await client.put_manifest(sig_ref, signature, mt.OCI_MANIFEST)


async def test_a_registry_without_the_referrers_api_is_asked_for_it_once(
    plain_registry: Registry, proxy_factory: Callable[..., FaultProxy]
) -> None:
    """Its first 404 on the Referrers API settles it: every later lookup (concurrent
    ones included) goes straight to the tag schema."""
    import asyncio

    proxy = proxy_factory(plain_registry)
    async with RegistryClient() as client:
        signed = [await _signed(client, ref(proxy, f"acme/once:{n}"), b"%d" % n) for n in range(3)]
        proxy.log.clear()
        assert client.referrers_api(proxy.host) is None
        subjects = [ref(proxy, "acme/once").with_digest(subject) for subject, _ in signed]
        found = await asyncio.gather(*(client.referrers(s) for s in subjects))
        again = await client.referrers(subjects[0])
        assert client.referrers_api(proxy.host) is False
    assert [[d.digest for d in f] for f in found] == [[sig] for _, sig in signed]
    assert [d.digest for d in again] == [signed[0][1]]
    api = proxy.log.matching("GET", r"/referrers/")
    assert len(api) == 1 and api[0].path.rsplit("/", 1)[-1] in {str(s) for s, _ in signed}
    by_tag = [r.path.rsplit("/", 1)[-1] for r in proxy.log.matching("GET", r"/manifests/sha256-")]
    expected = [f"sha256-{s.hex}" for s, _ in signed]
    assert sorted(by_tag) == sorted([*expected, expected[0]])
    assert len(proxy.log.all()) == 1 + 4  # nothing else


async def test_a_registry_with_the_referrers_api_is_not_asked_by_the_tag_schema(
    plain_registry: Registry, proxy_factory: Callable[..., FaultProxy]
) -> None:
    """distribution 2.8 has no Referrers API; the proxy answers it the way a registry
    with one does (200 and an index, empty when nothing refers to the manifest)."""
    proxy = proxy_factory(plain_registry)
    async with RegistryClient() as client:
        subject, signature = await _signed(client, ref(proxy, "acme/api:1"), b"api")
        other, _ = await push_tiny_image(client, ref(proxy, "acme/api:2"), b"nothing on it")
        listed = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": mt.OCI_INDEX,
                "manifests": [
                    {
                        "mediaType": mt.OCI_MANIFEST,
                        "digest": str(signature),
                        "size": 1,
                        "artifactType": "application/vnd.example.signature",
                    }
                ],
            }
        )
        empty = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []})
        proxy.respond("GET", rf"/referrers/{subject}$", body=listed, content_type=mt.OCI_INDEX)
        proxy.respond("GET", rf"/referrers/{other}$", body=empty, content_type=mt.OCI_INDEX)
        proxy.log.clear()
        repository = ref(proxy, "acme/api")
        found = await client.referrers(repository.with_digest(subject))
        nothing = await client.referrers(repository.with_digest(other))
        assert client.referrers_api(proxy.host) is True
    assert [d.digest for d in found] == [signature] and nothing == []
    assert [r.method for r in proxy.log.all()] == ["GET", "GET"]
    assert proxy.log.matching("GET", r"/manifests/") == []


async def test_the_cache_remembers_a_registry_without_the_referrers_api(
    plain_registry: Registry, proxy_factory: Callable[..., FaultProxy], tmp_path: Path
) -> None:
    """The next process asks the tag schema at once (for a day: an upgrade may add it)."""
    from portside.cache import REFERRERS_API_TTL, CachedRegistry, CacheStore

    proxy = proxy_factory(plain_registry)
    async with RegistryClient() as client:
        signed = [await _signed(client, ref(proxy, f"acme/kept:{n}"), b"k%d" % n) for n in range(2)]
    repository = ref(proxy, "acme/kept")
    store = CacheStore(str(tmp_path / "cache"))
    now = 1_000_000.0
    proxy.log.clear()
    async with CachedRegistry(store=store, clock=lambda: now) as cached:
        assert [d.digest for d in await cached.referrers(repository.with_digest(signed[0][0]))] == [
            signed[0][1]
        ]
    assert len(proxy.log.matching("GET", r"/referrers/")) == 1
    assert store.referrers_api(proxy.host, now=now) is False

    proxy.log.clear()
    async with CachedRegistry(store=store, clock=lambda: now + 60) as cached:
        found = await cached.referrers(repository.with_digest(signed[1][0]))
    assert [d.digest for d in found] == [signed[1][1]]
    assert proxy.log.matching("GET", r"/referrers/") == []
    assert len(proxy.log.matching("GET", rf"/manifests/sha256-{signed[1][0].hex}$")) == 1
    # A day later the registry is asked again.
    assert store.referrers_api(proxy.host, now=now + REFERRERS_API_TTL + 1) is None


async def test_ping(registry: Registry, recorder: Recorder) -> None:
    async with RegistryClient(FAST) as client:
        await client.ping(registry.host)
        recorder.default_status = 404
        with pytest.raises(errors.NotARegistry):
            await client.ping(recorder.host)


async def test_seeded_via_http_pusher_is_read_back(plain_registry: Registry) -> None:
    artifact = seed.build_index("cafe01", ["amd64", "arm64v8"], media="docker")
    pushed = seed.push_image(plain_registry, "acme/multi", artifact, ["v1"], via="http")
    async with RegistryClient() as client:
        index = await client.get_manifest(ref(plain_registry, "acme/multi:v1"))
    assert str(index.digest) == pushed.digest
    assert index.media_type == mt.DOCKER_MANIFEST_LIST
    assert [str(d.digest) for d in index.manifests] == [d for _, d in pushed.children]


async def test_large_blob_exists_and_is_not_uploaded_twice(plain_registry: Registry) -> None:
    """A HEAD's Content-Length is the blob's size, not a body to cap (a 1 MiB blob is
    far over the error-body limit)."""
    big = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(32768))
    target = ref(plain_registry, "acme/big:1")
    async with RegistryClient() as client:
        first = await client.upload_blob(target, big)
        assert not first.existed
        assert await client.blob_exists(target, Digest.of(big)) == len(big)
        again = await client.upload_blob(target, big)
    assert again.existed


# -- catalog ---------------------------------------------------------------------------


async def test_catalog_lists_repositories_paginated_equal_unpaginated(
    registry: Registry, fault_proxy: FaultProxy
) -> None:
    async with RegistryClient() as client:
        whole = await client.catalog(registry.host)
        paged = await client.catalog(fault_proxy.host, page_size=2)
    assert set(registry.seeded) <= set(whole)
    assert paged == whole
    pages = [r for r in fault_proxy.requests if r.path == "/v2/_catalog"]
    assert len(pages) >= len(whole) // 2 >= 2
    assert all(r.param("n") == "2" for r in pages)


@pytest.mark.parametrize(
    ("status", "headers"),
    [(404, None), (403, None), (401, {"WWW-Authenticate": 'Basic realm="registry"'})],
)
async def test_catalog_not_offered_is_empty_not_an_error(
    registry: Registry,
    proxy_factory: Callable[..., FaultProxy],
    status: int,
    headers: dict[str, str] | None,
) -> None:
    proxy = proxy_factory(registry)
    proxy.respond("GET", r"^/v2/_catalog$", status, '{"errors":[]}', headers, times=None)
    async with RegistryClient() as client:
        assert await client.catalog(proxy.host) == []
        # The registry itself still answers.
        assert await client.list_tags(ref(proxy, "library/alpine"))


async def test_catalog_refuses_foreign_next_page(
    registry: Registry, proxy_factory: Callable[..., FaultProxy]
) -> None:
    proxy = proxy_factory(registry)
    proxy.set_headers(
        "GET", r"^/v2/_catalog$", {"Link": '<http://203.0.113.9/v2/_catalog?last=x>; rel="next"'}
    )
    async with RegistryClient() as client:
        with pytest.raises(errors.UnsafeResponse):
            await client.catalog(proxy.host)
