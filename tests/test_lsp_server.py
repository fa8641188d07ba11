"""The language server end to end: pytest-lsp drives ``python -m lsp_server`` over stdio
against the real seeded registry, with the client capabilities of VS Code and Neovim."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcRequestCancelled
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from harness import seed
from harness.hostile import push_nested_images
from harness.proxy import FaultProxy
from harness.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ["visual-studio-code", "neovim"]


class Session:
    def __init__(self, client: LanguageClient, root: Path) -> None:
        self.client = client
        self.root = root
        self.versions: dict[str, int] = {}
        self.applied: list[lsp.WorkspaceEdit] = []

    def uri(self, name: str = "Dockerfile") -> str:
        return (self.root / name).as_uri()

    def open(self, text: str, name: str = "Dockerfile") -> str:
        uri = self.uri(name)
        (self.root / name).write_text(text, encoding="utf-8", newline="")
        self.versions[uri] = 1
        self.client.text_document_did_open(
            lsp.DidOpenTextDocumentParams(
                text_document=lsp.TextDocumentItem(
                    uri=uri, language_id="dockerfile", version=1, text=text
                )
            )
        )
        return uri

    def change(self, uri: str, text: str) -> None:
        self.versions[uri] += 1
        self.client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                text_document=lsp.VersionedTextDocumentIdentifier(
                    uri=uri, version=self.versions[uri]
                ),
                content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )

    async def diagnostics(
        self,
        uri: str,
        until: Callable[[Sequence[lsp.Diagnostic]], bool],
        timeout: float = 20,
    ) -> Sequence[lsp.Diagnostic]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.client.diagnostics.get(uri)
            if found is not None and until(found):
                return found
            await asyncio.sleep(0.02)
        raise AssertionError(f"diagnostics never matched: {self.client.diagnostics.get(uri)}")

    async def complete(self, uri: str, line: int, character: int) -> lsp.CompletionList:
        result = await self.client.text_document_completion_async(
            lsp.CompletionParams(
                text_document=lsp.TextDocumentIdentifier(uri=uri),
                position=lsp.Position(line=line, character=character),
            )
        )
        if result is None:
            return lsp.CompletionList(is_incomplete=False, items=[])
        if isinstance(result, list):
            return lsp.CompletionList(is_incomplete=False, items=result)
        return result


def kinds(diagnostics: Sequence[lsp.Diagnostic]) -> set[tuple[int, str]]:
    return {(d.range.start.line, str(d.code)) for d in diagnostics}


def has(kind: str) -> Callable[[Sequence[lsp.Diagnostic]], bool]:
    return lambda found: any(d.code == kind for d in found)


@pytest.fixture
def start(tmp_path: Path) -> Any:
    sessions: list[Session] = []

    async def make(
        profile: str = "visual-studio-code",
        *,
        init: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
        capabilities: lsp.ClientCapabilities | None = None,
    ) -> Session:
        workspace = tmp_path / f"ws{len(sessions)}"
        workspace.mkdir(exist_ok=True)
        env = {
            **os.environ,
            "PORTSIDE_CACHE_DIR": str(tmp_path / f"cache{len(sessions)}"),
            "PYTHONPATH": str(ROOT),
        }
        cfg = ClientServerConfig(
            server_command=[sys.executable, "-m", "lsp_server", "--log-level", "info"],
            server_env=env,
        )
        client = await cfg.start()
        assert isinstance(client, LanguageClient)
        session = Session(client, workspace)

        @client.feature(lsp.WORKSPACE_APPLY_EDIT)
        def apply_edit(params: lsp.ApplyWorkspaceEditParams) -> lsp.ApplyWorkspaceEditResult:
            session.applied.append(params.edit)
            return lsp.ApplyWorkspaceEditResult(applied=True)

        if config is not None:
            client.set_configuration(config, section="portside")
        caps = capabilities or client_capabilities(profile)
        session.init_result = await client.initialize_session(  # type: ignore[attr-defined]
            lsp.InitializeParams(
                capabilities=caps,
                root_uri=workspace.as_uri(),
                workspace_folders=[lsp.WorkspaceFolder(uri=workspace.as_uri(), name="ws")],
                initialization_options=init,
            )
        )
        sessions.append(session)
        return session

    return make


@pytest.fixture
async def started(start: Any) -> AsyncIterator[Any]:
    """``start`` with teardown on the test's own event loop."""
    sessions: list[Session] = []

    async def make(*args: Any, **kwargs: Any) -> Session:
        session: Session = await start(*args, **kwargs)
        sessions.append(session)
        return session

    yield make
    for s in sessions:
        try:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(s.client.shutdown_session(), 10)
        finally:
            await s.client.stop()


