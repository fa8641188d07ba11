"""The language server while a user edits, over stdio (pytest-lsp, the VS Code and Neovim
capability profiles): findings that never flicker, a slow or failing registry that
holds back only its own images, completion that learns only what was really used, and
an ``ARG`` default that is an image line like its ``FROM``."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import test_lsp_server
from lsprotocol import types as lsp
from test_lsp_server import PROFILES, Session, has

from harness.proxy import FaultProxy
from harness.registry import Registry

# The stdio session fixtures of tests/test_lsp_server.py, shared.
start = test_lsp_server.start
started = test_lsp_server.started


def record(session: Session) -> list[lsp.PublishDiagnosticsParams]:
    """Every publishDiagnostics the server sends from now on, in order."""
    published: list[lsp.PublishDiagnosticsParams] = []
    original = session.client.protocol.fm.features[lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS]

    def keep(params: lsp.PublishDiagnosticsParams) -> None:
        published.append(params)
        original(params)

    session.client.protocol.fm.features[lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = keep
    return published


def on_line(kind: str, line: int) -> Any:
    return lambda found: any(d.code == kind and d.range.start.line == line for d in found)


async def actions_at(session: Session, uri: str, line: int) -> list[lsp.CodeAction]:
    actions = await session.client.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            range=lsp.Range(
                start=lsp.Position(line=line, character=4),
                end=lsp.Position(line=line, character=4),
            ),
            context=lsp.CodeActionContext(diagnostics=[]),
        )
    )
    return [a for a in actions or [] if isinstance(a, lsp.CodeAction)]


# -- 1. findings that never flicker ---------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
async def test_registry_findings_stay_through_typing_and_move_with_the_text(
    started: Any, registry: Registry, profile: str
) -> None:
    host = registry.host
    session = await started(profile, init={"debounceMs": 5})
    image = f"FROM {host}/library/python:3.12-slim-bookworm AS build\n"
    tail = f"RUN echo hi\nFROM {host}/library/alpine:3.21\nCOPY --from=build /a /b\n"
    uri = session.open(image + tail)
    await session.diagnostics(uri, lambda d: on_line("stale", 0)(d) and on_line("stale", 2)(d))
    published = record(session)
    texts: dict[int, str] = {}
    # Type a comment above the images, character by character: every line moves down.
    comment = "# base images, checked by portside"
    for n in range(1, len(comment) + 1):
        text = comment[:n] + "\n" + image + tail
        session.change(uri, text)
        texts[session.versions[uri]] = text
        if n % 8 == 0:  # a user asking for fixes while typing gets them
            actions = await actions_at(session, uri, 1)
            assert any(a.title.startswith("Update to") for a in actions), [a.title for a in actions]
        await asyncio.sleep(0.01)
    last = session.versions[uri]
    for _ in range(500):
        if any(p.uri == uri and p.version == last for p in published):
            break
        await asyncio.sleep(0.02)
    mine = [p for p in published if p.uri == uri and p.version in texts]
    assert mine and mine[-1].version == last
    for params in mine:
        # Never only the local findings: the registry's stay, on the moved lines.
        stale = sorted(d.range.start.line for d in params.diagnostics if d.code == "stale")
        assert stale == [1, 3], (params.version, stale)
        assert any(d.code == "variant-update" for d in params.diagnostics)


@pytest.mark.parametrize("profile", PROFILES)
async def test_an_ignore_comment_typed_and_removed_silences_and_brings_back_findings(
    started: Any, registry: Registry, profile: str
) -> None:
    # Edits reuse each image's registry answer, but not across a change of its rules.
    session = await started(profile, init={"debounceMs": 5})
    image = f"FROM {registry.host}/library/python:3.12-slim-bookworm\n"
    uri = session.open("# a note\n" + image)
    await session.diagnostics(uri, on_line("stale", 1))
    session.change(uri, "# portside: ignore=stale\n" + image)
    found = await session.diagnostics(uri, lambda d: not on_line("stale", 1)(d))
    assert on_line("variant-update", 1)(found)  # only what the comment names goes
    session.change(uri, "# a note\n" + image)
    await session.diagnostics(uri, on_line("stale", 1))


async def test_a_stalled_registry_holds_back_only_its_own_images(
    started: Any, registry: Registry, fault_proxy: FaultProxy
) -> None:
    fault_proxy.delay(None, r"^/v2/.+", 45)  # the other registry never answers in time
    session = await started("neovim", init={"debounceMs": 5})
    fast = f"FROM {registry.host}/library/python:3.12-slim-bookworm AS a\n"
    uri = session.open(fast)
    await session.diagnostics(uri, on_line("stale", 0))
    published = record(session)
    # A new FROM line naming an image on the stalled registry.
    session.change(uri, fast + f"FROM {fault_proxy.host}/library/alpine:3.21\n")
    await session.diagnostics(uri, on_line("unpinned", 1))
    for _ in range(500):  # until the stalled registry holds a request of ours
        if fault_proxy.requests:
            break
        await asyncio.sleep(0.02)
    assert fault_proxy.requests
    await asyncio.sleep(0.5)
    mine = [p for p in published if p.uri == uri and p.version == session.versions[uri]]
    assert mine
    for params in mine:
        assert on_line("stale", 0)(params.diagnostics), params.diagnostics

    # A document opened now: the answering registry's findings are shown while the
    # stalled one still holds its request (nothing at all about its image yet).
    other = session.open(
        f"FROM {fault_proxy.host}/library/alpine:3.20\nFROM {registry.host}/library/alpine:3.21\n",
        name="b.Dockerfile",
    )
    found = await session.diagnostics(other, on_line("stale", 1), timeout=20)
    assert {(d.range.start.line, d.code) for d in found if d.range.start.line == 0} == {
        (0, "unpinned")
    }


@pytest.mark.parametrize("profile", PROFILES)
async def test_check_now_with_the_registry_down_keeps_cached_findings(
    started: Any, fault_proxy: FaultProxy, profile: str
) -> None:
    session = await started(profile)
    host = fault_proxy.host
    text = (
        f"FROM {host}/library/python:3.12-slim-bookworm AS a\n"
        f"FROM {host}/library/alpine:3.21 AS b\n"
        f"FROM {host}/library/alpine:3.22 AS c\n"
    )
    uri = session.open(text)
    before = await session.diagnostics(uri, lambda d: sum(1 for x in d if x.code == "stale") == 3)
    fault_proxy.fail(None, r"^/v2/", 503, times=None)
    result = await session.client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="portside.checkNow", arguments=[uri])
    )
    assert result["checked"] == 1
    after = await session.diagnostics(uri, has("unreachable"))
    registry_kinds = ("stale", "variant-update")
    assert sorted(
        (d.range.start.line, str(d.code)) for d in after if d.code in registry_kinds
    ) == sorted((d.range.start.line, str(d.code)) for d in before if d.code in registry_kinds)
    notes = [d for d in after if d.code == "unreachable"]
    assert len(notes) == 1, notes
    assert notes[0].severity == lsp.DiagnosticSeverity.Information
    assert "3 images" in notes[0].message and "last check" in notes[0].message


# -- 3. completion learns only what was used ----------------------------------------


def learned(result: lsp.CompletionList) -> set[str]:
    return {
        i.label for i in result.items if i.detail in ("used in this workspace", "recently used")
    }


@pytest.mark.parametrize("profile", PROFILES)
async def test_typing_an_image_character_by_character_learns_only_the_whole_image(
    started: Any, registry: Registry, profile: str
) -> None:
    host = registry.host
    # Untrusted, only the test registry allowed: no prefix ever reaches Docker Hub.
    session = await started(
        profile, init={"debounceMs": 5, "trusted": False, "trustedRegistries": [host]}
    )
    uri = session.open("FROM \n")
    target = f"FROM {host}/library/alpine:3.21"
    name_end = target.rindex(":")
    for n in range(len("FROM ") + 1, len(target) + 1):
        session.change(uri, target[:n] + "\n")
        result = await session.complete(uri, 0, n)
        if n <= name_end:
            typed = target[len("FROM ") : n]
            assert typed not in {i.label for i in result.items}, typed
        await asyncio.sleep(0.02)  # the diagnostics of each prefix run too
    await session.diagnostics(uri, has("stale"))
    other = session.open("FROM \n", name="b.Dockerfile")
    deadline = time.monotonic() + 20
    names: set[str] = set()
    while time.monotonic() < deadline:
        names = learned(await session.complete(other, 0, len("FROM ")))
        if names:
            break
        await asyncio.sleep(0.05)
    assert names == {f"{host}/library/alpine"}


async def test_offline_a_saved_document_teaches_completion(started: Any) -> None:
    session = await started(init={"debounceMs": 5, "remoteChecks": False})
    uri = session.open("FROM \n")
    target = "FROM acme/tool:1.2"
    for n in range(len("FROM ") + 1, len(target) + 1):
        session.change(uri, target[:n] + "\n")
        await session.complete(uri, 0, n)
    other = session.open("FROM \n", name="b.Dockerfile")
    assert learned(await session.complete(other, 0, 5)) == set()
    session.client.text_document_did_save(
        lsp.DidSaveTextDocumentParams(text_document=lsp.TextDocumentIdentifier(uri=uri))
    )
    deadline = time.monotonic() + 10
    names: set[str] = set()
    while time.monotonic() < deadline and not names:
        names = learned(await session.complete(other, 0, 5))
    assert names == {"acme/tool"}


# -- 4. the ARG line is an image line too ---------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
async def test_arg_default_used_as_an_image_has_hover_completion_and_fixes(
    started: Any, registry: Registry, profile: str
) -> None:
    host = registry.host
    session = await started(profile)
    text = (
        f"ARG BASE={host}/library/python:3.12-slim-bookworm\n"
        "ARG ALPINE=3.21\n"
        "FROM ${BASE} AS build\n"
        f"FROM {host}/library/alpine:${{ALPINE}}\n"
    )
    lines = text.splitlines()
    uri = session.open(text)
    await session.diagnostics(uri, lambda d: on_line("stale", 2)(d) and on_line("stale", 3)(d))
    doc = lsp.TextDocumentIdentifier(uri=uri)

    hover = await session.client.text_document_hover_async(
        lsp.HoverParams(text_document=doc, position=lsp.Position(line=0, character=20))
    )
    assert hover is not None and isinstance(hover.contents, lsp.MarkupContent)
    digest = registry.seeded["library/python"].digest("3.12-slim-bookworm")
    assert digest in hover.contents.value
    assert hover.range is not None and hover.range.start.character == len("ARG BASE=")

    column = lines[0].index(":3.12") + 1
    tags = await session.complete(uri, 0, column)
    labels = [i.label for i in sorted(tags.items, key=lambda i: i.sort_text or "")]
    assert labels and labels[0].endswith("-slim-bookworm"), labels[:5]
    edit = tags.items[0].text_edit
    assert isinstance(edit, lsp.TextEdit) and edit.range.start.character == column
    tag_only = await session.complete(uri, 1, len("ARG ALPINE=3."))
    assert "3.24" in {i.label for i in tag_only.items}

    for line in (0, 1):
        titles = [a.title for a in await actions_at(session, uri, line)]
        assert any(t.startswith("Update to") for t in titles), (line, titles)
    update = next(a for a in await actions_at(session, uri, 1) if a.title.startswith("Update to"))
    assert update.edit is not None and update.edit.document_changes
    change = update.edit.document_changes[0]
    assert isinstance(change, lsp.TextDocumentEdit)
    assert change.edits[0].range.start.line == 1  # the fix edits the ARG line


# -- 5. hadolint follows, never in the way --------------------------------------------


def slow_hadolint(folder: Path, seconds: float) -> tuple[Path, Path]:
    """The real hadolint behind a script that takes ``seconds`` longer and logs when each
    run starts and ends (to count how many run at once)."""
    real = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    log = folder / "hadolint-runs.log"
    script = folder / "hadolint"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "start $(date +%s.%N)" >> "{log}"\n'
        f"sleep {seconds}\n"
        f'"{real}" "$@"\n'
        "rc=$?\n"
        f'echo "end $(date +%s.%N)" >> "{log}"\n'
        "exit $rc\n"
    )
    script.chmod(0o755)
    return script, log


@pytest.mark.parametrize("profile", PROFILES)
async def test_hadolint_findings_are_carried_and_runs_never_pile_up(
    started: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, profile: str
) -> None:
    script, log = slow_hadolint(tmp_path, 0.4)
    monkeypatch.setenv("PORTSIDE_HADOLINT", str(script))
    session = await started(profile, init={"debounceMs": 5, "remoteChecks": False})
    body = "FROM alpine:3.21\nRUN apt-get update && apt-get install -y curl\n"
    uri = session.open(body)
    await session.diagnostics(uri, lambda d: any(str(x.code).startswith("hadolint/") for x in d))
    published = record(session)
    texts = {}
    comment = "# typed quickly"
    for n in range(1, len(comment) + 1):
        text = comment[:n] + "\n" + body
        session.change(uri, text)
        texts[session.versions[uri]] = text
        await asyncio.sleep(0.02)
    last = session.versions[uri]
    for _ in range(500):
        if any(p.version == last for p in published if p.uri == uri):
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(2)  # the runs started while typing end
    mine = [p for p in published if p.uri == uri and p.version in texts]
    assert mine
    for params in mine:
        # Local findings and hadolint's (moved one line down) in every publish.
        codes = {(d.range.start.line, str(d.code)) for d in params.diagnostics}
        assert (1, "unpinned") in codes, (params.version, codes)
        assert any(line == 2 and code.startswith("hadolint/") for line, code in codes), codes
    # One hadolint at a time, however fast the edits came.
    running = most = 0
    events = sorted(
        (float(stamp), kind) for kind, stamp in (x.split() for x in log.read_text().splitlines())
    )
    for _, kind in events:
        running += 1 if kind == "start" else -1
        most = max(most, running)
    assert most == 1, events
    assert len([k for _, k in events if k == "start"]) < len(comment)  # not one per edit


def logging_hadolint(folder: Path) -> tuple[Path, Path]:
    """The real hadolint behind a script that logs, per run, the CPU priority (niceness)
    it runs at and the first line of the text it was given."""
    real = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    log = folder / "hadolint-runs.log"
    script = folder / "hadolint"
    # The niceness is read once the whole text has arrived: the server writes it after
    # it has set the priority, so what is logged is what hadolint runs at.
    script.write_text(
        "#!/bin/sh\n"
        f'text="{folder}/input.$$"\n'
        'cat > "$text"\n'
        "nice=$(cut -d')' -f2 /proc/$$/stat | cut -d' ' -f18)\n"
        f'echo "$nice $(head -n 1 "$text")" >> "{log}"\n'
        f'exec "{real}" "$@" < "$text"\n'
    )
    script.chmod(0o755)
    return script, log


@pytest.mark.parametrize("profile", PROFILES)
async def test_hadolint_runs_behind_the_editor_only_once_typing_pauses(
    started: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, profile: str
) -> None:
    script, log = logging_hadolint(tmp_path)
    monkeypatch.setenv("PORTSIDE_HADOLINT", str(script))
    session = await started(profile, init={"debounceMs": 0, "remoteChecks": False})
    body = "FROM alpine:3.21\nRUN apt-get update && apt-get install -y curl\n"
    uri = session.open("# opened\n" + body)
    await session.diagnostics(uri, on_line("hadolint/DL3008", 2))
    # Edits in a row, as fast as the client sends them, each on a line of its own.
    for n in range(1, 16):
        session.change(uri, f"# edit {n}\n" + body)
    for _ in range(1000):  # a hang guard: hadolint's run on the last text ends
        if log.read_text().rstrip().endswith("# edit 15"):
            break
        await asyncio.sleep(0.02)
    runs = [line.split(" ", 1) for line in log.read_text().splitlines()]
    # hadolint saw the text opened and the text typing paused on, nothing in between.
    assert [text for _, text in runs] == ["# opened", "# edit 15"], runs
    # Each run yields the CPU to the server's answers.
    assert all(int(nice) >= 10 for nice, _ in runs), runs
    await session.diagnostics(uri, on_line("hadolint/DL3008", 2))
