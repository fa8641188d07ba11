"""Credential sources: docker config, helpers, environment, podman auth.json, plugins.

Everything here is real: config files in temporary directories, credential helpers
as small shell scripts on a PATH the test controls, the real plugin manager.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from portside.errors import CredentialError, PortsideError
from portside.plugins import create_plugin_manager, hookimpl
from portside.registry import credentials as creds
from portside.registry.credentials import (
    Credential,
    CredentialStore,
    containers_auth_credentials,
    credentials_from_config,
    docker_config_credentials,
    env_credentials,
    erase_credentials,
    helper_erase,
    helper_get,
    helper_store,
    load_docker_config,
    save_docker_config,
    store_credentials,
)

PASSWORD = "pa55-Word!with:colon"
HELPER_SECRET = "helper-s3cret-value"
REFRESH = "refresh-t0ken-value"
REG_TOKEN = "registry-bearer-t0ken"
ENV_PASSWORD = "env-pa55word-value"
ALL_SECRETS = (PASSWORD, HELPER_SECRET, REFRESH, REG_TOKEN, ENV_PASSWORD)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def assert_no_secret(*things: object) -> None:
    for thing in things:
        rendered = f"{thing!s} {thing!r}"
        if isinstance(thing, BaseException):
            rendered += " ".join(str(a) for a in thing.args)
        for secret in (*ALL_SECRETS, b64(f"alice:{PASSWORD}")):
            assert secret not in rendered, f"secret leaked in {rendered!r}"


class Env:
    """The test's world: HOME, DOCKER_CONFIG, a PATH of helper scripts, a call log."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
        """``home``: HOME, fresh, with no credential variables set (no_machine_credentials)."""
        self.tmp = tmp_path
        self.home = home
        self.docker_dir = tmp_path / "docker"
        self.bin = tmp_path / "bin"
        self.log = tmp_path / "calls"
        for directory in (self.bin, self.log):
            directory.mkdir()
        self.monkeypatch = monkeypatch
        monkeypatch.setenv("DOCKER_CONFIG", str(self.docker_dir))
        monkeypatch.setenv("PATH", f"{self.bin}:/usr/bin:/bin")
        monkeypatch.setattr(creds, "_warned_unscoped_env", False)

    @property
    def config_path(self) -> Path:
        return self.docker_dir / "config.json"

    def docker_config(self, config: dict[str, object]) -> Path:
        self.docker_dir.mkdir(exist_ok=True)
        self.config_path.write_text(json.dumps(config))
        return self.config_path

    def helper(self, name: str, body: str) -> Path:
        """A docker-credential-<name> script; it logs each call's action and stdin."""
        path = self.bin / f"docker-credential-{name}"
        log = self.log / name
        path.write_text(
            f'#!/bin/sh\ninput=$(cat)\nprintf "%s %s\\n" "$1" "$input" >> "{log}"\n{body}\n'
        )
        path.chmod(0o755)
        return path

    def answering_helper(self, name: str, username: str = "helperuser") -> Path:
        answer = json.dumps(
            {"ServerURL": "x", "Username": username, "Secret": HELPER_SECRET}
        ).replace("'", "'\\''")
        return self.helper(name, f"case \"$1\" in get) printf '%s' '{answer}';; esac\nexit 0")

    def calls(self, name: str) -> list[str]:
        path = self.log / name
        return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_machine_credentials: Path) -> Env:
    return Env(tmp_path, monkeypatch, home=no_machine_credentials)


@pytest.fixture
def store() -> CredentialStore:
    return CredentialStore(create_plugin_manager(load_entrypoints=False))


# --- the Credential value ----------------------------------------------------


def test_credential_repr_and_str_hide_secrets() -> None:
    credential = Credential(
        username="alice",
        password=PASSWORD,
        identity_token=REFRESH,
        registry_token=REG_TOKEN,
        source="test",
    )
    assert "alice" in repr(credential)
    assert "password=<set>" in repr(credential)
    assert str(credential) == "registry token for user 'alice' from test"
    assert_no_secret(credential, [credential], {"c": credential})
    assert f"{credential}" == str(credential)
    assert credential.secrets == (PASSWORD, REFRESH, REG_TOKEN)
    assert Credential(username="u", password="p").kind == "password"
    assert Credential(identity_token="t").kind == "identity token"


def test_credential_is_frozen() -> None:
    credential = Credential(username="a", password="b")
    with pytest.raises(AttributeError):
        credential.password = "c"  # type: ignore[misc]


# --- docker config: auths ----------------------------------------------------


def test_no_config_means_anonymous(env: Env, store: CredentialStore) -> None:
    assert store.get("ghcr.io") is None


