"""Notifiers: console, JSON lines, webhook, chat/e-mail (apprise), desktop, editor.

Each is a plugin answering ``portside_notifiers`` (see ``portside/hookspecs.py``);
:func:`notifiers_for` asks every plugin, built-in or installed, which notifiers the
settings call for. :func:`notify_now` sends one notification to all of them (a publish
does this); the watcher instead goes through its outbox (``portside.watch.deliver``) so
that nothing is sent twice across restarts.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from portside.errors import ConfigError
from portside.notify.base import (
    KINDS,
    Notification,
    Notifier,
    NotifyError,
    NotifySettings,
    Use,
    WebhookSettings,
    parse_notify,
)

if TYPE_CHECKING:
    from pathlib import Path

    import pluggy

__all__ = [
    "KINDS",
    "Notification",
    "Notifier",
    "NotifyError",
    "NotifySettings",
    "Use",
    "WebhookSettings",
    "load_notify_settings",
    "notifiers_for",
    "notify_now",
    "parse_notify",
]


def notifiers_for(
    settings: NotifySettings, plugins: pluggy.PluginManager | None = None
) -> list[Notifier]:
    """Every notifier the settings ask for, from every plugin; names are unique."""
    from portside.plugins import get_plugin_manager

    pm = plugins or get_plugin_manager()
    found: list[Notifier] = []
    names: set[str] = set()
    for batch in pm.hook.portside_notifiers(settings=settings):
        for notifier in batch:
            if not isinstance(notifier, Notifier):
                raise ConfigError(
                    f"a notifier plugin returned {type(notifier).__name__}, not a Notifier"
                )
            if notifier.name in names:
                continue
            names.add(notifier.name)
            found.append(notifier)
    return found


def load_notify_settings(project_dir: Path) -> NotifySettings:
    """``[tool.portside.notify]`` of the nearest configuration (defaults when none)."""
    from pathlib import Path

    from portside.config import load_table

    found = load_table(project_dir)
    if found is None:
        return NotifySettings()
    table, source = found
    notify = table.get("notify", {})
    if not isinstance(notify, dict):
        raise ConfigError(f"{source}: [tool.portside.notify] must be a table")
    return parse_notify(notify, source=source, base=Path(source).parent)


async def notify_now(notification: Notification, notifiers: Sequence[Notifier]) -> list[str]:
    """Send to every notifier; one failing does not stop the others. The failures."""
    failures: list[str] = []
    for notifier in notifiers:
        try:
            await notifier.send(notification)
        except NotifyError as exc:
            failures.append(f"{notifier.name}: {exc.message}")
        except Exception as exc:  # a plugin's bug must not take down the caller
            failures.append(f"{notifier.name}: failed ({type(exc).__name__})")
    if failures:
        # Imported here: this package loads with its notifier plugins in every process
        # that builds the plugin manager (a warm credentialed answer included).
        import logging

        log = logging.getLogger("portside.notify")
        for failure in failures:
            log.warning("notification not delivered: %s", failure)
            sys.stderr.write(f"portside: warning: notification not delivered: {failure}\n")
    return failures
