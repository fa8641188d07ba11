"""The daemon (``portside daemon``) and the launcher that hands it commands.

Every test runs real ``python -m portside`` processes against the real registry, with
a daemon of its own in a private runtime directory. What a user would check: a command
through the daemon prints, exits and fails exactly as it does in-process; it sees the
caller's directory, environment and terminal; Ctrl-C and a killed client stop it; a
daemon that is stale, foreign, silent or insecurely placed is never used; auto mode
starts one only when it helps and never in CI; nothing secret reaches its log.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import seed
from harness.images import build_artifact
from harness.registry import Registry
from harness.terminal import run_in_pty
from portside.launcher import CACHE_VERBS

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent


class Portside:
    """``python -m portside`` with a private runtime directory, cache and home."""

    def __init__(self, base: Path, runtime: Path) -> None:
        self.base = base
        self.runtime = runtime
        self.cache = base / "cache"
        self.home = base / "home"
        self.home.mkdir(exist_ok=True)

    def env(self, daemon: str = "on", **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PORTSIDE_", "REGISTRY_AUTH", "XDG_", "DOCKER_"))
        }
        env.pop("CI", None)
        env.update(
            PORTSIDE_DAEMON=daemon,
            PORTSIDE_RUNTIME_DIR=str(self.runtime),
            PORTSIDE_CACHE_DIR=str(self.cache),
            HOME=str(self.home),
            DOCKER_CONFIG=str(self.home / "no-docker-config"),
            PYTHONPATH=str(ROOT),
            COLUMNS="200",
        )
        env.update(extra)
        return env

    def run(
        self, *args: str, daemon: str = "on", cwd: Path | None = None, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        """``python -m portside ARGS``."""
        return self.python("-m", "portside", *args, daemon=daemon, cwd=cwd, **extra)

    def python(
        self, *args: str, daemon: str = "on", cwd: Path | None = None, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        """``python ARGS`` in this environment."""
        return subprocess.run(
            [sys.executable, *args],
            capture_output=True,
            text=True,
            env=self.env(daemon, **extra),
            cwd=cwd,
            timeout=60,
            check=False,
        )

    def popen(self, *args: str, **extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "portside", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env("on", **extra),
        )

    def status(self, **extra: str) -> dict[str, str]:
        """The daemon's status fields, or {} when none runs."""
        result = self.run("daemon", "status", **extra)
        if result.returncode != 0:
            return {}
        fields = {}
        for line in result.stdout.splitlines()[1:]:
            key, _, value = line.partition(": ")
            fields[key] = value
        return fields

    def served(self, **extra: str) -> int:
        return int(self.status(**extra).get("commands served", "-1"))

    def wait_for(self, predicate: object, what: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():  # type: ignore[operator]
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting until {what}")

    def pause(self) -> None:
        """As if the last command was long ago (see launcher._after_a_pause)."""
        os.utime(self.runtime / "last-command", (0, 0))

    def in_a_row(self) -> None:
        """As if another command had just started."""
        os.utime(self.runtime / "last-command")

    def log(self) -> str:
        return "".join(p.read_text() for p in self.runtime.glob("*.log"))


def _private_dir(prefix: str) -> Path:
    # Short (a unix socket path holds 108 bytes) and private, as the daemon requires.
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o700)
    return path


def _stop(portside: Portside) -> None:
    pid = portside.status().get("pid")
    portside.run("daemon", "stop")
    if pid is not None:  # a test that broke it: make sure it is gone
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


@pytest.fixture
def portside(tmp_path: Path) -> Iterator[Portside]:
    """No daemon yet; stopped (if one was started) at the end."""
    runtime = _private_dir("ps-d-")
    tool = Portside(tmp_path, runtime)
    try:
        yield tool
    finally:
        _stop(tool)
        shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture
def daemon(portside: Portside) -> Portside:
    """A running daemon, with its spare worker ready."""
    started = portside.run("daemon", "start")
    assert started.returncode == 0, started.stderr
    assert started.stdout.startswith("portside daemon: started (pid: "), started.stdout
    portside.wait_for(
        lambda: "ready" in portside.status().get("spare workers", ""), "a spare is ready"
    )
    return portside


