"""Checking and pinning Dockerfiles on disk: what ``portside check`` / ``portside pin``
and the pre-commit hooks share. Files are read once, checked concurrently, and written
back only whole and atomically. Plugins are asked once for all the files (a linter that
is a process starts a few times, not once per file)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from portside.config import PolicyConfig, load_config
from portside.contract import DockerfileSource
from portside.errors import PortsideError
from portside.policy import (
    Checked,
    Finding,
    check_document,
    local_findings,
    sort_findings,
    start_plugin_findings,
)

if TYPE_CHECKING:
    from portside.cache import CachedRegistry
    from portside.pin import PinPlan


@dataclass
class CheckResult:
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # files that could not be read


def read_dockerfile(path: Path) -> str:
    """The file's text exactly (BOM, CRLF kept), or a ``PortsideError`` saying why not."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PortsideError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PortsideError(
            f"{path} is not UTF-8 text (byte {exc.start})", hint="save it as UTF-8"
        ) from None


def _described(exc: PortsideError) -> str:
    return exc.message + (f" ({exc.hint})" if exc.hint else "")


def read_all(files: list[Path]) -> tuple[list[Checked], list[str]]:
    """Every file read (parsed on first use), with the configuration that applies to it (looked up
    once per folder); and one error line for each file that could not be read."""
    documents: list[Checked] = []
    errors: list[str] = []
    configs: dict[Path, PolicyConfig] = {}
    for path in dict.fromkeys(files):  # a file named twice is checked once
        try:
            text = read_dockerfile(path)
            folder = path.parent
            if folder not in configs:
                configs[folder] = load_config(path)
        except PortsideError as exc:
            errors.append(_described(exc))
            continue
        # Parsed on first use: the plugins start on the files before the core parses them.
        documents.append((DockerfileSource(str(path), text), configs[folder]))
    return documents, errors


def _by_file(documents: list[Checked], findings: list[Finding]) -> list[Finding]:
    """``findings`` in file order, each file's sorted as every surface shows them."""
    grouped: dict[str, list[Finding]] = {source.path: [] for source, _ in documents}
    for finding in findings:
        grouped[finding.file].append(finding)
    return [f for found in grouped.values() for f in sort_findings(found)]


def lint_files(files: list[Path]) -> CheckResult:
    """The findings that need no registry, plugins' included, for every file: what
    :func:`check_files` gives without a registry, without an event loop or the network
    stack (the ``portside-lint`` hook runs on every commit)."""
    documents, errors = read_all(files)
    pending = start_plugin_findings(documents)  # plugins run while the rest is checked
    found: list[Finding] = []
    for source, config in documents:
        found += local_findings(source.document, file=source.path, text=source.text, config=config)[
            0
        ]
    return CheckResult(_by_file(documents, found + pending.wait()), errors)


async def check_files(files: list[Path], cached: CachedRegistry | None) -> CheckResult:
    """Findings for every file; ``cached=None`` for the checks that need no registry."""
    import asyncio

    documents, errors = read_all(files)
    pending = start_plugin_findings(documents)
    checks = [
        check_document(
            source.document,
            file=source.path,
            text=source.text,
            config=config,
            cached=cached,
            ask_plugins=False,
        )
        for source, config in documents
    ]
    found, extra = await asyncio.gather(asyncio.gather(*checks), asyncio.to_thread(pending.wait))
    return CheckResult(_by_file(documents, [f for c in found for f in c] + extra), errors)


async def plan_pins(
    files: list[Path], cached: CachedRegistry, *, update: str | None
) -> list[PinPlan]:
    import asyncio

    from portside.pin import PinPlan, plan_pin

    async def one(path: Path) -> PinPlan:
        try:
            text = read_dockerfile(path)
            config = load_config(path)
        except PortsideError as exc:
            return PinPlan(str(path), "", problems=[exc.message])
        return await plan_pin(text, file=str(path), cached=cached, config=config, update=update)

    return list(await asyncio.gather(*(one(p) for p in files)))


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step, keeping its permissions.

    A crash or a full disk leaves the old file as it was, never half of the new one.
    """
    import tempfile

    mode = path.stat().st_mode & 0o7777
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
