"""The native builder against a real registry: base mounted or streamed, reproducible,
multi-platform, verified with skopeo."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path
from typing import Any

import pytest

from harness.dockerconfig import write_docker_config
from harness.project import make_project
from harness.registry import Registry, RegistryFactory
from harness.seed import build_index, push_image
from harness.skopeo import Skopeo, SkopeoError
from portside.build import BuildRequest, available_builders, get_builder
from portside.build.base import BuildError, BuilderUnavailable
from portside.build.layout import platform_key
from portside.build.native import NativeBuilder
from portside.plugins import create_plugin_manager
from portside.publish import load_image_config
from portside.reference import Digest

EPOCH = 1_700_000_000


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
    assert target.username is not None and target.password is not None
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


# -- dependencies, hermetically: a local wheelhouse through pip-args ---------------------


def write_wheel(
    wheelhouse: Path, name: str, version: str, files: dict[str, str], tag: str = "py3-none-any"
) -> Path:
    """A minimal but valid wheel written by hand (no network, no build backend)."""
    import base64
    import hashlib
    import zipfile

    wheelhouse.mkdir(parents=True, exist_ok=True)
    dist_info = f"{name}-{version}.dist-info"
    contents = dict(files)
    contents[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    contents[f"{dist_info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: portside-tests\nRoot-Is-Purelib: "
        f"{'true' if tag.endswith('-any') else 'false'}\nTag: {tag}\n"
    )
    record = []
    for path, text in contents.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{dist_info}/RECORD,,")
    contents[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"
    wheel = wheelhouse / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in sorted(contents.items()):
            info = zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, text)
    return wheel


def make_app_with_dep(root: Path, dependency: str) -> Path:
    """``hello`` again, now importing (and depending on) ``dependency``."""
    make_project(root)
    module = dependency.split(">")[0].split("=")[0].strip()
    (root / "hello" / "__init__.py").write_text(f"from {module} import WORD as GREETING\n")
    pyproject = root / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            'version = "1.4.2"\n', f'version = "1.4.2"\ndependencies = ["{dependency}"]\n'
        )
    )
    return root


def tinydep_wheelhouse(root: Path) -> Path:
    write_wheel(
        root,
        "tinydep",
        "0.3.0",
        {"tinydep/__init__.py": 'WORD = "hello from tinydep"\n', "tinydep/util.py": "X = 1\n"},
    )
    return root


def pulled_layers(skopeo: Skopeo, ref: str, out: Path) -> tuple[list[dict[str, Any]], Path]:
    """Copy ``ref`` (one platform manifest) to an OCI layout; its layer descriptors and
    the layout's blob directory."""
    skopeo.run("copy", *skopeo._transport_flags("src-"), f"docker://{ref}", f"oci:{out}")
    index = json.loads((out / "index.json").read_text())
    blobs = out / "blobs" / "sha256"
    digest = index["manifests"][0]["digest"].split(":", 1)[1]
    manifest = json.loads((blobs / digest).read_text())
    return manifest["layers"], blobs


