"""The language server's features as plain functions (no JSON-RPC), settings and
positions."""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types as lsp

from lsp_server import features
from lsp_server.positions import Codec
from lsp_server.settings import Settings, merge, resolve_settings
from portside import versions
from portside.config import PolicyConfig
from portside.dockerfile import Position, Range, parse
from portside.policy import local_findings


def test_codec_counts_in_each_encoding_and_clamps() -> None:
    doc = parse("RUN echo 😀é x\r\nFROM a\n").document
    for encoding, column in (("utf-16", 13), ("utf-8", 16), ("utf-32", 12)):
        codec = Codec(doc, encoding)
        assert codec.column(0, 12) == column
        assert codec.to_core(lsp.Position(line=0, character=column)) == Position(0, 12)
        assert codec.to_core(lsp.Position(line=0, character=999)) == Position(0, 13)
        assert codec.to_core(lsp.Position(line=99, character=0)) == Position(2, 0)
    # A column inside the surrogate pair rounds up to the character's end.
    assert Codec(doc, "utf-16").to_core(lsp.Position(line=0, character=10)) == Position(0, 10)


def test_settings_precedence_and_editor_only_keys(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.portside.lsp]\ndebounce-ms = 5\ntrusted = true\nseverity = { latest = "hint" }\n'
    )
    problems: list[str] = []
    settings = resolve_settings(
        {"portside": {"debounceMs": 1, "trusted": False, "severity": {"unpinned": "error"}}},
        {"debounceMs": 2, "networkBudgetMs": 7, "bogus": 1},
        tmp_path,
        problems,
    )
    assert settings.debounce_ms == 5 and settings.network_budget_ms == 7
    assert settings.trusted is False  # the workspace cannot trust itself
    assert dict(settings.severity) == {"unpinned": "error", "latest": "hint"}
    assert any("bogus" in p for p in problems) and any("trusted" in p for p in problems)
    assert merge(Settings(), {"debounceMs": "x"}, source="t", editor=True).debounce_ms == 250


def test_completion_contexts() -> None:
    text = (
        "ARG V=1\n"
        "FROM reg.io:5000/a/b:1.2@sha256:ab AS one\n"
        "FROM \n"
        "COPY --from=on /a /b\n"
        "RUN --mount=type=cache,from=o,target=/x echo ${V\n"
    )
    doc = parse(text)
    tag = features.completion_context(doc, Position(1, 22))
    assert tag is not None and tag.kind == "tag" and tag.prefix == "1"
    assert tag.replace == Range(Position(1, 21), Position(1, 24))
    assert features.image_reference(tag) is not None
    digest = features.completion_context(doc, Position(1, 30))
    assert digest is not None and digest.kind == "digest"
    name = features.completion_context(doc, Position(2, 5))
    assert name is not None and name.kind == "image"
    copy = features.completion_context(doc, Position(3, 14))
    assert copy is not None and copy.kind == "stage-or-image" and copy.prefix == "on"
    mount = features.completion_context(doc, Position(4, 29))
    assert mount is not None and mount.kind == "stage-or-image" and mount.prefix == "o"
    arg = features.completion_context(doc, Position(4, len(text.splitlines()[4])))
    assert arg is not None and arg.kind == "arg" and arg.prefix == "V"
    assert features.completion_context(doc, Position(1, 2)) is None
    assert [i.label for i in features.stage_items(doc, copy, Codec(doc.document))] == ["one"]


def test_order_tags_current_line_first() -> None:
    tags = ["3.11-slim", "3.12", "3.12-slim", "3.13-slim", "3.13", "latest"]
    ordered = features.order_tags(tags, "3.12-slim", versions.DEFAULT_SCHEME)
    assert ordered[:3] == ["3.13-slim", "3.12-slim", "3.11-slim"]
    assert ordered[-1] == "latest"


def test_code_actions_suppress_comment_keeps_indentation() -> None:
    text = "FROM alpine:3.20 AS a\n  FROM alpine\n"
    doc = parse(text)
    findings, _ = local_findings(doc, file="Dockerfile", text=text, config=PolicyConfig())
    actions = features.code_actions(
        doc, findings, Range(Position(1, 0), Position(1, 5)), "file:///D", 3, Codec(doc.document)
    )
    ignore = next(a for a in actions if "ignore=latest" in a.title)
    assert ignore.edit is not None and ignore.edit.document_changes
    edit = ignore.edit.document_changes[0]
    assert isinstance(edit, lsp.TextDocumentEdit)
    assert edit.edits[0].new_text == "  # portside: ignore=latest\n"
    assert any(a.command and a.command.command == "portside.pinAll" for a in actions)


def test_age_size_and_registry_pages() -> None:
    import datetime as dt

    now = dt.datetime(2025, 1, 10, tzinfo=dt.timezone.utc)
    assert features.age("2025-01-07T00:00:00Z", now) == "3 days old"
    assert features.age("garbage", now) is None
    from portside.images import human_size

    sizes = [999, 1_000, 52_400_000, 999_949_999, 3_500_000_000, 12_000_000_000_000]
    assert [human_size(n) for n in sizes] == [
        "999 B", "1.0 kB", "52.4 MB", "999.9 MB", "3.5 GB", "12000.0 GB"
    ]  # fmt: skip
    from portside.reference import Reference

    assert features.registry_page(Reference.parse("python:3")) == "https://hub.docker.com/_/python"
    assert features.registry_page(Reference.parse("localhost:5000/x")) is None


def test_update_options_per_level_pinned_and_arg() -> None:
    from portside.policy import update_options
    from portside.reference import Digest

    tags = ["1.2.3", "1.2.5", "1.4.0", "2.0.1", "1.2.3-alpine"]
    text = "ARG V=1.2.3\nFROM acme/tool:${V}\nFROM acme/tool:1.2.3@sha256:" + "a" * 64 + "\n"
    doc = parse(text)
    by_arg = update_options(doc.images[0], tags)
    assert [(o.level, o.tag) for o in by_arg] == [
        ("patch", "1.2.5"),
        ("minor", "1.4.0"),
        ("major", "2.0.1"),
    ]
    assert by_arg[0].edit.range.start.line == 0  # the ARG default is what changes
    assert by_arg[0].edit.new_text == "1.2.5"
    new = Digest.parse("sha256:" + "b" * 64)
    pinned = update_options(doc.images[1], tags, digest_for=lambda t: new if t == "1.4.0" else None)
    assert [(o.level, o.suggestion) for o in pinned] == [("minor", f"acme/tool:1.4.0@{new}")]
    assert update_options(doc.images[1], tags) == []  # a pin is never dropped
