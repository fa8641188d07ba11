"""The cache answers each caller only what that caller's credential was answered.

A private repository's tags, digests and manifests, once fetched with a credential,
are served from the cache only to a caller presenting that same credential (and
anonymous answers to anyone); a digest is served for a repository only after that
repository was seen to have it; the cache directory must be the user's alone; ``pin``
writes no digest the cache merely claims. Everything runs against real registries
(htpasswd and token auth) through the real ``portside`` command, plus the core calls
the language server makes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import seed
from harness.dockerconfig import CREDENTIAL_ENV, DockerConfig
from harness.images import build_image
from harness.registry import Registry, RegistryFactory
from harness.skopeo import Skopeo
from harness.tokens import grant_rules
from portside import errors
from portside.cache import CachedRegistry, CacheStore
from portside.reference import Reference
from portside.registry.transport import ClientOptions

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parent.parent
PRIVATE = "team/private"
WRONG = "not-the-Passw0rd"
FAST = ClientOptions(max_retries=1, backoff_base=0.01, backoff_cap=0.05, timeout=15.0)
OTHER_UID = 54321  # a user id nobody on the test machine has


class Portside:
    """``python -m portside`` with one cache directory and the test's DOCKER_CONFIG."""

    def __init__(self, tmp_path: Path) -> None:
        self.cache_dir = tmp_path / "cache"
        self.home = tmp_path / "home"
        self.home.mkdir(exist_ok=True)
        self.cwd = tmp_path

    def __call__(
        self, *args: str, cache_dir: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PORTSIDE_", "XDG_")) and k not in CREDENTIAL_ENV
        }
        env.update(
            {
                "PORTSIDE_CACHE_DIR": str(cache_dir or self.cache_dir),
                "PORTSIDE_DAEMON": "off",
                "HOME": str(self.home),
                "PYTHONPATH": str(ROOT),
            }
        )
        return subprocess.run(
            [sys.executable, "-m", "portside", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.cwd,
            timeout=120,
            check=False,
        )


@pytest.fixture
def portside(tmp_path: Path, docker_config: DockerConfig) -> Portside:
    docker_config()  # no credentials until a test logs in
    return Portside(tmp_path)


@pytest.fixture
def private(basic_registry: Registry) -> seed.PushedImage:
    """Two tags of a private image on an htpasswd registry."""
    image = build_image("trust-private", labels={"org.example.secret": "private-label"})
    return seed.push_image(basic_registry, PRIVATE, image, ["1.0", "1.1"], via="fs")


def login(docker_config: DockerConfig, reg: Registry, password: str | None) -> None:
    assert reg.username is not None
    docker_config(auths={reg.host: (reg.username, password)} if password else {})


def refused(result: subprocess.CompletedProcess[str], code: int, *secrets: str) -> None:
    """Failed with ``code``, one error line, and nothing of the private answer anywhere."""
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("portside: error: "), result.stderr
    for secret in secrets:
        assert secret not in result.stdout + result.stderr


# -- wrong and missing credentials after a warm cache ------------------------------------------


def test_private_answers_are_served_only_to_the_same_credential(
    basic_registry: Registry,
    private: seed.PushedImage,
    portside: Portside,
    docker_config: DockerConfig,
    tmp_path: Path,
) -> None:
    reg = basic_registry
    ref = reg.ref(PRIVATE, "1.0")
    digest = private.digest
    by_digest = reg.ref(PRIVATE, digest)
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"FROM {ref}\n")

    login(docker_config, reg, reg.password)
    assert portside("tags", reg.ref(PRIVATE)).stdout.split() == ["1.1", "1.0"]
    assert portside("digest", ref).stdout.strip() == digest
    assert "private-label" in portside("inspect", by_digest).stdout
    assert digest in portside("latest", ref).stdout
    query = f"{reg.ref(PRIVATE)} where tag = 1.0"
    assert digest in portside("query", query).stdout
    checked = portside("check", "--json", str(dockerfile))
    assert f"{PRIVATE}:1.1 is available" in checked.stdout  # the tag list was read
    # Warm: the right caller is answered from the cache alone, even offline.
    assert portside("--offline", "tags", reg.ref(PRIVATE)).stdout.split() == ["1.1", "1.0"]
    assert "private-label" in portside("--offline", "inspect", by_digest).stdout

    for password in (WRONG, None):
        login(docker_config, reg, password)
        refused(portside("tags", reg.ref(PRIVATE)), 4, "1.1")
        refused(portside("digest", ref), 4, digest)
        refused(portside("inspect", by_digest), 4, "private-label")
        refused(portside("latest", ref), 4, digest)
        refused(portside("query", query), 4, digest)
        refused(portside("--offline", "tags", reg.ref(PRIVATE)), 5, "1.1")
        refused(portside("--offline", "digest", ref), 5, digest)
        refused(portside("--offline", "inspect", by_digest), 5, "private-label")
        checked = portside("check", "--json", str(dockerfile))
        assert "UNAUTHORIZED" in checked.stdout  # a finding says the registry refused
        assert f"{PRIVATE}:1.1" not in checked.stdout + checked.stderr
        pinned = portside("pin", str(dockerfile))
        assert pinned.returncode != 0
        assert dockerfile.read_text() == f"FROM {ref}\n"
        assert digest not in pinned.stdout

    # The cache still answers the right caller, and nothing above stored a credential.
    login(docker_config, reg, reg.password)
    assert portside("--offline", "digest", ref).stdout.strip() == digest
    assert reg.password is not None
    for path in portside.cache_dir.rglob("*"):
        if path.is_file():
            assert reg.password.encode() not in path.read_bytes()