# -- start-up and capabilities ----------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
async def test_initialize_advertises_features(started: Any, profile: str) -> None:
    session = await started(profile)
    caps = session.init_result.capabilities
    assert caps.completion_provider is not None
    assert ":" in (caps.completion_provider.trigger_characters or [])
    assert caps.hover_provider and caps.definition_provider and caps.references_provider
    assert caps.document_symbol_provider and caps.inlay_hint_provider
    assert caps.code_action_provider and caps.document_link_provider
    assert caps.execute_command_provider is not None
    assert set(caps.execute_command_provider.commands) >= {"portside.pinAll", "portside.checkNow"}
    assert caps.position_encoding in ("utf-16", "utf-8")  # neovim 0.11 prefers utf-8


async def test_utf8_position_encoding_is_negotiated(started: Any) -> None:
    caps = client_capabilities("neovim")
    caps.general = lsp.GeneralClientCapabilities(
        position_encodings=[lsp.PositionEncodingKind.Utf8, lsp.PositionEncodingKind.Utf16]
    )
    session = await started(capabilities=caps, init={"remoteChecks": False})
    assert session.init_result.capabilities.position_encoding == lsp.PositionEncodingKind.Utf8
    text = "FROM alpine:3.20\nARG PY=1\nRUN echo 😀 ${P\n"
    uri = session.open(text)
    line = text.splitlines()[2]
    end_utf8 = len(line.encode("utf-8"))
    result = await session.complete(uri, 2, end_utf8)
    item = next(i for i in result.items if i.label == "PY")
    assert isinstance(item.text_edit, lsp.TextEdit)
    assert item.text_edit.range.start.character == end_utf8 - 1  # after "${", in bytes


# -- diagnostics ------------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
async def test_local_then_remote_diagnostics(
    started: Any, registry: Registry, profile: str
) -> None:
    host = registry.host
    session = await started(profile)
    text = (
        f"FROM {host}/library/python:3.12-slim-bookworm AS build\n"
        f"FROM {host}/library/alpine:latest\n"
        f"FROM {host}/library/nope:1.0\n"
        "COPY --from=build /a /b\n"
    )
    uri = session.open(text)
    # Each image's answer is shown as it lands: wait for both registry findings.
    found = await session.diagnostics(uri, lambda d: has("stale")(d) and has("not-found")(d))
    assert {(0, "unpinned"), (0, "stale"), (1, "latest"), (2, "not-found")} <= kinds(found)
    by = {str(d.code): d for d in found}
    assert by["not-found"].severity == lsp.DiagnosticSeverity.Error
    assert by["latest"].severity == lsp.DiagnosticSeverity.Warning
    assert all(d.source == "portside" for d in found)
    assert "3.1" in by["stale"].message


async def test_one_nested_manifest_leaves_the_other_images_judged(
    started: Any, registry: Registry
) -> None:
    hostile = push_nested_images(registry)
    session = await started()
    uri = session.open(
        f"FROM {hostile['pinned']} AS one\nFROM {registry.host}/library/python:3.12-slim-bookworm\n"
    )
    found = await session.diagnostics(uri, has("stale"), timeout=30)
    assert (1, "unpinned") in kinds(found) and (1, "stale") in kinds(found)
    about_hostile = [d for d in found if d.range.start.line == 0]
    assert any("not valid JSON" in d.message for d in about_hostile), about_hostile


async def test_unreachable_is_information(started: Any) -> None:
    session = await started()
    uri = session.open("FROM 127.0.0.1:9/acme/app:1.0\n")
    found = await session.diagnostics(uri, has("unreachable"))
    unreachable = next(d for d in found if d.code == "unreachable")
    assert unreachable.severity == lsp.DiagnosticSeverity.Information


