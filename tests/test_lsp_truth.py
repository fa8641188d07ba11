"""Diagnostics and messages that tell the truth, over stdio (pytest-lsp, the VS Code and
Neovim capability profiles): a missing digest is missing, a variant update says what it
is, an unclosed ``${`` is a syntax error, a bad setting is said once to the user, and a
request the server does not offer is not an error in its log."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import test_lsp_server
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcMethodNotFound
from test_lsp_server import PROFILES, has

from harness import seed
from harness.registry import Registry

# The stdio session fixtures of tests/test_lsp_server.py, shared.
start = test_lsp_server.start
started = test_lsp_server.started


@pytest.mark.parametrize("profile", PROFILES)
async def test_a_pinned_digest_that_does_not_exist_is_not_found_in_diagnostics_and_hover(
    started: Any, registry: Registry, profile: str
) -> None:
    session = await started(profile)
    zero = "sha256:" + "0" * 64
    line = f"FROM {registry.host}/library/python:3.13@{zero}"
    uri = session.open(line + "\n")
    found = await session.diagnostics(uri, has("not-found"))
    assert {str(d.code) for d in found} == {"not-found"}  # not tag-moved, no update
    (missing,) = found
    assert missing.severity == lsp.DiagnosticSeverity.Error
    assert "digest sha256:000000000000" in missing.message
    hover = await session.client.text_document_hover_async(
        lsp.HoverParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            position=lsp.Position(line=0, character=10),
        )
    )
    assert hover is not None and isinstance(hover.contents, lsp.MarkupContent)
    assert "not found" in hover.contents.value.lower()
    titles = [
        a.title
        for a in await session.client.text_document_code_action_async(
            lsp.CodeActionParams(
                text_document=lsp.TextDocumentIdentifier(uri=uri),
                range=lsp.Range(
                    start=lsp.Position(line=0, character=6), end=lsp.Position(line=0, character=6)
                ),
                context=lsp.CodeActionContext(diagnostics=list(found)),
            )
        )
        or []
        if isinstance(a, lsp.CodeAction)
    ]
    assert not any(t.startswith(("Update to", "Refresh the pinned digest")) for t in titles)


@pytest.mark.parametrize("profile", PROFILES)
async def test_variant_update_says_when_the_version_changes_too(
    started: Any, plain_registry: Registry, profile: str
) -> None:
    for i, tag in enumerate(["16.1-alpine3.19", "16.9-alpine3.19", "16.9-alpine3.22"]):
        seed.push_image(plain_registry, "acme/pg", seed.build_image(f"pg-{i}"), [tag], via="fs")
    session = await started(profile)
    uri = session.open(f"FROM {plain_registry.host}/acme/pg:16.1-alpine3.19\n")
    found = await session.diagnostics(uri, has("variant-update"))
    variant = next(d for d in found if d.code == "variant-update")
    assert variant.message.endswith("16.9-alpine3.22: a newer version on a newer variant")


@pytest.mark.parametrize("profile", PROFILES)
async def test_unclosed_substitution_in_from_is_a_syntax_error(started: Any, profile: str) -> None:
    session = await started(profile, init={"remoteChecks": False})
    uri = session.open("ARG PY=3.12\nFROM python:${PY AS build\nRUN true\n")
    found = await session.diagnostics(uri, has("invalid-reference"))
    assert [(d.range.start.line, str(d.code)) for d in found] == [(1, "invalid-reference")]
    assert found[0].severity == lsp.DiagnosticSeverity.Error
    assert "BuildKit rejects" in found[0].message


@pytest.mark.parametrize("profile", PROFILES)
async def test_invalid_settings_are_one_message_naming_value_source_and_fallback(
    started: Any, profile: str
) -> None:
    session = await started(profile, init={"remoteChecks": False}, config={"networkBudgetMs": -3})
    for _ in range(250):
        if session.client.messages:
            break
        await asyncio.sleep(0.02)
    (pulled,) = [m.message for m in session.client.messages]
    assert "networkBudgetMs = -3 from workspace/configuration" in pulled
    assert "using 1500" in pulled

    session.client.workspace_did_change_configuration(
        lsp.DidChangeConfigurationParams(settings={"portside": {"debounceMs": "fast"}})
    )
    for _ in range(250):
        if len(session.client.messages) > 1:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)
    assert len(session.client.messages) == 2  # said once, not once per source or re-read
    changed = session.client.messages[1]
    assert changed.type == lsp.MessageType.Warning
    assert "debounceMs = 'fast' from workspace/didChangeConfiguration" in changed.message
    assert "using 250" in changed.message


@pytest.mark.parametrize("profile", PROFILES)
async def test_unsupported_requests_are_method_not_found_and_not_logged_as_errors(
    started: Any, profile: str, capfd: pytest.CaptureFixture[str]
) -> None:
    session = await started(profile, init={"remoteChecks": False})
    uri = session.open("FROM alpine:3.21\n")
    protocol = session.client.protocol
    doc = lsp.TextDocumentIdentifier(uri=uri)
    for method, params in (
        (lsp.TEXT_DOCUMENT_SEMANTIC_TOKENS_FULL, lsp.SemanticTokensParams(text_document=doc)),
        (
            lsp.TEXT_DOCUMENT_DOCUMENT_HIGHLIGHT,
            lsp.DocumentHighlightParams(
                text_document=doc, position=lsp.Position(line=0, character=6)
            ),
        ),
    ):
        future = protocol.send_request(method, params)
        with pytest.raises(JsonRpcMethodNotFound) as failed:
            await asyncio.wait_for(asyncio.wrap_future(future), 10)
        assert failed.value.code == -32601
    protocol.notify("$/somethingNew", {"value": 1})
    # The server still answers, and said nothing on stderr about any of it.
    symbols = await session.client.text_document_document_symbol_async(
        lsp.DocumentSymbolParams(text_document=lsp.TextDocumentIdentifier(uri=uri))
    )
    assert symbols is not None
    err = capfd.readouterr().err
    assert "ERROR" not in err and "unknown method" not in err, err
