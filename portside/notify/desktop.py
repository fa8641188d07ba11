"""Desktop notifications through ``notify-send`` (freedesktop), when it is installed
and a session bus is there; otherwise this notifier is simply not offered."""

from __future__ import annotations

import os

from portside.notify.base import Notification, Notifier, NotifyError, NotifySettings
from portside.plugins import hookimpl


class DesktopNotifier(Notifier):
    name = "desktop"
    idempotent = False

    def __init__(self, binary: str) -> None:
        self.binary = binary

    async def send(self, notification: Notification) -> None:
        # Imported here: every built-in plugin module is registered in every process that
        # builds the plugin manager (a warm credentialed answer included).
        import asyncio

        # The summary is the title; under it, one line each for where and what to do.
        body = "\n".join(notification.details()) or notification.summary
        proc = await asyncio.create_subprocess_exec(
            self.binary,
            "--app-name=portside",
            "--",
            f"portside: {notification.summary}",
            body,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(), timeout=10)
        except asyncio.TimeoutError:
            proc.kill()
            raise NotifyError("notify-send did not finish within 10 s") from None
        if proc.returncode != 0:
            raise NotifyError(f"notify-send failed: {err.decode(errors='replace').strip()[:200]}")


def available() -> str | None:
    """The notify-send binary when a desktop session can show it, else None."""
    import shutil

    binary = shutil.which("notify-send")
    if binary is None or not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return None
    return binary


@hookimpl
def portside_notifiers(settings: NotifySettings) -> list[Notifier]:
    binary = available() if settings.desktop else None
    return [DesktopNotifier(binary)] if binary else []
