"""The editor notifier: changes go to an inbox file in the user's state directory, which
every running Portside language server follows (``lsp_server/watch.py``). The server
shows a message naming the image and the Dockerfile lines of its workspace that use it,
with an "Update" action that applies the core's fix.

An inbox file rather than a socket: the watcher and the editors start and stop
independently, and neither waits for the other. Each server reads what was added
while it runs. The file only grows; delete it to start afresh (servers notice).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from portside.notify.base import Notification, Notifier, NotifySettings
from portside.notify.jsonl import JsonLinesNotifier
from portside.plugins import hookimpl

if TYPE_CHECKING:
    from pathlib import Path

log = logging.getLogger(__name__)


def inbox_path() -> Path:
    from portside.statedir import default_state_dir  # pathlib: not on every start

    return default_state_dir() / "editor-inbox.jsonl"


class EditorNotifier(JsonLinesNotifier):
    def __init__(self, path: Path | None = None) -> None:
        super().__init__(path or inbox_path())
        self.name = "editor"


@hookimpl
def portside_notifiers(settings: NotifySettings) -> list[Notifier]:
    return [EditorNotifier()] if settings.editor else []


class Inbox:
    """What the editor notifier added to the inbox since this reader started: a reader
    sees only the notices written while it runs, each once."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or inbox_path()
        try:
            self.offset = self.path.stat().st_size
        except OSError:
            self.offset = 0

    def new_notifications(self) -> list[Notification]:
        """The notices written since the last call; a line still being written waits
        for the next call, and one that is not a notice is skipped with a log line."""
        try:
            size = self.path.stat().st_size
        except OSError:
            return []
        if size < self.offset:
            self.offset = 0  # the inbox was rotated
        if size == self.offset:
            return []
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read(size - self.offset)
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        notes = []
        for line in complete.splitlines():
            try:
                notes.append(Notification.from_json(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                log.warning("watch inbox: a line that is not a notification was skipped")
        return notes