def _same(a: subprocess.CompletedProcess[str], b: subprocess.CompletedProcess[str]) -> None:
    assert (a.returncode, a.stdout, a.stderr) == (b.returncode, b.stdout, b.stderr)


# -- the same command, the same answer ------------------------------------------------


def test_commands_through_the_daemon_answer_as_in_process(
    daemon: Portside, registry: Registry, tmp_path: Path
) -> None:
    repo = registry.ref("library/python")
    image = registry.ref("library/python", "3.13")
    commands = [
        ("tags", repo),
        ("tags", "--json", "--limit", "5", repo),
        ("inspect", image),
        ("inspect", "--json", "--platform", "linux/arm64", image),
        ("digest", image),
        ("latest", registry.ref("library/python", "3.12-slim")),
        ("inspect", "python::3"),  # exit 2: invalid reference
        ("tags", registry.ref("library/no-such-repository")),  # exit 3: not found
        ("inspect", "--platform", "plan9/mips", image),  # exit 3: no such platform
        ("tags", "--limit", "zero", repo),  # exit 2: argparse's usage error
    ]
    answered = 6  # the first six succeed
    for i, args in enumerate(commands):
        inline_cache = str(tmp_path / f"inline-{i}")
        daemon_cache = str(tmp_path / f"daemon-{i}")
        for state in ("cold", "warm", "warm after a pause"):
            served = daemon.served()
            in_process = daemon.run(*args, daemon="off", PORTSIDE_CACHE_DIR=inline_cache)
            if state == "warm after a pause":
                daemon.pause()
            else:
                daemon.in_a_row()
            through = daemon.run(*args, PORTSIDE_CACHE_DIR=daemon_cache)
            assert through.returncode in (0, 2, 3), (args, through.stderr)
            assert "Traceback" not in through.stderr
            _same(through, in_process)
            assert through.stdout or through.stderr, (args, state)
            if i < answered:
                # The daemon runs what needs the registry, and commands in a row. After
                # a pause a warm tags, inspect or digest is answered from the cache in
                # the command's own process: no idle process to wake.
                in_place = state == "warm after a pause" and args[0] in CACHE_VERBS
                assert daemon.served() == served + (0 if in_place else 1), (args, state)
    # The worker honoured each command's own cache directory.
    assert any((tmp_path / "daemon-0").rglob("*.json"))


def test_worker_works_in_the_callers_directory_and_environment(
    daemon: Portside, registry: Registry, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "Dockerfile").write_text(f"FROM {registry.host}/library/python:3.13\n")
    # The project's own settings, found from the working directory: unpinned is a
    # warning here instead of the default info.
    (project / "pyproject.toml").write_text(
        "[tool.portside]\nrequire-digest = true\n", encoding="utf-8"
    )
    in_process = daemon.run("check", "Dockerfile", daemon="off", cwd=project)
    through = daemon.run("check", "Dockerfile", cwd=project)
    _same(through, in_process)
    assert "Dockerfile:1:6: warning [unpinned]" in through.stdout, through.stderr
    assert "1 file(s) checked" in through.stderr
    # pin rewrites the file in the caller's directory, relative path and all.
    pinned = daemon.run("pin", "Dockerfile", cwd=project)
    assert pinned.returncode == 0, pinned.stderr
    assert "@sha256:" in (project / "Dockerfile").read_text()


class Private:
    """A repository behind basic auth, and the CI-style variables that open it."""

    def __init__(self, registry: Registry) -> None:
        assert registry.username and registry.password
        seed.push_image(registry, "team/app", build_artifact("b1"), ["1.0"], via="fs")
        self.ref = registry.ref("team/app")
        self.password = registry.password
        self.secret = {
            "PORTSIDE_REGISTRY": registry.host,
            "PORTSIDE_USERNAME": registry.username,
            "PORTSIDE_PASSWORD": registry.password,
            "SOME_CLOUD_TOKEN": "tok-" + registry.password,
        }


@pytest.fixture
def private(basic_registry: Registry) -> Private:
    return Private(basic_registry)


