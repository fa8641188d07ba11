"""Where registry credentials come from.

Each source is an implementation of the ``portside_credentials`` hook in this module,
registered as a built-in plugin (``portside.plugins.BUILTIN_PLUGINS``), asked in this
order (first answer wins):

1. ``env_credentials`` (``tryfirst``): the environment, for CI.

   - ``PORTSIDE_USERNAME`` / ``PORTSIDE_PASSWORD`` apply only to the registry named by
     ``PORTSIDE_REGISTRY``. Without ``PORTSIDE_REGISTRY`` they are ignored (with a
     warning): a build reads Dockerfiles that name registries, and a Dockerfile naming
     a hostile registry must never be able to collect a password meant for another.
   - ``PORTSIDE_REGISTRY_AUTH``, then ``DOCKER_AUTH_CONFIG`` (GitLab's variable): the
     JSON text of a docker ``config.json``, read like the file.

2. ``docker_config_credentials``: ``$DOCKER_CONFIG/config.json`` or
   ``~/.docker/config.json``: ``credHelpers[host]``, else ``credsStore``, else
   ``auths[host]``. (When ``credsStore`` has nothing for the host, a matching
   ``auths`` entry is still used; docker itself would ignore it.)

3. ``containers_auth_credentials`` (``trylast``): podman's ``auth.json``
   (``$REGISTRY_AUTH_FILE``, else ``$XDG_RUNTIME_DIR/containers/auth.json`` and
   ``$XDG_CONFIG_HOME/containers/auth.json``). Only whole-host entries are used;
   podman's per-namespace keys (``quay.io/org``) are skipped, since this hook is
   asked per registry, not per repository.

Matching is by exact host after normalisation (scheme and path of legacy keys such
as ``https://index.docker.io/v1/`` dropped, case folded, Docker Hub's aliases
folded into ``docker.io``). The port is part of the host: credentials for
``localhost:5000`` are not used for ``localhost:5001`` or ``localhost``.

Nothing here puts a secret into a message: ``Credential``'s ``repr``/``str`` show
which fields are set, never their values, and errors name the source, the host and
what to do, never a value or a helper's output.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import sys
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from portside import jsonscan
from portside.credential import Credential as Credential
from portside.errors import CredentialError, PortsideError
from portside.plugins import hookimpl
from portside.reference import DOCKER_HUB, DOCKER_HUB_LEGACY_KEY, canonical_registry

if TYPE_CHECKING:
    import logging
    import subprocess
    from pathlib import Path

    import pluggy

# A warm credentialed answer asks the plugins for the caller's credential before it is
# served from the cache, so the config.json path imports nothing heavy: what only
# writing a config or running a credential helper needs (json, tempfile, shutil,
# subprocess, asyncio) is imported where it is used.


def _log() -> logging.Logger:
    # logging (~5 ms) is imported only to say something: the config.json path is silent.
    import logging

    return logging.getLogger(__name__)


DEFAULT_HELPER_TIMEOUT = 10.0
"""Seconds a credential helper may take before it is killed."""

HELPER_TIMEOUT_ENV = "PORTSIDE_CREDENTIAL_HELPER_TIMEOUT"
"""Environment variable overriding :data:`DEFAULT_HELPER_TIMEOUT` (seconds)."""

TOKEN_USERNAME = "<token>"  # noqa: S105 - a protocol marker, not a password
"""The user name a credential helper returns when its secret is an identity token."""

ENV_USERNAME = "PORTSIDE_USERNAME"
ENV_PASSWORD = "PORTSIDE_PASSWORD"  # noqa: S105 - a variable name
ENV_REGISTRY = "PORTSIDE_REGISTRY"
ENV_AUTH_CONFIGS = ("PORTSIDE_REGISTRY_AUTH", "DOCKER_AUTH_CONFIG")

_HELPER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_NOT_FOUND = "credentials not found"
_warned_unscoped_env = False


# --- the credential ----------------------------------------------------------

# Credential is a type of the plugin contract: it lives in portside.credential (below
# the plugin manager, apart from the rest of portside.contract so that the warm path
# imports no dataclasses) and is re-exported here, where it has always been importable.


# --- config files ------------------------------------------------------------


# The credential sources work on path strings (os.path): reading a config is on the
# warm path, and pathlib costs more than reading the file. Paths for the public API.


def _docker_config_file() -> str:
    directory = os.environ.get("DOCKER_CONFIG")
    base = directory if directory else os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(base, "config.json")


def docker_config_path() -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    from pathlib import Path

    return Path(_docker_config_file())


def _containers_auth_files() -> list[str]:
    explicit = os.environ.get("REGISTRY_AUTH_FILE")
    if explicit:
        return [explicit]
    paths = []
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        paths.append(os.path.join(runtime, "containers", "auth.json"))
    config_home = os.environ.get("XDG_CONFIG_HOME")
    base = config_home if config_home else os.path.join(os.path.expanduser("~"), ".config")
    paths.append(os.path.join(base, "containers", "auth.json"))
    return paths


def containers_auth_paths() -> list[Path]:
    """podman's ``auth.json`` candidates, in the order containers/image reads them."""
    from pathlib import Path

    return [Path(path) for path in _containers_auth_files()]


