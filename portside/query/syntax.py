"""The query language: lexer, parser and the syntax tree.

Grammar (EBNF; keywords and field names are case-insensitive)::

    query      = sources [ "where" expr ] [ "order" "by" order_item { "," order_item } ]
                 [ "limit" INTEGER ] ;
    sources    = repository { "," repository } ;        (* docker reference, no tag/digest *)
    expr       = and_expr { "or" and_expr } ;
    and_expr   = not_expr { "and" not_expr } ;
    not_expr   = "not" not_expr | "(" expr ")" | condition ;
    condition  = field operator literal
               | field [ "not" ] "in" "(" literal { "," literal } ")" ;
    operator   = "=" | "!=" | "<" | "<=" | ">" | ">=" | "~" | "=~" ;
    field      = "tag" | "version" | "variant" | "digest" | "created" | "age" | "size"
               | "platform" | "os" | "arch"
               | ( "label" | "annotation" ) "[" ( STRING | WORD ) "]" ;
    order_item = field [ "asc" | "desc" ] ;
    literal    = STRING | WORD | "now" [ ( "+" | "-" ) DURATION ] ;

``STRING`` is "..." or '...'; a backslash escapes the quote or a backslash and is kept
as written before anything else, so regular expressions read as usual
(``"^v?\\d+$"``). ``WORD`` is a run of characters other than white space, quotes,
``( ) [ ] ,`` and the operator characters ``= ! < > ~``: bare ``3.12``, ``slim-bookworm``,
``linux/arm64``, ``2026-06-01``, ``2026-06-01T12:00:00Z``, ``now-30d``, ``30d``,
``100MB``, ``sha256:…``. What a literal means is decided by its field, at parse time, so
every mistake is reported with a caret under it before any request is made:

- ``version``: a version (``3.12``, ``v2``); ``~`` is a prefix of the release numbers,
  ``< <= > >=`` compare versions, never strings.
- ``tag``, ``variant``, ``label[..]``, ``annotation[..]``, ``os``, ``arch``,
  ``platform``, ``digest``: text; ``~`` is a glob (``"3.12*"``), ``=~`` a regular
  expression searched anywhere (anchor it yourself). ``arch = aarch64`` means arm64;
  ``platform = linux/arm64`` matches as ``--platform`` does (arm64 takes arm64/v8).
- ``created``: a date (that whole UTC day: ``= 2026-06-01`` is any time that day,
  ``< 2026-06-01`` before it starts, ``<= 2026-06-01`` before it ends), an ISO date-time
  (UTC when it has no offset), ``now``, ``now - 30d`` / ``now-30d``, or a bare duration
  meaning that long ago (``created > 7d``).
- ``age``: a duration, ``30d``, ``12h``, ``90min`` / ``90m``, ``2w``, ``1d12h``.
- ``size``: bytes, or ``100MB`` / ``1.5GB`` (powers of 1000), ``100MiB`` (of 1024).

Sources are scanned separately from the rest (a reference may hold ``[``, ``:`` and
``/``): a source runs to the next white space or comma.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from dataclasses import field as _field
from typing import Literal, TypeAlias, get_args

from portside.errors import PortsideError, UsageError
from portside.reference import Digest, Reference
from portside.registry.manifest import Platform

from .pattern import LinearRegex, RegexError, compile_regex
from .versioning import QueryVersion, parse_version_literal

# -- errors --------------------------------------------------------------------------


class QuerySyntaxError(UsageError):
    """A query that cannot be parsed or does not make sense; exit code 2.

    ``message`` holds three lines: what was expected, the query line, and a caret
    under the offending character. ``position`` is the 0-based offset in ``query``.
    """

    def __init__(self, query: str, position: int, problem: str, *, hint: str | None = None):
        position = max(0, min(position, len(query)))
        self.query = query
        self.position = position
        self.problem = problem
        line_start = query.rfind("\n", 0, position) + 1
        line_end = query.find("\n", position)
        line = query[line_start : line_end if line_end != -1 else len(query)]
        column = position - line_start
        # Tabs are copied into the caret line so the caret lines up under them too.
        pad = "".join("\t" if c == "\t" else " " for c in line[:column])
        where = f"column {column + 1}"
        if line_start:
            where = f"line {query.count(chr(10), 0, position) + 1}, {where}"
        self.excerpt = f"  {line}\n  {pad}^"
        super().__init__(f"invalid query at {where}: {problem}\n{self.excerpt}", hint=hint)


# -- syntax tree ---------------------------------------------------------------------

FieldName = Literal[
    "tag",
    "version",
    "variant",
    "digest",
    "created",
    "age",
    "size",
    "platform",
    "os",
    "arch",
    "label",
    "annotation",
]
FIELD_NAMES: tuple[str, ...] = get_args(FieldName)
TAG_FIELDS = frozenset({"tag", "version", "variant"})  # decided by the tag alone
PLATFORM_FIELDS = frozenset({"platform", "os", "arch"})


@dataclass(frozen=True, slots=True)
class Field:
    name: FieldName
    key: str | None = None  # the label or annotation name
    position: int = _field(default=0, compare=False)

    def __str__(self) -> str:
        return self.name if self.key is None else f'{self.name}["{self.key}"]'


@dataclass(frozen=True, slots=True)
class RelativeTime:
    """``now``, ``now - 30d``: resolved against the evaluation's clock."""

    offset: dt.timedelta


