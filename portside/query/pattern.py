"""Regular expressions for ``=~``, run by RE2: matching time linear in the text, always.

Python's ``re`` backtracks: ``tag =~ "^(a|a)*b"`` against a long tag runs for minutes.
RE2 guarantees linear time and refuses, when compiling, what it cannot run that way
(backreferences, lookaround); the query reports that with a caret like any other
mistake. ``re`` is still asked, silently, where a pattern fails in both, because its
errors know the column of the mistake.
"""

from __future__ import annotations

import re
import warnings

import re2  # google-re2 ships no type information: see [[tool.mypy.overrides]]

__all__ = ["LinearRegex", "RegexError", "compile_regex"]

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would write its own parse errors to stderr


class RegexError(Exception):
    """A pattern RE2 cannot run: ``detail`` says why, ``offset`` where (if known)."""

    def __init__(self, detail: str, offset: int | None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.offset = offset


class LinearRegex:
    """A compiled pattern; ``search`` takes time linear in the text searched."""

    __slots__ = ("_compiled", "pattern")

    def __init__(self, pattern: str, compiled: object) -> None:
        self.pattern = pattern
        self._compiled = compiled

    def search(self, text: str) -> bool:
        return self._compiled.search(text) is not None  # type: ignore[attr-defined]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LinearRegex) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    def __repr__(self) -> str:
        return f"LinearRegex({self.pattern!r})"


def compile_regex(pattern: str) -> LinearRegex:
    """``pattern`` compiled by RE2, or RegexError."""
    try:
        return LinearRegex(pattern, re2.compile(pattern, options=_OPTIONS))
    except re2.error as exc:
        reason = exc.args[0] if exc.args else ""
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        reason = str(reason)
    # Where is the mistake? ``re`` knows columns; its FutureWarnings ("possible nested
    # set") are about its own future, not this query's, and never reach the user.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise RegexError(str(exc.msg), exc.pos) from None
        except (RecursionError, OverflowError, MemoryError):
            pass
    # ``re`` can run it but not in linear time: RE2 names the part ("invalid perl
    # operator: (?=", "invalid escape sequence: \1").
    _what, _, part = reason.partition(": ")
    offset = pattern.find(part) if part else -1
    detail = reason or "not supported"
    raise RegexError(
        f"{detail} (=~ runs in linear time: no backreferences or lookaround)",
        offset if offset >= 0 else None,
    )
