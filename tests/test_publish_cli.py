"""``portside build/push/publish`` from the command line: progress (piped and on a
terminal), complete dry runs that change nothing, and bad input that ends as one clear
error naming the step and destination, with no tag moved anywhere and no traceback.

Real parts only: registries, the fault proxy, a tmpfs for a full disk, skopeo to check.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_build_native import make_project, seed_base
from test_publish import make_layout

import portside.publish as publish
from harness.dockerconfig import write_docker_config
from harness.proxy import FaultProxy
from harness.registry import Registry, RegistryFactory
from harness.skopeo import Skopeo, SkopeoError
from harness.terminal import run_in_pty
from portside import cli

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")

# Runs the CLI and reports afterwards whether rich was imported.
RUNNER = textwrap.dedent(
    """\
    import sys
    from portside.cli import main
    code = main(sys.argv[1:])
    sys.stderr.write(f"\\nRICH_IMPORTED={'rich' in sys.modules}\\n")
    sys.exit(code)
    """
)


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """An environment with no credentials of the host and a private cache."""
    (tmp_path / "no-creds").mkdir()
    env = dict(os.environ)
    env.update(
        DOCKER_CONFIG=str(tmp_path / "no-creds"),
        PORTSIDE_CACHE_DIR=str(tmp_path / "cache"),
        SOURCE_DATE_EPOCH="1700000000",
    )
    env.pop("PORTSIDE_DEBUG", None)
    return env


def run_cli(
    *args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The CLI with stdout and stderr piped (the non-terminal form)."""
    return subprocess.run(
        [sys.executable, "-c", RUNNER, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def repo_exists(registry: Registry, repo: str) -> bool:
    """Whether the registry's storage holds anything at all (blobs too) for ``repo``."""
    return (registry.root / "docker/registry/v2/repositories" / repo).exists()


def tags_of(registry: Registry, repo: str) -> list[str]:
    try:
        return Skopeo.for_registry(registry).list_tags(registry.ref(repo))
    except SkopeoError as exc:
        if re.search(r"404|not found|unknown", str(exc), re.I):
            return []  # no such repository
        raise


def assert_clean_failure(done: subprocess.CompletedProcess[str], code: int) -> str:
    """One ``portside: error:`` line, the given exit code, no traceback; the stderr."""
    assert done.returncode == code, (done.returncode, done.stderr)
    # No traceback of Portside's. A build tool's own log lines are relayed as progress
    # (``[wheel] ...``: pip shows the backend's traceback when the disk is full).
    assert not re.search(r"^Traceback", done.stderr, re.M), done.stderr
    assert "internal error" not in done.stderr
    errors_ = [line for line in done.stderr.splitlines() if line.startswith("portside: error:")]
    assert len(errors_) == 1, done.stderr
    return errors_[0]


def configure(
    project: Path,
    *,
    destinations: list[str],
    base: str | None = None,
    builder: str = "native",
    extra: str = "",
) -> Path:
    lines = ["", "[tool.portside.image]", f'builder = "{builder}"']
    if base:
        lines.append(f'base = "{base}"')
    lines.append("destinations = [" + ", ".join(f'"{d}"' for d in destinations) + "]")
    with (project / "pyproject.toml").open("a") as handle:
        handle.write("\n".join(lines) + "\n" + extra)
    return project


# -- progress ------------------------------------------------------------------------


def test_piped_progress_is_one_plain_line_per_step(
    plain_registry: Registry, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    layout = make_layout(tmp_path / "l", big=64 << 10)
    dest = plain_registry.ref("team/piped")
    done = run_cli("push", f"oci:{layout.root}", f"{dest}:1.0.0", f"{dest}:latest", env=cli_env)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line]
    assert "RICH_IMPORTED=False" in lines  # no terminal: rich is never imported
    assert "\x1b" not in done.stderr and "\r" not in done.stderr
    steps = [line for line in lines if not line.startswith("RICH_IMPORTED")]
    assert all(re.fullmatch(r"\[[a-z ]+(?: \S+)?\] .+", line) for line in steps), steps
    assert sum("uploaded" in line for line in steps) == 2  # the layer and the config
    assert f"[tag] {dest}:1.0.0 -> " in done.stderr and f"[tag] {dest}:latest -> " in done.stderr
    # Without --json, a summary for a person, like every verb's plain output.
    summary = done.stdout.splitlines()
    assert summary[0].startswith("pushed sha256:")
    assert summary[1].startswith(f"  {dest}: tagged 1.0.0, latest; uploaded 2 blob(s) (")
    assert not done.stdout.lstrip().startswith("{")
    again = run_cli(
        "push", "--json", f"oci:{layout.root}", f"{dest}:1.0.0", f"{dest}:latest", env=cli_env
    )
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["ok"] and sorted(report["tags_moved"]) == [f"{dest}:1.0.0", f"{dest}:latest"]
    assert report["digest"] == summary[0].removeprefix("pushed ")
    assert report["destinations"][0]["blobs_skipped"] == 2  # the second push uploads nothing


def test_terminal_progress_shows_rich_bars(
    plain_registry: Registry, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    layout = make_layout(tmp_path / "l", big=2 << 20)
    layer = layout.top().layers[0]
    dest = plain_registry.ref("team/tty")
    env = {**cli_env, "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "40"}
    env.pop("NO_COLOR", None)
    code, raw = run_in_pty(
        [sys.executable, "-c", RUNNER, "push", f"oci:{layout.root}", f"{dest}:1.0.0"],
        env,
        stderr_too=True,
    )
    text = ANSI.sub("", raw)
    assert code == 0, text
    assert "Traceback" not in text
    assert "RICH_IMPORTED=True" in text
    assert "\x1b[" in raw  # rich drew on the terminal
    # A bar for the layer: its label and the byte count rich shows when it completes.
    assert f"127.0.0.1:{plain_registry.port}/team/tty {layer.digest.short}" in text
    assert re.search(r"2\.\d/2\.\d MB", text), text
    assert f"{dest}:1.0.0 -> sha256:" in text  # the tag step, as a line above the bars
    assert tags_of(plain_registry, "team/tty") == ["1.0.0"]
    # The summary, not the JSON report, on a terminal.
    assert f"{dest}: tagged 1.0.0; uploaded 2 blob(s)" in text
    assert '"tags_moved"' not in text


# -- dry run -------------------------------------------------------------------------


def test_push_dry_run_lists_every_push_and_tag_and_changes_nothing(
    registry_factory: RegistryFactory, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    one, two = registry_factory(), registry_factory()
    layout = make_layout(tmp_path / "l")
    top = layout.top()
    blobs = [top.config, *top.layers]
    a, b = one.ref("team/app"), two.ref("mirror/app")
    done = run_cli(
        "push", "--dry-run", "--json", f"oci:{layout.root}", f"{a}:1.0.0", f"{a}:latest",
        f"{b}:1.0.0", env=cli_env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    plan = [line.removeprefix("[plan] ") for line in done.stderr.splitlines() if "[plan]" in line]
    for dest in (a, b):
        assert f"push {top.digest} to {dest}" in plan
        for blob in blobs:
            assert blob is not None
            assert f"  blob {blob.digest.short} ({blob.size} bytes): would upload" in plan
        assert f"  manifest {top.digest}: would write (untagged)" in plan
    for tag in (f"{a}:1.0.0", f"{a}:latest", f"{b}:1.0.0"):
        assert f"would tag {tag} -> {top.digest}" in plan
    assert plan[-1] == "dry run: nothing was written"
    report = json.loads(done.stdout)
    assert report["dry_run"] and report["tags_moved"] == []
    assert [d["blobs_uploaded"] for d in report["destinations"]] == [2, 2]
    # Nothing changed: no repository on either registry, and skopeo sees no tags.
    assert not repo_exists(one, "team/app") and not repo_exists(two, "mirror/app")
    assert tags_of(one, "team/app") == [] and tags_of(two, "mirror/app") == []


def test_publish_dry_run_native_shows_build_pushes_and_tags(
    registry_factory: RegistryFactory, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    reg, other = registry_factory(), registry_factory()
    base_digest = seed_base(reg)
    from harness.seed import build_image, push_image

    push_image(reg, "team/app", build_image("app-2.0.0"), ["2.0.0"])  # a newer release
    project = configure(
        make_project(tmp_path / "app", version="1.4.2"),
        destinations=[reg.ref("team/app"), other.ref("mirror/app")],
        base=reg.ref("base/python", "3.12"),
    )
    before = sorted(p.name for p in (reg.root / "docker/registry/v2/blobs").rglob("data"))
    done = run_cli("publish", "--dry-run", "--project", str(project), "--json", env=cli_env)
    assert done.returncode == 0, done.stderr
    plan = [line.removeprefix("[plan] ") for line in done.stderr.splitlines() if "[plan]" in line]
    assert any(
        "with the native builder from" in line and base_digest in line and "team/app" in line
        for line in plan
    ), plan
    assert f"would push the image to {other.ref('mirror/app')} " in "\n".join(plan) + " "
    # 2.0.0 exists on the first: latest stays there; the mirror gets all four.
    tagged = [line for line in plan if line.startswith("would tag ")]
    assert tagged == [
        f"would tag {reg.ref('team/app')}:1.4.2",
        f"would tag {reg.ref('team/app')}:1.4",
        f"would tag {reg.ref('team/app')}:1",
        f"would tag {other.ref('mirror/app')}:1.4.2",
        f"would tag {other.ref('mirror/app')}:1.4",
        f"would tag {other.ref('mirror/app')}:1",
        f"would tag {other.ref('mirror/app')}:latest",
    ]
    assert plan[-1] == "dry run: nothing was built or written"
    assert json.loads(done.stdout)["dry_run"] is True
    assert tags_of(reg, "team/app") == ["2.0.0"] and not repo_exists(other, "mirror/app")
    after = sorted(p.name for p in (reg.root / "docker/registry/v2/blobs").rglob("data"))
    assert after == before  # not one blob written


# -- bad input -----------------------------------------------------------------------


def test_unknown_builder(plain_registry: Registry, tmp_path: Path, cli_env: dict[str, str]) -> None:
    project = configure(
        make_project(tmp_path / "app"), destinations=[plain_registry.ref("team/app")],
        builder="kaniko",
    )  # fmt: skip
    done = run_cli("publish", "--project", str(project), env=cli_env)
    error = assert_clean_failure(done, 2)
    assert "build: no builder called 'kaniko'" in error
    assert "nothing was pushed and no tag was moved" in error
    assert "portside: hint: available here:" in done.stderr and "native" in done.stderr
    assert not repo_exists(plain_registry, "team/app")


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_unreadable_dockerfile(
    plain_registry: Registry, tmp_path: Path, cli_env: dict[str, str], kind: str
) -> None:
    project = make_project(tmp_path / "app")
    if kind == "directory":
        (project / "Dockerfile.bad").mkdir()
    configure(
        project, destinations=[plain_registry.ref("team/app")], builder="buildah",
        extra='dockerfile = "Dockerfile.bad"\n',
    )  # fmt: skip
    done = run_cli("publish", "--project", str(project), env=cli_env)
    error = assert_clean_failure(done, 1)
    reason = "No such file or directory" if kind == "missing" else "Is a directory"
    assert f"build: buildah: cannot read the Dockerfile {project}/Dockerfile.bad: {reason}" in error
    assert "nothing was pushed" in error
    assert not repo_exists(plain_registry, "team/app")


def test_base_image_not_found(
    plain_registry: Registry, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    project = configure(
        make_project(tmp_path / "app"), destinations=[plain_registry.ref("team/app")],
        base=plain_registry.ref("base/nothing", "3.12"),
    )  # fmt: skip
    start = time.monotonic()
    done = run_cli("publish", "--project", str(project), env=cli_env)
    error = assert_clean_failure(done, 1)
    assert f"build: native: base image {plain_registry.ref('base/nothing', '3.12')} not found" in (
        error
    )
    assert time.monotonic() - start < 15  # found out before building the wheel
    assert "[wheel]" not in done.stderr
    assert not repo_exists(plain_registry, "team/app")


def test_publish_with_refused_credentials_moves_nothing(
    plain_registry: Registry,
    basic_registry: Registry,
    tmp_path: Path,
    cli_env: dict[str, str],
) -> None:
    seed_base(plain_registry)
    # Credentials for the second destination, but the wrong password: refused.
    write_docker_config(tmp_path / "dc", auths={basic_registry.host: ("portside", "wrong")})
    env = {**cli_env, "DOCKER_CONFIG": str(tmp_path / "dc")}
    project = configure(
        make_project(tmp_path / "app"),
        destinations=[plain_registry.ref("team/app"), basic_registry.ref("team/app")],
        base=plain_registry.ref("base/python", "3.12"),
    )
    done = run_cli("publish", "--project", str(project), "--json", str(tmp_path / "r.json"),
                   env=env)  # fmt: skip
    error = assert_clean_failure(done, 4)
    assert f"tags of {basic_registry.ref('team/app')}:" in error
    assert "nothing was pushed and no tag was moved" in error
    report = json.loads((tmp_path / "r.json").read_text())
    assert not report["ok"] and report["tags_moved"] == []
    assert not repo_exists(plain_registry, "team/app")  # the first got nothing at all
    assert tags_of(plain_registry, "team/app") == []


def test_push_with_refused_credentials_tags_no_destination(
    plain_registry: Registry,
    basic_registry: Registry,
    tmp_path: Path,
    cli_env: dict[str, str],
) -> None:
    layout = make_layout(tmp_path / "l")
    good, refused = plain_registry.ref("team/app"), basic_registry.ref("team/app")
    done = run_cli(
        "push", "--json", f"oci:{layout.root}", f"{good}:1.0.0", f"{good}:latest",
        f"{refused}:1.0.0", env=cli_env,  # no credentials at all for the basic-auth registry
    )  # fmt: skip
    error = assert_clean_failure(done, 4)
    assert f"push to {refused}:" in error and "no tag was moved" in error
    report = json.loads(done.stdout)
    assert not report["ok"] and report["tags_moved"] == []
    assert report["destinations"][0]["error"] is None
    assert report["destinations"][1]["error"].startswith(f"push to {refused}:")
    assert tags_of(plain_registry, "team/app") == []
    # Once the credentials are there, the same push finishes (the first skips every blob).
    auth = (basic_registry.username or "", basic_registry.password or "")
    write_docker_config(tmp_path / "dc", auths={basic_registry.host: auth})
    again = run_cli(
        "push", "--json", f"oci:{layout.root}", f"{good}:1.0.0", f"{good}:latest",
        f"{refused}:1.0.0", env={**cli_env, "DOCKER_CONFIG": str(tmp_path / "dc")},
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["destinations"][0]["bytes_uploaded"] == 0
    assert sorted(tags_of(plain_registry, "team/app")) == ["1.0.0", "latest"]
    assert tags_of(basic_registry, "team/app") == ["1.0.0"]


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: writing more fails with ENOSPC, as on a full disk."""
    where = tmp_path / "full"
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_disk_full_during_build(
    plain_registry: Registry, tmp_path: Path, cli_env: dict[str, str], full_disk: Path
) -> None:
    seed_base(plain_registry)
    project = make_project(tmp_path / "app")
    (project / "hello" / "data.bin").write_bytes(os.urandom(3 << 20))  # > the 1 MiB disk
    configure(
        project, destinations=[plain_registry.ref("team/app")],
        base=plain_registry.ref("base/python", "3.12"),
    )  # fmt: skip
    done = run_cli("publish", "--project", str(project), env={**cli_env, "TMPDIR": str(full_disk)})
    error = assert_clean_failure(done, 1)
    assert "build: native: wheel: the disk holding" in error
    assert "is full (No space left on device)" in error and "nothing was pushed" in error
    assert "portside: hint: free some space, or point TMPDIR at a bigger disk" in done.stderr
    assert not repo_exists(plain_registry, "team/app")


async def _seed_source(registry: Registry, tmp_path: Path) -> tuple[str, str]:
    layout = make_layout(tmp_path / "src", big=3 << 20)
    ref = registry.ref("src/app")
    report = await publish.run_push(f"oci:{layout.root}", {ref: ["1.0.0"]})
    return report.digest, str(layout.top().layers[0].digest)


@pytest.mark.parametrize("drops", [1, None], ids=["once-completes", "always-fails-cleanly"])
async def test_connection_dropped_mid_copy_between_registries(
    registry_factory: RegistryFactory,
    proxy_factory: Callable[..., FaultProxy],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    drops: int | None,
) -> None:
    source, target = registry_factory(), registry_factory()
    digest, layer = await _seed_source(source, tmp_path)
    src_proxy = proxy_factory(source)
    dest_proxy = proxy_factory(target)  # records the upload, changes nothing
    # The source cuts the layer's download after 2.5 MiB: with 1 MiB chunks, two PATCHes
    # have reached the target by then, so the copy breaks mid-upload.
    src_proxy.drop_after("GET", f"/blobs/{layer}", (5 << 20) // 2, times=drops)
    monkeypatch.setattr(publish, "CHUNK_SIZE", 1 << 20)
    monkeypatch.setenv("PORTSIDE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-creds"))
    src = f"127.0.0.1:{src_proxy.port}/src/app:1.0.0"
    dest = f"127.0.0.1:{dest_proxy.port}/team/app"
    code = await _main_in_thread(["push", "--json", src, f"{dest}:1.0.0", f"{dest}:latest"])
    out, err = capsys.readouterr()
    layer_gets = [r for r in src_proxy.requests if r.method == "GET" and layer in r.path]
    patches = [r for r in dest_proxy.requests if r.method == "PATCH"]
    assert "Traceback" not in err and "internal error" not in err
    if drops == 1:
        assert code == 0, err
        assert len(layer_gets) == 2 and len(patches) >= 5  # 2 before the cut, 3 after
        skopeo = Skopeo.for_registry(target)
        assert skopeo.digest(target.ref("team/app", "1.0.0")) == digest
        assert sorted(skopeo.list_tags(target.ref("team/app"))) == ["1.0.0", "latest"]
        # Every byte arrived intact: skopeo copies it out, verifying every digest.
        copied = target.ref("team/app", "1.0.0")
        skopeo.run("copy", "--src-tls-verify=false", f"docker://{copied}", f"oci:{tmp_path}/out")
    else:
        assert code == 5, err
        assert len(layer_gets) == publish.COPY_ATTEMPTS and len(patches) >= 2
        error = next(line for line in err.splitlines() if line.startswith("portside: error:"))
        assert f"push to {dest}:" in error and "connection broke while reading blob" in error
        assert "no tag was moved" in error
        assert json.loads(out)["tags_moved"] == []
        assert tags_of(target, "team/app") == []
        # Nothing half-written is visible: no manifest, the broken upload was cancelled.
        assert "team/app" not in target.repositories_on_disk()


async def _main_in_thread(argv: list[str]) -> int:
    """``cli.main`` runs its own event loop: call it from a thread of this test's loop."""
    import asyncio

    return await asyncio.to_thread(cli.main, argv)


def test_build_and_publish_piped_end_to_end(
    registry_factory: RegistryFactory, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    reg, other = registry_factory(), registry_factory()
    seed_base(reg)
    project = configure(
        make_project(tmp_path / "app", version="1.4.2"),
        destinations=[reg.ref("team/app"), other.ref("mirror/app")],
        base=reg.ref("base/python", "3.12"),
        extra='platforms = ["linux/amd64"]\n',
    )
    built = run_cli("build", "--project", str(project), "--json", env=cli_env)
    assert built.returncode == 0, built.stderr
    assert "[base] resolving" in built.stderr and "[native] wrote" in built.stderr
    assert json.loads(built.stdout)["kind"] == "registry"
    assert tags_of(reg, "team/app") == []  # a build never tags
    done = run_cli("publish", "--project", str(project), "--json", env=cli_env)
    assert done.returncode == 0, done.stderr
    assert "RICH_IMPORTED=False" in done.stderr and "\x1b" not in done.stderr
    report = json.loads(done.stdout)
    digest = report["digest"]
    for registry, repo in ((reg, "team/app"), (other, "mirror/app")):
        assert sorted(tags_of(registry, repo)) == ["1", "1.4", "1.4.2", "latest"]
        for tag in ("1.4.2", "latest"):
            assert f"[tag] {registry.ref(repo)}:{tag} -> {digest}" in done.stderr
        assert Skopeo.for_registry(registry).digest(registry.ref(repo, "1.4.2")) == digest
    # The native build wrote the image to the first destination: the push there is free.
    assert report["destinations"][0]["bytes_uploaded"] == 0
    assert report["destinations"][1]["blobs_uploaded"] > 0

    # Without --json: a summary for a person, as every verb prints; --json FILE writes
    # the report there and still prints the summary.
    summary = run_cli("build", "--project", str(project), env=cli_env)
    assert summary.returncode == 0, summary.stderr
    lines = summary.stdout.splitlines()
    assert re.fullmatch(r"built sha256:[0-9a-f]{64} with the native builder", lines[0]), lines
    assert lines[1].startswith(f"  image: {reg.ref('team/app')}@sha256:")
    assert any(
        line.startswith(f"  base: {reg.ref('base/python', '3.12')}@sha256:") for line in lines
    )
    again = run_cli("publish", "--project", str(project), "--json", str(tmp_path / "r.json"),
                    env=cli_env)  # fmt: skip
    assert again.returncode == 0, again.stderr
    written = json.loads((tmp_path / "r.json").read_text())
    assert written["ok"] is True
    lines = again.stdout.splitlines()
    assert lines[0] == f"pushed {written['digest']}"
    assert [line.split(":")[0] for line in lines[1:]] == [
        f"  {reg.ref('team/app')}".rsplit(":", 1)[0],
        f"  {other.ref('mirror/app')}".rsplit(":", 1)[0],
    ]
    assert all("already there" in line for line in lines[1:])
