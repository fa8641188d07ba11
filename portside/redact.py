"""Keeping secrets out of output: URLs, wrapped values and free text.

Everything that may reach an exception, a log line, the command line, hook output, an
LSP message or a report goes through one of these first:

- :func:`redact_url` for URLs (query values other than harmless registry keys and any
  ``user:password@`` are removed),
- :class:`Secret` for values held in objects (its ``str``/``repr``/``format`` show
  ``***``; only :meth:`Secret.reveal` gives the value),
- :func:`redact_text` for text that may contain a known secret (a helper's error, a
  registry's error body echoing a token).

Light on purpose: the command line imports this on its fast path, so only the
standard library is used.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import quote, urlsplit, urlunsplit

MASK = "***"

# Query keys that carry nothing secret in registry traffic: token scopes and
# services, pagination, upload digests and cross-repository mounts.
SAFE_QUERY_KEYS = frozenset({"scope", "service", "n", "last", "digest", "mount", "from"})

# Headers whose values are credentials.
SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-registry-auth"}
)


class Secret:
    """A secret value that does not show itself.

    A wrapper rather than a ``str`` subclass on purpose: a ``str`` subclass leaks
    through f-strings (``format`` uses the underlying value), concatenation,
    ``json.dumps``, ``%s`` formatting of slices and every C function that reads the
    buffer directly. Here ``str()``, ``repr()`` and ``format()`` all give ``***``,
    and the value only comes out through :meth:`reveal`, which is easy to grep for.

    Comparison with another ``Secret`` is constant-time. Pickling is refused so a
    secret does not end up in a cache file by accident.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError(f"Secret holds a str, not {type(value).__name__}")
        self._value = value

    def reveal(self) -> str:
        """The secret itself: only for the place that sends it (a header, a helper's stdin)."""
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __format__(self, spec: str) -> str:
        return format(MASK, spec)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> str:
        raise TypeError("a Secret cannot be pickled")


def _mask_query(query: str) -> str:
    parts = []
    for part in query.split("&"):
        if not part:
            continue
        key, eq, _value = part.partition("=")
        if key.lower() in SAFE_QUERY_KEYS:
            parts.append(part)
        elif eq:
            parts.append(f"{key}={MASK}")
        else:
            # A bare value ("?<token>") may be the secret itself.
            parts.append(MASK)
    return "&".join(parts)


def redact_url(url: str) -> str:
    """``url`` with credentials removed, safe to show or log.

    Drops ``user:password@``, replaces every query value except those of
    :data:`SAFE_QUERY_KEYS` with ``***`` (a signed blob URL's ``X-Amz-Signature``, a
    ``token=``) and replaces a fragment with ``***``. Never raises: a URL that cannot
    be split has everything after ``?`` or ``#`` and before ``@`` masked.
    """
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = netloc.rpartition("@")[2]
        query = _mask_query(parts.query) if parts.query else ""
        fragment = MASK if parts.fragment else ""
        return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))
    except ValueError:
        text = url
        for cut in ("?", "#"):
            if cut in text:
                text = text.split(cut, 1)[0] + cut + MASK
        scheme, sep, rest = text.partition("://")
        if sep:
            authority, slash, path = rest.partition("/")
            text = f"{scheme}{sep}{authority.rpartition('@')[2]}{slash}{path}"
        return text


def redact_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers with credential values (``Authorization``, cookies) replaced by ``***``.

    ``Location`` and other URL-valued headers go through :func:`redact_url`.
    """
    items = headers.items() if isinstance(headers, Mapping) else headers
    result: dict[str, str] = {}
    for name, value in items:
        lowered = name.lower()
        if lowered in SENSITIVE_HEADERS:
            scheme = value.split(" ", 1)[0] if " " in value.strip() else ""
            result[name] = f"{scheme} {MASK}" if scheme else MASK
        elif lowered in ("location", "content-location", "link"):
            result[name] = redact_url(value) if lowered != "link" else _redact_link(value)
        else:
            result[name] = value
    return result


def _redact_link(value: str) -> str:
    out = []
    for piece in value.split(","):
        start, end = piece.find("<"), piece.find(">")
        if 0 <= start < end:
            piece = piece[: start + 1] + redact_url(piece[start + 1 : end]) + piece[end:]
        out.append(piece)
    return ",".join(out)


def _secret_forms(secret: str) -> set[str]:
    forms = {secret, quote(secret, safe=""), quote(secret, safe="/")}
    return {form for form in forms if form}


def redact_text(text: str, secrets: Iterable[str | Secret | None]) -> str:
    """``text`` with every occurrence of each known secret replaced by ``***``.

    Also catches the secrets' percent-encoded forms (as they appear in URLs and form
    bodies). Longer secrets are replaced first so one secret containing another is
    masked whole. Empty and ``None`` entries are ignored.
    """
    forms: set[str] = set()
    for secret in secrets:
        if secret is None:
            continue
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if value:
            forms |= _secret_forms(value)
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    return text