def test_auths_base64(env: Env, store: CredentialStore) -> None:
    path = env.docker_config({"auths": {"ghcr.io": {"auth": b64(f"alice:{PASSWORD}")}}})
    credential = store.get("ghcr.io")
    assert credential is not None
    assert (credential.username, credential.password) == ("alice", PASSWORD)
    assert credential.source == f"docker config {path} (auths)"
    assert_no_secret(credential)


def test_auths_separate_fields_and_identity_token(env: Env, store: CredentialStore) -> None:
    env.docker_config(
        {
            "auths": {
                "a.example": {"username": "bob", "password": PASSWORD},
                "b.example": {"auth": b64("bob:"), "identitytoken": REFRESH},
                "c.example": {"registrytoken": REG_TOKEN},
                "d.example": {},
                "e.example": {"username": "only"},
            }
        }
    )
    a = store.get("a.example")
    assert a is not None
    assert (a.username, a.password) == ("bob", PASSWORD)
    b = store.get("b.example")
    assert b is not None
    assert b.identity_token == REFRESH
    assert b.username == "bob"
    assert b.password is None
    c = store.get("c.example")
    assert c is not None
    assert c.registry_token == REG_TOKEN
    assert store.get("d.example") is None
    assert store.get("e.example") is None


@pytest.mark.parametrize(
    ("key", "asked", "found"),
    [
        ("https://index.docker.io/v1/", "docker.io", True),
        ("index.docker.io", "docker.io", True),
        ("docker.io", "docker.io", True),
        ("registry-1.docker.io", "docker.io", True),
        ("https://index.docker.io/v1/", "index.docker.io", True),
        ("https://ghcr.io", "ghcr.io", True),
        ("https://GHCR.io/v1/", "ghcr.io", True),
        ("http://localhost:5000", "localhost:5000", True),
        ("localhost:5000", "localhost:5000", True),
        # exact host only: never another host, never another port
        ("localhost:5000", "localhost", False),
        ("localhost:5000", "localhost:5001", False),
        ("localhost", "localhost:5000", False),
        ("ghcr.io", "ghcr.io:443", False),
        ("registry.a.example", "evil.registry.a.example", False),
        ("registry.a.example", "registry.a.example.evil.com", False),
        ("registry.a.example", "registry.a.exampl", False),
        ("docker.io", "ghcr.io", False),
        ("https://index.docker.io/v1/", "quay.io", False),
    ],
)
def test_exact_host_matching(
    env: Env, store: CredentialStore, key: str, asked: str, found: bool
) -> None:
    env.docker_config({"auths": {key: {"auth": b64(f"alice:{PASSWORD}")}}})
    credential = store.get(asked)
    assert (credential is not None) is found


def test_preferred_key_wins_over_legacy_spelling(env: Env, store: CredentialStore) -> None:
    env.docker_config(
        {
            "auths": {
                "https://ghcr.io/v1/": {"auth": b64("legacy:x")},
                "ghcr.io": {"auth": b64(f"alice:{PASSWORD}")},
            }
        }
    )
    credential = store.get("ghcr.io")
    assert credential is not None
    assert credential.username == "alice"


def test_hostile_registry_never_gets_other_credentials(env: Env, store: CredentialStore) -> None:
    env.answering_helper("trusted")
    env.docker_config(
        {
            "auths": {"registry.a.example:5000": {"auth": b64(f"alice:{PASSWORD}")}},
            "credHelpers": {"registry.a.example": "trusted"},
        }
    )
    for host in ("evil.example", "registry.a.example:5001", "registry.a.example.evil.com"):
        assert store.get(host) is None
    assert env.calls("trusted") == []


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ("{not json", "is not valid JSON at line 1 column 2"),
        ("[1, 2]", "does not hold a JSON object"),
        ('{"auths": []}', "'auths' is not a JSON object"),
        ('{"auths": {"ghcr.io": "x"}}', "is not a JSON object"),
        ('{"auths": {"ghcr.io": {"auth": 5}}}', "'auth' is not a string"),
        ('{"auths": {"ghcr.io": {"auth": "!!!notbase64"}}}', "'auth' is not base64"),
        ('{"auths": {"ghcr.io": {"auth": "' + b64("nocolon") + '"}}}', "does not decode"),
        ('{"credsStore": 5}', "'credsStore' is not a helper name"),
        ('{"credHelpers": {"ghcr.io": ""}}', "is not a helper name"),
    ],
)
def test_broken_config_is_a_clear_error(
    env: Env, store: CredentialStore, config: str, fragment: str
) -> None:
    env.docker_dir.mkdir()
    env.config_path.write_text(config)
    with pytest.raises(CredentialError) as info:
        store.get("ghcr.io")
    assert fragment in str(info.value)
    assert str(env.config_path) in str(info.value)


