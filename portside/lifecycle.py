"""Image lifecycle: end of life, read from what is attached to an image, and written.

The convention is the one Microsoft's registry and the .NET images use, written by
``oras attach``: an artifact whose ``subject`` is the image's digest (an OCI referrer),
with artifact type ``application/vnd.microsoft.artifact.lifecycle`` and the annotation
``vnd.microsoft.artifact.lifecycle.end-of-life.date``. Also read, on the image's own
manifest or index: ``org.opencontainers.image.support.end-of-life``, a key proposed for
the OCI image spec (2022) but not part of it: honoured when present, never written.

Referrers come through the Referrers API or the tag-schema fallback (``sha256-<hex>``
index tags), whichever the registry has (the client decides); a malformed artifact or
an unreadable date is reported once as a warning naming the artifact and ignored.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from portside import errors
from portside.reference import Digest, Reference
from portside.registry import mediatypes as mt
from portside.registry.manifest import Descriptor, Manifest, Platform
from portside.versions import TagVersion, VersionScheme

LIFECYCLE_ARTIFACT_TYPE = "application/vnd.microsoft.artifact.lifecycle"
END_OF_LIFE_ANNOTATION = "vnd.microsoft.artifact.lifecycle.end-of-life.date"
# Proposed for the image spec (opencontainers/image-spec, "support annotations"), not in it.
PROPOSED_END_OF_LIFE_ANNOTATION = "org.opencontainers.image.support.end-of-life"
REASON_ANNOTATION = "vnd.portside.lifecycle.reason"
CREATED_ANNOTATION = "org.opencontainers.image.created"
EMPTY_JSON = b"{}"
DEFAULT_PLATFORM = Platform("linux", "amd64")

_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\d)[Tt ](\d\d:\d\d:\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)")


class Source(Protocol):
    """What reading the lifecycle needs: :class:`portside.cache.CachedRegistry`."""

    async def manifest(self, ref: Reference) -> Manifest: ...

    async def referrers(self, ref: Reference) -> list[Descriptor]: ...


def parse_date(text: str) -> dt.datetime | None:
    """``2025-11-10`` (that day, 00:00 UTC) or an RFC 3339 time (any number of fraction
    digits, as .NET writes them); ``None`` for anything else."""
    text = text.strip()
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)
        match = _RFC3339.fullmatch(text)
        if match is None:
            return None
        day_text, clock, fraction, zone = match.groups()
        micro = (fraction or ".0")[1:7].ljust(6, "0")
        offset = "+00:00" if zone in ("Z", "z") else zone
        value = dt.datetime.fromisoformat(f"{day_text}T{clock}.{micro}{offset}")
    except ValueError:
        return None
    return value.astimezone(dt.timezone.utc)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def format_date(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class EndOfLife:
    """An image's end of life: when, why, and what says so."""

    date: dt.datetime
    subject: Digest  # the digest it was attached to or written on
    source: str  # "lifecycle artifact sha256:…" or "annotation on sha256:…"
    reason: str | None = None

    def passed(self, now: dt.datetime) -> bool:
        return self.date <= now

    def describe(self, now: dt.datetime) -> str:
        day = self.date.date().isoformat()
        why = f": {self.reason}" if self.reason else ""
        if self.passed(now):
            return f"end of life since {day}{why}"
        return f"reaches its end of life on {day}{why}"


@dataclass
class Lifecycle:
    """What is known of an image's lifecycle; ``warnings`` name what could not be read."""

    end_of_life: EndOfLife | None = None
    warnings: list[str] = field(default_factory=list)

    def add(self, found: EndOfLife) -> None:
        # The earliest date any source gives is the one that counts.
        if self.end_of_life is None or found.date < self.end_of_life.date:
            self.end_of_life = found


async def _artifact_annotations(
    source: Source, ref: Reference, descriptor: Descriptor
) -> dict[str, str]:
    # A Referrers API answer carries the artifact's annotations; an index written by
    # another tool for the tag schema may not: then the artifact itself is read.
    if END_OF_LIFE_ANNOTATION in descriptor.annotations:
        return dict(descriptor.annotations)
    manifest = await source.manifest(ref.with_digest(descriptor.digest))
    return dict(manifest.annotations)


