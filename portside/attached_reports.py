"""Built-in plugin: vulnerabilities from SARIF 2.1.0 reports attached to the image.

Registered like any third-party plugin (``portside.plugins.BUILTIN_PLUGINS``); block it
by name to replace it. OpenVEX statements are not read here: the core applies them to
every plugin's answer (:func:`portside.vulnerabilities.collect`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from portside.plugins import hookimpl

if TYPE_CHECKING:
    from portside.vulnerabilities import ImageAttachments, VulnerabilityReport


@hookimpl
def portside_vulnerabilities(image: ImageAttachments) -> VulnerabilityReport:
    # Imported here: every command that builds the plugin manager (a warm credentialed
    # answer included) registers this module, and the SARIF reader pulls in asyncio.
    from portside.vulnerabilities import SARIF_TYPES, ReportError, VulnerabilityReport, parse_sarif

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
