"""``WWW-Authenticate`` challenges and token scopes.

The parser follows the grammar of RFC 9110 section 11 (which replaced RFC 7235)::

    WWW-Authenticate = #challenge
    challenge        = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
    auth-param       = token BWS "=" BWS ( token / quoted-string )
    token68          = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    quoted-string    = DQUOTE *( qdtext / quoted-pair ) DQUOTE
    quoted-pair      = "\\" ( HTAB / SP / VCHAR / obs-text )

It reads the header character by character, so commas and escaped quotes inside
quoted values, several challenges in one header (``Negotiate, Bearer realm=...``)
and several headers all come out right. Scheme and parameter names are
case-insensitive and returned in lower case; values keep their case.

It never raises on garbage: what cannot be parsed is skipped up to the next comma
and parsing goes on, so a header with one broken challenge still yields the others.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from portside.errors import InvalidResponse

_TCHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_TOKEN68_CHARS = frozenset("-._~+/0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_WS = " \t"

# Schemes Portside can answer, most preferred first.
SUPPORTED_SCHEMES = ("bearer", "basic")


@dataclass(frozen=True)
class Challenge:
    """One authentication challenge: ``Bearer realm="…",service="…"``."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict, hash=False)
    token68: str | None = None

    def get(self, name: str, default: str | None = None) -> str | None:
        """A parameter by case-insensitive name."""
        return self.params.get(name.lower(), default)

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        return self.params.get("service")

    @property
    def scope(self) -> str | None:
        return self.params.get("scope")

    @property
    def error(self) -> str | None:
        """RFC 6750 ``error`` (``invalid_token``, ``insufficient_scope``), if given."""
        return self.params.get("error")


