"""Deterministic tiny but real container images: config, layer, manifest, index.

Same inputs give byte-identical blobs and so the same digests on every run: tar entries
carry fixed metadata, gzip has no timestamp or file name, JSON is compact with a fixed
key order. One layer per image whose content depends on the build id and platform, so
every (build, platform) pair is a distinct image.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Media = Literal["oci", "docker"]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

MEDIA_TYPES: dict[str, dict[str, str]] = {
    "oci": {"manifest": OCI_MANIFEST, "index": OCI_INDEX, "config": OCI_CONFIG, "layer": OCI_LAYER},
    "docker": {
        "manifest": DOCKER_MANIFEST,
        "index": DOCKER_LIST,
        "config": DOCKER_CONFIG,
        "layer": DOCKER_LAYER,
    },
}

DEFAULT_CREATED = "2026-08-21T00:00:00Z"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any) -> bytes:
    """Compact JSON in insertion order: stable bytes, stable digests."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None

    @property
    def key(self) -> str:
        """``os/architecture[/variant]``, e.g. ``linux/arm64/v8``."""
        parts = [self.os, self.architecture] + ([self.variant] if self.variant else [])
        return "/".join(parts)

    def to_json(self) -> dict[str, str]:
        out = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            out["os.version"] = self.os_version
        if self.variant:
            out["variant"] = self.variant
        return out

    def __str__(self) -> str:
        return self.key


# Docker Hub / official-images architecture names -> OCI platforms.
ARCHITECTURES: dict[str, Platform] = {
    "amd64": Platform("linux", "amd64"),
    "arm32v5": Platform("linux", "arm", "v5"),
    "arm32v6": Platform("linux", "arm", "v6"),
    "arm32v7": Platform("linux", "arm", "v7"),
    "arm64v8": Platform("linux", "arm64", "v8"),
    "i386": Platform("linux", "386"),
    "mips64le": Platform("linux", "mips64le"),
    "ppc64le": Platform("linux", "ppc64le"),
    "riscv64": Platform("linux", "riscv64"),
    "s390x": Platform("linux", "s390x"),
    "windows-amd64": Platform("windows", "amd64", None, "10.0.20348.4052"),
}


def platform_for(name: str | Platform) -> Platform:
    """A platform from a Docker Hub arch name (``arm64v8``) or ``os/arch[/variant]``."""
    if isinstance(name, Platform):
        return name
    if name in ARCHITECTURES:
        return ARCHITECTURES[name]
    parts = name.split("/")
    if len(parts) in (2, 3) and all(parts):
        return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else None)
    raise ValueError(f"unknown architecture {name!r}")


@dataclass(frozen=True)
class Blob:
    """Bytes plus their media type; digest and size are derived."""

    media_type: str
    data: bytes
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", sha256_digest(self.data))

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


@dataclass(frozen=True)
class Image:
    """A single-platform image: manifest, config and layers."""

    build: str
    platform: Platform
    media: Media
    created: str
    manifest: Blob
    config: Blob
    layers: tuple[Blob, ...]
    diff_ids: tuple[str, ...]

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def media_type(self) -> str:
        return self.manifest.media_type

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return (self.config, *self.layers)

    @property
    def manifests(self) -> tuple[Blob, ...]:
        return (self.manifest,)


@dataclass(frozen=True)
class Index:
    """A multi-platform image: OCI index or Docker manifest list, with its children."""

    build: str
    media: Media
    created: str
    manifest: Blob
    children: tuple[Image, ...]

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def media_type(self) -> str:
        return self.manifest.media_type

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return tuple(b for child in self.children for b in child.blobs)

    @property
    def manifests(self) -> tuple[Blob, ...]:
        # Children first: a registry only accepts an index whose children it has.
        return (*(c.manifest for c in self.children), self.manifest)

    def child(self, platform: str | Platform) -> Image:
        key = platform_for(platform).key
        for child in self.children:
            if child.platform.key == key:
                return child
        raise KeyError(key)


Artifact = Image | Index