def test_broken_auth_value_not_in_message(env: Env, store: CredentialStore) -> None:
    secretish = PASSWORD + "%%%"
    env.docker_config({"auths": {"ghcr.io": {"auth": secretish}}})
    with pytest.raises(CredentialError) as info:
        store.get("ghcr.io")
    assert secretish not in str(info.value)
    assert_no_secret(info.value)


def test_invalid_json_message_has_no_content(env: Env, store: CredentialStore) -> None:
    env.docker_dir.mkdir()
    env.config_path.write_text('{"auths": {"ghcr.io": {"password": "' + PASSWORD + '" oops')
    with pytest.raises(CredentialError) as info:
        store.get("ghcr.io")
    assert_no_secret(info.value)
    assert info.value.__cause__ is None


def test_empty_config_file_is_fine(env: Env, store: CredentialStore) -> None:
    env.docker_dir.mkdir()
    env.config_path.write_text("  \n")
    assert store.get("ghcr.io") is None


def test_home_docker_config_when_no_docker_config_env(
    env: Env, monkeypatch: pytest.MonkeyPatch, store: CredentialStore
) -> None:
    monkeypatch.delenv("DOCKER_CONFIG")
    (env.home / ".docker").mkdir()
    (env.home / ".docker" / "config.json").write_text(
        json.dumps({"auths": {"ghcr.io": {"auth": b64(f"alice:{PASSWORD}")}}})
    )
    credential = store.get("ghcr.io")
    assert credential is not None
    assert str(env.home / ".docker" / "config.json") in credential.source


# --- credential helpers ------------------------------------------------------


def test_cred_helper_for_host(env: Env, store: CredentialStore) -> None:
    env.answering_helper("pass")
    path = env.docker_config(
        {
            "credHelpers": {"ghcr.io": "pass"},
            "auths": {"ghcr.io": {"auth": b64(f"alice:{PASSWORD}")}},
        }
    )
    credential = store.get("ghcr.io")
    assert credential is not None
    assert (credential.username, credential.password) == ("helperuser", HELPER_SECRET)
    assert credential.source == (
        f"credential helper docker-credential-pass (docker config {path} credHelpers)"
    )
    assert env.calls("pass") == ["get ghcr.io"]
    assert_no_secret(credential)


def test_docker_hub_server_url_sent_to_helper(env: Env, store: CredentialStore) -> None:
    env.answering_helper("desktop")
    env.docker_config({"credsStore": "desktop"})
    assert store.get("index.docker.io") is not None
    assert store.get("localhost:5000") is not None
    assert env.calls("desktop") == ["get https://index.docker.io/v1/", "get localhost:5000"]


def test_cred_helpers_key_spellings(env: Env, store: CredentialStore) -> None:
    env.answering_helper("hub")
    env.docker_config({"credHelpers": {"https://index.docker.io/v1/": "hub"}})
    assert store.get("docker.io") is not None
    assert store.get("ghcr.io") is None
    assert env.calls("hub") == ["get https://index.docker.io/v1/"]


def test_helper_over_store_over_auths(env: Env, store: CredentialStore) -> None:
    env.answering_helper("specific", username="from-helper")
    env.answering_helper("general", username="from-store")
    env.docker_config(
        {
            "credHelpers": {"a.example": "specific"},
            "credsStore": "general",
            "auths": {
                "a.example": {"auth": b64("from-auths:x")},
                "b.example": {"auth": b64("from-auths:x")},
            },
        }
    )
    a = store.get("a.example")
    b = store.get("b.example")
    assert a is not None
    assert a.username == "from-helper"
    assert b is not None
    assert b.username == "from-store"
    assert env.calls("general") == ["get b.example"]


def test_store_without_entry_falls_back_to_auths(env: Env, store: CredentialStore) -> None:
    env.helper("empty", 'echo "credentials not found in native keychain"; exit 1')
    env.docker_config(
        {"credsStore": "empty", "auths": {"a.example": {"auth": b64(f"alice:{PASSWORD}")}}}
    )
    credential = store.get("a.example")
    assert credential is not None
    assert credential.username == "alice"
    assert store.get("b.example") is None


def test_helper_not_found_means_anonymous(env: Env, store: CredentialStore) -> None:
    env.helper("pass", 'echo "credentials not found in native keychain"; exit 1')
    env.docker_config({"credHelpers": {"ghcr.io": "pass"}})
    assert store.get("ghcr.io") is None


