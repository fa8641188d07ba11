"""The trust gate: which registries the server may contact.

In a trusted workspace every registry the core allows is contacted. In an untrusted
one only registries on the editor's ``trustedRegistries`` allow-list are; for any other
the server answers from what is already in the cache and never opens a connection.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from portside.cache import CachedRegistry, CacheStore
from portside.errors import CacheMiss
from portside.reference import Reference

if TYPE_CHECKING:  # the network stack (httpx) is imported on the first fetch, not here
    from portside.reference import Digest
    from portside.registry.manifest import Descriptor, Manifest
    from portside.registry.transport import ClientOptions

P = ParamSpec("P")
T = TypeVar("T")


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
        # The same credentials: the cache answers each caller only what its own
        # credential (or none) was answered.
        self._offline = CachedRegistry(store=store, offline=True, credentials=self.credentials)

    @property
    def cache_only(self) -> CachedRegistry:
        """The same cache, any age, never the network (for requests that must not wait)."""
        return self._offline

    def permitted(self, registry: str) -> bool:
        if self.trusted:
            return True
        return any(fnmatch.fnmatchcase(registry, pattern) for pattern in self.allow)

    async def _gated(
        self,
        registry: str,
        online: Callable[P, Awaitable[T]],
        cached: Callable[P, Awaitable[T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """``online`` for a permitted registry; for any other ``cached`` (the same call on
        the cache alone), whose miss says the registry is not contacted."""
        if self.permitted(registry):
            return await online(*args, **kwargs)
        try:
            return await cached(*args, **kwargs)
        except CacheMiss:
            raise CacheMiss(
                f"{registry} is not contacted from an untrusted workspace",
                hint="trust the workspace or add the registry to portside.trustedRegistries",
            ) from None

    async def tags(self, ref: Reference) -> list[str]:
        return await self._gated(ref.registry, super().tags, self._offline.tags, ref)

    async def catalog(self, registry: str) -> list[str]:
        return await self._gated(registry, super().catalog, self._offline.catalog, registry)

    async def resolve(self, ref: Reference) -> Descriptor:
        return await self._gated(ref.registry, super().resolve, self._offline.resolve, ref)

    async def manifest(self, ref: Reference) -> Manifest:
        return await self._gated(ref.registry, super().manifest, self._offline.manifest, ref)

    async def blob(self, ref: Reference, digest: Digest, *, max_bytes: int | None = None) -> bytes:
        return await self._gated(
            ref.registry, super().blob, self._offline.blob, ref, digest, max_bytes=max_bytes
        )