@pytest.mark.parametrize("status", [503, 429])
async def test_registry_down_is_said_once_per_registry_and_nothing_spins(
    started: Any, registry: Registry, proxy_factory: Any, status: int
) -> None:
    proxy = proxy_factory(registry)
    headers = {"Retry-After": "60"} if status == 429 else None
    proxy.fail(None, r"^/v2/.+", status, times=None, headers=headers)
    session = await started(init={"debounceMs": 10, "recheckIntervalS": 1})
    text = "".join(f"FROM {proxy.host}/library/python:3.1{i}\n" for i in range(3)) + (
        "".join(f"FROM 127.0.0.1:9/acme/app{i}:1.0\n" for i in range(2))
        + f"FROM {registry.host}/library/alpine:3.21\n"
    )
    uri = session.open(text)

    def settled(found: Sequence[lsp.Diagnostic]) -> bool:
        # Each image's answer lands on its own: the working registry's too (line 5).
        return (
            sum(1 for d in found if d.code == "unreachable") == 2
            and has("unpinned")(found)
            and any(d.code == "stale" and d.range.start.line == 5 for d in found)
        )

    found = await session.diagnostics(uri, settled, timeout=40)
    unreachable = sorted(
        (d for d in found if d.code == "unreachable"), key=lambda d: d.range.start.line
    )
    assert [d.range.start.line for d in unreachable] == [0, 3]
    assert all(d.severity == lsp.DiagnosticSeverity.Information for d in unreachable)
    assert f"3 images on {proxy.host}" in unreachable[0].message
    assert "2 images on 127.0.0.1:9" in unreachable[1].message
    # Nothing spins. The documents are re-checked every second here (recheckIntervalS):
    # a host that answered 429 with a reset is paused, so it is not asked at all until
    # then; a failing (503) host is asked once per re-check with bounded retries, never
    # in a loop.
    await asyncio.sleep(1.5)
    asked = len(proxy.requests)
    await asyncio.sleep(3)
    again = len(proxy.requests) - asked
    if status == 429:
        assert again == 0
    else:
        assert 0 < again <= 3 * asked  # a loop would send hundreds
    # And the message is not re-sent while nothing changed.
    assert session.client.diagnostics[uri] == found


async def test_severity_from_settings_with_precedence(
    started: Any, registry: Registry, tmp_path: Path
) -> None:
    # initializationOptions < workspace/configuration < [tool.portside.lsp]
    session = await started(
        init={"severity": {"unpinned": "hint", "latest": "hint"}, "remoteChecks": False},
        config={"severity": {"unpinned": "error"}},
    )
    (session.root / "pyproject.toml").write_text(
        '[tool.portside.lsp]\nseverity = { latest = "info" }\ntrusted = false\n'
    )
    uri = session.open("FROM alpine:3.20\nFROM alpine\n", name="a.Dockerfile")
    found = await session.diagnostics(
        uri, lambda d: any(x.severity == lsp.DiagnosticSeverity.Error for x in d)
    )
    severity = {str(d.code): d.severity for d in found}
    assert severity["unpinned"] == lsp.DiagnosticSeverity.Error
    assert severity["latest"] == lsp.DiagnosticSeverity.Information


async def test_untrusted_workspace_contacts_only_allow_listed(
    started: Any, registry: Registry, fault_proxy: FaultProxy
) -> None:
    session = await started(
        init={"trusted": False, "trustedRegistries": [registry.host]},
    )
    # pyproject in the workspace cannot trust itself
    (session.root / "pyproject.toml").write_text(
        '[tool.portside.lsp]\ntrusted = true\ntrusted-registries = ["*"]\n'
    )
    text = (
        f"FROM {registry.host}/library/python:3.12-slim-bookworm\n"
        f"FROM {fault_proxy.host}/library/python:3.12.1\n"
    )
    uri = session.open(text)
    found = await session.diagnostics(uri, lambda d: has("stale")(d) and has("unreachable")(d))
    unreachable = [d for d in found if d.code == "unreachable"]
    assert [d.range.start.line for d in unreachable] == [1]
    assert "untrusted" in unreachable[0].message
    assert fault_proxy.requests == [] or len(fault_proxy.requests) == 0


