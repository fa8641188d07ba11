"""``portside retire`` and ``portside pull-back`` tell the notifiers a publish tells
(``[tool.portside.notify]`` of the project in the current directory:
:func:`portside.notify.published.project_notifiers`), so that consumers
of an image hear that it was retired or pulled back, and where its tags went."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from portside.lifecycle import PullBackPlan, Retirement
from portside.notify import notify_now
from portside.notify.base import Notification, Notifier
from portside.reference import Reference

_CONSUMERS = (
    "consumers: `portside check` offers the newest build of the line that is not retired; "
    "`portside pin --update` moves pinned Dockerfiles to it"
)


def retired_notification(
    ref: Reference, done: Sequence[Retirement], *, date: str, reason: str | None
) -> Notification:
    subject = str(done[0].subject) if done else None
    return Notification(
        id=uuid.uuid4().hex,
        kind="retired",
        image=f"{ref.name}:{ref.tag}" if ref.tag else ref.name,
        old=subject,
        new=date,
        detail=f"end of life {date}" + (f", {reason}" if reason else ""),
        action=_CONSUMERS,
    )


def pulled_back_notification(plan: PullBackPlan, *, reason: str) -> Notification:
    moves = "; ".join(
        f"{m.tag} removed" if m.to is None else f"{m.tag} back to {m.to_tag} ({m.to})"
        for m in plan.moves
    )
    return Notification(
        id=uuid.uuid4().hex,
        kind="pulled-back",
        image=f"{plan.repository.name}@{plan.digest}",
        old=str(plan.digest),
        detail=f"{reason}; tags: {moves}",
        action=_CONSUMERS,
    )


async def notify_retired(
    notifiers: Sequence[Notifier],
    ref: Reference,
    done: Sequence[Retirement],
    *,
    date: str,
    reason: str | None,
) -> list[str]:
    """A ``retired`` notification to these notifiers (:func:`project_notifiers`, read
    before the registry changes, so a bad configuration stops first); the failures."""
    if not notifiers or not done:
        return []
    return await notify_now(retired_notification(ref, done, date=date, reason=reason), notifiers)


async def notify_pulled_back(
    notifiers: Sequence[Notifier], plan: PullBackPlan, *, reason: str
) -> list[str]:
    """A ``pulled-back`` notification naming the image, the digest and each tag's move."""
    if not notifiers:
        return []
    return await notify_now(pulled_back_notification(plan, reason=reason), notifiers)
