"""The console notifier: one line per change on standard output."""

from __future__ import annotations

import sys

from portside.notify.base import Notification, Notifier, NotifySettings
from portside.plugins import hookimpl


class ConsoleNotifier(Notifier):
    name = "console"
    idempotent = False  # a line already printed cannot be taken back; never printed twice

    async def send(self, notification: Notification) -> None:
        sys.stdout.write(f"{notification.kind}: {notification.text()}\n")
        sys.stdout.flush()


@hookimpl
def portside_notifiers(settings: NotifySettings) -> list[Notifier]:
    return [ConsoleNotifier()] if settings.console else []
