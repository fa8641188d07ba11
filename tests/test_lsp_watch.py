"""The watcher's notice in the editor: pytest-lsp drives the real server over stdio; a
``portside watch --editor`` round that finds a newer version makes the server ask the
user (window/showMessageRequest) and, on "Update", apply the core's fix
(workspace/applyEdit)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import test_lsp_server
from lsprotocol import types as lsp

from harness import data, seed
from harness.cli import run_portside
from harness.registry import Registry
from portside.dockerfile import Position, Range
from portside.policy import Edit, apply_edits

start = test_lsp_server.start  # the same fixtures: a real server per session
started = test_lsp_server.started


async def test_changes_become_messages_whose_update_applies_the_core_fix(
    started: Any, plain_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = data.load_history("python-since-2025-06")
    before = seed.replay_history(plain_registry, "library/python", rows, until="2025-08-12")
    env = {
        "PORTSIDE_STATE_DIR": str(tmp_path / "state"),
        "PORTSIDE_INSECURE_REGISTRIES": plain_registry.host,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    session = await started(init={"debounceMs": 10})
    asked: list[lsp.ShowMessageRequestParams] = []

    @session.client.feature(lsp.WINDOW_SHOW_MESSAGE_REQUEST)
    def show(params: lsp.ShowMessageRequestParams) -> lsp.MessageActionItem:
        asked.append(params)
        return lsp.MessageActionItem(title="Update")

    host = plain_registry.host
    pinned = before.digest("3.13-slim-bookworm")
    text = (
        f"FROM {host}/library/python:3.12.11-slim\n"
        "RUN echo hello\n"
        f"FROM {host}/library/python:3.13.6-slim\n"
        f"FROM {host}/library/python:3.13-slim-bookworm@{pinned}\n"
    )
    session.open(text)
    watch = ("watch", "--once", "--editor", "--quiet", "--tags-every", "0", str(session.root))
    # In a thread: the client must keep answering the server meanwhile.
    first = await asyncio.to_thread(run_portside, *watch, cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr

    after = seed.replay_history(plain_registry, "library/python", rows, until="2025-10-08")
    second = await asyncio.to_thread(run_portside, *watch, cwd=tmp_path, env=env)
    assert second.returncode == 1, second.stderr

    deadline = time.monotonic() + 30
    while len(session.applied) < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert len(asked) == 4, [p.message for p in asked]

    def message(part: str) -> lsp.ShowMessageRequestParams:
        return next(p for p in asked if part in p.message)

    newer = message("newer version 3.14.0-slim")
    assert "Dockerfile:1" in newer.message
    assert [a.title for a in newer.actions or []] == ["Update", "Ignore"]
    removed = message("was removed")
    assert "Dockerfile:3" in removed.message and "portside latest" in removed.message
    assert [a.title for a in removed.actions or []] == ["Ignore"]  # nothing to edit
    rebuilt = message("was rebuilt")
    assert "3.13-slim-bookworm" in rebuilt.message and "Dockerfile:4" in rebuilt.message
    assert [a.title for a in rebuilt.actions or []] == ["Update", "Ignore"]  # the pin moves

    # Each Update applied the core's fix to the line it named (the client's text is
    # unchanged in between: each edit is against the original).
    results = set()
    for edit in session.applied:
        assert edit.changes is not None
        (changes,) = edit.changes.values()
        results.add(
            apply_edits(
                text,
                [
                    Edit(
                        Range(
                            Position(c.range.start.line, c.range.start.character),
                            Position(c.range.end.line, c.range.end.character),
                        ),
                        c.new_text,
                    )
                    for c in changes
                ],
            )
        )
    moved = after.digest("3.13-slim-bookworm")
    newest = after.digest("3.14-slim-bookworm")
    assert results == {
        text.replace("3.12.11-slim", "3.14.0-slim"),
        text.replace(pinned, moved),
        text.replace(f"3.13-slim-bookworm@{pinned}", f"3.14-slim-bookworm@{newest}"),
    }


async def test_a_retired_base_becomes_a_message_whose_update_moves_past_it(
    started: Any, plain_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_lifecycle import push_release

    push_release(plain_registry, "acme/base", {"b1": ["1.0.0"], "b2": ["1.1.0"]}, index=True)
    env = {
        "PORTSIDE_STATE_DIR": str(tmp_path / "state"),
        "PORTSIDE_INSECURE_REGISTRIES": plain_registry.host,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    session = await started(init={"debounceMs": 10})
    asked: list[lsp.ShowMessageRequestParams] = []

    @session.client.feature(lsp.WINDOW_SHOW_MESSAGE_REQUEST)
    def show(params: lsp.ShowMessageRequestParams) -> lsp.MessageActionItem:
        asked.append(params)
        return lsp.MessageActionItem(title="Update")

    text = f"FROM {plain_registry.host}/acme/base:1.0.0\nRUN true\n"
    session.open(text)
    watch = ("watch", "--once", "--editor", "--quiet", "--tags-every", "0", str(session.root))
    first = await asyncio.to_thread(run_portside, *watch, cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    retired = await asyncio.to_thread(
        run_portside,
        *("retire", f"{plain_registry.host}/acme/base:1.0.0", "--date", "2026-01-31"),
        cwd=tmp_path,
        env=env,
    )
    assert retired.returncode == 0, retired.stderr
    second = await asyncio.to_thread(run_portside, *watch, cwd=tmp_path, env=env)
    assert second.returncode == 1, second.stderr

    deadline = time.monotonic() + 30
    while not session.applied and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    (note,) = asked
    assert "end of life since 2026-01-31" in note.message and "Dockerfile:1" in note.message
    assert note.type == lsp.MessageType.Warning
    assert [a.title for a in note.actions or []] == ["Update", "Ignore"]
    (edit,) = session.applied
    assert edit.changes is not None
    ((change,),) = edit.changes.values()
    assert change.new_text.endswith("1.1.0") and change.range.start.line == 0
