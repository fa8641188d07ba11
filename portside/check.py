"""Checking and pinning Dockerfiles on disk: what ``portside check`` / ``portside pin``
and the pre-commit hooks share. Files are read once, checked concurrently, and written
back only whole and atomically."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from portside.config import load_config
from portside.dockerfile import parse
from portside.errors import PortsideError
from portside.pin import PinPlan, plan_pin
from portside.policy import Finding, check_document

if TYPE_CHECKING:
    from portside.cache import CachedRegistry


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


async def check_files(files: list[Path], cached: CachedRegistry | None) -> CheckResult:
    """Findings for every file; ``cached=None`` for the checks that need no registry."""
    result = CheckResult()

    async def one(path: Path) -> list[Finding]:
        text = read_dockerfile(path)
        config = load_config(path)
        return await check_document(
            parse(text), file=str(path), text=text, config=config, cached=cached
        )

    outcomes = await asyncio.gather(*(one(p) for p in files), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, PortsideError):
            result.errors.append(outcome.message + (f" ({outcome.hint})" if outcome.hint else ""))
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            result.findings.extend(outcome)
    return result


async def plan_pins(
    files: list[Path], cached: CachedRegistry, *, update: str | None
) -> list[PinPlan]:
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
