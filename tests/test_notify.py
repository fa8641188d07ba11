"""Notifier plugins and their settings: third-party notifiers sit beside the built-ins,
bad settings are one clear error, and a failing plugin does not stop the others."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from portside.errors import ConfigError
from portside.notify import (
    Notification,
    Notifier,
    NotifyError,
    NotifySettings,
    Use,
    notifiers_for,
    notify_now,
    parse_notify,
)
from portside.plugins import create_plugin_manager, hookimpl


def note() -> Notification:
    return Notification(
        id="n1",
        kind="newer",
        image="docker.io/library/python:3.12.11-slim",
        old="3.12.11-slim",
        new="3.14.0-slim",
        level="minor",
        uses=(Use("Dockerfile", 3, "python:3.12.11-slim"),),
        action="`portside pin --update minor Dockerfile`",
    )


def test_every_notification_says_what_where_and_how() -> None:
    one = note()
    text = one.text()
    assert "a newer version 3.14.0-slim is available (minor update)" in text
    assert "used in Dockerfile:3" in text
    assert "portside pin --update minor Dockerfile" in text
    assert Notification.from_json(json.loads(json.dumps(one.to_json()))) == one


async def test_a_third_party_notifier_sits_beside_the_built_ins(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    got: list[str] = []

    class Collect(Notifier):
        name = "collect"

        async def send(self, notification: Notification) -> None:
            got.append(notification.id)

    class Broken(Notifier):
        name = "broken"

        async def send(self, notification: Notification) -> None:
            raise RuntimeError("boom")

    plugin = types.ModuleType("thirdparty")

    @hookimpl
    def portside_notifiers(settings: NotifySettings) -> list[Notifier]:
        return [Broken(), Collect()] if settings.extra.get("collect") else []

    plugin.portside_notifiers = portside_notifiers  # type: ignore[attr-defined]
    pm = create_plugin_manager(load_entrypoints=False)
    pm.register(plugin, name="thirdparty")
    settings = parse_notify(
        {"jsonl": "out.jsonl", "collect": True}, source="pyproject.toml", base=tmp_path
    )
    notifiers = notifiers_for(settings, pm)
    names = [n.name for n in notifiers]
    assert {"console", f"jsonl:{tmp_path / 'out.jsonl'}", "collect", "broken"} <= set(names)
    failures = await notify_now(note(), notifiers)
    assert failures == ["broken: failed (RuntimeError)"]  # named; the others still ran
    assert got == ["n1"]
    assert json.loads((tmp_path / "out.jsonl").read_text())["id"] == "n1"
    assert "newer: " in capsys.readouterr().out


def test_bad_settings_are_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_SECRET", raising=False)
    with pytest.raises(ConfigError, match=r"NOPE_SECRET .* is not set"):
        parse_notify(
            {"webhooks": [{"url": "http://x", "secret-env": "NOPE_SECRET"}]},
            source="p.toml",
            base=tmp_path,
        )
    with pytest.raises(ConfigError, match="unknown setting 'secret'"):
        parse_notify({"webhooks": [{"url": "http://x", "secret": "s"}]}, source="p", base=tmp_path)
    with pytest.raises(ConfigError, match="console must be true or false"):
        parse_notify({"console": "yes"}, source="p", base=tmp_path)


def test_apprise_urls_without_apprise_say_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "apprise", None)  # as if not installed
    settings = parse_notify({"apprise": ["mailto://me@example.com"]}, source="p", base=tmp_path)
    with pytest.raises(ConfigError) as caught:
        notifiers_for(settings, create_plugin_manager(load_entrypoints=False))
    assert caught.value.hint == "pip install 'portside[apprise]'"


async def test_a_notifier_error_is_its_message(tmp_path: Path) -> None:
    from portside.notify.base import WebhookSettings
    from portside.notify.webhook import WebhookNotifier

    hook = WebhookNotifier(
        WebhookSettings("http://127.0.0.1:9/x", attempts=2, timeout=1), backoff=0.01
    )
    with pytest.raises(
        NotifyError, match=r"webhook http://127.0.0.1:9/x cannot connect .*2 attempt"
    ):
        await hook.send(note())
