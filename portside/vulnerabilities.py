"""Known vulnerabilities of an image: the contract's types, the two report formats that
scanners attach to images (SARIF 2.1.0, OpenVEX), and collecting them.

Reports travel as OCI referrers of the image's digest (``oras attach --artifact-type
application/sarif+json IMAGE report.sarif``; OpenVEX as ``application/vnd.openvex+json``).
Plugins turn what is attached (or anything else: a local scanner) into
:class:`Vulnerability` objects through the ``portside_vulnerabilities`` hook; the
built-in one reads SARIF (:mod:`portside.attached_reports`). OpenVEX statements attached
the same way then remove what the publisher says does not affect the image
(``not_affected``, ``fixed``), whichever plugin reported it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from portside import errors, jsonscan

# The hook's types, defined in the plugin contract (below the plugin manager this
# module calls); re-exported here.
from portside.contract import SEVERITIES as SEVERITIES
from portside.contract import Attachment as Attachment
from portside.contract import ImageAttachments as ImageAttachments
from portside.contract import Vulnerability as Vulnerability
from portside.contract import VulnerabilityReport as VulnerabilityReport
from portside.contract import severity_rank as severity_rank
from portside.reference import Digest, Reference
from portside.registry.manifest import Descriptor, Manifest

SARIF_TYPES = frozenset({"application/sarif+json", "application/vnd.sarif+json"})
OPENVEX_TYPES = frozenset({"application/vnd.openvex+json", "application/openvex+json"})
MAX_REPORT_BYTES = 16 << 20
_ID = re.compile(r"(CVE-\d{4}-\d{4,}|GHSA(?:-[23456789cfghjmpqrvwx]{4}){3})", re.I)


class ReportError(ValueError):
    """A report that is not what its artifact type says; the message says why."""


def load_json(data: bytes, what: str) -> Any:
    try:
        return jsonscan.loads(data)  # bounded: a report nested too deeply is a ValueError
    except ValueError:
        raise ReportError(f"is not valid {what} (not JSON)") from None


# -- SARIF 2.1.0 ---------------------------------------------------------------------------


def _band(score: Any) -> str | None:
    try:
        value = float(score)
    except (TypeError, ValueError):
        return None
    if value >= 9.0:
        return "critical"
    if value >= 7.0:
        return "high"
    if value >= 4.0:
        return "medium"
    return "low" if value > 0 else None


def _named_severity(values: Iterable[Any]) -> str | None:
    for value in values:
        if isinstance(value, str) and value.lower() in SEVERITIES[1:]:
            return value.lower()
    return None


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    if isinstance(value, dict):
        text = value.get("text") or value.get("markdown")
        return text if isinstance(text, str) else ""
    return ""


def _field(pattern: str, *texts: str) -> str | None:
    for text in texts:
        match = re.search(pattern, text)
        if match:
            return match.group(1).strip().rstrip(",")
    return None


def parse_sarif(data: bytes, *, source: str) -> list[Vulnerability]:
    """Vulnerabilities in a SARIF 2.1.0 log, as Trivy, Grype and Docker Scout write them:
    the id from ``ruleId``, the severity from the rule's ``security-severity`` (a CVSS
    score) or severity tag, else the result's ``level``; package and fixed version from
    the result's or rule's properties, else from the message text."""
    log = load_json(data, "SARIF")
    if not isinstance(log, dict) or not isinstance(log.get("runs"), list):
        raise ReportError("is not a SARIF log (no runs)")
    if str(log.get("version", "2.1.0")) != "2.1.0":
        raise ReportError(f"is SARIF {str(log.get('version'))[:20]!r}, not 2.1.0")
    found: dict[tuple[str, str | None], Vulnerability] = {}
    for run in log["runs"]:
        if not isinstance(run, dict):
            raise ReportError("has a run that is not an object")
        driver = _object(_object(run.get("tool")).get("driver"))
        tool = driver.get("name") if isinstance(driver.get("name"), str) else "SARIF"
        listed = driver.get("rules")
        rules: list[Any] = listed if isinstance(listed, list) else []
        by_id = {r.get("id"): r for r in rules if isinstance(r, dict)}
        for result in run.get("results") or []:
            if not isinstance(result, dict):
                raise ReportError("has a result that is not an object")
            rule_id = result.get("ruleId")
            index = result.get("ruleIndex")
            found_rule = by_id.get(rule_id)
            if found_rule is None and isinstance(index, int) and 0 <= index < len(rules):
                found_rule = rules[index]
            rule = _object(found_rule)
            rule_id = rule_id if isinstance(rule_id, str) else rule.get("id")
            if not isinstance(rule_id, str) or not rule_id:
                continue
            match = _ID.search(rule_id)
            vuln_id = match.group(1).upper() if match else rule_id
            props = _object(rule.get("properties"))
            rprops = _object(result.get("properties"))
            tags = [*(props.get("tags") or []), *(rprops.get("tags") or [])]
            severity = (
                _band(rprops.get("security-severity") or props.get("security-severity"))
                or _named_severity([rprops.get("severity"), props.get("cvssV3_severity"), *tags])
                or {"error": "high", "warning": "medium", "note": "low"}.get(
                    str(result.get("level")), "unknown"
                )
            )
            message = _text(result.get("message"))
            help_text = _text(rule.get("help")) + "\n" + _text(rule.get("fullDescription"))
            package = (
                rprops.get("PkgName")
                or rprops.get("package")
                or props.get("package")
                or _field(r"Package: (\S+)", message, help_text)
                or _field(r"package: (\S+)", message)
            )
            fixed = (
                rprops.get("FixedVersion")
                or rprops.get("fixed_version")
                or props.get("fixed_version")
                or _field(r"Fixed Version: (\S+)", message, help_text)
                or _field(r"[Ff]ixed in (?:version )?(\S+)", message, help_text)
            )
            vulnerability = Vulnerability(
                vuln_id,
                severity,
                package if isinstance(package, str) and package else None,
                fixed if isinstance(fixed, str) and fixed else None,
                f"{source} ({tool})",
            )
            key = (vuln_id, vulnerability.package)
            kept = found.get(key)
            if kept is None or severity_rank(severity) > severity_rank(kept.severity):
                found[key] = vulnerability
    return list(found.values())


# -- OpenVEX -------------------------------------------------------------------------------


@dataclass(frozen=True)
class VexStatement:
    vulnerability: str
    status: str  # not_affected, affected, fixed, under_investigation
    products: tuple[str, ...]  # product @ids; empty: the image the document is attached to
    timestamp: str = ""


_VEX_STATUSES = ("not_affected", "affected", "fixed", "under_investigation")


def parse_openvex(data: bytes) -> list[VexStatement]:
    document = load_json(data, "OpenVEX")
    if not isinstance(document, dict) or "openvex" not in str(document.get("@context", "")):
        raise ReportError("is not an OpenVEX document (no openvex @context)")
    statements = document.get("statements")
    if not isinstance(statements, list):
        raise ReportError("is not an OpenVEX document (no statements)")
    default_time = str(document.get("timestamp") or "")
    parsed = []
    for statement in statements:
        if not isinstance(statement, dict):
            raise ReportError("has a statement that is not an object")
        vulnerability = statement.get("vulnerability")
        if isinstance(vulnerability, dict):
            vulnerability = vulnerability.get("name") or vulnerability.get("@id")
        status = statement.get("status")
        if not isinstance(vulnerability, str) or status not in _VEX_STATUSES:
            raise ReportError("has a statement without a vulnerability name or a valid status")
        products = []
        for product in statement.get("products") or []:
            name = product.get("@id") if isinstance(product, dict) else product
            if isinstance(name, str):
                products.append(name)
        parsed.append(
            VexStatement(
                vulnerability.upper(),
                status,
                tuple(products),
                str(statement.get("timestamp") or default_time),
            )
        )
    return parsed


def apply_vex(
    vulnerabilities: Sequence[Vulnerability],
    statements: Sequence[VexStatement],
    digests: Sequence[Digest],
) -> tuple[list[Vulnerability], list[str]]:
    """Drop what the latest statement about it says does not affect this image. A
    statement applies when it names no product (it is attached to the image) or names
    one of the image's digests."""
    ours = [str(d) for d in digests] + [d.hex for d in digests]

    def applies(statement: VexStatement) -> bool:
        return not statement.products or any(
            digest in product for product in statement.products for digest in ours
        )

    latest: dict[str, VexStatement] = {}
    for statement in sorted(statements, key=lambda s: s.timestamp):
        if applies(statement):
            latest[statement.vulnerability] = statement
    kept, cleared = [], []
    for vulnerability in vulnerabilities:
        said = latest.get(vulnerability.id.upper())
        if said is not None and said.status in ("not_affected", "fixed"):
            cleared.append(vulnerability.id)
        else:
            kept.append(vulnerability)
    return kept, sorted(set(cleared))