async def test_diagnostics_debounced_and_never_for_closed(started: Any) -> None:
    session = await started(init={"debounceMs": 200, "remoteChecks": False})
    published: list[lsp.PublishDiagnosticsParams] = []
    original = session.client.protocol.fm.features[lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS]

    def record(params: lsp.PublishDiagnosticsParams) -> None:
        published.append(params)
        original(params)

    session.client.protocol.fm.features[lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = record
    uri = session.open("FROM alpine:3.20\n")
    await session.diagnostics(uri, has("unpinned"))
    before = len(published)
    for i in range(10):
        session.change(uri, f"FROM alpine:3.{i}\n")
    await asyncio.sleep(0.6)
    after_edits = published[before:]
    assert 1 <= len(after_edits) <= 2, after_edits
    assert after_edits[-1].version == session.versions[uri]
    # An edit then an immediate close: nothing but the clearing is published after it.
    session.change(uri, "FROM alpine:3.21\n")
    session.client.text_document_did_close(
        lsp.DidCloseTextDocumentParams(text_document=lsp.TextDocumentIdentifier(uri=uri))
    )
    await asyncio.sleep(0.6)
    mine = [p for p in published if p.uri == uri]
    cleared = max(i for i, p in enumerate(mine) if len(p.diagnostics) == 0)
    assert all(len(p.diagnostics) == 0 for p in mine[cleared:])
    assert len(mine[-1].diagnostics) == 0


async def test_background_refresh_republishes(started: Any, plain_registry: Registry) -> None:
    host = plain_registry.host
    seed.push_image(plain_registry, "acme/tool", seed.build_image("tool-0"), ["1.0.0"], via="fs")
    session = await started(init={"tagsTtlS": 0, "debounceMs": 10})
    text = f"FROM {host}/acme/tool:1.0.0\n"
    uri = session.open(text)
    await session.diagnostics(uri, has("unpinned"))
    seed.push_image(plain_registry, "acme/tool", seed.build_image("tool-1"), ["1.0.1"], via="fs")
    session.change(uri, text + "\n")
    found = await session.diagnostics(uri, has("stale"))
    assert any("1.0.1" in d.message for d in found)


# -- completion -------------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
async def test_tag_completion_newest_first_current_line_first(
    started: Any, registry: Registry, profile: str
) -> None:
    session = await started(profile)
    host = registry.host
    line = f"FROM {host}/library/python:3.12-slim-bookworm"
    uri = session.open(line + "\n")
    column = line.index(":3.12") + 1
    result = await session.complete(uri, 0, column)
    labels = [i.label for i in sorted(result.items, key=lambda i: i.sort_text or "")]
    seeded = set(registry.seeded["library/python"].tags)
    assert set(labels) <= seeded and len(labels) > 20
    # The current tag's line (the -slim-bookworm variant) first, newest first.
    head = [t for t in labels[:5]]
    assert all(t.endswith("-slim-bookworm") for t in head), head
    assert head[0].startswith("3.1")
    edit = result.items[0].text_edit
    assert isinstance(edit, lsp.TextEdit)
    assert edit.range.start.character == column
    assert edit.range.end.character == len(line)
    # Typing narrows the list.
    narrowed = await session.complete(uri, 0, column + 4)
    assert narrowed.items and all(i.label.startswith("3.12") for i in narrowed.items)


async def test_catalog_and_recent_image_name_completion(
    started: Any, registry: Registry, tmp_path: Path
) -> None:
    host = registry.host
    session = await started(init={"registries": [host]})
    text = f"FROM {host}/lib\nFROM {host}/library/alpine:3.21\nFROM \n"
    uri = session.open(text)
    result = await session.complete(uri, 0, len(f"FROM {host}/lib"))
    by_label = {i.label: i for i in result.items}
    assert f"{host}/library/python" in by_label and f"{host}/portside-test/many-tags" in by_label
    assert by_label[f"{host}/library/python"].detail == "in the registry's catalog"
    edit = by_label[f"{host}/library/python"].text_edit
    assert isinstance(edit, lsp.TextEdit) and edit.range.start.character == len("FROM ")
    # Images the server saw resolve come first, and are remembered in the cache dir.
    await session.diagnostics(uri, has("unpinned"))
    recent_file = tmp_path / "cache0" / "v2" / "recent-images.json"
    for _ in range(250):
        if recent_file.exists():
            break
        await asyncio.sleep(0.02)
    assert f"{host}/library/alpine" in json.loads(recent_file.read_text())
    names = await session.complete(uri, 2, len("FROM "))
    first = min(names.items, key=lambda i: i.sort_text or "")
    assert first.label == f"{host}/library/alpine" and first.detail == "recently used"
    assert f"{host}/" in {i.label for i in names.items}  # the configured registry


async def test_untrusted_workspace_cannot_choose_catalog_registries(
    started: Any, registry: Registry, fault_proxy: FaultProxy
) -> None:
    # The host may be contacted (allow-listed): only the settings rule keeps the
    # workspace's own file from turning its catalog on.
    session = await started(init={"trusted": False, "trustedRegistries": [fault_proxy.host]})
    (session.root / "pyproject.toml").write_text(
        f'[tool.portside.lsp]\nregistries = ["{fault_proxy.host}"]\n'
    )
    session.client.workspace_did_change_configuration(
        lsp.DidChangeConfigurationParams(
            settings={"portside": {"trusted": False, "trustedRegistries": [fault_proxy.host]}}
        )
    )
    line = f"FROM {fault_proxy.host}/lib"
    uri = session.open(line + "\n")
    result = await session.complete(uri, 0, len(line))
    assert not any(i.detail == "in the registry's catalog" for i in result.items)
    assert not [r for r in fault_proxy.requests if r.path == "/v2/_catalog"]


async def test_completion_item_resolve_gives_digest_and_platforms(
    started: Any, registry: Registry
) -> None:
    session = await started()
    line = f"FROM {registry.host}/library/python:3.13"
    uri = session.open(line + "\n")
    result = await session.complete(uri, 0, len(line))
    item = next(i for i in result.items if i.label == "3.13")
    resolved = await session.client.completion_item_resolve_async(item)
    digest = registry.seeded["library/python"].digest("3.13")
    assert resolved.detail is not None and digest.split(":")[1][:12] in resolved.detail
    assert "linux/amd64" in resolved.detail


async def test_digest_completion(started: Any, registry: Registry) -> None:
    session = await started()
    line = f"FROM {registry.host}/library/alpine:3.21@"
    uri = session.open(line + "\n")
    result = await session.complete(uri, 0, len(line))
    assert [i.label for i in result.items] == [registry.seeded["library/alpine"].digest("3.21")]


async def test_names_stages_and_args(started: Any) -> None:
    session = await started()
    text = (
        "ARG BASE=alpine:3.20\n"
        "FROM ${BASE} AS builder\n"
        "ARG TOKEN=s3cr3t-value\n"
        "FROM \n"
        "COPY --from= /a /b\n"
        "RUN --mount=type=cache,from= echo ${\n"
    )
    uri = session.open(text)
    images = await session.complete(uri, 3, 5)
    assert {"alpine", "python", "debian"} <= {i.label for i in images.items}
    copy = await session.complete(uri, 4, len("COPY --from="))
    assert "builder" in {i.label for i in copy.items}
    mount = await session.complete(uri, 5, len("RUN --mount=type=cache,from="))
    assert "builder" in {i.label for i in mount.items}
    args = await session.complete(uri, 5, len(text.splitlines()[5]))
    labels = {i.label: i for i in args.items}
    assert "BASE" in labels
    assert "TOKEN" not in labels or "s3cr3t" not in (labels["TOKEN"].detail or "")


async def test_completion_is_cancellable(
    started: Any, registry: Registry, fault_proxy: FaultProxy
) -> None:
    fault_proxy.delay("GET", r"/v2/.*/tags/list", 15, times=1)
    # No diagnostics: the completion is the only one waiting for the tag list.
    session = await started(init={"networkBudgetMs": 30000, "remoteChecks": False})
    line = f"FROM {fault_proxy.host}/library/python:3."
    uri = session.open(line + "\n")
    protocol = session.client.protocol
    future = protocol.send_request(
        lsp.TEXT_DOCUMENT_COMPLETION,
        lsp.CompletionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            position=lsp.Position(line=0, character=len(line)),
        ),
        msg_id="slow-1",
    )

    def tag_requests() -> int:
        return sum(1 for r in fault_proxy.requests if r.path.endswith("/tags/list"))

    for _ in range(500):  # until the proxy holds the tag list request back
        if tag_requests():
            break
        await asyncio.sleep(0.02)
    assert not future.done()
    started_at = time.monotonic()
    protocol.notify(lsp.CANCEL_REQUEST, lsp.CancelParams(id="slow-1"))
    wrapped = asyncio.wrap_future(future)
    with pytest.raises(JsonRpcRequestCancelled) as cancelled:
        await asyncio.wait_for(wrapped, 5)
    assert cancelled.value.code == -32800
    assert time.monotonic() - started_at < 5  # the proxy holds the request for 15 s
    # The fetch was cancelled with it: the same completion asked again does not join a
    # request the proxy still holds back (15 s) but sends its own and is answered.
    assert tag_requests() == 1
    again = await asyncio.wait_for(session.complete(uri, 0, len(line)), 10)
    assert any(i.label.startswith("3.") for i in again.items)
    assert tag_requests() == 2
    # The server still answers.
    symbols = await session.client.text_document_document_symbol_async(
        lsp.DocumentSymbolParams(text_document=lsp.TextDocumentIdentifier(uri=uri))
    )
    assert symbols is not None


