"""Planning and evaluating queries against registries, through the cache.

The plan, per query:

1. **Tags.** The tag lists of every source are read concurrently (one cached request
   each). Every condition on ``tag``, ``version`` and ``variant`` is decided here;
   the others are *unknown* at this point, and the ``where`` expression is evaluated in
   three-valued (Kleene) logic, so a row is dropped as soon as it is certainly false
   and kept as soon as it is certainly true, without fetching anything more.
2. **Top manifest** (the index or the single manifest a tag points to) only for rows
   still unknown: decides ``digest``, and ``platform``/``os``/``arch`` of an index
   (its entries). With a platform condition a row becomes one row per platform entry.
3. **Image** (the platform manifest and its config blob) only for rows still unknown
   after that, or whose results need them (an ``order by created``): decides
   ``created``, ``age``, ``label[...]``, ``annotation[...]``, ``size``, and the platform
   of a single-platform image. Images are keyed by digest, so tags that share an image
   share one fetch; the cache never fetches digest-addressed content twice anyway.

Fetches run concurrently, at most ``concurrency`` at a time. When the order is decided
by tags alone (the default, newest version first, or ``order by tag/version/variant``)
and there is a ``limit``, candidates are checked in order in growing batches (1, 2,
4, ... up to ``concurrency``) and checking stops once the limit is filled: ``order by
version desc limit 1`` with a ``created`` condition fetches the newest candidate first
and stops at the first match.

Missing values: a condition on something an image does not have (a label it lacks,
``version`` of the ``latest`` tag, a single-platform image without a platform) is
false, whatever the operator; ``not`` of it is true. In ``order by`` rows without the
value come last in either direction. Ties are broken by the default order (newest
version first), then by the order the sources were written in.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Awaitable, Callable
from fnmatch import fnmatchcase
from functools import cmp_to_key
from typing import TYPE_CHECKING, Any, TypeVar

from portside.errors import (
    InvalidResponse,
    NotFound,
    PortsideError,
    UnsupportedMediaType,
)
from portside.images import DEFAULT_PLATFORM
from portside.registry.manifest import Platform

from .syntax import (
    PLATFORM_FIELDS,
    TAG_FIELDS,
    And,
    Condition,
    Day,
    Expr,
    Field,
    Not,
    Or,
    OrderItem,
    Query,
    RelativeTime,
    parse_query,
)
from .versioning import QueryVersion, default_order_key, newest_in_line, version_parser

if TYPE_CHECKING:
    from portside.cache import CachedRegistry
    from portside.reference import Digest, Reference
    from portside.registry.manifest import Descriptor, ImageConfig, Manifest

T = TypeVar("T")

DEFAULT_CONCURRENCY = 16
_ATTESTATION_ANNOTATION = "vnd.docker.reference.type"


class NoMatch(PortsideError):
    """A query that had to resolve to one image matched none (exit code 1)."""

    exit_code = 1


# -- results -------------------------------------------------------------------------


class Result:
    """One image a query selected.

    ``digest`` is what the tag points to (the index of a multi-platform image: what to
    pin); ``None`` only when the caller asked not to resolve digests. With a platform
    condition ``platform`` is the platform that matched and ``platform_digest`` the
    manifest of that platform (for a single-platform image, ``digest`` again).
    ``created`` and ``platform`` are known when the image was read (a condition or an
    order needed it, or ``details=True``). ``fields`` holds the value of every field
    the query names, JSON-ready, keyed as written (``label["org..."]``).
    """

    __slots__ = ("created", "digest", "fields", "platform", "platform_digest", "repository", "tag")

    def __init__(
        self,
        *,
        repository: Reference,
        tag: str,
        digest: Digest | None,
        platform_digest: Digest | None = None,
        platform: Platform | None = None,
        created: dt.datetime | None = None,
        fields: dict[str, object] | None = None,
    ) -> None:
        self.repository = repository
        self.tag = tag
        self.digest = digest
        self.platform_digest = platform_digest
        self.platform = platform
        self.created = created
        self.fields = fields or {}

    @property
    def reference(self) -> Reference:
        """``registry/repository:tag[@digest]`` as a :class:`Reference`."""
        return self.repository.with_tag(self.tag).with_digest(self.digest)

    def ref_text(self, *, platform_manifest: bool = False) -> str:
        """``repository:tag@digest``, for ``FROM`` lines and ``$(...)``.

        The index digest by default (one pin for every platform); ``platform_manifest``
        gives the matched platform's manifest instead, when there is one.
        """
        digest = self.digest
        if platform_manifest and self.platform_digest is not None:
            digest = self.platform_digest
        text = f"{self.repository.name}:{self.tag}"
        return f"{text}@{digest}" if digest is not None else text

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict with stable keys (scripts read them)."""
        return {
            "repository": self.repository.name,
            "tag": self.tag,
            "reference": self.ref_text(),
            "digest": str(self.digest) if self.digest is not None else None,
            "platformDigest": str(self.platform_digest) if self.platform_digest else None,
            "platform": str(self.platform) if self.platform is not None else None,
            "created": _iso(self.created),
            "fields": dict(self.fields),
        }

    def __repr__(self) -> str:
        return f"Result({self.ref_text()!r}, platform={self.platform})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Result):
            return NotImplemented
        return self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]


