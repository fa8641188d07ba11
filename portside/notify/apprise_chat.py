"""Chat and e-mail through ``apprise`` (the ``apprise`` extra): Slack, Teams, Matrix,
Discord, mailto:// and the rest of its URL schemes. Configured URLs without apprise
installed are a configuration error, said once, not a silent drop."""

from __future__ import annotations

from typing import Any

from portside.errors import ConfigError
from portside.notify.base import Notification, Notifier, NotifyError, NotifySettings
from portside.plugins import hookimpl


class AppriseNotifier(Notifier):
    name = "apprise"
    idempotent = False  # a chat message cannot be recalled: never resent after a crash

    def __init__(self, urls: tuple[str, ...], apprise: Any) -> None:
        self._apprise: Any = apprise.Apprise()
        for url in urls:
            if not self._apprise.add(url):
                raise ConfigError(
                    f"apprise does not understand the notification URL #{urls.index(url) + 1}"
                )

    async def send(self, notification: Notification) -> None:
        # Imported here: every built-in plugin module is registered in every process that
        # builds the plugin manager (a warm credentialed answer included).
        import asyncio

        ok = await asyncio.to_thread(
            self._apprise.notify,
            title=f"portside: {notification.summary}",
            body=notification.text(),
        )
        if not ok:
            raise NotifyError("apprise could not deliver to every configured URL")


@hookimpl
def portside_notifiers(settings: NotifySettings) -> list[Notifier]:
    if not settings.apprise:
        return []
    try:
        import apprise  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise ConfigError(
            "[tool.portside.notify] apprise URLs are set but apprise is not installed",
            hint="pip install 'portside[apprise]'",
        ) from None
    return [AppriseNotifier(settings.apprise, apprise)]