# -- hover, actions, commands -----------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
async def test_hover_on_image(started: Any, registry: Registry, profile: str) -> None:
    session = await started(profile)
    line = f"FROM {registry.host}/library/python:3.12.14"
    uri = session.open(line + "\n")
    hover = await session.client.text_document_hover_async(
        lsp.HoverParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            position=lsp.Position(line=0, character=len(line) - 2),
        )
    )
    assert hover is not None and isinstance(hover.contents, lsp.MarkupContent)
    value = hover.contents.value
    assert registry.seeded["library/python"].digest("3.12.14") in value
    assert "linux/amd64" in value and "linux/arm64" in value
    assert "created" in value and "compressed size" in value
    assert "Newer in its line" in value and "3.14" in value


async def test_code_actions_fix_suppress_and_pin_all(started: Any, registry: Registry) -> None:
    session = await started()
    host = registry.host
    text = f"FROM {host}/library/python:3.12-slim-bookworm\nFROM {host}/library/alpine:3.21\n"
    uri = session.open(text)
    found = await session.diagnostics(uri, has("stale"))
    actions = await session.client.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            range=lsp.Range(
                start=lsp.Position(line=0, character=6), end=lsp.Position(line=0, character=6)
            ),
            context=lsp.CodeActionContext(diagnostics=list(found)),
        )
    )
    assert actions is not None
    titles = [a.title for a in actions if isinstance(a, lsp.CodeAction)]
    assert any(t.startswith("Update to") for t in titles), titles
    assert any(t.startswith("Pin to digest") for t in titles), titles
    assert any("portside: ignore=stale" in t for t in titles), titles
    update = next(
        a
        for a in actions
        if isinstance(a, lsp.CodeAction) and a.title.startswith("Update to") and a.is_preferred
    )
    assert update.edit is not None and update.edit.document_changes
    change = update.edit.document_changes[0]
    assert isinstance(change, lsp.TextDocumentEdit)
    assert "3.14-slim-bookworm" in change.edits[0].new_text  # type: ignore[union-attr]

    result = await session.client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="portside.pinAll", arguments=[uri])
    )
    assert result["changed"] == 2, result
    new_text = session.applied[-1].document_changes[0].edits[0].new_text  # type: ignore[index,union-attr]
    assert registry.seeded["library/alpine"].digest("3.21") in new_text

    checked = await session.client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="portside.checkNow", arguments=[uri])
    )
    assert checked["checked"] == 1


