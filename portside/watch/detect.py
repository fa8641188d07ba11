"""What changed, decided against the stored state: ``rebuilt``, ``newer``,
``variant-update`` and ``removed``. Pure functions; the store calls them inside the
transaction that writes their result, so two watchers never both report one change.

``newer`` and ``variant-update`` are exactly what ``portside check`` reports as
``stale`` and ``variant-update``: the same functions of ``portside.policy`` decide.
The first observation of a target only records what it saw.
"""

from __future__ import annotations

import shlex
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace

from portside.notify.base import Notification
from portside.policy import stale_tag, variant_tag
from portside.watch.store import NewEvent, TargetState
from portside.watch.targets import Target


@dataclass(frozen=True)
class Observation:
    """What one HEAD (plus a manifest GET when the digest moved on an index) saw."""

    present: bool
    digest: str | None = None
    media_type: str | None = None
    platform_digest: str | None = None
    inherited: bool = False  # platform_digest taken from the state: the digest had not moved


def _files(target: Target) -> str:
    return " ".join(shlex.quote(f) for f in target.files)


def action_for(kind: str, target: Target, new: str | None, level: str | None) -> str:
    """The command (or editor action) that updates the lines using ``target``."""
    files = _files(target)
    image = target.ref.familiar
    if kind == "rebuilt":
        if files:
            return f"rebuild to pick it up; `portside pin {files}` pins the new digest"
        return f"rebuild what is built on {image}"
    if kind == "newer":
        if files:
            update = level or "major"
            return f"`portside pin --update {update} {files}` (or the editor's Update action)"
        return f"use {target.ref.familiar_name}:{new}"
    if kind == "variant-update":
        where = f" in {files}" if files else ""
        return f"change the tag to {new}{where} (the editor's Update action does it)"
    if kind == "removed":
        return f"choose another tag: `portside latest {image}`"
    return ""


def notification(
    kind: str,
    target: Target,
    *,
    old: str | None = None,
    new: str | None = None,
    level: str | None = None,
) -> Notification:
    return Notification(
        id=uuid.uuid4().hex,
        kind=kind,
        image=f"{target.ref.name}:{target.ref.tag}",
        platform=target.platform if kind == "rebuilt" else None,
        old=old,
        new=new,
        level=level,
        uses=tuple(target.uses),
        action=action_for(kind, target, new, level),
    )


def event(note: Notification, target: Target) -> NewEvent:
    return NewEvent(note.id, note.kind, target.key, target.repository, note.to_json())


def after_head(
    target: Target, stored: TargetState, observed: Observation
) -> tuple[TargetState, list[NewEvent]]:
    """The state after a HEAD check and the events it causes."""
    first = stored.last_checked is None
    if not observed.present:
        if stored.present and not first:
            note = notification("removed", target, old=stored.digest)
            return replace(stored, present=False), [event(note, target)]
        return replace(
            stored, present=False, last_checked=0.0 if first else stored.last_checked
        ), []
    if observed.inherited and stored.digest != observed.digest:
        return stored, []  # another watcher saw a newer digest meanwhile: it decides
    events: list[NewEvent] = []
    if (
        not first
        and stored.present
        and stored.platform_digest is not None
        and observed.platform_digest is not None
        and observed.platform_digest != stored.platform_digest
    ):
        note = notification(
            "rebuilt", target, old=stored.platform_digest, new=observed.platform_digest
        )
        events.append(event(note, target))
    after = replace(
        stored,
        digest=observed.digest,
        media_type=observed.media_type,
        platform_digest=observed.platform_digest,
        present=True,
        last_checked=stored.last_checked or 0.0,
    )
    return after, events


def after_tags(
    target: Target, stored: TargetState, tags: Sequence[str]
) -> tuple[TargetState, list[NewEvent]]:
    """The state after reading the repository's tags: newer versions and variants."""
    policy = target.policy
    newer = None if policy.ignores("stale") else stale_tag(target.ref, tags, policy)
    variant = None if policy.ignores("variant-update") else variant_tag(target.ref, tags, policy)
    newer_tag = newer[0] if newer else None
    after = replace(stored, newer_tag=newer_tag, variant_tag=variant, tags_seen=True)
    if not stored.tags_seen or target.ref.tag not in tags:
        return after, []  # first look, or the tag is gone: `removed` says so
    events: list[NewEvent] = []
    if newer is not None and newer_tag != stored.newer_tag:
        note = notification("newer", target, old=target.ref.tag, new=newer[0], level=newer[1])
        events.append(event(note, target))
    if variant is not None and variant != stored.variant_tag:
        note = notification("variant-update", target, old=target.ref.tag, new=variant)
        events.append(event(note, target))
    return after, events
