"""Diagnostics converted to JSON once: a document's findings mostly stay the same from
one keystroke to the next, and converting ~100 diagnostics (cattrs) on every publish
costs more than making them. :class:`lsp_server.features.DiagnosticCache` remembers the
JSON form of each diagnostic it makes; the server's converter (:func:`converter`)
sends that instead of converting the object again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lsprotocol import types as lsp

# id -> (the diagnostic, its JSON form). The diagnostic is held here, so its id is not
# reused while the entry exists.
_FORMS: dict[int, tuple[lsp.Diagnostic, Any]] = {}
# The converter as pygls makes it (a copy taken before the hook below is registered),
# and the conversion it generates for a Diagnostic on first use.
_PLAIN_CONVERTER: list[Any] = []
_PLAIN: list[Callable[[lsp.Diagnostic], Any]] = []


def plain(diagnostic: lsp.Diagnostic) -> Any:
    """``diagnostic`` converted the way pygls's own converter does."""
    if not _PLAIN:
        if not _PLAIN_CONVERTER:  # no server made yet (tests): pygls's converter
            _PLAIN_CONVERTER.append(_pygls_converter())
        # Generated on the first publish (~2 ms), not at start-up.
        _PLAIN.append(_PLAIN_CONVERTER[0].get_unstructure_hook(lsp.Diagnostic))
    return _PLAIN[0](diagnostic)


def remember(diagnostic: lsp.Diagnostic) -> None:
    _FORMS[id(diagnostic)] = (diagnostic, plain(diagnostic))


def forget(diagnostic: lsp.Diagnostic) -> None:
    _FORMS.pop(id(diagnostic), None)


def unstructure(diagnostic: lsp.Diagnostic) -> Any:
    """The converter's hook for ``lsp.Diagnostic``: the remembered JSON form, if any."""
    known = _FORMS.get(id(diagnostic))
    if known is not None and known[0] is diagnostic:
        return known[1]
    return plain(diagnostic)


def _pygls_converter() -> Any:
    from pygls.protocol import default_converter

    return default_converter()  # type: ignore[no-untyped-call]  # pygls leaves it untyped


def converter() -> Any:
    """pygls's converter, sending remembered diagnostics as they were converted."""
    made = _pygls_converter()
    if not _PLAIN_CONVERTER:
        _PLAIN_CONVERTER.append(made.copy())  # ~0.5 ms; a converter of its own is ~12
    made.register_unstructure_hook(lsp.Diagnostic, unstructure)
    return made
