"""buildah and the Docker Engine API builder (through podman's service), end to end:
build from a FROM-scratch busybox Dockerfile, push with portside, check with skopeo."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.registry import Registry
from harness.skopeo import Skopeo
from portside.build import BuildError, BuildRequest
from portside.build._proc import write_containers_conf
from portside.build.buildah import BuildahBuilder
from portside.build.docker import DockerBuilder
from portside.publish import run_push


@pytest.fixture
def context(tmp_path: Path) -> Path:
    """FROM scratch + a busybox rootfs (there is no Docker Hub here), with a RUN step."""
    root = tmp_path / "ctx"
    bin_dir = root / "rootfs" / "bin"
    bin_dir.mkdir(parents=True)
    shutil.copy(shutil.which("busybox") or "", bin_dir / "busybox")
    for applet in ("sh", "echo", "cat", "ls"):
        (bin_dir / applet).symlink_to("busybox")
    (root / "Dockerfile").write_text(
        "FROM scratch\nCOPY rootfs/ /\nRUN echo built > /built.txt\n"
        'CMD ["/bin/cat", "/built.txt"]\n'
    )
    return root


async def test_buildah_build_and_push(
    context: Path, plain_registry: Registry, tmp_path: Path
) -> None:
    steps: list[str] = []
    result = await BuildahBuilder().build(
        BuildRequest(context=context, labels={"org.example.k": "v"}, work_dir=tmp_path),
        lambda s, m: steps.append(s),
    )
    assert "buildah bud" in steps
    assert result.layout is not None and result.kind == "oci-layout"
    assert not (Path(str(result.layout)).parent / "storage").exists()  # storage removed
    dest = plain_registry.ref("team/bb")
    report = await run_push(result, {dest: ["1.0.0", "latest"]})
    skopeo = Skopeo.for_registry(plain_registry)
    assert sorted(skopeo.list_tags(dest)) == ["1.0.0", "latest"]
    assert skopeo.digest(f"{dest}:latest") == str(result.digest) == report.digest
    assert skopeo.inspect_config(f"{dest}:1.0.0")["config"]["Labels"]["org.example.k"] == "v"


@pytest.fixture
def podman_service() -> Iterator[str]:
    """``podman system service`` on a unix socket, configured through its own files only
    (CONTAINERS_CONF, storage.conf, a private XDG_RUNTIME_DIR), stopped at teardown."""
    # podman refuses a runroot over 50 characters, and socket paths are short: /tmp/ps-*.
    base = Path(tempfile.mkdtemp(prefix="ps-", dir="/tmp"))
    runtime = base / "xdg"
    runtime.mkdir(parents=True, mode=0o700)
    conf = write_containers_conf(base)
    storage = base / "storage.conf"
    storage.write_text(
        f'[storage]\ndriver = "vfs"\nrunroot = "{base}/run"\ngraphroot = "{base}/root"\n'
    )
    registries = base / "registries.conf"
    registries.write_text("unqualified-search-registries = []\n")
    sock = runtime / "podman.sock"
    env = {
        **os.environ,
        "CONTAINERS_CONF": str(conf),
        "CONTAINERS_STORAGE_CONF": str(storage),
        "CONTAINERS_REGISTRIES_CONF": str(registries),
        "XDG_RUNTIME_DIR": str(runtime),
    }
    log = (base / "service.log").open("wb")
    proc = subprocess.Popen(
        ["podman", "--storage-driver", "vfs", "--root", f"{base}/root", "--runroot",
         f"{base}/run", "system", "service", "--time=0", f"unix://{sock}"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"podman service did not start: {(base / 'service.log').read_text()}")
            time.sleep(0.05)
        yield f"unix://{sock}"
    finally:
        # The whole session: the service and anything it started (conmon, runc).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        subprocess.run(["rm", "-rf", str(base)], check=False)


async def test_docker_builder_through_podman(
    context: Path, podman_service: str, basic_registry: Registry, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    builder = DockerBuilder(base_url=podman_service)
    assert builder.unavailable_reason() is None
    lines: list[str] = []
    result = await builder.build(
        BuildRequest(context=context, target="localhost/portside-test/bb", work_dir=tmp_path),
        lambda s, m: lines.append(m),
    )
    assert result.engine_image and result.layout is not None
    from harness.dockerconfig import write_docker_config

    auth = (basic_registry.username, basic_registry.password)
    write_docker_config(tmp_path / "dc", auths={basic_registry.host: auth})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dc"))
    dest = basic_registry.ref("team/engine")
    await run_push(result, {dest: ["2.0.0"]})
    skopeo = Skopeo.for_registry(basic_registry)
    assert skopeo.digest(f"{dest}:2.0.0") == str(result.digest)
    assert skopeo.inspect_config(f"{dest}:2.0.0")["config"]["Cmd"] == ["/bin/cat", "/built.txt"]

    # Pushing through the engine to a plain-HTTP registry it does not trust fails only
    # as an errorDetail in the stream: that must raise, not pass silently.
    with pytest.raises(BuildError, match="engine push"):
        await builder.push_via_engine(result.engine_image, f"{basic_registry.host}/team/x:1")
    assert "x" not in [t.split("/")[-1] for t in skopeo.list_tags(dest)]


def test_docker_builder_unavailable_says_why() -> None:
    reason = DockerBuilder(base_url="unix:///nonexistent/podman.sock").unavailable_reason()
    assert reason is not None and "nonexistent" in reason
