"""The query language without a registry: parsing, literals, caret errors, and a
mutation fuzzer proving the parser never raises anything but QuerySyntaxError."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from portside.errors import PortsideError, UsageError
from portside.query import And, Condition, Not, Or, QuerySyntaxError, parse_query
from portside.query.pattern import LinearRegex
from portside.query.syntax import Day, RelativeTime, parse_duration, parse_size
from portside.registry.manifest import Platform

EXAMPLES = [
    'docker.io/library/python where version ~ 3.12 and variant = "slim-bookworm" and '
    "platform = linux/arm64 and created < 2026-06-01 order by version desc limit 1",
    'ghcr.io/acme/api where label["org.opencontainers.image.revision"] = "9f2c1e0"',
    r'registry.internal/app, docker.io/acme/app where tag =~ "^v?\d+\.\d+\.\d+$" '
    "order by created desc limit 1",
]


@pytest.mark.parametrize("text", EXAMPLES)
def test_the_issue_examples_parse(text: str) -> None:
    query = parse_query(text)
    assert query.sources
    assert query.where is not None


def test_sources_are_normalised_and_merged() -> None:
    q = parse_query("python , localhost:5000/app,[::1]:5000/x where tag = a")
    assert [s.name for s in q.sources] == [
        "docker.io/library/python",
        "localhost:5000/app",
        "[::1]:5000/x",
    ]
    assert parse_query("python").where is None


def test_structure_precedence_and_keywords_are_case_insensitive() -> None:
    q = parse_query("python WHERE tag = a OR NOT tag = b AND (tag = c or tag = d)")
    assert isinstance(q.where, Or)
    left, right = q.where.items
    assert isinstance(left, Condition)
    assert isinstance(right, And)
    assert isinstance(right.items[0], Not)
    assert isinstance(right.items[1], Or)


def test_literals_by_field() -> None:
    q = parse_query(
        "python where created > now - 30d and created < now-1h and created >= 2026-06-01 "
        "and created <= 2026-06-01T12:30:00+02:00 and created > 7d and age < 12h and "
        "size < 1.5GiB and size > 100MB and arch = aarch64 and os = Linux and platform = "
        "linux/arm/v7 and digest = sha256:" + "a" * 64 + ' and tag ~ "3.12*" and version ~ 3.12'
    )
    assert isinstance(q.where, And)
    values = [c.values[0] for c in q.where.items if isinstance(c, Condition)]
    assert values[0] == RelativeTime(-dt.timedelta(days=30))
    assert values[1] == RelativeTime(-dt.timedelta(hours=1))
    assert values[2] == Day(dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc))
    assert values[3] == dt.datetime(2026, 6, 1, 10, 30, tzinfo=dt.timezone.utc)
    assert values[4] == RelativeTime(-dt.timedelta(days=7))
    assert values[5] == dt.timedelta(hours=12)
    assert values[6] == int(1.5 * 2**30)
    assert values[7] == 100_000_000
    assert values[8] == "arm64"
    assert values[9] == "linux"
    assert values[10] == Platform("linux", "arm", "v7")
    assert values[11] == "sha256:" + "a" * 64
    assert values[12] == "3.12*"


def test_durations_and_sizes() -> None:
    assert parse_duration("1d12h") == dt.timedelta(days=1, hours=12)
    assert parse_duration("90min") == parse_duration("90m") == dt.timedelta(minutes=90)
    assert parse_duration("2w") == dt.timedelta(weeks=2)
    assert parse_duration("3y") is None
    assert parse_size("2048") == 2048
    assert parse_size("1kb") == 1000
    assert parse_size("1KiB") == 1024
    assert parse_size("ten") is None


def test_in_lists_and_not_in() -> None:
    q = parse_query('python where variant not in ("slim", alpine) and version in (3.12, 3.13)')
    assert isinstance(q.where, And)
    first, second = q.where.items
    assert isinstance(first, Condition) and first.op == "not in"
    assert first.values == ("slim", "alpine")
    assert isinstance(second, Condition) and second.op == "in" and len(second.values) == 2


def test_strings_keep_regex_backslashes_and_escape_quotes() -> None:
    q = parse_query('python where tag =~ "^v?\\d+\\"x" and label["a\\"b"] = \'it\\\'s\'')
    assert isinstance(q.where, And)
    regex, label = q.where.items
    assert isinstance(regex, Condition) and isinstance(label, Condition)
    assert isinstance(regex.values[0], LinearRegex)
    assert regex.values[0].pattern == r'^v?\d+"x'
    assert label.field.key == 'a"b'
    assert label.values == ("it's",)


def test_order_and_limit() -> None:
    q = parse_query("python order by created desc, tag, version asc limit 5")
    assert [(str(i.field), i.descending) for i in q.order] == [
        ("created", True),
        ("tag", False),
        ("version", False),
    ]
    assert q.limit == 5
    assert parse_query('python order by label["x"]').order[0].field.key == "x"


# -- errors: a caret under the offending character and what was expected -------------


def caret_column(error: QuerySyntaxError) -> int:
    line = error.message.splitlines()[-1]
    return line.index("^") - 2  # the excerpt is indented by two spaces


@pytest.mark.parametrize(
    ("text", "at", "expected"),
    [
        ("", 0, "expected a repository"),
        ("where tag = a", 0, "expected a repository"),
        ("python:3.12 where tag = a", 6, "without :tag or @digest"),
        ("Python", 0, "lowercase"),
        ("python alpine", 7, "expected ',' and another repository"),
        ("python, where tag = a", 8, "expected a repository"),
        ("python where", 12, "expected a condition"),
        ("python where colour = red", 13, "expected a field (tag, version"),
        ("python where version 3.12", 21, "expected an operator after version"),
        ("python where tag < 3", 17, "expected one of =, !=, ~, =~, in, not in after tag"),
        ("python where age = 3d", 17, "expected one of <, <=, >, >= after age"),
        ("python where version ~ 3.x", 23, "expected a version such as 3.12"),
        ("python where created < 2026-13-01", 23, "expected a date (2026-06-01)"),
        ("python where created > now - 3y", 29, "expected a duration after 'now -'"),
        ("python where created > now -", 28, "expected a duration"),
        ("python where size > 10 parsecs", 23, "expected 'and', 'or', 'order by', 'limit'"),
        ("python where size > lots", 20, "expected a size such as 100MB"),
        ("python where age < forever", 19, "expected a duration such as 30d"),
        ("python where platform = linux", 24, "expected a platform such as linux/arm64"),
        ("python where digest = sha256:abc", 22, "expected a digest sha256:<64 hex>"),
        ('python where tag =~ "a(b"', 22, "expected a regular expression"),  # at the "("
        ('python where tag =~ "ab)"', 23, "expected a regular expression"),
        # Linear-time matching: no backreferences, no lookaround, at the offending part.
        ('python where tag =~ "(a)\\1"', 24, "expected a regular expression"),
        ('python where tag =~ "x(?=y)"', 22, "lookaround"),
        ('python where tag = "abc', 19, "unterminated string"),
        ("python where tag ! x", 17, "expected '!='"),
        ("python where (tag = x", 21, "expected ')', 'and' or 'or'"),
        ("python where tag in a, b", 20, "expected '(' and a list of values"),
        ("python where tag in (a b)", 23, "expected ',' or ')'"),
        ("python where tag not x", 21, "expected 'in' after 'not'"),
        ("python where label = x", 19, "expected '[' and a quoted label name"),
        ("python where label[x = 1", 21, "expected ']'"),
        ("python order created", 13, "expected 'by' after 'order'"),
        ("python order by", 15, "expected a field"),
        ("python order by tag sideways", 20, "expected 'limit' or the end"),
        ("python limit 0", 13, "a whole number of at least 1"),
        ("python limit ten", 13, "a whole number of at least 1"),
        ("python limit 1 where tag = a", 15, "expected the end of the query"),
        ("python where tag = a,", 20, "expected 'and', 'or'"),
    ],
)
def test_errors_point_at_the_offending_character(text: str, at: int, expected: str) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse_query(text)
    error = info.value
    assert expected in error.message, error.message
    assert error.position == at, error.message
    assert caret_column(error) == at
    assert error.message.splitlines()[1] == "  " + text
    assert isinstance(error, UsageError) and error.exit_code == 2


def test_errors_on_later_lines_show_that_line() -> None:
    text = "python\n  where tag = x\n  and colour = red"
    with pytest.raises(QuerySyntaxError) as info:
        parse_query(text)
    lines = info.value.message.splitlines()
    assert "line 3, column 7" in lines[0]
    assert lines[1] == "    and colour = red"
    assert lines[2] == "        ^"


def test_tabs_keep_the_caret_aligned() -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse_query("python\twhere\tcolour = 1")
    assert info.value.message.splitlines()[2] == "        \t     \t^"


def test_deep_nesting_is_refused_with_a_caret_not_a_recursion_error() -> None:
    with pytest.raises(QuerySyntaxError, match="nested"):
        parse_query("python where " + "(" * 500 + "tag = a" + ")" * 500)
    with pytest.raises(QuerySyntaxError, match="nested"):
        parse_query("python where " + "not " * 500 + "tag = a")
    parse_query("python where " + "(" * 50 + "tag = a" + ")" * 50)
    # Many conditions side by side are not nesting.
    parse_query("python where " + " and ".join(["not tag = a"] * 300))


# -- fuzzing: only QuerySyntaxError, ever ---------------------------------------------

CORPUS = [
    *EXAMPLES,
    "python where created > now - 30d and age < 7d and size <= 100MB order by size desc",
    'python, alpine where (tag in ("a", b) or not variant != "") and os = linux limit 3',
    'python where annotation["x.y"] =~ "^a" and label["k"] ~ "v*" and digest ~ "sha256:*"',
    "python where arch not in (arm64, amd64) order by platform, age asc",
]
ALPHABET = [
    *"()[],\"'=!<>~ \t\n\\-+:/.@*?^$",
    "where",
    "order by",
    "limit",
    "and",
    "or",
    "not",
    "in",
    "now",
    "label[",
    "3.12",
    "2026-06-01",
    "é",
    "\x00",
    "\U0001f600",
    "sha256:",
    "9" * 30,
    "9" * 4400,
    "²",
]


def mutate(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 4)):
        i = rng.randint(0, len(text))
        choice = rng.random()
        if choice < 0.35 and text:
            j = min(len(text), i + rng.randint(1, 6))
            text = text[:i] + text[j:]
        elif choice < 0.75:
            text = text[:i] + rng.choice(ALPHABET) + text[i:]
        else:
            j = min(len(text), i + rng.randint(1, 10))
            text = text[:i] + text[j:] + text[i:j]  # move a piece
    return text


def test_fuzzed_queries_raise_only_query_syntax_errors() -> None:
    rng = random.Random(20261129)
    parsed = failed = 0
    bad: list[str] = []
    for n in range(6000):
        text = mutate(rng, rng.choice(CORPUS))
        if n % 5 == 0:  # and token soup
            text = " ".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 12)))
            text = "python " + text if n % 10 == 0 else text
        try:
            parse_query(text)
            parsed += 1
        except QuerySyntaxError as exc:
            failed += 1
            lines = exc.message.splitlines()
            if not (
                0 <= exc.position <= len(text)
                and lines[0].startswith("invalid query at ")
                and lines[-1].strip() == "^"
            ):
                bad.append(f"malformed error for {text!r}: {exc.message}")
        except Exception as exc:  # what the test exists to catch
            bad.append(f"{type(exc).__name__} for {text!r}: {exc}")
    assert bad == []
    # The fuzzer must exercise both outcomes to mean anything.
    assert parsed > 300 and failed > 3000


@pytest.mark.parametrize(
    "text",
    [
        "python where size > " + "9" * 400,
        "python where age < " + "9" * 5000 + "d",
        "python where version ~ 1." + "9" * 5000,
        "python where created > now - " + "9" * 30 + "d",
        "python limit " + "9" * 5000,
        "python limit ²",
        "python where created < 0000-01-01",
    ],
)
def test_huge_and_odd_numbers_are_syntax_errors(text: str) -> None:
    with pytest.raises(QuerySyntaxError):
        parse_query(text)


def test_non_string_and_huge_queries() -> None:
    with pytest.raises(QuerySyntaxError):
        parse_query(42)  # type: ignore[arg-type]
    with pytest.raises(QuerySyntaxError, match="at most"):
        parse_query("python where tag = " + "a" * 20000)
    assert issubclass(QuerySyntaxError, PortsideError)