async def read_lifecycle(source: Source, ref: Reference, subjects: Sequence[Manifest]) -> Lifecycle:
    """The lifecycle of an image whose index and/or platform manifest are ``subjects``:
    lifecycle artifacts attached to any of them, and the proposed OCI annotation."""
    status = Lifecycle()
    for manifest in subjects:
        value = manifest.annotations.get(PROPOSED_END_OF_LIFE_ANNOTATION)
        if value is None:
            continue
        date = parse_date(value)
        if date is None:
            status.warnings.append(
                f"{ref.name}@{manifest.digest.short}: {PROPOSED_END_OF_LIFE_ANNOTATION} "
                f"is {value[:40]!r}, not a date; ignored"
            )
            continue
        status.add(EndOfLife(date, manifest.digest, f"annotation on {manifest.digest.short}"))
    attached = await asyncio.gather(
        *(source.referrers(ref.with_digest(m.digest)) for m in subjects)
    )
    for manifest, descriptors in zip(subjects, attached, strict=True):
        for descriptor in descriptors:
            if descriptor.artifact_type != LIFECYCLE_ARTIFACT_TYPE:
                continue
            where = f"{ref.name}: lifecycle artifact {descriptor.digest.short}"
            try:
                annotations = await _artifact_annotations(source, ref, descriptor)
            except errors.IntegrityError as exc:
                status.warnings.append(f"{where} cannot be read ({exc.detail}); ignored")
                continue
            value = annotations.get(END_OF_LIFE_ANNOTATION)
            date = parse_date(value) if value is not None else None
            if date is None:
                shown = "no end-of-life date" if value is None else f"the date {value[:40]!r}"
                status.warnings.append(f"{where} has {shown}; ignored")
                continue
            status.add(
                EndOfLife(
                    date,
                    manifest.digest,
                    f"lifecycle artifact {descriptor.digest.short}",
                    reason=annotations.get(REASON_ANNOTATION),
                )
            )
    return status


async def image_subjects(
    source: Source, ref: Reference, platform: Platform | None = None
) -> list[Manifest]:
    """The manifests whose attachments describe the image ``ref`` names: the index and
    the platform's manifest (``linux/amd64`` unless told), or the one manifest."""
    top = await source.manifest(ref)
    if not top.is_index:
        return [top]
    try:
        chosen = top.select(platform or DEFAULT_PLATFORM)
    except errors.UsageError:  # the platform is not there: the index alone
        return [top]
    return [top, await source.manifest(ref.with_digest(chosen.digest))]


async def lifecycle_of(
    source: Source, ref: Reference, platform: Platform | None = None
) -> Lifecycle:
    return await read_lifecycle(source, ref, await image_subjects(source, ref, platform))


# -- writing -------------------------------------------------------------------------------


def lifecycle_artifact(
    subject: Descriptor, date: dt.datetime, *, reason: str | None, created: dt.datetime
) -> bytes:
    """The manifest ``oras attach --artifact-type application/vnd.microsoft.artifact.lifecycle
    --annotation vnd.microsoft.artifact.lifecycle.end-of-life.date=DATE`` writes: an
    empty config and one empty layer, the subject, the date (and our reason)."""
    empty = {
        "mediaType": mt.OCI_EMPTY,
        "digest": str(Digest.of(EMPTY_JSON)),
        "size": len(EMPTY_JSON),
        "data": "e30=",
    }
    annotations = {
        END_OF_LIFE_ANNOTATION: format_date(date),
        CREATED_ANNOTATION: format_date(created),
    }
    if reason:
        annotations[REASON_ANNOTATION] = reason
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "artifactType": LIFECYCLE_ARTIFACT_TYPE,
        "config": empty,
        "layers": [empty],
        "subject": Descriptor(subject.media_type, subject.digest, subject.size).to_json(),
        "annotations": annotations,
    }
    return json.dumps(document, separators=(",", ":")).encode()


