"""The update rules through the language server: pytest-lsp drives ``python -m
lsp_server`` over stdio, with the clock at the replay date (``faketime``), against a real
registry replayed from the tag history. For each case of ``tests/test_update_kinds.py``
the ``stale`` diagnostic's code actions offer every proposal (the newest in the current
major and the newest overall), the newest overall preferred, each editing the FROM line
to exactly that tag; and nothing is offered where nothing may be.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path

import pytest
from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from test_update_kinds import CASES, Case, faked

from harness import data, seed
from harness.registry import Registry

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_code_actions_offer_every_proposal(
    case: Case, plain_registry: Registry, tmp_path: Path
) -> None:
    seed.replay_history(
        plain_registry, case.repository, data.load_history(case.history), until=case.day
    )
    image = f"{plain_registry.host}/{case.repository}"
    workspace = tmp_path / "ws"
    workspace.mkdir()
    env = {
        **os.environ,
        "PORTSIDE_CACHE_DIR": str(tmp_path / "cache"),
        "PYTHONPATH": str(ROOT),
        "TZ": "UTC",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    config = ClientServerConfig(
        server_command=[*faked(case.day), sys.executable, "-m", "lsp_server"], server_env=env
    )
    client = await config.start()
    assert isinstance(client, LanguageClient)
    try:
        await client.initialize_session(
            lsp.InitializeParams(
                capabilities=client_capabilities("visual-studio-code"),
                root_uri=workspace.as_uri(),
                workspace_folders=[lsp.WorkspaceFolder(uri=workspace.as_uri(), name="ws")],
            )
        )
        text = f"FROM {image}:{case.tag}\n"
        path = workspace / "Dockerfile"
        path.write_text(text, encoding="utf-8")
        uri = path.as_uri()
        client.text_document_did_open(
            lsp.DidOpenTextDocumentParams(
                text_document=lsp.TextDocumentItem(
                    uri=uri, language_id="dockerfile", version=1, text=text
                )
            )
        )
        # checkNow answers once the document was checked against the registry and its
        # diagnostics published (the notification comes before the answer).
        checked = await client.workspace_execute_command_async(
            lsp.ExecuteCommandParams(command="portside.checkNow", arguments=[uri])
        )
        assert checked["checked"] == 1, checked
        found = list(client.diagnostics.get(uri) or [])
        stale = [d for d in found if d.code == "stale"]
        actions = await client.text_document_code_action_async(
            lsp.CodeActionParams(
                text_document=lsp.TextDocumentIdentifier(uri=uri),
                range=lsp.Range(
                    start=lsp.Position(line=0, character=6), end=lsp.Position(line=0, character=6)
                ),
                context=lsp.CodeActionContext(diagnostics=found),
            )
        )
        updates = [
            a
            for a in actions or []
            if isinstance(a, lsp.CodeAction) and a.title.startswith("Update to")
        ]
        if not case.proposals:
            assert stale == [] and updates == [], (stale, [a.title for a in updates])
            return
        assert len(stale) == 1, found
        offered: dict[str, lsp.CodeAction] = {}
        for action in updates:
            assert action.edit is not None and action.edit.document_changes
            change = action.edit.document_changes[0]
            assert isinstance(change, lsp.TextDocumentEdit)
            new_line = change.edits[0].new_text  # type: ignore[union-attr]
            assert new_line.startswith(f"{image}:"), new_line
            offered[new_line.removeprefix(f"{image}:")] = action
        for tag, _ in case.proposals:
            assert tag in offered, (tag, sorted(offered))
        newest = case.proposals[-1][0]
        assert [t for t, a in offered.items() if a.is_preferred] == [newest]
        # Nothing newer than the newest overall, nothing outside the rules' line.
        assert set(offered) <= {case.pin_patch, *(t for t, _ in case.proposals)}, offered
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.shutdown_session(), 10)
        await client.stop()