def test_environment_credentials_reach_the_worker_and_never_its_log(
    portside: Portside, private: Private
) -> None:
    started = portside.run("daemon", "start")  # started without the credentials
    assert started.returncode == 0, started.stderr
    anonymous = portside.run("tags", private.ref)
    assert anonymous.returncode == 4, anonymous.stderr
    with_them = portside.run("tags", private.ref, **private.secret)
    assert with_them.returncode == 0, with_them.stderr
    assert with_them.stdout == "1.0\n"
    status = portside.run("daemon", "status").stdout
    for text in (portside.log(), status, with_them.stderr, anonymous.stderr):
        assert private.password not in text
    assert portside.served() == 2


def test_a_daemon_started_by_a_command_with_credentials_does_not_keep_them(
    portside: Portside, private: Private
) -> None:
    first = portside.run("tags", private.ref, daemon="auto", **private.secret)
    assert first.returncode == 0, first.stderr
    portside.wait_for(lambda: portside.status() != {}, "auto mode started a daemon")
    pid = portside.status()["pid"]
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    assert private.password.encode() not in environ
    assert b"PORTSIDE_USERNAME" not in environ
    assert b"PORTSIDE_RUNTIME_DIR=" in environ  # what it needs, it has
    # The next command brings its own (a cold one: a warm one would not need them).
    fresh = str(portside.base / "fresh-cache")
    second = portside.run(
        "tags", private.ref, daemon="auto", PORTSIDE_CACHE_DIR=fresh, **private.secret
    )
    assert second.stdout == "1.0\n"
    assert portside.served() == 1


def test_terminal_output_through_the_daemon(daemon: Portside, registry: Registry) -> None:
    def in_terminal(mode: str) -> str:
        argv = [sys.executable, "-m", "portside", "tags", registry.ref("library/python")]
        code, screen = run_in_pty(argv, daemon.env(mode, TERM="xterm-256color"))
        assert code == 0
        return screen

    served = daemon.served()
    through = in_terminal("on")
    assert daemon.served() == served + 1
    # The worker wrote to the terminal itself: the table form, not the piped list.
    assert "TAG" in through and "VARIANT" in through
    assert through == in_terminal("off")


# -- signals ---------------------------------------------------------------------------