@dataclass(frozen=True, slots=True)
class Day:
    """A bare date: ``created = 2026-06-01`` means that whole day (UTC)."""

    start: dt.datetime

    @property
    def end(self) -> dt.datetime:
        if self.start.date() == dt.date.max:  # 9999-12-31 ends at the end of time
            return dt.datetime.max.replace(tzinfo=dt.timezone.utc)
        return self.start + dt.timedelta(days=1)


TimeValue: TypeAlias = "dt.datetime | Day | RelativeTime"
LiteralValue: TypeAlias = (
    "str | QueryVersion | Platform | int | dt.timedelta | TimeValue | LinearRegex"
)

Operator = Literal["=", "!=", "<", "<=", ">", ">=", "~", "=~", "in", "not in"]


@dataclass(frozen=True, slots=True)
class Condition:
    field: Field
    op: Operator
    values: tuple[LiteralValue, ...]  # one, or the members of ``in (...)``
    position: int = _field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Expr


Expr: TypeAlias = "Condition | And | Or | Not"


@dataclass(frozen=True, slots=True)
class OrderItem:
    field: Field
    descending: bool = False


@dataclass(frozen=True, slots=True)
class Query:
    text: str
    sources: tuple[Reference, ...]
    where: Expr | None = None
    order: tuple[OrderItem, ...] = ()
    limit: int | None = None

    def fields(self) -> list[Field]:
        """Every field the query names (where, then order by), once each, in order."""
        seen: dict[Field, None] = {}

        def walk(e: Expr) -> None:
            if isinstance(e, Condition):
                seen.setdefault(e.field)
            elif isinstance(e, Not):
                walk(e.item)
            else:
                for i in e.items:
                    walk(i)

        if self.where is not None:
            walk(self.where)
        for item in self.order:
            seen.setdefault(item.field)
        return list(seen)

    @property
    def mentions_platform(self) -> bool:
        """A platform condition makes rows per platform (and results name the child)."""
        return any(
            f.name in PLATFORM_FIELDS for f in Query(self.text, self.sources, self.where).fields()
        )


# -- lexer ---------------------------------------------------------------------------

TokenKind = Literal["word", "string", "op", "(", ")", "[", "]", ",", "end"]


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    text: str  # the value: a string's content without quotes and escapes
    position: int
    end: int

    def describe(self) -> str:
        if self.kind == "end":
            return "the end of the query"
        if self.kind == "string":
            return f"the string {self.text!r}"
        return repr(self.text)


_PUNCTUATION = "()[],"
_OPERATOR_CHARS = "=!<>~"
_WORD_STOP = frozenset(_PUNCTUATION + _OPERATOR_CHARS + "\"'")
_OPERATORS = ("<=", ">=", "!=", "=~", "=", "<", ">", "~")  # longest first


def tokenize(text: str, start: int = 0) -> list[Token]:
    """Tokens of ``text[start:]``, ending with an ``end`` token."""
    tokens: list[Token] = []
    i, n = start, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            tokens.append(Token("end", "", n, n))
            return tokens
        c = text[i]
        if c in _PUNCTUATION:
            tokens.append(Token(c, c, i, i + 1))  # type: ignore[arg-type]
            i += 1
        elif c in _OPERATOR_CHARS:
            op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
            if op is None:  # a lone "!"
                raise QuerySyntaxError(text, i, "expected '!=' (or 'not' to negate)")
            tokens.append(Token("op", op, i, i + len(op)))
            i += len(op)
        elif c in "\"'":
            i = _string(text, i, tokens)
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in _WORD_STOP:
                j += 1
            tokens.append(Token("word", text[i:j], i, j))
            i = j


