"""The metadata cache: registry answers kept on disk so nobody waits on the network twice.

Two kinds of things are kept, under :func:`default_cache_dir`:

- **Immutable**, addressed by digest: manifests, indexes and config blobs. Kept for
  good and verified on the way in *and* on the way out: a file whose bytes do not hash
  to its name (a torn write, a disk error, someone editing it) is a miss, never served.
  Content is shared between repositories and registries: the digest names the bytes.
- **Mutable**, addressed by (registry, repository, name): a repository's tag list and
  what a tag points to. Each entry carries its fetch time (and the registry's ETag, when
  one is known); it is *fresh* for a TTL, then *stale*.

Layout (``v1`` is the format; a change of format gets a new directory, never a migration)::

    <root>/v1/manifests/<algorithm>/<hex>   media type, "\\n", the exact manifest bytes
    <root>/v1/blobs/<algorithm>/<hex>       the exact blob bytes
    <root>/v1/<kind>/<escaped key>.json     {"key": [...], "fetched_at": ..., "value": ...}

An entry file is one JSON object written by ``json.dumps`` (ASCII, no spaces): ``key``
is the whole key (kind first) and must equal the key it is read for, ``fetched_at``
the fetch time in seconds since the epoch, ``etag`` the ETag or ``null``, ``value`` the
answer as JSON (a tag list is an array of strings). Entries are read by
:func:`portside.jsonscan.loads`, which answers exactly as ``json.loads`` does without
importing ``json`` for a well-formed file.

File names come from validated digests or from a strictly escaped key (see
:func:`entry_file_name`), so a hostile repository name cannot climb out of the cache
directory. Writes go to a temporary file
in the same directory and are moved into place with :func:`os.replace`, so several
processes can fill the same cache at once: a reader sees the old file or the new one,
never half of one. Reads are tolerant: a missing, partial or unreadable file is a miss.

:class:`CachedRegistry` puts the registry client behind the cache. Import cost is part
of the design: a warm answer must not import asyncio, httpx, pluggy or the registry
client, so those are imported inside the paths that go to the network; the manifest
model (dataclasses, typing: ~10 ms) is imported only by the operations that read
manifests, so a warm tag list does without it; entries are read without ``json``
(which imports ``re``, ``enum`` and ``functools``: ~8 ms), see :mod:`portside.jsonscan`; and
:meth:`CachedRegistry.run_from_cache` answers without an event loop at all.
"""

from __future__ import annotations

import os
import time

from portside import jsonscan
from portside.errors import (
    CacheMiss,
    InvalidResponse,
    PortsideError,
    RateLimited,
    RegistryUnreachable,
    ServerError,
    TooLarge,
    UsageError,
)

TYPE_CHECKING = False  # avoids importing typing (~9 ms) on the warm path; mypy knows it
if TYPE_CHECKING:
    import asyncio
    from collections.abc import Awaitable, Callable, Coroutine
    from typing import Any, TypeVar

    from portside.reference import Digest, Reference
    from portside.registry.client import RegistryClient
    from portside.registry.manifest import Descriptor, ImageConfig, Manifest
    from portside.registry.ratelimit import RateLimit
    from portside.registry.transport import ClientOptions

    T = TypeVar("T")

FORMAT = "v1"
DEFAULT_TAGS_TTL = 300.0
DEFAULT_RESOLVE_TTL = 300.0
# Config blobs are small JSON documents; anything bigger than this is refused rather
# than read into memory (the client applies the same cap on the wire).
MAX_CONFIG_BYTES = 8 * 1024 * 1024

# Errors that mean "the registry did not answer", as opposed to "it answered no":
# when one of these ends a refresh, a stale cached answer is better than none.
_SERVE_STALE_ON = (RegistryUnreachable, ServerError, RateLimited)


def default_cache_dir() -> str:
    """``$PORTSIDE_CACHE_DIR``, else ``$XDG_CACHE_HOME/portside``, else ``~/.cache/portside``."""
    explicit = os.environ.get("PORTSIDE_CACHE_DIR")
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    # The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return os.path.join(xdg, "portside")
    return os.path.join(os.path.expanduser("~"), ".cache", "portside")