def make_layer(build: str, platform: Platform, media: Media = "oci") -> tuple[Blob, str]:
    """A gzip'd tar with one small file naming the build; returns (blob, diff_id)."""
    content = f"portside test image\nbuild {build}\nplatform {platform.key}\n".encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        directory = tarfile.TarInfo("etc")
        directory.type = tarfile.DIRTYPE
        directory.mode = 0o755
        directory.mtime = 0
        tar.addfile(directory)
        info = tarfile.TarInfo("etc/portside-build")
        info.size = len(content)
        info.mode = 0o644
        info.mtime = 0
        tar.addfile(info, io.BytesIO(content))
    tar_bytes = raw.getvalue()
    packed = io.BytesIO()
    # mtime=0 and no file name: gzip output depends on the content only.
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0, compresslevel=6) as gz:
        gz.write(tar_bytes)
    return Blob(MEDIA_TYPES[media]["layer"], packed.getvalue()), sha256_digest(tar_bytes)


def build_image(
    build: str,
    *,
    arch: str | Platform = "amd64",
    media: Media = "oci",
    created: str = DEFAULT_CREATED,
    labels: Mapping[str, str] | None = None,
) -> Image:
    """One single-platform image for ``build`` (deterministic)."""
    platform = platform_for(arch)
    types = MEDIA_TYPES[media]
    layer, diff_id = make_layer(build, platform, media)
    all_labels = {"org.portside.test.build": build, **(labels or {})}
    config_obj: dict[str, Any] = {
        "created": created,
        "architecture": platform.architecture,
    }
    if platform.variant:
        config_obj["variant"] = platform.variant
    config_obj["os"] = platform.os
    if platform.os_version:
        config_obj["os.version"] = platform.os_version
    config_obj["config"] = {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": ["/bin/sh"],
        "Labels": all_labels,
    }
    config_obj["rootfs"] = {"type": "layers", "diff_ids": [diff_id]}
    config_obj["history"] = [
        {"created": created, "created_by": f"portside-seed build {build} for {platform.key}"}
    ]
    config = Blob(types["config"], canonical_json(config_obj))
    manifest_obj = {
        "schemaVersion": 2,
        "mediaType": types["manifest"],
        "config": config.descriptor(),
        "layers": [layer.descriptor()],
    }
    manifest = Blob(types["manifest"], canonical_json(manifest_obj))
    return Image(build, platform, media, created, manifest, config, (layer,), (diff_id,))


def build_index(
    build: str,
    architectures: Sequence[str | Platform],
    *,
    media: Media = "oci",
    created: str = DEFAULT_CREATED,
    labels: Mapping[str, str] | None = None,
) -> Index:
    """An index/manifest list with one child per architecture, in the order given."""
    if not architectures:
        raise ValueError("an index needs at least one architecture")
    children = tuple(
        build_image(build, arch=a, media=media, created=created, labels=labels)
        for a in architectures
    )
    index_obj = {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPES[media]["index"],
        "manifests": [c.manifest.descriptor(platform=c.platform.to_json()) for c in children],
    }
    manifest = Blob(MEDIA_TYPES[media]["index"], canonical_json(index_obj))
    return Index(build, media, created, manifest, children)


def build_artifact(
    build: str,
    architectures: Sequence[str | Platform] = ("amd64",),
    *,
    platforms: bool = True,
    media: Media = "oci",
    created: str = DEFAULT_CREATED,
    labels: Mapping[str, str] | None = None,
) -> Artifact:
    """An index over ``architectures`` if ``platforms``, else one image (amd64 if listed)."""
    if platforms:
        return build_index(build, architectures, media=media, created=created, labels=labels)
    names = [platform_for(a).key for a in architectures]
    arch = architectures[names.index("linux/amd64")] if "linux/amd64" in names else architectures[0]
    return build_image(build, arch=arch, media=media, created=created, labels=labels)


def merge_indexes(build: str, indexes: Sequence[Index], *, media: Media = "oci") -> Index:
    """One index over the children of several (a "shared tag": official images list, e.g.,
    ``python:3`` under a Linux build and two Windows builds, served as one index).
    """
    children: list[Image] = []
    seen: set[str] = set()
    for index in indexes:
        for child in index.children:
            if child.digest not in seen:
                seen.add(child.digest)
                children.append(child)
    index_obj = {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPES[media]["index"],
        "manifests": [c.manifest.descriptor(platform=c.platform.to_json()) for c in children],
    }
    manifest = Blob(MEDIA_TYPES[media]["index"], canonical_json(index_obj))
    return Index(build, media, indexes[0].created, manifest, tuple(children))