def _string(text: str, start: int, tokens: list[Token]) -> int:
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == quote:
            tokens.append(Token("string", "".join(out), start, i + 1))
            return i + 1
        if c == "\\" and i + 1 < len(text) and text[i + 1] in (quote, "\\"):
            out.append(text[i + 1])
            i += 2
            continue
        out.append(c)
        i += 1
    raise QuerySyntaxError(text, start, f"unterminated string: expected a closing {quote}")


# -- literals ------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+)(w|d|h|min|m|s)", re.ASCII)
_DURATION = re.compile(r"(?:\d+(?:w|d|h|min|m|s))+", re.ASCII)
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "min": 60, "m": 60, "s": 1}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?", re.ASCII | re.IGNORECASE)
_SIZE_FACTORS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_NOW_WORD = re.compile(r"now(?:[+-].*)?", re.ASCII | re.IGNORECASE | re.DOTALL)
_GLOB_CHARS = frozenset("*?[")

TIME_EXPECTED = "a date (2026-06-01), a date-time (2026-06-01T12:00:00Z) or now - 30d"


def parse_duration(text: str) -> dt.timedelta | None:
    """``30d``, ``12h``, ``1d12h``, ``90min``/``90m``, ``2w``, ``45s``; else ``None``."""
    if not _DURATION.fullmatch(text):
        return None
    try:
        seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
        return dt.timedelta(seconds=seconds)
    except (OverflowError, ValueError):  # beyond timedelta, or int()'s digit limit
        return None


def parse_size(text: str) -> int | None:
    """``100MB`` (decimal), ``1.5GiB`` (binary), ``2048`` (bytes); else ``None``."""
    m = _SIZE.fullmatch(text.strip())
    if m is None:
        return None
    factor = _SIZE_FACTORS[(m.group(2) or "b").lower()]
    try:
        return int(float(m.group(1)) * factor)
    except (OverflowError, ValueError):  # float() gave inf
        return None


def parse_time(text: str) -> dt.datetime | Day | None:
    """An absolute time: a date (that whole UTC day) or an ISO 8601 date-time."""
    if _DATE.fullmatch(text):
        try:
            d = dt.date.fromisoformat(text)
        except ValueError:
            return None
        return Day(dt.datetime(d.year, d.month, d.day, tzinfo=dt.timezone.utc))
    if not text[:4].isdigit():
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    # A time without an offset is UTC: registries write UTC, and a query must mean the
    # same on every machine.
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


# -- parser --------------------------------------------------------------------------

_SOURCE_END = frozenset({"where", "order", "limit"})
_CLAUSES = "'where', 'order by', 'limit'"