async def _actions_on_line(session: Session, uri: str, line: int) -> list[lsp.CodeAction]:
    actions = await session.client.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            range=lsp.Range(
                start=lsp.Position(line=line, character=6),
                end=lsp.Position(line=line, character=6),
            ),
            context=lsp.CodeActionContext(diagnostics=[]),
        )
    )
    return [a for a in actions or [] if isinstance(a, lsp.CodeAction)]


def _new_text(action: lsp.CodeAction) -> str:
    assert action.edit is not None and action.edit.document_changes
    change = action.edit.document_changes[0]
    assert isinstance(change, lsp.TextDocumentEdit)
    return change.edits[0].new_text  # type: ignore[union-attr]


@pytest.mark.parametrize("profile", PROFILES)
async def test_update_actions_per_level_and_variant(
    started: Any, plain_registry: Registry, proxy_factory: Any, profile: str
) -> None:
    tool = seed.build_image("tool-levels")
    seed.push_image(
        plain_registry, "acme/tool", tool, ["1.2.3", "1.2.5", "1.4.0", "2.0.1"], via="fs"
    )
    base = seed.build_image("base-variants")
    seed.push_image(
        plain_registry, "acme/base", base, ["1.0-alpine3.20", "1.0-alpine3.21"], via="fs"
    )
    seed.push_image(plain_registry, "acme/only", tool, ["3.1.0", "3.1.2"], via="fs")
    proxy = proxy_factory(plain_registry)
    session = await started(profile)
    host = proxy.host
    text = (
        f"FROM {host}/acme/tool:1.2.3 AS a\n"
        f"FROM {host}/acme/base:1.0-alpine3.20 AS b\n"
        f"FROM {host}/acme/only:3.1.0\n"
    )
    uri = session.open(text)
    await session.diagnostics(
        uri, lambda d: sum(1 for x in d if x.code in ("stale", "variant-update")) == 3
    )
    # Let the background work (hover/inlay information) finish first.
    requests_before = -1
    while len(proxy.requests) != requests_before:
        requests_before = len(proxy.requests)
        await asyncio.sleep(0.5)

    actions = await _actions_on_line(session, uri, 0)
    updates = {a.title: a for a in actions if a.title.startswith("Update to newest")}
    assert list(updates) == [
        f"Update to newest patch: {host}/acme/tool:1.2.5",
        f"Update to newest minor: {host}/acme/tool:1.4.0",
        f"Update to newest major: {host}/acme/tool:2.0.1",
    ]
    for title, action in updates.items():
        assert _new_text(action) == title.split(": ", 1)[1]
    # The finding's own fix (the biggest step the policy allows) is the preferred one.
    assert [a.is_preferred for a in updates.values()] == [False, False, True]

    variant = [a for a in await _actions_on_line(session, uri, 1) if a.title.startswith("Move")]
    assert [a.title for a in variant] == [f"Move to variant {host}/acme/base:1.0-alpine3.21"]
    assert _new_text(variant[0]) == f"{host}/acme/base:1.0-alpine3.21"

    # Only the levels that exist: a patch and nothing else.
    only = [a.title for a in await _actions_on_line(session, uri, 2)]
    assert [t for t in only if t.startswith("Update to")] == [
        f"Update to newest patch: {host}/acme/only:3.1.2"
    ]
    # Code actions are answered from the cache: not one request to the registry.
    assert len(proxy.requests) == requests_before


