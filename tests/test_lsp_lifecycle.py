"""Lifecycle in the editor, over stdio (pytest-lsp, VS Code and Neovim profiles): a base
image its publisher retired is an error diagnostic whose fix moves to the newest build of
its line that is not retired, and hover says so and lists the worst vulnerabilities."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import test_lsp_server
from lsprotocol import types as lsp
from test_lifecycle import push_release
from test_lsp_server import PROFILES, has
from test_vulnerabilities import attach, trivy_sarif

from harness.cli import run_portside
from harness.registry import Registry

start = test_lsp_server.start
started = test_lsp_server.started
REPO = "acme/base"


@pytest.mark.parametrize("profile", PROFILES)
async def test_a_retired_base_is_an_error_with_a_fix_and_hover_says_why(
    started: Any, plain_registry: Registry, profile: str, tmp_path: Path
) -> None:
    line = {"b1": ["2.0.0"], "b2": ["2.0.1"]}
    digests = push_release(plain_registry, REPO, line, index=False)
    host = plain_registry.host
    retired = run_portside(
        "retire", f"{host}/{REPO}:2.0.0", "--date", "2026-01-01", "--reason", "rebuilt as 2.0.1",
        cwd=tmp_path,
    )  # fmt: skip
    assert retired.returncode == 0, retired.stderr
    await attach(
        plain_registry,
        digests["b1"],
        "application/sarif+json",
        trivy_sarif(("CVE-2024-6119", "9.8", "openssl", "3.0.13", "3.0.15")),
        repo=REPO,
    )
    session = await started(profile)
    text = f"FROM {host}/{REPO}:2.0.0@{digests['b1']}\nRUN true\n"
    uri = session.open(text)
    found = await session.diagnostics(uri, has("end-of-life"))
    eol = next(d for d in found if d.code == "end-of-life")
    assert eol.severity == lsp.DiagnosticSeverity.Error
    assert "end of life since 2026-01-01: rebuilt as 2.0.1" in eol.message
    vulnerable = await session.diagnostics(uri, has("vulnerable"))
    assert any("CVE-2024-6119 (critical" in d.message for d in vulnerable)

    hover = await session.client.text_document_hover_async(
        lsp.HoverParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            position=lsp.Position(line=0, character=12),
        )
    )
    assert hover is not None and isinstance(hover.contents, lsp.MarkupContent)
    assert "end of life since 2026-01-01" in hover.contents.value
    assert "CVE-2024-6119" in hover.contents.value

    actions = await session.client.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            range=eol.range,
            context=lsp.CodeActionContext(diagnostics=[eol]),
        )
    )
    fixes = [
        a
        for a in actions or []
        if isinstance(a, lsp.CodeAction) and a.edit is not None and eol in (a.diagnostics or [])
    ]
    assert fixes, [a.title for a in actions or [] if isinstance(a, lsp.CodeAction)]
    edit = fixes[0].edit
    assert edit is not None
    changes = edit.document_changes or []
    new_texts = [
        e.new_text
        for change in changes
        if isinstance(change, lsp.TextDocumentEdit)
        for e in change.edits
    ] + [e.new_text for edits in (edit.changes or {}).values() for e in edits]
    assert any(f"2.0.1@{digests['b2']}" in t for t in new_texts), new_texts