def _read_text(path: str | Path) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _parse_config_text(text: str, origin: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        data = jsonscan.loads(text)
    except ValueError as exc:
        # JSONDecodeError's message names a position, never the content; build our
        # own anyway so no fragment of a secret can slip through.
        import json  # loaded by jsonscan already when the text is not JSON

        where = ""
        if isinstance(exc, json.JSONDecodeError):
            where = f" at line {exc.lineno} column {exc.colno}"
        raise CredentialError(
            f"{origin} is not valid JSON{where}",
            hint='fix or remove it; it should hold an object like {"auths": {...}}',
        ) from None
    if not isinstance(data, dict):
        raise CredentialError(
            f"{origin} does not hold a JSON object", hint='expected {"auths": {...}}'
        )
    return data


def load_docker_config(path: Path | str | None = None) -> dict[str, Any]:
    """The parsed docker config (``{}`` when the file does not exist)."""
    path = _docker_config_file() if path is None else path
    try:
        text = _read_text(path)
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8"
        raise CredentialError(
            f"cannot read docker config {path}: {reason}",
            hint="fix its permissions or set DOCKER_CONFIG to another directory",
        ) from None
    return _parse_config_text(text, f"docker config {path}")


def _refuse_untrusted(path: Path) -> None:
    """Credentials are never written where another user could read or swap them: the
    directory (and a link or file already there) must be ours and writable by nobody
    else (the checks of :mod:`portside.private`)."""
    from portside import private

    problem = private.directory_problem(str(path.parent))
    if problem is None and os.path.lexists(path):
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            fd = None  # a link: ours or not is asked below
        if fd is not None:
            try:
                problem = private.file_problem(fd)
                problem = f"{path} is {problem}" if problem else None
            finally:
                os.close(fd)
        elif hasattr(os, "geteuid") and os.lstat(path).st_uid != os.geteuid():
            problem = f"{path} is a symbolic link owned by another user"
    if problem is not None:
        raise CredentialError(
            f"not writing credentials: {problem}",
            hint="use a docker config directory only you can write (set DOCKER_CONFIG)",
        )


def save_docker_config(config: Mapping[str, Any], path: Path | None = None) -> Path:
    """Write ``config`` to the docker config atomically, readable by the owner only.

    The file is written next to the target with mode 0600, flushed to disk and
    renamed over it, so a reader sees the old or the new file, never half of one.
    A symlinked config is written through the link. Returns the path written.
    """
    import json
    import tempfile
    from pathlib import Path

    path = docker_config_path() if path is None else path
    _refuse_untrusted(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
        _refuse_untrusted(path)
    data = json.dumps(config, indent="\t") + "\n"
    tmp: str | None = None
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".config.json.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            if hasattr(os, "fchmod"):
                os.fchmod(handle.fileno(), 0o600)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        tmp = None
        with contextlib.suppress(OSError):
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except OSError as exc:
        raise CredentialError(
            f"cannot write docker config {path}: {exc.strerror or type(exc).__name__}",
            hint="check the directory's permissions or set DOCKER_CONFIG",
        ) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return path


def config_key_host(key: str, *, allow_paths: bool = True) -> str | None:
    """The registry host a config key names, or None if it names something narrower.

    ``https://index.docker.io/v1/`` -> ``docker.io``, ``http://host:5000`` ->
    ``host:5000``, ``GHCR.io`` -> ``ghcr.io``. With ``allow_paths`` (docker's rule)
    any path after the host is ignored; without it (podman's rule, where
    ``quay.io/org`` is a per-namespace entry) only ``/v1/`` and ``/v2/`` are.
    """
    text = key.strip()
    lowered = text.lower()
    for scheme in ("https://", "http://"):
        if lowered.startswith(scheme):
            text = text[len(scheme) :]
            break
    host, _, path = text.partition("/")
    if not allow_paths and path.strip("/") not in ("", "v1", "v2"):
        return None
    if not host:
        return None
    return canonical_registry(host)


def _config_key(host: str) -> str:
    """The key docker writes for ``host``."""
    return DOCKER_HUB_LEGACY_KEY if host == DOCKER_HUB else host


def _find_entry(
    mapping: Mapping[str, Any], host: str, *, allow_paths: bool
) -> tuple[str, Any] | None:
    preferred = _config_key(host)
    if preferred in mapping:
        return preferred, mapping[preferred]
    for key, value in mapping.items():
        if isinstance(key, str) and config_key_host(key, allow_paths=allow_paths) == host:
            return key, value
    return None


def _section(config: Mapping[str, Any], name: str, origin: str) -> Mapping[str, Any]:
    value = config.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CredentialError(f"{origin}: {name!r} is not a JSON object", hint="fix or remove it")
    return value


def _decode_auth_entry(entry: Any, key: str, origin: str) -> Credential | None:
    where = f"{origin}, auths entry {key!r}"
    if not isinstance(entry, dict):
        raise CredentialError(f"{where} is not a JSON object", hint="fix or remove it")
    fields: dict[str, str | None] = {}
    for name in ("auth", "username", "password", "identitytoken", "registrytoken"):
        value = entry.get(name)
        if value is not None and not isinstance(value, str):
            raise CredentialError(f"{where}: {name!r} is not a string", hint="fix or remove it")
        fields[name] = value or None
    username, password = fields["username"], fields["password"]
    if fields["auth"]:
        raw = fields["auth"].strip()
        try:
            decoded = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise CredentialError(
                f"{where}: 'auth' is not base64 of user:password",
                hint="log in again or fix the entry",
            ) from None
        user, sep, secret = decoded.partition(":")
        if not sep:
            raise CredentialError(
                f"{where}: 'auth' does not decode to user:password",
                hint="log in again or fix the entry",
            )
        username, password = user or None, secret or None
    credential = Credential(
        username=username,
        password=password,
        identity_token=fields["identitytoken"],
        registry_token=fields["registrytoken"],
        source=f"{origin} (auths)",
    )
    if not credential.secrets:
        # An empty entry ({}) is what docker leaves when a credential store holds
        # the secret; a user name alone cannot authenticate.
        return None
    return credential


def credentials_from_config(
    config: Mapping[str, Any],
    registry: str,
    *,
    origin: str,
    allow_paths: bool = True,
    timeout: float | None = None,
) -> Credential | None:
    """Credentials for ``registry`` from a docker-style config mapping.

    ``credHelpers[host]`` (its answer is final), else ``credsStore``, else
    ``auths[host]``. ``origin`` describes the config in messages.
    """
    host = canonical_registry(registry)
    helpers = _section(config, "credHelpers", origin)
    found = _find_entry(helpers, host, allow_paths=allow_paths)
    if found is not None:
        key, helper = found
        if not isinstance(helper, str) or not helper:
            raise CredentialError(
                f"{origin}: credHelpers entry {key!r} is not a helper name",
                hint='expected e.g. {"credHelpers": {"ghcr.io": "pass"}}',
            )
        return helper_get(helper, host, origin=f"{origin} credHelpers", timeout=timeout)

    store = config.get("credsStore")
    if store is not None and not isinstance(store, str):
        raise CredentialError(f"{origin}: 'credsStore' is not a helper name", hint="fix it")
    if store:
        credential = helper_get(store, host, origin=f"{origin} credsStore", timeout=timeout)
        if credential is not None:
            return credential

    auths = _section(config, "auths", origin)
    found = _find_entry(auths, host, allow_paths=allow_paths)
    if found is None:
        return None
    return _decode_auth_entry(found[1], found[0], origin)


# --- credential helpers ------------------------------------------------------


def helper_server_url(registry: str) -> str:
    """What a helper is given for ``registry``: docker's Hub key, else the bare host."""
    return _config_key(canonical_registry(registry))


def _helper_timeout(timeout: float | None) -> float:
    if timeout is not None:
        return timeout
    text = os.environ.get(HELPER_TIMEOUT_ENV)
    if text:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if value > 0:
            return value
        _log().warning("ignoring %s=%r: not a positive number of seconds", HELPER_TIMEOUT_ENV, text)
    return DEFAULT_HELPER_TIMEOUT


def _helper_program(helper: str, host: str, origin: str | None) -> tuple[str, str]:
    if not _HELPER_NAME.fullmatch(helper):
        raise CredentialError(
            f"invalid credential helper name {helper[:80]!r} for {host}"
            + (f" in {origin}" if origin else ""),
            hint="a helper name is letters, digits, '.', '_' and '-' (docker-credential-<name>)",
        )
    import shutil

    program = f"docker-credential-{helper}"
    path = shutil.which(program)
    if path is None:
        raise CredentialError(
            f"credential helper {program} is not on PATH (needed for {host}"
            + (f", configured in {origin})" if origin else ")"),
            hint=f"install {program}, or remove it from the configuration to go anonymous",
        )
    return program, path


def _kill(process: subprocess.Popen[bytes]) -> None:
    import signal
    import subprocess

    with contextlib.suppress(OSError):
        if os.name == "posix":
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def _run_helper(
    helper: str,
    action: str,
    stdin: bytes,
    host: str,
    *,
    origin: str | None,
    timeout: float | None,
) -> tuple[str, int, bytes, bytes]:
    import subprocess

    program, path = _helper_program(helper, host, origin)
    seconds = _helper_timeout(timeout)
    try:
        # Its own session, so a hung helper is killed with all its children.
        process = subprocess.Popen(
            [path, action],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=os.name == "posix",
        )
    except OSError as exc:
        raise CredentialError(
            f"credential helper {program} could not be started for {host}: "
            f"{exc.strerror or type(exc).__name__}",
            hint=f"check that {path} is an executable docker credential helper",
        ) from None
    try:
        out, err = process.communicate(stdin, timeout=seconds)
    except subprocess.TimeoutExpired:
        _kill(process)
        raise CredentialError(
            f"credential helper {program} did not answer within {seconds:g} s "
            f"({action} for {host})",
            hint=(
                "it may be waiting for a password prompt or a locked keyring; unlock it, "
                f"or raise {HELPER_TIMEOUT_ENV}"
            ),
        ) from None
    finally:
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
    return program, process.returncode, out, err


def _describe_exit(code: int) -> str:
    import signal

    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _not_found(out: bytes, err: bytes) -> bool:
    return _NOT_FOUND in out.decode("utf-8", "replace").lower() or (
        _NOT_FOUND in err.decode("utf-8", "replace").lower()
    )


def helper_get(
    helper: str,
    registry: str,
    *,
    origin: str | None = None,
    timeout: float | None = None,
) -> Credential | None:
    """Ask ``docker-credential-<helper> get`` for ``registry``'s credentials.

    ``None`` when the helper has none ("credentials not found"). A helper that is
    missing, cannot start, fails, hangs past ``timeout`` or answers with something
    other than the protocol's JSON raises ``CredentialError``; the message names the
    helper and the host, never the helper's output.
    """
    host = canonical_registry(registry)
    server_url = helper_server_url(host)
    program, code, out, err = _run_helper(
        helper, "get", server_url.encode(), host, origin=origin, timeout=timeout
    )
    if code != 0:
        if _not_found(out, err):
            return None
        raise CredentialError(
            f"credential helper {program} failed for {host} ({_describe_exit(code)})",
            hint=f"run `echo {server_url} | {program} get` to see its error",
        )
    try:
        data = jsonscan.loads(out)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        if _not_found(out, err):
            return None
        raise CredentialError(
            f"credential helper {program} answered with something other than "
            f"credentials JSON for {host}",
            hint=f"check that {program} is a docker credential helper and works on its own",
        )
    username, secret = data.get("Username"), data.get("Secret")
    if not isinstance(username, (str, type(None))) or not isinstance(secret, (str, type(None))):
        raise CredentialError(
            f"credential helper {program} answered with malformed credentials for {host}",
            hint="expected {ServerURL, Username, Secret} strings",
        )
    if not secret:
        return None
    source = f"credential helper {program}" + (f" ({origin})" if origin else "")
    if username == TOKEN_USERNAME:
        return Credential(identity_token=secret, source=source)
    return Credential(username=username or None, password=secret, source=source)


def helper_store(
    helper: str,
    registry: str,
    username: str,
    secret: str,
    *,
    timeout: float | None = None,
) -> None:
    """``docker-credential-<helper> store``: keep ``username``/``secret`` for ``registry``."""
    import json

    host = canonical_registry(registry)
    payload = json.dumps(
        {"ServerURL": helper_server_url(host), "Username": username, "Secret": secret}
    ).encode()
    program, code, _out, _err = _run_helper(
        helper, "store", payload, host, origin=None, timeout=timeout
    )
    if code != 0:
        raise CredentialError(
            f"credential helper {program} could not store credentials for {host} "
            f"({_describe_exit(code)})",
            hint=f"check that {program} works on its own (its keyring unlocked)",
        )


def helper_erase(helper: str, registry: str, *, timeout: float | None = None) -> None:
    """``docker-credential-<helper> erase`` for ``registry``; nothing stored is fine."""
    host = canonical_registry(registry)
    program, code, out, err = _run_helper(
        helper, "erase", helper_server_url(host).encode(), host, origin=None, timeout=timeout
    )
    if code != 0 and not _not_found(out, err):
        raise CredentialError(
            f"credential helper {program} could not erase credentials for {host} "
            f"({_describe_exit(code)})",
            hint=f"check that {program} works on its own (its keyring unlocked)",
        )


def _configured_helper(config: Mapping[str, Any], host: str, origin: str) -> str | None:
    found = _find_entry(_section(config, "credHelpers", origin), host, allow_paths=True)
    if found is not None and isinstance(found[1], str) and found[1]:
        return found[1]
    store = config.get("credsStore")
    return store if isinstance(store, str) and store else None


def store_credentials(
    registry: str,
    username: str,
    secret: str,
    *,
    config_path: Path | None = None,
    timeout: float | None = None,
) -> str:
    """Save credentials for ``registry`` the way ``docker login`` does; returns where.

    Into the configured helper (``credHelpers[host]`` or ``credsStore``) when there
    is one, leaving an empty ``auths`` entry as docker does; otherwise base64 into
    ``auths`` of the config file, written atomically with mode 0600. A ``username``
    of ``<token>`` stores ``secret`` as an identity token.
    """
    host = canonical_registry(registry)
    path = docker_config_path() if config_path is None else config_path
    origin = f"docker config {path}"
    config = load_docker_config(path)
    auths = dict(_section(config, "auths", origin))
    for key in [k for k in auths if config_key_host(k) == host]:
        del auths[key]
    helper = _configured_helper(config, host, origin)
    if helper is not None:
        helper_store(helper, host, username, secret, timeout=timeout)
        auths[_config_key(host)] = {}
        where = f"credential helper docker-credential-{helper}"
    else:
        if username == TOKEN_USERNAME:
            entry = {"identitytoken": secret}
        else:
            entry = {"auth": base64.b64encode(f"{username}:{secret}".encode()).decode("ascii")}
        auths[_config_key(host)] = entry
        where = origin
    config["auths"] = auths
    save_docker_config(config, path)
    return where


def erase_credentials(
    registry: str, *, config_path: Path | None = None, timeout: float | None = None
) -> bool:
    """Remove ``registry``'s credentials from the helper and the config; True if any were."""
    host = canonical_registry(registry)
    path = docker_config_path() if config_path is None else config_path
    origin = f"docker config {path}"
    config = load_docker_config(path)
    helper = _configured_helper(config, host, origin)
    if helper is not None:
        helper_erase(helper, host, timeout=timeout)
    auths = dict(_section(config, "auths", origin))
    keys = [k for k in auths if config_key_host(k) == host]
    for key in keys:
        del auths[key]
    if keys:
        config["auths"] = auths
        save_docker_config(config, path)
    return bool(keys) or helper is not None


# --- the built-in sources ----------------------------------------------------


@hookimpl(specname="portside_credentials", tryfirst=True)
def env_credentials(registry: str) -> Credential | None:
    """``PORTSIDE_USERNAME``/``PORTSIDE_PASSWORD`` for ``PORTSIDE_REGISTRY``, then
    ``PORTSIDE_REGISTRY_AUTH`` and ``DOCKER_AUTH_CONFIG`` (config.json as JSON text)."""
    global _warned_unscoped_env
    host = canonical_registry(registry)
    env = os.environ
    username, password = env.get(ENV_USERNAME), env.get(ENV_PASSWORD)
    if username or password:
        target = env.get(ENV_REGISTRY, "").strip()
        if not target:
            if not _warned_unscoped_env:
                _warned_unscoped_env = True
                _log().warning(
                    "%s/%s are ignored because %s is not set: set it to the one registry "
                    "they are for, so no other registry can receive them",
                    ENV_USERNAME,
                    ENV_PASSWORD,
                    ENV_REGISTRY,
                )
        elif canonical_registry(target) == host:
            if not (username and password):
                missing = ENV_PASSWORD if username else ENV_USERNAME
                raise CredentialError(
                    f"{missing} is not set but {ENV_USERNAME}/{ENV_PASSWORD} are in use for {host}",
                    hint=f"set both, or neither and unset {ENV_REGISTRY}",
                )
            source = f"environment {ENV_USERNAME}/{ENV_PASSWORD} ({ENV_REGISTRY}={host})"
            if username == TOKEN_USERNAME:
                return Credential(identity_token=password, source=source)
            return Credential(username=username, password=password, source=source)

    for name in ENV_AUTH_CONFIGS:
        text = env.get(name)
        if not text or not text.strip():
            continue
        origin = f"environment variable {name}"
        config = _parse_config_text(text, origin)
        credential = credentials_from_config(config, host, origin=origin)
        if credential is not None:
            return credential
    return None


@hookimpl(specname="portside_credentials")
def docker_config_credentials(registry: str) -> Credential | None:
    """docker's ``config.json``: ``credHelpers``, else ``credsStore``, else ``auths``."""
    path = _docker_config_file()
    config = load_docker_config(path)
    if not config:
        return None
    return credentials_from_config(config, registry, origin=f"docker config {path}")


@hookimpl(specname="portside_credentials", trylast=True)
def containers_auth_credentials(registry: str) -> Credential | None:
    """podman / containers ``auth.json``, whole-host entries only."""
    for path in _containers_auth_files():
        try:
            text = _read_text(path)
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8"
            raise CredentialError(
                f"cannot read containers auth file {path}: {reason}",
                hint="fix its permissions or set REGISTRY_AUTH_FILE to another file",
            ) from None
        origin = f"containers auth file {path}"
        config = _parse_config_text(text, origin)
        credential = credentials_from_config(config, registry, origin=origin, allow_paths=False)
        if credential is not None:
            return credential
    return None


# --- what the client uses ----------------------------------------------------


def _plugin_that_raised(exc: BaseException, hook: Any) -> str:
    """Name the hook implementation whose frame is in ``exc``'s traceback."""
    owners: dict[object, str] = {}
    for impl in hook.get_hookimpls():
        code = getattr(impl.function, "__code__", None)
        if code is not None:
            function = getattr(impl.function, "__name__", "?")
            owners[code] = f"{impl.plugin_name} ({function})"
    tb = exc.__traceback__
    while tb is not None:
        owner = owners.get(tb.tb_frame.f_code)
        if owner is not None:
            return owner
        tb = tb.tb_next
    return "a credential plugin"


class CredentialStore:
    """Credentials per registry host, asked of the plugins once per process.

    ``get`` calls the ``portside_credentials`` hook for the canonical host and
    remembers the answer, errors included (a hung helper is not waited for twice);
    ``forget`` drops what was remembered, e.g. after ``portside login``. A plugin
    that raises something other than a ``PortsideError`` is reported as a
    ``CredentialError`` naming the plugin.
    """

    def __init__(self, pm: pluggy.PluginManager | None = None) -> None:
        self._pm = pm
        self._lock = threading.Lock()
        self._host_locks: dict[str, threading.Lock] = {}
        self._answers: dict[str, Credential | None] = {}
        self._errors: dict[str, PortsideError] = {}

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        if self._pm is None:
            from portside.plugins import get_plugin_manager

            self._pm = get_plugin_manager()
        return self._pm

    def get(self, registry: str) -> Credential | None:
        """Credentials for ``registry`` (a host, normalised here), or None for anonymous."""
        host = canonical_registry(registry)
        with self._lock:
            host_lock = self._host_locks.setdefault(host, threading.Lock())
        with host_lock:
            if host in self._answers:
                return self._answers[host]
            if host in self._errors:
                raise self._errors[host]
            try:
                credential = self._ask(host)
            except PortsideError as exc:
                self._errors[host] = exc
                raise
            self._answers[host] = credential
            # Unless something imported logging, nothing set a handler up to show a
            # debug line: skip the import (the warm path).
            if credential is not None and "logging" in sys.modules:
                _log().debug("credentials for %s: %s", host, credential)
            return credential

    async def aget(self, registry: str) -> Credential | None:
        """``get`` in a worker thread, so helpers never block the event loop."""
        import asyncio  # only async callers (the client) get here: asyncio is loaded

        return await asyncio.to_thread(self.get, registry)

    def forget(self, registry: str | None = None) -> None:
        """Drop the remembered answer for ``registry``, or for every host."""
        with self._lock:
            if registry is None:
                self._answers.clear()
                self._errors.clear()
            else:
                host = canonical_registry(registry)
                self._answers.pop(host, None)
                self._errors.pop(host, None)

    def _ask(self, host: str) -> Credential | None:
        hook = self.plugin_manager.hook.portside_credentials
        try:
            result = hook(registry=host)
        except PortsideError:
            raise
        except Exception as exc:
            plugin = _plugin_that_raised(exc, hook)
            raise CredentialError(
                f"credential plugin {plugin} failed for {host} with {type(exc).__name__}",
                hint="fix or remove the plugin (pm.set_blocked) to go on without it",
            ) from exc
        if result is not None and not isinstance(result, Credential):
            raise CredentialError(
                f"a credential plugin returned {type(result).__name__} for {host}, "
                "not a Credential",
                hint="fix or remove the plugin",
            )
        return result
