"""The trust gate: which registries the server may contact.

In a trusted workspace every registry the core allows is contacted. In an untrusted
one only registries on the editor's ``trustedRegistries`` allow-list are; for any other
the server answers from what is already in the cache and never opens a connection.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import TYPE_CHECKING

from portside.cache import CachedRegistry, CacheStore
from portside.errors import CacheMiss
from portside.reference import Reference

if TYPE_CHECKING:  # the network stack (httpx) is imported on the first fetch, not here
    from portside.reference import Digest
    from portside.registry.manifest import Descriptor, Manifest
    from portside.registry.transport import ClientOptions


class GatedRegistry(CachedRegistry):
    """A :class:`CachedRegistry` that goes to the network only for permitted hosts."""

    def __init__(
        self,
        *,
        store: CacheStore,
        options: ClientOptions,
        trusted: bool,
        allow: Iterable[str],
        tags_ttl: float,
        refresh: bool = False,
    ) -> None:
        super().__init__(
            store=store,
            options=options,
            allow_stale=not refresh,
            refresh=refresh,
            tags_ttl=tags_ttl,
        )
        self.trusted = trusted
        self.allow = tuple(allow)
        self._offline = CachedRegistry(store=store, offline=True)

    @property
    def cache_only(self) -> CachedRegistry:
        """The same cache, any age, never the network (for requests that must not wait)."""
        return self._offline

    def permitted(self, registry: str) -> bool:
        if self.trusted:
            return True
        return any(fnmatch.fnmatchcase(registry, pattern) for pattern in self.allow)

    def _blocked(self, ref: Reference) -> CacheMiss:
        return CacheMiss(
            f"{ref.registry} is not contacted from an untrusted workspace",
            hint="trust the workspace or add the registry to portside.trustedRegistries",
        )

    async def tags(self, ref: Reference) -> list[str]:
        if self.permitted(ref.registry):
            return await super().tags(ref)
        try:
            return await self._offline.tags(ref)
        except CacheMiss:
            raise self._blocked(ref) from None

    async def catalog(self, registry: str) -> list[str]:
        if self.permitted(registry):
            return await super().catalog(registry)
        try:
            return await self._offline.catalog(registry)
        except CacheMiss:
            raise self._blocked(Reference(registry, "x/x", None, None)) from None

    async def resolve(self, ref: Reference) -> Descriptor:
        if self.permitted(ref.registry):
            return await super().resolve(ref)
        try:
            return await self._offline.resolve(ref)
        except CacheMiss:
            raise self._blocked(ref) from None

    async def manifest(self, ref: Reference) -> Manifest:
        if self.permitted(ref.registry):
            return await super().manifest(ref)
        try:
            return await self._offline.manifest(ref)
        except CacheMiss:
            raise self._blocked(ref) from None

    async def blob(self, ref: Reference, digest: Digest, *, max_bytes: int | None = None) -> bytes:
        if self.permitted(ref.registry):
            return await super().blob(ref, digest, max_bytes=max_bytes)
        try:
            return await self._offline.blob(ref, digest, max_bytes=max_bytes)
        except CacheMiss:
            raise self._blocked(ref) from None
