"""The build plugins through the real tools: ``hatch build``, ``hatch publish -p
portside`` and ``python -m build`` (setuptools) on sample projects whose pyproject is the
README's snippet, against a real registry, checked with skopeo. The build backends
install ``portside`` from a wheel of this repository, as they would from PyPI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.images import build_index
from harness.readme import readme_snippet
from harness.registry import Registry
from harness.seed import push_image
from harness.skopeo import Skopeo, SkopeoError

# Each build installs its backend and portside into a fresh environment: generous.
pytestmark = pytest.mark.timeout(900)

REPO = "team/hello"
REPORT = "portside-publish.json"


@pytest.fixture(scope="session")
def hatch_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hatch-home")


@pytest.fixture
def build_env(
    tmp_path: Path, portside_wheelhouse: Path, hatch_home: Path, plain_registry: Registry
) -> dict[str, str]:
    """The environment of a release job: portside findable, no machine credentials."""
    links = " ".join(filter(None, [os.environ.get("PIP_FIND_LINKS"), str(portside_wheelhouse)]))
    env = {
        **os.environ,
        "PIP_FIND_LINKS": links,
        "UV_FIND_LINKS": str(portside_wheelhouse),
        "HATCH_DATA_DIR": str(hatch_home / "data"),
        "HATCH_CACHE_DIR": str(hatch_home / "cache"),
        "DOCKER_CONFIG": str(tmp_path / "no-docker-config"),
        "PORTSIDE_CACHE_DIR": str(tmp_path / "portside-cache"),
        "SOURCE_DATE_EPOCH": "1700000000",
    }
    for name in (
        "HATCH_BUILD_HOOK_ENABLE_PORTSIDE",
        "HATCH_BUILD_HOOKS_ENABLE",
        "PORTSIDE_PUBLISH",
    ):
        env.pop(name, None)
    return env


def seed_base(registry: Registry) -> None:
    push_image(registry, "base/python", build_index("plugin-base", ["amd64", "arm64v8"]), ["3.12"])


def make_project(root: Path, snippet: str, registry: Registry, version: str) -> Path:
    """The ``hello`` package with the README's pyproject snippet, pointed at ``registry``."""
    text = re.sub(r'(?m)^base = ".*"$', f'base = "{registry.ref("base/python", "3.12")}"', snippet)
    text = re.sub(r"(?m)^destinations = \[.*\]$", f'destinations = ["{registry.ref(REPO)}"]', text)
    assert registry.host in text, "the snippet no longer has base/destinations lines"
    text += f'\n[project]\nname = "hello"\nversion = "{version}"\nrequires-python = ">=3.10"\n'
    (root / "hello").mkdir(parents=True)
    (root / "hello" / "__init__.py").write_text('GREETING = "hello"\n')
    (root / "hello" / "__main__.py").write_text("from hello import GREETING\nprint(GREETING)\n")
    (root / "pyproject.toml").write_text(text)
    return root


def set_version(root: Path, version: str) -> None:
    path = root / "pyproject.toml"
    path.write_text(re.sub(r'(?m)^version = ".*"$', f'version = "{version}"', path.read_text()))


