"""How a surface configures the registry client: the one place that turns its options
(``--insecure-registry``, ``--ca-file``, ``--timeout``, ``--deadline``) and the
environment into :class:`~portside.registry.transport.ClientOptions`.

The command line, the pre-commit hooks and the build plugins all call
:func:`client_options`, so ``PORTSIDE_INSECURE_REGISTRIES`` and ``PORTSIDE_DEADLINE``
mean the same everywhere. Light on purpose: the network stack (``transport``) is
imported only when options are made, never by the checks a cache answers.
"""

from __future__ import annotations

import os

from portside.errors import UsageError

TYPE_CHECKING = False  # typing is not imported on the command line's warm path
if TYPE_CHECKING:
    from collections.abc import Iterable

    from portside.registry.transport import ClientOptions

INSECURE_ENV = "PORTSIDE_INSECURE_REGISTRIES"  # comma-separated hosts, like --insecure-registry
DEADLINE_ENV = "PORTSIDE_DEADLINE"  # seconds, the default of --deadline
DEFAULT_DEADLINE = 120.0  # no command waits on registries for ever
TRANSFER_DEADLINE = 3600.0  # copying layers, walking or changing a whole registry


def insecure_hosts(given: Iterable[str] = ()) -> frozenset[str]:
    """The hosts that may be reached over plain HTTP or unverified TLS: ``given`` and
    ``$PORTSIDE_INSECURE_REGISTRIES``, each in canonical form (``localhost:5000``)."""
    from portside.reference import canonical_registry

    hosts = list(given)
    hosts += (part.strip() for part in os.environ.get(INSECURE_ENV, "").split(","))
    return frozenset(canonical_registry(h) for h in hosts if h.strip())


def deadline(given: float | None = None, default: float = DEFAULT_DEADLINE) -> float:
    """``given``, else ``$PORTSIDE_DEADLINE``, else ``default``: never unbounded. A bad
    ``$PORTSIDE_DEADLINE`` is a usage error (even when the cache would answer)."""
    if given is not None:
        return float(given)
    text = os.environ.get(DEADLINE_ENV, "")
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise UsageError(f"{DEADLINE_ENV}={text[:40]!r} is not a positive number of seconds")
    return value


def check_ca_file(path: str | None) -> None:
    """A ``--ca-file`` that cannot be read is a usage error before anything is asked."""
    if path is not None and not (os.path.isfile(path) and os.access(path, os.R_OK)):
        raise UsageError(f"--ca-file {path!r} is not a readable file")


def client_options(
    *,
    insecure: Iterable[str] = (),
    ca_file: str | None = None,
    timeout: float | None = None,
    deadline_s: float | None = None,
    default_deadline: float = DEFAULT_DEADLINE,
) -> ClientOptions:
    """The client's options from a surface's: insecure hosts (with the environment's),
    a checked CA file, ``timeout`` per request (the client's default when ``None``) and
    the deadline of all requests together (see :func:`deadline`)."""
    import dataclasses

    from portside.registry.transport import ClientOptions

    check_ca_file(ca_file)
    options = ClientOptions(
        insecure=insecure_hosts(insecure),
        ca_file=ca_file,
        deadline=deadline(deadline_s, default_deadline),
    )
    return options if timeout is None else dataclasses.replace(options, timeout=timeout)
