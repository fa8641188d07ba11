"""What an image is: digests, platforms, creation time, labels and size, in one object.

:func:`inspect` follows a reference through the cache: the tag to its manifest or
index, an index to the manifest for one platform, that manifest to its config blob.

**Platform choice.** When the reference names an index (a multi-platform image) and no
platform is asked for, ``linux/amd64`` is inspected (:data:`DEFAULT_PLATFORM`), the same
default as ``skopeo inspect`` on an amd64 machine, so the answer does not depend on
the machine it runs on. Every platform of the index is still listed. A platform the
index does not hold is an error that lists those it does.
"""

from __future__ import annotations

from portside.errors import InvalidResponse
from portside.registry.manifest import Manifest, Platform, PlatformNotFound

TYPE_CHECKING = False  # avoids importing typing (~9 ms) on the warm path; mypy knows it
if TYPE_CHECKING:
    from portside.cache import CachedRegistry
    from portside.reference import Digest, Reference
    from portside.registry.manifest import ImageConfig

DEFAULT_PLATFORM = Platform("linux", "amd64")


def human_size(size: int) -> str:
    """Bytes for people, in powers of 1000 as queries spell sizes: ``52.4 MB``."""
    value = float(size)
    for unit in ("B", "kB", "MB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


class ImageInfo:
    """One image as ``portside inspect`` shows it.

    ``digest`` / ``media_type`` are what the reference points to (the index for a
    multi-platform image: the digest to pin). ``manifest_digest`` /
    ``manifest_media_type`` are the image manifest that was inspected (the same as
    ``digest`` for a single-platform image). ``size`` is the compressed size of that
    image, config plus layers, as a pull would download it.
    """

    __slots__ = (
        "created",
        "digest",
        "index_digest",
        "labels",
        "layers",
        "manifest_digest",
        "manifest_media_type",
        "media_type",
        "platform",
        "platforms",
        "reference",
        "size",
    )

    def __init__(
        self,
        *,
        reference: str,
        digest: Digest,
        media_type: str,
        index_digest: Digest | None,
        manifest_digest: Digest,
        manifest_media_type: str,
        platform: Platform | None,
        platforms: tuple[Platform, ...],
        created: str | None,
        labels: dict[str, str],
        size: int,
        layers: int,
    ) -> None:
        self.reference = reference
        self.digest = digest
        self.media_type = media_type
        self.index_digest = index_digest
        self.manifest_digest = manifest_digest
        self.manifest_media_type = manifest_media_type
        self.platform = platform
        self.platforms = platforms
        self.created = created
        self.labels = labels
        self.size = size
        self.layers = layers

    @property
    def is_index(self) -> bool:
        return self.index_digest is not None

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict; keys are stable (scripts read them)."""
        return {
            "reference": self.reference,
            "digest": str(self.digest),
            "mediaType": self.media_type,
            "manifestDigest": str(self.manifest_digest),
            "manifestMediaType": self.manifest_media_type,
            "platform": str(self.platform) if self.platform is not None else None,
            "platforms": [str(p) for p in self.platforms],
            "created": self.created,
            "labels": dict(self.labels),
            "size": self.size,
            "layers": self.layers,
        }

    def __repr__(self) -> str:
        return f"ImageInfo({self.reference!r}, digest={self.digest}, platform={self.platform})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ImageInfo):
            return NotImplemented
        return self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]  # mutable-looking value object: unhashable


def _listed_platforms(index: Manifest) -> tuple[Platform, ...]:
    # Attestation manifests (buildkit's provenance/SBOM) sit in indexes as
    # "unknown/unknown": they are not platforms anyone can run.
    return tuple(p for p in index.platforms if p.os != "unknown")


async def select_image(
    cached: CachedRegistry, ref: Reference, platform: Platform | None = None
) -> tuple[Manifest, Manifest | None]:
    """(the image manifest for ``platform``, the index it came from or ``None``)."""
    top = await cached.manifest(ref)
    if not top.is_index:
        return top, None
    wanted = platform or DEFAULT_PLATFORM
    child = top.select(wanted)
    image = await cached.manifest(ref.with_digest(child.digest))
    if image.is_index:
        raise InvalidResponse(
            f"the index entry for {wanted} is itself an index; nested indexes are not supported",
            registry=ref.registry,
            repository=ref.repository,
        )
    return image, top


async def inspect(
    cached: CachedRegistry, ref: Reference, platform: Platform | None = None
) -> ImageInfo:
    """Everything ``portside inspect`` shows about ``ref`` (see the module docstring)."""
    image, index = await select_image(cached, ref, platform)
    if image.config is None:  # parse_manifest guarantees one; keeps mypy honest
        raise InvalidResponse(f"{ref.name}@{image.digest}: the image manifest has no config")
    config: ImageConfig = await cached.config(ref, image.config.digest)
    image_platform = config.platform
    if index is None and platform is not None and not _matches(image_platform, platform):
        # A single-platform image asked for another platform: say so rather than
        # silently describing something else.
        raise PlatformNotFound(platform, str(image_platform) if image_platform else "unknown")
    if index is not None:
        top = index
        platforms = _listed_platforms(index)
        # The index entry's platform is what was selected; prefer it to the config's
        # (which may lack the variant).
        chosen = index.select(platform or DEFAULT_PLATFORM).platform or image_platform
    else:
        top = image
        platforms = (image_platform,) if image_platform is not None else ()
        chosen = image_platform
    return ImageInfo(
        reference=str(ref),
        digest=top.digest,
        media_type=top.media_type,
        index_digest=index.digest if index is not None else None,
        manifest_digest=image.digest,
        manifest_media_type=image.media_type,
        platform=chosen,
        platforms=platforms,
        created=config.created,
        labels=dict(config.labels),
        size=image.compressed_size,
        layers=len(image.layers),
    )


def _matches(have: Platform | None, wanted: Platform) -> bool:
    return have is not None and have.matches(wanted)


async def platform_digest(
    cached: CachedRegistry, ref: Reference, platform: Platform | None = None
) -> Digest:
    """The digest to pin for ``ref``: the index's, or with ``platform`` the one image's.

    The manifest is read (one GET on a miss, kept for good), so the digest reported is
    that of bytes that were checked and parse as a manifest, never only what a header
    said. With a platform, an index's entry is chosen; a single-platform image must
    match it.
    """
    top = await cached.manifest(ref)
    if platform is None:
        return top.digest
    if top.is_index:
        return top.select(platform).digest
    if top.config is None:
        raise InvalidResponse(f"{ref.name}@{top.digest}: the image manifest has no config")
    config = await cached.config(ref, top.config.digest)
    if not _matches(config.platform, platform):
        raise PlatformNotFound(platform, str(config.platform) if config.platform else "unknown")
    return top.digest