def test_helper_token_username_is_identity_token(env: Env, store: CredentialStore) -> None:
    env.answering_helper("ecr", username="<token>")
    env.docker_config({"credHelpers": {"ghcr.io": "ecr"}})
    credential = store.get("ghcr.io")
    assert credential is not None
    assert credential.identity_token == HELPER_SECRET
    assert credential.username is None
    assert credential.password is None
    assert_no_secret(credential)


def test_helper_empty_secret_is_anonymous(env: Env) -> None:
    env.helper("blank", """printf '{"ServerURL":"x","Username":"","Secret":""}'""")
    assert helper_get("blank", "ghcr.io") is None


def test_helper_missing_from_path(env: Env, store: CredentialStore) -> None:
    path = env.docker_config({"credHelpers": {"ghcr.io": "portside-test-missing"}})
    with pytest.raises(CredentialError) as info:
        store.get("ghcr.io")
    message = str(info.value)
    assert "docker-credential-portside-test-missing is not on PATH" in message
    assert "ghcr.io" in message
    assert str(path) in message
    assert "install" in message


def test_helper_crash(env: Env, store: CredentialStore) -> None:
    env.helper("crash", f'echo "stdout {HELPER_SECRET}"; echo "stderr {PASSWORD}" >&2; exit 3')
    env.docker_config({"credHelpers": {"ghcr.io": "crash"}})
    with pytest.raises(CredentialError) as info:
        store.get("ghcr.io")
    message = str(info.value)
    assert "docker-credential-crash failed for ghcr.io (exit status 3)" in message
    assert "get" in message  # says how to see the helper's own error
    assert_no_secret(info.value)


def test_helper_killed_by_signal(env: Env) -> None:
    env.helper("suicide", "kill -9 $$")
    with pytest.raises(CredentialError, match="killed by SIGKILL"):
        helper_get("suicide", "ghcr.io")


def test_helper_non_json(env: Env, store: CredentialStore) -> None:
    env.helper("chatty", f'echo "here is your secret: {HELPER_SECRET}"; exit 0')
    env.docker_config({"credHelpers": {"ghcr.io": "chatty"}})
    with pytest.raises(CredentialError) as info:
        store.get("ghcr.io")
    assert "something other than credentials JSON for ghcr.io" in str(info.value)
    assert_no_secret(info.value)


def test_helper_malformed_json(env: Env) -> None:
    env.helper("odd", """printf '{"Username": 5, "Secret": ["x"]}'""")
    with pytest.raises(CredentialError, match="malformed credentials"):
        helper_get("odd", "ghcr.io")


def test_helper_not_executable(env: Env) -> None:
    path = env.bin / "docker-credential-noexec"
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o644)
    # shutil.which skips non-executables, so this reads as missing
    with pytest.raises(CredentialError, match="not on PATH"):
        helper_get("noexec", "ghcr.io")


def test_helper_bad_interpreter(env: Env) -> None:
    path = env.bin / "docker-credential-badexec"
    path.write_text("#!/nonexistent/interpreter\n")
    path.chmod(0o755)
    with pytest.raises(CredentialError, match=r"could not be started for ghcr\.io"):
        helper_get("badexec", "ghcr.io")


@pytest.mark.parametrize("name", ["../../bin/sh", "a/b", "", "-x", "a b"])
def test_helper_name_is_validated(env: Env, name: str) -> None:
    with pytest.raises(CredentialError, match="invalid credential helper name"):
        helper_get(name, "ghcr.io")


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def test_helper_hang_times_out_and_is_killed(env: Env, store: CredentialStore) -> None:
    pidfile = env.tmp / "child.pid"
    env.helper("hang", f'sleep 60 & echo $! > "{pidfile}"; wait')
    env.docker_config({"credHelpers": {"ghcr.io": "hang"}})
    env.monkeypatch.setenv("PORTSIDE_CREDENTIAL_HELPER_TIMEOUT", "0.5")
    started = time.monotonic()
    with pytest.raises(CredentialError) as info:
        store.get("ghcr.io")
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert "docker-credential-hang did not answer within 0.5 s" in message
    assert "ghcr.io" in message
    # the helper's children die with it
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(pid)


def test_helper_timeout_argument(env: Env) -> None:
    env.helper("slow", "sleep 60")
    started = time.monotonic()
    with pytest.raises(CredentialError, match=r"within 0\.3 s"):
        helper_get("slow", "ghcr.io", timeout=0.3)
    assert time.monotonic() - started < 5