async def test_publish_dry_run_command_shows_the_plan(
    started: Any, registry_factory: Any, tmp_path: Path
) -> None:
    from test_build_native import make_project, seed_base
    from test_publish_cli import configure

    reg = registry_factory()
    seed_base(reg)
    project = configure(
        make_project(tmp_path / "app", version="1.4.2"),
        destinations=[reg.ref("team/app")],
        base=reg.ref("base/python", "3.12"),
    )
    session = await started()
    result = await session.client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="portside.publishDryRun", arguments=[project.as_uri()])
    )
    assert result["ok"] is True, result
    assert result["report"]["dry_run"] is True
    assert f"[plan] would tag {reg.ref('team/app')}:1.4.2" in result["plan"]
    shown = [m.message for m in session.client.messages]
    assert any("would tag" in m and "1.4.2" in m for m in shown), shown
    logged = [m.message for m in session.client.log_messages]
    assert any("publish (dry run): [plan]" in m for m in logged)
    assert not (reg.root / "docker/registry/v2/repositories/team/app").exists()

    # The real thing: the same command without the dry run tags the registry.
    done = await session.client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="portside.publish", arguments=[project.as_uri()])
    )
    assert done["ok"] is True, done
    from harness.skopeo import Skopeo

    tags = Skopeo.for_registry(reg).list_tags(reg.ref("team/app"))
    assert {"1.4.2", "1.4", "1", "latest"} <= set(tags)
    assert any("tagged" in m.message and "1.4.2" in m.message for m in session.client.messages)


async def test_publish_dry_run_refused_in_untrusted_workspace(started: Any) -> None:
    session = await started(init={"trusted": False, "remoteChecks": False})
    result = await session.client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="portside.publishDryRun", arguments=[])
    )
    assert result["ok"] is False and "untrusted" in result["error"]
    for command in ("portside.publish", "portside.build"):
        refused = await session.client.workspace_execute_command_async(
            lsp.ExecuteCommandParams(command=command, arguments=[])
        )
        assert refused["ok"] is False and "untrusted" in refused["error"]


# -- navigation -------------------------------------------------------------------------


async def test_symbols_definition_references_links_inlay(started: Any, registry: Registry) -> None:
    session = await started()
    host = registry.host
    text = (
        "ARG PY=3.12.14\n"
        f"FROM {host}/library/python:${{PY}} AS build\n"
        "ARG TOKEN=hunter2-secret\n"
        "RUN echo $PY\n"
        f"FROM {host}/library/alpine:3.21\n"
        "COPY --from=build /a /b\n"
    )
    uri = session.open(text)
    doc = lsp.TextDocumentIdentifier(uri=uri)
    symbols = await session.client.text_document_document_symbol_async(
        lsp.DocumentSymbolParams(text_document=doc)
    )
    assert symbols is not None
    names = [s.name for s in symbols]
    assert names == ["PY", "build", "stage 1"]
    build = symbols[1]
    assert isinstance(build, lsp.DocumentSymbol) and build.children
    assert build.children[0].detail == "***"  # a secret-looking ARG never shows its value

    definition = await session.client.text_document_definition_async(
        lsp.DefinitionParams(text_document=doc, position=lsp.Position(line=5, character=14))
    )
    assert isinstance(definition, list) and definition[0].range.start.line == 1
    arg_def = await session.client.text_document_definition_async(
        lsp.DefinitionParams(text_document=doc, position=lsp.Position(line=3, character=11))
    )
    assert isinstance(arg_def, list) and arg_def[0].range.start == lsp.Position(line=0, character=4)
    refs = await session.client.text_document_references_async(
        lsp.ReferenceParams(
            text_document=doc,
            position=lsp.Position(line=1, character=text.splitlines()[1].index("build") + 1),
            context=lsp.ReferenceContext(include_declaration=True),
        )
    )
    assert refs is not None and sorted(r.range.start.line for r in refs) == [1, 5]

    links = await session.client.text_document_document_link_async(
        lsp.DocumentLinkParams(text_document=doc)
    )
    assert links is not None and len(links) == 0  # a loopback registry has no web page

    await session.diagnostics(uri, has("stale"))
    hints: list[lsp.InlayHint] = []
    for _ in range(100):
        hints = (
            await session.client.text_document_inlay_hint_async(
                lsp.InlayHintParams(
                    text_document=doc,
                    range=lsp.Range(
                        start=lsp.Position(line=0, character=0),
                        end=lsp.Position(line=6, character=0),
                    ),
                )
            )
            or []
        )
        if any("available" in str(h.label) for h in hints) and any(
            "old" in str(h.label) for h in hints
        ):
            break
        await asyncio.sleep(0.05)
    labels = " ".join(str(h.label) for h in hints)
    assert "available" in labels and "old" in labels