def layer_members(blobs: Path, digest: str) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(blobs / digest.split(":", 1)[1], mode="r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def check_importable(blobs: Path, layers: list[dict[str, Any]], root: Path) -> str:
    """Unpack the layers portside added and run the app the way the image would."""
    root.mkdir()
    for layer in layers:
        with tarfile.open(blobs / layer["digest"].split(":", 1)[1], mode="r:gz") as tar:
            tar.extractall(root, filter="data")
    done = subprocess.run(
        [sys.executable, "-m", "hello"],
        env={"PYTHONPATH": str(root / "app"), "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return done.stdout.strip()


async def test_native_installs_dependencies_from_a_local_wheelhouse(
    plain_registry: Registry, tmp_path: Path
) -> None:
    seed_base(plain_registry)
    wheelhouse = tinydep_wheelhouse(tmp_path / "wheelhouse")
    app = make_app_with_dep(tmp_path / "app", "tinydep>=0.2")
    (app / "pyproject.toml").write_text(
        (app / "pyproject.toml").read_text()
        + textwrap.dedent(
            f"""
            [tool.portside.image]
            base = "{plain_registry.ref("base/python", "3.12")}"
            destinations = ["{plain_registry.ref("team/hello")}"]
            platforms = ["linux/amd64"]
            pip-args = ["--no-index", "--find-links", "{wheelhouse}"]
            """
        )
    )
    # The dependency reaches pip only through the configured pip-args.
    config = load_image_config(app)
    assert config.pip_args == ("--no-index", "--find-links", str(wheelhouse))
    request = BuildRequest(
        context=app,
        target=config.destinations[0],
        base=config.base,
        platforms=config.platforms,
        pip_args=config.pip_args,
        source_date_epoch=EPOCH,
        work_dir=tmp_path,
    )
    first = await NativeBuilder().build(request)
    second = await NativeBuilder().build(request)
    assert first.digest == second.digest  # the dependency layer is reproducible too

    skopeo = Skopeo.for_registry(plain_registry)
    index = skopeo.inspect_raw_json(f"{plain_registry.host}/team/hello@{first.digest}")
    (child,) = index["manifests"]
    ref = f"{plain_registry.host}/team/hello@{child['digest']}"
    image_config = skopeo.inspect_config(ref)
    assert image_config["architecture"] == "amd64"
    layers, blobs = pulled_layers(skopeo, ref, tmp_path / "oci")
    deps, app_layer = layers[-2:]
    # The config's diff_ids are the uncompressed layers, in order.
    for layer, diff_id in zip(layers, image_config["rootfs"]["diff_ids"], strict=True):
        with gzip.open(blobs / layer["digest"].split(":", 1)[1]) as raw:
            assert "sha256:" + hashlib.sha256(raw.read()).hexdigest() == diff_id

    members = layer_members(blobs, deps["digest"])
    assert "app/tinydep/__init__.py" in members
    assert "app/tinydep/util.py" in members
    assert "app/tinydep-0.3.0.dist-info/METADATA" in members
    assert not any(name.startswith("app/hello") for name in members)
    assert list(members) == sorted(members)
    assert {(m.mtime, m.uid, m.gid, m.uname) for m in members.values()} == {(EPOCH, 0, 0, "")}
    app_members = layer_members(blobs, app_layer["digest"])
    assert "app/hello/__init__.py" in app_members
    assert not any(name.startswith("app/tinydep") for name in app_members)
    # /app is on PYTHONPATH and the app finds its dependency there.
    assert "PYTHONPATH=/app" in image_config["config"]["Env"]
    assert check_importable(blobs, [deps, app_layer], tmp_path / "rootfs") == "hello from tinydep"

    # Another SOURCE_DATE_EPOCH is another dependency layer (the mtimes are in it).
    later = await NativeBuilder().build(dataclasses.replace(request, source_date_epoch=EPOCH + 1))
    assert later.digest != first.digest


async def test_native_missing_dependency_is_a_clear_error(
    plain_registry: Registry, tmp_path: Path
) -> None:
    seed_base(plain_registry)
    wheelhouse = tinydep_wheelhouse(tmp_path / "wheelhouse")
    app = make_app_with_dep(tmp_path / "app", "nosuchdep-portside>=1")
    with pytest.raises(BuildError) as caught:
        await NativeBuilder().build(
            BuildRequest(
                context=app,
                target=plain_registry.ref("team/hello"),
                base=plain_registry.ref("base/python", "3.12"),
                platforms=("linux/amd64",),
                pip_args=("--no-index", "--find-links", str(wheelhouse)),
                source_date_epoch=EPOCH,
                work_dir=tmp_path,
            )
        )
    message = str(caught.value)
    assert "dependencies linux/amd64" in message
    assert "nosuchdep-portside" in message
    assert "Traceback" not in message
    # Nothing was written: the repository has no manifest at all.
    assert list((tmp_path).glob("native-*")) == []
    with pytest.raises(SkopeoError):
        Skopeo.for_registry(plain_registry).list_tags(f"{plain_registry.host}/team/hello")


async def test_native_multi_platform_with_a_pure_dependency(
    plain_registry: Registry, tmp_path: Path
) -> None:
    seed_base(plain_registry)
    wheelhouse = tinydep_wheelhouse(tmp_path / "wheelhouse")
    app = make_app_with_dep(tmp_path / "app", "tinydep")
    result = await NativeBuilder().build(
        BuildRequest(
            context=app,
            target=plain_registry.ref("team/hello"),
            base=plain_registry.ref("base/python", "3.12"),
            pip_args=("--no-index", "--find-links", str(wheelhouse)),
            source_date_epoch=EPOCH,
            work_dir=tmp_path,
        )
    )
    assert set(result.platform_digests) == {"linux/amd64", "linux/arm64/v8"}

    skopeo = Skopeo.for_registry(plain_registry)
    index = skopeo.inspect_raw_json(f"{plain_registry.host}/team/hello@{result.digest}")
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    dep_digests = set()
    for n, entry in enumerate(index["manifests"]):
        ref = f"{plain_registry.host}/team/hello@{entry['digest']}"
        config = skopeo.inspect_config(ref)
        assert config["architecture"] == entry["platform"]["architecture"]
        assert result.platform_digests[platform_key(entry["platform"])] == Digest.parse(
            entry["digest"]
        )
        layers, blobs = pulled_layers(skopeo, ref, tmp_path / f"oci-{n}")
        deps, app_layer = layers[-2:]
        dep_digests.add(deps["digest"])
        assert "app/tinydep/__init__.py" in layer_members(blobs, deps["digest"])
        assert check_importable(blobs, [deps, app_layer], tmp_path / f"root-{n}") == (
            "hello from tinydep"
        )
    assert {e["platform"]["architecture"] for e in index["manifests"]} == {"amd64", "arm64"}
    # Pure dependencies make one layer, shared by every platform.
    assert len(dep_digests) == 1


async def test_native_compiled_dependency_gets_each_platforms_wheel(
    plain_registry: Registry, tmp_path: Path
) -> None:
    """A dependency with per-platform wheels: each platform's layer holds its own wheel,
    and a platform with no wheel fails instead of silently getting the host's."""
    index = build_index("native-base", ["amd64", "arm64v8", "linux/arm/v7"])
    push_image(plain_registry, "base/python", index, ["3.12"])
    wheelhouse = tmp_path / "wheelhouse"
    for plat in ("manylinux2014_x86_64", "manylinux2014_aarch64"):
        write_wheel(
            wheelhouse,
            "tinydep",
            "0.3.0",
            {"tinydep/__init__.py": f'WORD = "{plat}"\n'},
            tag=f"py3-none-{plat}",
        )
    app = make_app_with_dep(tmp_path / "app", "tinydep")
    request = BuildRequest(
        context=app,
        target=plain_registry.ref("team/hello"),
        base=plain_registry.ref("base/python", "3.12"),
        platforms=("linux/amd64", "linux/arm64/v8"),
        pip_args=("--no-index", "--find-links", str(wheelhouse)),
        source_date_epoch=EPOCH,
        work_dir=tmp_path,
    )
    result = await NativeBuilder().build(request)
    skopeo = Skopeo.for_registry(plain_registry)
    top = skopeo.inspect_raw_json(f"{plain_registry.host}/team/hello@{result.digest}")
    seen = {}
    for n, entry in enumerate(top["manifests"]):
        ref = f"{plain_registry.host}/team/hello@{entry['digest']}"
        layers, blobs = pulled_layers(skopeo, ref, tmp_path / f"oci-{n}")
        seen[entry["platform"]["architecture"]] = check_importable(
            blobs, layers[-2:], tmp_path / f"root-{n}"
        )
    assert seen == {"amd64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}

    with pytest.raises(BuildError, match="dependencies linux/arm/v7"):
        await NativeBuilder().build(dataclasses.replace(request, platforms=("linux/arm/v7",)))
