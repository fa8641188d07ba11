"""The ``portside`` command, run as a real subprocess against the real registry.

Output, ``--json`` shapes and exit codes are checked against what was seeded and against
skopeo; error paths must print one ``portside: error:`` line, never a traceback, never a
secret; a warm answer must not import the network stack.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness import seed
from harness.catalog import MANY_TAGS_COUNT, MANY_TAGS_REPO
from harness.dockerconfig import DockerConfig
from harness.ports import free_port
from harness.proxy import FaultProxy
from harness.registry import Registry, RegistryFactory
from harness.skopeo import Skopeo
from harness.terminal import run_in_pty
from portside import cli
from portside.versions import sort_tags

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent
ProxyFactory = Callable[..., FaultProxy]

# Imported only when an answer needs the network (or a terminal, for rich).
HEAVY_MODULES = ("asyncio", "httpx", "httpcore", "rich", "pluggy", "portside.registry.client")
# Not imported by a warm tag list, plain or --json: json imports re, which imports enum
# and functools (~8 ms together); the cache reads its entries with json's C scanner and
# the references are parsed without re. (functools is not listed: ``python -m``, which
# these tests run, imports it for runpy.)
UNNEEDED_FOR_WARM_TAGS = ("json", "re", "enum", "portside.registry.mediatypes")


class Runner:
    """Runs ``python -m portside`` with its own cache directory and a clean environment."""

    def __init__(self, tmp_path: Path) -> None:
        self.cache_dir = tmp_path / "cache"
        self.home = tmp_path / "home"
        self.home.mkdir()

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PORTSIDE_", "REGISTRY_AUTH", "XDG_"))
        }
        env.update(
            {
                "PORTSIDE_CACHE_DIR": str(self.cache_dir),
                "HOME": str(self.home),
                "PYTHONPATH": str(ROOT),
                "COLUMNS": "200",
            }
        )
        env.setdefault("DOCKER_CONFIG", str(self.home / "no-docker-config"))
        env.update(extra or {})
        return env

    def __call__(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        python_flags: tuple[str, ...] = (),
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *python_flags, "-m", "portside", *args],
            capture_output=True,
            text=True,
            env=self.env(env),
            timeout=timeout,
            check=False,
        )


@pytest.fixture
def run(tmp_path: Path) -> Runner:
    return Runner(tmp_path)


def assert_clean_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    """Exit ``code``, nothing on stdout, a ``portside: error:`` line, no traceback."""
    assert result.returncode == code, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines, "an error says something"
    assert lines[0].startswith(("portside: error: ", "usage: ")), result.stderr
    assert all(line.startswith(("portside: ", "usage: ", "  ", "portside ")) for line in lines), (
        result.stderr
    )
    return result.stderr


# -- tags ---------------------------------------------------------------------------------


def test_tags_newest_first_and_cross_checked(registry: Registry, run: Runner) -> None:
    repo_ref = registry.ref("library/python")
    result = run("tags", repo_ref)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    theirs = Skopeo.for_registry(registry).list_tags(repo_ref)
    assert result.stdout.splitlines() == sort_tags(theirs)
    # A tag or digest in REF is ignored: the repository's tags are listed.
    assert run("tags", registry.ref("library/python", "3.13")).stdout == result.stdout


def test_tags_json_and_limit(registry: Registry, run: Runner) -> None:
    repo_ref = registry.ref(MANY_TAGS_REPO)
    everything = json.loads(run("tags", "--json", repo_ref).stdout)
    assert isinstance(everything, list)
    assert len(everything) == MANY_TAGS_COUNT
    assert everything[0] == "1.20.99"
    assert everything == sort_tags(everything)
    limited = run("tags", repo_ref, "--json", "--limit", "5")
    assert json.loads(limited.stdout) == everything[:5]
    plain = run("--offline", "tags", "--limit=3", repo_ref)
    assert plain.stdout.splitlines() == everything[:3]


def test_tags_warm_with_registry_gone(
    registry: Registry, proxy_factory: ProxyFactory, run: Runner
) -> None:
    proxy = proxy_factory(registry)
    ref = f"{proxy.host}/library/debian"
    cold = run("tags", ref)
    assert cold.returncode == 0, cold.stderr
    asked = len(proxy.requests)
    warm = run("tags", ref)
    assert warm.stdout == cold.stdout
    assert len(proxy.requests) == asked, "a fresh cache answers without a request"
    proxy.stop()
    assert run("tags", ref).stdout == cold.stdout


def test_stale_cache_and_registry_down_warns_and_answers(
    registry: Registry, proxy_factory: ProxyFactory, run: Runner
) -> None:
    proxy = proxy_factory(registry)
    ref = f"{proxy.host}/library/nginx"
    cold = run("tags", ref)
    assert cold.returncode == 0, cold.stderr
    for path in (run.cache_dir / "v2" / "tags").iterdir():  # make the entry old
        doc = json.loads(path.read_text())
        doc["fetched_at"] = time.time() - 3 * 3600
        path.write_text(json.dumps(doc))
    proxy.stop()
    stale = run("tags", ref, "--timeout", "3")
    assert stale.returncode == 0, stale.stderr
    assert stale.stdout == cold.stdout
    assert stale.stderr.startswith("portside: warning: ")
    assert "cached 3 h ago" in stale.stderr
    assert "Traceback" not in stale.stderr


def test_unwritable_cache_still_answers(registry: Registry, run: Runner, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = run(
        "digest",
        registry.ref("library/debian", "bookworm"),
        env={"PORTSIDE_CACHE_DIR": str(blocker / "cache")},
    )
    assert result.returncode == 0
    assert result.stdout.startswith("sha256:")
    assert result.stderr.startswith("portside: warning: could not write to the cache in ")


# -- inspect and digest -------------------------------------------------------------------


def _fields(stdout: str) -> tuple[dict[str, str], dict[str, str]]:
    fields: dict[str, str] = {}
    labels: dict[str, str] = {}
    for line in stdout.splitlines():
        key, _, value = line.partition("\t")
        if key == "label":
            name, _, text = value.partition("=")
            labels[name] = text
        else:
            assert key not in fields
            fields[key] = value
    return fields, labels


def test_inspect_plain_and_json(registry: Registry, run: Runner) -> None:
    text = registry.ref("library/python", "3.13")
    seeded = registry.seeded["library/python"].image("3.13")
    plain = run("inspect", text)
    assert plain.returncode == 0, plain.stderr
    fields, labels = _fields(plain.stdout)
    assert fields["digest"] == seeded.digest
    assert fields["media-type"] == "application/vnd.oci.image.index.v1+json"
    assert fields["manifest-digest"] == seeded.platform_digests["linux/amd64"]
    assert fields["platform"] == "linux/amd64"
    assert fields["platforms"].split(",") == [key for key, _ in seeded.children]
    assert fields["created"] == seeded.created
    assert int(fields["size"]) > 0
    assert labels["org.portside.test.build"] == seeded.build.split("+")[0]

    doc = json.loads(run("inspect", "--json", text, "--platform", "linux/arm64").stdout)
    assert doc["digest"] == seeded.digest
    assert doc["manifestDigest"] == seeded.platform_digests["linux/arm64/v8"]
    assert doc["platform"] == "linux/arm64/v8"
    assert doc["platforms"] == fields["platforms"].split(",")
    assert doc["labels"] == labels
    assert isinstance(doc["size"], int)
    theirs = Skopeo.for_registry(registry).inspect(text, platform=("linux", "arm64", "v8"))
    assert theirs["Digest"] == doc["digest"]
    assert theirs["Labels"] == doc["labels"]


def test_digest_for_shell_use(registry: Registry, run: Runner) -> None:
    text = registry.ref("library/alpine", "3.24")
    result = run("digest", text)
    assert result.returncode == 0, result.stderr
    assert result.stdout == Skopeo.for_registry(registry).digest(text) + "\n"
    arm = run("digest", "--platform", "linux/arm64", text)
    seeded = registry.seeded["library/alpine"].image("3.24")
    assert arm.stdout.strip() == seeded.platform_digests["linux/arm64/v8"]
    pinned = run("digest", f"{registry.ref('library/alpine')}@{result.stdout.strip()}")
    assert pinned.stdout == result.stdout


# -- several references in one command ---------------------------------------------------


def test_digest_of_several_references_in_argument_order(
    registry: Registry, proxy_factory: ProxyFactory, run: Runner
) -> None:
    proxy = proxy_factory(registry)
    skopeo = Skopeo.for_registry(registry)
    texts = [
        f"{proxy.host}/library/python:3.13",
        f"{proxy.host}/library/alpine:3.24",
        f"{proxy.host}/library/debian:bookworm",
    ]
    expected = [
        f"{text}\t{skopeo.digest(text.replace(proxy.host, registry.host))}" for text in texts
    ]
    cold = run("digest", *texts)
    assert cold.returncode == 0, cold.stderr
    assert cold.stderr == ""
    assert cold.stdout.splitlines() == expected
    # Reversed arguments, reversed lines: the order is the arguments', not the answers'.
    warm = run("digest", *reversed(texts), python_flags=("-X", "importtime"))
    assert warm.returncode == 0, warm.stderr
    assert warm.stdout.splitlines() == expected[::-1]
    asked = len(proxy.requests)
    # All of them cached and fresh: answered without a request and without the network
    # stack, as one reference is.
    again = run("digest", *texts, python_flags=("-X", "importtime"))
    assert again.stdout.splitlines() == expected
    assert len(proxy.requests) == asked
    imported = _imported(again.stderr)
    assert "portside.cache" in imported
    assert not imported & set(HEAVY_MODULES), sorted(imported & set(HEAVY_MODULES))
    # One reference alone prints just the digest, as it always did.
    assert run("digest", texts[0]).stdout == expected[0].split("\t")[1] + "\n"


def test_several_references_are_asked_concurrently(
    registry: Registry, proxy_factory: ProxyFactory, run: Runner
) -> None:
    proxy = proxy_factory(registry)
    # Every tag list is held back far longer than the wait below: were the references
    # asked one after another, the second request would never arrive in time.
    proxy.delay("GET", r"/tags/list$", 60)
    repos = ["library/python", "library/alpine", "library/debian", "library/nginx"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "portside", "tags", *(f"{proxy.host}/{r}" for r in repos)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=run.env(),
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            asked = {r.path for r in proxy.requests if r.path.endswith("/tags/list")}
            if len(asked) == len(repos):
                break
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, f"only {sorted(asked)} asked at once"
            time.sleep(0.05)
        assert asked == {f"/v2/{r}/tags/list" for r in repos}
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert (out, err) == ("", "")


def test_several_references_report_each_failure_and_exit_with_the_worst(
    registry: Registry, run: Runner
) -> None:
    good = registry.ref("library/alpine", "3.24")
    missing = registry.ref("library/alpine", "no-such-tag")
    other = registry.ref("library/python", "3.13")
    skopeo = Skopeo.for_registry(registry)
    result = run("digest", good, missing, "UPPER/case", other)
    assert result.returncode == 3, "not found (3) is worse than invalid input (2)"
    assert result.stdout.splitlines() == [
        f"{good}\t{skopeo.digest(good)}",
        f"{other}\t{skopeo.digest(other)}",
    ]
    errors = result.stderr.splitlines()
    assert len(errors) == 2, result.stderr
    assert errors[0].startswith(f"portside: error: {missing}: ")
    assert errors[1].startswith("portside: error: UPPER/case: ")
    assert "lowercase" in errors[1]
    assert "Traceback" not in result.stderr

    unreachable = f"127.0.0.1:{free_port()}/x/y:1"
    worse = run("digest", "--timeout", "3", missing, unreachable, good)
    assert worse.returncode == 5, "unreachable (5) is worse than not found (3)"
    assert worse.stdout == f"{good}\t{skopeo.digest(good)}\n"
    assert [line.split(": ")[2] for line in worse.stderr.splitlines()] == [missing, unreachable]

    only_bad = run("digest", missing)
    assert_clean_error(only_bad, 3)


def test_the_deadline_covers_every_reference_and_keeps_the_answered_ones(
    registry: Registry, proxy_factory: ProxyFactory, run: Runner
) -> None:
    proxy = proxy_factory(registry)
    proxy.delay(None, r"/library/debian/manifests/", 60)  # far past the deadline
    good = f"{proxy.host}/library/alpine:3.24"
    slow = f"{proxy.host}/library/debian:bookworm"
    result = run("digest", "--deadline", "3", slow, good, timeout=50)
    assert result.returncode == 5, result.stderr
    expected = Skopeo.for_registry(registry).digest(registry.ref("library/alpine", "3.24"))
    assert result.stdout == f"{good}\t{expected}\n"
    errors = result.stderr.splitlines()
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"portside: error: {slow}: ")


def test_inspect_several_as_a_json_array(registry: Registry, run: Runner) -> None:
    python = registry.ref("library/python", "3.13")
    missing = registry.ref("library/nginx", "no-such-tag")
    debian = registry.ref("library/debian", "bookworm")
    result = run("inspect", "--json", python, missing, debian)
    assert result.returncode == 3
    docs = json.loads(result.stdout)
    assert isinstance(docs, list)
    assert len(docs) == 3
    assert docs[0]["digest"] == registry.seeded["library/python"].image("3.13").digest
    assert docs[0] == json.loads(run("inspect", "--json", python).stdout)
    assert docs[1]["reference"] == missing
    assert docs[1]["exitCode"] == 3
    assert docs[1]["error"]
    assert docs[2]["digest"] == registry.seeded["library/debian"].image("bookworm").digest
    assert result.stderr.startswith(f"portside: error: {missing}: ")
    # One reference: the object it always was, not an array of one.
    assert isinstance(json.loads(run("inspect", "--json", debian).stdout), dict)

    plain = run("inspect", python, debian)
    assert plain.returncode == 0, plain.stderr
    blocks = plain.stdout.split("\n\n")
    assert len(blocks) == 2
    assert _fields(blocks[0])[0]["digest"] == docs[0]["digest"]
    assert _fields(blocks[1])[0]["digest"] == docs[2]["digest"]


def test_tags_of_several_repositories(registry: Registry, run: Runner) -> None:
    python, alpine = registry.ref("library/python"), registry.ref("library/alpine")
    nothing = registry.ref("no/such-repo")
    theirs = {
        ref: sort_tags(Skopeo.for_registry(registry).list_tags(ref)) for ref in (python, alpine)
    }
    plain = run("tags", alpine, python, "--limit", "4")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.splitlines() == [
        f"{ref}\t{tag}" for ref in (alpine, python) for tag in theirs[ref][:4]
    ]
    as_json = run("tags", "--json", python, nothing, alpine)
    assert as_json.returncode == 3
    docs = json.loads(as_json.stdout)
    assert [d["reference"] for d in docs] == [python, nothing, alpine]
    assert docs[0]["tags"] == theirs[python]
    assert docs[1]["exitCode"] == 3
    assert "tags" not in docs[1]
    assert docs[2]["tags"] == theirs[alpine]
    assert as_json.stderr.splitlines()[0].startswith(f"portside: error: {nothing}: ")
    assert len(as_json.stderr.splitlines()) == 1
    screen = _run_in_pty(run, "tags", "--limit", "2", alpine, python)
    assert alpine in screen
    assert python in screen
    assert screen.index(alpine) < screen.index(theirs[alpine][0]) < screen.index(python)


def _processes_with(entry: str) -> list[int]:
    """Processes of this user whose environment holds ``entry`` (``NAME=value``)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if entry.encode() in (proc / "environ").read_bytes().split(b"\0"):
                found.append(int(proc.name))
        except OSError:
            continue  # gone, or another user's
    return found


