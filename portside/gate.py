"""The publish gate: nothing is published on a base image that its publisher retired or
that has known vulnerabilities at or above a configured severity, unless the project
allows a vulnerability by id, with a reason that the publish report keeps.

``[tool.portside.image.gate]``::

    severity = "critical"       # refuse at or above (low, medium, high, critical; "off")
    end-of-life = true          # refuse a base past its end of life
    allow = [{ id = "CVE-2024-6119", reason = "no TLS in this service" }]
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portside import errors, lifecycle, vulnerabilities
from portside.reference import Reference
from portside.registry.manifest import Platform

_KEYS = {"severity", "end-of-life", "allow"}


@dataclass(frozen=True)
class Allowance:
    id: str
    reason: str


@dataclass(frozen=True)
class GateConfig:
    severity: str | None = "critical"  # None: vulnerabilities never stop a publish
    end_of_life: bool = True
    allow: tuple[Allowance, ...] = ()


def parse_gate(value: Any, where: str) -> GateConfig:
    if value is None:
        return GateConfig()
    if not isinstance(value, dict):
        raise errors.ConfigError(f"{where} must be a table")
    unknown = sorted(set(value) - _KEYS)
    if unknown:
        raise errors.ConfigError(
            f"{where}: unknown setting {unknown[0]!r}", hint=f"known: {', '.join(sorted(_KEYS))}"
        )
    severity = value.get("severity", "critical")
    levels = vulnerabilities.SEVERITIES[1:]
    if severity != "off" and severity not in levels:
        raise errors.ConfigError(
            f"{where}.severity is {severity!r}", hint=f"use {', '.join(levels)} or off"
        )
    end_of_life = value.get("end-of-life", True)
    if not isinstance(end_of_life, bool):
        raise errors.ConfigError(f"{where}.end-of-life must be true or false")
    allowed = []
    for i, entry in enumerate(value.get("allow", [])):
        ok = isinstance(entry, dict) and set(entry) == {"id", "reason"}
        if not ok or not all(isinstance(entry[k], str) and entry[k].strip() for k in entry):
            raise errors.ConfigError(
                f'{where}.allow[{i}] must be {{ id = "CVE-…", reason = "why it is safe" }}',
                hint="every allowance needs the reason it is kept for",
            )
        allowed.append(Allowance(entry["id"].upper(), entry["reason"]))
    return GateConfig(None if severity == "off" else severity, end_of_life, tuple(allowed))


class GateRefused(errors.PortsideError):
    """The base image is retired or has vulnerabilities the gate does not allow."""


@dataclass
class GateReport:
    base_images: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    allowed: list[dict[str, str]] = field(default_factory=list)  # the audit trail
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def base_images(*, base: str | None, dockerfile: Path | None, builder: str) -> list[Reference]:
    """What the image is built on: the native builder's ``base``, or the registry images
    the Dockerfile's stages start from (``ARG`` defaults resolved)."""
    if builder == "native":
        return [Reference.parse(base)] if base else []
    if dockerfile is None or not dockerfile.is_file():
        return []
    from portside.check import read_dockerfile
    from portside.dockerfile import parse

    found: dict[str, Reference] = {}
    for use in parse(read_dockerfile(dockerfile)).images:
        if use.is_image and use.resolved:
            try:
                ref = Reference.parse(use.resolved)
            except errors.UsageError:
                continue  # `portside check` reports it; the build itself will fail
            found.setdefault(str(ref), ref)
    return list(found.values())


async def check(
    client: Any,
    bases: Sequence[Reference],
    config: GateConfig,
    *,
    platform: Platform | None = None,
    now: dt.datetime | None = None,
) -> GateReport:
    """Read each base image's lifecycle and vulnerabilities; raise :class:`GateRefused`
    naming everything that stops the publish."""
    now = now or dt.datetime.now(dt.timezone.utc)
    report = GateReport(base_images=[str(b) for b in bases])
    source = lifecycle.ClientSource(client)
    allowed = {a.id: a for a in config.allow}
    for base in bases:
        try:
            subjects = await lifecycle.image_subjects(source, base, platform)
        except (errors.RegistryError, errors.CredentialError) as exc:
            # A base only the builder can reach (a local engine's image store): the
            # build decides; the gate says what it could not check.
            report.warnings.append(f"could not check the base image {base.familiar}: {exc.message}")
            continue
        status = await lifecycle.read_lifecycle(source, base, subjects)
        report.warnings += status.warnings
        eol = status.end_of_life
        if config.end_of_life and eol is not None and eol.passed(now):
            report.refused.append(f"{base.familiar}: {eol.describe(now)}")
        if config.severity is None:
            continue
        found = await vulnerabilities.collect(source, base, subjects)
        report.warnings += found.warnings
        for vulnerability in found.at_least(config.severity):
            allowance = allowed.get(vulnerability.id.upper())
            if allowance is not None:
                report.allowed.append(
                    {"image": str(base), "id": vulnerability.id, "reason": allowance.reason}
                )
            else:
                report.refused.append(f"{base.familiar}: {vulnerability.describe()}")
    return report


def refusal(report: GateReport) -> GateRefused:
    shown = "; ".join(report.refused[:5]) + (
        f"; and {len(report.refused) - 5} more" if len(report.refused) > 5 else ""
    )
    return GateRefused(
        f"refusing to publish on this base: {shown}",
        hint="move to a newer base (portside check shows one), or allow a vulnerability "
        'in [tool.portside.image.gate] allow = [{ id = "CVE-…", reason = "…" }]',
    )
