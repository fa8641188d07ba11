"""One exception root, specific subclasses.

Every message names what went wrong, where (registry, repository) and what to do.
Messages are built from parts that never hold a secret: URLs go through
:func:`portside.redact.redact_url` before they reach an exception.
"""

from __future__ import annotations

TYPE_CHECKING = False  # avoids importing typing (~9 ms) on the warm path; mypy knows it
if TYPE_CHECKING:
    import datetime as _dt  # annotations only: ~1.5 ms that a cache hit does not need


class PortsideError(Exception):
    """Root of every error Portside raises on purpose.

    ``exit_code`` is what the command line exits with when this error ends a command.
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message} ({hint})")


class UsageError(PortsideError):
    """The caller asked for something that cannot be done as asked (bad flag, bad config)."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration file or setting is invalid."""


class InvalidReference(UsageError):
    """An image reference does not follow the reference grammar."""


class InvalidDigest(InvalidReference):
    """A digest is not ``algorithm:hex`` of the right length in lower case."""


class CredentialError(PortsideError):
    """A credential source failed: a helper is missing, crashed or hung, a config is unreadable."""

    exit_code = 4


class RegistryError(PortsideError):
    """Something went wrong talking to a registry."""

    exit_code = 5

    def __init__(
        self,
        message: str,
        *,
        registry: str | None = None,
        repository: str | None = None,
        hint: str | None = None,
        status: int | None = None,
    ) -> None:
        self.registry = registry
        self.repository = repository
        self.status = status
        self.detail = message  # without the "registry/repository: " prefix
        where = ""
        if registry and repository:
            where = f"{registry}/{repository}: "
        elif registry:
            where = f"{registry}: "
        super().__init__(where + message, hint=hint)


class RegistryUnreachable(RegistryError):
    """The registry could not be asked: DNS, refused connection, timeout."""


class DeadlineExceeded(RegistryUnreachable):
    """The command's whole time budget (``--deadline``) ran out: slow answers, retries
    or a ``Retry-After`` longer than the time left."""


class TLSError(RegistryUnreachable):
    """The TLS handshake failed (unknown CA, wrong host name, plain HTTP on the other side)."""


class InsecureTransportRefused(RegistryError):
    """Plain HTTP was needed but the registry is not loopback nor marked insecure."""


class NotARegistry(RegistryError):
    """``/v2/`` did not answer like an OCI distribution registry."""


class ServerError(RegistryError):
    """The registry kept answering 5xx (or 408) after the retries."""


class Unauthorized(RegistryError):
    """401: no credentials, or the ones given were refused."""

    exit_code = 4


class CredentialsRefused(Unauthorized):
    """401 although credentials were sent: the registry (or its token server) refused
    the configured ones. Not "unreachable": a check must say so loudly and fail."""


class Denied(RegistryError):
    """403 or a token with less access than asked: the credentials work but lack rights."""

    exit_code = 4


class NotFound(RegistryError):
    """The repository, tag, manifest or blob does not exist."""

    exit_code = 3


class RateLimited(RegistryError):
    """429: the registry asks us to slow down. ``reset_at`` is when to try again, if known."""

    def __init__(
        self,
        message: str,
        *,
        registry: str | None = None,
        repository: str | None = None,
        hint: str | None = None,
        reset_at: _dt.datetime | None = None,
        kind: str = "too-many-requests",
    ) -> None:
        self.reset_at = reset_at
        # "pull-limit" (Docker Hub's pull quota), "too-many-requests", "toomanyrequests"
        self.kind = kind
        super().__init__(message, registry=registry, repository=repository, hint=hint, status=429)


class IntegrityError(RegistryError):
    """What the registry sent cannot be trusted."""

    exit_code = 6


class DigestMismatch(IntegrityError):
    """Bytes did not hash to the digest they were fetched or announced by."""

    def __init__(
        self,
        *,
        expected: str,
        actual: str,
        what: str,
        registry: str | None = None,
        repository: str | None = None,
    ) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{what}: expected digest {expected} but the content hashes to {actual}",
            registry=registry,
            repository=repository,
            hint="the registry or a proxy altered the content; nothing was cached",
        )


class TooLarge(IntegrityError):
    """A body was larger than the cap for its kind."""


class InvalidResponse(IntegrityError):
    """A response broke the protocol: malformed JSON, ambiguous manifest, endless pagination."""


class UnsupportedMediaType(IntegrityError):
    """A manifest of a type Portside does not read (Docker schema 1, unknown types)."""


class UnsafeResponse(IntegrityError):
    """The registry sent us somewhere Portside refuses to go (a realm, a redirect)."""


class CacheMiss(PortsideError):
    """Offline mode and the cache does not hold the answer."""

    exit_code = 5


def is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` means "no registry answered this" (down, offline cache miss,
    failing, rate-limited, no credentials given) rather than "it answered no"
    (``NotFound``) or "it refused the credentials we gave" (``CredentialsRefused``)."""
    if isinstance(exc, (NotFound, CredentialsRefused)):
        return False
    return isinstance(exc, (RegistryError, CredentialError, CacheMiss))
