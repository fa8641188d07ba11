"""Positions between the core's model (code points) and the client's encoding.

The core counts characters in code points (`portside.dockerfile.Position`); the client
counts in the position encoding negotiated at ``initialize`` (UTF-16 unless the client
offered UTF-8 or UTF-32 first). Positions from the client are clamped: a line past the
end is the last line, a character past the line's end is the line's end, a column
inside a multi-unit character rounds up to the character's end.
"""

from __future__ import annotations

from lsprotocol import types as lsp

from portside.dockerfile import Document, Position, Range


def _units(char: str, encoding: str) -> int:
    code = ord(char)
    if encoding == "utf-8":
        return 1 if code < 0x80 else 2 if code < 0x800 else 3 if code < 0x10000 else 4
    if encoding == "utf-32":
        return 1
    return 2 if code > 0xFFFF else 1


class Codec:
    """Converts positions for one document text in one negotiated encoding."""

    __slots__ = ("document", "encoding")

    def __init__(self, document: Document, encoding: str = "utf-16") -> None:
        self.document = document
        self.encoding = encoding if encoding in ("utf-8", "utf-16", "utf-32") else "utf-16"

    def _clamp_line(self, line: int) -> int:
        return min(max(line, 0), max(len(self.document.lines) - 1, 0))

    def to_core(self, position: lsp.Position) -> Position:
        """A client position as a core position, clamped into the text."""
        if position.line >= len(self.document.lines):
            last = self._clamp_line(position.line)
            return Position(last, len(self.document.line(last)))
        line = self._clamp_line(position.line)
        text = self.document.line(line)
        if self.encoding == "utf-32":
            return Position(line, min(max(position.character, 0), len(text)))
        wanted = max(position.character, 0)
        units = 0
        for index, char in enumerate(text):
            if units >= wanted:
                return Position(line, index)
            units += _units(char, self.encoding)
        return Position(line, len(text))

    def column(self, line: int, character: int) -> int:
        text = self.document.line(line)
        character = min(max(character, 0), len(text))
        if self.encoding == "utf-32":
            return character
        prefix = text[:character]
        if prefix.isascii():
            return character
        return sum(_units(c, self.encoding) for c in prefix)

    def position(self, position: Position) -> lsp.Position:
        return lsp.Position(line=position.line, character=self.column(*position))

    def range(self, where: Range) -> lsp.Range:
        return lsp.Range(start=self.position(where.start), end=self.position(where.end))

    def core_range(self, where: lsp.Range) -> Range:
        return Range(self.to_core(where.start), self.to_core(where.end))
