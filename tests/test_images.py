"""portside.images.inspect against the real registry, cross-checked with what was seeded
and with skopeo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import seed
from harness.images import Platform as SeedPlatform
from harness.registry import Registry
from harness.skopeo import Skopeo
from portside.cache import CachedRegistry, CacheStore
from portside.images import DEFAULT_PLATFORM, inspect, platform_digest
from portside.reference import Reference
from portside.registry import mediatypes as mt
from portside.registry.manifest import Platform, PlatformNotFound

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def cached(tmp_path: Path) -> CachedRegistry:
    return CachedRegistry(store=CacheStore(str(tmp_path / "cache")))


def _size_of(raw: bytes) -> int:
    doc = json.loads(raw)
    return int(doc["config"]["size"]) + sum(int(layer["size"]) for layer in doc["layers"])


async def test_multi_platform_defaults_to_linux_amd64(
    registry: Registry, cached: CachedRegistry
) -> None:
    text = registry.ref("library/python", "3.13")
    seeded = registry.seeded["library/python"].image("3.13")
    async with cached:
        info = await inspect(cached, Reference.parse(text))
    assert info.is_index
    assert str(info.digest) == seeded.digest
    assert info.media_type == mt.OCI_INDEX
    assert info.platform == DEFAULT_PLATFORM
    assert str(info.manifest_digest) == seeded.platform_digests["linux/amd64"]
    assert info.manifest_media_type == mt.OCI_MANIFEST
    assert [str(p) for p in info.platforms] == [key for key, _ in seeded.children]
    assert info.created == seeded.created
    # 3.13 is shared by Linux and Windows builds: the index merges both ("b1+b2").
    assert info.labels["org.portside.test.build"] == seeded.build.split("+")[0]
    assert "windows/amd64" in [str(p) for p in info.platforms]

    skopeo = Skopeo.for_registry(registry)
    theirs = skopeo.inspect(text, platform=("linux", "amd64", None))
    assert theirs["Digest"] == str(info.digest)
    assert theirs["Created"].startswith(info.created[:19])
    assert theirs["Labels"] == info.labels
    assert (theirs["Os"], theirs["Architecture"]) == ("linux", "amd64")
    child = skopeo.inspect_raw(f"{registry.ref('library/python')}@{info.manifest_digest}")
    assert info.size == _size_of(child)
    assert info.layers == len(theirs["Layers"])


async def test_platform_choice_and_its_digest(registry: Registry, cached: CachedRegistry) -> None:
    text = registry.ref("library/python", "3.13")
    seeded = registry.seeded["library/python"].image("3.13")
    ref = Reference.parse(text)
    arm64 = Platform.parse("linux/arm64")
    async with cached:
        info = await inspect(cached, ref, arm64)
        assert str(info.manifest_digest) == seeded.platform_digests["linux/arm64/v8"]
        assert str(info.platform) == "linux/arm64/v8"
        assert str(info.digest) == seeded.digest  # still the index: what to pin
        assert str(await platform_digest(cached, ref)) == seeded.digest
        assert str(await platform_digest(cached, ref, arm64)) == str(info.manifest_digest)
        arm7 = await inspect(cached, ref, Platform.parse("linux/arm/v7"))
        assert str(arm7.manifest_digest) == seeded.platform_digests["linux/arm/v7"]
        with pytest.raises(PlatformNotFound) as missing:
            await inspect(cached, ref, Platform.parse("linux/mips64le"))
    assert missing.value.exit_code == 2
    assert missing.value.hint is not None
    assert "linux/arm64/v8" in missing.value.hint
    config = Skopeo.for_registry(registry).inspect_config(f"{text}")
    assert config["architecture"] == "amd64"


async def test_docker_manifest_list(registry: Registry, cached: CachedRegistry) -> None:
    text = registry.ref("library/alpine", "3.24")
    seeded = registry.seeded["library/alpine"].image("3.24")
    async with cached:
        info = await inspect(cached, Reference.parse(text))
    assert info.media_type == mt.DOCKER_MANIFEST_LIST
    assert info.manifest_media_type == mt.DOCKER_MANIFEST
    assert str(info.digest) == seeded.digest
    assert str(info.manifest_digest) == seeded.platform_digests["linux/amd64"]
    assert len(info.platforms) == len(seeded.children)


@pytest.mark.parametrize(
    ("repo", "media"), [("library/debian", "oci"), ("library/nginx", "docker")]
)
async def test_single_platform_image(
    registry: Registry, cached: CachedRegistry, repo: str, media: str
) -> None:
    tag = next(iter(registry.seeded[repo].tags))
    seeded = registry.seeded[repo].image(tag)
    ref = Reference.parse(registry.ref(repo, tag))
    async with cached:
        info = await inspect(cached, ref)
        assert not info.is_index
        assert info.index_digest is None
        assert str(info.digest) == seeded.digest == str(info.manifest_digest)
        assert info.media_type == (mt.OCI_MANIFEST if media == "oci" else mt.DOCKER_MANIFEST)
        assert info.platforms == (Platform("linux", "amd64"),)
        assert info.platform == Platform("linux", "amd64")
        raw = Skopeo.for_registry(registry).inspect_raw(registry.ref(repo, tag))
        assert info.size == _size_of(raw)
        # Asking a single-platform image for its own platform is fine, another is not.
        same = await inspect(cached, ref, Platform.parse("linux/amd64"))
        assert same.digest == info.digest
        with pytest.raises(PlatformNotFound):
            await inspect(cached, ref, Platform.parse("linux/arm64"))
        with pytest.raises(PlatformNotFound):
            await platform_digest(cached, ref, Platform.parse("linux/arm64"))


async def test_by_digest_reference(registry: Registry, cached: CachedRegistry) -> None:
    seeded = registry.seeded["library/python"].image("3.13")
    ref = Reference.parse(f"{registry.ref('library/python')}@{seeded.digest}")
    async with cached:
        info = await inspect(cached, ref)
    assert str(info.digest) == seeded.digest


async def test_attestation_entries_are_not_platforms(
    plain_registry: Registry, cached: CachedRegistry
) -> None:
    # buildkit puts provenance manifests into indexes as unknown/unknown.
    index = seed.build_index("attested", ["amd64", SeedPlatform("unknown", "unknown"), "arm64v8"])
    seed.push_image(plain_registry, "team/app", index, ["1"], via="fs")
    async with cached:
        info = await inspect(cached, Reference.parse(plain_registry.ref("team/app", "1")))
        assert [str(p) for p in info.platforms] == ["linux/amd64", "linux/arm64/v8"]
        with pytest.raises(PlatformNotFound):
            await inspect(
                cached,
                Reference.parse(plain_registry.ref("team/app", "1")),
                Platform.parse("unknown/unknown"),
            )


async def test_image_info_json_shape(registry: Registry, cached: CachedRegistry) -> None:
    async with cached:
        info = await inspect(cached, Reference.parse(registry.ref("library/python", "3.13")))
    doc = info.to_json()
    assert list(doc) == [
        "reference",
        "digest",
        "mediaType",
        "manifestDigest",
        "manifestMediaType",
        "platform",
        "platforms",
        "created",
        "labels",
        "size",
        "layers",
    ]
    assert json.loads(json.dumps(doc)) == doc
