"""The metadata cache: registry answers kept on disk so nobody waits on the network twice.

Two kinds of things are kept, under :func:`default_cache_dir`:

- **Immutable**, addressed by digest: manifests, indexes and config blobs. Kept for
  good and verified on the way in *and* on the way out: a file whose bytes do not hash
  to its name (a torn write, a disk error, someone editing it) is a miss, never served.
  The bytes are stored once, whichever repository they came from; the right to be
  answered them is not shared (see below).
- **Mutable**, addressed by (registry, scope, repository, name): a repository's tag
  list and what a tag points to. Each entry carries its fetch time (and the registry's
  ETag, when one is known); it is *fresh* for a TTL, then *stale*.

Who is answered what. Every mutable entry's key carries a credential *scope*:
:data:`ANONYMOUS` when the request that fetched it sent no credential (the registry
gave it to anybody), else an HMAC of the credential that was sent, under a random
per-user key kept in the cache (:meth:`CacheStore.secret_key`); the credential itself
is never stored. A caller is answered from anonymous entries and from those of its own
credential's scope only, so a wrong password or none misses and asks the registry.
Anonymous entries are looked at first: a public image's warm answer needs no
credential lookup (credential helpers are processes). A digest is answered for a
repository only after a ``has-manifest`` / ``has-blob`` mark says that repository
(in a scope the caller may read) was seen to have it. Offline and stale answers follow
the same rule. The directory and its files must be the user's and writable by nobody
else (:mod:`portside.private`), otherwise the cache is bypassed with one warning.

Layout (``v2`` is the format; a change of format gets a new directory, never a migration)::

    <root>/v2/secret-key                    32 random bytes, mode 0600
    <root>/v2/manifests/<algorithm>/<hex>   media type, "\\n", the exact manifest bytes
    <root>/v2/blobs/<algorithm>/<hex>       the exact blob bytes
    <root>/v2/<kind>/<escaped key>.json     {"key": [...], "fetched_at": ..., "value": ...}

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
    from portside.registry.credentials import Credential, CredentialStore
    from portside.registry.manifest import Descriptor, ImageConfig, Manifest
    from portside.registry.ratelimit import RateLimit
    from portside.registry.transport import ClientOptions

    T = TypeVar("T")

FORMAT = "v2"
ANONYMOUS = "anonymous"
"""The credential scope of answers obtained without sending any credential."""
SECRET_KEY_FILE = "secret-key"  # noqa: S105 - a file name
_SECRET_KEY_BYTES = 32
DEFAULT_TAGS_TTL = 300.0
DEFAULT_RESOLVE_TTL = 300.0
# Whether a registry has the Referrers API: asked again after a day (an upgrade adds it).
REFERRERS_API_TTL = 86400.0
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
        self.base = root or default_cache_dir()
        self.root = os.path.join(self.base, FORMAT)
        self.write_errors = 0
        # Why the cache is not used at all (another user's directory, say); see _usable.
        self.problem: str | None = None
        self._checked = False
        self._created = False
        self._secret_key: bytes | None = None

    # -- trust -----------------------------------------------------------------------

    def _usable(self, *, create: bool) -> bool:
        """Whether the directories are ours alone (created 0700 when ``create``).

        Checked once per instance (a few ``lstat`` calls): a cache another user owns or
        can write to is bypassed, with :attr:`problem` saying why, never trusted.
        """
        if self.problem is not None:
            return False
        if create and not self._created:
            from portside import private

            try:
                problem = private.ensure_directory(self.base) or private.ensure_directory(self.root)
            except OSError:
                self.write_errors += 1  # unusable, not untrusted: the next write retries
                return False
            self._created = self._checked = problem is None
        elif not self._checked:
            from portside import private

            problem = private.directory_problem(self.base) or private.directory_problem(self.root)
            self._checked = problem is None
        else:
            return True
        if problem is not None:
            self._refuse(problem)
            return False
        return True

    def _refuse(self, problem: str) -> None:
        self.problem = (
            f"not using the cache: {problem}; remove it or make it yours alone "
            "(chmod go-w), or set PORTSIDE_CACHE_DIR"
        )

    def secret_key(self) -> bytes | None:
        """This user's key for naming credentials in entry keys (created on first use).

        Entries fetched with a credential are keyed by an HMAC of it under this key, so
        the credential itself is never stored and a guess cannot be checked without the
        key. ``None`` when the key cannot be had safely: such answers are then not cached.
        """
        if self._secret_key is not None:
            return self._secret_key
        if not self._usable(create=True):
            return None
        path = os.path.join(self.root, SECRET_KEY_FILE)
        data = self._read(path)
        if data is None:
            tmp = f"{path}.{os.getpid()}.{os.urandom(6).hex()}.tmp"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(os.urandom(_SECRET_KEY_BYTES))
                try:
                    # link, not replace: the first process to create the key wins and
                    # every other one reads that key.
                    os.link(tmp, path)
                except FileExistsError:
                    pass
                finally:
                    os.unlink(tmp)
            except OSError:
                return None
            data = self._read(path)
        if data is None or len(data) != _SECRET_KEY_BYTES:
            return None
        try:
            if os.stat(path).st_mode & 0o077:
                self._refuse(f"{path} is readable by other users")
                return None
        except OSError:
            return None
        self._secret_key = data
        return data

    # -- paths ---------------------------------------------------------------------

    def _digest_path(self, kind: str, digest: Digest) -> str:
        # Digest validates algorithm and hex on construction: both are safe path parts.
        return os.path.join(self.root, kind, digest.algorithm, digest.hex)

    def _entry_path(self, key: tuple[str, ...]) -> str:
        # key[0] is the kind, a constant of this module; the rest comes from references.
        return os.path.join(self.root, key[0], entry_file_name(key[1:]))

    # -- low-level I/O -------------------------------------------------------------

    def _read(self, path: str) -> bytes | None:
        if not self._usable(create=False):
            return None
        from portside import private

        try:
            return private.read_file(path)
        except private.UntrustedFile as exc:
            # Someone else could write here after all: trust nothing in it.
            self._refuse(str(exc))
            return None

    def _write(self, path: str, data: bytes) -> None:
        if not self._usable(create=True):
            return
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

    def referrers_api(self, registry: str, *, now: float) -> bool | None:
        """Whether ``registry`` had the Referrers API when a client last found out
        (None: unknown, or older than :data:`REFERRERS_API_TTL`)."""
        entry = self.get_entry(("referrers-api", registry))
        if entry is None or not isinstance(entry.value, bool) or entry.age(now) > REFERRERS_API_TTL:
            return None
        return entry.value

    def remember_referrers_api(self, registry: str, present: bool, *, now: float) -> None:
        """A fact about the registry, the same for every credential: not scoped."""
        self.put_entry(("referrers-api", registry), present, fetched_at=now)


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


def credential_scope(key: bytes, registry: str, credential: Credential | None) -> str:
    """The scope that names ``credential`` for ``registry`` in stored keys:
    :data:`ANONYMOUS` for none, else an HMAC under the store's secret ``key``, so the
    credential itself is never stored and a guess cannot be checked without the key."""
    if credential is None:
        return ANONYMOUS
    import hashlib
    import hmac
    import json

    fields = [
        registry,
        credential.username,
        credential.password,
        credential.identity_token,
        credential.registry_token,
    ]
    message = json.dumps(fields).encode()
    return "c" + hmac.new(key, message, hashlib.sha256).hexdigest()[:40]


def _scoped(key: tuple[str, ...], scope: str) -> tuple[str, ...]:
    """``key`` (kind, registry, ...) as stored for callers of credential ``scope``."""
    return (key[0], key[1], scope, *key[2:])


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
        credentials: CredentialStore | None = None,
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
        self._warnings: list[str] = []
        self._store_warned = False
        self._credentials = credentials
        # The caller's credential scope per registry (None: anonymous answers only).
        self._caller_scopes: dict[str, str | None] = {}
        # (kind, registry, repository, digest) this caller may be answered from the cache.
        self._seen: set[tuple[str, str, str, str]] = set()
        # (registry, repository, digest) the registry itself answered during this run.
        self._confirmed: set[tuple[str, str, str]] = set()
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
        self._fetch_count = 0

    @property
    def fetched(self) -> int:
        """How many fetches of this instance (background refreshes included) have ended
        with the registry's answer so far. Unchanged across a piece of work: everything
        it read came from the cache as it was, and reading again would answer the same."""
        return self._fetch_count

    @property
    def warnings(self) -> list[str]:
        """Lines for the user: stale answers served, failed background refreshes, and
        (first, once) why the cache directory is not used."""
        if self.store.problem is not None and not self._store_warned:
            self._store_warned = True
            self._warnings.insert(0, self.store.problem)
        return self._warnings

    @property
    def credentials(self) -> CredentialStore:
        """Where the caller's credentials come from; the default client shares it, so a
        credential helper runs once per process for both."""
        if self._credentials is None:
            from portside.registry.credentials import CredentialStore

            self._credentials = CredentialStore()
        return self._credentials

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
        """Every tag of ``ref``'s repository, in the registry's order (lexical).

        Unsorted by version: ranking is the caller's (``versions.sort_tags``)."""
        key = ("tags", ref.registry, ref.repository)

        async def fetch(old: Entry | None) -> list[str]:
            started = self._clock()
            client = await self._get_client()
            old_tags = _decode_tags(old.value) if old is not None else None
            etag = old.etag if old is not None and old_tags is not None else None
            listing = await client.list_tags_if_changed(ref, etag=etag)
            if listing.tags is None and old_tags is not None:
                # 304: the cached list is still right; only its age is renewed.
                self._put(client, key, old_tags, fetched_at=started, etag=etag)
                return old_tags
            tags = list(listing.tags or [])
            self._put(client, key, tags, fetched_at=started, etag=listing.etag)
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
            self._put(client, key, names, fetched_at=started)
            return names

        return await self._mutable(
            key,
            ttl=self.tags_ttl,
            decode=_decode_tags,
            fetch=fetch,
            what=f"the catalog of {registry}",
        )

    async def tags_derived(
        self, ref: Reference, name: str, derive: Callable[[list[str]], list[str]]
    ) -> list[str]:
        """``derive(tags)`` (a ranking, say: the caller's business, not the cache's).

        The result is kept beside the tag list, stamped with that list's fetch time and
        scope, and used only while it derives from exactly the list :meth:`tags` would
        serve: a warm answer then needs neither ``derive`` nor what it imports (the
        version rules and their sort: about 10 ms for 2,000 tags).
        """
        tags_key = ("tags", ref.registry, ref.repository)
        key = (f"tags-{name}", ref.registry, ref.repository)
        if not self.refresh:
            found = await self._lookup(tags_key, self.tags_ttl, _decode_tags)
            if found is not None:
                source, _tags, scope = found
                age = source.age(self._clock())
                if 0 <= age <= self.tags_ttl or self.offline:
                    entry = self.store.get_entry(_scoped(key, scope))
                    if entry is not None and entry.fetched_at == source.fetched_at:
                        derived = _decode_tags(entry.value)
                        if derived is not None:
                            return derived
        tags = await self.tags(ref)
        derived = derive(tags)
        found = await self._lookup(tags_key, self.tags_ttl, _decode_tags)
        if found is not None and found[1] == tags:
            source, _tags, scope = found
            self.store.put_entry(_scoped(key, scope), derived, fetched_at=source.fetched_at)
        return derived

    async def resolve(self, ref: Reference) -> Descriptor:
        """The descriptor ``ref`` points to (its tag's current target, or its digest's)."""
        if ref.digest is not None:
            return (await self.manifest(ref)).descriptor
        return await self._resolve_tag(ref, get_body=False)

    async def resolve_confirmed(self, ref: Reference) -> Descriptor:
        """:meth:`resolve`, for an answer that will be written into files people build
        from (``pin``): a cached tag -> digest entry is only a claim, so its digest is
        returned only when the registry named it in this run; otherwise the tag is asked
        of the registry again (a HEAD). Offline, the claim is accepted only when the
        manifest bytes are in the cache and hash to it (that proves the manifest, not
        the tag: the best an offline answer can do).
        """
        descriptor = await self.resolve(ref)
        if ref.digest is not None:
            return descriptor  # served only from bytes that hash to the digest
        digest = descriptor.digest
        if (ref.registry, ref.repository, str(digest)) in self._confirmed:
            return descriptor
        if self.offline and await self._has("has-manifest", ref, digest):
            where = f"{ref.name}@{digest}"
            if self.store.get_manifest(digest, where=where) is not None:
                return descriptor
        self._need_network(f"a digest for {ref.familiar} the registry confirmed")
        return await self._resolve_tag(ref, get_body=False, force=True)

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
            # A registry found without the Referrers API is asked by the tag schema
            # at once, in this process and (for a day) in the next ones.
            known = client.referrers_api(ref.registry)
            if known is None:
                known = self.store.referrers_api(ref.registry, now=started)
                if known is not None:
                    client.assume_referrers_api(ref.registry, known)
            found = await client.referrers(ref)
            learnt = client.referrers_api(ref.registry)
            if learnt is not None and learnt != known:
                self.store.remember_referrers_api(ref.registry, learnt, now=started)
            self._put(client, key, [d.to_json() for d in found], fetched_at=started)
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
        data = self.store.get_blob(digest) if await self._has("has-blob", ref, digest) else None
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
            self._saw(client, "has-blob", ref, digest)
            return data

        result: bytes = await self._once(("blob", ref.registry, ref.repository, str(digest)), fetch)
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

    # Who may be answered what. An entry's key carries a credential scope after its kind:
    # ANONYMOUS for answers obtained without sending a credential (anyone may have
    # those: the registry gave them to anybody), else an HMAC of the credential that
    # was sent, so only a caller presenting the same credential is answered from it.
    # Anonymous entries are looked at first: a public image's warm answer costs no
    # credential lookup (a credential helper is a process).

    def _scope_of(self, registry: str, credential: Credential) -> str | None:
        key = self.store.secret_key()
        return None if key is None else credential_scope(key, registry, credential)

    async def _caller_scope(self, registry: str) -> str | None:
        """The credential scope this caller may read besides ANONYMOUS; None if none."""
        if registry in self._caller_scopes:
            return self._caller_scopes[registry]
        try:
            if self._cache_only:
                # No event loop may be involved; the store remembers the answer.
                credential = self.credentials.get(registry)
            else:
                credential = await self.credentials.aget(registry)
        except PortsideError:
            # A broken helper: anonymous answers only; the client reports the error if
            # the registry asks for a credential.
            credential = None
        scope = None if credential is None else self._scope_of(registry, credential)
        self._caller_scopes[registry] = scope
        return scope

    def _fetched_scope(self, client: RegistryClient, registry: str) -> str | None:
        """The scope of what ``client`` just fetched from ``registry`` (None: keep it out
        of the cache, for want of a key to name the credential by)."""
        credential = client.credential_sent(registry)
        if credential is None:
            return ANONYMOUS
        return self._scope_of(registry, credential)

    def _put(
        self,
        client: RegistryClient,
        key: tuple[str, ...],
        value: object,
        *,
        fetched_at: float,
        etag: str | None = None,
    ) -> None:
        scope = self._fetched_scope(client, key[1])
        if scope is not None:
            self.store.put_entry(_scoped(key, scope), value, fetched_at=fetched_at, etag=etag)

    async def _lookup(
        self, key: tuple[str, ...], ttl: float, decode: Callable[[object], T | None]
    ) -> tuple[Entry, T, str] | None:
        """The best cached answer for ``key`` this caller may have (fresh first, else
        the most recent) and its scope, or None."""
        now = self._clock()
        found: list[tuple[Entry, T, str]] = []
        for scope in (ANONYMOUS, None):
            if scope is None:
                scope = await self._caller_scope(key[1])
                if scope is None:
                    break
            entry = self.store.get_entry(_scoped(key, scope))
            value = decode(entry.value) if entry is not None else None
            if entry is None or value is None:
                continue
            if 0 <= entry.age(now) <= ttl:
                return entry, value, scope
            found.append((entry, value, scope))
        return max(found, key=lambda found: found[0].fetched_at, default=None)

    async def _has(self, kind: str, ref: Reference, digest: Digest) -> bool:
        """Whether ``ref``'s repository was seen to have ``digest`` (a manifest or a blob)
        by a request this caller may rely on: the bytes are shared between repositories
        and registries, the right to be answered them is not."""
        mark = (kind, ref.registry, ref.repository, str(digest))
        if mark in self._seen:
            return True
        if self.store.get_entry(_scoped(mark, ANONYMOUS)) is None:
            scope = await self._caller_scope(ref.registry)
            if scope is None or self.store.get_entry(_scoped(mark, scope)) is None:
                return False
        self._seen.add(mark)
        return True

    def _saw(self, client: RegistryClient, kind: str, ref: Reference, digest: Digest) -> None:
        """The registry just showed that ``ref``'s repository has ``digest``."""
        mark = (kind, ref.registry, ref.repository, str(digest))
        if kind == "has-manifest":
            self._confirmed.add((ref.registry, ref.repository, str(digest)))
        if mark not in self._seen:
            self._seen.add(mark)
            self._put(client, mark, True, fetched_at=self._clock())

    async def _resolve_tag(
        self, ref: Reference, *, get_body: bool, force: bool = False
    ) -> Descriptor:
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
            self._saw(client, "has-manifest", ref, descriptor.digest)
            self._put(client, key, descriptor.to_json(), fetched_at=started)
            return descriptor

        return await self._mutable(
            key,
            ttl=self.resolve_ttl,
            decode=_decode_descriptor,
            fetch=fetch,
            what=f"what {ref.familiar} points to",
            force=force,
        )

    async def _manifest_by_digest(self, ref: Reference, digest: Digest) -> Manifest:
        where = f"{ref.name}@{digest}"
        if await self._has("has-manifest", ref, digest):
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
            self._saw(client, "has-manifest", ref, digest)
            return manifest

        key = ("manifest", ref.registry, ref.repository, str(digest))
        result: Manifest = await self._once(key, fetch)
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
        force: bool = False,
    ) -> T:
        found = None if self.refresh or force else await self._lookup(key, ttl, decode)
        if found is None:
            self._need_network(what)
            return await self._once(key, lambda: fetch(None))
        entry, value, _scope = found

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
                if not t.cancelled() and t.exception() is None:
                    self._fetch_count += 1
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

                    client = RegistryClient(self.options, credentials=self.credentials)
                await client.__aenter__()
                self._client = client
        return self._client