class SilentRegistry:
    """Accepts connections and never answers: a command against it waits."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.connected = threading.Event()
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(conn)
            self.connected.set()

    def close(self) -> None:
        self.listener.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentRegistry]:
    server = SilentRegistry()
    yield server
    server.close()


def test_ctrl_c_reaches_the_worker(daemon: Portside, silent: SilentRegistry) -> None:
    proc = daemon.popen("tags", f"{silent.host}/library/python", "--timeout", "60")
    try:
        assert silent.connected.wait(30), "the worker never reached the registry"
        assert daemon.status()["commands running"] == "1"
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    daemon.wait_for(lambda: daemon.status()["commands running"] == "0", "the worker ended")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat.rpartition(")")[2].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def _limits_and_nice(pid: int) -> tuple[str, int]:
    """The "Max open files" line of /proc/PID/limits (soft, hard) and the nice value."""
    limits = (Path("/proc") / str(pid) / "limits").read_text().splitlines()
    files = next(line for line in limits if line.startswith("Max open files"))
    stat = (Path("/proc") / str(pid) / "stat").read_text()
    return " ".join(files.split()[3:5]), int(stat.rpartition(")")[2].split()[16])


def test_the_worker_runs_under_the_callers_limits_and_nice_value(
    daemon: Portside, silent: SilentRegistry
) -> None:
    # As `ulimit -n 200; nice -n 5 portside tags ...` in a shell.
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (200, 300))
        os.nice(5)

    proc = subprocess.Popen(
        [sys.executable, "-m", "portside", "tags", f"{silent.host}/library/python"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=daemon.env("on"),
        preexec_fn=limit,
    )
    try:
        assert silent.connected.wait(30), "the worker never reached the registry"
        assert daemon.status()["commands running"] == "1"
        caller = _limits_and_nice(proc.pid)
        assert caller[0] == "200 300"
        workers = [_limits_and_nice(pid) for pid in _children(int(daemon.status()["pid"]))]
        # The worker of this command has them; the spares keep the daemon's.
        assert workers.count(caller) == 1, (caller, workers)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_a_caller_with_limits_the_daemon_cannot_grant_runs_in_process(
    portside: Portside, silent: SilentRegistry
) -> None:
    # The daemon was started under a lower hard limit than the caller has: its worker
    # cannot raise it, so the command runs in the caller's own process.
    def lower_hard_limit() -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), min(hard, 256)))

    started = subprocess.run(
        [sys.executable, "-m", "portside", "daemon", "start"],
        env=portside.env("on"),
        preexec_fn=lower_hard_limit,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[1] > 256, "this test needs a higher limit"
    proc = portside.popen("tags", f"{silent.host}/library/python", "--timeout", "60")
    try:
        assert silent.connected.wait(30), "the command never reached the registry"
        assert portside.status()["commands running"] == "0"  # the caller runs it
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_a_killed_client_stops_its_worker(daemon: Portside, silent: SilentRegistry) -> None:
    proc = daemon.popen("tags", f"{silent.host}/library/python", "--timeout", "60")
    assert silent.connected.wait(30), "the worker never reached the registry"
    assert daemon.status()["commands running"] == "1"
    proc.kill()
    proc.wait(timeout=10)
    daemon.wait_for(lambda: daemon.status()["commands running"] == "0", "the worker ended")
    assert "worker failed" not in daemon.log()


def test_a_reader_that_goes_away_ends_the_worker_quietly(
    daemon: Portside, registry: Registry
) -> None:
    # The reader closes the pipe before the command writes: exit 141, no noise, as
    # in-process (tests/test_cli.py), though the writer is the daemon's worker.
    script = (
        f'"{sys.executable}" -m portside tags {registry.ref("library/python")} '
        '| (exec 0<&-; sleep 1); echo "rc=${PIPESTATUS[0]}"'
    )
    served = daemon.served()
    for mode in ("on", "off"):
        result = subprocess.run(
            ["bash", "-c", script], capture_output=True, text=True, env=daemon.env(mode)
        )
        assert result.stdout.splitlines() == ["rc=141"], (mode, result.stderr)
        assert result.stderr == ""
    assert daemon.served() == served + 1


def test_concurrent_commands(daemon: Portside, registry: Registry) -> None:
    repo = registry.ref("library/python")
    expected = daemon.run("tags", repo, daemon="off").stdout
    served = daemon.served()
    procs = [daemon.popen("tags", repo, PORTSIDE_CACHE_DIR=f"{daemon.base}/c{i}") for i in range(8)]
    results = [proc.communicate(timeout=60) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 8, [err for _, err in results]
    assert all(out == expected for out, _ in results)
    assert daemon.served() == served + 8


# -- when the daemon is not used ---------------------------------------------------------


def test_after_commands_in_a_row_a_pause_finds_prepared_spares(
    daemon: Portside, registry: Registry
) -> None:
    """Two commands in a row take both spares; the daemon forks their replacements at
    once and they prepare (warm up, rehearse) on their own, so that a command after a
    person's pause gets a prepared worker."""
    repo = registry.ref("library/python")
    served = daemon.served()
    for i in range(2):
        assert daemon.run("tags", repo, PORTSIDE_CACHE_DIR=f"{daemon.base}/c{i}").returncode == 0
    assert daemon.served() == served + 2
    daemon.wait_for(
        lambda: daemon.status()["spare workers"] == "ready, ready", "both spares prepared"
    )


def test_spares_prepare_only_while_no_command_runs(
    daemon: Portside, silent: SilentRegistry
) -> None:
    """The spare a command took is replaced once no command runs: on a small machine a
    spare's preparation beside a command would slow the command down."""
    daemon.wait_for(lambda: daemon.status()["spare workers"] == "ready, ready", "spares ready")
    proc = daemon.popen("tags", f"{silent.host}/library/python", "--timeout", "60")
    try:
        assert silent.connected.wait(30), "the worker never reached the registry"
        time.sleep(0.3)  # what a replacement would take to prepare
        assert daemon.status()["spare workers"] == "ready"
        assert len(_children(int(daemon.status()["pid"]))) == 2  # the worker, the spare
    finally:
        proc.kill()
        proc.wait(timeout=10)
    daemon.wait_for(
        lambda: daemon.status()["spare workers"] == "ready, ready", "a replacement prepared"
    )