def test_language_server_calls_follow_the_rule(
    basic_registry: Registry,
    private: seed.PushedImage,
    docker_config: DockerConfig,
    no_machine_credentials: Path,
    tmp_path: Path,
) -> None:
    """What the language server asks of the core: stale answers at once
    (``allow_stale``) and the cache alone (``offline``), here with a wrong password."""
    import asyncio

    reg = basic_registry
    store_dir = str(tmp_path / "lsp-cache")
    repo = Reference.parse(reg.ref(PRIVATE))
    ref = Reference.parse(reg.ref(PRIVATE, "1.0"))

    async def warm() -> None:
        login(docker_config, reg, reg.password)
        async with CachedRegistry(store=CacheStore(store_dir), options=FAST) as cached:
            assert sorted(await cached.tags(repo)) == ["1.0", "1.1"]
            assert str((await cached.resolve(ref)).digest) == private.digest

    async def as_wrong_caller() -> None:
        login(docker_config, reg, WRONG)
        offline = CachedRegistry(store=CacheStore(store_dir), offline=True)
        with pytest.raises(errors.CacheMiss):
            offline.run_from_cache(offline.tags(repo))
        with pytest.raises(errors.CacheMiss):
            await offline.resolve(ref)
        clock = lambda: time.time() + 10 * 86400  # noqa: E731 - every entry long stale
        async with CachedRegistry(
            store=CacheStore(store_dir), options=FAST, allow_stale=True, clock=clock
        ) as stale:
            with pytest.raises(errors.Unauthorized):
                await stale.tags(repo)
            with pytest.raises(errors.Unauthorized):
                await stale.manifest(ref.with_digest(ref_digest))

    ref_digest = Reference.parse(f"x/y@{private.digest}").digest
    assert ref_digest is not None
    asyncio.run(warm())
    asyncio.run(as_wrong_caller())


def test_token_registry_public_and_private_repositories(
    registry_factory: RegistryFactory,
    tmp_path: Path,
    portside: Portside,
    docker_config: DockerConfig,
) -> None:
    reg = registry_factory(auth="token")
    assert reg.token_issuer is not None and reg.username is not None
    seed.push_image(reg, "public/app", build_image("trust-public"), ["2.0"])
    secret = seed.push_image(reg, PRIVATE, build_image("trust-token-private"), ["1.0"])
    reg.token_issuer.grant = grant_rules({None: {"public/*": ["pull"]}, reg.username: {"*": ["*"]}})

    # An anonymous answer of a public repository is served to anyone, and without
    # asking a credential helper: it was everybody's answer.
    assert portside("tags", reg.ref("public/app")).stdout.split() == ["2.0"]
    helper = docker_config.helper("trust", {reg.host: (reg.username, WRONG)})
    docker_config(creds_store="trust")
    assert portside("tags", reg.ref("public/app")).stdout.split() == ["2.0"]
    assert helper.calls() == []

    # The private repository, fetched with the right password, is not served to a
    # wrong one (the helper is asked: the entry was fetched with a credential).
    assert reg.password is not None
    docker_config(auths={reg.host: (reg.username, reg.password)})
    assert portside("digest", reg.ref(PRIVATE, "1.0")).stdout.strip() == secret.digest
    docker_config(creds_store="trust")
    refused(portside("digest", reg.ref(PRIVATE, "1.0")), 4, secret.digest)
    refused(portside("--offline", "digest", reg.ref(PRIVATE, "1.0")), 5, secret.digest)
    assert helper.calls(), "the caller's credential was looked up"
    docker_config()
    refused(portside("tags", reg.ref(PRIVATE)), 4, "1.0")


