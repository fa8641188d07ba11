"""The publish gate (no release on a retired or critically vulnerable base) and
retiring what a publish supersedes, end to end with the native builder against the real
registry; skopeo and the lifecycle reader check what consumers then see."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_build_native import seed_base
from test_publish_cli import configure
from test_vulnerabilities import attach, trivy_sarif

from harness.project import make_project
from harness.registry import Registry
from harness.skopeo import Skopeo
from portside import lifecycle, publish
from portside.cache import CachedRegistry, CacheStore
from portside.reference import Reference
from portside.registry.client import RegistryClient


@pytest.fixture(autouse=True)
def _reproducible(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-creds"))
    (tmp_path / "no-creds").mkdir()


async def run(project: Path) -> publish.PublishReport:
    return await publish.run_publish(project, progress=lambda step, message: None)


async def retire_base(reg: Registry, when: str) -> None:
    async with RegistryClient() as client:
        await lifecycle.retire(
            client,
            Reference.parse(reg.ref("base/python", "3.12")),
            date=lifecycle.parse_date(when),  # type: ignore[arg-type]
            reason="python 3.12 images are no longer built",
        )


async def test_a_retired_base_stops_the_release_before_anything_is_pushed(
    plain_registry: Registry, tmp_path: Path
) -> None:
    seed_base(plain_registry)
    await retire_base(plain_registry, "2026-01-01")
    project = configure(
        make_project(tmp_path / "app"),
        destinations=[plain_registry.ref("team/app")],
        base=plain_registry.ref("base/python", "3.12"),
    )
    with pytest.raises(publish.PublishError) as failed:
        await run(project)
    assert str(failed.value).startswith("gate: refusing to publish on this base: ")
    assert "end of life since 2026-01-01: python 3.12 images are no longer built" in str(
        failed.value
    )
    assert failed.value.report.gate is not None and failed.value.report.gate.refused
    assert not (plain_registry.root / "docker/registry/v2/repositories/team/app").exists()


async def test_a_critical_vulnerability_stops_it_unless_allowed_with_a_reason(
    plain_registry: Registry, tmp_path: Path
) -> None:
    base = seed_base(plain_registry)
    await attach(
        plain_registry,
        base,
        "application/sarif+json",
        trivy_sarif(("CVE-2024-6119", "9.8", "openssl", "3.0.13", "3.0.15")),
        repo="base/python",
    )
    destination = plain_registry.ref("team/app")
    project = configure(
        make_project(tmp_path / "app"),
        destinations=[destination],
        base=plain_registry.ref("base/python", "3.12"),
    )
    with pytest.raises(publish.PublishError) as failed:
        await run(project)
    assert "CVE-2024-6119 (critical in openssl, fixed in 3.0.15)" in str(failed.value)
    assert "allow" in (failed.value.hint or "")

    with (project / "pyproject.toml").open("a") as handle:
        handle.write(
            '\n[tool.portside.image.gate]\nallow = [{ id = "CVE-2024-6119", '
            'reason = "the service makes no TLS connections" }]\n'
        )
    report = await run(project)
    assert report.ok and report.gate is not None
    assert report.gate.allowed == [
        {
            "image": plain_registry.ref("base/python", "3.12"),
            "id": "CVE-2024-6119",
            "reason": "the service makes no TLS connections",
        }
    ]
    assert "1.4.2" in Skopeo.for_registry(plain_registry).list_tags(destination)


async def test_retire_superseded_marks_what_moving_tags_leave(
    plain_registry: Registry, tmp_path: Path
) -> None:
    seed_base(plain_registry)
    destination = plain_registry.ref("team/app")
    project = configure(
        make_project(tmp_path / "app", version="1.4.2"),
        destinations=[destination],
        base=plain_registry.ref("base/python", "3.12"),
        extra="retire-superseded = true\n",
    )
    first = await run(project)
    assert first.retired == []
    (project / "hello" / "__init__.py").write_text('GREETING = "hello again"\n')
    text = (
        (project / "pyproject.toml").read_text().replace('version = "1.4.2"', 'version = "1.4.3"')
    )
    (project / "pyproject.toml").write_text(text)
    second = await run(project)
    assert [r["digest"] for r in second.retired] == [first.digest]
    assert "superseded by " + second.digest in second.retired[0]["reason"]
    skopeo = Skopeo.for_registry(plain_registry)
    assert skopeo.digest(f"{destination}:1.4") == second.digest
    assert skopeo.digest(f"{destination}:1.4.2") == first.digest  # still there, retired
    async with CachedRegistry(store=CacheStore(str(tmp_path / "cache"))) as cached:
        old = await lifecycle.lifecycle_of(cached, Reference.parse(f"{destination}:1.4.2"))
        new = await lifecycle.lifecycle_of(cached, Reference.parse(f"{destination}:1.4.3"))
    assert old.end_of_life is not None and old.end_of_life.reason is not None
    assert new.end_of_life is None
    assert second.to_json()["retired"][0]["digest"] == first.digest  # in the JSON report
