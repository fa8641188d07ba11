"""portside check / pin / query / latest, run as a user runs them (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import data, seed
from harness.cli import run_portside
from harness.dockerconfig import CREDENTIAL_ENV, DockerConfig
from harness.images import build_image
from harness.registry import Registry


def portside(*args: str, cwd: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {"PORTSIDE_CACHE_DIR": str(cache), "DOCKER_CONFIG": str(cache / "docker")}
    return run_portside(*args, cwd=cwd, env=env)


@pytest.fixture
def project(tmp_path: Path, registry: Registry) -> Path:
    root = tmp_path / "project"
    (root / "svc").mkdir(parents=True)
    (root / "Dockerfile").write_text(
        f"FROM {registry.host}/library/python:3.13 AS build\nFROM build\n", encoding="utf-8"
    )
    (root / "svc" / "api.Dockerfile").write_text(
        f"FROM {registry.host}/library/nope:1\n", encoding="utf-8"
    )
    return root


def test_check_table_json_sarif_and_exit_codes(project: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    table = portside("check", cwd=project, cache=cache)
    assert table.returncode == 1, table.stderr  # not-found is an error
    assert "svc/api.Dockerfile:1:6: error [not-found]" in table.stdout
    assert "Dockerfile:1:6: info [unpinned]" in table.stdout
    assert "2 file(s) checked" in table.stderr
    assert "Traceback" not in table.stderr

    as_json = portside("check", "--json", cwd=project, cache=cache)
    findings = json.loads(as_json.stdout)
    assert {f["kind"] for f in findings} >= {"unpinned", "not-found"}
    keys = {
        "file", "line", "column", "end_line", "end_column", "image", "kind",
        "severity", "message", "suggestion",
    }  # fmt: skip
    for finding in findings:
        # A stale finding also carries its level and every proposal (tag, level, image).
        extra = {"level", "proposals"} if finding["kind"] == "stale" else set()
        assert set(finding) == keys | extra, finding
    stale = next(f for f in findings if f["kind"] == "stale")
    assert stale["proposals"][-1]["suggestion"] == stale["suggestion"]
    assert stale["level"] == stale["proposals"][-1]["level"]

    sarif = json.loads(portside("check", "--sarif", cwd=project, cache=cache).stdout)
    results = sarif["runs"][0]["results"]
    assert sarif["version"] == "2.1.0"
    assert {r["ruleId"] for r in results} == {f["kind"] for f in findings}

    only_root = portside("check", "Dockerfile", "--fail-on", "not-found", cwd=project, cache=cache)
    assert only_root.returncode == 0
    strict = portside("check", "Dockerfile", "--fail-on", "info", cwd=project, cache=cache)
    assert strict.returncode == 1
    bad = portside("check", "--fail-on", "sometimes", cwd=project, cache=cache)
    assert bad.returncode == 2
    assert "neither a severity nor a kind" in bad.stderr


def test_check_reads_fail_on_as_the_hook_does(project: Path, tmp_path: Path) -> None:
    """``[tool.portside.pre-commit] fail-on`` is the project's gate for ``portside check``
    too (read by the same core function as the hook's); ``--fail-on`` wins, and takes
    several values as the hook's does."""
    cache = tmp_path / "cache"
    root = ["check", "Dockerfile"]  # unpinned (info) only: passes the default bar, error
    assert portside(*root, cwd=project, cache=cache).returncode == 0
    (project / "pyproject.toml").write_text(
        '[tool.portside.pre-commit]\nfail-on = ["unpinned"]\n', encoding="utf-8"
    )
    configured = portside(*root, cwd=project, cache=cache)
    assert configured.returncode == 1, configured.stderr
    assert "Dockerfile:1:6: info [unpinned]" in configured.stdout
    assert portside(*root, "--fail-on", "not-found", cwd=project, cache=cache).returncode == 0
    both = portside(*root, "--fail-on", "not-found,unpinned", cwd=project, cache=cache)
    assert both.returncode == 1
    repeated = portside(*root, "--fail-on", "stale", "--fail-on", "info", cwd=project, cache=cache)
    assert repeated.returncode == 1

    (project / "pyproject.toml").write_text(
        '[tool.portside.pre-commit]\nfail-on = ["sometimes"]\n', encoding="utf-8"
    )
    bad = portside(*root, cwd=project, cache=cache)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") <= 2 and "Traceback" not in bad.stderr
    assert "[tool.portside.pre-commit] fail-on 'sometimes' is neither a severity nor a kind" in (
        bad.stderr
    )


def test_check_offline_uses_only_the_cache(project: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cold = portside("check", "Dockerfile", "--offline", "--json", cwd=project, cache=cache)
    kinds = {f["kind"] for f in json.loads(cold.stdout)}
    assert "unreachable" in kinds  # nothing cached: said so, never "not found"
    online = portside("check", "Dockerfile", "--json", cwd=project, cache=cache)
    warm = portside("check", "Dockerfile", "--offline", "--json", cwd=project, cache=cache)
    assert json.loads(warm.stdout) == json.loads(online.stdout)
    assert "unreachable" not in {f["kind"] for f in json.loads(warm.stdout)}


def test_check_refused_credentials_fail_loudly(
    basic_registry: Registry, docker_config: DockerConfig, tmp_path: Path
) -> None:
    """Wrong credentials are an error finding and exit 1; no credentials at all (a CI
    runner without secrets) stay a calm ``unreachable`` note."""
    seed.push_image(basic_registry, "team/app", build_image("cred"), ["1.0"], via="fs")
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "Dockerfile").write_text(f"FROM {basic_registry.host}/team/app:1.0\n")
    env = {
        "PORTSIDE_CACHE_DIR": str(tmp_path / "cache"),
        "DOCKER_CONFIG": str(docker_config.directory),
    }
    user, _ = basic_registry.basic_auth  # type: ignore[misc]
    docker_config(auths={basic_registry.host: (user, "not-the-password")})
    refused = run_portside("check", "--json", ".", cwd=folder, env=env, unset=CREDENTIAL_ENV)
    assert refused.returncode == 1, refused.stderr
    [finding] = [f for f in json.loads(refused.stdout) if f["kind"] == "credentials-refused"]
    assert finding["severity"] == "error"
    assert "refused" in finding["message"] and "docker login" in finding["message"]
    assert "not-the-password" not in refused.stdout + refused.stderr

    docker_config(auths={})
    anonymous = run_portside("check", "--json", ".", cwd=folder, env=env, unset=CREDENTIAL_ENV)
    assert anonymous.returncode == 0, anonymous.stderr
    assert "unreachable" in {f["kind"] for f in json.loads(anonymous.stdout)}


def test_check_bad_input(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    empty = tmp_path / "empty"
    empty.mkdir()
    none = portside("check", cwd=empty, cache=cache)
    assert none.returncode == 2
    assert "no Dockerfile found" in none.stderr
    missing = portside("check", "nowhere", cwd=empty, cache=cache)
    assert missing.returncode == 2
    assert "no such file or folder: nowhere" in missing.stderr
    (empty / "Dockerfile").write_bytes(b"FROM \xff\xfe\n")
    binary = portside("check", cwd=empty, cache=cache)
    assert binary.returncode == 2
    assert "not UTF-8" in binary.stderr
    (empty / "Dockerfile").write_text("FROM alpine:3.20\n", encoding="utf-8")
    (empty / "pyproject.toml").write_text("[tool.portside]\nwat = 1\n", encoding="utf-8")
    config = portside("check", "--offline", cwd=empty, cache=cache)
    assert config.returncode == 2
    assert "unknown setting 'wat'" in config.stderr
    for result in (none, missing, binary, config):
        assert "Traceback" not in result.stderr


def test_pin_check_then_write(project: Path, tmp_path: Path, registry: Registry) -> None:
    cache = tmp_path / "cache"
    dockerfile = project / "Dockerfile"
    before = dockerfile.read_text(encoding="utf-8")
    dry = portside("pin", "Dockerfile", "--check", cwd=project, cache=cache)
    assert dry.returncode == 1
    assert dockerfile.read_text(encoding="utf-8") == before
    digest = registry.seeded["library/python"].digest("3.13")
    assert f"-> {registry.host}/library/python:3.13@{digest}" in dry.stdout
    dockerfile.chmod(0o640)
    api = project / "svc" / "api.Dockerfile"
    api_before = api.read_text(encoding="utf-8")
    done = portside("pin", cwd=project, cache=cache)
    # svc/api.Dockerfile names a missing repository: that file is left alone, exit 1;
    # the other file is pinned all the same.
    assert done.returncode == 1
    assert "api.Dockerfile: left unchanged" in done.stderr
    assert api.read_text(encoding="utf-8") == api_before
    assert dockerfile.read_text(encoding="utf-8") == before.replace(":3.13 ", f":3.13@{digest} ")
    assert dockerfile.stat().st_mode & 0o777 == 0o640
    assert portside("pin", "Dockerfile", "--check", cwd=project, cache=cache).returncode == 0


def test_pin_update_moves_along_history(plain_registry: Registry, tmp_path: Path) -> None:
    rows = data.load_history("python-since-2025-06")
    state = seed.replay_history(plain_registry, "library/python", rows, until="2025-10-08")
    folder = tmp_path / "p"
    folder.mkdir()
    dockerfile = folder / "Dockerfile"
    dockerfile.write_text(f"FROM {plain_registry.host}/library/python:3.13.7-slim-bookworm\n")
    done = portside("pin", "--update", "patch", cwd=folder, cache=tmp_path / "cache")
    assert done.returncode == 0, done.stderr
    new = state.digest("3.13.8-slim-bookworm")
    assert dockerfile.read_text() == (
        f"FROM {plain_registry.host}/library/python:3.13.8-slim-bookworm@{new}\n"
    )


def test_query_and_latest(registry: Registry, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    host = registry.host
    ref = portside(
        "query",
        f"{host}/library/python where version ~ 3.13 and variant = slim-bookworm "
        "and platform = linux/arm64 limit 1",
        "--ref",
        cwd=tmp_path,
        cache=cache,
    )
    assert ref.returncode == 0, ref.stderr
    line = ref.stdout.strip()
    assert line.startswith(f"{host}/library/python:3.13.") and "-slim-bookworm@sha256:" in line
    tag = line.split(":", 2)[-1].split("@")[0]
    assert line.endswith(registry.seeded["library/python"].digest(tag))

    nothing = portside(
        "query", f"{host}/library/python where tag = nope", cwd=tmp_path, cache=cache
    )
    assert nothing.returncode == 1
    assert "no image matches" in nothing.stderr

    syntax = portside("query", f"{host}/library/python where version >", cwd=tmp_path, cache=cache)
    assert syntax.returncode == 2
    assert "^" in syntax.stderr
    assert "Traceback" not in syntax.stderr

    latest = portside(
        "latest", f"{host}/library/python:3.12-slim", "--json", cwd=tmp_path, cache=cache
    )
    assert latest.returncode == 0, latest.stderr
    doc = json.loads(latest.stdout)
    as_ref = portside(
        "latest", f"{host}/library/python:3.12-slim", "--ref", cwd=tmp_path, cache=cache
    )
    assert as_ref.returncode == 0, as_ref.stderr
    assert as_ref.stdout.strip() == doc["reference"]
    assert doc["reference"].endswith(f":{doc['tag']}@{doc['digest']}")
    # The newest two-part -slim release of the repository, computed from the tags.
    tags = registry.seeded["library/python"].tags
    slim = [t for t in tags if t.endswith("-slim") and t.count(".") == 1 and "rc" not in t]
    newest = max(slim, key=lambda t: tuple(int(n) for n in t.split("-")[0].split(".")))
    assert doc["tag"] == newest
    assert doc["digest"] == tags[newest]


def test_push_copies_between_registries(
    registry: Registry, plain_registry: Registry, tmp_path: Path
) -> None:
    from harness.skopeo import Skopeo

    source = f"{registry.host}/library/alpine:3.22"
    dest = f"{plain_registry.host}/mirror/alpine"
    dry = portside("push", source, f"{dest}:3.22", "--dry-run", cwd=tmp_path, cache=tmp_path / "c")
    assert dry.returncode == 0, dry.stderr
    skopeo = Skopeo.for_registry(plain_registry)
    assert plain_registry.repositories_on_disk() == []
    done = portside(
        "push", "--json", source, f"{dest}:3.22", f"{dest}:3", cwd=tmp_path, cache=tmp_path / "c"
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True
    digest = registry.seeded["library/alpine"].digest("3.22")
    assert report["digest"] == digest
    assert sorted(skopeo.list_tags(dest)) == ["3", "3.22"]
    assert skopeo.digest(f"{dest}:3") == digest


def test_lsp_verb_starts_the_language_server(tmp_path: Path) -> None:
    """`portside lsp` hands over to the server: it answers an LSP initialize on stdio."""
    message = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}}
    )
    exit_message = json.dumps({"jsonrpc": "2.0", "method": "exit"})
    payload = "".join(
        f"Content-Length: {len(m.encode())}\r\n\r\n{m}" for m in (message, exit_message)
    )
    env = {**os.environ, "PORTSIDE_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-m", "portside", "lsp"],
        input=payload.encode(),
        capture_output=True,
        timeout=60,
        env=env,
        check=False,
    )
    header, _, rest = done.stdout.partition(b"\r\n\r\n")
    length = int(header.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    reply = json.loads(rest[:length])
    assert reply["id"] == 1
    assert "completionProvider" in reply["result"]["capabilities"]


def test_check_reports_a_pinned_digest_that_does_not_exist_as_not_found(
    tmp_path: Path, registry: Registry
) -> None:
    # The same core rule as the language server: missing, not "the image was rebuilt".
    zero = "sha256:" + "0" * 64
    (tmp_path / "Dockerfile").write_text(
        f"FROM {registry.host}/library/python:3.13@{zero}\n",
        encoding="utf-8",
    )
    done = portside("check", "--json", cwd=tmp_path, cache=tmp_path / "cache")
    assert done.returncode == 1, done.stderr
    findings = json.loads(done.stdout)
    assert [f["kind"] for f in findings] == ["not-found"]
    assert "digest sha256:000000000000" in findings[0]["message"]


def test_check_reports_an_unclosed_substitution_as_a_syntax_error(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("ARG PY=3.12\nFROM python:${PY AS build\n")
    done = portside("check", "--offline", cwd=tmp_path, cache=tmp_path / "cache")
    assert done.returncode == 1, done.stderr
    assert "Dockerfile:2:6: error [invalid-reference]" in done.stdout
    assert "BuildKit rejects this line" in done.stdout
    assert "unresolved" not in done.stdout