def test_bad_timeout_env_falls_back(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    env.answering_helper("ok")
    env.monkeypatch.setenv("PORTSIDE_CREDENTIAL_HELPER_TIMEOUT", "soon")
    with caplog.at_level(logging.WARNING):
        assert helper_get("ok", "ghcr.io") is not None
    assert "PORTSIDE_CREDENTIAL_HELPER_TIMEOUT" in caplog.text


def test_helper_store_and_erase(env: Env) -> None:
    env.helper("keep", "exit 0")
    helper_store("keep", "ghcr.io", "alice", PASSWORD)
    helper_store("keep", "docker.io", "<token>", REFRESH)
    helper_erase("keep", "ghcr.io")
    calls = env.calls("keep")
    assert calls[0].startswith("store ")
    assert json.loads(calls[0][len("store ") :]) == {
        "ServerURL": "ghcr.io",
        "Username": "alice",
        "Secret": PASSWORD,
    }
    assert json.loads(calls[1][len("store ") :])["ServerURL"] == "https://index.docker.io/v1/"
    assert calls[2] == "erase ghcr.io"


def test_helper_store_failure_hides_secret(env: Env) -> None:
    env.helper("locked", 'echo "$input" >&2; echo "$input"; exit 1')
    with pytest.raises(CredentialError) as info:
        helper_store("locked", "ghcr.io", "alice", PASSWORD)
    assert "could not store credentials for ghcr.io" in str(info.value)
    assert_no_secret(info.value)


def test_helper_erase_not_found_is_fine(env: Env) -> None:
    env.helper("gone", 'echo "credentials not found in native keychain"; exit 1')
    helper_erase("gone", "ghcr.io")
    env.helper("broken", "exit 2")
    with pytest.raises(CredentialError, match="could not erase"):
        helper_erase("broken", "ghcr.io")


# --- writing config.json -----------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_save_docker_config_atomic_0600(env: Env) -> None:
    path = env.config_path
    written = save_docker_config({"auths": {"ghcr.io": {"auth": b64("a:b")}}}, path)
    assert written == path
    assert _mode(path) == 0o600
    assert json.loads(path.read_text()) == {"auths": {"ghcr.io": {"auth": b64("a:b")}}}
    # an existing, too-open file is replaced by a 0600 one
    path.chmod(0o644)
    save_docker_config({"auths": {}}, path)
    assert _mode(path) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.json"]


def test_save_docker_config_default_path_and_dir_mode(env: Env) -> None:
    save_docker_config({"auths": {}})
    assert env.config_path.exists()
    assert _mode(env.docker_dir) == 0o700


def test_save_docker_config_failure_keeps_old_file(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = env.docker_config({"auths": {"old": {}}})
    before = path.read_text()

    def boom(src: str, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(CredentialError, match=r"cannot write docker config .*No space left"):
        save_docker_config({"auths": {"new": {"auth": b64(f"a:{PASSWORD}")}}}, path)
    assert path.read_text() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.json"]


def test_save_docker_config_through_symlink(env: Env) -> None:
    real = env.tmp / "dotfiles" / "docker.json"
    real.parent.mkdir()
    real.write_text("{}")
    env.docker_dir.mkdir()
    env.config_path.symlink_to(real)
    save_docker_config({"auths": {"x": {}}})
    assert env.config_path.is_symlink()
    assert json.loads(real.read_text()) == {"auths": {"x": {}}}
    assert _mode(real) == 0o600


def test_store_and_erase_credentials_in_file(env: Env, store: CredentialStore) -> None:
    env.docker_config({"auths": {"https://ghcr.io": {"auth": b64("old:x")}}, "other": 1})
    where = store_credentials("ghcr.io", "alice", PASSWORD)
    assert where == f"docker config {env.config_path}"
    config = load_docker_config()
    assert config["other"] == 1
    assert config["auths"] == {"ghcr.io": {"auth": b64(f"alice:{PASSWORD}")}}
    assert _mode(env.config_path) == 0o600
    credential = store.get("ghcr.io")
    assert credential is not None
    assert credential.password == PASSWORD

    store_credentials("index.docker.io", "<token>", REFRESH)
    assert load_docker_config()["auths"]["https://index.docker.io/v1/"] == {
        "identitytoken": REFRESH
    }

    assert erase_credentials("ghcr.io") is True
    assert "ghcr.io" not in load_docker_config()["auths"]
    assert erase_credentials("ghcr.io") is False


def test_store_and_erase_credentials_through_helper(env: Env) -> None:
    env.helper("keep", "exit 0")
    env.docker_config({"credsStore": "keep"})
    where = store_credentials("ghcr.io", "alice", PASSWORD)
    assert where == "credential helper docker-credential-keep"
    config = load_docker_config()
    assert config["auths"] == {"ghcr.io": {}}
    assert PASSWORD not in env.config_path.read_text()
    assert erase_credentials("ghcr.io") is True
    assert [c.split()[0] for c in env.calls("keep")] == ["store", "erase"]


# --- environment -------------------------------------------------------------


def test_env_auth_config(env: Env, store: CredentialStore) -> None:
    env.monkeypatch.setenv(
        "PORTSIDE_REGISTRY_AUTH",
        json.dumps({"auths": {"registry.ci.example": {"auth": b64(f"ci:{PASSWORD}")}}}),
    )
    credential = store.get("registry.ci.example")
    assert credential is not None
    assert credential.username == "ci"
    assert credential.source == "environment variable PORTSIDE_REGISTRY_AUTH (auths)"
    assert store.get("ghcr.io") is None


def test_docker_auth_config_env(env: Env, store: CredentialStore) -> None:
    env.monkeypatch.setenv(
        "DOCKER_AUTH_CONFIG",
        json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": b64(f"hub:{PASSWORD}")}}}),
    )
    credential = store.get("docker.io")
    assert credential is not None
    assert credential.username == "hub"
    assert "DOCKER_AUTH_CONFIG" in credential.source


def test_portside_auth_config_first(env: Env) -> None:
    env.monkeypatch.setenv(
        "PORTSIDE_REGISTRY_AUTH", json.dumps({"auths": {"a.example": {"auth": b64("p:1")}}})
    )
    env.monkeypatch.setenv(
        "DOCKER_AUTH_CONFIG",
        json.dumps(
            {"auths": {"a.example": {"auth": b64("d:1")}, "b.example": {"auth": b64("d:2")}}}
        ),
    )
    a, b = env_credentials("a.example"), env_credentials("b.example")
    assert a is not None
    assert a.username == "p"
    assert b is not None
    assert b.username == "d"


def test_env_auth_config_invalid_json(env: Env, store: CredentialStore) -> None:
    env.monkeypatch.setenv("PORTSIDE_REGISTRY_AUTH", '{"auths": {"x": {"password": "' + PASSWORD)
    with pytest.raises(CredentialError) as info:
        store.get("x.example")
    assert "environment variable PORTSIDE_REGISTRY_AUTH is not valid JSON" in str(info.value)
    assert_no_secret(info.value)


def test_env_username_password_scoped_to_registry(env: Env, store: CredentialStore) -> None:
    env.monkeypatch.setenv("PORTSIDE_USERNAME", "ci-user")
    env.monkeypatch.setenv("PORTSIDE_PASSWORD", ENV_PASSWORD)
    env.monkeypatch.setenv("PORTSIDE_REGISTRY", "https://Registry.CI.example:5000")
    credential = store.get("registry.ci.example:5000")
    assert credential is not None
    assert (credential.username, credential.password) == ("ci-user", ENV_PASSWORD)
    assert "PORTSIDE_USERNAME" in credential.source
    assert_no_secret(credential)
    # nowhere else: not another host, not another port
    assert store.get("registry.ci.example") is None
    assert store.get("ghcr.io") is None
    assert store.get("docker.io") is None


def test_env_username_password_without_registry_ignored(
    env: Env, store: CredentialStore, caplog: pytest.LogCaptureFixture
) -> None:
    env.monkeypatch.setenv("PORTSIDE_USERNAME", "ci-user")
    env.monkeypatch.setenv("PORTSIDE_PASSWORD", ENV_PASSWORD)
    with caplog.at_level(logging.WARNING):
        assert store.get("ghcr.io") is None
        assert store.get("docker.io") is None
    assert caplog.text.count("PORTSIDE_REGISTRY is not set") == 1
    assert ENV_PASSWORD not in caplog.text


def test_env_username_without_password(env: Env, store: CredentialStore) -> None:
    env.monkeypatch.setenv("PORTSIDE_USERNAME", "ci-user")
    env.monkeypatch.setenv("PORTSIDE_REGISTRY", "ghcr.io")
    with pytest.raises(CredentialError, match="PORTSIDE_PASSWORD is not set"):
        store.get("ghcr.io")


def test_env_token_username(env: Env) -> None:
    env.monkeypatch.setenv("PORTSIDE_USERNAME", "<token>")
    env.monkeypatch.setenv("PORTSIDE_PASSWORD", REFRESH)
    env.monkeypatch.setenv("PORTSIDE_REGISTRY", "docker.io")
    credential = env_credentials("index.docker.io")
    assert credential is not None
    assert credential.identity_token == REFRESH


def test_env_before_docker_config(env: Env, store: CredentialStore) -> None:
    env.docker_config({"auths": {"ghcr.io": {"auth": b64("from-file:x")}}})
    env.monkeypatch.setenv("PORTSIDE_USERNAME", "from-env")
    env.monkeypatch.setenv("PORTSIDE_PASSWORD", ENV_PASSWORD)
    env.monkeypatch.setenv("PORTSIDE_REGISTRY", "ghcr.io")
    credential = store.get("ghcr.io")
    assert credential is not None
    assert credential.username == "from-env"


# --- podman / containers auth.json -------------------------------------------


def test_registry_auth_file(env: Env, store: CredentialStore) -> None:
    auth = env.tmp / "auth.json"
    auth.write_text(
        json.dumps(
            {
                "auths": {
                    "quay.io": {"auth": b64(f"pod:{PASSWORD}")},
                    "quay.io/org": {"auth": b64("namespaced:x")},
                    "ns.example/org": {"auth": b64("namespaced:x")},
                }
            }
        )
    )
    env.monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth))
    credential = store.get("quay.io")
    assert credential is not None
    assert credential.username == "pod"
    assert credential.source == f"containers auth file {auth} (auths)"
    # per-namespace entries are not whole-host credentials
    assert store.get("ns.example") is None


def test_xdg_runtime_auth_file(env: Env) -> None:
    runtime = env.tmp / "run"
    (runtime / "containers").mkdir(parents=True)
    (runtime / "containers" / "auth.json").write_text(
        json.dumps({"auths": {"localhost:5000": {"auth": b64(f"pod:{PASSWORD}")}}})
    )
    env.monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    credential = containers_auth_credentials("localhost:5000")
    assert credential is not None
    assert credential.username == "pod"
    assert containers_auth_credentials("localhost:5001") is None


def test_docker_config_before_containers_auth(env: Env, store: CredentialStore) -> None:
    env.docker_config({"auths": {"quay.io": {"auth": b64("docker:x")}}})
    auth = env.tmp / "auth.json"
    auth.write_text(json.dumps({"auths": {"quay.io": {"auth": b64("podman:x")}}}))
    env.monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth))
    credential = store.get("quay.io")
    assert credential is not None
    assert credential.username == "docker"