# -- digests belong to the repositories that have them -----------------------------------------


def test_a_private_manifest_is_not_served_for_another_repository_or_registry(
    basic_registry: Registry,
    plain_registry: Registry,
    private: seed.PushedImage,
    portside: Portside,
    docker_config: DockerConfig,
) -> None:
    login(docker_config, basic_registry, basic_registry.password)
    seed.push_image(basic_registry, "team/other", build_image("trust-other"), ["1.0"], via="fs")
    seed.push_image(plain_registry, "team/private", build_image("trust-plain"), ["1.0"], via="fs")
    warm = portside("inspect", basic_registry.ref(PRIVATE, private.digest))
    assert "private-label" in warm.stdout

    # Same digest named under another repository of the same registry (same credential),
    # under the same repository name on another registry, and offline: none has it.
    for other in (
        basic_registry.ref("team/other", private.digest),
        plain_registry.ref(PRIVATE, private.digest),
    ):
        refused(portside("inspect", other), 3, "private-label")
        refused(portside("digest", other), 3)
        refused(portside("--offline", "inspect", other), 5, "private-label")
    # The repository that has it still answers from the cache.
    offline = portside("--offline", "inspect", basic_registry.ref(PRIVATE, private.digest))
    assert "private-label" in offline.stdout


# -- the cache directory is the user's alone --------------------------------------------------


def _answers_without_the_cache(
    portside: Portside, registry: Registry, cache_dir: Path, why: str
) -> None:
    before = sorted(str(p) for p in cache_dir.rglob("*")) if cache_dir.exists() else []
    result = portside("tags", registry.ref("library/alpine"), cache_dir=cache_dir)
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == set(registry.seeded["library/alpine"].tags)
    warnings = [line for line in result.stderr.splitlines() if "not using the cache" in line]
    assert len(warnings) == 1, result.stderr
    assert why in warnings[0]
    after = sorted(str(p) for p in cache_dir.rglob("*")) if cache_dir.exists() else []
    assert after == before, "nothing written into an untrusted cache"


def test_new_cache_directory_and_key_are_private(registry: Registry, portside: Portside) -> None:
    result = portside("tags", registry.ref("library/alpine"))
    assert result.returncode == 0, result.stderr
    assert oct(portside.cache_dir.stat().st_mode & 0o777) == "0o700"
    assert oct((portside.cache_dir / "v2").stat().st_mode & 0o777) == "0o700"
    for path in (portside.cache_dir / "v2").rglob("*"):
        expected = 0o700 if path.is_dir() else 0o600
        assert path.stat().st_mode & 0o777 == expected, path


def test_world_writable_cache_directory_is_bypassed(
    registry: Registry, portside: Portside, tmp_path: Path
) -> None:
    cache = tmp_path / "open-cache"
    cache.mkdir()
    cache.chmod(0o777)
    _answers_without_the_cache(portside, registry, cache, "writable by other users")


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")


def test_cache_directory_of_another_user_is_bypassed(
    registry: Registry, portside: Portside, tmp_path: Path
) -> None:
    _need_root()
    cache = tmp_path / "their-cache"
    cache.mkdir(mode=0o700)
    os.chown(cache, OTHER_UID, OTHER_UID)
    _answers_without_the_cache(portside, registry, cache, f"uid {OTHER_UID}")


def test_pre_made_symlinks_to_the_cache_are_checked(
    registry: Registry, portside: Portside, tmp_path: Path
) -> None:
    _need_root()
    # A link another user planted (in a shared directory) to a directory of ours.
    ours = tmp_path / "ours"
    ours.mkdir(mode=0o700)
    planted = tmp_path / "planted-link"
    planted.symlink_to(ours)
    os.lchown(planted, OTHER_UID, OTHER_UID)
    _answers_without_the_cache(portside, registry, planted, "symbolic link owned by")
    # A link of ours to a directory another user owns (or can write to).
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, OTHER_UID, OTHER_UID)
    link = tmp_path / "our-link"
    link.symlink_to(theirs)
    _answers_without_the_cache(portside, registry, link, f"uid {OTHER_UID}")
    # A link of ours to a directory of ours is fine (users move caches that way).
    mine = tmp_path / "my-link"
    mine.symlink_to(ours)
    assert "warning" not in portside("tags", registry.ref("library/alpine"), cache_dir=mine).stderr
    assert list((ours / "v2").iterdir())