# -- collecting ----------------------------------------------------------------------------


class Source(Protocol):
    """What collecting needs: :class:`portside.cache.CachedRegistry`."""

    async def manifest(self, ref: Reference) -> Manifest: ...

    async def referrers(self, ref: Reference) -> list[Descriptor]: ...

    async def blob(
        self, ref: Reference, digest: Digest, *, max_bytes: int | None = None
    ) -> bytes: ...


async def _attachment(source: Source, ref: Reference, descriptor: Descriptor) -> Attachment:
    manifest = await source.manifest(ref.with_digest(descriptor.digest))
    documents = await asyncio.gather(
        *(source.blob(ref, layer.digest, max_bytes=MAX_REPORT_BYTES) for layer in manifest.layers)
    )
    return Attachment(
        descriptor.artifact_type or "",
        descriptor.digest,
        dict(manifest.annotations),
        tuple(documents),
    )


async def read_attachments(
    source: Source, ref: Reference, subjects: Sequence[Manifest], *, types: frozenset[str]
) -> tuple[list[Attachment], list[str]]:
    """The attached artifacts of these types (reports), and a warning per one unreadable."""
    listed = await asyncio.gather(*(source.referrers(ref.with_digest(m.digest)) for m in subjects))
    wanted = {d.digest: d for found in listed for d in found if d.artifact_type in types}
    results = await asyncio.gather(
        *(_attachment(source, ref, d) for d in wanted.values()), return_exceptions=True
    )
    attachments, warnings = [], []
    for descriptor, result in zip(wanted.values(), results, strict=True):
        if isinstance(result, errors.IntegrityError):
            warnings.append(
                f"{ref.name}: report {descriptor.digest.short} cannot be read ({result.detail}); "
                "ignored"
            )
        elif isinstance(result, BaseException):
            raise result
        else:
            attachments.append(result)
    return attachments, warnings


