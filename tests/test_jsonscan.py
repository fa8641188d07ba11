"""portside.jsonscan: json.loads's answers without importing json.

Every input gives the same value (compared by repr: 1 is not 1.0, NaN equals NaN) or
the same error as ``json.loads``, with the C scanner and without it.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from portside import jsonscan

ROOT = Path(__file__).resolve().parent.parent


def _outcome(load: Callable[[bytes], object], data: bytes) -> tuple[object, ...]:
    """What ``load(data)`` gives: the value's repr (it tells 1 from 1.0 and shows NaN
    equal to NaN) or the error's type and message."""
    try:
        return ("value", repr(load(data)))
    except Exception as exc:
        return ("error", type(exc), str(exc))


def _json_inputs() -> list[bytes]:
    entry = json.dumps(
        {
            "key": ["tags", "example.com", "team/app"],
            "fetched_at": 1_800_000_000.25,
            "etag": '"abc"',
            "value": ["1.0", "1.0-slim", "latest"],
        },
        separators=(",", ":"),
    ).encode()
    texts = [
        "null",
        "true",
        "false",
        "0",
        "-0",
        "-0.0",
        "1.5E-3",
        "1e400",
        "-1e400",
        "123456789012345678901234567890",
        "NaN",
        "Infinity",
        "-Infinity",
        "[NaN, -Infinity]",
        '"\\ud83d\\ude00"',
        '"\\ud800"',
        '"caf\u00e9 \u2603"',
        '{"a": 1, "a": 2}',
        '{"a": [1, {"b": [true, null]}], "c": {}}',
        " \t\n\r[1] \n",
        "[1, 2, 3]\n",
        '{"key": [], "value": "\\u0000"}',
        # damaged or foreign: json.loads's error, whichever reader gives it
        "",
        "   ",
        "[1,]",
        "{'a': 1}",
        "[1] x",
        "[1][2]",
        "[1",
        '"\x01"',
        '"a\nb"',
        "nan",
        "[-]",
        "01",
        "1.",
        '{"a" 1}',
        "\x00",
        "1\x00",
        "\ufeff[1]",
    ]
    inputs = [entry] + [t.encode("utf-8") for t in texts]
    inputs += [
        b"\xff\xfe",
        b'["\xc3"]',  # not UTF-8
        b'"\xed\xa0\x80"',  # a lone surrogate, UTF-8-encoded: json.loads accepts it
        b"\xef\xbb\xbf[1]",  # a UTF-8 byte-order mark
        "[1]".encode("utf-16"),
        "[1]".encode("utf-16-le"),
        '{"a": 1}'.encode("utf-16-be"),
        "[1]".encode("utf-32"),
        "[1]".encode("utf-32-le"),
        b"[" * jsonscan.MAX_DEPTH + b"]" * jsonscan.MAX_DEPTH,  # as deep as allowed
    ]
    # Every cut of a real entry (a torn write), and some with a byte changed.
    inputs += [entry[:n] for n in range(len(entry))]
    rng = random.Random(7)
    for _ in range(500):
        damaged = bytearray(entry)
        damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        inputs.append(bytes(damaged))
    return inputs


def test_loads_answers_exactly_as_json_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    assert jsonscan._scan_once is not None, "CPython has the C scanner"
    inputs = _json_inputs()
    for data in inputs:
        assert _outcome(jsonscan.loads, data) == _outcome(json.loads, data), data[:80]
    # Where there is no C scanner, json.loads does it all.
    monkeypatch.setattr(jsonscan, "_scan_once", None)
    for data in inputs:
        assert _outcome(jsonscan.loads, data) == _outcome(json.loads, data), data[:80]


def test_loads_imports_no_json() -> None:
    code = (
        "import sys; from portside import jsonscan; "
        'print(jsonscan.loads(b\'{"a": [1, 2.5, null, "x"]}\')); '
        "print(sorted(m for m in ('json', 're', 'enum', 'functools') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.splitlines()
    assert out == ["{'a': [1, 2.5, None, 'x']}", "[]"]


# -- the depth limit: hostile nesting is a ValueError, never a RecursionError ------------


@pytest.mark.parametrize("scanner", [True, False], ids=["C scanner", "json.loads"])
@pytest.mark.parametrize(
    "data",
    [
        b"[" * (jsonscan.MAX_DEPTH + 1) + b"]" * (jsonscan.MAX_DEPTH + 1),  # one too deep
        b"[" * 100_000 + b"]" * 100_000,  # too deep for json.loads itself
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
        b'{"errors": [{"detail": ' + b"[" * 3000 + b"]" * 3000 + b"}]}",
        b"[" * 100_000,  # and unfinished
        "[" * 100_000 + "]" * 100_000,  # text as well as bytes
    ],
    ids=["limit+1", "100000", "objects", "inside", "unfinished", "str"],
)
def test_nesting_past_the_limit_is_a_value_error(
    monkeypatch: pytest.MonkeyPatch, data: bytes | str, scanner: bool
) -> None:
    if not scanner:
        monkeypatch.setattr(jsonscan, "_scan_once", None)
    with pytest.raises(jsonscan.TooDeep):  # a ValueError, as every malformed document
        jsonscan.loads(data)


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    tags = ["[" * 300, "{" * 300]
    assert jsonscan.loads(json.dumps({"tags": tags}).encode()) == {"tags": tags}
    assert jsonscan.loads(b"[" * 3 + b"]" * 3, max_depth=3) == [[[]]]
    with pytest.raises(jsonscan.TooDeep):
        jsonscan.loads(b"[" * 4 + b"]" * 4, max_depth=3)