def test_a_spare_that_dies_is_replaced(daemon: Portside, registry: Registry) -> None:
    daemon.wait_for(lambda: daemon.status()["spare workers"] == "ready, ready", "spares ready")
    pid = int(daemon.status()["pid"])
    victim = min(_children(pid))
    os.kill(victim, signal.SIGKILL)  # as the kernel's OOM killer would
    daemon.wait_for(
        lambda: victim not in _children(pid) and len(_children(pid)) == 2,
        "a replacement was forked",
    )
    daemon.wait_for(lambda: daemon.status()["spare workers"] == "ready, ready", "it prepared")
    assert daemon.status()["commands running"] == "0"
    served = daemon.served()
    result = daemon.run("tags", registry.ref("library/python"))
    assert result.returncode == 0, result.stderr
    assert daemon.served() == served + 1


def _alive(pid: int) -> bool:
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_a_killed_daemon_leaves_no_spare_and_no_lock_behind(
    daemon: Portside, silent: SilentRegistry
) -> None:
    proc = daemon.popen("tags", f"{silent.host}/library/python", "--timeout", "60")
    try:
        assert silent.connected.wait(30), "the worker never reached the registry"
        pid = int(daemon.status()["pid"])
        children = _children(pid)  # the command's worker and the spare it left
        assert len(children) == 2, children
        os.kill(pid, signal.SIGKILL)
        # The spare dies with the daemon; the command's worker goes on.
        daemon.wait_for(lambda: sum(_alive(child) for child in children) == 1, "the spare is gone")
        # Nor does the worker keep the next daemon from starting.
        started = daemon.run("daemon", "start")
        assert started.returncode == 0, started.stderr
        assert "started" in started.stdout
    finally:
        proc.kill()
        proc.wait(timeout=10)
    daemon.wait_for(lambda: not any(_alive(child) for child in children), "the worker ended")


def test_stale_code_makes_the_daemon_step_aside(portside: Portside, registry: Registry) -> None:
    extra = portside.base / "site"
    extra.mkdir()
    path = f"{ROOT}{os.pathsep}{extra}"
    started = portside.run("daemon", "start", PYTHONPATH=path)
    assert started.returncode == 0, started.stderr
    repo = registry.ref("library/python")
    assert portside.run("tags", repo, PYTHONPATH=path).returncode == 0
    assert portside.served(PYTHONPATH=path) == 1
    # Another import path is another daemon: this one serves only its own.
    assert portside.status() == {}
    time.sleep(0.05)  # a distinct modification time, on coarse clocks too
    (extra / "newly_installed_plugin.py").write_text("")  # as `pip install` would
    cold = str(portside.base / "cold-cache")
    after = portside.run(
        "tags", repo, PYTHONPATH=path, PORTSIDE_DAEMON="auto", CI="1", PORTSIDE_CACHE_DIR=cold
    )
    assert after.returncode == 0, after.stderr  # answered in-process
    assert after.stdout == portside.run("tags", repo, daemon="off").stdout
    portside.wait_for(lambda: portside.status(PYTHONPATH=path) == {}, "the stale daemon stopped")
    assert "code changed" in portside.log()