def test_a_file_in_the_cache_owned_by_another_user_is_not_served(
    registry: Registry, portside: Portside
) -> None:
    _need_root()
    ref = registry.ref("library/alpine")
    honest = portside("tags", ref)
    assert honest.returncode == 0
    (entry,) = (portside.cache_dir / "v2" / "tags").iterdir()
    doc = json.loads(entry.read_text())
    doc["value"] = ["9.9-planted"]
    entry.write_text(json.dumps(doc))
    os.chown(entry, OTHER_UID, OTHER_UID)
    again = portside("tags", ref)
    assert again.returncode == 0, again.stderr
    assert "9.9-planted" not in again.stdout
    assert again.stdout == honest.stdout
    assert "not using the cache" in again.stderr and f"uid {OTHER_UID}" in again.stderr


# -- pin writes only confirmed digests --------------------------------------------------------


def test_a_planted_tag_digest_entry_is_not_pinned(
    plain_registry: Registry, portside: Portside, tmp_path: Path
) -> None:
    reg = plain_registry
    real = seed.push_image(reg, "team/app", build_image("trust-pin-real"), ["1.0"], via="fs")
    other = seed.push_image(reg, "team/app", build_image("trust-pin-other"), ["old"], via="fs")
    ref = reg.ref("team/app", "1.0")
    assert portside("digest", ref).stdout.strip() == real.digest
    # Plant the other (real, but not the tag's) digest under the tag, fresh.
    (entry,) = (portside.cache_dir / "v2" / "resolve").iterdir()
    doc = json.loads(entry.read_text())
    doc["value"]["digest"] = other.digest
    doc["fetched_at"] = time.time()
    entry.write_text(json.dumps(doc))
    # The plant took: a display command answers from the cache within the TTL.
    assert portside("digest", ref).stdout.strip() == other.digest

    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"FROM {ref}\n")
    result = portside("pin", str(dockerfile))
    assert result.returncode == 0, result.stderr
    assert dockerfile.read_text() == f"FROM {ref}@{real.digest}\n"
    assert Skopeo.for_registry(reg).digest(ref) == real.digest


def test_a_symlinked_or_world_writable_file_in_the_cache_is_not_served(
    registry: Registry, portside: Portside, tmp_path: Path
) -> None:
    ref = registry.ref("library/alpine")
    honest = portside("tags", ref)
    assert honest.returncode == 0
    (entry,) = (portside.cache_dir / "v2" / "tags").iterdir()
    doc = json.loads(entry.read_text())
    doc["value"] = ["9.9-planted"]
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(doc))
    entry.unlink()
    entry.symlink_to(forged)
    linked = portside("tags", ref)
    assert linked.stdout == honest.stdout, linked.stderr
    assert "symbolic link" in linked.stderr and "not using the cache" in linked.stderr

    entry.unlink()
    entry.write_text(json.dumps(doc))
    entry.chmod(0o666)
    writable = portside("tags", ref)
    assert writable.stdout == honest.stdout, writable.stderr
    assert "writable by other users" in writable.stderr


# -- other private state: the docker config portside login writes -----------------------------


def test_credentials_are_not_written_where_others_can_write(tmp_path: Path) -> None:
    from portside.registry.credentials import save_docker_config

    config = {"auths": {"registry.example": {"auth": "dTpzZWNyZXQ="}}}
    shared = tmp_path / "shared-docker-config"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(errors.CredentialError, match="writable by other users"):
        save_docker_config(config, shared / "config.json")
    assert list(shared.iterdir()) == []

    mine = tmp_path / "docker-config"
    mine.mkdir(mode=0o700)
    planted = tmp_path / "elsewhere.json"
    planted.write_text("{}")
    planted.chmod(0o666)
    (mine / "config.json").symlink_to(planted)
    with pytest.raises(errors.CredentialError, match="writable by other users"):
        save_docker_config(config, mine / "config.json")
    assert planted.read_text() == "{}"

    (mine / "config.json").unlink()
    written = save_docker_config(config, mine / "config.json")
    assert written.stat().st_mode & 0o777 == 0o600


def test_credentials_are_not_written_into_another_users_file(tmp_path: Path) -> None:
    _need_root()
    from portside.registry.credentials import save_docker_config

    directory = tmp_path / "docker-config"
    directory.mkdir(mode=0o700)
    theirs = directory / "config.json"
    theirs.write_text("{}")
    os.chown(theirs, OTHER_UID, OTHER_UID)
    with pytest.raises(errors.CredentialError, match=f"uid {OTHER_UID}"):
        save_docker_config({"auths": {}}, theirs)
    assert theirs.read_text() == "{}"
