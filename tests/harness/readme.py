"""Snippets of the README, so tests run what users copy and the README cannot drift."""

from __future__ import annotations

import re

from harness.snapshot import ROOT


def readme_snippet(name: str) -> str:
    """The fenced block right after ``<!-- snippet: NAME -->`` in README.md."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"<!-- snippet: {re.escape(name)} -->\n```\w*\n(.*?)```", text, re.S)
    if match is None:
        raise AssertionError(f"README.md lost its {name!r} snippet")
    return match.group(1)