def test_editing_an_installed_plugin_makes_the_daemon_step_aside(
    portside: Portside, registry: Registry
) -> None:
    # A plugin installed with its metadata (an entry point in the "portside" group) and
    # its source elsewhere, as an editable install leaves it; then edited in place.
    site, source = portside.base / "site", portside.base / "src"
    package = source / "portside_example_plugin"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from portside_example_plugin import helpers\n")
    helper = package / "helpers.py"
    helper.write_text("GREETING = 'hello'\n")
    info = site / "portside_example_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: portside-example-plugin\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text("[portside]\nexample = portside_example_plugin\n")
    path = os.pathsep.join([str(ROOT), str(site), str(source)])
    assert portside.run("daemon", "start", PYTHONPATH=path).returncode == 0
    repo = registry.ref("library/python")
    assert portside.run("tags", repo, PYTHONPATH=path).returncode == 0
    assert portside.served(PYTHONPATH=path) == 1
    time.sleep(0.05)  # a distinct modification time, on coarse clocks too
    with helper.open("r+") as file:  # in place: no directory changes
        file.write("GREETING = 'howdy'\n")
    cold = str(portside.base / "cold-cache")
    after = portside.run("tags", repo, PYTHONPATH=path, PORTSIDE_CACHE_DIR=cold)
    assert after.returncode == 0, after.stderr  # answered in-process
    portside.wait_for(lambda: portside.status(PYTHONPATH=path) == {}, "the stale daemon stopped")
    assert "code changed" in portside.log()
    assert "helpers.py" in portside.log()


def test_runtime_directory_must_be_private(portside: Portside, registry: Registry) -> None:
    portside.runtime.chmod(0o755)
    start = portside.run("daemon", "start")
    assert start.returncode == 2
    assert "open to other users" in start.stderr
    assert "PORTSIDE_RUNTIME_DIR" in start.stderr
    assert "Traceback" not in start.stderr
    # Commands still work, in-process, and no socket appears there.
    result = portside.run("tags", registry.ref("library/python"))
    assert result.returncode == 0, result.stderr
    assert not list(portside.runtime.glob("*.sock"))


