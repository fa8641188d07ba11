"""JSON lines: one notification per line, appended to a file (a log for other tools).

Idempotent: before appending it looks for the notification's id among the lines
already written, so a resend after a crash leaves one line, not two.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from portside.notify.base import Notification, Notifier, NotifyError, NotifySettings
from portside.plugins import hookimpl

if TYPE_CHECKING:
    from pathlib import Path

# A resend only ever follows a crash mid-send: the line, if written, is near the end.
_TAIL = 1 << 20


class JsonLinesNotifier(Notifier):
    idempotent = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = f"jsonl:{path}"

    def _already_written(self, key: str) -> bool:
        try:
            with self.path.open("rb") as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                handle.seek(max(0, size - _TAIL))
                tail = handle.read()
        except FileNotFoundError:
            return False
        needle = json.dumps(key).encode()
        return any(needle in line for line in tail.splitlines() if b'"id"' in line)

    async def send(self, notification: Notification) -> None:
        line = json.dumps(notification.to_json(), sort_keys=True) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self._already_written(notification.id):
                return
            # One write of one line with O_APPEND: concurrent writers never interleave.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise NotifyError(f"cannot append to {self.path}: {exc.strerror or exc}") from None


@hookimpl
def portside_notifiers(settings: NotifySettings) -> list[Notifier]:
    return [JsonLinesNotifier(settings.jsonl)] if settings.jsonl else []
