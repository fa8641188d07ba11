"""Retention: which manifests of a repository a policy deletes, and deleting them safely.

A policy is a ``[[tool.portside.retention]]`` table (see :func:`parse_policies`). The
plan is made from what the registry says now (tags, then each tagged manifest and its
config), decided by :func:`decide` without any I/O, shown, and only then applied by
:func:`apply_plan`, deletion by deletion, oldest first. An interrupted apply is
continued by planning again, because what was deleted is simply no longer there. The
one thing remembered between runs is which digests tags pointed to
(:mod:`portside.untagged`): the distribution API cannot list untagged manifests, so
that memory is how ``delete-untagged-older-than`` finds them.

How the rules combine (Harbor's way): an image is kept when any keep rule keeps it.
A table with keep rules deletes every image none of them keeps; delete rules name
more images to delete (pre-releases, development builds) without overriding a keep.
Never deleted, whatever the rules say: what a moving tag points to (``latest``, ``1``,
``1.4``, ``stable``), digests the given Dockerfiles pin, tags a protection pattern
names.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fnmatch
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portside import errors, lifecycle, untagged
from portside.errors import ConfigError
from portside.reference import Digest, Reference
from portside.registry import mediatypes as mt
from portside.registry.manifest import Descriptor, Manifest
from portside.repository import CONCURRENCY, tag_digests
from portside.versions import TagVersion, VersionScheme

# Tags that name development builds rather than releases: pull requests, branches'
# commit builds, nightlies. Only ever candidates, never protected.
DEFAULT_DEV_TAGS = (
    "pr-*",
    "pr[0-9]*",
    "dev-*",
    "*-dev",
    "*.dev*",
    "sha-*",
    "nightly-*",
    "*-snapshot",
)
# The referrers tag schema (``sha256-<hex>``, cosign's ``sha256-<hex>.sig``): an artifact
# attached to an image, not an image; it goes when its subject goes.
_REFERRERS_TAG = re.compile(r"(sha256|sha512)-([0-9a-f]{64}|[0-9a-f]{128})(\..*)?")
# A semver pre-release written after a hyphen (``1.2.0-rc.1``, ``2.0-beta2``), which the
# docker scheme reads as a variant: a pre-release for retention whatever the scheme.
_SEMVER_PRE = re.compile(r"v?\d+(\.\d+)*-(rc|alpha|beta|pre|preview|dev|ea)([.-]?\d+)*(-.*)?", re.I)
# A bare commit hash (``9f2c1e0``): a build of a commit, not a moving tag.
_COMMIT = re.compile(r"(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}")
# The DELETE that tells whether a registry deletes at all: nothing has this digest.
_PROBE_DIGEST = Digest("sha256", "0" * 64)
DELETE_CONCURRENCY = 4
_CONFIG_TYPES = frozenset({mt.OCI_CONFIG, mt.DOCKER_CONFIG})

_KEYS = {
    "match",
    "keep-newest-per-line",
    "keep-within",
    "delete-prereleases-older-than",
    "delete-untagged-older-than",
    "delete-end-of-life-after",
    "protect",
    "dev-tags",
}


@dataclass(frozen=True)
class RetentionPolicy:
    """One ``[[tool.portside.retention]]`` table."""

    match: str  # glob over ``registry/repository`` or the short name
    keep_newest_per_line: int | None = None
    keep_within: dt.timedelta | None = None
    delete_prereleases_older_than: dt.timedelta | None = None
    # Untagged manifests Portside saw tagged before (see portside.untagged).
    delete_untagged_older_than: dt.timedelta | None = None
    delete_end_of_life_after: dt.timedelta | None = None  # grace after the end-of-life date
    protect: tuple[str, ...] = ()  # tag globs never deleted
    dev_tags: tuple[str, ...] = DEFAULT_DEV_TAGS
    source: str = ""

    @property
    def has_keep_rules(self) -> bool:
        return self.keep_newest_per_line is not None or self.keep_within is not None

    def applies_to(self, ref: Reference) -> bool:
        names = (ref.name, ref.familiar_name, ref.repository)
        return any(fnmatch.fnmatchcase(name, self.match) for name in names)

    def describe_keep(self) -> str:
        rules = []
        if self.keep_newest_per_line is not None:
            rules.append(f"keep-newest-per-line = {self.keep_newest_per_line}")
        if self.keep_within is not None:
            rules.append(f"keep-within = {_duration_text(self.keep_within)}")
        return ", ".join(rules)


def _duration_text(value: dt.timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _duration(value: Any, where: str) -> dt.timedelta:
    from portside.query.syntax import parse_duration

    parsed = parse_duration(value) if isinstance(value, str) else None
    if parsed is None or parsed <= dt.timedelta(0):
        raise ConfigError(
            f"{where} is {value!r}, not a duration", hint='write e.g. "30d", "12h" or "2w"'
        )
    return parsed


def _globs(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f'{where} must be a list of tag globs, e.g. ["release-*"]')
    return tuple(value)


def parse_policies(entries: Any, *, source: str) -> tuple[RetentionPolicy, ...]:
    """Validate the ``retention`` array of tables; unknown keys are errors."""
    if not isinstance(entries, list):
        raise ConfigError(
            f"{source}: retention must be an array of tables ([[tool.portside.retention]])"
        )
    policies = []
    for i, entry in enumerate(entries):
        where = f"{source}: retention[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("match"), str):
            raise ConfigError(f"{where} needs a 'match' glob over repositories")
        unknown = sorted(set(entry) - _KEYS)
        if unknown:
            raise ConfigError(
                f"{where}: unknown setting {unknown[0]!r}",
                hint=f"known: {', '.join(sorted(_KEYS))}",
            )
        newest = entry.get("keep-newest-per-line")
        if newest is not None and (
            not isinstance(newest, int) or isinstance(newest, bool) or newest < 1
        ):
            raise ConfigError(f"{where}.keep-newest-per-line must be a whole number >= 1")
        within = entry.get("keep-within")
        pre = entry.get("delete-prereleases-older-than")
        orphans = entry.get("delete-untagged-older-than")
        eol = entry.get("delete-end-of-life-after")
        policy = RetentionPolicy(
            match=entry["match"],
            keep_newest_per_line=newest,
            keep_within=_duration(within, f"{where}.keep-within") if within is not None else None,
            delete_prereleases_older_than=_duration(pre, f"{where}.delete-prereleases-older-than")
            if pre is not None
            else None,
            delete_untagged_older_than=_duration(orphans, f"{where}.delete-untagged-older-than")
            if orphans is not None
            else None,
            delete_end_of_life_after=_duration(eol, f"{where}.delete-end-of-life-after")
            if eol is not None
            else None,
            protect=_globs(entry["protect"], f"{where}.protect") if "protect" in entry else (),
            dev_tags=_globs(entry["dev-tags"], f"{where}.dev-tags")
            if "dev-tags" in entry
            else DEFAULT_DEV_TAGS,
            source=where,
        )
        deletes = (
            policy.delete_prereleases_older_than,
            policy.delete_untagged_older_than,
            policy.delete_end_of_life_after,
        )
        if not policy.has_keep_rules and all(rule is None for rule in deletes):
            raise ConfigError(
                f"{where} has no rule",
                hint="add keep-newest-per-line, keep-within, delete-prereleases-older-than, "
                "delete-untagged-older-than or delete-end-of-life-after",
            )
        policies.append(policy)
    return tuple(policies)


def policy_for(policies: Sequence[RetentionPolicy], ref: Reference) -> RetentionPolicy | None:
    """The last table whose ``match`` names the repository (later tables win)."""
    chosen = None
    for policy in policies:
        if policy.applies_to(ref):
            chosen = policy
    return chosen


# -- the plan ---------------------------------------------------------------------------


def _when(value: dt.datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


@dataclass
class ImageRecord:
    """One manifest of the repository and what the policy says of it: a tagged one, or
    an untagged one Portside saw tagged before (``untagged_since`` set, no tags)."""

    digest: Digest
    media_type: str
    tags: tuple[str, ...]
    created: dt.datetime | None
    # Every blob and child manifest it references, with sizes: config, layers, and for an
    # index its platform manifests and theirs. Shared content is counted once by digest.
    content: dict[Digest, int] = field(default_factory=dict)
    children: tuple[Digest, ...] = ()  # an index's platform manifests
    referrers: tuple[Descriptor, ...] = ()  # artifacts attached to it, deleted with it
    referrer_tags: dict[str, Digest] = field(default_factory=dict)  # tag schema fallback
    end_of_life: dt.datetime | None = None  # read only when a rule needs it
    untagged_since: dt.datetime | None = None  # when a run first saw no tag name it
    delete: bool = False
    rule: str = ""

    @property
    def size(self) -> int:
        return sum(self.content.values())

    @property
    def tags_text(self) -> str:
        """The tags as the plan shows them; ``(untagged)`` (no tag can be that) for none."""
        return ",".join(self.tags) if self.tags else "(untagged)"

    def to_json(self) -> dict[str, object]:
        return {
            "digest": str(self.digest),
            "tags": list(self.tags),
            "created": _when(self.created),
            "untagged_since": _when(self.untagged_since),
            "size": self.size,
            "action": "delete" if self.delete else "keep",
            "rule": self.rule,
            "referrers": [str(d.digest) for d in self.referrers],
        }


@dataclass
class Plan:
    """What a policy keeps and deletes in one repository, oldest first."""

    repository: Reference
    policy: RetentionPolicy
    images: list[ImageRecord]
    remembered: int = 0  # digests Portside remembers tags here pointed to

    @property
    def untagged_note(self) -> str | None:
        """Where untagged manifests came from and what stays unseen; None without the rule."""
        if self.policy.delete_untagged_older_than is None:
            return None
        found = sum(1 for image in self.images if image.untagged_since is not None)
        return (
            f"{self.repository.name}: {found} untagged manifests among the {self.remembered} "
            "digests Portside has seen tagged here; manifests pushed by digest only, or "
            "untagged before Portside first read this repository, are not visible to it"
        )

    @property
    def deletions(self) -> list[ImageRecord]:
        return [image for image in self.images if image.delete]

    @property
    def orphaned_children(self) -> list[Digest]:
        """Platform manifests only deleted indexes use: they go with them."""
        kept = {c for image in self.images if not image.delete for c in image.children}
        kept |= {image.digest for image in self.images if not image.delete}
        seen: dict[Digest, None] = {}
        for image in self.deletions:
            for child in image.children:
                if child not in kept:
                    seen.setdefault(child, None)
        return list(seen)

    @property
    def bytes_freed(self) -> int:
        """Bytes only deleted images reference (what garbage collection can free)."""
        kept: set[Digest] = set()
        for image in self.images:
            if not image.delete:
                kept.update(image.content)
        freed: dict[Digest, int] = {}
        for image in self.deletions:
            for digest, size in image.content.items():
                if digest not in kept:
                    freed[digest] = size
        return sum(freed.values())

    def to_json(self) -> dict[str, object]:
        return {
            "repository": self.repository.name,
            "policy": self.policy.source,
            "images": [image.to_json() for image in self.images],
            "delete": len(self.deletions),
            "keep": len(self.images) - len(self.deletions),
            "bytes_freed": self.bytes_freed,
            "untagged_note": self.untagged_note,
        }


def _parse_created(text: str | None) -> dt.datetime | None:
    # Go writes nanoseconds; lifecycle's RFC 3339 reader takes any number of digits.
    return lifecycle.parse_date(text) if text else None


class RepositoryReader:
    """Reads what a plan needs from the registry, concurrently and each thing once."""

    def __init__(self, client: Any, repository: Reference, *, concurrency: int = CONCURRENCY):
        self.client = client
        self.repository = repository
        self._limit = asyncio.Semaphore(concurrency)

    def ref(self, digest: Digest | None = None, tag: str | None = None) -> Reference:
        return Reference(self.repository.registry, self.repository.repository, tag, digest)

    async def _limited(self, work: Callable[[], Awaitable[Any]]) -> Any:
        async with self._limit:
            return await work()

    async def tag_digests(self) -> dict[str, Digest]:
        return await tag_digests(self.client, self.repository, limit=self._limit)

    async def manifest(self, digest: Digest) -> Manifest:
        result: Manifest = await self._limited(
            lambda: self.client.get_manifest(self.ref(digest=digest))
        )
        return result

    async def created(self, manifest: Manifest) -> str | None:
        if manifest.config is None or manifest.config.media_type not in _CONFIG_TYPES:
            return None  # an artifact, not an image: no creation date to read
        config = await self._limited(lambda: self.client.get_config(self.ref(), manifest))
        created: str | None = config.created
        return created

    async def record(
        self, digest: Digest, tags: Iterable[str], *, manifest: Manifest | None = None
    ) -> ImageRecord:
        manifest = manifest or await self.manifest(digest)
        content: dict[Digest, int] = {}
        created_text: str | None = None
        children: list[Digest] = []

        def add(m: Manifest) -> None:
            if m.config is not None:
                content[m.config.digest] = m.config.size
            for layer in m.layers:
                content[layer.digest] = layer.size

        if manifest.is_index:
            images = [d for d in manifest.manifests if d.media_type in mt.IMAGE_MANIFEST_TYPES]
            loaded = await asyncio.gather(*(self.manifest(d.digest) for d in images))
            for descriptor, child in zip(images, loaded, strict=True):
                children.append(descriptor.digest)
                content[descriptor.digest] = descriptor.size
                add(child)
            for child in loaded:
                created_text = await self.created(child)
                if created_text:
                    break
        else:
            add(manifest)
            created_text = await self.created(manifest)
        content[manifest.digest] = len(manifest.raw)
        return ImageRecord(
            digest=digest,
            media_type=manifest.media_type,
            tags=tuple(sorted(tags)),
            created=_parse_created(created_text),
            content=content,
            children=tuple(children),
        )

    async def referrers(self, digest: Digest) -> tuple[Descriptor, ...]:
        found = await self._limited(lambda: self.client.referrers(self.ref(digest=digest)))
        return tuple(found)


async def read_repository(
    client: Any, repository: Reference, *, concurrency: int = CONCURRENCY
) -> list[ImageRecord]:
    """Every tagged image of the repository (tag-schema referrer tags set aside and
    attached to their subject), oldest first."""
    reader = RepositoryReader(client, repository, concurrency=concurrency)
    by_tag = await reader.tag_digests()
    by_digest: dict[Digest, list[str]] = {}
    referrer_tags: dict[str, dict[str, Digest]] = {}
    for tag, digest in by_tag.items():
        match = _REFERRERS_TAG.fullmatch(tag)
        if match:
            subject = f"{match.group(1)}:{match.group(2)}"
            referrer_tags.setdefault(subject, {})[tag] = digest
        else:
            by_digest.setdefault(digest, []).append(tag)
    # A manifest that is itself a referrer index is not an image of the repository.
    referrer_digests = {d for tags in referrer_tags.values() for d in tags.values()}
    records = await asyncio.gather(
        *(
            reader.record(digest, tags)
            for digest, tags in by_digest.items()
            if digest not in referrer_digests
        )
    )
    for record in records:
        record.referrer_tags = referrer_tags.get(str(record.digest), {})
    return sorted(records, key=_age_order)


def _age_order(record: ImageRecord) -> tuple[int, dt.datetime, str]:
    # Oldest first; unknown creation dates last (they are never deleted by age).
    floor = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    return (record.created is None, record.created or floor, str(record.digest))


# -- deciding ---------------------------------------------------------------------------


def _line(version: TagVersion) -> tuple[object, ...]:
    # A version line: the same shape and variant, every number but the last equal
    # (1.4.0 and 1.4.2 are the 1.4 line; 3.12.1-slim is a line of its own).
    return (version.form, version.variant, version.build is not None, version.release[:-1])


def moving_tags(tags: Iterable[str], scheme: VersionScheme, dev_tags: Sequence[str]) -> set[str]:
    """Tags that move to newer builds: ``latest`` and names that are not versions
    (``stable``, ``main``), and versions that others extend (``1.4`` when ``1.4.2``
    exists, ``21.0.5`` when ``21.0.5_11`` exists). Development builds never move."""
    parsed: dict[str, TagVersion | None] = {tag: scheme.parse(tag) for tag in tags}
    versions = [v for v in parsed.values() if v is not None]
    moving = set()
    for tag, version in parsed.items():
        if version is None:
            if not is_dev_build(tag, None, dev_tags):
                moving.add(tag)
            continue
        width = len(version.release)
        for other in versions:
            if other is version or (other.form, other.variant) != (version.form, version.variant):
                continue
            longer = len(other.release) > width and other.release[:width] == version.release
            built = (
                version.build is None
                and other.build is not None
                and other.release == version.release
            )
            if longer or built:
                moving.add(tag)
                break
    return moving


def is_dev_build(tag: str, version: TagVersion | None, dev_tags: Sequence[str]) -> bool:
    """A pre-release (by the version rules) or a development build (by tag pattern)."""
    if version is not None and version.is_prerelease:
        return True
    if _COMMIT.fullmatch(tag) or _SEMVER_PRE.fullmatch(tag):
        return True
    return any(fnmatch.fnmatchcase(tag, pattern) for pattern in dev_tags)


def decide(
    images: Sequence[ImageRecord],
    policy: RetentionPolicy,
    scheme: VersionScheme,
    *,
    now: dt.datetime,
    pinned: Mapping[Digest, str] | None = None,
) -> None:
    """Set ``delete`` and ``rule`` on every image. Pure: no I/O."""
    pinned = pinned or {}
    all_tags = [tag for image in images for tag in image.tags]
    moving = moving_tags(all_tags, scheme, policy.dev_tags)
    parsed = {tag: scheme.parse(tag) for tag in all_tags}

    newest: dict[Digest, str] = {}
    if policy.keep_newest_per_line is not None:
        lines: dict[tuple[object, ...], list[tuple[TagVersion, Digest]]] = {}
        for image in images:
            for tag in image.tags:
                version = parsed[tag]
                if version is None or tag in moving or is_dev_build(tag, version, policy.dev_tags):
                    continue
                lines.setdefault(_line(version), []).append((version, image.digest))
        for members in lines.values():
            members.sort(key=lambda pair: pair[0].key, reverse=True)
            for version, digest in members[: policy.keep_newest_per_line]:
                newest.setdefault(
                    digest,
                    f"{version.tag} is among the newest {policy.keep_newest_per_line} "
                    "of its line (keep-newest-per-line)",
                )

    for image in images:
        image.delete, image.rule = _verdict(image, policy, moving, parsed, newest, pinned, now)
    # Deleting a platform manifest by digest would break every index that lists it, so
    # one a kept index lists is kept, whatever its own tags or age say.
    kept_children = {c: i.digest for i in images if not i.delete for c in i.children}
    for image in images:
        if image.delete and image.digest in kept_children:
            image.delete = False
            index = kept_children[image.digest].short
            image.rule = f"a platform manifest of the kept index {index}"


def _verdict(
    image: ImageRecord,
    policy: RetentionPolicy,
    moving: set[str],
    parsed: Mapping[str, TagVersion | None],
    newest: Mapping[Digest, str],
    pinned: Mapping[Digest, str],
    now: dt.datetime,
) -> tuple[bool, str]:
    if image.digest in pinned:
        return False, f"pinned in {pinned[image.digest]}"
    if image.untagged_since is not None:
        return _untagged_verdict(image, policy, now)
    for tag in image.tags:
        if tag in moving:
            return False, f"the moving tag {tag!r} points to it"
        for pattern in policy.protect:
            if fnmatch.fnmatchcase(tag, pattern):
                return False, f"tag {tag!r} is protected ({pattern!r})"
    if image.digest in newest:
        return False, newest[image.digest]
    age = now - image.created if image.created is not None else None
    if policy.keep_within is not None:
        if age is None:
            return False, "its creation date is unknown (keep-within)"
        if age <= policy.keep_within:
            return False, f"created within {_duration_text(policy.keep_within)} (keep-within)"
    limit = policy.delete_prereleases_older_than
    grace = policy.delete_end_of_life_after
    if grace is not None and image.end_of_life is not None and now - image.end_of_life > grace:
        day = image.end_of_life.date().isoformat()
        return True, (
            f"end of life since {day}, more than {_duration_text(grace)} ago "
            "(delete-end-of-life-after)"
        )
    development = all(is_dev_build(tag, parsed[tag], policy.dev_tags) for tag in image.tags)
    if limit is not None and development and age is not None and age > limit:
        return True, (
            "a pre-release or development build older than "
            f"{_duration_text(limit)} (delete-prereleases-older-than)"
        )
    if policy.has_keep_rules:
        return True, f"no keep rule keeps it ({policy.describe_keep()})"
    return False, "no rule deletes it"


def _untagged_verdict(
    image: ImageRecord, policy: RetentionPolicy, now: dt.datetime
) -> tuple[bool, str]:
    # Age from the image's creation date; only without one, from when a run first saw
    # it untagged (a lower bound: it may have been untagged before).
    if image.created is not None:
        age = now - image.created
        how = f"untagged, created {age.days}d ago"
    else:
        age = now - (image.untagged_since or now)
        how = f"untagged, no creation date, first seen untagged {age.days}d ago"
    if policy.keep_within is not None:
        if image.created is None:
            return False, "untagged, its creation date is unknown (keep-within)"
        if age <= policy.keep_within:
            return False, f"{how}: within {_duration_text(policy.keep_within)} (keep-within)"
    limit = policy.delete_untagged_older_than
    if limit is None:
        return False, f"{how}: no rule deletes it"
    verdict = "older" if age > limit else "not older"
    rule = f"{verdict} than {_duration_text(limit)} (delete-untagged-older-than)"
    return age > limit, f"{how}: {rule}"


async def read_untagged(
    reader: RepositoryReader,
    tagged: Sequence[ImageRecord],
    history: untagged.TaggedHistory,
    now: dt.datetime,
    *,
    read: bool,
) -> tuple[list[ImageRecord], int]:
    """Remember what is tagged now; with ``read``, the untagged manifests Portside saw
    tagged before that the registry still serves. Also the number remembered.

    Not untagged orphans, so never returned: platform manifests a tagged index lists,
    and referrers (a manifest with a ``subject``: it goes with its subject)."""
    repository = reader.repository
    credential = reader.client.credential_sent(repository.registry)
    seen = history.load(repository, credential)
    candidates = untagged.remember(seen, (image.digest for image in tagged), now)
    in_use = {child for image in tagged for child in image.children}

    async def one(digest: Digest) -> ImageRecord | None:
        try:
            manifest = await reader.manifest(digest)
        except errors.NotFound:
            del seen[digest]  # deleted meanwhile: nothing left to remember
            return None
        if manifest.subject is not None:
            return None
        try:
            record = await reader.record(digest, (), manifest=manifest)
        except errors.NotFound:
            return None  # an index missing a platform manifest: not judged this run
        since = seen[digest].untagged_since or now.timestamp()
        record.untagged_since = dt.datetime.fromtimestamp(since, dt.timezone.utc)
        return record

    found: list[ImageRecord] = []
    if read:
        results = await asyncio.gather(*(one(d) for d in candidates if d not in in_use))
        found = [record for record in results if record is not None]
    history.save(repository, credential, seen)
    return found, len(seen)


async def make_plan(
    client: Any,
    repository: Reference,
    policy: RetentionPolicy,
    scheme: VersionScheme,
    *,
    now: dt.datetime | None = None,
    pinned: Mapping[Digest, str] | None = None,
    concurrency: int = CONCURRENCY,
    history: untagged.TaggedHistory | None = None,
) -> Plan:
    """Read the repository, decide, and find the referrers of what is to be deleted.

    With ``history``, remember the digests tagged now, and (when the policy has
    ``delete-untagged-older-than``) add the untagged manifests it saw tagged before."""
    now = now or dt.datetime.now(dt.timezone.utc)
    images = await read_repository(client, repository, concurrency=concurrency)
    if policy.delete_end_of_life_after is not None:
        await _read_end_of_life(client, repository, images, concurrency)
    reader = RepositoryReader(client, repository, concurrency=concurrency)
    remembered = 0
    if history is not None:
        read = policy.delete_untagged_older_than is not None
        extra, remembered = await read_untagged(reader, images, history, now, read=read)
        images = sorted([*images, *extra], key=_age_order)
    decide(images, policy, scheme, now=now, pinned=pinned)
    doomed = [image for image in images if image.delete]
    found = await asyncio.gather(*(reader.referrers(image.digest) for image in doomed))
    for image, referrers in zip(doomed, found, strict=True):
        image.referrers = referrers
    return Plan(repository, policy, images, remembered)


async def _read_end_of_life(
    client: Any, repository: Reference, images: Sequence[ImageRecord], concurrency: int
) -> None:
    source = lifecycle.ClientSource(client)
    limit = asyncio.Semaphore(concurrency)

    async def one(image: ImageRecord) -> None:
        async with limit:
            manifest = await source.manifest(repository.with_digest(image.digest))
            status = await lifecycle.read_lifecycle(source, repository, [manifest])
        if status.end_of_life is not None:
            image.end_of_life = status.end_of_life.date

    await asyncio.gather(*(one(image) for image in images))


# -- applying ---------------------------------------------------------------------------


class DeletionDisabled(errors.RegistryError):
    """The registry refuses to delete manifests (405 / UNSUPPORTED)."""


async def ensure_deletable(client: Any, repository: Reference) -> None:
    """Ask the registry to delete a manifest nobody has: 404 means it deletes, 405 that
    it does not. Asked before the first real deletion, so a refusal changes nothing."""
    probe = Reference(repository.registry, repository.repository, None, _PROBE_DIGEST)
    try:
        await client.delete_manifest(probe)
    except errors.NotFound:
        return
    except errors.RegistryError as exc:
        if exc.status in (405, 400) or "does not support" in exc.message:
            raise DeletionDisabled(
                "the registry does not allow deleting manifests",
                registry=repository.registry,
                repository=repository.repository,
                hint="enable deletion on the registry (distribution: storage.delete.enabled: "
                "true; Harbor, ECR, GAR: a role with delete permission)",
                status=exc.status,
            ) from None
        raise


@dataclass
class ApplyResult:
    deleted: list[Digest] = field(default_factory=list)
    referrers_deleted: list[Digest] = field(default_factory=list)
    stopped: bool = False  # interrupted between deletions

    def to_json(self) -> dict[str, object]:
        return {
            "deleted": [str(d) for d in self.deleted],
            "referrers_deleted": [str(d) for d in self.referrers_deleted],
            "stopped": self.stopped,
        }


async def _delete(client: Any, ref: Reference) -> bool:
    """Delete by digest; False when it was already gone (a resumed run)."""
    try:
        await client.delete_manifest(ref)
    except errors.NotFound:
        return False
    return True


async def apply_plan(
    client: Any,
    plan: Plan,
    *,
    stop: asyncio.Event | None = None,
    progress: Callable[[ImageRecord, int, int], None] | None = None,
) -> ApplyResult:
    """Carry out the plan's deletions oldest first, four images at a time: its referrers
    (and their tag-schema index), then the image, then platform manifests only it used.
    ``stop`` set: finish the image in hand and return (``stopped``); the next plan
    continues where this one ended."""
    result = ApplyResult()
    deletions = plan.deletions
    if not deletions:
        return result
    await ensure_deletable(client, plan.repository)
    orphans = set(plan.orphaned_children)

    def ref(digest: Digest) -> Reference:
        return Reference(plan.repository.registry, plan.repository.repository, None, digest)

    async def remove(image: ImageRecord) -> None:
        for referrer in image.referrers:
            if await _delete(client, ref(referrer.digest)):
                result.referrers_deleted.append(referrer.digest)
        for index_digest in image.referrer_tags.values():
            # Deleting the fallback index by digest removes its sha256-... tag too.
            await _delete(client, ref(index_digest))
        if await _delete(client, ref(image.digest)):
            result.deleted.append(image.digest)
        for child in image.children:
            if child in orphans:
                await _delete(client, ref(child))

    # A few images at a time (a registry's delete is slow: it walks its storage), taken
    # oldest first; Ctrl-C lets the images in hand finish and starts no other.
    pending = iter(deletions)
    done = 0

    async def worker() -> None:
        nonlocal done
        for image in pending:
            if stop is not None and stop.is_set():
                result.stopped = True
                return
            await remove(image)
            done += 1
            if progress is not None:
                progress(image, done, len(deletions))

    await asyncio.gather(*(worker() for _ in range(DELETE_CONCURRENCY)))
    return result


# -- configuration and Dockerfiles -------------------------------------------------------


def load_policies(start: Path) -> tuple[RetentionPolicy, ...]:
    """The retention tables of the configuration that applies under ``start``."""
    from portside.config import load_table

    found = load_table(start)
    if found is None:
        return ()
    table, source = found
    if "retention" not in table:
        return ()
    return parse_policies(table["retention"], source=source)


def pinned_digests(paths: Sequence[str | Path], repository: Reference) -> dict[Digest, str]:
    """Digests that Dockerfiles under ``paths`` pin for ``repository`` (``ARG`` defaults
    resolved), each with the first ``file:line`` that pins it."""
    from portside.check import read_dockerfile
    from portside.discover import find_dockerfiles
    from portside.dockerfile import parse

    pinned: dict[Digest, str] = {}
    for path in find_dockerfiles(paths):
        document = parse(read_dockerfile(path))
        for use in document.images:
            if not use.is_image or not use.resolved or "@" not in use.resolved:
                continue
            try:
                ref = Reference.parse(use.resolved)
            except errors.UsageError:
                continue  # check reports a malformed reference; here it pins nothing
            same = (ref.registry, ref.repository) == (repository.registry, repository.repository)
            if same and ref.digest is not None:
                pinned.setdefault(ref.digest, f"{path}:{use.range.start.line + 1}")
    return pinned


# -- usage ------------------------------------------------------------------------------


@dataclass
class LineUsage:
    """Usage figures of one version line (or of the whole repository)."""

    line: str
    tags: int = 0
    manifests: int = 0
    bytes: int = 0  # everything referenced, shared content counted once
    freed: int = 0  # what the plan's deletions would free
    newest: dt.datetime | None = None
    oldest: dt.datetime | None = None

    def to_json(self) -> dict[str, object]:
        def when(value: dt.datetime | None) -> str | None:
            return value.isoformat().replace("+00:00", "Z") if value else None

        return {
            "line": self.line,
            "tags": self.tags,
            "manifests": self.manifests,
            "bytes": self.bytes,
            "freed": self.freed,
            "newest": when(self.newest),
            "oldest": when(self.oldest),
        }


def line_label(tag: str, scheme: VersionScheme) -> str:
    """``1.4.*``, ``3.12.*-slim``, ``*-alpine``; ``(other)`` for tags that are no version."""
    version = scheme.parse(tag)
    if version is None:
        return "(other)"
    head = ".".join(str(n) for n in version.release[:-1])
    label = f"{head}.*" if head else "*"
    return f"{label}-{version.variant}" if version.variant else label


UNTAGGED_LINE = "(untagged)"


def usage(plan: Plan, scheme: VersionScheme) -> list[LineUsage]:
    """The repository's figures first (``line`` is the repository name), then each line's;
    untagged manifests (read only under ``delete-untagged-older-than``) as ``(untagged)``."""
    groups: dict[str, list[tuple[str, ImageRecord]]] = {}
    everything: list[tuple[str, ImageRecord]] = []
    for image in plan.images:
        if not image.tags:
            groups.setdefault(UNTAGGED_LINE, []).append(("", image))
            everything.append(("", image))
        for tag in image.tags:
            groups.setdefault(line_label(tag, scheme), []).append((tag, image))
            everything.append((tag, image))
    rows = [_figures(plan.repository.name, everything)]
    rows += [_figures(label, members) for label, members in sorted(groups.items())]
    return rows


def _figures(label: str, members: Sequence[tuple[str, ImageRecord]]) -> LineUsage:
    row = LineUsage(label, tags=len({tag for tag, _ in members if tag}))
    images = {image.digest: image for _, image in members}
    row.manifests = len(images)
    content: dict[Digest, int] = {}
    doomed: dict[Digest, int] = {}
    for image in images.values():
        content.update(image.content)
        if image.delete:
            doomed.update(image.content)
        if image.created is not None:
            row.newest = max(row.newest or image.created, image.created)
            row.oldest = min(row.oldest or image.created, image.created)
    kept = {d for image in images.values() if not image.delete for d in image.content}
    row.bytes = sum(content.values())
    row.freed = sum(size for digest, size in doomed.items() if digest not in kept)
    return row
