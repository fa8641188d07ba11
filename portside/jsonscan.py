"""``json.loads`` without importing ``json``, for the paths where every millisecond shows.

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


def loads(data: bytes) -> object:
    """``json.loads(data)``: the same value or the same error, mostly without ``json``."""
    value = _scan(data)
    if value is not _UNREAD:
        return value
    import json

    return json.loads(data)
