"""The VS Code extension's settings mirror the language server's settings model.

``contributes.configuration`` in vscode-extension/package.json is what users see and
what the extension sends the server (``portside.*`` minus the extension's own
``portside.server.*``); lsp_server/settings.py is what the server accepts. This test
fails when one changes without the other: a missing or extra key, another type, another
default.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from lsp_server.settings import Settings
from portside.config import SEVERITIES

MANIFEST = Path(__file__).resolve().parent.parent / "vscode-extension" / "package.json"
# Set by the extension from VS Code's workspace trust, never by the user.
FROM_THE_EDITOR = {"trusted"}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _contributed() -> dict[str, dict[str, Any]]:
    props = json.loads(MANIFEST.read_text(encoding="utf-8"))["contributes"]["configuration"][
        "properties"
    ]
    return {
        key.removeprefix("portside."): value
        for key, value in props.items()
        if not key.startswith("portside.server.")
    }


def _default(f: Any) -> Any:
    if f.default is not MISSING:
        return f.default
    return f.default_factory()


def _schema_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, tuple):
        return "array"
    return "object"


def test_every_server_setting_is_contributed_and_nothing_else() -> None:
    server = {_camel(f.name) for f in fields(Settings)} - FROM_THE_EDITOR
    assert set(_contributed()) == server


def test_types_and_defaults_match_the_server() -> None:
    contributed = _contributed()
    for f in fields(Settings):
        key = _camel(f.name)
        if key in FROM_THE_EDITOR:
            continue
        default = _default(f)
        prop = contributed[key]
        assert prop["type"] == _schema_type(default), key
        expected = list(default) if isinstance(default, tuple) else default
        assert prop["default"] == expected, key
        if isinstance(default, tuple):
            assert prop["items"] == {"type": "string"}, key
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            assert prop["minimum"] == 0, key  # the server refuses negative numbers
        assert prop.get("description") or prop.get("markdownDescription"), key


def test_severity_values_are_the_cores() -> None:
    assert _contributed()["severity"]["additionalProperties"]["enum"] == list(SEVERITIES)


def test_settings_that_widen_what_is_contacted_are_restricted_in_untrusted_workspaces() -> None:
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    restricted = set(manifest["capabilities"]["untrustedWorkspaces"]["restrictedConfigurations"])
    assert {
        "portside.server.command",
        "portside.trustedRegistries",
        "portside.insecureRegistries",
        "portside.registries",
    } <= restricted
