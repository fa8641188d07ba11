"""Manifests, indexes, descriptors, platforms and image configs: the OCI data model.

Pure data and validation; no I/O. Parsing refuses what trusted clients refuse: schema 1,
a body whose ``mediaType`` disagrees with the response's ``Content-Type``, and a document
with both ``manifests`` and ``layers`` (the ambiguous-manifest advisory class).
"""

from __future__ import annotations

from portside import jsonscan
from portside.errors import InvalidDigest, InvalidReference, InvalidResponse, UnsupportedMediaType
from portside.reference import Digest
from portside.registry import mediatypes as mt
from portside.value import Value, field

# The value classes below are portside.value.Value, not dataclasses (same behaviour,
# ~10 ms less on every cache-hit ``portside inspect``); typing only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# What people (and ``uname -m``) call architectures, as OCI names them.
_ARCH_ALIASES: dict[str, tuple[str, str | None]] = {
    "x86_64": ("amd64", None),
    "x86-64": ("amd64", None),
    "aarch64": ("arm64", None),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v6"),
    "i386": ("386", None),
    "i686": ("386", None),
}
# Index entries that are not images: BuildKit attestations and similar.
_ATTESTATION_ANNOTATION = "vnd.docker.reference.type"


class Platform(Value, order=True):
    """``os/architecture[/variant]``, as in an index entry or an image config."""

    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.strip().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise InvalidReference(
                f"invalid platform {text!r}",
                hint="expected os/arch or os/arch/variant, e.g. linux/arm64",
            )
        os_, arch = parts[0].lower(), parts[1].lower()
        variant = parts[2].lower() if len(parts) == 3 else None
        if arch in _ARCH_ALIASES:
            arch, implied = _ARCH_ALIASES[arch]
            variant = variant or implied
        return cls(os_, arch, variant)

    @classmethod
    def from_json(cls, data: Any) -> Platform | None:
        if not isinstance(data, dict):
            return None
        os_ = data.get("os")
        arch = data.get("architecture")
        if not isinstance(os_, str) or not isinstance(arch, str):
            return None
        variant = data.get("variant")
        os_version = data.get("os.version")
        return cls(
            os_,
            arch,
            variant if isinstance(variant, str) and variant else None,
            os_version if isinstance(os_version, str) and os_version else None,
        )

    def matches(self, wanted: Platform) -> bool:
        """Whether this platform satisfies ``wanted``.

        A wanted variant must match exactly (arm64 images usually omit ``v8``, so
        ``linux/arm64/v8`` also takes an arm64 entry without a variant). A wanted
        ``os_version`` (Windows builds) must equal the entry's or be a prefix of it at a
        dot boundary (``10.0.20348`` takes ``10.0.20348.4052``).
        """
        if (self.os, self.architecture) != (wanted.os, wanted.architecture):
            return False
        if wanted.os_version is not None and not (
            self.os_version == wanted.os_version
            or (self.os_version or "").startswith(wanted.os_version + ".")
        ):
            return False
        if wanted.variant is None:
            return True
        return self.variant == wanted.variant or (
            wanted.architecture == "arm64" and wanted.variant == "v8" and self.variant is None
        )

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


class Descriptor(Value):
    """What points at content: media type, digest, size, and optional extras."""

    media_type: str
    digest: Digest
    size: int
    platform: Platform | None = None
    annotations: dict[str, str] = field(default_factory=dict, compare=False)
    artifact_type: str | None = None
    urls: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Any, *, where: str) -> Descriptor:
        if not isinstance(data, dict):
            raise InvalidResponse(f"{where}: a descriptor is not a JSON object")
        media_type = data.get("mediaType")
        digest = data.get("digest")
        size = data.get("size")
        if not isinstance(media_type, str) or not isinstance(digest, str):
            raise InvalidResponse(f"{where}: a descriptor lacks mediaType or digest")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidResponse(f"{where}: descriptor {digest[:80]} has an invalid size")
        annotations = data.get("annotations") or {}
        urls = data.get("urls") or []
        artifact_type = data.get("artifactType")
        try:
            parsed = Digest.parse(digest)
        except InvalidDigest:
            # From the registry, not from the user: a protocol error, not a usage error.
            raise InvalidResponse(
                f"{where}: a descriptor has an invalid digest {digest[:80]!r}"
            ) from None
        return cls(
            media_type=media_type,
            digest=parsed,
            size=size,
            platform=Platform.from_json(data.get("platform")),
            annotations={str(k): str(v) for k, v in annotations.items()}
            if isinstance(annotations, dict)
            else {},
            artifact_type=artifact_type if isinstance(artifact_type, str) else None,
            urls=tuple(u for u in urls if isinstance(u, str)) if isinstance(urls, list) else (),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.platform is not None:
            p: dict[str, str] = {"os": self.platform.os, "architecture": self.platform.architecture}
            if self.platform.variant:
                p["variant"] = self.platform.variant
            if self.platform.os_version:
                p["os.version"] = self.platform.os_version
            out["platform"] = p
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.urls:
            out["urls"] = list(self.urls)
        return out


class Manifest(Value):
    """A verified image manifest or index: the exact bytes plus what they say.

    ``digest`` is the digest of ``raw``; whoever built this object checked it.
    """

    raw: bytes
    media_type: str
    digest: Digest
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None
    annotations: dict[str, str] = field(default_factory=dict, compare=False)
    artifact_type: str | None = None

    @property
    def is_index(self) -> bool:
        return self.media_type in mt.INDEX_TYPES

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw))

    @property
    def platforms(self) -> tuple[Platform, ...]:
        return tuple(d.platform for d in self.manifests if d.platform is not None)

    @property
    def compressed_size(self) -> int:
        """Config plus layers, as pulled; for an index, the index itself only."""
        total = sum(layer.size for layer in self.layers)
        if self.config is not None:
            total += self.config.size
        return total

    def select(self, wanted: Platform) -> Descriptor:
        """The first index entry for ``wanted``; attestation entries (``unknown/unknown``,
        or annotated as such) are never chosen, whatever is asked for.
        """
        images = [d for d in self.manifests if _is_image_entry(d)]
        for d in images:
            assert d.platform is not None
            if d.platform.matches(wanted):
                return d
        available = ", ".join(dict.fromkeys(str(d.platform) for d in images)) or "none"
        raise PlatformNotFound(wanted, available)


