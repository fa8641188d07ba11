"""Findings rendered for people and machines: a plain table, JSON and SARIF 2.1.0.

Shared by the command line and the pre-commit hooks so both print the same thing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from portside import __version__
from portside.policy import Finding

_SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note", "hint": "note"}
_RULE_TEXT = {
    "stale": "A newer tag in the same version line exists",
    "variant-update": "The same version exists on a newer variant",
    "unpinned": "The image is not pinned to a digest",
    "latest": "The image uses no tag or the 'latest' tag",
    "tag-moved": "The pinned digest is no longer what the tag points to",
    "not-found": "The repository, tag or digest does not exist",
    "platform-missing": "The requested platform is not in the image index",
    "unreachable": "The registry could not be asked",
    "credentials-refused": "The registry refused the configured credentials",
    "invalid-reference": "The image reference is not valid",
    "disallowed-registry": "The registry is not on the allowed list",
    "unresolved": "The reference uses a build argument without a default",
}


def to_json(findings: Sequence[Finding]) -> str:
    return json.dumps([f.to_json() for f in findings], indent=2)


def to_text(findings: Sequence[Finding]) -> str:
    """``file:line:col: severity kind: message`` lines, the shape editors can jump to."""
    lines = []
    for f in findings:
        where = f"{f.file}:{f.range.start.line + 1}:{f.range.start.character + 1}"
        line = f"{where}: {f.severity} [{f.kind}] {f.message}"
        if f.suggestion:
            line += f"\n    suggestion: {f.suggestion}"
        lines.append(line)
    return "\n".join(lines)


def to_sarif(findings: Sequence[Finding]) -> str:
    kinds = sorted({f.kind for f in findings})
    results: list[dict[str, Any]] = []
    for f in findings:
        result: dict[str, Any] = {
            "ruleId": f.kind,
            "level": _SARIF_LEVEL[f.severity],
            "message": {"text": f.message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": f.file},
                        "region": {
                            "startLine": f.range.start.line + 1,
                            "startColumn": f.range.start.character + 1,
                            "endLine": f.range.end.line + 1,
                            "endColumn": f.range.end.character + 1,
                        },
                    }
                }
            ],
        }
        if f.edit is not None:
            result["fixes"] = [
                {
                    "description": {"text": f"use {f.suggestion}"},
                    "artifactChanges": [
                        {
                            "artifactLocation": {"uri": f.file},
                            "replacements": [
                                {
                                    "deletedRegion": {
                                        "startLine": f.edit.range.start.line + 1,
                                        "startColumn": f.edit.range.start.character + 1,
                                        "endLine": f.edit.range.end.line + 1,
                                        "endColumn": f.edit.range.end.character + 1,
                                    },
                                    "insertedContent": {"text": f.edit.new_text},
                                }
                            ],
                        }
                    ],
                }
            ]
        results.append(result)
    doc = {
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "portside",
                        "version": __version__,
                        "rules": [
                            {"id": kind, "shortDescription": {"text": _RULE_TEXT.get(kind, kind)}}
                            for kind in kinds
                        ],
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(doc, indent=2)