class _Parser:
    """A cursor over one header value."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.n = len(text)

    def at_end(self) -> bool:
        return self.pos >= self.n

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < self.n else ""

    def skip_ws(self) -> None:
        while self.pos < self.n and self.text[self.pos] in _WS:
            self.pos += 1

    def skip_ws_and_commas(self) -> None:
        while self.pos < self.n and (self.text[self.pos] in _WS or self.text[self.pos] == ","):
            self.pos += 1

    def token(self) -> str:
        start = self.pos
        while self.pos < self.n and self.text[self.pos] in _TCHARS:
            self.pos += 1
        return self.text[start : self.pos]

    def skip_to_comma(self) -> None:
        """Junk recovery: move past the next comma that is not inside quotes."""
        while self.pos < self.n:
            char = self.text[self.pos]
            if char == '"':
                self.quoted_string()
                continue
            self.pos += 1
            if char == ",":
                return

    def quoted_string(self) -> str:
        """Read a quoted-string starting at '"'; an unterminated one runs to the end."""
        self.pos += 1  # opening quote
        out: list[str] = []
        while self.pos < self.n:
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < self.n:
                out.append(self.text[self.pos + 1])
                self.pos += 2
            elif char == '"':
                self.pos += 1
                break
            else:
                out.append(char)
                self.pos += 1
        return "".join(out)

    def token68_ahead(self) -> int:
        """End of a token68 at the cursor if one stands alone there (then OWS, ',' or end)."""
        end = self.pos
        while end < self.n and self.text[end] in _TOKEN68_CHARS:
            end += 1
        if end == self.pos:
            return -1
        while end < self.n and self.text[end] == "=":
            end += 1
        after = end
        while after < self.n and self.text[after] in _WS:
            after += 1
        if after < self.n and self.text[after] != ",":
            return -1
        return end

    def param_ahead(self) -> bool:
        """Whether the cursor is at ``token BWS "="`` (an auth-param, not a new scheme)."""
        probe = self.pos
        while probe < self.n and self.text[probe] in _TCHARS:
            probe += 1
        if probe == self.pos:
            return False
        while probe < self.n and self.text[probe] in _WS:
            probe += 1
        return probe < self.n and self.text[probe] == "="

    def param(self) -> tuple[str, str] | None:
        """Read ``name = value``; None (cursor past the junk) if it is not one."""
        name = self.token().lower()
        self.skip_ws()
        if self.peek() != "=":
            self.skip_to_comma()
            return None
        self.pos += 1
        self.skip_ws()
        value = self.quoted_string() if self.peek() == '"' else self.token()
        self.skip_ws()
        if not self.at_end() and self.peek() != ",":
            # "realm=a b" or "realm="x"y": keep what was read, drop the rest of the item.
            self.skip_to_comma()
        return name, value

    def challenges(self) -> list[Challenge]:
        result: list[Challenge] = []
        while True:
            self.skip_ws_and_commas()
            if self.at_end():
                return result
            scheme = self.token()
            if not scheme or self.peek() == "=":
                # Not a challenge start (a stray parameter or junk): skip this item.
                self.skip_to_comma()
                continue
            params: dict[str, str] = {}
            token68: str | None = None
            self.skip_ws()
            end = self.token68_ahead()
            if end != -1:
                token68 = self.text[self.pos : end]
                self.pos = end
            # Parameters: each list item that reads "name=" belongs to this
            # challenge; the first item that is a bare token starts the next
            # challenge; anything else is junk, skipped up to the next comma.
            while True:
                self.skip_ws_and_commas()
                if self.at_end():
                    break
                if self.param_ahead():
                    item = self.param()
                    # RFC 9110: a parameter name occurs once; the first one wins.
                    if item is not None and item[0] not in params:
                        params[item[0]] = item[1]
                elif self.peek() in _TCHARS:
                    break
                else:
                    self.skip_to_comma()
            result.append(Challenge(scheme.lower(), params, token68))


def parse_challenges(headers: Iterable[str] | str) -> list[Challenge]:
    """Every challenge in the given ``WWW-Authenticate`` header values, in order.

    Accepts the list of header values (``response.headers.get_list(...)``) or a
    single value. Never raises on malformed input.
    """
    if isinstance(headers, str):
        headers = [headers]
    result: list[Challenge] = []
    for value in headers:
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        if not isinstance(value, str):
            continue
        result.extend(_Parser(value).challenges())
    return result


def pick(challenges: Iterable[Challenge]) -> Challenge | None:
    """The challenge to answer: the first Bearer, else the first Basic, else None.

    Other schemes (Negotiate, NTLM, Digest, …) are ignored; with only those the
    caller tries anonymously and reports the 401.
    """
    found: dict[str, Challenge] = {}
    for challenge in challenges:
        if challenge.scheme in SUPPORTED_SCHEMES:
            found.setdefault(challenge.scheme, challenge)
    for scheme in SUPPORTED_SCHEMES:
        if scheme in found:
            return found[scheme]
    return None


# --- scopes ------------------------------------------------------------------


def _normalize_actions(actions: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({action for action in actions if action}))


@dataclass(frozen=True, order=True)
class Scope:
    """A token scope: ``repository:lib/golang:pull,push``.

    ``actions`` are kept sorted and de-duplicated, so equal scopes compare and hash
    equal whatever order they were written in.
    """

    kind: str
    name: str
    actions: tuple[str, ...]

    def __post_init__(self) -> None:
        if isinstance(self.actions, str):
            raise TypeError("Scope.actions is a tuple of actions, e.g. ('pull',), not a string")
        for part, what in ((self.kind, "kind"), (self.name, "name")):
            if not part or any(c in part for c in " \t\r\n"):
                raise InvalidResponse(f"invalid scope {what} {part!r}")
        if ":" in self.kind:
            raise InvalidResponse(f"invalid scope kind {self.kind!r}")
        for action in self.actions:
            if any(c in action for c in " \t\r\n,:"):
                raise InvalidResponse(f"invalid scope action {action!r}")
        object.__setattr__(self, "actions", _normalize_actions(self.actions))

    @classmethod
    def repository(cls, name: str, *actions: str) -> Scope:
        """``Scope.repository("lib/golang", "pull")``."""
        return cls("repository", name, actions)

    @classmethod
    def parse(cls, text: str) -> Scope:
        """Parse ``kind:name:actions``; the name may hold ``host:port``.

        The kind ends at the first colon and the actions start after the last one,
        so ``repository:host:5000/a/b:pull,push`` has the name ``host:5000/a/b``.
        Raises ``InvalidResponse`` for text that is not a scope.
        """
        text = text.strip()
        kind, sep1, rest = text.partition(":")
        name, sep2, actions = rest.rpartition(":")
        if not (sep1 and sep2 and kind and name):
            raise InvalidResponse(
                f"invalid scope {text[:200]!r}", hint="expected kind:name:actions"
            )
        return cls(kind, name, tuple(actions.split(",")))

    @classmethod
    def parse_many(cls, text: str) -> list[Scope]:
        """Space-separated scopes, as in a challenge's ``scope`` parameter; junk skipped."""
        scopes = []
        for item in text.split():
            try:
                scopes.append(cls.parse(item))
            except InvalidResponse:
                continue
        return scopes

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}:{','.join(self.actions)}"

    def covers(self, other: Scope) -> bool:
        """Whether a token granted for this scope also grants ``other``."""
        if (self.kind, self.name) != (other.kind, other.name):
            return False
        return "*" in self.actions or set(other.actions) <= set(self.actions)

    def with_actions(self, *actions: str) -> Scope:
        """This scope with ``actions`` added."""
        return Scope(self.kind, self.name, self.actions + actions)


def merge_scopes(scopes: Iterable[Scope]) -> tuple[Scope, ...]:
    """One scope per (kind, name) with the union of actions, in a stable order.

    The result is what one token request asks for, and (as a tuple) a usable part of
    a token cache key.
    """
    merged: dict[tuple[str, str], set[str]] = {}
    for scope in scopes:
        merged.setdefault((scope.kind, scope.name), set()).update(scope.actions)
    return tuple(
        Scope(kind, name, tuple(actions)) for (kind, name), actions in sorted(merged.items())
    )


def scope_query(scopes: Iterable[Scope]) -> list[tuple[str, str]]:
    """Query parameters for a token request: one ``scope=`` per merged scope."""
    return [("scope", str(scope)) for scope in merge_scopes(scopes)]