def test_unreadable_containers_auth(env: Env) -> None:
    auth = env.tmp / "auth.json"
    auth.mkdir()  # reading a directory fails with an OSError
    env.monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth))
    with pytest.raises(CredentialError, match="cannot read containers auth file"):
        containers_auth_credentials("quay.io")


def test_credentials_from_config_direct() -> None:
    config = {"auths": {"a.example": {"auth": b64("u:p")}}}
    credential = credentials_from_config(config, "A.example", origin="test config")
    assert credential is not None
    assert credential.source == "test config (auths)"


# --- plugin manager and the store --------------------------------------------


def test_builtin_plugin_registered_in_order() -> None:
    pm = create_plugin_manager(load_entrypoints=False)
    pm.check_pending()
    assert pm.get_plugin("portside.registry.credentials") is creds
    impls = pm.hook.portside_credentials.get_hookimpls()
    # pluggy calls the list from the end
    assert [impl.function.__name__ for impl in reversed(impls)] == [
        "env_credentials",
        "docker_config_credentials",
        "containers_auth_credentials",
    ]


def test_hook_called_directly(env: Env) -> None:
    env.docker_config({"auths": {"ghcr.io": {"auth": b64(f"alice:{PASSWORD}")}}})
    pm = create_plugin_manager(load_entrypoints=False)
    credential = pm.hook.portside_credentials(registry="ghcr.io")
    assert isinstance(credential, Credential)
    assert credential.username == "alice"
    assert docker_config_credentials("ghcr.io") == credential


