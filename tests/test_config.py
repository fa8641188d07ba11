"""Policy configuration from portside.toml / pyproject.toml, and Dockerfile discovery."""

from __future__ import annotations

from pathlib import Path

import pytest

from portside.config import PolicyConfig, load_config
from portside.discover import find_dockerfiles, is_dockerfile
from portside.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_when_no_file(tmp_path: Path) -> None:
    config = load_config(tmp_path)
    assert config == PolicyConfig()
    policy = config.for_image("docker.io/library/python", "python")
    assert policy.update_levels == ("major", "minor", "patch")
    assert not policy.require_digest
    assert config.registry_allowed("anything.example")


def test_pyproject_table_and_rules_merge_in_order(tmp_path: Path) -> None:
    write(
        tmp_path / "pyproject.toml",
        """
[project]
name = "x"

[tool.portside]
allowed-registries = ["docker.io", "ghcr.io"]
require-digest = true

[tool.portside.severity]
variant-update = "warning"

[[tool.portside.images]]
match = "docker.io/library/*"
update-levels = ["minor", "patch"]

[[tool.portside.images]]
match = "python"
ignore = ["stale"]
scheme = "default"
""",
    )
    config = load_config(tmp_path / "sub" / "Dockerfile")
    assert config.source == str((tmp_path / "pyproject.toml").resolve())
    python = config.for_image("docker.io/library/python", "python")
    assert python.update_levels == ("minor", "patch")
    assert python.ignores("stale") and not python.ignores("unpinned")
    assert python.scheme == "default"
    assert python.require_digest
    alpine = config.for_image("docker.io/library/alpine", "alpine")
    assert not alpine.ignores("stale")
    assert config.registry_allowed("ghcr.io")
    assert not config.registry_allowed("evil.example")
    assert config.severity_for("variant-update", "info") == "warning"


def test_portside_toml_wins_over_pyproject_in_the_same_folder(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool.portside]\nrequire-digest = true\n")
    write(tmp_path / "portside.toml", "require-digest = false\n")
    assert not load_config(tmp_path).require_digest


def test_pyproject_without_table_is_skipped(tmp_path: Path) -> None:
    write(tmp_path / "portside.toml", "require-digest = true\n")
    write(tmp_path / "app" / "pyproject.toml", "[project]\nname = 'app'\n")
    assert load_config(tmp_path / "app").require_digest


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[tool.portside]\nrequire-digets = true\n", "unknown setting 'require-digets'"),
        ("[tool.portside]\nupdate-levels = ['huge']\n", "unknown value 'huge'"),
        ("[tool.portside.severity]\nstale = 'loud'\n", "severity of 'stale'"),
        ("[[tool.portside.images]]\nignore = true\n", "needs a 'match' glob"),
        ("[tool.portside\n", "not valid TOML"),
        ("[tool.portside]\nrequire-digest = 'yes'\n", "must be true or false"),
        ("[tool.portside.pre-commit]\nfail-ont = []\n", "unknown setting 'fail-ont'"),
        ("[tool.portside.pre-commit]\nfail-on = 'error'\n", "must be a list of strings"),
        ("[tool.portside.pre-commit]\nrequire-network = 1\n", "must be true or false"),
    ],
)
def test_bad_config_names_the_problem(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path / "pyproject.toml", text)
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path)
    assert message in str(exc.value)
    assert "pyproject.toml" in str(exc.value)


def test_pre_commit_table(tmp_path: Path) -> None:
    write(
        tmp_path / "portside.toml",
        "[pre-commit]\nfail-on = ['not-found', 'stale-major']\nrequire-network = true\n",
    )
    config = load_config(tmp_path)
    assert config.fail_on == ("not-found", "stale-major")
    assert config.require_network is True
    assert load_config(tmp_path / "elsewhere").fail_on == ("not-found", "stale-major")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Dockerfile", True),
        ("dockerfile", True),
        ("Dockerfile.dev", True),
        ("api.Dockerfile", True),
        ("Containerfile", True),
        ("Containerfile.arm64", True),
        ("build.containerfile", True),
        ("Dockerfiles", False),
        ("README.md", False),
        ("docker-compose.yml", False),
    ],
)
def test_dockerfile_names(name: str, expected: bool) -> None:
    assert is_dockerfile(name) is expected


def test_find_dockerfiles_walks_and_skips(tmp_path: Path) -> None:
    write(tmp_path / "Dockerfile", "FROM x\n")
    write(tmp_path / "svc" / "api.Dockerfile", "FROM x\n")
    write(tmp_path / "node_modules" / "pkg" / "Dockerfile", "FROM x\n")
    write(tmp_path / ".git" / "Dockerfile", "FROM x\n")
    write(tmp_path / "notes.txt", "")
    found = find_dockerfiles([tmp_path, tmp_path / "Dockerfile"])
    assert found == [tmp_path / "Dockerfile", tmp_path / "svc" / "api.Dockerfile"]