def _is_image_entry(d: Descriptor) -> bool:
    return (
        d.platform is not None
        and d.platform.os != "unknown"
        and d.platform.architecture != "unknown"
        and d.annotations.get(_ATTESTATION_ANNOTATION) != "attestation-manifest"
    )


class PlatformNotFound(InvalidReference):
    """The index has no manifest for the requested platform."""

    def __init__(self, wanted: Platform, available: str) -> None:
        self.wanted = wanted
        self.available = available
        super().__init__(
            f"no image for platform {wanted} in the index",
            hint=f"available platforms: {available}",
        )


def _strip_params(content_type: str | None) -> str | None:
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def parse_manifest(raw: bytes, *, digest: Digest, content_type: str | None, where: str) -> Manifest:
    """Parse manifest bytes already verified against ``digest``.

    ``where`` names the image for error messages (``registry/repo@digest``).
    """
    try:
        doc = jsonscan.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidResponse(f"{where}: the manifest is not valid JSON") from None
    if not isinstance(doc, dict):
        raise InvalidResponse(f"{where}: the manifest is not a JSON object")

    body_type = doc.get("mediaType")
    if body_type is not None and not isinstance(body_type, str):
        raise InvalidResponse(f"{where}: the manifest's mediaType is not a string")
    header_type = _strip_params(content_type)
    schema = doc.get("schemaVersion")

    if schema == 1 or body_type in mt.SCHEMA1_TYPES or header_type in mt.SCHEMA1_TYPES:
        raise UnsupportedMediaType(
            f"{where}: Docker schema 1 manifests are not supported",
            hint="rebuild and push the image with a current client",
        )
    if "manifests" in doc and ("layers" in doc or "config" in doc):
        raise InvalidResponse(
            f"{where}: ambiguous manifest with both 'manifests' and 'layers'/'config'; refused"
        )
    if body_type and header_type and header_type in mt.MANIFEST_TYPES and body_type != header_type:
        raise InvalidResponse(
            f"{where}: the manifest says it is {body_type} but was served as {header_type}; refused"
        )

    media_type = body_type or header_type
    if media_type is None or media_type not in mt.MANIFEST_TYPES:
        # OCI allows mediaType to be absent; infer from the shape.
        if media_type is None or media_type == "application/json":
            media_type = mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST
        else:
            raise UnsupportedMediaType(f"{where}: unsupported manifest media type {media_type}")

    annotations = doc.get("annotations") or {}
    artifact_type = doc.get("artifactType")
    subject = doc.get("subject")
    common: dict[str, Any] = {
        "raw": raw,
        "media_type": media_type,
        "digest": digest,
        "annotations": {str(k): str(v) for k, v in annotations.items()}
        if isinstance(annotations, dict)
        else {},
        "artifact_type": artifact_type if isinstance(artifact_type, str) else None,
        "subject": Descriptor.from_json(subject, where=where) if subject is not None else None,
    }
    if media_type in mt.INDEX_TYPES:
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise InvalidResponse(f"{where}: the index has no 'manifests' list")
        return Manifest(
            manifests=tuple(Descriptor.from_json(e, where=where) for e in entries), **common
        )
    config = doc.get("config")
    layers = doc.get("layers")
    if config is None or not isinstance(layers, list):
        raise InvalidResponse(f"{where}: the image manifest lacks 'config' or 'layers'")
    return Manifest(
        config=Descriptor.from_json(config, where=where),
        layers=tuple(Descriptor.from_json(layer, where=where) for layer in layers),
        **common,
    )


class ImageConfig(Value):
    """The parts of an image config blob people ask about."""

    raw: bytes
    digest: Digest
    created: str | None
    platform: Platform | None
    labels: dict[str, str]
    history_length: int
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()
    user: str | None = None
    workdir: str | None = None


def parse_config(raw: bytes, *, digest: Digest, where: str) -> ImageConfig:
    try:
        doc = jsonscan.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidResponse(f"{where}: the image config is not valid JSON") from None
    if not isinstance(doc, dict):
        raise InvalidResponse(f"{where}: the image config is not a JSON object")
    inner = doc.get("config") if isinstance(doc.get("config"), dict) else {}
    assert isinstance(inner, dict)
    labels = inner.get("Labels") or {}
    history = doc.get("history")

    def strings(value: Any) -> tuple[str, ...] | None:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        return None

    created = doc.get("created")
    user = inner.get("User")
    workdir = inner.get("WorkingDir")
    return ImageConfig(
        raw=raw,
        digest=digest,
        created=created if isinstance(created, str) else None,
        platform=Platform.from_json(doc),
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
        history_length=len(history) if isinstance(history, list) else 0,
        entrypoint=strings(inner.get("Entrypoint")),
        cmd=strings(inner.get("Cmd")),
        env=strings(inner.get("Env")) or (),
        user=user if isinstance(user, str) and user else None,
        workdir=workdir if isinstance(workdir, str) and workdir else None,
    )
