"""The credential of the plugin contract (``portside_credentials``), and where a client
gets one (:class:`CredentialSource`).

Apart from :mod:`portside.contract` (which re-exports both) because an answer cached
from an authenticated request is served only after the caller's credential is looked
up, so this type is on a warm command's path: a :class:`~portside.value.Value`, not a
dataclass, and nothing else of the contract (its dataclasses) is imported for it.
"""

from __future__ import annotations

from portside.value import Value

TYPE_CHECKING = False  # avoids importing typing on the warm path; mypy knows it
if TYPE_CHECKING:
    from typing import Protocol
else:
    Protocol = object


class Credential(Value):
    """What to authenticate to one registry with.

    - ``username`` + ``password``: basic auth, or the token server's basic auth.
    - ``identity_token``: an OAuth2 refresh token (docker's ``identitytoken``, or a
      helper answering with the user name ``<token>``), exchanged at the token realm.
    - ``registry_token``: a bearer token to send as is.

    ``source`` says where it came from, for messages; it never holds a secret.
    ``repr()`` and ``str()`` never show the password or the tokens.
    """

    username: str | None = None
    password: str | None = None
    identity_token: str | None = None
    registry_token: str | None = None
    source: str = "unknown source"

    def __repr__(self) -> str:
        parts = [f"username={self.username!r}"]
        for name in ("password", "identity_token", "registry_token"):
            if getattr(self, name):
                parts.append(f"{name}=<set>")
        parts.append(f"source={self.source!r}")
        return f"Credential({', '.join(parts)})"

    def __str__(self) -> str:
        who = f" for user {self.username!r}" if self.username else ""
        return f"{self.kind}{who} from {self.source}"

    @property
    def kind(self) -> str:
        """``registry token``, ``identity token``, ``password`` or ``username only``."""
        if self.registry_token:
            return "registry token"
        if self.identity_token:
            return "identity token"
        if self.password:
            return "password"
        return "username only"

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secret values, for :func:`portside.redact.redact_text`."""
        values = (self.password, self.identity_token, self.registry_token)
        return tuple(value for value in values if value)


class CredentialSource(Protocol):
    """Where a registry client gets credentials (``registry.credentials.CredentialStore``
    asks the ``portside_credentials`` hook): ``get`` may block, ``aget`` may not."""

    def get(self, registry: str) -> Credential | None: ...

    async def aget(self, registry: str) -> Credential | None: ...