class OverridePlugin:
    def __init__(self) -> None:
        self.asked: list[str] = []

    @hookimpl(tryfirst=True)
    def portside_credentials(self, registry: str) -> Credential | None:
        self.asked.append(registry)
        if registry == "ghcr.io":
            return Credential(registry_token=REG_TOKEN, source="vault plugin")
        return None


def test_third_party_plugin_overrides(env: Env) -> None:
    env.monkeypatch.setenv("PORTSIDE_USERNAME", "from-env")
    env.monkeypatch.setenv("PORTSIDE_PASSWORD", ENV_PASSWORD)
    env.monkeypatch.setenv("PORTSIDE_REGISTRY", "ghcr.io")
    env.docker_config({"auths": {"quay.io": {"auth": b64("docker:x")}}})
    pm = create_plugin_manager(load_entrypoints=False)
    plugin = OverridePlugin()
    pm.register(plugin, name="vault")
    pm.check_pending()
    store = CredentialStore(pm)
    credential = store.get("ghcr.io")
    assert credential is not None
    assert credential.source == "vault plugin"
    # returning None lets the built-ins answer
    other = store.get("quay.io")
    assert other is not None
    assert other.username == "docker"
    assert plugin.asked == ["ghcr.io", "quay.io"]


def test_builtin_can_be_blocked(env: Env) -> None:
    env.docker_config({"auths": {"ghcr.io": {"auth": b64("docker:x")}}})
    pm = create_plugin_manager(load_entrypoints=False)
    pm.unregister(name="portside.registry.credentials")
    pm.set_blocked("portside.registry.credentials")
    assert CredentialStore(pm).get("ghcr.io") is None


