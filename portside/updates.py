"""What only the registry can tell about an update: whether a newer tag is a new image.

The version rules (:mod:`portside.versions`) decide from tag names alone. One case needs
the digests: a repository that tags its pre-release builds with the final release's
name too (openjdk's ``25`` is ``25-ea-25`` until 25 is out) would have every user of
``25-ea-25`` "updated" to ``25``, the very same image. :func:`without_same_image`
takes such tags out of the list before the version rules see it; ``check``, ``pin
--update`` and ``latest`` all call it, so they agree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from portside import errors, versions
from portside.reference import Reference

if TYPE_CHECKING:
    from portside.cache import CachedRegistry


async def without_same_image(
    cached: CachedRegistry,
    ref: Reference,
    tags: list[str],
    scheme: versions.VersionScheme,
) -> list[str]:
    """``tags`` without the final releases of ``ref``'s pre-release (same line, same
    release) that point to the image of that pre-release, or of the newest numbered
    pre-release of the release (``23-nanoserver`` while it is ``23-ea-25-nanoserver``:
    a user of a dropped ``23-ea-14-nanoserver`` is offered ``23-ea-25-nanoserver``).
    Asks the registry only for a pre-release with such a final release in its line
    (rare); on any registry error, ``tags`` as they are."""
    current = scheme.parse(ref.tag) if ref.tag else None
    if current is None or current.pre is None:
        return tags
    same_release = [
        parsed
        for tag in tags
        if (parsed := scheme.parse(tag)) is not None
        and parsed.release == current.release
        and scheme.is_compatible(current, parsed)
    ]
    finals = [v.tag for v in same_release if v.pre is None]
    if not finals:
        return tags
    numbered = [v for v in same_release if v.pre is not None and v.pre[1] >= 0]
    builds = [ref.tag] if ref.tag in tags else []
    if numbered:
        newest = max(numbered, key=lambda v: v.key).tag
        if newest not in builds:
            builds.append(newest)
    if not builds:
        return tags
    repository = Reference(ref.registry, ref.repository, None)
    try:
        # One after the other: a few requests at most, and without asyncio.gather the
        # language server can run this from the cache alone (CachedRegistry.run_from_cache).
        found = [await cached.resolve(repository.with_tag(tag)) for tag in (*builds, *finals)]
    except errors.PortsideError:
        return tags
    pre_digests = {d.digest for d in found[: len(builds)]}
    same = {
        tag for tag, d in zip(finals, found[len(builds) :], strict=True) if d.digest in pre_digests
    }
    return [tag for tag in tags if tag not in same]
