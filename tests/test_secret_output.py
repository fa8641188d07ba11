"""Secrets never reach hook output, reports, CLI output with tokens, or logged URLs.

The checklist item (credentials): passwords, access tokens, refresh/identity tokens and
signed URL queries never appear in exceptions, logs, CLI output, hook output, LSP
messages or reports; logged URLs keep only harmless query keys. Exceptions, helper logs,
``inspect``/``tags`` with a password and the LSP are covered elsewhere (test_client_auth,
test_credentials, test_cli, test_lsp_server); this file covers the rest:

- the pre-commit hooks, which run ``portside check FILES`` / ``portside pin [--check]
  FILES`` (there is no separate hook module), with credentials from the environment
  or a docker config, against a basic-auth registry, succeeding and failing;
- the JSON and SARIF reports of ``portside check``, with ``PORTSIDE_DEBUG=1``;
- every command against a token-auth registry (password and identity token), with
  ``PORTSIDE_DEBUG=1`` and with the ``portside`` logger at DEBUG in-process;
- the transport's debug line for a redirect to a signed blob URL.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from harness import seed
from harness.cli import run_portside
from harness.dockerconfig import CREDENTIAL_ENV, DockerConfig
from harness.images import build_image
from harness.proxy import FaultProxy, FaultRule
from harness.registry import Registry
from harness.tokens import TokenIssuer
from portside import cli, errors
from portside.reference import Digest, Reference
from portside.registry.client import ClientOptions, RegistryClient

REPO = "team/app"
WRONG_PASSWORD = "wr0ng-Hook-Pa55-qq7"
FAST = ClientOptions(max_retries=1, backoff_base=0.01, backoff_cap=0.05, timeout=15.0)

ProxyFactory = Callable[..., FaultProxy]

# Where credentials or their settings could come from besides what a test sets.
UNSET = (*CREDENTIAL_ENV, "PORTSIDE_DEBUG", "PORTSIDE_INSECURE_REGISTRIES")


@pytest.fixture(autouse=True)
def isolated(docker_config: DockerConfig, no_machine_credentials: Path) -> DockerConfig:
    return docker_config


def secret_forms(*secrets: str | None, user: str | None = None) -> list[str]:
    """Each secret, its tail (a truncated line still leaks it) and, for a password,
    the base64 ``user:password`` a Basic header would carry."""
    forms: list[str] = []
    for secret in secrets:
        if not secret:
            continue
        forms.append(secret)
        if len(secret) > 24:
            forms.append(secret[-16:])  # a JWT's signature tail
        if user is not None:
            forms.append(base64.b64encode(f"{user}:{secret}".encode()).decode())
    return forms


def assert_no_secret(text: str, secrets: Iterable[str], what: str) -> None:
    for secret in secrets:
        assert secret not in text, f"a secret ({secret[:4]}...) leaked into {what}:\n{text}"


def issued_secrets(issuer: TokenIssuer, refresh_tokens: Iterable[str] = ()) -> list[str]:
    """Every access token the issuer handed out so far, its current refresh tokens and
    ``refresh_tokens`` (ones a test has since revoked)."""
    refresh = {*issuer.refresh_tokens, *refresh_tokens}
    return secret_forms(*(t.jwt for t in issuer.issued), *refresh)


def failed(result: subprocess.CompletedProcess[str]) -> bool:
    """The command said it could not do its work: a non-zero exit, or (``check``, whose
    default ``--fail-on error`` lets an ``info`` finding pass) an ``unreachable`` finding."""
    return result.returncode != 0 or any(
        kind in result.stdout for kind in ("unreachable", "credentials-refused")
    )


def both_streams(result: subprocess.CompletedProcess[str]) -> str:
    return f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


class Project:
    """A folder with a Dockerfile naming images on ``host``, and a portside runner."""

    def __init__(self, tmp_path: Path, host: str, env: dict[str, str]) -> None:
        self.root = tmp_path / "project"
        self.root.mkdir(parents=True)
        self.cache = tmp_path / "cache"
        self.env = {"PORTSIDE_CACHE_DIR": str(self.cache), **env}
        self.dockerfile = self.root / "Dockerfile"
        self.dockerfile.write_text(
            f"FROM {host}/{REPO}:3.20 AS build\nFROM {host}/{REPO}:3.20\n", encoding="utf-8"
        )

    def run(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        """``portside --refresh ARGS`` in the project, in a clean credential environment."""
        env = {**self.env, **extra}
        unset = [name for name in UNSET if name not in env]
        return run_portside("--refresh", *args, cwd=self.root, env=env, unset=unset)


def seed_app(reg: Registry, tags: Iterable[str] = ("3.20", "3.21")) -> None:
    seed.push_image(reg, REPO, build_image(f"secret-{reg.host}"), list(tags), via="fs")


def credential_env(
    source: str, docker_config: DockerConfig, host: str, user: str, password: str
) -> dict[str, str]:
    """Credentials for ``host`` the way a CI job or a developer would provide them."""
    if source == "env":
        return {
            "PORTSIDE_REGISTRY": host,
            "PORTSIDE_USERNAME": user,
            "PORTSIDE_PASSWORD": password,
            "DOCKER_CONFIG": str(docker_config.directory / "none"),
        }
    docker_config(auths={host: (user, password)})
    return {"DOCKER_CONFIG": str(docker_config.directory)}


def echo_body(user: str, password: str) -> bytes:
    """A registry error whose message echoes the credentials it was sent."""
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    message = f"bad request: {password} Basic {basic}"
    return json.dumps({"errors": [{"code": "UNKNOWN", "message": message}]}).encode()


def arm_echo(proxy: FaultProxy, body: bytes) -> None:
    """The registry behind ``proxy`` errs once credentials are in play: the first
    request under /v2/team/ passes (the 401 challenge), later ones get a 400 echoing them."""
    proxy.clear_rules()
    proxy.add_rule(FaultRule(None, r"/v2/team/", times=1))
    proxy.respond(None, r"/v2/team/", 400, body)


# --- 1. pre-commit hook output ---------------------------------------------------------


HOOKS = (("check",), ("check", "--fail-on", "info"), ("pin", "--check"), ("pin",))


@pytest.mark.parametrize("source", ["env", "docker_config"])
def test_hook_output_has_no_secrets(
    basic_registry: Registry,
    proxy_factory: ProxyFactory,
    docker_config: DockerConfig,
    tmp_path: Path,
    source: str,
) -> None:
    seed_app(basic_registry)
    user, password = basic_registry.basic_auth  # type: ignore[misc]
    secrets = secret_forms(password, WRONG_PASSWORD, user=user)

    # Success: the hooks reach the registry with the right password.
    ok = Project(
        tmp_path / "ok",
        basic_registry.host,
        credential_env(source, docker_config, basic_registry.host, user, password),
    )
    for hook in HOOKS:
        result = ok.run(*hook, "Dockerfile")
        assert "portside: error" not in result.stderr, both_streams(result)
        assert_no_secret(both_streams(result), secrets, f"hook {hook}")
    assert "@sha256:" in ok.dockerfile.read_text()  # the pin hook did its work

    # Failure: a wrong password. Every hook fails and says so, without the password.
    bad = Project(
        tmp_path / "bad",
        basic_registry.host,
        credential_env(source, docker_config, basic_registry.host, user, WRONG_PASSWORD),
    )
    for hook in HOOKS:
        result = bad.run(*hook, "Dockerfile", PORTSIDE_DEBUG="1")
        assert failed(result), both_streams(result)
        assert_no_secret(both_streams(result), secrets, f"failing hook {hook}")

    # Failure: the registry errs once the credentials are sent (the first request of
    # each run passes, to get the challenge), with a body echoing them back.
    proxy = proxy_factory(basic_registry)
    broken = Project(
        tmp_path / "broken",
        proxy.host,
        credential_env(source, docker_config, proxy.host, user, password),
    )
    for hook in HOOKS:
        arm_echo(proxy, echo_body(user, password))
        result = broken.run(*hook, "Dockerfile", PORTSIDE_DEBUG="1")
        assert failed(result), both_streams(result)
        assert_no_secret(both_streams(result), secrets, f"hook {hook} on a failing registry")
    assert any(r.authorization for r in proxy.requests)  # credentials were in play


# --- 2. reports ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["--json", "--sarif"])
def test_check_reports_have_no_secrets(
    basic_registry: Registry,
    proxy_factory: ProxyFactory,
    docker_config: DockerConfig,
    tmp_path: Path,
    fmt: str,
) -> None:
    seed_app(basic_registry)
    user, password = basic_registry.basic_auth  # type: ignore[misc]
    secrets = secret_forms(password, WRONG_PASSWORD, user=user)
    project = Project(
        tmp_path,
        basic_registry.host,
        credential_env("docker_config", docker_config, basic_registry.host, user, password),
    )
    # A second file names a repository that does not exist: a finding with a message.
    (project.root / "missing.Dockerfile").write_text(
        f"FROM {basic_registry.host}/team/nope:1\n", encoding="utf-8"
    )
    for debug in ("0", "1"):
        result = project.run("check", fmt, "--fail-on", "info", ".", PORTSIDE_DEBUG=debug)
        assert result.returncode == 1, both_streams(result)  # unpinned, not-found
        assert result.stdout.lstrip().startswith(("[", "{")), both_streams(result)
        assert_no_secret(both_streams(result), secrets, f"check {fmt}")

    docker_config(auths={basic_registry.host: (user, WRONG_PASSWORD)})
    for debug in ("0", "1"):
        result = project.run("check", fmt, ".", PORTSIDE_DEBUG=debug)
        # Refused credentials are an error of their own, not "unreachable".
        assert "credentials-refused" in result.stdout, both_streams(result)
        assert result.returncode == 1, both_streams(result)
        assert_no_secret(both_streams(result), secrets, f"failing check {fmt}")

    # The registry's error message echoes the credentials: the finding quotes it.
    proxy = proxy_factory(basic_registry)
    docker_config(auths={proxy.host: (user, password)})
    (project.root / "missing.Dockerfile").unlink()
    project.dockerfile.write_text(f"FROM {proxy.host}/{REPO}:3.20\n", encoding="utf-8")
    for debug in ("0", "1"):
        arm_echo(proxy, echo_body(user, password))
        result = project.run("check", fmt, ".", PORTSIDE_DEBUG=debug)
        assert "unreachable" in result.stdout, both_streams(result)
        assert "bad request" in result.stdout, both_streams(result)  # the echo is quoted
        assert_no_secret(both_streams(result), secrets, f"check {fmt} of an echoing registry")


# --- 3. the command line with tokens ---------------------------------------------------


TOKEN_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("tags", "{ref}"),
    ("inspect", "{ref}"),
    ("inspect", "--json", "{ref}"),
    ("digest", "{ref}"),
    ("check", "--json", "Dockerfile"),
    ("check", "--sarif", "Dockerfile"),
    ("pin", "--check", "Dockerfile"),
)


def _token_runs(project: Project, ref: str, **extra: str) -> list[subprocess.CompletedProcess[str]]:
    results = []
    for command in TOKEN_COMMANDS:
        args = [a.format(ref=ref) for a in command]
        results.append(project.run(*args, **extra))
    return results


@pytest.mark.parametrize("credential", ["password", "identity_token"])
def test_token_registry_cli_has_no_secrets(
    token_registry: Registry,
    docker_config: DockerConfig,
    tmp_path: Path,
    credential: str,
) -> None:
    issuer = token_registry.token_issuer
    assert issuer is not None
    issuer.anonymous = "reject"  # every answer needs the credential
    seed_app(token_registry)
    user, password = token_registry.basic_auth  # type: ignore[misc]
    if credential == "password":
        docker_config(auths={token_registry.host: (user, password)})
    else:
        identity = issuer.issue_refresh_token(user)
        docker_config(auths={token_registry.host: {"identitytoken": identity}})
    project = Project(
        tmp_path, token_registry.host, {"DOCKER_CONFIG": str(docker_config.directory)}
    )
    ref = f"{token_registry.host}/{REPO}:3.20"

    results = _token_runs(project, ref, PORTSIDE_DEBUG="1")
    assert all(r.returncode in (0, 1) for r in results), [both_streams(r) for r in results]
    assert any(r.stdout for r in results)
    assert issuer.issued, "tokens were issued, so there was something to leak"
    secrets = secret_forms(password, WRONG_PASSWORD, user=user) + issued_secrets(issuer)
    for result in results:
        assert_no_secret(both_streams(result), secrets, f"{result.args[3:]}")

    # Failure: a refresh token / password the issuer no longer accepts.
    if credential == "password":
        docker_config(auths={token_registry.host: (user, WRONG_PASSWORD)})
    else:
        issuer.refresh_tokens.clear()  # revoked: the issuer now refuses it
    failures = _token_runs(project, ref, PORTSIDE_DEBUG="1")
    assert all(failed(r) for r in failures), [both_streams(r) for r in failures]
    secrets += issued_secrets(issuer)  # anything issued meanwhile
    for result in failures:
        assert_no_secret(both_streams(result), secrets, f"failing {result.args[3:]}")


@pytest.mark.parametrize("credential", ["password", "identity_token"])
def test_token_registry_debug_log_has_no_secrets(
    token_registry: Registry,
    docker_config: DockerConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    credential: str,
) -> None:
    """In-process, with the ``portside`` logger at DEBUG (what the LSP's log level and
    an embedding application turn on): no secret in a log record or in the output."""
    issuer = token_registry.token_issuer
    assert issuer is not None
    issuer.anonymous = "reject"
    seed_app(token_registry)
    user, password = token_registry.basic_auth  # type: ignore[misc]
    if credential == "password":
        docker_config(auths={token_registry.host: (user, password)})
    else:
        docker_config(
            auths={token_registry.host: {"identitytoken": issuer.issue_refresh_token(user)}}
        )
    monkeypatch.setenv("PORTSIDE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PORTSIDE_DEBUG", "1")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Dockerfile").write_text(f"FROM {token_registry.host}/{REPO}:3.20\n")
    ref = f"{token_registry.host}/{REPO}:3.20"
    codes = []
    with caplog.at_level(logging.DEBUG, logger="portside"):
        for args in (
            ["tags", ref],
            ["--refresh", "inspect", "--json", ref],
            ["--refresh", "digest", ref],
            ["--refresh", "check", "--json", "Dockerfile"],
            ["--refresh", "pin", "--check", "Dockerfile"],
        ):
            codes.append(cli.main(args))
        refresh_tokens = list(issuer.refresh_tokens)  # still secrets once revoked
        if credential == "password":
            docker_config(auths={token_registry.host: (user, WRONG_PASSWORD)})
        else:
            issuer.refresh_tokens.clear()  # revoked: the issuer now refuses it
        failing = cli.main(["--refresh", "inspect", ref])
    output = capsys.readouterr()
    assert codes[:3] == [0, 0, 0], output.err
    assert failing == 4, output.err
    assert issuer.issued
    assert any("GET" in r.getMessage() for r in caplog.records), "the debug log said something"
    secrets = secret_forms(password, WRONG_PASSWORD, user=user)
    secrets += issued_secrets(issuer, refresh_tokens)
    assert refresh_tokens or credential == "password"
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records)
    assert_no_secret(logged, secrets, "the debug log")
    assert_no_secret(output.out + output.err, secrets, "the output")


# --- 4. logged URLs of a redirect to a signed blob URL ---------------------------------

SIGNED_VALUES = {
    "X-Amz-Signature": "a1b2c3d4e5f6amzsignature0123456789",
    "X-Amz-Credential": "AKIAEXAMPLEKEYID0420%2F20240101%2Fus-east-1%2Fs3",
    "sig": "cdnSignatureValue9876543210zz",
    "token": "queryTokenValue-5f5f5f5f5f",
}
HARMLESS = {"n": "100", "last": "v1.2"}


async def test_redirect_to_signed_url_is_logged_redacted(
    plain_registry: Registry,
    proxy_factory: ProxyFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pushed = seed.push_image(plain_registry, REPO, build_image("signed"), ["3.20"], via="fs")
    proxy = proxy_factory(plain_registry)
    target = Reference.parse(f"{proxy.host}/{REPO}:3.20")
    query = "&".join(f"{k}={v}" for k, v in {**SIGNED_VALUES, **HARMLESS}.items())
    blob_path = f"/v2/{REPO}/blobs/{pushed.config_digest}"
    # Like a registry handing blobs to S3 or a CDN: a 307 to a signed URL (here the
    # proxy itself, which then serves the blob; the registry ignores the query).
    rule = proxy.redirect(
        "GET", r"/blobs/", f"{proxy.url}{blob_path}?{query}", keep_path=False, times=1
    )
    with caplog.at_level(logging.DEBUG, logger="portside"):
        async with RegistryClient(dataclasses.replace(FAST)) as client:
            manifest = await client.get_manifest(target)
            assert manifest.config is not None
            config = await client.get_blob(target, manifest.config.digest)
    assert Digest.of(config) == Digest.parse(pushed.config_digest)
    assert rule.hits == 1
    assert any("X-Amz-Signature" in r.path + r.target for r in proxy.requests), "followed"

    lines = [r.getMessage() for r in caplog.records]
    signed = [line for line in lines if "X-Amz-Signature" in line]
    assert signed, f"the client logs the URL it follows:\n{lines}"
    text = "\n".join(lines)
    for key, value in SIGNED_VALUES.items():
        assert value not in text, f"{key}'s value leaked into the log:\n{text}"
        assert all(f"{key}=***" in line for line in signed), text
    for key, value in HARMLESS.items():
        assert all(f"{key}={value}" in line for line in signed), text


async def test_error_echoing_credentials_is_masked_in_the_exception(
    basic_registry: Registry, proxy_factory: ProxyFactory, docker_config: DockerConfig
) -> None:
    """The client-level view of the hook/report case above: the typed error quotes the
    registry's message, with the credentials it echoed masked."""
    seed_app(basic_registry)
    user, password = basic_registry.basic_auth  # type: ignore[misc]
    proxy = proxy_factory(basic_registry)
    docker_config(auths={proxy.host: (user, password)})
    arm_echo(proxy, echo_body(user, password))
    async with RegistryClient(dataclasses.replace(FAST)) as client:
        with pytest.raises(errors.RegistryError) as caught:
            await client.get_manifest(Reference.parse(f"{proxy.host}/{REPO}:3.20"))
    assert any(r.authorization for r in proxy.requests)
    text = f"{caught.value} {caught.value.message} {caught.value!r}"
    assert "bad request: ***" in text, text
    assert_no_secret(text, secret_forms(password, user=user), "the exception")