@dataclass
class Retirement:
    subject: Digest
    artifact: Digest


async def retire(
    client: Any,
    ref: Reference,
    *,
    date: dt.datetime,
    reason: str | None = None,
    now: dt.datetime | None = None,
    dry_run: bool = False,
) -> list[Retirement]:
    """Attach a lifecycle artifact to the digest ``ref`` resolves to and, for an index, to
    each of its platform manifests (what a consumer pinned to either will look at)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    top: Manifest = await client.get_manifest(ref)
    subjects = [top.descriptor]
    if top.is_index:
        subjects += [d for d in top.manifests if d.media_type in mt.IMAGE_MANIFEST_TYPES]
    repository = ref.repository_ref()
    if not dry_run:
        await client.upload_blob(repository, EMPTY_JSON)
    done = []
    for subject in subjects:
        raw = lifecycle_artifact(subject, date, reason=reason, created=now)
        digest = Digest.of(raw)
        if not dry_run:
            digest = await client.put_manifest(repository.with_digest(digest), raw, mt.OCI_MANIFEST)
        done.append(Retirement(subject.digest, digest))
    return done


# -- pulling back --------------------------------------------------------------------------


class ClientSource:
    """A :class:`Source` straight from the registry, no cache: what a command that is
    about to change the registry must read."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def manifest(self, ref: Reference) -> Manifest:
        result: Manifest = await self.client.get_manifest(ref)
        return result

    async def referrers(self, ref: Reference) -> list[Descriptor]:
        result: list[Descriptor] = await self.client.referrers(ref)
        return result

    async def blob(self, ref: Reference, digest: Digest, *, max_bytes: int | None = None) -> bytes:
        data: bytes = await self.client.get_blob(ref, digest, max_bytes=max_bytes)
        return data


@dataclass(frozen=True)
class TagMove:
    """One tag of a pulled-back image: moved back to ``to`` (with the tag it is known
    by), or removed when ``to`` is ``None``."""

    tag: str
    to: Digest | None = None
    to_tag: str | None = None

    def describe(self) -> str:
        if self.to is None:
            return f"{self.tag}: removed (no earlier build that is not retired)"
        return f"{self.tag}: back to {self.to_tag} ({self.to.short})"


@dataclass
class PullBackPlan:
    repository: Reference
    digest: Digest  # the image pulled back
    moves: list[TagMove]
    retire: list[Digest]  # the image and its platform manifests

    @property
    def removals(self) -> list[str]:
        return [m.tag for m in self.moves if m.to is None]

    def to_json(self) -> dict[str, object]:
        return {
            "repository": self.repository.name,
            "digest": str(self.digest),
            "retire": [str(d) for d in self.retire],
            "tags": [
                {"tag": m.tag, "to": str(m.to) if m.to else None, "to_tag": m.to_tag}
                for m in self.moves
            ],
        }


def _in_range(tag_version: TagVersion, candidate: TagVersion) -> bool:
    """Whether ``candidate`` is a build the tag could name: same shape and variant, and
    its numbers start with the tag's (``1.4`` names 1.4.x; ``1.4.3`` names 1.4.3 only)."""
    if (candidate.form, candidate.variant) != (tag_version.form, tag_version.variant):
        return False
    width = len(tag_version.release)
    return candidate.release[:width] == tag_version.release


