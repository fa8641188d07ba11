"""Integrity: every digest the client returns was verified against the bytes.

REGISTRY-CLIENT-CHECKLIST section "Integrity" (and byte caps from "Malicious or broken
registries"): the real registry for what is right, skopeo as the second client, and the
FaultProxy for a registry that lies.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from harness.proxy import FaultProxy
from harness.registry import Registry
from harness.skopeo import Skopeo
from portside import errors
from portside.reference import Digest, Reference
from portside.registry import mediatypes as mt
from portside.registry.client import ClientOptions, RegistryClient
from portside.registry.manifest import Platform

MANIFESTS = r"/manifests/"
Headers = list[tuple[str, str]]


def opts(**kw: Any) -> ClientOptions:
    base: dict[str, Any] = {"backoff_base": 0.01, "backoff_cap": 0.03, "max_retries": 2}
    base.update(kw)
    return ClientOptions(**base)


def ref(server: FaultProxy | Registry, repo: str, ident: str | None = None) -> Reference:
    if ident is None:
        return Reference.parse(f"{server.host}/{repo}")
    sep = "@" if ident.startswith("sha256:") else ":"
    return Reference.parse(f"{server.host}/{repo}{sep}{ident}")


def first_tag(registry: Registry, repo: str) -> tuple[str, str]:
    seeded = registry.seeded[repo]
    tag = sorted(seeded.tags)[0]
    return tag, seeded.digest(tag)


def served_bytes(registry: Registry, repo: str, ident: str) -> bytes:
    """The manifest exactly as the registry serves it (not through portside)."""
    answer = httpx.get(
        f"{registry.url}/v2/{repo}/manifests/{ident}",
        headers={"Accept": mt.MANIFEST_ACCEPT},
        timeout=10,
    )
    answer.raise_for_status()
    return answer.content


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def with_header(headers: Headers, name: str, value: str) -> Headers:
    return [(k, v) for k, v in headers if k.lower() != name.lower()] + [(name, value)]


# -- tag and digest pulls ------------------------------------------------------------


@pytest.mark.parametrize(
    "repo", ["library/python", "library/alpine", "library/debian", "library/nginx"]
)
async def test_tag_pull_is_verified_and_agrees_with_skopeo(registry: Registry, repo: str) -> None:
    tag, digest = first_tag(registry, repo)
    async with RegistryClient(opts()) as client:
        manifest = await client.get_manifest(ref(registry, repo, tag))
        head = await client.head_manifest(ref(registry, repo, tag))
    assert str(manifest.digest) == digest == str(head.digest)
    assert manifest.digest.matches(manifest.raw)
    assert head.size == len(manifest.raw) and head.media_type == manifest.media_type
    assert digest == Skopeo.for_registry(registry).digest(f"{registry.host}/{repo}:{tag}")


async def test_corrupted_tag_pull_names_both_digests(
    registry: Registry, fault_proxy: FaultProxy
) -> None:
    tag, digest = first_tag(registry, "library/python")
    raw = served_bytes(registry, "library/python", tag)
    corrupted = raw[:-2] + bytes([raw[-2] ^ 0x01]) + raw[-1:]
    fault_proxy.corrupt("GET", MANIFESTS)
    returned = None
    async with RegistryClient(opts()) as client:
        with pytest.raises(errors.DigestMismatch) as info:
            returned = await client.get_manifest(ref(fault_proxy, "library/python", tag))
    assert returned is None
    assert info.value.expected == digest
    assert info.value.actual == sha(corrupted)
    assert digest in str(info.value) and sha(corrupted) in str(info.value)


async def test_by_digest_pull_is_verified(registry: Registry, fault_proxy: FaultProxy) -> None:
    _, digest = first_tag(registry, "library/alpine")
    async with RegistryClient(opts()) as client:
        good = await client.get_manifest(ref(fault_proxy, "library/alpine", digest))
        assert str(good.digest) == digest
        # The lie without the header to compare against: the reference's digest catches it.
        fault_proxy.corrupt("GET", MANIFESTS)
        fault_proxy.set_headers("GET", MANIFESTS, {}, remove=["Docker-Content-Digest"])
        with pytest.raises(errors.DigestMismatch) as info:
            await client.get_manifest(ref(fault_proxy, "library/alpine", digest))
    assert info.value.expected == digest


async def test_by_digest_pull_with_a_lying_header(
    registry: Registry, fault_proxy: FaultProxy
) -> None:
    _, digest = first_tag(registry, "library/debian")
    other = sha(b"something else")
    fault_proxy.set_headers("GET", MANIFESTS, {"Docker-Content-Digest": other})
    async with RegistryClient(opts()) as client:
        with pytest.raises(errors.DigestMismatch) as info:
            await client.get_manifest(ref(fault_proxy, "library/debian", digest))
    assert digest in str(info.value) and other in str(info.value)


async def test_head_without_digest_header_falls_back_to_get_and_hash(
    registry: Registry, fault_proxy: FaultProxy
) -> None:
    tag, digest = first_tag(registry, "library/nginx")
    async with RegistryClient(opts()) as client:
        assert (
            str((await client.head_manifest(ref(fault_proxy, "library/nginx", tag))).digest)
            == digest
        )
        assert len(fault_proxy.log.matching("GET", MANIFESTS)) == 0
        fault_proxy.set_headers("HEAD", MANIFESTS, {}, remove=["Docker-Content-Digest"])
        described = await client.head_manifest(ref(fault_proxy, "library/nginx", tag))
    assert str(described.digest) == digest
    assert described.media_type == mt.DOCKER_MANIFEST
    assert len(fault_proxy.log.matching("HEAD", MANIFESTS)) == 2
    assert len(fault_proxy.log.matching("GET", MANIFESTS)) == 1


# -- what the manifest says about itself -------------------------------------------------


async def test_content_type_disagreeing_with_body_media_type_is_rejected(
    registry: Registry, fault_proxy: FaultProxy
) -> None:
    tag, _ = first_tag(registry, "library/python")  # an OCI index
    fault_proxy.set_headers("GET", MANIFESTS, {"Content-Type": mt.DOCKER_MANIFEST_LIST})
    async with RegistryClient(opts()) as client:
        with pytest.raises(errors.InvalidResponse, match="served as"):
            await client.get_manifest(ref(fault_proxy, "library/python", tag))


def _retyped(mutate: Callable[[dict[str, Any]], None]) -> Callable[..., Any]:
    """A proxy transform: change the JSON body and make the digest header match it, so
    that only the check under test can catch the problem.
    """

    def transform(status: int, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
        doc = json.loads(body)
        mutate(doc)
        new = json.dumps(doc).encode()
        headers = with_header(headers, "Docker-Content-Digest", sha(new))
        return status, with_header(headers, "Content-Length", str(len(new))), new

    return transform


async def test_manifest_with_both_manifests_and_layers_is_rejected(
    registry: Registry, fault_proxy: FaultProxy
) -> None:
    tag, _ = first_tag(registry, "library/python")

    def add_layers(doc: dict[str, Any]) -> None:
        doc["layers"] = [doc["manifests"][0] | {"mediaType": mt.OCI_LAYER_GZIP}]

    fault_proxy.transform("GET", MANIFESTS, _retyped(add_layers))
    async with RegistryClient(opts()) as client:
        with pytest.raises(errors.InvalidResponse, match="ambiguous"):
            await client.get_manifest(ref(fault_proxy, "library/python", tag))


@pytest.mark.parametrize(
    "bad",
    [
        "sha256:../../../../etc/passwd",
        "sha256:" + "A" * 64,
        "sha256:abc",
        "md5:" + "0" * 32,
        "sha256",
    ],
)
async def test_invalid_digests_from_the_registry_are_rejected(
    registry: Registry, fault_proxy: FaultProxy, bad: str
) -> None:
    tag, _ = first_tag(registry, "library/python")
    target = ref(fault_proxy, "library/python", tag)
    fault_proxy.set_headers(None, MANIFESTS, {"Docker-Content-Digest": bad}, times=2)
    async with RegistryClient(opts()) as client:
        with pytest.raises(errors.InvalidResponse, match="invalid Docker-Content-Digest"):
            await client.head_manifest(target)
        with pytest.raises(errors.InvalidResponse, match="invalid Docker-Content-Digest"):
            await client.get_manifest(target)

        def child(doc: dict[str, Any]) -> None:
            doc["manifests"][0]["digest"] = bad

        # Inside an index: a protocol error from the registry, not a usage error.
        fault_proxy.transform("GET", MANIFESTS, _retyped(child), times=1)
        with pytest.raises(errors.InvalidResponse, match="invalid digest"):
            await client.get_manifest(target)
    # None of them went into a URL.
    assert not [r for r in fault_proxy.log.all() if "passwd" in r.target or "md5" in r.target]


async def test_docker_schema1_is_unsupported(registry: Registry, fault_proxy: FaultProxy) -> None:
    tag, _ = first_tag(registry, "library/nginx")
    schema1 = json.dumps(
        {
            "schemaVersion": 1,
            "name": "library/nginx",
            "tag": tag,
            "architecture": "amd64",
            "fsLayers": [{"blobSum": sha(b"layer")}],
            "history": [{"v1Compatibility": "{}"}],
            "signatures": [{"header": {}, "signature": "x", "protected": "y"}],
        }
    ).encode()
    fault_proxy.respond(
        "GET", MANIFESTS, 200, schema1, content_type=mt.DOCKER_SCHEMA1_SIGNED, times=1
    )
    fault_proxy.set_headers(
        "HEAD",
        MANIFESTS,
        {"Content-Type": mt.DOCKER_SCHEMA1_SIGNED, "Docker-Content-Digest": sha(schema1)},
        times=1,
    )
    async with RegistryClient(opts()) as client:
        target = ref(fault_proxy, "library/nginx", tag)
        with pytest.raises(errors.UnsupportedMediaType, match="schema 1"):
            await client.get_manifest(target)
        with pytest.raises(errors.UnsupportedMediaType, match="schema 1"):
            await client.head_manifest(target)


# -- size caps -------------------------------------------------------------------------


async def test_manifest_over_the_cap_is_refused_by_its_declared_length(
    registry: Registry, fault_proxy: FaultProxy
) -> None:
    tag, _ = first_tag(registry, "library/python")
    fault_proxy.endless_body(
        "GET", MANIFESTS, content_length=64 << 20, headers={"Content-Type": mt.OCI_INDEX}
    )
    async with RegistryClient(opts()) as client:
        started = time.monotonic()
        with pytest.raises(errors.TooLarge, match="announces"):
            await client.get_manifest(ref(fault_proxy, "library/python", tag))
    assert time.monotonic() - started < 10  # reading 64 MiB is not what happened
    assert len(fault_proxy.log.matching("GET", MANIFESTS)) == 1  # not retried


async def test_manifest_over_the_cap_without_a_length_is_cut_off(
    registry: Registry, fault_proxy: FaultProxy
) -> None:
    tag, _ = first_tag(registry, "library/python")
    fault_proxy.endless_body("GET", MANIFESTS, headers={"Content-Type": mt.OCI_INDEX})
    async with RegistryClient(opts()) as client:
        started = time.monotonic()
        with pytest.raises(errors.TooLarge, match=f"limit of {4 << 20} bytes"):
            await client.get_manifest(ref(fault_proxy, "library/python", tag))
    assert time.monotonic() - started < 10  # the body never ends


async def test_manifest_cap_is_configurable(registry: Registry) -> None:
    tag, _ = first_tag(registry, "library/python")
    size = len(served_bytes(registry, "library/python", tag))
    async with RegistryClient(opts(max_manifest_bytes=size - 1)) as client:
        with pytest.raises(errors.TooLarge):
            await client.get_manifest(ref(registry, "library/python", tag))
    async with RegistryClient(opts(max_manifest_bytes=size)) as client:
        await client.get_manifest(ref(registry, "library/python", tag))


async def test_content_length_longer_than_the_body_is_caught(
    registry: Registry, fault_proxy: FaultProxy
) -> None:
    tag, _ = first_tag(registry, "library/python")
    raw = served_bytes(registry, "library/python", tag)
    fault_proxy.replace_body("GET", MANIFESTS, raw[: len(raw) // 2], keep_length=True)
    async with RegistryClient(opts()) as client:
        with pytest.raises(errors.RegistryUnreachable, match="Content-Length"):
            await client.get_manifest(ref(fault_proxy, "library/python", tag))


async def test_content_length_shorter_than_the_body_is_caught(
    registry: Registry, fault_proxy: FaultProxy
) -> None:
    tag, digest = first_tag(registry, "library/python")

    def shorter(status: int, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
        return status, with_header(headers, "Content-Length", str(len(body) - 10)), body

    fault_proxy.transform("GET", MANIFESTS, shorter)
    async with RegistryClient(opts()) as client:
        with pytest.raises(errors.DigestMismatch) as info:
            await client.get_manifest(ref(fault_proxy, "library/python", tag))
    assert info.value.expected == digest


# -- indexes and platforms -----------------------------------------------------------


@pytest.mark.parametrize("repo", ["library/python", "library/alpine"])
@pytest.mark.parametrize(
    "platform", [("linux", "amd64", None), ("linux", "arm64", "v8"), ("linux", "arm", "v7")]
)
async def test_index_platform_selection_agrees_with_skopeo(
    registry: Registry, repo: str, platform: tuple[str, str, str | None]
) -> None:
    tag, digest = first_tag(registry, repo)
    pushed = registry.seeded[repo].image(tag)
    key = "/".join(p for p in platform if p)
    if key not in pushed.platform_digests:
        pytest.skip(f"{repo}:{tag} has no {key}")
    async with RegistryClient(opts()) as client:
        image, index = await client.get_image_manifest(
            ref(registry, repo, tag), Platform(*platform)
        )
        config = await client.get_config(ref(registry, repo, tag), image)
    assert index is not None and str(index.digest) == digest
    assert str(image.digest) == pushed.platform_digests[key]
    assert image.digest.matches(image.raw)
    seen = Skopeo.for_registry(registry).inspect(f"{registry.host}/{repo}:{tag}", platform=platform)
    assert seen["Digest"] == digest
    assert seen["Layers"] == [str(layer.digest) for layer in image.layers]
    assert seen["Architecture"] == platform[1]
    assert config.platform is not None and config.platform.architecture == platform[1]
    assert str(config.digest) == pushed.config_digests[key]


async def test_index_child_is_verified(registry: Registry, fault_proxy: FaultProxy) -> None:
    tag, _ = first_tag(registry, "library/python")
    child = registry.seeded["library/python"].image(tag).platform_digests["linux/arm64/v8"]
    fault_proxy.corrupt("GET", rf"/manifests/{child}$")
    async with RegistryClient(opts()) as client:
        with pytest.raises(errors.DigestMismatch) as info:
            await client.get_image_manifest(
                ref(fault_proxy, "library/python", tag), Platform("linux", "arm64", "v8")
            )
    assert info.value.expected == child


# -- blobs -----------------------------------------------------------------------------


async def test_blob_digest_is_verified_while_streaming(
    registry: Registry, fault_proxy: FaultProxy
) -> None:
    tag, _ = first_tag(registry, "library/debian")
    pushed = registry.seeded["library/debian"].image(tag)
    layer = pushed.artifact.layers[0]  # type: ignore[union-attr]
    target = ref(fault_proxy, "library/debian")
    async with RegistryClient(opts()) as client:
        assert await client.get_blob(target, Digest.parse(layer.digest)) == layer.data
        image = await client.get_manifest(ref(fault_proxy, "library/debian", tag))
        fault_proxy.corrupt("GET", r"/blobs/")
        with pytest.raises(errors.DigestMismatch) as info:
            await client.get_config(target, image)
        assert info.value.expected == pushed.config_digest
        # A streaming consumer sees the error before the iterator finishes.
        received: list[bytes] = []

        async def drain() -> None:
            async for chunk in client.stream_blob(target, Digest.parse(layer.digest)):
                received.append(chunk)

        with pytest.raises(errors.DigestMismatch):
            await drain()
        assert len(b"".join(received)) == len(layer.data)
        fault_proxy.clear_rules()
        fault_proxy.endless_body("GET", r"/blobs/", content_length=1 << 30)
        with pytest.raises(errors.TooLarge):
            await client.get_blob(target, Digest.parse(layer.digest), max_bytes=1 << 20)