def _iso(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")


# -- rows: what is known about one (source, tag[, platform]) ------------------------

_UNKNOWN: Any = object()  # a fact from a stage not loaded yet


class _Row:
    __slots__ = (
        "config",
        "digest",
        "entry",
        "entry_index",
        "image",
        "image_loaded",
        "source",
        "source_index",
        "tag",
        "top",
        "version",
    )

    def __init__(
        self, source: Reference, source_index: int, tag: str, version: QueryVersion | None
    ):
        self.source = source
        self.source_index = source_index
        self.tag = tag
        self.version = version
        self.digest: Digest | None = None
        self.top: Manifest | None = None
        self.entry: Descriptor | None = None  # the index entry the image facts come from
        self.entry_index = 0
        self.image: Manifest | None = None
        self.config: ImageConfig | None = None
        self.image_loaded = False

    def for_entry(self, entry: Descriptor | None, index: int) -> _Row:
        row = _Row(self.source, self.source_index, self.tag, self.version)
        row.digest, row.top, row.entry, row.entry_index = self.digest, self.top, entry, index
        return row

    @property
    def ref(self) -> Reference:
        return self.source.with_tag(self.tag)

    @property
    def platform(self) -> Any:
        if self.entry is not None:
            return self.entry.platform
        if self.top is not None and self.top.is_index:
            return None  # an index without image entries
        if not self.image_loaded:
            return _UNKNOWN
        return self.config.platform if self.config is not None else None

    @property
    def created(self) -> Any:
        if not self.image_loaded:
            return _UNKNOWN
        return _parse_created(self.config.created if self.config is not None else None)


_FRACTION = re.compile(r"(\.\d{6})\d+")


def _parse_created(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    # Go writes nanoseconds; Python reads at most microseconds.
    text = _FRACTION.sub(r"\1", text)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def _image_entries(index: Manifest) -> list[Descriptor]:
    # Attestations (BuildKit provenance/SBOM) sit in indexes as unknown/unknown.
    return [
        d
        for d in index.manifests
        if d.platform is not None
        and d.platform.os != "unknown"
        and d.platform.architecture != "unknown"
        and d.annotations.get(_ATTESTATION_ANNOTATION) != "attestation-manifest"
    ]


# -- field values and conditions -----------------------------------------------------


def _value(row: _Row, f: Field, now: dt.datetime) -> Any:
    """The value of ``f`` for ``row``; ``_UNKNOWN`` before its stage; ``None`` if absent."""
    name = f.name
    if name == "tag":
        return row.tag
    if name == "version":
        return row.version
    if name == "variant":
        return row.version.variant if row.version is not None else None
    if name == "digest":
        if row.top is None:
            return _UNKNOWN
        digests = [str(row.top.digest)]
        if row.entry is not None:
            digests.append(str(row.entry.digest))
        return digests
    if name in PLATFORM_FIELDS:
        platform = row.platform
        if platform is _UNKNOWN or platform is None or name == "platform":
            return platform
        return platform.os if name == "os" else platform.architecture
    if not row.image_loaded:
        return _UNKNOWN
    if name == "created":
        return row.created
    if name == "age":
        created = row.created
        return now - created if created is not None else None
    if name == "size":
        return row.image.compressed_size if row.image is not None else None
    if name == "label":
        return row.config.labels.get(f.key or "") if row.config is not None else None
    # annotation: the image manifest's, over the index's
    annotations: dict[str, str] = {}
    if row.top is not None:
        annotations.update(row.top.annotations)
    if row.image is not None:
        annotations.update(row.image.annotations)
    return annotations.get(f.key or "")


def _time(literal: Any, now: dt.datetime) -> Any:
    if not isinstance(literal, RelativeTime):
        return literal
    try:
        return now + literal.offset
    except OverflowError:  # now - 9999999d: before anything, not an error
        edge = dt.datetime.min if literal.offset < dt.timedelta(0) else dt.datetime.max
        return edge.replace(tzinfo=dt.timezone.utc)


def _equal(name: str, value: Any, literal: Any, now: dt.datetime) -> bool:
    if name == "version":
        return bool(value.key == literal.key)
    if name == "created":
        literal = _time(literal, now)
        if isinstance(literal, Day):
            return bool(literal.start <= value < literal.end)
        return bool(value == literal)
    if name == "platform":
        return bool(value.matches(literal))
    if name == "digest":
        return literal in value
    if name == "os":
        return bool(value.lower() == literal)
    return bool(value == literal)


def _compare(name: str, op: str, value: Any, literal: Any, now: dt.datetime) -> bool:
    if name == "version":
        value, literal = value.key, literal.key
    elif name == "created":
        literal = _time(literal, now)
        if isinstance(literal, Day):
            # A day is an interval: "< day" is before it starts, "<= day" before it ends.
            literal = literal.start if op in ("<", ">=") else literal.end
            op = {"<=": "<", ">": ">="}.get(op, op)
    if op == "<":
        return bool(value < literal)
    if op == "<=":
        return bool(value <= literal)
    if op == ">":
        return bool(value > literal)
    return bool(value >= literal)


def _test(cond: Condition, value: Any, now: dt.datetime) -> bool:
    name, op = cond.field.name, cond.op
    if value is None:
        return False
    if op in ("in", "not in"):
        hit = any(_equal(name, value, lit, now) for lit in cond.values)
        return hit if op == "in" else not hit
    literal: Any = cond.values[0]
    if op == "=":
        return _equal(name, value, literal, now)
    if op == "!=":
        return not _equal(name, value, literal, now)
    texts = value if name == "digest" else [str(value)]
    if op == "~":
        if name == "version":
            return bool(value.has_prefix(literal))
        return any(fnmatchcase(t, literal) for t in texts)
    if op == "=~":
        return any(literal.search(t) for t in texts)
    return _compare(name, op, value, literal, now)


def _evaluate(expr: Expr, row: _Row, now: dt.datetime) -> bool | None:
    """Kleene logic: ``None`` is "not known until more is fetched"."""
    if isinstance(expr, Condition):
        value = _value(row, expr.field, now)
        return None if value is _UNKNOWN else _test(expr, value, now)
    if isinstance(expr, Not):
        inner = _evaluate(expr.item, row, now)
        return None if inner is None else not inner
    assert isinstance(expr, (And, Or))
    # One item equal to ``decisive`` settles the whole (False for And, True for Or);
    # without one, an unknown item leaves the whole unknown.
    decisive = isinstance(expr, Or)
    result: bool | None = not decisive
    for item in expr.items:
        v = _evaluate(item, row, now)
        if v is decisive:
            return decisive
        if v is None:
            result = None
    return result


def _sort_value(row: _Row, f: Field, now: dt.datetime) -> Any:
    value = _value(row, f, now)
    if value is _UNKNOWN or value is None:
        return None
    if f.name == "version":
        return value.key
    if f.name == "digest":
        return value[0]
    if f.name == "platform":
        return str(value)
    return value


def _json_value(f: Field, value: Any) -> object:
    if value is _UNKNOWN or value is None:
        return None
    if isinstance(value, QueryVersion):
        return value.tag.partition("-")[0]
    if isinstance(value, dt.datetime):
        return _iso(value)
    if isinstance(value, dt.timedelta):
        return int(value.total_seconds())
    if f.name == "digest":
        return value[-1]  # the platform manifest's when there is one
    if isinstance(value, Platform):
        return str(value)
    return value


# -- the planner ---------------------------------------------------------------------


class _Evaluation:
    def __init__(
        self,
        query: Query,
        cached: CachedRegistry,
        *,
        now: dt.datetime,
        resolve: bool,
        details: bool,
        concurrency: int,
    ) -> None:
        self.query = query
        self.cached = cached
        self.now = now
        self.resolve = resolve
        self.details = details
        self.semaphore = asyncio.Semaphore(max(1, concurrency))
        self.concurrency = max(1, concurrency)
        self.platform_rows = query.mentions_platform
        self.fields = query.fields()
        order_fields = [item.field for item in query.order]
        # What every result needs besides deciding the where: order by created needs
        # each candidate's image, whether or not the where asked for it.
        self.order_needs_top = any(f.name not in TAG_FIELDS for f in order_fields)
        self.order_needs_image = any(
            f.name not in TAG_FIELDS and f.name != "digest" for f in order_fields
        )
        self.order_by_tags = not self.order_needs_top
        self._images: dict[Digest, asyncio.Future[tuple[Manifest | None, ImageConfig | None]]] = {}

    async def _io(self, make: Callable[[], Awaitable[T]]) -> T:
        async with self.semaphore:
            return await make()

    # -- stages ------------------------------------------------------------------

    async def _load_top(self, row: _Row) -> bool:
        try:
            row.top = await self._io(lambda: self.cached.manifest(row.ref))
        except NotFound:
            return False  # the tag went away between listing and reading it
        except (InvalidResponse, UnsupportedMediaType) as exc:
            # Not an image we can read (schema 1, an odd artifact): skip it, say so.
            self.cached.warnings.append(f"{row.ref}: skipped: {exc.message}")
            return False
        row.digest = row.top.digest
        return True

    def _expand(self, row: _Row) -> list[_Row]:
        top = row.top
        assert top is not None
        if not top.is_index:
            return [row]
        entries = _image_entries(top)
        if self.platform_rows:
            return [row.for_entry(e, i) for i, e in enumerate(entries)]
        # One row per tag: its facts come from linux/amd64, as `portside inspect` does,
        # else from the first image of the index.
        chosen = next(
            (
                i
                for i, e in enumerate(entries)
                if e.platform and e.platform.matches(DEFAULT_PLATFORM)
            ),
            0,
        )
        return [row.for_entry(entries[chosen] if entries else None, chosen)]

    async def _load_image(self, row: _Row) -> None:
        if row.image_loaded:
            return
        assert row.top is not None
        if row.top.is_index and row.entry is None:
            row.image_loaded = True
            return
        digest = row.entry.digest if row.entry is not None else row.top.digest
        future = self._images.get(digest)
        if future is None:
            future = asyncio.ensure_future(self._fetch_image(row, digest))
            self._images[digest] = future
        row.image, row.config = await future
        row.image_loaded = True

    async def _fetch_image(
        self, row: _Row, digest: Digest
    ) -> tuple[Manifest | None, ImageConfig | None]:
        assert row.top is not None
        image = row.top
        ref = row.source.with_digest(digest)
        if image.digest != digest:
            image = await self._io(lambda: self.cached.manifest(ref))
        if image.is_index or image.config is None:
            return None, None  # nested index: nothing to say about created or labels
        config_digest = image.config.digest
        try:
            config = await self._io(lambda: self.cached.config(ref, config_digest))
        except InvalidResponse as exc:  # an artifact whose "config" is not an image config
            self.cached.warnings.append(f"{ref}: no image config: {exc.message}")
            return image, None
        return image, config

    # -- one candidate -------------------------------------------------------------

    async def _check(self, row: _Row) -> list[_Row]:
        """The result rows ``row`` (a tag that passed the tag stage) turns into."""
        where = self.query.where
        verdict = _evaluate(where, row, self.now) if where is not None else True
        if verdict is True and not self.order_needs_top and not self.details:
            return [row]
        if not await self._load_top(row):
            return []
        out: list[_Row] = []
        pending: list[_Row] = []
        for candidate in self._expand(row):
            v = _evaluate(where, candidate, self.now) if where is not None else True
            if v is False:
                continue
            if v is None or self.order_needs_image or self.details:
                pending.append(candidate)
            out.append(candidate)
        await asyncio.gather(*(self._load_image(c) for c in pending))
        if where is None:
            return out
        return [c for c in out if _evaluate(where, c, self.now)]

    # -- the whole query ---------------------------------------------------------

    async def run(self) -> list[Result]:
        query = self.query
        tag_lists = await asyncio.gather(*(self._tags(s) for s in query.sources))
        candidates: list[_Row] = []
        for index, (source, tags) in enumerate(zip(query.sources, tag_lists, strict=True)):
            parse = version_parser(source.name)
            for tag in dict.fromkeys(tags):
                row = _Row(source, index, tag, parse(tag))
                if query.where is None or _evaluate(query.where, row, self.now) is not False:
                    candidates.append(row)

        if self.order_by_tags:
            candidates.sort(key=cmp_to_key(self._compare))
            rows = await self._in_order(candidates)
        else:
            checked = await asyncio.gather(*(self._check(r) for r in candidates))
            rows = [r for group in checked for r in group]
            rows.sort(key=cmp_to_key(self._compare))
            if query.limit is not None:
                rows = rows[: query.limit]

        if self.resolve or self.details:
            await asyncio.gather(*(self._finish(r) for r in rows))
        return [self._result(r) for r in rows]

    async def _tags(self, source: Reference) -> list[str]:
        async with self.semaphore:
            return await self.cached.tags(source)

    async def _in_order(self, candidates: list[_Row]) -> list[_Row]:
        """Check sorted candidates; with a limit, in growing batches, stopping when full."""
        limit = self.query.limit
        if limit is None:
            checked = await asyncio.gather(*(self._check(r) for r in candidates))
            return [r for group in checked for r in group]
        rows: list[_Row] = []
        start, batch = 0, 1
        while start < len(candidates) and len(rows) < limit:
            # Grow from one: the first candidate often matches, and then nothing else is
            # fetched; a long scan soon runs at full concurrency.
            window = candidates[start : start + batch]
            checked = await asyncio.gather(*(self._check(r) for r in window))
            rows.extend(r for group in checked for r in group)
            start += len(window)
            batch = min(batch * 2, self.concurrency)
        return rows[:limit]

    async def _finish(self, row: _Row) -> None:
        if self.details:
            if row.top is None and not await self._load_top(row):
                return
            if row.entry is None and row.top is not None and row.top.is_index:
                row.entry = self._expand(row)[0].entry
            await self._load_image(row)
        elif row.digest is None:
            # Only the digest is missing: a HEAD request (cached), no manifest body.
            descriptor = await self._io(lambda: self.cached.resolve(row.ref))
            row.digest = descriptor.digest

    def _compare(self, a: _Row, b: _Row) -> int:
        for item in self.query.order:
            c = self._compare_item(item, a, b)
            if c:
                return c
        ka, kb = default_order_key(a.tag), default_order_key(b.tag)
        if ka != kb:
            return -1 if ka < kb else 1
        pa, pb = (a.source_index, a.entry_index), (b.source_index, b.entry_index)
        return (pa > pb) - (pa < pb)

    def _compare_item(self, item: OrderItem, a: _Row, b: _Row) -> int:
        va, vb = _sort_value(a, item.field, self.now), _sort_value(b, item.field, self.now)
        if va is None or vb is None:
            return (va is None) - (vb is None)  # missing values last, either direction
        if va == vb:
            return 0
        c = -1 if va < vb else 1
        return -c if item.descending else c

    def _result(self, row: _Row) -> Result:
        platform = row.platform
        platform = platform if isinstance(platform, Platform) else None
        platform_digest: Digest | None = None
        if self.platform_rows and row.top is not None:
            platform_digest = row.entry.digest if row.entry is not None else row.top.digest
        created = row.created
        return Result(
            repository=row.source,
            tag=row.tag,
            digest=row.digest,
            platform_digest=platform_digest,
            platform=platform,
            created=created if isinstance(created, dt.datetime) else None,
            fields={str(f): _json_value(f, _value(row, f, self.now)) for f in self.fields},
        )


# -- public entry points -------------------------------------------------------------


def _now(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.timezone.utc)
    return now if now.tzinfo else now.replace(tzinfo=dt.timezone.utc)


async def run_query(
    text: str | Query,
    cached: CachedRegistry,
    *,
    now: dt.datetime | None = None,
    resolve: bool = True,
    details: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> list[Result]:
    """The images ``text`` selects, in order; an empty list when nothing matches.

    ``now`` anchors relative times (``now - 30d``, ``age``); default: the current time.
    ``resolve=False`` leaves ``digest`` unset on results the tags alone decided (no
    request beyond the tag lists: for completion lists). ``details=True`` reads every
    result's image so ``created`` and ``platform`` are always filled. Raises
    :class:`QuerySyntaxError` for a bad query, registry errors as they come.
    """
    query = parse_query(text) if isinstance(text, str) else text
    evaluation = _Evaluation(
        query,
        cached,
        now=_now(now),
        resolve=resolve,
        details=details,
        concurrency=concurrency,
    )
    return await evaluation.run()


async def resolve_one(
    text: str | Query, cached: CachedRegistry, *, now: dt.datetime | None = None
) -> Result:
    """The first result of a query, or :class:`NoMatch`: the policy hook ``pin`` uses
    ("pin this image to what this query selects")."""
    query = parse_query(text) if isinstance(text, str) else text
    if query.limit is None:
        query = Query(query.text, query.sources, query.where, query.order, 1)
    results = await run_query(query, cached, now=now)
    if not results:
        raise NoMatch(
            f"no image matches the query {query.text!r}",
            hint="loosen a condition, or check the tag list with portside tags",
        )
    return results[0]


async def latest(ref: Reference, cached: CachedRegistry, *, resolve: bool = True) -> Result | None:
    """The newest final release in the line of ``ref``'s tag; ``None`` if there is none.

    Computed from the tag list alone, the same on every registry: the ``latest`` tag is
    never trusted (``python`` or ``python:latest`` means the newest plain release).
    """
    repository = ref.repository_ref()
    tags = await cached.tags(repository)
    if ref.tag is not None:
        from portside import versions
        from portside.updates import without_same_image

        tags = await without_same_image(cached, ref, tags, versions.scheme_for(repository.name))
    tag = newest_in_line(ref.tag, tags, repository.name)
    if tag is None:
        return None
    digest = (await cached.resolve(repository.with_tag(tag))).digest if resolve else None
    version = version_parser(repository.name)(tag)
    fields: dict[str, object] = {"version": tag.partition("-")[0]} if version else {}
    return Result(repository=repository, tag=tag, digest=digest, fields=fields)
