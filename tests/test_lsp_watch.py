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
        assert edit.document_changes is not None
        (change,) = edit.document_changes
        assert isinstance(change, lsp.TextDocumentEdit)
        # Versioned: an editor refuses the edit if the document changed meanwhile.
        assert change.text_document.version == 1
        changes = change.edits
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
    assert edit.document_changes is not None
    (doc_edit,) = edit.document_changes
    assert isinstance(doc_edit, lsp.TextDocumentEdit)
    (change,) = doc_edit.edits
    assert isinstance(change, lsp.TextEdit)
    assert change.new_text.endswith("1.1.0") and change.range.start.line == 0


async def test_an_unanswered_notice_holds_back_no_other_and_update_fixes_the_text_as_it_is(
    started: Any, plain_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """VS Code moves an unanswered notice to its notification centre, where it may wait for
    hours: the next notice still shows, and an Update given later edits the text as it is
    then, not as it was when asked."""
    host = plain_registry.host
    app = seed.push_image(plain_registry, "acme/app", seed.build_image("watch-app-0"), ["1.0"])
    lib = seed.push_image(plain_registry, "acme/lib", seed.build_image("watch-lib-0"), ["2.0"])
    env = {
        "PORTSIDE_STATE_DIR": str(tmp_path / "state"),
        "PORTSIDE_INSECURE_REGISTRIES": host,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    session = await started(init={"debounceMs": 10})
    text = f"FROM {host}/acme/app:1.0@{app.digest}\nFROM {host}/acme/lib:2.0@{lib.digest}\n"
    uri = session.open(text)
    edited = "# the user's line, typed while the notice waited\n" + text
    asked: list[str] = []
    second = asyncio.Event()

    @session.client.feature(lsp.WINDOW_SHOW_MESSAGE_REQUEST)
    async def show(params: lsp.ShowMessageRequestParams) -> lsp.MessageActionItem:
        asked.append(params.message)
        if "acme/lib" in params.message:
            second.set()
            return lsp.MessageActionItem(title="Ignore")
        # The app's notice stays unanswered until the lib's has been shown.
        await asyncio.wait_for(second.wait(), 30)
        session.change(uri, edited)  # reaches the server before the answer: one stream
        return lsp.MessageActionItem(title="Update")

    watch = ("watch", "--once", "--editor", "--quiet", str(session.root))
    first = await asyncio.to_thread(run_portside, *watch, cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    app_new = seed.push_image(plain_registry, "acme/app", seed.build_image("watch-app-1"), ["1.0"])
    seed.push_image(plain_registry, "acme/lib", seed.build_image("watch-lib-1"), ["2.0"])
    # One round writes both notices: the app's first (the inbox is read in order).
    second_round = await asyncio.to_thread(run_portside, *watch, cwd=tmp_path, env=env)
    assert second_round.returncode == 1, second_round.stderr

    deadline = time.monotonic() + 40
    while not session.applied and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert [("acme/app" in m, "acme/lib" in m) for m in asked] == [(True, False), (False, True)]
    (edit,) = session.applied
    assert edit.document_changes is not None
    (change,) = edit.document_changes
    assert isinstance(change, lsp.TextDocumentEdit)
    assert change.text_document.version == 2  # the edited document, not the one asked about
    (text_edit,) = change.edits
    assert text_edit.range.start.line == 1  # the user's new first line moved it down
    assert apply_edits(
        edited,
        [
            Edit(
                Range(
                    Position(text_edit.range.start.line, text_edit.range.start.character),
                    Position(text_edit.range.end.line, text_edit.range.end.character),
                ),
                text_edit.new_text,
            )
        ],
    ) == edited.replace(app.digest, app_new.digest)