# -- robustness and secrets -------------------------------------------------------------


async def test_malformed_binary_huge_crlf_and_out_of_range(started: Any) -> None:
    session = await started(init={"maxDocumentBytes": 100_000, "remoteChecks": False})
    docs = {
        "bin.Dockerfile": "FROM \x00\x01\x02\ufffd\udcff python\n\\\n\\",
        "crlf.Dockerfile": "FROM alpine:3.20 AS a\r\nFROM alpine:3.20\r\nCOPY --from=a /x /y\r\n",
        "astral.Dockerfile": "# 𝄞𝄞𝄞\nFROM alpine:3.20 AS 𝄞\nRUN echo ${\n",
        "half.Dockerfile": (
            "FROM --platform=\nFROM a:\nFROM @\nCOPY --from=\nRUN --mount=from=\n<<EOF\n"
        ),
        "huge.Dockerfile": "FROM alpine:3.20\n" + "RUN echo x\n" * 20_000,
    }
    for name, text in docs.items():
        uri = session.open(text.replace("\udcff", "?"), name=name)
        doc = lsp.TextDocumentIdentifier(uri=uri)
        for line, character in ((0, 0), (0, 999), (1, 3), (999, 999), (2, 5)):
            position = lsp.Position(line=line, character=character)
            await session.complete(uri, line, character)
            await session.client.text_document_hover_async(
                lsp.HoverParams(text_document=doc, position=position)
            )
            await session.client.text_document_definition_async(
                lsp.DefinitionParams(text_document=doc, position=position)
            )
        await session.client.text_document_document_symbol_async(
            lsp.DocumentSymbolParams(text_document=doc)
        )
    huge = await session.diagnostics(session.uri("huge.Dockerfile"), lambda d: len(d) >= 1)
    assert "not analysed" in huge[0].message
    crlf = session.uri("crlf.Dockerfile")
    refs = await session.client.text_document_references_async(
        lsp.ReferenceParams(
            text_document=lsp.TextDocumentIdentifier(uri=crlf),
            position=lsp.Position(line=0, character=21),
            context=lsp.ReferenceContext(include_declaration=True),
        )
    )
    assert refs is not None and {(r.range.start.line, r.range.start.character) for r in refs} == {
        (0, 20),
        (2, 12),
    }


async def test_no_secret_in_messages_or_logs(
    started: Any, registry: Registry, capfd: pytest.CaptureFixture[str]
) -> None:
    secret = "hunter2-Sup3rSecret"
    session = await started(init={"password": secret, "severity": {"unpinned": secret}})
    text = (
        f"ARG GITHUB_TOKEN={secret}\nFROM https://user:{secret}@x/y:1\n"
        "FROM ${GITHUB_TOKEN}\nRUN echo ${\n"
    )
    uri = session.open(text)
    await session.diagnostics(uri, lambda d: len(d) >= 1)
    await session.complete(uri, 3, len("RUN echo ${"))
    await session.client.text_document_hover_async(
        lsp.HoverParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            position=lsp.Position(line=2, character=8),
        )
    )
    await asyncio.sleep(0.3)
    messages = [m.message for m in session.client.log_messages] + [
        m.message for m in session.client.messages
    ]
    assert not any(secret in m for m in messages)
    completion = await session.complete(uri, 3, len("RUN echo ${"))
    assert not any(secret in (i.detail or "") for i in completion.items)
    captured = capfd.readouterr()
    assert secret not in captured.err