def test_a_command_is_one_process_and_leaves_none_behind(registry: Registry, run: Runner) -> None:
    """Cold, warm and several-reference commands run in their own process and end with
    it: nothing is started to outlive them (a resident server once was, after a cold
    command)."""
    env = run.env()
    env.pop("CI", None)  # that server was started everywhere but in CI
    refs = [registry.ref("library/python", "3.13"), registry.ref("library/alpine", "3.24")]
    for args in (["tags", refs[0]], ["tags", refs[0]], ["digest", *refs], ["inspect", *refs]):
        done = subprocess.run(
            [sys.executable, "-m", "portside", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        # Every command of this test has its own HOME; a process that kept it would be
        # one these commands left behind.
        assert _processes_with(f"HOME={run.home}") == []


# -- errors and exit codes ----------------------------------------------------------------


def test_exit_codes(
    registry: Registry, proxy_factory: ProxyFactory, basic_registry: Registry, run: Runner
) -> None:
    python = registry.ref("library/python", "3.13")
    msg = assert_clean_error(run("tags", "UPPER/case"), 2)
    assert "lowercase" in msg
    assert "hint: write 'upper'" in msg
    assert_clean_error(run("inspect", python, "--platform", "plan9"), 2)
    msg = assert_clean_error(run("inspect", python, "--platform", "linux/mips64le"), 2)
    assert "available platforms" in msg
    assert_clean_error(run("tags", python, "--bogus"), 2)
    # No resident server to start (the removed verb): a command is one process.
    assert "invalid choice: 'daemon'" in assert_clean_error(run("daemon", "start"), 2)
    assert_clean_error(run("tags"), 2)
    assert_clean_error(run("--offline", "--refresh", "tags", python), 2)
    assert_clean_error(run("tags", python, "--ca-file", "/nonexistent.pem"), 2)
    assert_clean_error(run("digest", registry.ref("library/python", "no-such-tag")), 3)
    assert_clean_error(run("tags", registry.ref("no/such-repo")), 3)
    msg = assert_clean_error(run("tags", f"127.0.0.1:{free_port()}/x/y", "--timeout", "3"), 5)
    assert "hint:" in msg
    msg = assert_clean_error(run("--offline", "inspect", python), 5)
    assert "offline" in msg
    assert_clean_error(run("tags", basic_registry.ref("x/y")), 4)
    proxy = proxy_factory(registry)
    proxy.corrupt("GET", r"/manifests/", times=None)
    msg = assert_clean_error(run("inspect", f"{proxy.host}/library/nginx:stable"), 6)
    assert "digest" in msg


def test_help_documents_exit_codes(run: Runner) -> None:
    result = run("--help")
    assert result.returncode == 0
    for line in ("0    success", "3    not found", "4    authentication", "130  interrupted"):
        assert line in result.stdout
    assert "130  interrupted" in run("tags", "--help").stdout
    assert "the exit code is the\n  highest of theirs" in result.stdout
    for verb in ("tags", "inspect", "digest"):
        text = " ".join(run(verb, "--help").stdout.split())
        assert "REF [REF ...]" in text
        assert "Several references are answered concurrently" in text
    version = run("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("portside ")


def test_secrets_never_printed(
    basic_registry: Registry, docker_config: DockerConfig, run: Runner
) -> None:
    seed.push_image(basic_registry, "team/app", seed.build_image("secret-app"), ["1"], via="fs")
    ref = basic_registry.ref("team/app", "1")
    env = {"DOCKER_CONFIG": str(docker_config.directory)}
    wrong = "wrong-Pa55word-xyzzy"
    docker_config(auths={basic_registry.host: (basic_registry.username or "", wrong)})
    result = run("inspect", ref, env=env)
    assert_clean_error(result, 4)
    assert wrong not in result.stderr
    assert basic_registry.password is not None
    docker_config(
        auths={basic_registry.host: (basic_registry.username or "", basic_registry.password)}
    )
    for args in (("inspect", ref), ("inspect", "--json", ref), ("tags", ref), ("digest", ref)):
        result = run(*args, env=env)
        assert result.returncode == 0, result.stderr
        assert basic_registry.password not in result.stdout + result.stderr
    debug = run("tags", basic_registry.ref("team/nope"), env={**env, "PORTSIDE_DEBUG": "1"})
    assert debug.returncode == 3
    assert basic_registry.password not in debug.stdout + debug.stderr


def test_tls_registry_options(
    registry_factory: RegistryFactory, run: Runner, tmp_path: Path
) -> None:
    tls = registry_factory(tls=True)
    seed.push_image(tls, "team/app", seed.build_image("tls-app"), ["1"], via="fs")
    ref = tls.ref("team/app")
    msg = assert_clean_error(run("tags", ref), 5)
    assert "certificate" in msg.lower() or "tls" in msg.lower()
    assert run("tags", ref, "--ca-file", str(tls.ca_file)).stdout == "1\n"
    assert run("tags", "--refresh", "--insecure-registry", tls.host, ref).stdout == "1\n"
    env = {"PORTSIDE_INSECURE_REGISTRIES": f"other.example, {tls.host}"}
    assert run("tags", "--refresh", ref, env=env).stdout == "1\n"


# -- never a traceback --------------------------------------------------------------------


def test_unexpected_exception_is_one_line_unless_debugging(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("PORTSIDE_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("PORTSIDE_DEBUG", raising=False)

    def boom(*_args: object) -> int:
        raise RuntimeError("token=s3cr3t-in-an-unexpected-message")

    monkeypatch.setitem(cli._COMMANDS, "tags", boom)
    assert cli.main(["tags", "python"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "portside: internal error: unexpected RuntimeError",
        "portside: hint: this is a bug in portside; rerun with PORTSIDE_DEBUG=1 to see the "
        "traceback",
    ]
    assert "s3cr3t" not in err
    monkeypatch.setenv("PORTSIDE_DEBUG", "1")
    assert cli.main(["tags", "python"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_keyboard_interrupt_in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("PORTSIDE_CACHE_DIR", str(tmp_path))

    def interrupted(*_args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setitem(cli._COMMANDS, "inspect", interrupted)
    assert cli.main(["inspect", "python"]) == 130
    assert capsys.readouterr() == ("", "")


def test_ctrl_c_while_waiting_on_the_registry(
    registry: Registry, proxy_factory: ProxyFactory, run: Runner
) -> None:
    proxy = proxy_factory(registry)
    proxy.delay("GET", r"/tags/list$", 30)
    proc = subprocess.Popen(
        [sys.executable, "-m", "portside", "tags", f"{proxy.host}/library/python"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=run.env(),
    )
    deadline = time.monotonic() + 20
    while not any(r.path.endswith("/tags/list") for r in proxy.requests):
        assert time.monotonic() < deadline, "the request never reached the registry"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert (out, err) == ("", "")


def test_closed_pipe_is_quiet(registry: Registry, run: Runner) -> None:
    ref = registry.ref(MANY_TAGS_REPO)
    assert run("tags", ref).returncode == 0  # warm the cache
    # The reader closes its end at once (as `head` does after its first line), long
    # before portside has started up and writes.
    script = (
        f'"{sys.executable}" -m portside tags {ref} | (exec 0<&-; sleep 1); '
        'echo "rc=${PIPESTATUS[0]}"'
    )
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=run.env(), timeout=60
    )
    assert result.stdout.splitlines() == ["rc=141"]
    assert result.stderr == "", "no BrokenPipeError noise, no traceback"


# -- terminal output ----------------------------------------------------------------------


def _run_in_pty(run: Runner, *args: str) -> str:
    code, screen = run_in_pty(
        [sys.executable, "-m", "portside", *args], run.env({"TERM": "xterm-256color"})
    )
    assert code == 0
    return screen


def test_terminal_tables_escape_hostile_text(plain_registry: Registry, run: Runner) -> None:
    evil = "\x1b]0;pwned\x07[bold red]markup[/bold red]\nsecond line"
    image = seed.build_image("evil", labels={"note": evil})
    seed.push_image(plain_registry, "team/evil", image, ["1.0", "1.0-slim"], via="fs")
    ref = plain_registry.ref("team/evil", "1.0")

    screen = _run_in_pty(run, "inspect", ref)
    assert "\x1b]0;pwned" not in screen, "an OSC sequence from a label reached the terminal"
    assert "[bold red]markup[/bold red]" in screen, "label text is not rich markup"
    assert "\\x1b]0;pwned\\x07" in screen
    assert "compressed" in screen  # the human size line

    plain = run("inspect", ref).stdout
    assert "label\tnote=\\x1b]0;pwned\\x07[bold red]markup[/bold red]\\x0asecond line" in plain
    assert json.loads(run("inspect", "--json", ref).stdout)["labels"]["note"] == evil

    table = _run_in_pty(run, "tags", ref)
    assert "TAG" in table
    assert "VARIANT" in table
    assert "slim" in table


# -- the warm path stays light ------------------------------------------------------------


def _imported(stderr: str) -> set[str]:
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


@pytest.mark.parametrize("verb", ["tags", "inspect", "digest"])
def test_warm_answer_imports_no_network_stack(registry: Registry, run: Runner, verb: str) -> None:
    ref = registry.ref("library/python", "3.13")
    cold = run(verb, ref, python_flags=("-X", "importtime"))
    assert cold.returncode == 0, cold.stderr
    assert {"httpx", "asyncio"} <= _imported(cold.stderr), "the cold path did use the network"
    warm = run(verb, ref, python_flags=("-X", "importtime"))
    assert warm.returncode == 0, warm.stderr
    assert warm.stdout == cold.stdout
    imported = _imported(warm.stderr)
    assert "portside.cache" in imported
    assert not imported & set(HEAVY_MODULES), sorted(imported & set(HEAVY_MODULES))
    assert "argparse" not in imported, "the plain spelling skips argparse"
    if verb == "tags":
        assert "portside.versions" not in imported, "the sorted list comes from the cache"
        assert not imported & set(UNNEEDED_FOR_WARM_TAGS), sorted(
            imported & set(UNNEEDED_FOR_WARM_TAGS)
        )
        as_json = run(verb, "--json", ref, python_flags=("-X", "importtime"))
        assert as_json.returncode == 0, as_json.stderr
        assert as_json.stdout == json.dumps(warm.stdout.splitlines()) + "\n"
        imported = _imported(as_json.stderr)
        assert not imported & set(UNNEEDED_FOR_WARM_TAGS), sorted(
            imported & set(UNNEEDED_FOR_WARM_TAGS)
        )


def test_json_strings_is_json_dumps() -> None:
    hostile = ['"', "\\", "\x00\x1f\x7f", "caf\u00e9", "\u2028", "\ud800", "\U0001f600", "/"]
    for items in ([], ["latest"], ["1.0", "1.0-slim", ""], hostile, [*hostile, "x" * 300]):
        assert cli._json_strings(items) == json.dumps(items)


# -- the two argument parsers agree -------------------------------------------------------

FAST_FORMS = [
    ["tags", "python"],
    ["tags", "python", "--json"],
    ["tags", "--json", "python", "--limit", "5"],
    ["tags", "python", "--limit=5"],
    ["--offline", "tags", "python"],
    ["tags", "python", "--refresh"],
    ["--timeout", "2.5", "tags", "python"],
    ["tags", "python", "--timeout=7"],
    ["--deadline", "90", "tags", "python", "--timeout", "3"],
    ["digest", "python", "--deadline=0.5"],
    ["--insecure-registry", "a:5000", "--insecure-registry=b", "tags", "python"],
    ["tags", "python", "--insecure-registry", "a:5000"],
    ["--ca-file", "/etc/ssl/ca.pem", "inspect", "python:3"],
    ["inspect", "python:3", "--platform", "linux/arm64", "--json"],
    ["inspect", "--platform=linux/arm/v7", "python@sha256:" + "a" * 64],
    ["digest", "ghcr.io/o/r:1"],
    ["digest", "--platform", "linux/amd64", "ghcr.io/o/r:1", "--offline"],
    ["tags", "a", "b"],
    ["tags", "--json", "a", "b", "c", "--limit", "2"],
    ["tags", "a", "--json", "b", "--limit", "2", "c"],  # references between options
    ["digest", "ghcr.io/o/r:1", "python@sha256:" + "b" * 64, "--platform=linux/arm64"],
]
ARGPARSE_FORMS = [
    ["--help"],
    ["tags", "-h"],
    ["--version"],
    ["tags"],
    ["tags", "--lim", "3", "python"],  # an abbreviation: argparse's business
    ["tags", "--limit", "0", "python"],
    ["tags", "--limit", "-3", "python"],
    ["--json", "tags", "python"],
    ["digest", "--json", "python"],
    ["tags", "--platform", "linux/amd64", "python"],
    ["tags", "--offline", "--offline", "python"],
    ["--insecure-registry", "a", "tags", "--insecure-registry", "b", "python"],
    ["tags", "--", "python"],
    ["tags", "-"],
    ["pull", "python"],
    ["tags", "python", "--timeout", "nan"],
    ["tags", "python", "--deadline", "0"],
]


@pytest.mark.parametrize("argv", FAST_FORMS)
def test_fast_parse_agrees_with_argparse(argv: list[str]) -> None:
    fast = cli._fast_parse(argv)
    assert fast is not None, "a plain spelling takes the fast path"
    assert fast == cli._argparse(argv)


@pytest.mark.parametrize("argv", ARGPARSE_FORMS)
def test_fast_parse_leaves_the_rest_to_argparse(argv: list[str]) -> None:
    assert cli._fast_parse(argv) is None


def test_references_between_options_on_the_argparse_path() -> None:
    # An abbreviation sends the whole line to argparse, which alone would leave "b" over.
    assert cli.parse_args(["tags", "a", "--lim", "3", "b"]).refs == ["a", "b"]
    assert cli.parse_args(["digest", "a", "--plat", "linux/arm64", "b", "c"]).refs == [
        "a",
        "b",
        "c",
    ]
    with pytest.raises(SystemExit):
        cli.parse_args(["tags", "a", "--lim", "3", "--bogus", "b"])
    with pytest.raises(SystemExit):
        cli.parse_args(["check", ".", "--json", "extra"])  # not a verb of references
