"""A publish tells the same notifiers the watcher uses, so consumers of an image hear of
a new release when it is pushed (``portside publish``, the hatch and setuptools hooks:
every surface publishes through ``portside.publish.run_publish``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from portside.config import load_table
from portside.notify import notifiers_for, notify_now
from portside.notify.base import Notification, Notifier


class Destination(Protocol):
    """What a publish report says of one destination (``publish.DestinationReport``)."""

    repository: str
    tags_set: list[str]
    digest: str | None


def project_notifiers(project_dir: Path) -> list[Notifier]:
    """The notifiers ``[tool.portside.notify]`` of the project configures, never the
    console (a command's standard output is its report); none without the table."""
    from dataclasses import replace

    from portside.notify import load_notify_settings

    found = load_table(project_dir)
    if found is None or "notify" not in found[0]:
        return []
    return notifiers_for(replace(load_notify_settings(project_dir), console=False))


async def notify_published(project_dir: Path, destinations: Iterable[Destination]) -> list[str]:
    """One ``published`` notification per destination; the delivery failures.

    Only when the project configures ``[tool.portside.notify]``, and never on the
    console: a publish's standard output is its report.
    """
    notifiers = project_notifiers(project_dir)
    if not notifiers:
        return []
    failures: list[str] = []
    for destination in destinations:
        if not destination.tags_set or destination.digest is None:
            continue
        image = f"{destination.repository}:{destination.tags_set[0]}"
        note = Notification(
            id=uuid.uuid4().hex,
            kind="published",
            image=image,
            new=destination.digest,
            action=(
                f"tags {', '.join(destination.tags_set)}; consumers: "
                f"FROM {image}@{destination.digest}, or `portside pin --update minor`"
            ),
        )
        failures.extend(await notify_now(note, notifiers))
    return failures