class Entry:
    """A mutable answer as read from disk: the value (still raw JSON), when, and an ETag."""

    __slots__ = ("etag", "fetched_at", "value")

    def __init__(self, value: object, fetched_at: float, etag: str | None = None) -> None:
        self.value = value
        self.fetched_at = fetched_at
        self.etag = etag

    def age(self, now: float) -> float:
        return now - self.fetched_at


class CacheStore:
    """The files: synchronous, no network, safe for several processes at once.

    Every method that reads returns ``None`` for anything it cannot trust or parse;
    every method that writes is best effort (a read-only or full disk makes the cache
    useless, not the command).
    """

    def __init__(self, root: str | None = None) -> None:
        self.root = os.path.join(root or default_cache_dir(), FORMAT)
        self.write_errors = 0

    # -- paths ---------------------------------------------------------------------

    def _digest_path(self, kind: str, digest: Digest) -> str:
        # Digest validates algorithm and hex on construction: both are safe path parts.
        return os.path.join(self.root, kind, digest.algorithm, digest.hex)

    def _entry_path(self, key: tuple[str, ...]) -> str:
        # key[0] is the kind, a constant of this module; the rest comes from references.
        return os.path.join(self.root, key[0], entry_file_name(key[1:]))

    # -- low-level I/O -------------------------------------------------------------

    @staticmethod
    def _read(path: str) -> bytes | None:
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError:
            return None

    def _write(self, path: str, data: bytes) -> None:
        directory = os.path.dirname(path)
        tmp = f"{path}.{os.getpid()}.{os.urandom(6).hex()}.tmp"
        try:
            # 0700: tag names and labels of a private registry are nobody else's business.
            os.makedirs(directory, mode=0o700, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                # No fsync: a file torn by a crash fails verification or JSON parsing on
                # the next read and is treated as a miss, which is all a cache needs.
                os.replace(tmp, path)
            except BaseException:
                import contextlib  # only here: not worth ~1 ms on every warm read

                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError:
            self.write_errors += 1

    @staticmethod
    def _discard(path: str) -> None:
        # A concurrent writer may just have replaced the bad file with a good one; losing
        # that costs one refetch, which is harmless.
        import contextlib

        with contextlib.suppress(OSError):
            os.unlink(path)

    # -- recently used images ------------------------------------------------------

    RECENT_LIMIT = 200

    def _recent_path(self) -> str:
        return os.path.join(self.root, "recent-images.json")

    def recent_images(self) -> list[str]:
        """Image names seen resolving lately (editors offer them first), newest first."""
        data = self._read(self._recent_path())
        try:
            value = jsonscan.loads(data) if data is not None else None
        except (ValueError, UnicodeDecodeError):
            return []
        if not isinstance(value, list):
            return []
        return [n for n in value if isinstance(n, str)][: self.RECENT_LIMIT]

    def remember_images(self, names: list[str]) -> list[str]:
        """Put ``names`` first in the recent list (capped, atomic write); the new list."""
        known = self.recent_images()
        fresh = list(dict.fromkeys(names))
        merged = (fresh + [n for n in known if n not in fresh])[: self.RECENT_LIMIT]
        if merged != known:
            import json

            self._write(self._recent_path(), json.dumps(merged).encode())
        return merged

    # -- immutable content ---------------------------------------------------------

    def get_manifest(self, digest: Digest, *, where: str) -> Manifest | None:
        """The manifest with ``digest``, if stored and its bytes still hash to it."""
        path = self._digest_path("manifests", digest)
        data = self._read(path)
        if data is None:
            return None
        from portside.registry.mediatypes import MANIFEST_TYPES

        media_type, sep, raw = data.partition(b"\n")
        media = media_type.decode("ascii", "replace")
        if not sep or media not in MANIFEST_TYPES or not digest.matches(raw):
            self._discard(path)
            return None
        from portside.registry.manifest import parse_manifest

        try:
            return parse_manifest(raw, digest=digest, content_type=media, where=where)
        except PortsideError:
            self._discard(path)
            return None

    def put_manifest(self, manifest: Manifest) -> None:
        """Store a manifest; refuses (silently) one whose bytes do not match its digest."""
        from portside.registry.mediatypes import MANIFEST_TYPES

        if manifest.media_type not in MANIFEST_TYPES or not manifest.digest.matches(manifest.raw):
            return
        path = self._digest_path("manifests", manifest.digest)
        self._write(path, manifest.media_type.encode("ascii") + b"\n" + manifest.raw)

    def get_blob(self, digest: Digest) -> bytes | None:
        path = self._digest_path("blobs", digest)
        data = self._read(path)
        if data is None:
            return None
        if not digest.matches(data):
            self._discard(path)
            return None
        return data

    def put_blob(self, digest: Digest, data: bytes) -> None:
        if digest.matches(data):
            self._write(self._digest_path("blobs", digest), data)

    # -- mutable answers -----------------------------------------------------------

    def get_entry(self, key: tuple[str, ...]) -> Entry | None:
        """The entry for ``key`` (``(kind, registry, repository, ...)``), if readable."""
        data = self._read(self._entry_path(key))
        if data is None:
            return None
        try:
            doc = jsonscan.loads(data)
        except ValueError:  # partial or corrupt file (UnicodeDecodeError is a ValueError)
            return None
        if not isinstance(doc, dict) or doc.get("key") != list(key):
            return None
        fetched_at = doc.get("fetched_at")
        etag = doc.get("etag")
        if not isinstance(fetched_at, (int, float)) or isinstance(fetched_at, bool):
            return None
        if "value" not in doc:
            return None
        return Entry(doc["value"], float(fetched_at), etag if isinstance(etag, str) else None)

    def put_entry(
        self,
        key: tuple[str, ...],
        value: object,
        *,
        fetched_at: float,
        etag: str | None = None,
    ) -> None:
        import json  # writing means a fetch: the network stack is loaded anyway

        doc = {"key": list(key), "fetched_at": fetched_at, "etag": etag, "value": value}
        data = json.dumps(doc, separators=(",", ":"), ensure_ascii=True).encode("ascii")
        self._write(self._entry_path(key), data)


_SAFE_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")
_MAX_NAME = 200  # below every common file system's 255-byte limit, with room for ".tmp"


def _escape(part: str) -> str:
    return "".join(
        c if c in _SAFE_NAME_CHARS else "".join(f"%{b:02x}" for b in c.encode()) for c in part
    )


def entry_file_name(parts: tuple[str, ...]) -> str:
    """A file name for a mutable entry's key, safe whatever the key holds.

    Every character outside ``[a-z0-9_-]`` is %-escaped (``.`` and ``/`` too, so no
    name can be ``..`` or hold a separator; upper case too, so case-insensitive file
    systems cannot merge two tags); parts are joined with ``+``, which is itself always
    escaped inside a part, so two keys never share a name. Names that would be too long
    become a SHA-256 of the key. Escaping rather than always hashing keeps hashlib
    (~3 ms) off the warm path and leaves the cache readable with ``ls``.
    """
    name = "+".join(_escape(p) for p in parts)
    if len(name) > _MAX_NAME:
        import hashlib

        name = "sha256-" + hashlib.sha256("\0".join(parts).encode()).hexdigest()
    return name + ".json"


class NeedsNetwork(Exception):
    """Raised by :meth:`CachedRegistry.run_from_cache` when the cache cannot answer alone."""


def _decode_tags(value: object) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(t, str) for t in value):
        return value
    return None