async def plan_pull_back(
    client: Any, ref: Reference, scheme: VersionScheme, *, now: dt.datetime | None = None
) -> PullBackPlan:
    """Which tags point to the image ``ref`` names, and where each goes back to: the
    newest earlier release the tag could name that is not retired itself."""
    from portside.repository import tag_digests

    now = now or dt.datetime.now(dt.timezone.utc)
    repository = ref.repository_ref()
    top: Manifest = await client.get_manifest(ref)
    target = top.digest
    by_tag = await tag_digests(client, repository)
    ours = sorted(tag for tag, digest in by_tag.items() if digest == target)
    if not ours:
        raise errors.UsageError(
            f"no tag of {repository.name} points to {target.short}",
            hint="pull-back moves tags away from an image; retire it with `portside retire`",
        )
    versions = {tag: scheme.parse(tag) for tag in by_tag}
    source = ClientSource(client)
    retired: dict[Digest, bool] = {target: True}  # digest -> retired by now

    async def is_retired(digest: Digest) -> bool:
        if digest not in retired:
            status = await read_lifecycle(source, repository, [await source.manifest(
                repository.with_digest(digest))])  # fmt: skip
            eol = status.end_of_life
            retired[digest] = eol is not None and eol.passed(now)
        return retired[digest]

    def ceiling(tag_version: TagVersion) -> Any:
        # The pulled-back image's own version within the tag's range: go below it.
        keys = [
            v.key
            for t, v in versions.items()
            if v is not None and by_tag[t] == target and _in_range(tag_version, v)
        ]
        return max(keys) if keys else None

    own_keys = [v.key for t, v in versions.items() if v is not None and by_tag[t] == target]
    ours_newest = max(own_keys) if own_keys else None
    moves = []
    for tag in ours:
        version = versions[tag]
        candidates: list[tuple[Any, str]] = []
        for other, other_version in versions.items():
            if by_tag[other] == target or other_version is None:
                continue
            if other_version.is_prerelease and not (version and version.is_prerelease):
                continue
            if version is not None:
                top_key = ceiling(version)
                if not _in_range(version, other_version):
                    continue
                if top_key is not None and other_version.key >= top_key:
                    continue
            elif ours_newest is None or other_version.key >= ours_newest:
                continue  # "latest" and other names: only releases older than ours
            candidates.append((other_version.key, other))
        candidates.sort(reverse=True)
        move = TagMove(tag)
        for _, other in candidates:
            if not await is_retired(by_tag[other]):
                move = TagMove(tag, by_tag[other], other)
                break
        moves.append(move)
    retire_digests = [target] + (
        [d.digest for d in top.manifests if d.media_type in mt.IMAGE_MANIFEST_TYPES]
        if top.is_index
        else []
    )
    return PullBackPlan(repository, target, moves, retire_digests)


class TagDeletionRefused(errors.RegistryError):
    """The registry deletes tags only together with their image (distribution)."""


async def apply_pull_back(
    client: Any,
    plan: PullBackPlan,
    *,
    reason: str,
    now: dt.datetime | None = None,
    delete_image: bool = False,
) -> list[Retirement]:
    """Carry out a pull-back so that no tag is ever missing: tags with no earlier build
    are removed first (a registry that cannot delete a tag refuses before anything
    changed), then the image is retired, then each tag moves with one manifest PUT (a
    tag is either where it was or where it goes). ``delete_image``: instead of deleting
    tags, delete the retired image by digest last, which removes the tags left on it."""
    now = now or dt.datetime.now(dt.timezone.utc)
    if plan.removals and not delete_image:
        for tag in plan.removals:
            try:
                await client.delete_manifest(plan.repository.with_tag(tag))
            except errors.NotFound:
                continue
            except errors.RegistryError as exc:
                if exc.status in (400, 405) or "does not support" in exc.message:
                    raise TagDeletionRefused(
                        f"the registry cannot delete the tag {tag!r} on its own",
                        registry=plan.repository.registry,
                        repository=plan.repository.repository,
                        hint="nothing was changed; add --delete-image to delete the retired "
                        "image itself, which removes the tags left on it",
                        status=exc.status,
                    ) from None
                raise
    retired = await retire(
        client, plan.repository.with_digest(plan.digest), date=now, reason=reason, now=now
    )
    for move in plan.moves:
        if move.to is None:
            continue
        manifest: Manifest = await client.get_manifest(plan.repository.with_digest(move.to))
        await client.put_manifest(
            plan.repository.with_tag(move.tag), manifest.raw, manifest.media_type
        )
    if plan.removals and delete_image:
        await client.delete_manifest(plan.repository.with_digest(plan.digest))
    return retired