def test_a_daemon_that_does_not_answer_is_passed_by(portside: Portside, registry: Registry) -> None:
    # Something listening at the daemon's socket that never says a word.
    path = portside.python(
        "-c", "from portside import launcher; print(launcher.socket_path())"
    ).stdout.strip()
    mute = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    mute.bind(path)
    mute.listen(8)
    repo = registry.ref("library/python")
    try:
        # (CI set: the fallback must not start a daemon that would take this path over.)
        result = portside.run("tags", repo, daemon="auto", CI="1")  # (60 s timeout)
    finally:
        mute.close()
        os.unlink(path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == portside.run("tags", repo, daemon="off").stdout


# -- lifecycle -----------------------------------------------------------------------------


def test_auto_mode_starts_a_daemon_after_a_network_command(
    portside: Portside, registry: Registry
) -> None:
    repo = registry.ref("library/python")
    # In CI, never: a job's steps should not leave processes behind.
    in_ci = portside.run("tags", repo, daemon="auto", CI="true")
    assert in_ci.returncode == 0
    time.sleep(1)
    assert portside.status() == {}
    # A warm answer did not need the network: nothing to gain, nothing started.
    warm = portside.run("tags", repo, daemon="auto")
    assert warm.returncode == 0
    time.sleep(1)
    assert portside.status() == {}
    # A cold one did: it returns at once (the daemon holds none of its streams) and
    # leaves a daemon for the next command.
    cold = portside.run("tags", repo, daemon="auto", PORTSIDE_CACHE_DIR=str(portside.base / "c2"))
    assert cold.returncode == 0 and cold.stdout == warm.stdout
    portside.wait_for(lambda: portside.status() != {}, "a daemon runs")
    served = portside.served()
    again = portside.run("tags", repo, daemon="auto", PORTSIDE_CACHE_DIR=str(portside.base / "c3"))
    assert again.stdout == warm.stdout
    assert portside.served() == served + 1


def test_a_daemon_that_cannot_start_is_not_retried_by_every_command(
    portside: Portside, registry: Registry
) -> None:
    # A directory where its socket should go: binding fails.
    socket_path = portside.python(
        "-c", "from portside import launcher; print(launcher.socket_path())"
    ).stdout.strip()
    Path(socket_path).mkdir()
    repo = registry.ref("library/python")
    for i in range(3):  # cold each time: each needed the network
        result = portside.run(
            "tags", repo, daemon="auto", PORTSIDE_CACHE_DIR=f"{portside.base}/{i}"
        )
        assert result.returncode == 0, result.stderr
    portside.wait_for(lambda: "could not serve" in portside.log(), "the daemon's log says why")
    time.sleep(2)  # time for more attempts, were there any
    assert portside.log().count("could not serve") == 1, portside.log()
    assert f"could not serve: Is a directory ({socket_path})" in portside.log()
    assert portside.status() == {}


def test_status_stop_and_idle_exit(portside: Portside) -> None:
    assert portside.run("daemon", "status").returncode == 1
    assert portside.run("daemon", "stop").stdout == "portside daemon: not running\n"
    started = portside.run("daemon", "start", PORTSIDE_DAEMON_IDLE="2")
    assert started.returncode == 0, started.stderr
    again = portside.run("daemon", "start")
    assert again.stdout.startswith("portside daemon: running (pid: ")
    status = portside.status()
    assert status["stops after"] == "2 s idle"
    assert Path(status["socket"]).parent == portside.runtime
    # Two idle seconds later it is gone, and so is its socket.
    portside.wait_for(lambda: portside.status() == {}, "the idle daemon stopped", timeout=15)
    assert not list(portside.runtime.glob("*.sock"))
    assert "idle for 2 s" in portside.log()
    # Explicit stop.
    assert portside.run("daemon", "start").returncode == 0
    stopped = portside.run("daemon", "stop")
    assert stopped.stdout == "portside daemon: stopped\n"
    assert portside.status() == {}


def test_daemon_usage_errors(portside: Portside) -> None:
    for args, code in ((("daemon",), 2), (("daemon", "restart"), 2), (("daemon", "stop", "x"), 2)):
        result = portside.run(*args)
        assert result.returncode == code, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
    assert "start" in portside.run("daemon", "--help").stdout
    listed = portside.run("--help")
    assert "daemon" in listed.stdout


def test_what_only_this_process_can_honour_runs_in_process(
    daemon: Portside, registry: Registry, tmp_path: Path
) -> None:
    repo = registry.ref("library/python")
    served = daemon.served()
    # Interpreter options apply to this interpreter: -X importtime must time real imports.
    timed = daemon.python("-X", "importtime", "-m", "portside", "tags", repo)
    assert timed.returncode == 0, timed.stderr
    assert "portside.cli" in timed.stderr
    # A working directory that no longer exists: in-process, where the command says so.
    gone = tmp_path / "gone"
    gone.mkdir()
    script = (
        "import os, sys, runpy; os.chdir(sys.argv[1]); os.rmdir(sys.argv[1]); "
        "sys.argv = ['portside', 'tags', sys.argv[2]]; "
        "runpy.run_module('portside', run_name='__main__')"
    )
    # (A cold cache: a warm answer would not need the daemon anyway.)
    cold = str(tmp_path / "cold-cache")
    orphan = daemon.python("-c", script, str(gone), repo, PORTSIDE_CACHE_DIR=cold)
    assert orphan.returncode == 0, orphan.stderr
    assert orphan.stdout == timed.stdout
    # Neither went through the daemon; `build` never does.
    assert daemon.served() == served
    build = daemon.run("build", "--project", str(tmp_path / "no-project"))
    assert build.returncode != 0 and "Traceback" not in build.stderr
    assert daemon.served() == served


def test_the_rehearsal_runs_a_real_tags_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from portside.rehearsal import rehearse

    monkeypatch.setenv("PORTSIDE_CACHE_DIR", str(tmp_path / "mine"))
    assert rehearse() == 0
    out = capsys.readouterr()
    tags = out.out.splitlines()
    assert len(tags) == 450 and tags[:2] == ["2.9.4", "2.9.4-alpine3.20"], out.err
    # Its cache was its own, and is gone; the caller's setting is back.
    assert os.environ["PORTSIDE_CACHE_DIR"] == str(tmp_path / "mine")
    assert not (tmp_path / "mine").exists()


def test_the_warm_up_needs_no_registry_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from portside.rehearsal import warm_up

    monkeypatch.setenv("PORTSIDE_CACHE_DIR", str(tmp_path / "cache"))
    warm_up()
    assert "offline" in capsys.readouterr().err  # the cache miss it walks, reported
    assert not (tmp_path / "cache").exists()