def _scan_sources(text: str) -> tuple[list[tuple[str, int]], int]:
    """The repositories before the first clause, with their offsets; and where they end."""
    sources: list[tuple[str, int]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        start = i
        while i < n and not text[i].isspace() and text[i] != ",":
            i += 1
        word = text[start:i]
        if not word or word.lower() in _SOURCE_END:
            what = "the end of the query" if not word else repr(word)
            raise QuerySyntaxError(
                text, start, f"expected a repository (e.g. docker.io/library/python), not {what}"
            )
        sources.append((word, start))
        while i < n and text[i].isspace():
            i += 1
        if i < n and text[i] == ",":
            i += 1
            continue
        if i >= n:
            return sources, n
        j = i
        while j < n and not text[j].isspace() and text[j] not in _WORD_STOP:
            j += 1
        if text[i:j].lower() in _SOURCE_END:
            return sources, i
        raise QuerySyntaxError(
            text, i, f"expected ',' and another repository, {_CLAUSES} or the end of the query"
        )


def _source_reference(text: str, word: str, position: int) -> Reference:
    try:
        ref = Reference.parse(word)
    except PortsideError as exc:
        raise QuerySyntaxError(
            text, position, f"expected a repository: {exc.message}", hint=exc.hint
        ) from None
    if ref.tag is not None or ref.digest is not None:
        cut = word.find("@") if ref.digest is not None and ref.tag is None else None
        if cut is None:
            cut = word.rfind(":", 0, word.find("@") if "@" in word else len(word))
        raise QuerySyntaxError(
            text,
            position + max(cut, 0),
            "expected a repository without :tag or @digest",
            hint='select tags with conditions: where tag = "..." or digest = ...',
        )
    return ref


class _Parser:
    def __init__(self, text: str, tokens: list[Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    # -- token helpers -----------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def at(self, kind: TokenKind) -> bool:
        # A method rather than `self.tok.kind == ...`: mypy would keep a narrowed kind
        # across advance() calls.
        return self.tok.kind == kind

    def is_word(self, *words: str) -> bool:
        return self.tok.kind == "word" and self.tok.text.lower() in words

    def error(
        self, expected: str, tok: Token | None = None, *, hint: str | None = None
    ) -> QuerySyntaxError:
        tok = tok or self.tok
        return QuerySyntaxError(
            self.text, tok.position, f"expected {expected}, not {tok.describe()}", hint=hint
        )

    def expect(self, kind: TokenKind, expected: str) -> Token:
        if self.tok.kind != kind:
            raise self.error(expected)
        return self.advance()

    # -- clauses -----------------------------------------------------------------

    def query(self, sources: tuple[Reference, ...]) -> Query:
        where: Expr | None = None
        order: tuple[OrderItem, ...] = ()
        limit: int | None = None
        if self.is_word("where"):
            self.advance()
            where = self.expr()
        if self.is_word("order"):
            self.advance()
            if not self.is_word("by"):
                raise self.error("'by' after 'order'")
            self.advance()
            items = [self.order_item()]
            while self.tok.kind == ",":
                self.advance()
                items.append(self.order_item())
            order = tuple(items)
        if self.is_word("limit"):
            self.advance()
            tok = self.tok
            # ASCII digits only (isdigit() takes "²", which int() refuses), and few of
            # them: int() refuses more than 4,300 digits.
            text = tok.text
            if not (tok.kind == "word" and text.isascii() and text.isdigit() and len(text) < 10):
                raise self.error("a whole number of at least 1 after 'limit'")
            if int(text) < 1:
                raise self.error("a whole number of at least 1 after 'limit'")
            self.advance()
            limit = int(tok.text)
        if self.tok.kind != "end":
            # Only what could still come here: clauses are in a fixed order.
            allowed = []
            if where is None and not order and limit is None:
                allowed.append("'where'")
            if where is not None and not order and limit is None:
                allowed += ["'and'", "'or'"]
            if not order and limit is None:
                allowed.append("'order by'")
            if limit is None:
                allowed.append("'limit'")
            allowed.append("the end of the query")
            listed = ", ".join(allowed[:-1]) + " or " if len(allowed) > 1 else ""
            raise self.error(listed + allowed[-1])
        return Query(self.text, sources, where, order, limit)

    def order_item(self) -> OrderItem:
        f = self.field()
        descending = False
        if self.is_word("asc", "desc"):
            descending = self.advance().text.lower() == "desc"
        return OrderItem(f, descending)

    # -- expressions -------------------------------------------------------------

    def expr(self) -> Expr:
        items = [self.and_expr()]
        while self.is_word("or"):
            self.advance()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Expr:
        items = [self.not_expr()]
        while self.is_word("and"):
            self.advance()
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else And(tuple(items))

    def not_expr(self) -> Expr:
        if not (self.is_word("not") or self.tok.kind == "("):
            return self.condition()
        # Deep nesting would exhaust Python's stack: refuse it with a caret instead.
        if self.depth >= _MAX_DEPTH:
            raise QuerySyntaxError(
                self.text, self.tok.position, f"expected at most {_MAX_DEPTH} nested '(' or 'not'"
            )
        self.depth += 1
        try:
            if self.advance().kind != "(":
                return Not(self.not_expr())
            inner = self.expr()
            if self.tok.kind != ")":
                raise self.error("')', 'and' or 'or'")
            self.advance()
            return inner
        finally:
            self.depth -= 1

    def field(self) -> Field:
        tok = self.tok
        names = ", ".join(
            n if n not in ("label", "annotation") else f'{n}["..."]' for n in FIELD_NAMES
        )
        if tok.kind != "word" or tok.text.lower() not in FIELD_NAMES:
            raise self.error(f"a field ({names})")
        self.advance()
        name = tok.text.lower()
        if name in ("label", "annotation"):
            if self.tok.kind != "[":
                raise self.error(
                    f"'[' and a quoted {name} name, "
                    f'e.g. {name}["org.opencontainers.image.revision"]'
                )
            self.advance()
            key_tok = self.tok
            if key_tok.kind not in ("string", "word") or not key_tok.text:
                raise self.error(f"the {name} name in quotes")
            self.advance()
            self.expect("]", "']'")
            return Field(name, key_tok.text, tok.position)  # type: ignore[arg-type]
        return Field(name, None, tok.position)  # type: ignore[arg-type]

    def condition(self) -> Condition:
        if self.tok.kind not in ("word",):
            raise self.error("a condition (a field, 'not' or '(')")
        f = self.field()
        op_tok = self.tok
        negated_in = False
        if self.is_word("not"):
            self.advance()
            if not self.is_word("in"):
                raise self.error("'in' after 'not'")
            negated_in = True
        if self.is_word("in"):
            self.advance()
            op: Operator = "not in" if negated_in else "in"
            _check_operator(self.text, f, op, op_tok)
            self.expect("(", "'(' and a list of values")
            values = [self.literal(f, "=")]
            while self.at(","):
                self.advance()
                values.append(self.literal(f, "="))
            if not self.at(")"):
                raise self.error("',' or ')'")
            self.advance()
            return Condition(f, op, tuple(values), op_tok.position)
        if op_tok.kind != "op":
            raise self.error(f"an operator after {f} ({_operators_for(f)})")
        self.advance()
        op = op_tok.text  # type: ignore[assignment]
        _check_operator(self.text, f, op, op_tok)
        return Condition(f, op, (self.literal(f, op),), op_tok.position)

    # -- literals ----------------------------------------------------------------

    def literal(self, f: Field, op: Operator) -> LiteralValue:
        tok = self.tok
        if f.name == "created" and tok.kind == "word" and _NOW_WORD.fullmatch(tok.text):
            return self.relative_time()
        if tok.kind not in ("word", "string"):
            raise self.error(f"a value for {f} ({_value_kind(f, op)})")
        self.advance()
        try:
            return _convert(f, op, tok.text)
        except _BadLiteral as bad:
            position = tok.position
            if bad.offset is not None:  # a regex error knows its column; quotes shift it
                position = min(tok.position + (tok.kind == "string") + bad.offset, tok.end - 1)
            raise QuerySyntaxError(
                self.text,
                position,
                f"expected {_value_kind(f, op)} for {f}, not {tok.describe()}"
                + (f": {bad.detail}" if bad.detail else ""),
                hint=bad.hint,
            ) from None

    def relative_time(self) -> LiteralValue:
        start = self.advance()
        text = start.text
        sign, amount_text, amount_tok = "", "", start
        if len(text) > 3:  # "now-30d" written as one word
            sign, amount_text = text[3], text[4:]
        elif self.is_word("-", "+"):
            sign = self.advance().text
            amount_tok = self.tok
            if amount_tok.kind != "word":
                raise self.error("a duration after 'now " + sign + "' (30d, 12h, 90min)")
            amount_text = self.advance().text
        elif self.tok.kind == "word" and self.tok.text[:1] in ("-", "+"):  # "now -30d"
            amount_tok = self.advance()
            sign, amount_text = amount_tok.text[0], amount_tok.text[1:]
        if not sign:
            return RelativeTime(dt.timedelta(0))
        duration = parse_duration(amount_text)
        if duration is None:
            raise QuerySyntaxError(
                self.text,
                # skip "now-" in "now-30d", the sign in "-30d"
                amount_tok.position
                + (4 if amount_tok is start else len(amount_tok.text) - len(amount_text)),
                f"expected a duration after 'now {sign}' (30d, 12h, 90min, 2w)",
            )
        return RelativeTime(-duration if sign == "-" else duration)


class _BadLiteral(Exception):
    def __init__(self, detail: str = "", *, offset: int | None = None, hint: str | None = None):
        super().__init__(detail)
        self.detail = detail
        self.offset = offset
        self.hint = hint


# Which operators each field takes: ordering needs an order, globs and regexes need text.
_TEXT_OPS: frozenset[str] = frozenset({"=", "!=", "~", "=~", "in", "not in"})
_ORDERED_OPS: frozenset[str] = frozenset({"=", "!=", "<", "<=", ">", ">=", "in", "not in"})
_FIELD_OPS: dict[str, frozenset[str]] = {
    "tag": _TEXT_OPS,
    "variant": _TEXT_OPS,
    "digest": _TEXT_OPS,
    "label": _TEXT_OPS,
    "annotation": _TEXT_OPS,
    "os": _TEXT_OPS,
    "arch": _TEXT_OPS,
    "platform": _TEXT_OPS,
    "version": _ORDERED_OPS | {"~"},
    "created": frozenset({"=", "!=", "<", "<=", ">", ">="}),
    "age": frozenset({"<", "<=", ">", ">="}),
    "size": frozenset({"=", "!=", "<", "<=", ">", ">="}),
}
_OP_ORDER = ("=", "!=", "<", "<=", ">", ">=", "~", "=~", "in", "not in")


def _operators_for(f: Field) -> str:
    return ", ".join(o for o in _OP_ORDER if o in _FIELD_OPS[f.name])


def _check_operator(text: str, f: Field, op: str, tok: Token) -> None:
    if op not in _FIELD_OPS[f.name]:
        raise QuerySyntaxError(
            text, tok.position, f"expected one of {_operators_for(f)} after {f}, not {op!r}"
        )


def _value_kind(f: Field, op: str) -> str:
    if op == "=~":
        return "a regular expression in quotes"
    name = f.name
    if name == "version":
        return "a version such as 3.12"
    if name == "created":
        return TIME_EXPECTED
    if name == "age":
        return "a duration such as 30d, 12h or 90min"
    if name == "size":
        return "a size such as 100MB, 1.5GiB or 2048"
    if name == "platform":
        return (
            "a platform pattern such as linux/*" if op == "~" else "a platform such as linux/arm64"
        )
    if name == "digest":
        return "a digest pattern such as sha256:9f2c*" if op == "~" else "a digest sha256:<64 hex>"
    if op == "~":
        return 'a glob pattern such as "3.12*"'
    return "a string"


def _convert(f: Field, op: Operator, text: str) -> LiteralValue:
    """The literal ``text`` as the value ``f op`` compares with; ``_BadLiteral`` if not."""
    if op == "=~":
        try:
            return compile_regex(text)
        except RegexError as exc:
            raise _BadLiteral(exc.detail, offset=exc.offset) from None
    if op == "~" and f.name != "version":
        return text  # a glob, matched with fnmatchcase
    name = f.name
    if name == "version":
        version = parse_version_literal(text)
        if version is None:
            raise _BadLiteral(hint="a version is numbers with dots, optionally rc1/beta2 etc.")
        return version
    if name == "created":
        moment = parse_time(text)
        if moment is not None:
            return moment
        duration = parse_duration(text)
        if duration is not None:  # a bare "7d" is a relative time: 7 days ago
            return RelativeTime(-duration)
        raise _BadLiteral()
    if name == "age":
        duration = parse_duration(text)
        if duration is None:
            raise _BadLiteral()
        return duration
    if name == "size":
        size = parse_size(text)
        if size is None:
            raise _BadLiteral()
        return size
    if name == "platform":
        try:
            return Platform.parse(text)
        except PortsideError as exc:
            raise _BadLiteral(hint=exc.hint) from None
    if name == "arch":
        # aarch64 -> arm64, x86_64 -> amd64: the names people type, as OCI writes them.
        try:
            return Platform.parse(f"linux/{text}").architecture if "/" not in text else _bad()
        except PortsideError:
            raise _BadLiteral() from None
    if name == "os":
        return text.lower()
    if name == "digest":
        try:
            return str(Digest.parse(text))
        except PortsideError as exc:
            raise _BadLiteral(hint=exc.hint) from None
    return text


def _bad() -> str:
    raise _BadLiteral()


# -- entry point ---------------------------------------------------------------------

MAX_QUERY_LENGTH = 10_000
_MAX_DEPTH = 100


def parse_query(text: str) -> Query:
    """Parse ``text`` into a :class:`Query`; :class:`QuerySyntaxError` for any mistake.

    Never raises anything else, whatever ``text`` holds (the tests fuzz it).
    """
    if not isinstance(text, str):
        raise QuerySyntaxError("", 0, f"a query is a string, not {type(text).__name__}")
    if len(text) > MAX_QUERY_LENGTH:
        raise QuerySyntaxError(
            text[:200], 200, f"a query has at most {MAX_QUERY_LENGTH} characters"
        )
    words, end = _scan_sources(text)
    sources = tuple(_source_reference(text, w, p) for w, p in words)
    tokens = tokenize(text, end)
    return _Parser(text, tokens).query(sources)
