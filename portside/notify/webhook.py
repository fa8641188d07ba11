"""Webhooks: a JSON POST per notification, signed, retried with backoff, bounded in time.

Headers: ``X-Portside-Delivery`` (the notification id: receivers drop repeats, which a
crash between sending and recording can cause), ``X-Portside-Event`` (the kind) and,
with a secret, ``X-Portside-Signature: sha256=<hex HMAC-SHA256 of the exact body>``
(GitHub's form). 2xx is success; 4xx other than 408/429 is final; anything else is
retried.
"""

from __future__ import annotations

from portside.notify.base import (
    Notification,
    Notifier,
    NotifyError,
    NotifySettings,
    WebhookSettings,
)
from portside.plugins import hookimpl

SIGNATURE_HEADER = "X-Portside-Signature"
DELIVERY_HEADER = "X-Portside-Delivery"
EVENT_HEADER = "X-Portside-Event"


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``."""
    import hashlib
    import hmac

    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookNotifier(Notifier):
    idempotent = True  # the delivery id lets the receiver drop a repeat

    def __init__(self, settings: WebhookSettings, *, backoff: float = 0.5) -> None:
        from portside.redact import redact_url  # urllib and hmac: only for a webhook set up

        self.settings = settings
        self.backoff = backoff
        self.shown = redact_url(settings.url)
        self.name = f"webhook:{self.shown}"

    async def send(self, notification: Notification) -> None:
        # Imported here: every built-in plugin module is registered in every process that
        # builds the plugin manager (a warm credentialed answer included).
        import asyncio
        import json
        import random

        import httpx  # here, not at import: the plugin manager loads this module early

        body = json.dumps(notification.to_json(), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "portside-watch",
            DELIVERY_HEADER: notification.id,
            EVENT_HEADER: notification.kind,
        }
        if self.settings.secret:
            headers[SIGNATURE_HEADER] = sign(self.settings.secret, body)
        problem = ""
        attempts = max(1, self.settings.attempts)
        timeout = httpx.Timeout(self.settings.timeout)
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            for attempt in range(1, attempts + 1):
                try:
                    response = await client.post(self.settings.url, content=body, headers=headers)
                except httpx.TimeoutException:
                    problem = f"no answer within {self.settings.timeout:g} s"
                except httpx.HTTPError as exc:
                    problem = f"cannot connect ({type(exc).__name__})"
                else:
                    if 200 <= response.status_code < 300:
                        return
                    problem = f"answered HTTP {response.status_code}"
                    if 400 <= response.status_code < 500 and response.status_code not in (
                        408,
                        429,
                    ):
                        break  # the receiver refuses this payload; asking again will not help
                if attempt < attempts:
                    ceiling = self.backoff * (2 ** (attempt - 1))
                    await asyncio.sleep(random.uniform(ceiling / 2, ceiling))  # noqa: S311
        raise NotifyError(f"webhook {self.shown} {problem} (after {attempt} attempt(s))")


@hookimpl
def portside_notifiers(settings: NotifySettings) -> list[Notifier]:
    return [WebhookNotifier(hook) for hook in settings.webhooks]