async def collect(
    source: Source,
    ref: Reference,
    subjects: Sequence[Manifest],
    *,
    plugins: Any = None,
) -> VulnerabilityReport:
    """Every plugin's vulnerabilities of the image (each plugin on its own: one that
    fails is a warning naming it), less what attached OpenVEX statements clear."""
    attachments, warnings = await read_attachments(
        source, ref, subjects, types=SARIF_TYPES | OPENVEX_TYPES
    )
    image = ImageAttachments(ref.name, tuple(m.digest for m in subjects), tuple(attachments))
    if plugins is None:
        from portside.plugins import get_plugin_manager

        plugins = get_plugin_manager()
    report = VulnerabilityReport(warnings=warnings)
    found: list[Vulnerability] = []
    for impl in reversed(plugins.hook.portside_vulnerabilities.get_hookimpls()):
        try:
            result = await asyncio.to_thread(impl.function, image)
            if isinstance(result, VulnerabilityReport):
                report.warnings += result.warnings
                result = result.vulnerabilities
            if not isinstance(result, list) or not all(
                isinstance(v, Vulnerability) for v in result
            ):
                raise TypeError(f"returned {type(result).__name__}, not a list of Vulnerability")
            found += result
        except Exception as exc:
            text = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            report.warnings.append(f"vulnerability plugin {impl.plugin_name} failed: {text}")
    statements: list[VexStatement] = []
    for attachment in attachments:
        if attachment.artifact_type not in OPENVEX_TYPES:
            continue
        for document in attachment.documents:
            try:
                statements += parse_openvex(document)
            except ReportError as exc:
                report.warnings.append(
                    f"{ref.name}: OpenVEX {attachment.digest.short} {exc}; ignored"
                )
    report.vulnerabilities, report.suppressed = apply_vex(found, statements, image.digests)
    return report
