"""Vulnerabilities: SARIF 2.1.0 and OpenVEX read from reports attached to images.

The reports are written here from the formats' specifications, in the shapes Trivy and
Grype emit (the fields they fill), and attached as ``oras attach`` does: an artifact
manifest whose subject is the image, with the report as its one layer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness import seed
from harness.registry import Registry
from portside import lifecycle, vulnerabilities
from portside.cache import CachedRegistry, CacheStore
from portside.reference import Digest, Reference
from portside.registry import mediatypes as mt
from portside.registry.client import RegistryClient
from portside.vulnerabilities import ReportError, Vulnerability

REPO = "acme/app"


def trivy_sarif(*findings: tuple[str, str, str, str, str]) -> bytes:
    """(id, score, package, installed, fixed) rows as Trivy writes them."""
    rules, results = [], []
    for i, (vuln, score, package, installed, fixed) in enumerate(findings):
        rules.append(
            {
                "id": vuln,
                "shortDescription": {"text": f"{package}: a flaw"},
                "properties": {"security-severity": score, "tags": ["vulnerability", "security"]},
            }
        )
        results.append(
            {
                "ruleId": vuln,
                "ruleIndex": i,
                "level": "error",
                "message": {
                    "text": f"Package: {package}\nInstalled Version: {installed}\n"
                    f"Vulnerability {vuln}\nFixed Version: {fixed}\n"
                },
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": "library/app"}}}],
            }
        )
    log = {
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{"tool": {"driver": {"name": "Trivy", "rules": rules}}, "results": results}],
    }
    return json.dumps(log).encode()


def grype_sarif() -> bytes:
    log = {
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "Grype",
                        "rules": [
                            {
                                "id": "CVE-2024-0727-libssl3",
                                "help": {"text": "Vulnerability CVE-2024-0727, fixed in 3.0.13-1"},
                                "properties": {"security-severity": "5.5"},
                            }
                        ],
                    }
                },
                "results": [
                    {
                        "ruleId": "CVE-2024-0727-libssl3",
                        "level": "warning",
                        "message": {
                            "text": "A medium vulnerability in deb package: libssl3, version "
                            "3.0.11-1 was found"
                        },
                    }
                ],
            }
        ],
    }
    return json.dumps(log).encode()


def openvex(*statements: tuple[str, str]) -> bytes:
    doc = {
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://example.com/vex/1",
        "author": "Acme security",
        "timestamp": "2026-11-01T00:00:00Z",
        "version": 1,
        "statements": [
            {"vulnerability": {"name": vuln}, "status": status, "products": []}
            for vuln, status in statements
        ],
    }
    return json.dumps(doc).encode()


def test_sarif_from_trivy_and_grype() -> None:
    trivy = vulnerabilities.parse_sarif(
        trivy_sarif(("CVE-2024-6119", "9.8", "openssl", "3.0.13", "3.0.15")), source="t"
    )
    assert trivy == [Vulnerability("CVE-2024-6119", "critical", "openssl", "3.0.15", "t (Trivy)")]
    (grype,) = vulnerabilities.parse_sarif(grype_sarif(), source="g")
    assert (grype.id, grype.severity, grype.package, grype.fixed_in) == (
        "CVE-2024-0727",
        "medium",
        "libssl3",
        "3.0.13-1",
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "not valid SARIF"),
        (b"[1]", "not a SARIF log"),
        (json.dumps({"version": "1.0.0", "runs": []}).encode(), "not 2.1.0"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid SARIF"),
    ],
)
def test_bad_sarif_says_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(ReportError, match=message):
        vulnerabilities.parse_sarif(data, source="x")


def test_openvex_clears_what_does_not_affect_the_image() -> None:
    found = [Vulnerability("CVE-1", "critical"), Vulnerability("CVE-2", "high")]
    statements = vulnerabilities.parse_openvex(
        openvex(("CVE-1", "not_affected"), ("CVE-2", "under_investigation"))
    )
    kept, cleared = vulnerabilities.apply_vex(found, statements, [Digest.of(b"x")])
    assert [v.id for v in kept] == ["CVE-2"] and cleared == ["CVE-1"]
    # A statement about another product does not clear ours.
    other = ("pkg:oci/other@sha256:00",)
    elsewhere = [vulnerabilities.VexStatement("CVE-1", "not_affected", other)]
    kept, _ = vulnerabilities.apply_vex(found, elsewhere, [Digest.of(b"x")])
    assert [v.id for v in kept] == ["CVE-1", "CVE-2"]


async def attach(
    reg: Registry, subject: str, artifact_type: str, document: bytes, *, repo: str = REPO
) -> Digest:
    """What ``oras attach --artifact-type TYPE IMAGE report`` writes."""
    repository = Reference.parse(f"{reg.host}/{repo}")
    async with RegistryClient() as client:
        manifest = await client.get_manifest(repository.with_digest(subject))
        await client.upload_blob(repository, b"{}")
        await client.upload_blob(repository, document)
        raw = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": mt.OCI_MANIFEST,
                "artifactType": artifact_type,
                "config": {"mediaType": mt.OCI_EMPTY, "digest": str(Digest.of(b"{}")), "size": 2},
                "layers": [
                    {
                        "mediaType": artifact_type,
                        "digest": str(Digest.of(document)),
                        "size": len(document),
                        "annotations": {"org.opencontainers.image.title": "report.json"},
                    }
                ],
                "subject": manifest.descriptor.to_json(),
            }
        ).encode()
        target = repository.with_digest(Digest.of(raw))
        return await client.put_manifest(target, raw, mt.OCI_MANIFEST)


async def collected(reg: Registry, tmp_path: Path, tag: str) -> Any:
    ref = Reference.parse(f"{reg.host}/{REPO}:{tag}")
    async with CachedRegistry(store=CacheStore(str(tmp_path / "cache"))) as cached:
        subjects = await lifecycle.image_subjects(cached, ref)
        return await vulnerabilities.collect(cached, ref, subjects)


async def test_attached_reports_end_to_end(plain_registry: Registry, tmp_path: Path) -> None:
    image = seed.build_artifact("vulnerable", ("amd64", "arm64v8"), platforms=True)
    pushed = seed.push_image(plain_registry, REPO, image, ["1.0"], via="fs")
    index = pushed.digest
    # The scanner scanned the amd64 image: its report is attached to that manifest.
    assert isinstance(image, seed.Index)
    await attach(
        plain_registry,
        image.child("amd64").digest,
        "application/sarif+json",
        trivy_sarif(
            ("CVE-2024-6119", "9.8", "openssl", "3.0.13", "3.0.15"),
            ("CVE-2024-2511", "5.9", "openssl", "3.0.13", "3.0.14"),
        ),
    )
    vex = openvex(("CVE-2024-2511", "not_affected"))
    await attach(plain_registry, index, "application/vnd.openvex+json", vex)
    bad = await attach(plain_registry, index, "application/sarif+json", b'{"runs": 7}')
    report = await collected(plain_registry, tmp_path, "1.0")
    assert [v.id for v in report.vulnerabilities] == ["CVE-2024-6119"]
    assert report.highest == "critical"
    assert report.suppressed == ["CVE-2024-2511"]
    assert len(report.warnings) == 1 and bad.short in report.warnings[0]


async def test_an_image_with_nothing_attached_has_no_vulnerabilities(
    plain_registry: Registry, tmp_path: Path
) -> None:
    seed.push_image(plain_registry, REPO, seed.build_image("clean"), ["2.0"], via="fs")
    report = await collected(plain_registry, tmp_path, "2.0")
    assert report.vulnerabilities == [] and report.warnings == [] and report.highest is None


def test_a_failing_plugin_is_named_and_the_others_stand() -> None:
    import pluggy

    from portside import attached_reports, hookspecs
    from portside.plugins import hookimpl

    class Broken:
        @hookimpl
        def portside_vulnerabilities(self, image: Any) -> Any:
            raise RuntimeError("scanner not installed")

    pm = pluggy.PluginManager("portside")
    pm.add_hookspecs(hookspecs)
    pm.register(attached_reports, name="portside.attached_reports")
    pm.register(Broken(), name="broken-scanner")

    class NoSource:
        async def referrers(self, ref: Reference) -> list[Any]:
            return []

    subject = seed.build_image("x")
    manifest_digest = Digest.parse(subject.digest)

    class Subject:
        digest = manifest_digest

    import asyncio

    report = asyncio.run(
        vulnerabilities.collect(
            NoSource(),  # type: ignore[arg-type]
            Reference.parse("127.0.0.1:1/acme/app:1"),
            [Subject()],  # type: ignore[list-item]
            plugins=pm,
        )
    )
    assert report.vulnerabilities == []
    assert report.warnings == ["vulnerability plugin broken-scanner failed: scanner not installed"]
