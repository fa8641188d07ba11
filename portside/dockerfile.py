"""A tolerant, position-aware Dockerfile model.

`parse` never raises: the language server feeds it half-typed text on every keystroke,
so anything BuildKit would reject becomes a `Problem` with a range instead of an
exception. Line handling follows BuildKit's parser (moby/buildkit
`frontend/dockerfile/parser`): lines end at ``\\n`` with an optional ``\\r`` before it,
directives are only read at the very top, comment and blank lines inside a line
continuation are skipped, heredoc bodies follow the line that opens them.

Positions are 0-based; `character` counts code points of the text as given (a leading
BOM is character 0 of line 0). `Document` converts to and from the UTF-16 columns that
LSP clients use.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

__all__ = [
    "AUTOMATIC_ARGS",
    "Arg",
    "Comment",
    "Directive",
    "Dockerfile",
    "Document",
    "Flag",
    "Heredoc",
    "ImageUse",
    "Instruction",
    "Position",
    "Problem",
    "Range",
    "Stage",
    "Substitution",
    "parse",
]

# BuildKit sets these itself, so they are declared but their value is unknown here.
AUTOMATIC_ARGS = frozenset(
    {
        "BUILDPLATFORM",
        "BUILDOS",
        "BUILDARCH",
        "BUILDVARIANT",
        "TARGETPLATFORM",
        "TARGETOS",
        "TARGETARCH",
        "TARGETVARIANT",
        "TARGETSTAGE",
        "BUILDKIT_SYNTAX",
    }
)

KNOWN_INSTRUCTIONS = frozenset(
    {
        "ADD",
        "ARG",
        "CMD",
        "COPY",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "FROM",
        "HEALTHCHECK",
        "LABEL",
        "MAINTAINER",
        "ONBUILD",
        "RUN",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    }
)

ImageKind = Literal["from", "copy-from", "mount-from"]
_Span = tuple[int, int]

# Go's unicode.IsSpace; Python's str.isspace also accepts \x1c-\x1f, which BuildKit
# treats as ordinary characters.
_WS = (
    "\t\n\v\f\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000"
)
_DIRECTIVE_RE = re.compile(
    r"#[\t\n\f\r ]*([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z"
)
_DIRECTIVES = frozenset({"syntax", "escape", "check"})
# An escape character at the end of a line continues it, unless it is itself escaped.
_CONTINUATION = {
    "\\": re.compile(r"(?<!\\)\\[ \t]*\Z"),
    "`": re.compile(r"(?<!`)`[ \t]*\Z"),
}
_WS_RUN = re.compile(f"[{re.escape(_WS)}]*")
# A flag without quotes or backslashes, the common case, read in one step.
_PLAIN_FLAG = re.compile(f"--[^{re.escape(_WS)}'\"\\\\]*")
_SEP_RE = re.compile(r"[\t\v\f\r ]+")  # BuildKit's reWhitespace
_TOKEN_RE = re.compile(r"[^\t\v\f\r ]+")
_HEREDOC_RE = re.compile(r"(\d*)<<(-?)([^<]*)\Z")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DIGITS_RE = re.compile(r"[0-9]+\Z")
_JSON_FORMS = frozenset({"RUN", "CMD", "ENTRYPOINT", "SHELL", "VOLUME", "COPY", "ADD"})
_HEREDOC_FORMS = frozenset({"RUN", "COPY", "ADD"})


# --------------------------------------------------------------------------- positions


class Position(NamedTuple):
    """0-based line and character (code points). A tuple: the LSP re-parses on every
    keystroke and builds thousands of these, and tuple order is position order."""

    line: int
    character: int


class Range(NamedTuple):
    start: Position
    end: Position

    def contains(self, position: Position) -> bool:
        """Inclusive at both ends, so a cursor just after a token still hits it."""
        return self.start <= position <= self.end


class Document:
    """The text split into lines the way BuildKit does, with UTF-16 conversions."""

    __slots__ = ("_line_offsets", "_raw_lines", "lines", "scan_lines", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        # Only \n ends a line (BuildKit's scanner); a \r before it is not content.
        self._raw_lines = text.split("\n")
        self.lines: tuple[str, ...] = tuple(
            raw[:-1] if raw.endswith("\r") else raw for raw in self._raw_lines
        )
        self._line_offsets: list[int] | None = None
        # A final "\n" opens an empty line for an editor but not for BuildKit's scanner.
        self.scan_lines = len(self.lines) - (1 if text.endswith("\n") else 0)

    def line(self, index: int) -> str:
        return self.lines[index] if 0 <= index < len(self.lines) else ""

    def utf16_column(self, line: int, character: int) -> int:
        """UTF-16 code units before `character` on `line` (astral characters count 2)."""
        prefix = self.line(line)[: max(character, 0)]
        return len(prefix.encode("utf-16-le", "surrogatepass")) // 2

    def character_from_utf16(self, line: int, column: int) -> int:
        """Inverse of `utf16_column`; a column inside a surrogate pair rounds up."""
        text = self.line(line)
        if column <= 0:
            return 0
        units = 0
        for index, char in enumerate(text):
            if units >= column:
                return index
            units += 2 if ord(char) > 0xFFFF else 1
        return len(text)

    def to_utf16(self, position: Position) -> Position:
        return Position(position.line, self.utf16_column(position.line, position.character))

    def from_utf16(self, position: Position) -> Position:
        return Position(position.line, self.character_from_utf16(position.line, position.character))

    def offset_at(self, position: Position) -> int:
        """Index into `text` (code points) of a position, for byte-preserving edits."""
        if self._line_offsets is None:
            offsets, total = [], 0
            for raw in self._raw_lines:
                offsets.append(total)
                total += len(raw) + 1
            self._line_offsets = offsets
        line = min(max(position.line, 0), len(self.lines) - 1)
        character = min(max(position.character, 0), len(self.lines[line]))
        return self._line_offsets[line] + character


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Problem:
    message: str
    range: Range


@dataclass(frozen=True, slots=True)
class Comment:
    text: str  # after '#', stripped
    range: Range


@dataclass(frozen=True, slots=True)
class Directive:
    name: str  # lower case: syntax, escape, check
    value: str
    range: Range
    value_range: Range


@dataclass(frozen=True, slots=True)
class Flag:
    name: str  # without the leading "--"
    value: str | None  # quotes removed; None for a bare flag such as --link
    text: str  # as written
    range: Range
    value_range: Range | None  # the value as written, inside quotes if it is quoted


@dataclass(frozen=True, slots=True)
class Heredoc:
    name: str
    chomp: bool  # <<- strips leading tabs
    expand: bool  # False when the delimiter is quoted
    file_descriptor: int | None
    marker_range: Range  # the <<EOF word on the instruction line
    body: str  # every body line followed by "\n", as BuildKit gives it
    body_range: Range | None  # None for an empty body
    terminated: bool
    terminator_range: Range | None


@dataclass(frozen=True, slots=True)
class Instruction:
    keyword: str  # upper case
    keyword_text: str  # as written
    keyword_range: Range
    range: Range  # keyword to end of the last line, heredoc terminators included
    line_start: int  # 0-based, inclusive
    line_end: int
    text: str  # the logical line: continuations joined, comment lines dropped
    flags: tuple[Flag, ...]
    arguments: str
    arguments_range: Range
    json_args: tuple[str, ...] | None
    heredocs: tuple[Heredoc, ...]
    onbuild: Instruction | None  # the wrapped instruction of ONBUILD

    @property
    def is_json(self) -> bool:
        return self.json_args is not None

    def flag(self, name: str) -> Flag | None:
        return next((f for f in self.flags if f.name == name), None)


@dataclass(frozen=True, slots=True)
class Substitution:
    """One `$VAR` / `${VAR...}` inside a reference, and the ARG it reads."""

    name: str
    range: Range
    # The ARG whose default supplies the value: for a stage ARG re-declared without a
    # default, the global ARG it inherits. Edit `arg.default_range` to change the value.
    arg: Arg | None = field(repr=False)
    automatic: bool  # a BuildKit platform ARG such as TARGETARCH

    @property
    def default(self) -> str | None:
        """The ARG default as written, which a fix edits instead of the reference."""
        return self.arg.default if self.arg is not None else None

    @property
    def default_range(self) -> Range | None:
        return self.arg.default_range if self.arg is not None else None


@dataclass(frozen=True, slots=True)
class Arg:
    name: str
    default: str | None  # as written, quotes included
    value: str | None  # default after substitution; None when unknown or no default
    range: Range
    name_range: Range
    default_range: Range | None
    stage: int | None  # None for a global ARG (before the first FROM)
    substitutions: tuple[Substitution, ...]
    instruction: Instruction = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class ImageUse:
    text: str  # as written, e.g. python:${PY_VERSION}-slim
    resolved: str | None  # after ARG substitution with defaults; None if unknown
    range: Range
    kind: ImageKind
    stage: int  # the stage it is used in
    platform: str | None  # the --platform value as written
    platform_resolved: str | None
    is_stage_reference: bool
    stage_reference: int | None  # index of the referenced stage, when known
    is_scratch: bool
    substitutions: tuple[Substitution, ...]
    instruction: Instruction = field(repr=False, compare=False)

    @property
    def is_image(self) -> bool:
        """True when this names a registry image (not a stage, not scratch)."""
        return not self.is_stage_reference and not self.is_scratch


@dataclass(frozen=True, slots=True)
class Stage:
    index: int
    name: str | None  # lower case, as BuildKit matches it
    name_range: Range | None
    instruction: Instruction = field(repr=False)
    base: str | None  # the image text as written
    image: ImageUse | None
    platform: Flag | None
    range: Range
    instructions: tuple[Instruction, ...] = field(repr=False)
    args: tuple[Arg, ...] = field(repr=False)


@dataclass(frozen=True, slots=True)
class Dockerfile:
    document: Document = field(repr=False, compare=False)
    directives: tuple[Directive, ...]
    escape: str
    instructions: tuple[Instruction, ...]
    stages: tuple[Stage, ...]
    args: tuple[Arg, ...]  # global ones first, then per stage in file order
    images: tuple[ImageUse, ...]
    comments: tuple[Comment, ...]
    problems: tuple[Problem, ...]
    # How each instruction was read, by its first line: what ``parse(text, previous=…)``
    # reuses where the same lines still sit at the same place.
    _reads: dict[int, _Read] = field(default_factory=dict, repr=False, compare=False)

    @property
    def global_args(self) -> tuple[Arg, ...]:
        return tuple(a for a in self.args if a.stage is None)

    def directive(self, name: str) -> Directive | None:
        return next((d for d in self.directives if d.name == name.lower()), None)

    def stage_named(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name.lower()), None)

    def instruction_at(self, position: Position) -> Instruction | None:
        for instruction in self.instructions:
            if instruction.line_start <= position.line <= instruction.line_end:
                return instruction
        return None

    def image_at(self, position: Position) -> ImageUse | None:
        return next((i for i in self.images if i.range.contains(position)), None)


# --------------------------------------------------------------------------- logical lines


class _Logical:
    """A logical line (continuations joined) and where each piece sits in the file."""

    __slots__ = ("chars", "lines", "starts", "text")

    def __init__(self) -> None:
        self.text = ""
        self.starts: list[int] = []
        self.lines: list[int] = []
        self.chars: list[int] = []

    def add(self, line: int, character: int, piece: str) -> None:
        self.starts.append(len(self.text))
        self.lines.append(line)
        self.chars.append(character)
        self.text += piece

    def pos(self, offset: int) -> Position:
        k = 0 if len(self.starts) == 1 else bisect_right(self.starts, offset) - 1
        return _new(Position, (self.lines[k], self.chars[k] + offset - self.starts[k]))

    def end_pos(self, offset: int) -> Position:
        # An end offset belongs to the piece it closes, not to the start of the next line.
        if offset <= 0:
            return self.pos(0)
        k = 0 if len(self.starts) == 1 else bisect_right(self.starts, offset - 1) - 1
        return _new(Position, (self.lines[k], self.chars[k] + offset - self.starts[k]))

    def range(self, start: int, end: int) -> Range:
        if len(self.starts) == 1:  # one physical line: most instructions, kept cheap
            line, base = self.lines[0], self.chars[0]
            begin = _new(Position, (line, base + start))
            finish = _new(Position, (line, base + end)) if end > start else begin
            return _new(Range, (begin, finish))
        begin = self.pos(start)
        return _new(Range, (begin, self.end_pos(end) if end > start else begin))


# Builds a Position or Range without the NamedTuple keyword machinery: thousands per parse.
_new = tuple.__new__


# --------------------------------------------------------------------------- parsing


def parse(text: str, previous: Dockerfile | None = None) -> Dockerfile:
    """Parse any text into a Dockerfile model. Never raises.

    ``previous``: the model of the text before an edit (an editor's last version). Its
    instructions whose lines are unchanged and at the same place are reused instead of
    read again; the model is the same as without it, only faster to make.
    """
    try:
        return _Parser(text, previous).run()
    except Exception as error:  # pragma: no cover - a bug here must not kill an editor
        document = Document(text if isinstance(text, str) else "")
        where = Range(Position(0, 0), Position(0, 0))
        problem = Problem(f"internal parser error: {type(error).__name__}: {error}", where)
        return Dockerfile(document, (), "\\", (), (), (), (), (), (problem,))


@dataclass(frozen=True, slots=True)
class _Read:
    """One instruction as read from its lines (``first`` up to ``after``), with the
    comments and problems the reading found. ``closed``: where it ends was decided by
    its own lines (not by the end of the text), so the same lines read the same."""

    after: int
    instruction: Instruction | None  # None: a lone continuation character
    head: _Head | None
    comments: tuple[Comment, ...]
    problems: tuple[Problem, ...]
    closed: bool


class _Parser:
    def __init__(self, text: str, previous: Dockerfile | None = None) -> None:
        self.doc = Document(text)
        self.escape = "\\"
        self.directives: list[Directive] = []
        self.comments: list[Comment] = []
        self.problems: list[Problem] = []
        self.instructions: list[Instruction] = []
        self.heads: list[_Head] = []  # parallel to instructions: offsets for ranges
        self.previous = previous
        self.reads: dict[int, _Read] = {}
        self.closed = True  # whether the instruction being read ended by its own lines

    def run(self) -> Dockerfile:
        first = self._read_directives()
        self._read_instructions(first)
        model = _Semantics(self.instructions, self.heads, self.escape, self.problems).run()
        return Dockerfile(
            self.doc,
            tuple(self.directives),
            self.escape,
            tuple(self.instructions),
            model.stages,
            model.args,
            model.images,
            tuple(self.comments),
            tuple(self.problems),
            self.reads,
        )

    def _reusable(self, index: int) -> _Read | None:
        """The previous model's reading of the instruction at line ``index``, if the
        same lines are there (an edit elsewhere in the text)."""
        previous = self.previous
        if previous is None or previous.escape != self.escape:
            return None
        read = previous._reads.get(index)
        if read is None or not read.closed or read.after > self.doc.scan_lines:
            return None
        old, new = previous.document._raw_lines, self.doc._raw_lines
        if old[index : read.after] != new[index : read.after]:
            return None
        return read

    def _problem(self, message: str, where: Range) -> None:
        self.problems.append(Problem(message, where))

    def _leading(self, index: int) -> int:
        line = self.doc.lines[index]
        start = 1 if index == 0 and line.startswith("\ufeff") else 0
        return len(line) - len(line[start:].lstrip(_WS))

    # Directives: consecutive `# name=value` lines at the very top; anything else
    # (a blank line, another comment, an unknown name, an instruction) ends them.
    def _read_directives(self) -> int:
        seen: set[str] = set()
        for index, line in enumerate(self.doc.lines):
            start = self._leading(index)
            match = _DIRECTIVE_RE.match(line, start)
            if match is None or match.group(1).lower() not in _DIRECTIVES:
                return index
            name, value = match.group(1).lower(), match.group(2)
            where = Range(Position(index, start), Position(index, match.end(2)))
            value_range = Range(Position(index, match.start(2)), Position(index, match.end(2)))
            self.comments.append(Comment(line[start + 1 :].strip(_WS), where))
            if name in seen:
                self._problem(f"only one {name} parser directive can be used", where)
                continue
            seen.add(name)
            self.directives.append(Directive(name, value, where, value_range))
            if name == "escape":
                if value in _CONTINUATION:
                    self.escape = value
                else:
                    self._problem(f"invalid escape token {value!r}: use ` or \\", value_range)
        return len(self.doc.lines)

    def _read_instructions(self, index: int) -> None:
        lines = self.doc.lines
        while index < self.doc.scan_lines:
            start = self._leading(index)
            line = lines[index]
            if start == len(line):
                index += 1
            elif line[start] == "#":
                self._comment(index, start)
                index += 1
            else:
                read = self._reusable(index)
                if read is not None:
                    self._replay(index, read)
                    index = read.after
                    continue
                comments, problems = len(self.comments), len(self.problems)
                count = len(self.instructions)
                self.closed = True
                after = self._read_instruction(index, start)
                made = len(self.instructions) > count
                self.reads[index] = _Read(
                    after,
                    self.instructions[-1] if made else None,
                    self.heads[-1] if made else None,
                    tuple(self.comments[comments:]),
                    tuple(self.problems[problems:]),
                    self.closed,
                )
                index = after

    def _replay(self, index: int, read: _Read) -> None:
        """A reading of the previous model, as if the lines were read again."""
        self.reads[index] = read
        self.comments += read.comments
        self.problems += read.problems
        if read.instruction is not None and read.head is not None:
            self.instructions.append(read.instruction)
            self.heads.append(read.head)

    def _comment(self, index: int, start: int) -> None:
        line = self.doc.lines[index]
        where = Range(Position(index, start), Position(index, len(line)))
        self.comments.append(Comment(line[start + 1 :].strip(_WS), where))

    def _trim(self, line: str, start: int) -> tuple[str, bool]:
        match = _CONTINUATION[self.escape].search(line, start)
        if match is None:
            return line[start:], False
        return line[start : match.start()], True

    def _read_instruction(self, index: int, start: int) -> int:
        lines = self.doc.lines
        logical = _Logical()
        piece, more = self._trim(lines[index], start)
        logical.add(index, start, piece)
        first = index
        while more and index + 1 < self.doc.scan_lines:
            index += 1
            stripped = lines[index].lstrip(_WS)
            if not stripped:
                continue  # BuildKit skips (and warns about) empty continuation lines
            if stripped[0] == "#":
                self._comment(index, len(lines[index]) - len(stripped))
                continue
            piece, more = self._trim(lines[index], 0)
            logical.add(index, 0, piece)
        if more:  # continued up to the end of the text: more text would change it
            self.closed = False
        if not logical.text.strip(_WS):
            return index + 1  # a lone continuation character: nothing to model
        head = _parse_line(logical, 0, self.escape, self.problems)
        heredocs: tuple[Heredoc, ...] = ()
        inner = head
        while inner.onbuild is not None:  # ONBUILD RUN <<EOF reads its body here too
            inner = inner.onbuild
        if inner.heredoc_names:
            heredocs, index = self._read_heredocs(inner.heredoc_names, index)
        last = Position(index, len(lines[index]))
        self.instructions.append(head.build(first, index, last, heredocs))
        self.heads.append(head)
        return index + 1

    def _read_heredocs(
        self, markers: list[tuple[str, bool, bool, int | None, Range]], index: int
    ) -> tuple[tuple[Heredoc, ...], int]:
        lines, raw = self.doc.lines, self.doc._raw_lines
        result = []
        for name, chomp, expand, fd, marker_range in markers:
            body_start = index + 1
            end = body_start
            terminated = False
            while end < self.doc.scan_lines:
                candidate = lines[end].lstrip("\t") if chomp else lines[end]
                if candidate == name:
                    terminated = True
                    break
                end += 1
            body_end = end if terminated else self.doc.scan_lines
            # BuildKit keeps a \r of a CRLF body line in the content.
            body = "".join(raw[i] + "\n" for i in range(body_start, body_end))
            body_range = None
            if body_end > body_start:
                last = body_end - 1
                body_range = Range(Position(body_start, 0), Position(last, len(lines[last])))
            terminator = None
            if terminated:
                terminator = Range(Position(end, 0), Position(end, len(lines[end])))
            else:
                self._problem(f"unterminated heredoc {name!r}", marker_range)
                self.closed = False  # its body runs to the end of the text
            result.append(
                Heredoc(
                    name, chomp, expand, fd, marker_range, body, body_range, terminated, terminator
                )
            )
            index = end if terminated else max(self.doc.scan_lines - 1, index)
        return tuple(result), index


class _Head:
    """An instruction parsed from its logical line, waiting for its heredocs."""

    __slots__ = (
        "args_end",
        "args_start",
        "arguments",
        "flag_spans",
        "flags",
        "heredoc_names",
        "json_args",
        "keyword",
        "kw_end",
        "kw_start",
        "logical",
        "onbuild",
        "start",
    )

    def __init__(self, logical: _Logical, start: int) -> None:
        self.logical = logical
        self.start = start
        self.keyword = ""
        self.kw_start = self.kw_end = self.args_start = self.args_end = start
        self.arguments = ""
        self.flags: tuple[Flag, ...] = ()
        self.flag_spans: list[_Span | None] = []
        self.json_args: tuple[str, ...] | None = None
        self.heredoc_names: list[tuple[str, bool, bool, int | None, Range]] = []
        self.onbuild: _Head | None = None

    def build(
        self, first: int, last_line: int, end: Position, heredocs: tuple[Heredoc, ...]
    ) -> Instruction:
        logical = self.logical
        keyword_range = logical.range(self.kw_start, self.kw_end)
        wrapped = None
        if self.onbuild is not None:
            wrapped = self.onbuild.build(first, last_line, end, heredocs)
            heredocs = ()  # they belong to the wrapped instruction
        return Instruction(
            keyword=self.keyword.upper(),
            keyword_text=self.keyword,
            keyword_range=keyword_range,
            range=Range(logical.pos(self.kw_start), end),
            line_start=first,
            line_end=last_line,
            text=logical.text[self.start :],
            flags=self.flags,
            arguments=self.arguments,
            arguments_range=logical.range(self.args_start, self.args_end),
            json_args=self.json_args,
            heredocs=heredocs,
            onbuild=wrapped,
        )


def _parse_line(logical: _Logical, start: int, escape: str, problems: list[Problem]) -> _Head:
    text = logical.text
    head = _Head(logical, start)
    pos = _WS_RUN.match(text, start).end()  # type: ignore[union-attr]  # matches ""
    match = _TOKEN_RE.match(text, pos)
    kw_end = match.end() if match else pos
    head.keyword, head.kw_start, head.kw_end = text[pos:kw_end], pos, kw_end
    rest = _WS_RUN.match(text, kw_end).end()  # type: ignore[union-attr]
    if text.startswith("--", rest):
        head.flags, head.flag_spans, rest = _read_flags(logical, rest)
    head.args_start = _WS_RUN.match(text, rest).end()  # type: ignore[union-attr]
    head.args_end = max(head.args_start, len(text.rstrip(_WS)))
    stripped = head.arguments = text[head.args_start : head.args_end]
    keyword = head.keyword.upper()
    if keyword not in KNOWN_INSTRUCTIONS:
        problems.append(Problem(f"unknown instruction {head.keyword}", logical.range(pos, kw_end)))
    if keyword == "ONBUILD":
        head.onbuild = _parse_line(logical, head.args_start, escape, problems)
        head.onbuild.start = head.args_start
        return head
    head.json_args = _json_form(keyword, stripped, logical, head, problems)
    if keyword in _HEREDOC_FORMS and head.json_args is None and "<<" in text:
        head.heredoc_names = _heredoc_markers(logical, start)
    return head


def _json_form(
    keyword: str, arguments: str, logical: _Logical, head: _Head, problems: list[Problem]
) -> tuple[str, ...] | None:
    if keyword == "HEALTHCHECK":
        # HEALTHCHECK [flags] CMD ["a", "b"]: the JSON follows the CMD word.
        match = re.match(r"(?i)CMD[\t\v\f\r ]+", arguments)
        if match is None:
            return None
        arguments = arguments[match.end() :]
    elif keyword not in _JSON_FORMS:
        return None
    if not arguments.startswith("["):
        return None
    try:
        value = json.loads(arguments)
    except Exception:  # invalid JSON (or absurd nesting) means shell form, as in BuildKit
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(item, str) for item in value):
        where = logical.range(head.args_start, head.args_end)
        problems.append(Problem("JSON arrays must be made of strings only", where))
        return None
    return tuple(value)


def _read_flags(logical: _Logical, pos: int) -> tuple[tuple[Flag, ...], list[_Span | None], int]:
    """BuildKit's extractBuilderFlags: leading `--name=value` words, quote-aware.

    Also returns where each flag's value sits in the logical line.
    """
    text = logical.text
    flags: list[Flag] = []
    spans: list[_Span | None] = []
    n = len(text)
    while True:
        while pos < n and text[pos] in _WS:
            pos += 1
        if not text.startswith("--", pos):
            return tuple(flags), spans, pos
        plain = _PLAIN_FLAG.match(text, pos)
        if plain is not None and (plain.end() == n or text[plain.end()] in _WS):
            if plain.group() == "--":
                return tuple(flags), spans, plain.end()
            flag, span = _make_flag(logical, pos, plain.end(), plain.group())
            flags.append(flag)
            spans.append(span)
            pos = plain.end()
            continue
        start, word, blank_ok, quote = pos, [], False, ""
        while pos < n:
            char = text[pos]
            if quote:
                if char == quote:
                    quote = ""
                    pos += 1
                    continue
            elif char in _WS:
                break
            elif char in "'\"":
                quote, blank_ok = char, True
                pos += 1
                continue
            if char == "\\":  # always backslash here, whatever the escape directive
                pos += 1
                if pos == n:
                    break
                char = text[pos]
            word.append(char)
            pos += 1
        value = "".join(word)
        if value == "--":
            return tuple(flags), spans, pos
        if value or blank_ok:
            flag, span = _make_flag(logical, start, pos, value)
            flags.append(flag)
            spans.append(span)


def _make_flag(logical: _Logical, start: int, end: int, value: str) -> tuple[Flag, _Span | None]:
    raw = logical.text[start:end]
    name, equals, flag_value = value[2:].partition("=")
    if not equals:
        return Flag(name, None, raw, logical.range(start, end), None), None
    value_start = start + raw.index("=") + 1 if "=" in raw else end
    value_end = end
    opening = logical.text[value_start : value_start + 1]
    if value_end - value_start >= 2 and opening in ("'", '"') and raw[-1] == opening:
        value_start, value_end = value_start + 1, value_end - 1
    flag = Flag(
        name, flag_value, raw, logical.range(start, end), logical.range(value_start, value_end)
    )
    return flag, (value_start, value_end)


def _shell_words(text: str, pos: int, escape: str) -> tuple[list[_Span], bool]:
    """Spans of whitespace-separated words; quotes and escapes keep a word together.

    The flag says whether every quote was closed: BuildKit's lexer fails otherwise.
    """
    words = []
    n = len(text)
    quote = ""
    while pos < n:
        while pos < n and text[pos] in _WS:
            pos += 1
        if pos >= n:
            break
        start = pos
        while pos < n:
            char = text[pos]
            if quote:
                if char == quote:
                    quote = ""
                elif char == escape and quote != "'":
                    pos += 1
            elif char in _WS:
                break
            elif char in "'\"":
                quote = char
            elif char == escape:
                pos += 1
            pos += 1
        words.append((start, min(pos, n)))
    return words, not quote


def _unquote(word: str) -> str:
    out, quote, index = [], "", 0
    while index < len(word):
        char = word[index]
        if char == quote:
            quote = ""
        elif not quote and char in "'\"":
            quote = char
        elif char == "\\" and quote != "'" and index + 1 < len(word):
            index += 1
            out.append(word[index])
        else:
            out.append(char)
        index += 1
    return "".join(out)


def _braces_ok(text: str) -> bool:
    """Every `${` starts a variable name and is closed (else BuildKit's lexer fails)."""
    index = text.find("${")
    while index >= 0:
        if _NAME_RE.match(text, index + 2) is None or text.find("}", index) < 0:
            return False
        index = text.find("${", index + 2)
    return True


def _heredoc_markers(
    logical: _Logical, start: int
) -> list[tuple[str, bool, bool, int | None, Range]]:
    markers = []
    text = logical.text
    # BuildKit looks for heredocs with a backslash lexer whatever the escape directive.
    words, closed = _shell_words(text, start, "\\")
    if not closed or not _braces_ok(text):
        return []  # BuildKit's lexer gives up on these lines, and so finds no heredoc
    for word_start, word_end in words:
        match = _HEREDOC_RE.match(text, word_start, word_end)
        if match is None or not match.group(3):
            continue
        rest = match.group(3)
        name = _unquote(rest)
        if not name:
            continue
        fd = int(match.group(1)) if match.group(1) else None
        quoted = any(q in rest for q in "'\"\\")
        markers.append(
            (name, match.group(2) == "-", not quoted, fd, logical.range(word_start, word_end))
        )
    return markers


# --------------------------------------------------------------------------- substitution


class _Var:
    __slots__ = ("arg", "automatic", "is_set", "value")

    def __init__(self, value: str | None, is_set: bool, arg: Arg | None, automatic: bool) -> None:
        self.value = value  # None with is_set: declared, value unknown
        self.is_set = is_set
        self.arg = arg
        self.automatic = automatic


_UNKNOWN_AUTOMATIC = {name: _Var(None, True, None, True) for name in AUTOMATIC_ARGS}


class _Expander:
    """Shell-style word expansion as BuildKit does it for FROM, --from and ARG values.

    Values are computed with ARG defaults (no --build-arg). A variable with no value,
    or an automatic platform ARG, makes the result None unless a `:-`/`-` default or a
    `:+`/`+` alternative decides it without the value.
    """

    def __init__(self, env: dict[str, _Var], escape: str, logical: _Logical, base: int) -> None:
        self.env = env
        self.escape = escape
        self.logical = logical
        self.base = base
        self.subs: list[Substitution] = []

    def expand(self, word: str) -> str | None:
        value, _ = self._run(word, 0, "")
        return value

    def _run(self, word: str, pos: int, stop: str) -> tuple[str | None, int]:
        out: list[str] = []
        known = True
        quote = ""
        n = len(word)
        while pos < n:
            char = word[pos]
            if not quote and char in stop:
                break
            if char == quote:
                quote = ""
                pos += 1
            elif quote != "'" and char == self.escape and pos + 1 < n:
                out.append(word[pos + 1])
                pos += 2
            elif quote == "'":
                out.append(char)
                pos += 1
            elif char == "$":
                value, pos = self._dollar(word, pos)
                if value is None:
                    known = False
                else:
                    out.append(value)
            elif not quote and char in "'\"":
                quote = char
                pos += 1
            else:
                out.append(char)
                pos += 1
        return ("".join(out) if known else None), pos

    def _dollar(self, word: str, pos: int) -> tuple[str | None, int]:
        start = pos
        if word.startswith("${", pos):
            return self._braced(word, pos)
        match = _NAME_RE.match(word, pos + 1)
        if match is None:
            return "$", pos + 1
        var = self._lookup(match.group(), start, match.end())
        return self._plain(var), match.end()

    def _braced(self, word: str, start: int) -> tuple[str | None, int]:
        match = _NAME_RE.match(word, start + 2)
        if match is None:
            close = word.find("}", start)
            return None, (close + 1 if close >= 0 else len(word))
        pos = match.end()
        operator = ""
        for candidate in (":-", ":+", ":?", "-", "+", "?", "##", "#", "%%", "%", "//", "/"):
            if word.startswith(candidate, pos):
                operator = candidate
                break
        operand: str | None = ""
        if operator:
            operand, pos = self._run(word, pos + len(operator), "}")
        if pos >= len(word) or word[pos] != "}":
            return None, len(word)  # unterminated ${: BuildKit rejects it
        var = self._lookup(match.group(), start, pos + 1)
        return self._apply(var, operator, operand), pos + 1

    def _lookup(self, name: str, start: int, end: int) -> _Var | None:
        var = self.env.get(name)
        where = self.logical.range(self.base + start, self.base + end)
        arg = var.arg if var is not None else None
        automatic = var is not None and var.automatic
        self.subs.append(Substitution(name, where, arg, automatic))
        return var

    @staticmethod
    def _plain(var: _Var | None) -> str | None:
        return var.value if var is not None and var.is_set else None

    @staticmethod
    def _apply(var: _Var | None, operator: str, operand: str | None) -> str | None:
        if not operator:
            return _Expander._plain(var)
        is_set = var is not None and var.is_set
        value = var.value if var is not None else None
        if is_set and value is None:
            return None  # the value decides, and nobody knows it here
        if operator in (":-", "-"):
            use_default = not is_set or (operator == ":-" and value == "")
            return operand if use_default else value
        if operator in (":+", "+"):
            use_alternative = is_set and (operator == "+" or value != "")
            return operand if use_alternative else ""
        if operator in (":?", "?"):
            return value if is_set and (operator == "?" or value) else None
        return None  # pattern operators: not worth guessing for image references


# --------------------------------------------------------------------------- semantics


class _Model:
    def __init__(self) -> None:
        self.stages: tuple[Stage, ...] = ()
        self.args: tuple[Arg, ...] = ()
        self.images: tuple[ImageUse, ...] = ()


class _Semantics:
    """Stages, ARG scopes and image references, from the parsed instructions."""

    def __init__(
        self,
        instructions: list[Instruction],
        heads: list[_Head],
        escape: str,
        problems: list[Problem],
    ) -> None:
        self.instructions = instructions
        self.sources = heads
        self.escape = escape
        self.problems = problems
        self.global_env: dict[str, _Var] = dict(_UNKNOWN_AUTOMATIC)
        self.stage_env: dict[str, _Var] = {}
        self.args: list[Arg] = []
        self.images: list[ImageUse] = []
        # Per stage: FROM instruction, lower-case name and its range.
        self.froms: list[tuple[Instruction, str | None, Range | None]] = []
        self.members: list[list[Instruction]] = []
        self.stage_args: list[list[Arg]] = []
        # --from may name a stage defined later in the file, so collect names first.
        self.stage_names = [_stage_name(i) for i in instructions if i.keyword == "FROM"]

    def run(self) -> _Model:
        for instruction, head in zip(self.instructions, self.sources, strict=True):
            self._visit(instruction, head)
        model = _Model()
        model.stages = self._stages()
        model.args = tuple(self.args)
        model.images = tuple(self.images)
        return model

    def _visit(self, instruction: Instruction, head: _Head) -> None:
        keyword = instruction.keyword
        if keyword == "FROM":
            self._from(instruction, head)
            return
        if not self.froms:
            if keyword == "ARG":
                self._arg(instruction, head, None)
            else:
                where = instruction.keyword_range
                self.problems.append(Problem(f"{keyword} before the first FROM", where))
            return
        stage = len(self.froms) - 1
        self.members[stage].append(instruction)
        if keyword == "ARG":
            self._arg(instruction, head, stage)
        elif keyword == "COPY":
            for _, span in _flags_named(head, "from"):
                self._add(instruction, head.logical, span, "copy-from", stage, self.stage_env)
        elif keyword == "RUN":
            for _, span in _flags_named(head, "mount"):
                self._mount(instruction, head.logical, span, stage)

    def _from(self, instruction: Instruction, head: _Head) -> None:
        index = len(self.froms)
        text, base = instruction.arguments, head.args_start
        words = [(m.start() + base, m.end() + base) for m in _TOKEN_RE.finditer(text)]
        logical = head.logical
        name = name_range = None
        if len(words) >= 3 and logical.text[words[1][0] : words[1][1]].lower() == "as":
            name = logical.text[words[2][0] : words[2][1]].lower()
            name_range = logical.range(*words[2])
        self.froms.append((instruction, name, name_range))
        self.members.append([instruction])
        self.stage_args.append([])
        self.stage_env = {}  # a stage sees only the ARGs it declares itself
        if not words:
            self.problems.append(Problem("FROM needs an image", instruction.keyword_range))
            return
        platform = None
        for flag, span in _flags_named(head, "platform"):
            expander = _Expander(self.global_env, self.escape, logical, span[0])
            platform = (flag.value, expander.expand(logical.text[span[0] : span[1]]))
        self._add(instruction, logical, words[0], "from", index, self.global_env, platform)

    def _add(
        self,
        instruction: Instruction,
        logical: _Logical,
        span: _Span,
        kind: ImageKind,
        stage: int,
        env: dict[str, _Var],
        platform: tuple[str | None, str | None] | None = None,
    ) -> None:
        start, end = span
        text = logical.text[start:end]
        substitutions: tuple[Substitution, ...] = ()
        if "$" in text or "'" in text or '"' in text or self.escape in text:
            expander = _Expander(env, self.escape, logical, start)
            resolved = expander.expand(text)
            substitutions = tuple(expander.subs)
            if "${" in text and not _braces_ok(text):
                # BuildKit's shell lexer fails on the whole line: a syntax error, not an
                # argument waiting for a value.
                self.problems.append(
                    Problem(
                        f"unclosed or empty '${{' in {text}: BuildKit rejects this line",
                        logical.range(start, end),
                    )
                )
        else:
            resolved = text  # nothing to substitute: the common case, kept cheap
        is_reference, target = self._link(resolved, kind, stage)
        self.images.append(
            ImageUse(
                text=text,
                resolved=resolved,
                range=logical.range(start, end),
                kind=kind,
                stage=stage,
                platform=platform[0] if platform else None,
                platform_resolved=platform[1] if platform else None,
                is_stage_reference=is_reference,
                stage_reference=target,
                is_scratch=not is_reference and (resolved or "").lower() == "scratch",
                substitutions=substitutions,
                instruction=instruction,
            )
        )

    def _mount(self, instruction: Instruction, logical: _Logical, span: _Span, stage: int) -> None:
        """`--mount=type=cache,from=builder,source=/x`: only the `from` key names an image."""
        offset = span[0]
        for item in logical.text[span[0] : span[1]].split(","):
            key, equals, _ = item.partition("=")
            if equals and key.strip(_WS).lower() == "from":
                value = (offset + len(key) + 1, offset + len(item))
                self._add(instruction, logical, value, "mount-from", stage, self.stage_env)
            offset += len(item) + 1

    def _link(self, resolved: str | None, kind: ImageKind, stage: int) -> tuple[bool, int | None]:
        """Whether a reference names a stage, and which one."""
        if resolved is None:
            return False, None
        if kind != "from" and _DIGITS_RE.match(resolved):
            # --from=0 is a stage index; BuildKit only accepts earlier stages.
            number = int(resolved)
            return True, (number if number < stage else None)
        lowered = resolved.lower()
        # Only earlier stages for FROM: `FROM nginx AS nginx` names an image.
        names = self.stage_names[:stage] if kind == "from" else self.stage_names
        for index, name in enumerate(names):
            if name == lowered and index != stage:
                return True, index
        return False, None

    def _arg(self, instruction: Instruction, head: _Head, stage: int | None) -> None:
        logical, base = head.logical, head.args_start
        env = self.global_env if stage is None else self.stage_env
        for start, end in _shell_words(instruction.arguments, 0, self.escape)[0]:
            start, end = start + base, end + base
            word = logical.text[start:end]
            name, equals, default = word.partition("=")
            default_start = start + len(name) + 1
            expander = _Expander(env, self.escape, logical, default_start)
            value = expander.expand(default) if equals else None
            arg = Arg(
                name=name,
                default=default if equals else None,
                value=value,
                range=logical.range(start, end),
                name_range=logical.range(start, start + len(name)),
                default_range=logical.range(default_start, end) if equals else None,
                stage=stage,
                substitutions=tuple(expander.subs),
                instruction=instruction,
            )
            self.args.append(arg)
            if stage is not None:
                self.stage_args[stage].append(arg)
            env[name] = self._declare(arg, bool(equals), stage)

    def _declare(self, arg: Arg, has_default: bool, stage: int | None) -> _Var:
        if has_default:
            return _Var(arg.value, True, arg, False)
        if stage is not None and arg.name in self.global_env:
            return self.global_env[arg.name]  # a stage re-declaring a global ARG inherits it
        if arg.name in AUTOMATIC_ARGS:
            return _Var(None, True, None, True)
        return _Var(None, False, arg, False)

    def _stages(self) -> tuple[Stage, ...]:
        stages = []
        base_images = {i.stage: i for i in self.images if i.kind == "from"}
        for index, (instruction, name, name_range) in enumerate(self.froms):
            members = self.members[index]
            image = base_images.get(index)
            stages.append(
                Stage(
                    index=index,
                    name=name,
                    name_range=name_range,
                    instruction=instruction,
                    base=image.text if image is not None else None,
                    image=image,
                    platform=instruction.flag("platform"),
                    range=Range(instruction.range.start, members[-1].range.end),
                    instructions=tuple(members),
                    args=tuple(self.stage_args[index]),
                )
            )
        return tuple(stages)


def _stage_name(instruction: Instruction) -> str | None:
    words = _TOKEN_RE.findall(instruction.arguments)
    return words[2].lower() if len(words) >= 3 and words[1].lower() == "as" else None


def _flags_named(head: _Head, name: str) -> list[tuple[Flag, _Span]]:
    return [
        (flag, span)
        for flag, span in zip(head.flags, head.flag_spans, strict=True)
        if flag.name == name and span is not None
    ]
