"""The native builder against a real registry: base mounted or streamed, reproducible,
multi-platform, verified with skopeo."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from harness.dockerconfig import write_docker_config
from harness.registry import Registry, RegistryFactory
from harness.seed import build_index, push_image
from harness.skopeo import Skopeo
from portside.build import BuildRequest, available_builders, get_builder
from portside.build.base import BuilderUnavailable
from portside.build.native import NativeBuilder
from portside.plugins import create_plugin_manager

EPOCH = 1_700_000_000


def make_project(root: Path, version: str = "1.4.2") -> Path:
    """A tiny pure-Python project built with hatchling (already in the dev venv)."""
    (root / "hello").mkdir(parents=True)
    (root / "hello" / "__init__.py").write_text('GREETING = "hello"\n')
    (root / "hello" / "__main__.py").write_text("from hello import GREETING\nprint(GREETING)\n")
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["hatchling"]
            build-backend = "hatchling.build"

            [project]
            name = "hello"
            version = "{version}"
            """
        )
    )
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "app")


def seed_base(registry: Registry, repo: str = "base/python") -> str:
    index = build_index("native-base", ["amd64", "arm64v8"])
    pushed = push_image(registry, repo, index, ["3.12"])
    return pushed.digest


async def test_native_multi_platform_same_registry_is_reproducible(
    plain_registry: Registry, project: Path, tmp_path: Path
) -> None:
    base_digest = seed_base(plain_registry)
    events: list[tuple[str, str]] = []
    request = BuildRequest(
        context=project,
        target=plain_registry.ref("team/hello"),
        base=plain_registry.ref("base/python", "3.12"),
        labels={"org.example.team": "core"},
        env={"APP_MODE": "prod"},
        user="1000",
        workdir="/srv",
        source_date_epoch=EPOCH,
        work_dir=tmp_path,
    )
    builder = NativeBuilder()
    first = await builder.build(request, lambda s, m: events.append((s, m)))
    second = await builder.build(request)
    # Same inputs, same digest: layers and configs are byte-for-byte reproducible.
    assert first.digest == second.digest
    assert set(first.platform_digests) == {"linux/amd64", "linux/arm64/v8"}
    assert str(first.base_digest) == base_digest
    # Base layers were cross-mounted, never downloaded and re-uploaded.
    assert any("mounted" in m for s, m in events if s == "base layers")

    skopeo = Skopeo.for_registry(plain_registry)
    ref = f"{plain_registry.host}/team/hello@{first.digest}"
    assert skopeo.digest(ref) == str(first.digest)
    index = skopeo.inspect_raw_json(ref)
    assert {m["platform"]["architecture"] for m in index["manifests"]} == {"amd64", "arm64"}
    assert index["annotations"]["org.opencontainers.image.base.digest"] == base_digest
    config = skopeo.inspect_config(ref)
    assert config["config"]["Entrypoint"] == ["python", "-m", "hello"]
    assert "PYTHONPATH=/app" in config["config"]["Env"]
    assert "APP_MODE=prod" in config["config"]["Env"]
    assert config["config"]["User"] == "1000"
    assert config["config"]["WorkingDir"] == "/srv"
    assert config["config"]["Labels"]["org.example.team"] == "core"
    assert config["created"] == "2023-11-14T22:13:20Z"
    # skopeo can copy the whole image out (every blob is really there).
    skopeo.run("copy", "--all", "--src-tls-verify=false", f"docker://{ref}", f"oci:{tmp_path}/out")
    out_index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert out_index["manifests"][0]["digest"] == str(first.digest)


async def test_native_streams_base_from_another_registry(
    registry_factory: RegistryFactory,
    project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = registry_factory()
    target = registry_factory(auth="basic")
    seed_base(source)
    events: list[tuple[str, str]] = []
    write_docker_config(tmp_path / "dc", auths={target.host: (target.username, target.password)})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dc"))
    result = await NativeBuilder().build(
        BuildRequest(
            context=project,
            target=target.ref("team/hello"),
            base=source.ref("base/python", "3.12"),
            platforms=("linux/amd64",),
            source_date_epoch=EPOCH,
            work_dir=tmp_path,
        ),
        lambda s, m: events.append((s, m)),
    )
    assert any("copied" in m for s, m in events if s == "base layers")
    skopeo = Skopeo.for_registry(target)
    ref = f"{target.host}/team/hello@{result.digest}"
    manifest = skopeo.inspect_raw_json(ref)
    assert manifest["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert len(manifest["manifests"]) == 1
    child = f"{target.host}/team/hello@{manifest['manifests'][0]['digest']}"
    assert skopeo.inspect_config(child)["architecture"] == "amd64"


def test_unavailable_builder_names_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    pm = create_plugin_manager(load_entrypoints=False)
    status = available_builders(pm)
    assert status["native"] is None
    assert status["buildah"] is not None and "not on PATH" in status["buildah"]
    with pytest.raises(BuilderUnavailable) as caught:
        get_builder("buildah", pm)
    assert "not on PATH" in str(caught.value)
    assert "native" in (caught.value.hint or "")
    with pytest.raises(BuilderUnavailable, match="no builder called 'kaniko'"):
        get_builder("kaniko", pm)
