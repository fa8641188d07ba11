"""The editor notifier: changes go to an inbox file in the user's state directory, which
every running Portside language server follows (``lsp_server/watch.py``). The server
shows a message naming the image and the Dockerfile lines of its workspace that use it,
with an "Update" action that applies the core's fix.

An inbox file rather than a socket: the watcher and the editors start and stop
independently, and neither waits for the other. Each server reads what was added
while it runs. The file only grows; delete it to start afresh (servers notice).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from portside.notify.base import Notifier, NotifySettings
from portside.notify.jsonl import JsonLinesNotifier
from portside.plugins import hookimpl

if TYPE_CHECKING:
    from pathlib import Path


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
