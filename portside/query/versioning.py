"""The one place the query language meets :mod:`portside.versions`.

The rest of :mod:`portside.query` only sees :class:`QueryVersion`,
:func:`version_parser`, :func:`default_order_key` and :func:`newest_in_line`; each
image's tags are read with the version scheme configured for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from portside import versions


class QueryVersion:
    """A tag (or a version literal) read as a version: what conditions compare."""

    __slots__ = ("key", "prerelease", "release", "tag", "variant")

    def __init__(
        self, tag: str, release: tuple[int, ...], prerelease: Any, variant: str, key: Any
    ) -> None:
        self.tag = tag
        self.release = release
        self.prerelease = prerelease  # None for a final release
        self.variant = variant
        # Opaque and comparable: larger is newer (the scheme defines it).
        self.key = key

    def has_prefix(self, prefix: QueryVersion) -> bool:
        """``version ~ 3.12``: the release starts with the literal's numbers.

        A literal with a pre-release (``~ 3.15.0rc1``) only matches that pre-release.
        """
        if prefix.prerelease is not None:
            return self.release == prefix.release and self.prerelease == prefix.prerelease
        return self.release[: len(prefix.release)] == prefix.release

    def __repr__(self) -> str:
        return f"QueryVersion({self.tag!r}, {self.release}, {self.prerelease!r}, {self.variant!r})"


def _wrap(scheme: versions.VersionScheme, tag: str) -> QueryVersion | None:
    try:
        parsed = scheme.parse(tag)
    except ValueError:  # a number beyond int()'s digit limit: not a version anyone uses
        return None
    if parsed is None:
        return None
    return QueryVersion(tag, parsed.release, parsed.prerelease, parsed.variant, parsed.key)


def version_parser(image_name: str) -> Callable[[str], QueryVersion | None]:
    """How tags of ``image_name`` (``registry/repository``) read as versions."""
    scheme = versions.scheme_for(image_name)
    return lambda tag: _wrap(scheme, tag)


def parse_version_literal(text: str) -> QueryVersion | None:
    """A version written in a query (``3.12``, ``v2``, ``3.15.0rc1``); no variant allowed."""
    parsed = _wrap(versions.DEFAULT_SCHEME, text)
    if parsed is None or parsed.variant:
        return None
    return parsed


def default_order_key(tag: str) -> Any:
    """Ascending sort key that puts tags newest version first (``sort_tags`` order)."""
    return versions.newest_first_key(tag)


def newest_in_line(current: str | None, tags: Iterable[str], image_name: str) -> str | None:
    """The newest final release in ``current``'s line (``versions.newest_in_line``, the
    rules ``check`` uses).

    ``latest`` or no tag at all means the newest plain final release of the repository:
    what ``latest`` *should* point to, computed rather than trusted (a version, never a
    snapshot date or a release not out yet). Another tag that is not a version is a
    moving alias (``stable``, ``alpine``, ``rolling``): it is its own newest.
    """
    scheme = versions.scheme_for(image_name)
    tags = list(tags)
    base = scheme.parse(current) if current else None
    if base is not None:
        newer = versions.newest_in_line(current or "", tags, scheme=scheme)
        if newer is not None:
            return newer
        return current if current in tags and not base.is_prerelease else None
    if current and current != "latest":
        return current if current in tags else None
    best: versions.TagVersion | None = None
    for tag in tags:
        v = scheme.parse(tag)
        if v is None or v.is_prerelease or v.variant or v.form.startswith("calendar:"):
            continue
        if not scheme.is_released(v):
            continue
        if best is None or v.key > best.key or (v.key == best.key and tag < best.tag):
            best = v
    return best.tag if best is not None else None
