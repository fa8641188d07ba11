"""The one JSON parser for bytes from outside (registries, token servers, helpers, the
cache, files): ``json.loads`` with a depth limit, mostly without importing ``json``.

Bounded: a document nested deeper than ``MAX_DEPTH`` raises :class:`TooDeep`, a
``ValueError`` like every other malformed document, so a hostile registry's
``[[[[...]]]]`` is an invalid response (and a bad cache entry a miss), never a
``RecursionError`` here or in whatever walks the value later.

Without ``json`` where it can, for the paths where every millisecond shows:

``json.loads`` runs json's C scanner (``_json.make_scanner``) over the decoded text, but
``import json`` also imports ``re`` (to skip whitespace), which imports ``enum`` and
``functools``: ~8 ms, a third of a warm ``portside tags``. :func:`loads` runs the same
scanner, set up as ``json.JSONDecoder()`` sets it up, over the bytes decoded as strict
UTF-8, and hands everything it does not read whole to ``json.loads`` itself, which then
gives its own value or its own error: bytes that are not strict UTF-8, a byte-order
mark, no value, trailing data, a syntax error.

What it does read, ``json.loads`` reads the same way: ``json.loads`` decodes as anything
but UTF-8 only after a byte-order mark or a NUL in the first two bytes, which the scanner
has refused (a UTF-8 mark is no JSON whitespace, a NUL is allowed nowhere in JSON text,
the other marks are not UTF-8 or start with a NUL); its "surrogatepass" UTF-8 decoding
gives the same text wherever strict decoding succeeds; and it skips the same
whitespace. tests/test_jsonscan.py compares both on valid, foreign and damaged documents.

A leaf module: it imports nothing of Portside's.
"""

from __future__ import annotations

TYPE_CHECKING = False  # avoids importing typing on the warm path; mypy knows it
if TYPE_CHECKING:
    from collections.abc import Callable

# Far deeper than any manifest, config, token or error body (about 5 levels), far below
# the interpreter's recursion limit (1000), which walkers of the value count against.
MAX_DEPTH = 100
_WHITESPACE = " \t\n\r"  # what json.decoder skips between tokens
_CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


class _ScannerSettings:
    """What ``_json.make_scanner`` reads from its context, as ``json.JSONDecoder()`` has it."""

    def __init__(self) -> None:
        self.strict = True  # control characters in strings are an error
        self.object_hook = None
        self.object_pairs_hook = None
        self.array_hook = None  # read from Python 3.15 on
        self.parse_float = float
        self.parse_int = int
        self.parse_constant = _CONSTANTS.__getitem__


def _make_scanner() -> Callable[[str, int], tuple[object, int]] | None:
    try:
        from _json import make_scanner

        return make_scanner(_ScannerSettings())  # type: ignore[arg-type]  # duck-typed
    except Exception:  # no C accelerator here, or one that wants other settings
        return None


_scan_once = _make_scanner()
_UNREAD = object()


def _scan(data: bytes) -> object:
    """The document in ``data`` if the C scanner reads it whole, else ``_UNREAD``."""
    if _scan_once is None:
        return _UNREAD
    try:
        text = data.decode("utf-8")
        value, end = _scan_once(text, len(text) - len(text.lstrip(_WHITESPACE)))
    except Exception:  # StopIteration (no value), a decode or syntax error, too deep
        return _UNREAD
    if text[end:].strip(_WHITESPACE):
        return _UNREAD  # trailing data
    return value


class TooDeep(ValueError):
    """A JSON document nested deeper than the limit."""


def loads(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> object:
    """``json.loads(data)``: the same value or the same error, mostly without ``json``;
    :class:`TooDeep` (a ``ValueError``) for a document nested deeper than ``max_depth``.
    """
    try:
        value = _scan(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
        if value is _UNREAD:
            import json

            value = json.loads(data)
    except RecursionError:
        raise TooDeep(f"JSON nested too deeply (limit {max_depth})") from None
    # Depth cannot exceed the number of brackets: most documents are settled by a count.
    if isinstance(data, str):
        opening = data.count("[") + data.count("{")
    else:
        opening = data.count(b"[") + data.count(b"{")
    if opening > max_depth and _deeper_than(value, max_depth):
        raise TooDeep(f"JSON nested too deeply (limit {max_depth})")
    return value


def _deeper_than(value: object, limit: int) -> bool:
    """Whether ``value`` nests lists and objects more than ``limit`` deep (no recursion)."""
    stack: list[tuple[dict[object, object] | list[object], int]] = []
    if isinstance(value, (dict, list)):
        stack.append((value, 1))
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False
