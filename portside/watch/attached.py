"""What is attached to a watched image: its end of life (lifecycle artifacts) and the
vulnerability reports scanners attach (SARIF, OpenVEX), read with the core's functions
(:func:`portside.lifecycle.read_lifecycle`, :func:`portside.vulnerabilities.collect`).

One look lists the referrers of the watched digest and of its platform manifest; only
when the set of lifecycle and report artifacts differs from the one stored are the
artifacts themselves read. The watcher looks at the tag-list cadence, when a digest
moved and when a webhook names the repository, never on every round: an unchanged
round stays one HEAD per watched tag.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from portside import lifecycle, vulnerabilities
from portside.policy import newest_not_retired
from portside.reference import Digest, Reference
from portside.registry.client import RegistryClient
from portside.registry.manifest import Descriptor, Manifest
from portside.watch.store import TargetState
from portside.watch.targets import Target

WATCHED_TYPES = (
    frozenset({lifecycle.LIFECYCLE_ARTIFACT_TYPE})
    | vulnerabilities.SARIF_TYPES
    | vulnerabilities.OPENVEX_TYPES
)
DEFAULT_SEVERITY = "high"
_MEMO_LIMIT = 4096


class WatchSource:
    """The registry as the core's readers want it: manifests by digest kept (they never
    change), referrers as just listed, tags resolved with a HEAD."""

    def __init__(
        self,
        client: RegistryClient,
        manifests: dict[Digest, Manifest],
        listed: dict[Digest, list[Descriptor]] | None = None,
    ) -> None:
        self.client = client
        self.manifests = manifests
        self.listed = listed or {}

    async def manifest(self, ref: Reference) -> Manifest:
        if ref.digest is not None and ref.digest in self.manifests:
            return self.manifests[ref.digest]
        found = await self.client.get_manifest(ref)
        if ref.digest is not None:
            if len(self.manifests) >= _MEMO_LIMIT:
                self.manifests.clear()
            self.manifests[ref.digest] = found
        return found

    async def referrers(self, ref: Reference) -> list[Descriptor]:
        if ref.digest is not None and ref.digest in self.listed:
            return self.listed[ref.digest]
        return await self.client.referrers(ref)

    async def blob(self, ref: Reference, digest: Digest, *, max_bytes: int | None = None) -> bytes:
        return await self.client.get_blob(ref, digest, max_bytes=max_bytes)

    async def resolve(self, ref: Reference) -> Descriptor:
        return await self.client.head_manifest(ref)


@dataclass(frozen=True)
class AttachedLook:
    """What one look at a target's attachments saw (for the digests it was read for)."""

    digest: str
    platform_digest: str | None
    referrers: tuple[str, ...]
    read: bool  # the artifacts were read: the set differs from the stored one
    end_of_life: lifecycle.EndOfLife | None = None
    vulnerable: tuple[str, ...] = ()  # ids at or above the severity
    worst: tuple[vulnerabilities.Vulnerability, ...] = ()
    severity: str = DEFAULT_SEVERITY
    fix: tuple[str, Digest | None] | None = None  # end of life passed: where to move
    warnings: list[str] = field(default_factory=list)


def _subjects(stored: TargetState) -> list[str]:
    assert stored.digest is not None
    out = [stored.digest]
    if stored.platform_digest and stored.platform_digest != stored.digest:
        out.append(stored.platform_digest)
    return out


async def look(
    client: RegistryClient,
    target: Target,
    stored: TargetState,
    manifests: dict[Digest, Manifest],
    *,
    severity: str = DEFAULT_SEVERITY,
    tags: Sequence[str] | None = None,
) -> AttachedLook | None:
    """List what is attached to the target's digests; read it when it changed. ``None``
    when the target has no digest to look at (absent, or never seen)."""
    if stored.digest is None or not stored.present:
        return None
    ref = target.ref
    repository = ref.repository_ref()
    digests = [Digest.parse(d) for d in _subjects(stored)]
    found = await asyncio.gather(*(client.referrers(repository.with_digest(d)) for d in digests))
    listed = dict(zip(digests, found, strict=True))
    relevant = tuple(
        sorted({str(d.digest) for ds in found for d in ds if d.artifact_type in WATCHED_TYPES})
    )
    base: dict[str, Any] = {
        "digest": stored.digest,
        "platform_digest": stored.platform_digest,
        "referrers": relevant,
        "severity": severity,
    }
    if relevant == stored.attached:
        return AttachedLook(**base, read=False)  # unchanged: nothing to read
    if not relevant:
        return AttachedLook(**base, read=True)  # nothing attached (any more): no reading
    source = WatchSource(client, manifests, listed)
    subjects = [await source.manifest(repository.with_digest(d)) for d in digests]
    status = await lifecycle.read_lifecycle(source, ref, subjects)
    report = await vulnerabilities.collect(source, ref, subjects)
    high = report.at_least(severity)
    eol = status.end_of_life
    fix = None
    if eol is not None and eol.passed(lifecycle.utc_now()):
        told = lifecycle.format_date(eol.date) == stored.end_of_life
        if not (told and stored.end_of_life_passed):
            fix = await fix_for(client, target, manifests, tags=tags)
    ranked = sorted(high, key=lambda v: -vulnerabilities.severity_rank(v.severity))
    return AttachedLook(
        **base,
        read=True,
        end_of_life=eol,
        vulnerable=tuple(sorted({v.id for v in high})),
        worst=tuple(ranked[:3]),
        fix=fix,
        warnings=[*status.warnings, *report.warnings],
    )


async def fix_for(
    client: RegistryClient,
    target: Target,
    manifests: dict[Digest, Manifest],
    *,
    tags: Sequence[str] | None = None,
) -> tuple[str, Digest | None] | None:
    """The fix ``portside check`` offers for a retired image: the newest build of its
    line that is not retired (:func:`portside.policy.newest_not_retired`)."""
    ref = target.ref
    line = tags if tags is not None else await client.list_tags(ref.repository_ref())
    source = WatchSource(client, manifests)
    return await newest_not_retired(source, ref, target.policy, lifecycle.utc_now(), tags=line)
