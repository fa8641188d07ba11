"""DOCKER_CONFIG directories and docker credential-helper scripts for client tests.

``DockerConfig`` writes ``config.json`` with ``auths`` (base64 ``auth``, ``identitytoken``),
``credHelpers`` and ``credsStore``; ``credential_helper`` writes an executable
``docker-credential-NAME`` that speaks the helper protocol (``get`` with the server URL
on stdin) and can also misbehave (crash, hang, garbage, not found). Every helper call is
logged so tests can assert which server URL the client asked about.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

# Where a client may find credentials (or be told where to find them), besides
# DOCKER_CONFIG and HOME: what a test unsets so that the machine's never count.
CREDENTIAL_ENV = (
    "PORTSIDE_USERNAME",
    "PORTSIDE_PASSWORD",
    "PORTSIDE_REGISTRY",
    "PORTSIDE_REGISTRY_AUTH",
    "DOCKER_AUTH_CONFIG",
    "REGISTRY_AUTH_FILE",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "PORTSIDE_CREDENTIAL_HELPER_TIMEOUT",
)

HelperBehaviour = Literal["ok", "not_found", "crash", "hang", "garbage"]
# A helper told to hang sleeps this long: far past any sane client timeout, yet bounded
# so an orphan never outlives the test session by much.
HANG_SECONDS = 120

AuthEntry = Mapping[str, str] | tuple[str, str]


def encode_auth(username: str, password: str) -> str:
    """The ``auth`` field of config.json: base64 of ``username:password``."""
    return base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def _entry(value: AuthEntry) -> dict[str, str]:
    if isinstance(value, tuple):
        return {"auth": encode_auth(*value)}
    entry = dict(value)
    if "username" in entry and "password" in entry and "auth" not in entry:
        entry["auth"] = encode_auth(entry.pop("username"), entry.pop("password"))
    return entry


def write_docker_config(
    directory: Path,
    *,
    auths: Mapping[str, AuthEntry] | None = None,
    cred_helpers: Mapping[str, str] | None = None,
    creds_store: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``directory/config.json``; returns its path.

    ``auths`` values: ``(user, password)``, ``{"username", "password"}`` (both become a
    base64 ``auth``), or a raw entry such as ``{"auth": ...}`` / ``{"identitytoken": ...}``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {"auths": {k: _entry(v) for k, v in (auths or {}).items()}}
    if cred_helpers:
        config["credHelpers"] = dict(cred_helpers)
    if creds_store:
        config["credsStore"] = creds_store
    config.update(extra or {})
    path = directory / "config.json"
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


_HELPER = r"""#!{python}
# docker credential helper written by the Portside test harness
import json, sys, time
SECRETS = json.loads({secrets!r})
BEHAVIOUR = {behaviour!r}
LOG = {log!r}
action = sys.argv[1] if len(sys.argv) > 1 else ""
data = sys.stdin.read() if action in ("get", "store", "erase") else ""
with open(LOG, "a") as log:
    log.write(json.dumps({{"action": action, "stdin": data}}) + "\n")
if BEHAVIOUR == "crash":
    sys.stderr.write("helper crashed: segmentation fault (simulated)\n")
    sys.exit(139)
if BEHAVIOUR == "hang":
    time.sleep({hang})
    sys.exit(1)
if action == "list":
    print(json.dumps({{k: v[0] for k, v in SECRETS.items()}}))
    sys.exit(0)
if action != "get":
    sys.exit(0)
if BEHAVIOUR == "garbage":
    print("this is not json")
    sys.exit(0)
server = data.strip()
if BEHAVIOUR == "not_found" or server not in SECRETS:
    print("credentials not found in native keychain")
    sys.exit(1)
user, secret = SECRETS[server]
print(json.dumps({{"ServerURL": server, "Username": user, "Secret": secret}}))
"""


@dataclass(frozen=True)
class CredentialHelper:
    """A ``docker-credential-NAME`` script on disk and the log of its calls."""

    name: str
    path: Path
    log_file: Path

    def calls(self) -> list[dict[str, str]]:
        """[{"action": "get", "stdin": "127.0.0.1:5000"}, ...] in call order."""
        if not self.log_file.exists():
            return []
        return [json.loads(line) for line in self.log_file.read_text().splitlines() if line]


def write_credential_helper(
    bin_dir: Path,
    name: str,
    secrets: Mapping[str, tuple[str, str]] | None = None,
    *,
    behaviour: HelperBehaviour = "ok",
) -> CredentialHelper:
    """Write ``bin_dir/docker-credential-NAME``; ``secrets`` maps server URL (exactly as
    the client will send it) to (username, secret). Username ``<token>`` means the secret
    is an identity token.
    """
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / f"docker-credential-{name}"
    log_file = bin_dir / f"docker-credential-{name}.calls.jsonl"
    path.write_text(
        _HELPER.format(
            python=sys.executable,
            secrets=json.dumps({k: list(v) for k, v in (secrets or {}).items()}),
            behaviour=behaviour,
            log=str(log_file),
            hang=HANG_SECONDS,
        )
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return CredentialHelper(name, path, log_file)


class DockerConfig:
    """A DOCKER_CONFIG directory for one test; ``setenv`` is monkeypatch.setenv.

    Call it (``docker_config(auths=...)``) to (re)write config.json; ``helper(...)`` puts
    a credential helper on PATH.
    """

    def __init__(self, directory: Path, setenv: Callable[[str, str], None]) -> None:
        self.directory = directory
        self.bin_dir = directory / "bin"
        self._setenv = setenv
        directory.mkdir(parents=True, exist_ok=True)
        setenv("DOCKER_CONFIG", str(directory))
        self._path_set = False

    @property
    def path(self) -> Path:
        return self.directory / "config.json"

    def __call__(
        self,
        *,
        auths: Mapping[str, AuthEntry] | None = None,
        cred_helpers: Mapping[str, str] | None = None,
        creds_store: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Path:
        return write_docker_config(
            self.directory,
            auths=auths,
            cred_helpers=cred_helpers,
            creds_store=creds_store,
            extra=extra,
        )

    def helper(
        self,
        name: str,
        secrets: Mapping[str, tuple[str, str]] | None = None,
        *,
        behaviour: HelperBehaviour = "ok",
    ) -> CredentialHelper:
        if not self._path_set:
            self._setenv("PATH", f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
            self._path_set = True
        return write_credential_helper(self.bin_dir, name, secrets, behaviour=behaviour)
