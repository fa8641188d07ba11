"""Built-in plugin: vulnerabilities from SARIF 2.1.0 reports attached to the image.

Registered like any third-party plugin (``portside.plugins.BUILTIN_PLUGINS``); block it
by name to replace it. OpenVEX statements are not read here: the core applies them to
every plugin's answer (:func:`portside.vulnerabilities.collect`).
"""

from __future__ import annotations

from portside.plugins import hookimpl
from portside.vulnerabilities import (
    SARIF_TYPES,
    ImageAttachments,
    ReportError,
    VulnerabilityReport,
    parse_sarif,
)


@hookimpl
def portside_vulnerabilities(image: ImageAttachments) -> VulnerabilityReport:
    report = VulnerabilityReport()
    for attachment in image.attachments:
        if attachment.artifact_type not in SARIF_TYPES:
            continue
        where = f"SARIF {attachment.digest.short}"
        for document in attachment.documents:
            try:
                report.vulnerabilities += parse_sarif(document, source=where)
            except ReportError as exc:
                report.warnings.append(f"{image.reference}: {where} {exc}; ignored")
    return report