def _decode_descriptor(value: object) -> Descriptor | None:
    from portside.registry.manifest import Descriptor

    try:
        return Descriptor.from_json(value, where="cache")
    except PortsideError:
        return None


def _decode_descriptors(value: object) -> list[Descriptor] | None:
    if not isinstance(value, list):
        return None
    found = [_decode_descriptor(item) for item in value]
    return None if any(d is None for d in found) else [d for d in found if d is not None]


def _describe_age(seconds: float) -> str:
    if seconds < 120:
        return f"{max(seconds, 0):.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


class CachedRegistry:
    """The registry operations, answered from the cache when it can.

    Modes, per instance:

    - default: a fresh answer comes from disk with no network; a stale one is
      refreshed before answering, and if the registry cannot be reached (or answers
      5xx or 429) the stale answer is served and a line is added to :attr:`warnings`;
    - ``allow_stale=True`` (editors): a stale answer is returned at once and refreshed
      in a background task; :meth:`drain` waits for those;
    - ``offline=True``: the cache only, whatever the age; :class:`CacheMiss` when absent;
    - ``refresh=True``: mutable answers are fetched again whatever their age.
      Digest-addressed content is never refetched: it is verified on every read, so it
      cannot be stale.

    At most one fetch per key runs at a time in one instance: a second caller for the
    same key waits for the first fetch instead of sending its own request. Such a shared
    fetch counts its waiters: a cancelled waiter only stops waiting while others still
    wait, and when the last one is cancelled the fetch (its HTTP request with it) is
    cancelled too. A background refresh (``allow_stale``) has no waiter of its own and is
    never cancelled that way: callers joining it cannot end it.

    The registry client is created on the first miss (``client_factory`` or a
    ``RegistryClient(options)``), so a warm answer never imports the network stack.
    Use ``async with`` or call :meth:`aclose` when network paths may have run.
    """

    def __init__(
        self,
        *,
        store: CacheStore | None = None,
        options: ClientOptions | None = None,
        client_factory: Callable[[], RegistryClient] | None = None,
        offline: bool = False,
        refresh: bool = False,
        allow_stale: bool = False,
        tags_ttl: float = DEFAULT_TAGS_TTL,
        resolve_ttl: float = DEFAULT_RESOLVE_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if offline and refresh:
            raise UsageError("offline and refresh contradict each other", hint="choose one")
        self.store = store if store is not None else CacheStore()
        self.options = options
        self.offline = offline
        self.refresh = refresh
        self.allow_stale = allow_stale
        self.tags_ttl = tags_ttl
        self.resolve_ttl = resolve_ttl
        self.warnings: list[str] = []
        self._clock = clock
        self._client_factory = client_factory
        self._client: RegistryClient | None = None
        self._client_lock: asyncio.Lock | None = None
        self._cache_only = False
        self._inflight: dict[tuple[str, ...], asyncio.Future[Any]] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        # Shared fetches: how many callers wait for each, and which run in the
        # background (those are kept alive whoever stops waiting).
        self._waiters: dict[asyncio.Future[Any], int] = {}
        self._detached: set[asyncio.Future[Any]] = set()
        # Within one process a manifest read once is not re-read and re-hashed.
        self._manifests: dict[Digest, Manifest] = {}

    # -- lifecycle -----------------------------------------------------------------

    async def __aenter__(self) -> CachedRegistry:
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        # Leaving on an error or a cancellation (Ctrl-C): nobody waits for the answers,
        # so in-flight fetches are cancelled rather than awaited.
        await self.aclose(cancel_pending=exc is not None)

    async def aclose(self, *, cancel_pending: bool = False) -> None:
        """Wait for (or cancel) background refreshes, then close the client."""
        if cancel_pending:
            for task in list(self._tasks):
                task.cancel()
        await self.drain()
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def drain(self) -> None:
        """Wait until every fetch started by this instance (background ones too) ended."""
        import asyncio

        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def rate_limit(self, registry: str) -> RateLimit | None:
        """What the registry's quota headers said last; ``None`` when unknown."""
        return self._client.rate_limit(registry) if self._client is not None else None

    # -- running without an event loop ---------------------------------------------

    def run_from_cache(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run one of this object's coroutines to its end using the cache alone.

        No event loop is involved: on a cache hit none of these coroutines ever
        suspends, so driving it with ``send(None)`` finishes it, and the command line
        answers without importing asyncio (~45 ms) or httpx. When the answer needs the
        registry (a miss, a stale entry) this raises :class:`NeedsNetwork`, and the
        caller runs the same operation again under ``asyncio.run``.
        """
        self._cache_only = True
        try:
            coro.send(None)
        except StopIteration as done:
            result: T = done.value
            return result
        finally:
            self._cache_only = False
        # It suspended on something real: not a pure cache answer after all.
        coro.close()
        raise NeedsNetwork("the answer needs the registry")

    # -- operations ----------------------------------------------------------------

    async def tags(self, ref: Reference) -> list[str]:
        """Every tag of ``ref``'s repository, in the registry's order (lexical)."""
        key = ("tags", ref.registry, ref.repository)

        async def fetch(old: Entry | None) -> list[str]:
            started = self._clock()
            client = await self._get_client()
            old_tags = _decode_tags(old.value) if old is not None else None
            etag = old.etag if old is not None and old_tags is not None else None
            listing = await client.list_tags_if_changed(ref, etag=etag)
            if listing.tags is None and old_tags is not None:
                # 304: the cached list is still right; only its age is renewed.
                self.store.put_entry(key, old_tags, fetched_at=started, etag=etag)
                return old_tags
            tags = list(listing.tags or [])
            self.store.put_entry(key, tags, fetched_at=started, etag=listing.etag)
            return tags

        return await self._mutable(
            key,
            ttl=self.tags_ttl,
            decode=_decode_tags,
            fetch=fetch,
            what=f"the tag list of {ref.name}",
        )

    async def catalog(self, registry: str) -> list[str]:
        """The repositories ``registry``'s catalog lists (empty where it is not offered
        to us), kept with the tag lists' TTL."""
        key = ("catalog", registry)

        async def fetch(old: Entry | None) -> list[str]:
            started = self._clock()
            client = await self._get_client()
            names = await client.catalog(registry)
            self.store.put_entry(key, names, fetched_at=started)
            return names

        return await self._mutable(
            key,
            ttl=self.tags_ttl,
            decode=_decode_tags,
            fetch=fetch,
            what=f"the catalog of {registry}",
        )

    async def tags_newest_first(self, ref: Reference) -> list[str]:
        """The tags sorted newest version first (``versions.sort_tags``).

        The sorted list is cached beside the tag list and stamped with that list's
        fetch time, so it is used only while it sorts exactly the cached list: a warm
        answer then needs neither the version rules nor the sort (about 10 ms for 2,000
        tags on the command line's warm path).
        """
        tags_key = ("tags", ref.registry, ref.repository)
        sorted_key = ("tags-newest-first", ref.registry, ref.repository)
        if not self.refresh:
            source = self.store.get_entry(tags_key)
            entry = self.store.get_entry(sorted_key)
            ordered = _decode_tags(entry.value) if entry is not None else None
            if source is not None and entry is not None and ordered is not None:
                age = source.age(self._clock())
                fresh = 0 <= age <= self.tags_ttl or self.offline
                if fresh and entry.fetched_at == source.fetched_at:
                    return ordered
        tags = await self.tags(ref)
        from portside.versions import sort_tags

        ordered = sort_tags(tags)
        source = self.store.get_entry(tags_key)
        if source is not None:
            self.store.put_entry(sorted_key, ordered, fetched_at=source.fetched_at)
        return ordered

    async def resolve(self, ref: Reference) -> Descriptor:
        """The descriptor ``ref`` points to (its tag's current target, or its digest's)."""
        if ref.digest is not None:
            return (await self.manifest(ref)).descriptor
        return await self._resolve_tag(ref, get_body=False)

    async def manifest(self, ref: Reference) -> Manifest:
        """The manifest or index ``ref`` names, verified."""
        if ref.digest is not None:
            return await self._manifest_by_digest(ref, ref.digest)
        descriptor = await self._resolve_tag(ref, get_body=True)
        return await self._manifest_by_digest(ref, descriptor.digest)

    async def referrers(self, ref: Reference) -> list[Descriptor]:
        """The artifacts attached to ``ref``'s digest (signatures, SBOMs, lifecycle and
        vulnerability reports): a mutable answer, cached like a tag's target."""
        if ref.digest is None:
            raise UsageError("referrers need a digest reference (name@sha256:…)")
        key = ("referrers", ref.registry, ref.repository, str(ref.digest))

        async def fetch(old: Entry | None) -> list[Descriptor]:
            started = self._clock()
            client = await self._get_client()
            found = await client.referrers(ref)
            self.store.put_entry(key, [d.to_json() for d in found], fetched_at=started)
            return found

        return await self._mutable(
            key,
            ttl=self.resolve_ttl,
            decode=_decode_descriptors,
            fetch=fetch,
            what=f"what is attached to {ref.name}@{ref.digest.short}",
        )

    async def blob(self, ref: Reference, digest: Digest, *, max_bytes: int | None = None) -> bytes:
        """A blob of ``ref``'s repository, verified; kept for good."""
        data = self.store.get_blob(digest)
        if data is not None:
            if max_bytes is not None and len(data) > max_bytes:
                raise TooLarge(
                    f"blob {digest.short} is larger than the limit of {max_bytes} bytes",
                    registry=ref.registry,
                    repository=ref.repository,
                )
            return data
        self._need_network(f"blob {digest.short} of {ref.name}")

        async def fetch() -> bytes:
            client = await self._get_client()
            data = await client.get_blob(ref, digest, max_bytes=max_bytes)
            self.store.put_blob(digest, data)
            return data

        result: bytes = await self._once(("blob", str(digest)), fetch)
        return result

    async def config(self, ref: Reference, digest: Digest) -> ImageConfig:
        """The image config blob ``digest``, verified and parsed."""
        raw = await self.blob(ref, digest, max_bytes=MAX_CONFIG_BYTES)
        from portside.registry.manifest import parse_config

        return parse_config(raw, digest=digest, where=f"{ref.name} config {digest.short}")

    # -- the cache logic -----------------------------------------------------------

    def _need_network(self, what: str) -> None:
        """Raise if this lookup may not use the network, with the reason."""
        if self.offline:
            raise CacheMiss(
                f"offline, and {what} is not in the cache",
                hint="run the command once without --offline to fill the cache",
            )
        if self._cache_only:
            raise NeedsNetwork(what)

    async def _resolve_tag(self, ref: Reference, *, get_body: bool) -> Descriptor:
        key = ("resolve", ref.registry, ref.repository, ref.identifier)

        async def fetch(old: Entry | None) -> Descriptor:
            started = self._clock()
            client = await self._get_client()
            if get_body and old is None:
                # Nothing cached: one GET gives both the digest and the body.
                manifest = await client.get_manifest(ref)
                self._remember(manifest)
                descriptor = manifest.descriptor
            else:
                # Revalidating: HEAD is cheap (and free of Docker Hub's pull quota); the
                # body is fetched by digest only if the tag moved to something unseen.
                descriptor = await client.head_manifest(ref)
            self.store.put_entry(key, descriptor.to_json(), fetched_at=started)
            return descriptor

        return await self._mutable(
            key,
            ttl=self.resolve_ttl,
            decode=_decode_descriptor,
            fetch=fetch,
            what=f"what {ref.familiar} points to",
        )

    async def _manifest_by_digest(self, ref: Reference, digest: Digest) -> Manifest:
        where = f"{ref.name}@{digest}"
        manifest = self._manifests.get(digest) or self.store.get_manifest(digest, where=where)
        if manifest is not None:
            self._manifests[digest] = manifest
            return manifest
        self._need_network(f"manifest {digest.short} of {ref.name}")

        async def fetch() -> Manifest:
            client = await self._get_client()
            manifest = await client.get_manifest(ref.with_digest(digest))
            if manifest.digest != digest:  # the client verified; this guards the key
                raise InvalidResponse(f"{where}: the registry answered another manifest")
            self._remember(manifest)
            return manifest

        result: Manifest = await self._once(("manifest", str(digest)), fetch)
        return result

    def _remember(self, manifest: Manifest) -> None:
        self._manifests[manifest.digest] = manifest
        self.store.put_manifest(manifest)

    async def _mutable(
        self,
        key: tuple[str, ...],
        *,
        ttl: float,
        decode: Callable[[object], T | None],
        fetch: Callable[[Entry | None], Awaitable[T]],
        what: str,
    ) -> T:
        entry = None if self.refresh else self.store.get_entry(key)
        value = decode(entry.value) if entry is not None else None
        if entry is None or value is None:
            self._need_network(what)
            return await self._once(key, lambda: fetch(None))

        age = entry.age(self._clock())
        # A negative age means the clock went back (or the file came from another
        # machine): trust it no more than a stale entry.
        if (0 <= age <= ttl) or self.offline:
            return value
        if self._cache_only:
            raise NeedsNetwork(what)
        if self.allow_stale:
            self._spawn(key, lambda: fetch(entry))
            return value
        try:
            return await self._once(key, lambda: fetch(entry))
        except _SERVE_STALE_ON as exc:
            self.warnings.append(f"{exc.message}; using {what} as cached {_describe_age(age)} ago")
            return value

    # -- tasks ---------------------------------------------------------------------

    def _start(
        self, key: tuple[str, ...], make: Callable[[], Awaitable[Any]]
    ) -> asyncio.Future[Any]:
        import asyncio

        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(make())
            self._inflight[key] = task
            self._tasks.add(task)

            def done(t: asyncio.Future[Any]) -> None:
                if self._inflight.get(key) is t:
                    del self._inflight[key]
                self._tasks.discard(t)
                self._waiters.pop(t, None)
                self._detached.discard(t)

            task.add_done_callback(done)
        return task

    async def _once(self, key: tuple[str, ...], make: Callable[[], Awaitable[T]]) -> T:
        """Run ``make`` for ``key`` unless a run for it is in flight; share the result."""
        import asyncio

        task = self._start(key, make)
        self._waiters[task] = self._waiters.get(task, 0) + 1
        try:
            # shield: one cancelled caller must not cancel a fetch others are waiting for.
            result: T = await asyncio.shield(task)
        except asyncio.CancelledError:
            self._leave(key, task, cancelled=True)
            raise
        except BaseException:
            self._leave(key, task, cancelled=False)
            raise
        self._leave(key, task, cancelled=False)
        return result

    def _leave(self, key: tuple[str, ...], task: asyncio.Future[Any], *, cancelled: bool) -> None:
        """One waiter of ``task`` is gone; the last cancelled one cancels the fetch."""
        left = self._waiters.get(task, 1) - 1
        if left > 0:
            self._waiters[task] = left
            return
        self._waiters.pop(task, None)
        if cancelled and not task.done() and task not in self._detached:
            # Forget it at once: a caller arriving meanwhile starts a fetch of its own
            # instead of joining (and inheriting the cancellation of) this one.
            if self._inflight.get(key) is task:
                del self._inflight[key]
            task.cancel()

    def _spawn(self, key: tuple[str, ...], make: Callable[[], Awaitable[Any]]) -> None:
        """Refresh ``key`` in the background (unless it is being fetched already)."""
        running = self._inflight.get(key)
        if running is not None:
            # Someone's fetch already asks for it: it now runs to its end for us too.
            self._detached.add(running)
            return
        task = self._start(key, make)
        self._detached.add(task)

        def report(t: asyncio.Future[Any]) -> None:
            # Retrieving the exception also keeps asyncio from logging it as unhandled.
            if t.cancelled():
                return
            exc = t.exception()
            if isinstance(exc, PortsideError):
                self.warnings.append(f"background refresh failed: {exc.message}")
            elif exc is not None:
                self.warnings.append(f"background refresh failed: {type(exc).__name__}")

        task.add_done_callback(report)

    async def _get_client(self) -> RegistryClient:
        if self._client is not None:
            return self._client
        import asyncio

        if self._client_lock is None:
            self._client_lock = asyncio.Lock()
        async with self._client_lock:
            if self._client is None:
                if self._client_factory is not None:
                    client = self._client_factory()
                else:
                    from portside.registry.client import RegistryClient

                    client = RegistryClient(self.options)
                await client.__aenter__()
                self._client = client
        return self._client
