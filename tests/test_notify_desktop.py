"""The desktop notifier, for real: Debian's ``notify-send`` on a private D-Bus session
bus (``dbus-daemon``), where a test-side server owns ``org.freedesktop.Notifications``
and records what the desktop would show. Nothing here fakes ``notify-send``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import seed
from harness.cli import run_portside
from harness.desktop import NotificationServer, SessionBus, available
from harness.registry import Registry
from portside.notify import Notification, NotifyError, NotifySettings, Use, notifiers_for


@pytest.fixture
def bus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SessionBus]:
    """A session bus of this test's own, as a desktop session's programs see it."""
    missing = available()
    if missing is not None:
        pytest.fail(missing)  # not a skip: scripts/test installs them
    with SessionBus(tmp_path / "dbus") as started:
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", started.address)
        yield started


def note() -> Notification:
    return Notification(
        id="n1",
        kind="newer",
        image="docker.io/library/python:3.12.11-slim",
        old="3.12.11-slim",
        new="3.14.0-slim",
        level="minor",
        uses=(Use("Dockerfile", 3, "python:3.12.11-slim"), Use("ci/Dockerfile", 1, "python")),
        action="`portside pin --update minor Dockerfile ci/Dockerfile`",
    )


def desktop(settings: NotifySettings) -> list[str]:
    return [n.name for n in notifiers_for(settings) if n.name == "desktop"]


async def test_the_desktop_shows_what_changed_where_and_the_update_command(
    bus: SessionBus,
) -> None:
    (notifier,) = [n for n in notifiers_for(NotifySettings(desktop=True)) if n.name == "desktop"]
    with NotificationServer(bus) as server:
        await notifier.send(note())
        (shown,) = server.wait_for(1)
    assert shown.app_name == "portside"
    assert shown.summary == (
        "portside: docker.io/library/python:3.12.11-slim: a newer version 3.14.0-slim "
        "is available (minor update)"
    )
    assert shown.body.splitlines() == [
        "used in Dockerfile:3, ci/Dockerfile:1",
        "update: `portside pin --update minor Dockerfile ci/Dockerfile`",
    ]


async def test_a_desktop_that_does_not_answer_is_a_clear_failure(bus: SessionBus) -> None:
    """No notification server on the bus: notify-send fails, and the notifier says why
    (the watcher records it and tries again next round)."""
    (notifier,) = [n for n in notifiers_for(NotifySettings(desktop=True)) if n.name == "desktop"]
    with pytest.raises(NotifyError) as caught:
        await notifier.send(note())
    assert caught.value.message.startswith("notify-send failed: ")
    assert "org.freedesktop.Notifications" in caught.value.message


def test_the_desktop_notifier_is_offered_only_with_a_session_bus_and_when_asked(
    bus: SessionBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert desktop(NotifySettings(desktop=True)) == ["desktop"]
    assert desktop(NotifySettings(desktop=False)) == []
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS")
    assert desktop(NotifySettings(desktop=True)) == []  # a server, CI: nobody to show it to


def test_watch_puts_a_rebuilt_base_image_on_the_desktop(
    plain_registry: Registry, bus: SessionBus, tmp_path: Path
) -> None:
    """``portside watch --once`` with ``desktop = true``: the first run records, a
    rebuild of the base image becomes one desktop notification naming the Dockerfile
    line and the command, recorded as sent."""
    repo = "desktop/base"
    seed.push_image(plain_registry, repo, seed.build_index("d1", ["amd64", "arm64v8"]), ["1.0"])
    project = tmp_path / "project"
    project.mkdir()
    (project / "Dockerfile").write_text(
        f"# syntax=docker/dockerfile:1\nFROM {plain_registry.host}/{repo}:1.0\nRUN true\n"
    )
    (project / "pyproject.toml").write_text(
        "[tool.portside.notify]\nconsole = false\ndesktop = true\n"
    )
    state = str(tmp_path / "state.sqlite3")
    env = {"PORTSIDE_INSECURE_REGISTRIES": plain_registry.host}

    def watch() -> tuple[int, dict[str, Any]]:
        result = run_portside("watch", "--once", "--json", "--state", state, cwd=project, env=env)
        assert result.returncode in (0, 1), result.stderr
        return result.returncode, json.loads(result.stdout)

    with NotificationServer(bus) as server:
        assert watch()[0] == 0  # the first run records
        rebuilt = seed.push_image(
            plain_registry, repo, seed.build_index("d2", ["amd64", "arm64v8"]), ["1.0"]
        )
        code, report = watch()
        assert code == 1
        assert [c["kind"] for c in report["changes"]] == ["rebuilt"]
        (shown,) = server.wait_for(1)
        assert watch()[0] == 0  # nothing new: nothing shown again
        assert len(server.shown) == 1

    new = rebuilt.platform_digests["linux/amd64"].split(":", 1)[1][:12]
    assert shown.app_name == "portside"
    assert shown.summary.startswith(f"portside: {plain_registry.host}/{repo}:1.0 was rebuilt")
    assert "for linux/amd64" in shown.summary and new in shown.summary
    lines = shown.body.splitlines()
    assert lines[0] == "used in Dockerfile:2"  # the FROM line
    assert lines[1].startswith("update: rebuild to pick it up; `portside pin ")
    history = run_portside(
        "watch",
        "--history",
        f"{plain_registry.host}/{repo}:1.0",
        "--json",
        "--state",
        state,
        cwd=project,
    )
    rows = json.loads(history.stdout)
    assert [(r["kind"], r["deliveries"]) for r in rows] == [("rebuilt", {"desktop": "sent"})]
