"""What a notification is, what a notifier does, and how notifiers are configured.

A :class:`Notification` carries everything a person needs to act: what changed (kind,
image, old and new digest or tag), where it is used (Dockerfile lines) and what updates
it (a command, or the editor's "Update" action). Notifiers are plugins
(``portside_notifiers`` in ``portside/hookspecs.py``); the built-ins are registered the
same way.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from portside.errors import ConfigError, PortsideError

if TYPE_CHECKING:
    from pathlib import Path

KINDS = (
    "rebuilt",
    "newer",
    "variant-update",
    "removed",
    "published",
    "end-of-life",  # its publisher retired a watched image (a lifecycle artifact appeared)
    "vulnerable",  # a report attached to a watched image names new vulnerabilities
    "retired",  # `portside retire` marked an image end-of-life
    "pulled-back",  # `portside pull-back` retired an image and moved its tags back
)


class NotifyError(PortsideError):
    """A notifier could not deliver (after its own retries); the message says why."""


@dataclass(frozen=True)
class Use:
    """One line of one Dockerfile (or compose file) that uses the changed image."""

    file: str
    line: int  # 1-based
    text: str  # the image as written there

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "text": self.text}


@dataclass(frozen=True)
class Notification:
    """One change, as every notifier receives it.

    ``id`` is stable across retries and restarts: it is the idempotency key that
    webhooks carry (``X-Portside-Delivery``) and the JSON lines notifier checks.
    """

    id: str
    kind: str  # one of KINDS
    image: str  # registry/repository:tag as watched (published: as pushed)
    platform: str | None = None
    old: str | None = None  # digest (rebuilt), tag (newer/variant-update), or None
    new: str | None = None
    level: str | None = None  # newer: major / minor / patch
    uses: tuple[Use, ...] = ()
    action: str = ""  # the command (or editor action) that updates the uses
    detail: str | None = None  # end-of-life: when and why; vulnerable: the worst ones
    at: float = field(default_factory=time.time)

    @property
    def summary(self) -> str:
        """One line: what changed."""
        what = {
            "rebuilt": f"{self.image} was rebuilt"
            + (f" for {self.platform}" if self.platform else "")
            + (f": {_short(self.old)} -> {_short(self.new)}" if self.old and self.new else ""),
            "newer": f"{self.image}: a newer version {self.new} is available"
            + (f" ({self.level} update)" if self.level else ""),
            "variant-update": f"{self.image}: the same version on a newer variant, {self.new}",
            "removed": f"{self.image} was removed from its registry",
            "published": f"{self.image} was published" + (f" at {self.new}" if self.new else ""),
            "end-of-life": f"{self.image} {self.detail or 'is end of life'}",
            "vulnerable": f"{self.image} has {self.detail or 'known vulnerabilities'}",
            "retired": f"{self.image} was retired" + (f": {self.detail}" if self.detail else ""),
            "pulled-back": f"{self.image} was pulled back"
            + (f" ({_short(self.old)})" if self.old else "")
            + (f": {self.detail}" if self.detail else ""),
        }
        return what.get(self.kind, f"{self.image}: {self.kind}")

    @property
    def where(self) -> str:
        """The Dockerfile lines it concerns, ``file:line`` joined."""
        return ", ".join(f"{u.file}:{u.line}" for u in self.uses)

    def details(self) -> list[str]:
        """What goes under the summary: where it is used, and what to do."""
        parts = []
        if self.uses:
            parts.append(f"used in {self.where}")
        if self.action:
            parts.append(f"update: {self.action}")
        return parts

    def text(self) -> str:
        """The human form: what changed, where, and what to do."""
        return "; ".join([self.summary, *self.details()])

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "image": self.image,
            "platform": self.platform,
            "old": self.old,
            "new": self.new,
            "level": self.level,
            "uses": [u.to_json() for u in self.uses],
            "action": self.action,
            "detail": self.detail,
            "message": self.text(),
            "at": self.at,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Notification:
        return cls(
            id=str(data["id"]),
            kind=str(data["kind"]),
            image=str(data["image"]),
            platform=data.get("platform"),
            old=data.get("old"),
            new=data.get("new"),
            level=data.get("level"),
            uses=tuple(
                Use(str(u["file"]), int(u["line"]), str(u["text"])) for u in data.get("uses", ())
            ),
            action=str(data.get("action") or ""),
            detail=data.get("detail"),
            at=float(data.get("at") or time.time()),
        )


def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12] if ":" in digest else digest


class Notifier(abc.ABC):
    """Delivers notifications somewhere. ``name`` is unique among configured notifiers.

    ``idempotent``: the notifier can be given the same notification again without the
    person hearing twice (it carries ``Notification.id`` to a receiver that drops
    repeats, or checks its own output for it). After a crash between sending and
    recording, only idempotent notifiers are asked again; the others are recorded as
    ``uncertain`` rather than risk a second message.
    """

    name: str = ""
    idempotent: bool = False

    @abc.abstractmethod
    async def send(self, notification: Notification) -> None:
        """Deliver, or raise :class:`NotifyError` saying what failed."""


@dataclass(frozen=True)
class WebhookSettings:
    url: str
    secret: str | None = None  # HMAC-SHA256 key; from secret-env, never from the file
    timeout: float = 10.0
    attempts: int = 4


@dataclass(frozen=True)
class NotifySettings:
    """``[tool.portside.notify]`` plus command-line additions.

    Example::

        [tool.portside.notify]
        console = true
        jsonl = "notifications.jsonl"
        webhooks = [{ url = "https://hooks.example/portside", secret-env = "HOOK_SECRET" }]
        apprise = ["mailto://user@example.com"]        # needs the 'apprise' extra
        desktop = true                                 # notify-send, when available
        editor = true                                  # open language servers
    """

    console: bool = True
    jsonl: Path | None = None
    webhooks: tuple[WebhookSettings, ...] = ()
    apprise: tuple[str, ...] = ()
    desktop: bool = False
    editor: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys third-party plugins own


_KNOWN = {"console", "jsonl", "webhooks", "apprise", "desktop", "editor"}


def parse_notify(table: Mapping[str, Any], *, source: str, base: Path) -> NotifySettings:
    """Validate a ``[tool.portside.notify]`` table; paths are relative to ``base``."""
    import os

    def flag(key: str, default: bool) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: [tool.portside.notify] {key} must be true or false")
        return value

    jsonl = table.get("jsonl")
    if jsonl is not None and not isinstance(jsonl, str):
        raise ConfigError(f"{source}: [tool.portside.notify] jsonl must be a file path")
    hooks: list[WebhookSettings] = []
    raw_hooks = table.get("webhooks", [])
    if not isinstance(raw_hooks, list):
        raise ConfigError(f"{source}: [tool.portside.notify] webhooks must be a list of tables")
    for i, entry in enumerate(raw_hooks):
        where = f"{source}: [tool.portside.notify] webhooks[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            raise ConfigError(f"{where} needs a url")
        unknown = set(entry) - {"url", "secret-env", "timeout", "attempts"}
        if unknown:
            raise ConfigError(f"{where}: unknown setting {sorted(unknown)[0]!r}")
        secret = None
        if "secret-env" in entry:
            name = str(entry["secret-env"])
            secret = os.environ.get(name)
            if not secret:
                raise ConfigError(
                    f"{where}: the environment variable {name} (secret-env) is not set",
                    hint="set it to the shared signing secret, or remove secret-env",
                )
        hooks.append(
            WebhookSettings(
                url=entry["url"],
                secret=secret,
                timeout=float(entry.get("timeout", 10.0)),
                attempts=int(entry.get("attempts", 4)),
            )
        )
    apprise = table.get("apprise", [])
    if isinstance(apprise, str):
        apprise = [apprise]
    if not isinstance(apprise, list) or not all(isinstance(a, str) for a in apprise):
        raise ConfigError(f"{source}: [tool.portside.notify] apprise must be a list of URLs")
    extra = {k: v for k, v in table.items() if k not in _KNOWN}
    return NotifySettings(
        console=flag("console", True),
        jsonl=(base / jsonl) if jsonl else None,
        webhooks=tuple(hooks),
        apprise=tuple(apprise),
        desktop=flag("desktop", False),
        editor=flag("editor", False),
        extra=extra,
    )
