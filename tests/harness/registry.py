"""A real OCI registry (CNCF distribution's ``docker-registry serve``) on a free port.

Each ``Registry`` gets its own config, storage root and log file in a work directory.
Variants: plain HTTP, TLS, htpasswd basic auth, bearer-token auth (with a ``TokenIssuer``
this module starts), read-only, and push/pull notifications to a URL.

Processes are started in their own session and killed on ``stop()``, by the factory's
``close()`` and, as a last resort, at interpreter exit, so a failing test run never
leaves registries behind.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import httpx

from .ports import LOOPBACK, free_port
from .tls import TLSBundle
from .tokens import TokenIssuer

REGISTRY_BINARY = os.environ.get("PORTSIDE_TEST_REGISTRY_BIN", "docker-registry")
DEFAULT_USERNAME = "portside"
DEFAULT_PASSWORD = "portside-secret-pw"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0

Auth = Literal["none", "basic", "token"]

_live: set[subprocess.Popen[bytes]] = set()
_live_lock = threading.Lock()


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Terminate, then kill, the registry's process group; bounded."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=STOP_TIMEOUT)
    with _live_lock:
        _live.discard(proc)


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the registry if the test process dies.

    Covers what neither fixtures nor atexit can: pytest killed with SIGKILL, or
    pytest-timeout's ``thread`` method ending the process with ``os._exit``. Only from the
    main thread: the signal fires when the *thread* that started the child exits.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not (
        threading.main_thread()
    ):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    pr_set_pdeathsig = 1

    def set_pdeathsig() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)

    return set_pdeathsig


@atexit.register
def kill_all_registries() -> None:
    # Last resort when fixtures never got to tear down (interpreter exiting on error).
    with _live_lock:
        procs = list(_live)
    for proc in procs:
        with contextlib.suppress(Exception):
            _kill(proc)


class RegistryStartError(RuntimeError):
    """The registry did not answer /v2/ in time; the message carries its log tail."""


def htpasswd_line(username: str, password: str) -> str:
    """A bcrypt htpasswd entry (distribution only accepts bcrypt).

    Uses ``htpasswd -Bbn`` from apache2-utils; falls back to the ``bcrypt`` package.
    """
    if shutil.which("htpasswd"):
        out = subprocess.run(
            ["htpasswd", "-Bbn", username, password],
            capture_output=True,
            check=True,
            timeout=30,
        )
        return out.stdout.decode().strip()
    try:
        import bcrypt  # type: ignore[import-not-found]
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise RuntimeError("need `htpasswd` (apache2-utils) or the bcrypt package") from exc
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
    return f"{username}:{hashed}"


class Registry:
    """One ``docker-registry serve`` process.

    Attributes: ``host`` ("127.0.0.1:PORT"), ``url``, ``root`` (storage root),
    ``ca_file`` (None unless TLS), ``username`` / ``password`` (None unless auth),
    ``users``, ``token_issuer`` (token auth only), ``log_file``, ``config_file``,
    ``seeded`` (what the ``seed`` helpers put in, by repository).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        auth: Auth = "none",
        tls: TLSBundle | None = None,
        readonly: bool = False,
        notifications_url: str | None = None,
        users: Mapping[str, str] | None = None,
        token_issuer: TokenIssuer | None = None,
        storage_root: Path | None = None,
        deletable: bool = True,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        if auth not in ("none", "basic", "token"):
            raise ValueError(f"unknown auth {auth!r}")
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.auth: Auth = auth
        self.tls = tls
        self.readonly = readonly
        self.deletable = deletable
        self.notifications_url = notifications_url
        self.start_timeout = start_timeout
        self.root = storage_root or workdir / "storage"
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_file = workdir / "config.yml"
        self.log_file = workdir / "registry.log"
        self.htpasswd_file = workdir / "htpasswd"
        self.users: dict[str, str] = dict(users or {DEFAULT_USERNAME: DEFAULT_PASSWORD})
        self.username: str | None = None
        self.password: str | None = None
        if auth != "none":
            self.username, self.password = next(iter(self.users.items()))
        self.token_issuer: TokenIssuer | None = token_issuer
        self._own_issuer = False
        if auth == "token" and token_issuer is None:
            # An HTTPS registry gets an HTTPS realm: a careful client refuses a plain one.
            self.token_issuer = TokenIssuer(
                workdir / "issuer",
                users=self.users,
                ssl_context=tls.server_context() if tls else None,
            )
            self._own_issuer = True
        self.port: int | None = None
        self.seeded: dict[str, Any] = {}
        self._proc: subprocess.Popen[bytes] | None = None

    # -- addresses ---------------------------------------------------------------------
    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def host(self) -> str:
        if self.port is None:
            raise RuntimeError("registry is not running")
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def ca_file(self) -> Path | None:
        return self.tls.ca_file if self.tls else None

    @property
    def verify(self) -> Any:
        """What to pass as httpx's ``verify=`` for this registry."""
        return self.tls.client_context() if self.tls else True

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        if self.username is None or self.password is None:
            return None
        return (self.username, self.password)

    def ref(self, repo: str, tag_or_digest: str | None = None) -> str:
        """``127.0.0.1:PORT/repo[:tag|@digest]`` for this registry."""
        if tag_or_digest is None:
            return f"{self.host}/{repo}"
        sep = "@" if ":" in tag_or_digest else ":"
        return f"{self.host}/{repo}{sep}{tag_or_digest}"

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no registry log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- config ------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        http: dict[str, Any] = {
            "addr": f"{LOOPBACK}:{self.port}",
            # Fixed so upload state survives a restart (readonly switch) mid-test.
            "secret": "portside-test-http-secret",
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        }
        if self.tls:
            http["tls"] = {
                "certificate": str(self.tls.cert_file),
                "key": str(self.tls.key_file),
            }
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.root)},
                "delete": {"enabled": self.deletable},
                # No blob-descriptor cache: seed.py writes storage behind the registry's
                # back and must be seen at once. No upload purging for the same reason.
                "maintenance": {
                    "uploadpurging": {"enabled": False},
                    "readonly": {"enabled": self.readonly},
                },
            },
            "http": http,
        }
        if self.auth == "basic":
            self.htpasswd_file.write_text(
                "".join(htpasswd_line(u, p) + "\n" for u, p in self.users.items())
            )
            config["auth"] = {
                "htpasswd": {"realm": "portside-basic", "path": str(self.htpasswd_file)}
            }
        elif self.auth == "token":
            assert self.token_issuer is not None
            config["auth"] = {
                "token": {
                    "realm": self.token_issuer.realm,
                    "service": self.token_issuer.service,
                    "issuer": self.token_issuer.issuer,
                    "rootcertbundle": str(self.token_issuer.cert_file),
                }
            }
        if self.notifications_url:
            config["notifications"] = {
                "endpoints": [
                    {
                        "name": "portside-test",
                        "url": self.notifications_url,
                        "timeout": "1s",
                        "threshold": 3,
                        "backoff": "1s",
                    }
                ]
            }
        return config

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> Registry:
        """Start and wait (bounded) until ``/v2/`` answers; retries on a port race."""
        if self.running:
            return self
        if self.token_issuer is not None:
            self.token_issuer.start()  # idempotent; a caller's issuer is started too
        last_error: RegistryStartError | None = None
        for _attempt in range(3):
            self.port = free_port()
            # JSON is YAML: no YAML library needed to write the config.
            self.config_file.write_text(json.dumps(self._config(), indent=2))
            log = self.log_file.open("ab")
            try:
                proc = subprocess.Popen(
                    [REGISTRY_BINARY, "serve", str(self.config_file)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,
                    start_new_session=True,
                    preexec_fn=_parent_death_signal(),
                )
            finally:
                log.close()
            with _live_lock:
                _live.add(proc)
            self._proc = proc
            try:
                self._wait_ready()
                return self
            except RegistryStartError as exc:
                _kill(proc)
                self._proc = None
                last_error = exc
                if "address already in use" not in self.log_tail(5):
                    break
        self.stop()
        assert last_error is not None
        raise last_error

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        assert self._proc is not None
        with httpx.Client(verify=self.verify, timeout=2.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    raise RegistryStartError(
                        f"docker-registry exited with {self._proc.returncode}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"{self.url}/v2/").status_code in (200, 401):
                        return
                time.sleep(0.05)
        raise RegistryStartError(
            f"docker-registry did not answer {self.url}/v2/ within {self.start_timeout}s:\n"
            f"{self.log_tail()}"
        )

    def stop(self) -> None:
        """Kill the registry (and the issuer it started). Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _kill(proc)
        if self.token_issuer is not None and self._own_issuer:
            self.token_issuer.stop()

    def restart(self, *, readonly: bool | None = None) -> Registry:
        """Restart on a new port, e.g. to switch to read-only after seeding."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _kill(proc)
        if readonly is not None:
            self.readonly = readonly
        self.start()
        return self

    def __enter__(self) -> Registry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self.port else "stopped"
        return f"<Registry {where} auth={self.auth} readonly={self.readonly}>"

    # -- conveniences for tests --------------------------------------------------------
    def client(self, **kwargs: Any) -> httpx.Client:
        """A plain httpx client for this registry (basic credentials if basic auth).

        For token auth use ``seed.HttpPusher`` or get a token from ``token_issuer``.
        """
        auth = self.basic_auth if self.auth == "basic" else None
        kwargs.setdefault("timeout", 10.0)
        return httpx.Client(
            base_url=self.url, verify=self.verify, auth=auth, trust_env=False, **kwargs
        )

    def repositories_on_disk(self) -> list[str]:
        """Repository names present in storage (what the catalog would list)."""
        base = self.root / "docker/registry/v2/repositories"
        if not base.is_dir():
            return []
        return sorted(
            str(p.parent.relative_to(base)) for p in base.rglob("_manifests") if p.is_dir()
        )


class RegistryFactory:
    """Makes registries in numbered work directories and stops them all on ``close()``."""

    def __init__(self, base: Path, *, tls: TLSBundle | None = None) -> None:
        self.base = base
        self.default_tls = tls
        self.created: list[Registry] = []

    def __call__(
        self,
        auth: Auth = "none",
        tls: bool | TLSBundle = False,
        readonly: bool = False,
        *,
        notifications_url: str | None = None,
        users: Mapping[str, str] | None = None,
        token_issuer: TokenIssuer | None = None,
        start: bool = True,
        name: str | None = None,
        deletable: bool = True,
    ) -> Registry:
        if tls is True:
            if self.default_tls is None:
                raise ValueError("this factory has no TLS bundle")
            bundle: TLSBundle | None = self.default_tls
        else:
            bundle = tls or None
        label = name or f"{auth}{'-tls' if bundle else ''}{'-ro' if readonly else ''}"
        workdir = self.base / f"{len(self.created):03d}-{label}"
        registry = Registry(
            workdir,
            auth=auth,
            tls=bundle,
            readonly=readonly,
            notifications_url=notifications_url,
            users=users,
            token_issuer=token_issuer,
            deletable=deletable,
        )
        self.created.append(registry)
        if start:
            registry.start()
        return registry

    def close(self) -> None:
        for registry in reversed(self.created):
            with contextlib.suppress(Exception):
                registry.stop()
        self.created.clear()