def run(
    argv: list[str], cwd: Path, env: dict[str, str], **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=cwd,
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def both(result: subprocess.CompletedProcess[str]) -> str:
    return f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def published_tags(registry: Registry) -> list[str]:
    try:
        return sorted(Skopeo.for_registry(registry).list_tags(registry.ref(REPO)))
    except SkopeoError:
        return []  # no such repository: nothing was published


def assert_published(
    registry: Registry, dist: Path, version: str, tags: list[str], *, earlier: tuple[str, ...] = ()
) -> None:
    """skopeo sees exactly ``tags`` (and ``earlier`` releases' tags), each of ``tags`` at
    the digest the report beside the wheel names."""
    report = json.loads((dist / REPORT).read_text())
    assert report["ok"] is True and report["dry_run"] is False
    assert published_tags(registry) == sorted([*tags, *earlier])
    skopeo = Skopeo.for_registry(registry)
    for tag in tags:
        assert skopeo.digest(registry.ref(REPO, tag)) == report["digest"]
    [destination] = report["destinations"]
    assert sorted(destination["tags_set"]) == sorted(tags)
    labels = skopeo.inspect(registry.ref(REPO, version), platform=("linux", "amd64", None))
    assert labels["Labels"]["org.opencontainers.image.version"] == version


def test_hatch_build_hook(
    tmp_path: Path, plain_registry: Registry, build_env: dict[str, str], hatch_bin: Path
) -> None:
    seed_base(plain_registry)
    project = make_project(
        tmp_path / "hello", readme_snippet("hatch-build-hook"), plain_registry, "1.4.2"
    )
    hatch = str(hatch_bin)

    plain = run([hatch, "build"], project, build_env)
    assert plain.returncode == 0, both(plain)
    assert sorted(p.name for p in (project / "dist").iterdir()) == [
        "hello-1.4.2-py3-none-any.whl",
        "hello-1.4.2.tar.gz",
    ]
    assert published_tags(plain_registry) == []  # disabled: nothing at all

    release = run([hatch, "build"], project, build_env, HATCH_BUILD_HOOK_ENABLE_PORTSIDE="1")
    assert release.returncode == 0, both(release)
    assert_published(plain_registry, project / "dist", "1.4.2", ["1.4.2", "1.4", "1", "latest"])
    # The native builder took the wheel hatch had just built: no second wheel build.
    assert "using hello-1.4.2-py3-none-any.whl" in release.stderr, both(release)
    assert "building the wheel" not in release.stderr
    report = json.loads((project / "dist" / REPORT).read_text())
    assert "Traceback" not in release.stderr

    # hatch asks enabled hooks only to clean: the same switch as for the build.
    cleaned = run([hatch, "clean"], project, build_env, HATCH_BUILD_HOOK_ENABLE_PORTSIDE="1")
    assert cleaned.returncode == 0, both(cleaned)
    assert not (project / "dist" / REPORT).exists()

    # A dev version is refused: the build fails in one line and nothing moves.
    set_version(project, "1.5.0.dev1")
    dev = run(
        [hatch, "build", "-t", "wheel"], project, build_env, HATCH_BUILD_HOOK_ENABLE_PORTSIDE="1"
    )
    assert dev.returncode != 0
    assert "portside: error: 1.5.0.dev1 is a development or local version" in dev.stderr
    assert "Traceback" not in dev.stderr
    assert published_tags(plain_registry) == ["1", "1.4", "1.4.2", "latest"]
    skopeo = Skopeo.for_registry(plain_registry)
    assert skopeo.digest(plain_registry.ref(REPO, "latest")) == report["digest"]


def test_hatch_build_hook_failure_is_one_line_and_publishes_nothing(
    tmp_path: Path, plain_registry: Registry, build_env: dict[str, str], hatch_bin: Path
) -> None:
    # No base image on the registry: the build fails before any tag moves.
    project = make_project(
        tmp_path / "hello", readme_snippet("hatch-build-hook"), plain_registry, "2.0.0"
    )
    failed = run(
        [str(hatch_bin), "build", "-t", "wheel"],
        project,
        build_env,
        HATCH_BUILD_HOOK_ENABLE_PORTSIDE="1",
    )
    assert failed.returncode != 0
    errors = [line for line in failed.stderr.splitlines() if line.startswith("portside: error:")]
    assert len(errors) == 1 and "base image" in errors[0] and "not found" in errors[0], both(failed)
    assert "Traceback" not in failed.stderr
    assert published_tags(plain_registry) == []
    report = json.loads((project / "dist" / REPORT).read_text())
    assert report["ok"] is False and report["destinations"][0]["tags_set"] == []


def test_hatch_config_switch_enables_the_hook(
    tmp_path: Path, plain_registry: Registry, build_env: dict[str, str], hatch_bin: Path
) -> None:
    """``enable-by-default = true`` written in the table (a release-only target's
    switch) enables the hook without the environment variable."""
    seed_base(plain_registry)
    snippet = readme_snippet("hatch-build-hook").replace(
        "enable-by-default = false", "enable-by-default = true"
    )
    project = make_project(tmp_path / "hello", snippet, plain_registry, "0.2.0")
    done = run([str(hatch_bin), "build", "-t", "wheel"], project, build_env)
    assert done.returncode == 0, both(done)
    assert_published(plain_registry, project / "dist", "0.2.0", ["0.2.0", "0.2", "0", "latest"])


def test_release_builds_reach_registries_as_portside_does(
    tmp_path: Path, tls_registry: Registry, build_env: dict[str, str], hatch_bin: Path
) -> None:
    """The build hook configures its registry client through the core function the
    command line uses: ``PORTSIDE_INSECURE_REGISTRIES`` lets it reach a registry whose
    certificate nothing trusts, as it lets ``portside publish``."""
    push_image(
        tls_registry,
        "base/python",
        build_index("tls-base", ["amd64", "arm64v8"]),
        ["3.12"],
        via="fs",
    )
    project = make_project(
        tmp_path / "hello", readme_snippet("hatch-build-hook"), tls_registry, "3.1.0"
    )
    build = [str(hatch_bin), "build", "-t", "wheel"]
    refused = run(build, project, build_env, HATCH_BUILD_HOOK_ENABLE_PORTSIDE="1")
    assert refused.returncode != 0
    errors = [line for line in refused.stderr.splitlines() if line.startswith("portside: error:")]
    assert len(errors) == 1 and tls_registry.host in errors[0], both(refused)
    assert published_tags(tls_registry) == []

    trusted = run(
        build,
        project,
        build_env,
        HATCH_BUILD_HOOK_ENABLE_PORTSIDE="1",
        PORTSIDE_INSECURE_REGISTRIES=f"other.example, {tls_registry.host}",
    )
    assert trusted.returncode == 0, both(trusted)
    assert_published(tls_registry, project / "dist", "3.1.0", ["3.1.0", "3.1", "3", "latest"])


def test_hatch_publisher(
    tmp_path: Path, plain_registry: Registry, build_env: dict[str, str], hatch_bin: Path
) -> None:
    seed_base(plain_registry)
    snippet = readme_snippet("hatch-build-hook").replace(
        "enable-by-default = false", "enable-by-default = false\npublish = false"
    )
    project = make_project(tmp_path / "hello", snippet, plain_registry, "3.1.0")
    steps = []  # the README's commands: (environment, argv)
    for line in readme_snippet("hatch-publisher").splitlines():
        words = line.removeprefix("$ ").split("#")[0].split()
        env = dict(w.split("=", 1) for w in words if re.fullmatch(r"[A-Z_]+=\S*", w))
        argv = [w for w in words if not re.fullmatch(r"[A-Z_]+=\S*", w)]
        if argv[:1] == ["hatch"]:
            steps.append((env, [str(hatch_bin), *argv[1:]]))
    assert [argv[1:3] for _, argv in steps] == [
        ["build", "-t"],
        ["publish", "-p"],
        ["publish", "-p"],
    ]
    (build_extra, build), (_, dry), (_, real) = steps

    built = run(build, project, build_env, **build_extra)
    assert built.returncode == 0, both(built)
    assert published_tags(plain_registry) == []  # built, not tagged: invisible
    record = json.loads((project / "dist" / "portside-build.json").read_text())
    assert record["version"] == "3.1.0"

    planned = run(dry, project, build_env)
    assert planned.returncode == 0, both(planned)
    for tag in ("3.1.0", "3.1", "3", "latest"):
        assert f"{plain_registry.ref(REPO)}:{tag}" in planned.stderr, both(planned)
    assert published_tags(plain_registry) == []  # the dry run changed nothing
    assert json.loads((project / "dist" / REPORT).read_text())["dry_run"] is True

    done = run(real, project, build_env)
    assert done.returncode == 0, both(done)
    assert_published(plain_registry, project / "dist", "3.1.0", ["3.1.0", "3.1", "3", "latest"])
    # Exactly the image built earlier: no second build.
    assert (
        json.loads((project / "dist" / REPORT).read_text())["digest"] == record["build"]["digest"]
    )

    # A dev version is refused when the image is built: nothing to publish, nothing moved.
    set_version(project, "3.2.0.dev0")
    dev = run(build, project, build_env, **build_extra)
    assert dev.returncode != 0 and "development or local version" in dev.stderr
    assert published_tags(plain_registry) == ["3", "3.1", "3.1.0", "latest"]

    # hatch clean (hook enabled) removes the record, the report and the image folder.
    run([str(hatch_bin), "clean"], project, build_env, **build_extra)
    left = {p.name for p in (project / "dist").iterdir()} if (project / "dist").exists() else set()
    assert not left & {"portside-build.json", REPORT, "portside-image"}
    missing = run(real, project, build_env)
    assert missing.returncode != 0
    assert "portside: error: no image was built for release" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_setuptools_build(
    tmp_path: Path, plain_registry: Registry, build_env: dict[str, str]
) -> None:
    seed_base(plain_registry)
    project = make_project(
        tmp_path / "hello", readme_snippet("setuptools"), plain_registry, "0.9.0"
    )
    build = [sys.executable, "-m", "build"]

    plain = run(build, project, build_env)
    assert plain.returncode == 0, both(plain)
    assert sorted(p.name for p in (project / "dist").iterdir()) == [
        "hello-0.9.0-py3-none-any.whl",
        "hello-0.9.0.tar.gz",
    ]
    assert published_tags(plain_registry) == []

    release = run(build, project, build_env, PORTSIDE_PUBLISH="1")
    assert release.returncode == 0, both(release)
    assert_published(plain_registry, project / "dist", "0.9.0", ["0.9.0", "0.9", "0", "latest"])

    set_version(project, "1.0.0+local.3")
    local = run([*build, "--wheel"], project, build_env, PORTSIDE_PUBLISH="1")
    assert local.returncode != 0
    assert "portside: error: 1.0.0+local.3 is a development or local version" in both(local)
    assert published_tags(plain_registry) == ["0", "0.9", "0.9.0", "latest"]

    # The config switch instead of the environment: a release-only pyproject.
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("publish = false", "publish = true"))
    set_version(project, "0.9.1")
    switched = run([*build, "--wheel"], project, build_env)
    assert switched.returncode == 0, both(switched)
    assert_published(
        plain_registry,
        project / "dist",
        "0.9.1",
        ["0.9.1", "0.9", "0", "latest"],
        earlier=("0.9.0",),
    )