class CrashingPlugin:
    @hookimpl(tryfirst=True)
    def portside_credentials(self, registry: str) -> Credential | None:
        raise RuntimeError(f"vault said {PASSWORD}")


class WrongTypePlugin:
    @hookimpl(tryfirst=True)
    def portside_credentials(self, registry: str) -> object:
        return ("user", PASSWORD)


class PortsideErrorPlugin:
    @hookimpl(tryfirst=True)
    def portside_credentials(self, registry: str) -> Credential | None:
        raise CredentialError("vault is sealed", hint="unseal it")


def test_crashing_plugin_becomes_credential_error(env: Env) -> None:
    pm = create_plugin_manager(load_entrypoints=False)
    pm.register(CrashingPlugin(), name="crashy-vault")
    with pytest.raises(CredentialError) as info:
        CredentialStore(pm).get("ghcr.io")
    message = str(info.value)
    assert "credential plugin crashy-vault (portside_credentials) failed for ghcr.io" in message
    assert "RuntimeError" in message
    assert PASSWORD not in message


def test_plugin_returning_wrong_type(env: Env) -> None:
    pm = create_plugin_manager(load_entrypoints=False)
    pm.register(WrongTypePlugin(), name="wrong")
    with pytest.raises(
        CredentialError, match=r"returned tuple for ghcr\.io, not a Credential"
    ) as e:
        CredentialStore(pm).get("ghcr.io")
    assert_no_secret(e.value)


def test_plugin_portside_error_passes_through(env: Env) -> None:
    pm = create_plugin_manager(load_entrypoints=False)
    pm.register(PortsideErrorPlugin(), name="sealed")
    with pytest.raises(CredentialError, match="vault is sealed"):
        CredentialStore(pm).get("ghcr.io")


def test_store_memoises_per_host(env: Env, store: CredentialStore) -> None:
    env.answering_helper("count")
    env.docker_config({"credsStore": "count"})
    first = store.get("ghcr.io")
    assert store.get("ghcr.io") is first
    assert store.get("GHCR.IO") is first
    store.get("quay.io")
    assert env.calls("count") == ["get ghcr.io", "get quay.io"]
    store.forget("ghcr.io")
    store.get("ghcr.io")
    assert len(env.calls("count")) == 3
    store.forget()
    store.get("quay.io")
    assert len(env.calls("count")) == 4


def test_store_memoises_errors_until_forget(env: Env, store: CredentialStore) -> None:
    env.helper("flaky", "exit 4")
    env.docker_config({"credsStore": "flaky"})
    with pytest.raises(CredentialError):
        store.get("ghcr.io")
    with pytest.raises(CredentialError):
        store.get("ghcr.io")
    assert len(env.calls("flaky")) == 1
    env.answering_helper("flaky")
    store.forget("ghcr.io")
    assert store.get("ghcr.io") is not None


async def test_aget_runs_in_a_thread(env: Env, store: CredentialStore) -> None:
    env.answering_helper("async")
    env.docker_config({"credsStore": "async"})
    credential = await store.aget("ghcr.io")
    assert credential is not None
    assert credential.password == HELPER_SECRET


def test_default_plugin_manager(env: Env) -> None:
    from portside.plugins import get_plugin_manager

    assert CredentialStore().plugin_manager is get_plugin_manager()


def test_every_error_is_a_portside_error(env: Env) -> None:
    # CredentialError sits under PortsideError with its own exit code
    assert issubclass(CredentialError, PortsideError)
    assert CredentialError.exit_code == 4


@pytest.fixture
def no_leak_log(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    with caplog.at_level(logging.DEBUG, logger="portside"):
        yield
    assert_no_secret(caplog.text)


def test_debug_logging_has_no_secrets(env: Env, no_leak_log: None) -> None:
    env.answering_helper("logged")
    env.docker_config(
        {"credsStore": "logged", "auths": {"a.example": {"auth": b64(f"alice:{PASSWORD}")}}}
    )
    store = CredentialStore(create_plugin_manager(load_entrypoints=False))
    for host in ("a.example", "b.example"):
        store.get(host)
