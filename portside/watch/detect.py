"""What changed, decided against the stored state: ``rebuilt``, ``newer``,
``variant-update``, ``removed``, ``end-of-life`` and ``vulnerable``. Pure functions; the
store calls them inside the transaction that writes their result, so two watchers never
both report one change.

``newer`` and ``variant-update`` are exactly what ``portside check`` reports as
``stale`` and ``variant-update``: the same functions of ``portside.policy`` decide.
The first observation of a target only records what it saw.
"""

from __future__ import annotations

import datetime
import shlex
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace

from portside import lifecycle
from portside.notify.base import Notification
from portside.policy import stale_tag, variant_tag
from portside.reference import Digest
from portside.watch.attached import AttachedLook
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
    detail: str | None = None,
    action: str | None = None,
) -> Notification:
    return Notification(
        id=uuid.uuid4().hex,
        kind=kind,
        image=f"{target.ref.name}:{target.ref.tag}",
        platform=target.platform if kind in ("rebuilt", "end-of-life", "vulnerable") else None,
        old=old,
        new=new,
        level=level,
        uses=tuple(target.uses),
        action=action if action is not None else action_for(kind, target, new, level),
        detail=detail,
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


def _end_of_life_action(target: Target, fix: tuple[str, Digest | None] | None, passed: bool) -> str:
    files = _files(target)
    pin = f"`portside pin --update major {files}`" if files else "`portside pin --update major`"
    if fix is not None:
        tag, digest = fix
        where = f"{target.ref.familiar_name}:{tag}" + (f"@{digest}" if digest else "")
        return (
            f"move to {where}, the newest build of its line that is not retired "
            f"(`portside check` offers it; or {pin})"
        )
    if passed:
        return f"no build of its line is without an end of life; choose another image ({pin})"
    return f"move before then: {pin} (or the fix `portside check` offers)"


def after_attached(
    target: Target, stored: TargetState, seen: AttachedLook
) -> tuple[TargetState, list[NewEvent]]:
    """The state after a look at what is attached, and the events: an end of life that
    appeared or changed (``end-of-life``), vulnerabilities at or above the watched
    severity not seen before (``vulnerable``). The first look only records."""
    if (stored.digest, stored.platform_digest) != (seen.digest, seen.platform_digest):
        return stored, []  # the tag moved meanwhile: the next look is for the new digest
    after = replace(stored, attached=seen.referrers)
    if not seen.read:
        return after, []
    eol = seen.end_of_life
    now = lifecycle.utc_now()
    eol_text = lifecycle.format_date(eol.date) if eol is not None else None
    passed = eol is not None and eol.passed(now)
    after = replace(
        after, end_of_life=eol_text, end_of_life_passed=passed, vulnerable=seen.vulnerable
    )
    if stored.attached is None:
        return after, []
    events: list[NewEvent] = []
    if eol is not None and (
        eol_text != stored.end_of_life or (passed and not stored.end_of_life_passed)
    ):
        events.append(_end_of_life_event(target, eol, seen.fix, now))
    fresh = sorted(set(seen.vulnerable) - set(stored.vulnerable or ()))
    if fresh:
        count = len(seen.vulnerable)
        worst = "; ".join(v.describe() for v in seen.worst)
        files = _files(target)
        note = notification(
            "vulnerable",
            target,
            new=", ".join(fresh),
            level=seen.worst[0].severity if seen.worst else None,
            detail=f"{count} known vulnerabilit{'y' if count == 1 else 'ies'} at or above "
            f"{seen.severity} (new: {', '.join(fresh)}); the worst: {worst}",
            action="rebuild on a fixed build when there is one"
            + (f": `portside pin --update patch {files}`" if files else "")
            + "; `portside check` lists them",
        )
        events.append(event(note, target))
    return after, events


def _end_of_life_event(
    target: Target,
    eol: lifecycle.EndOfLife,
    fix: tuple[str, Digest | None] | None,
    now: datetime.datetime,
) -> NewEvent:
    passed = eol.passed(now)
    note = notification(
        "end-of-life",
        target,
        new=lifecycle.format_date(eol.date),
        level="passed" if passed else "coming",
        detail=eol.describe(now),
        action=_end_of_life_action(target, fix, passed),
    )
    return event(note, target)


def end_of_life_passing(stored: TargetState, now: datetime.datetime) -> bool:
    """Whether an end of life told as coming has passed since (no request needed)."""
    if stored.end_of_life is None or stored.end_of_life_passed or not stored.present:
        return False
    date = lifecycle.parse_date(stored.end_of_life)
    return date is not None and date <= now


def after_end_of_life_passed(
    target: Target, stored: TargetState, fix: tuple[str, Digest | None] | None
) -> tuple[TargetState, list[NewEvent]]:
    """An end of life told as coming whose date has now passed: told again, once."""
    now = lifecycle.utc_now()
    if not end_of_life_passing(stored, now) or stored.digest is None:
        return stored, []
    assert stored.end_of_life is not None
    date = lifecycle.parse_date(stored.end_of_life)
    assert date is not None
    eol = lifecycle.EndOfLife(date, Digest.parse(stored.digest), "the watch state")
    after = replace(stored, end_of_life_passed=True)
    return after, [_end_of_life_event(target, eol, fix, now)]
