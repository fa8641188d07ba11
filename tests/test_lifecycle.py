"""Lifecycle: retire, read end of life, pull back; against the real registry, with skopeo
reading back what was written (distribution 2.8: the tag-schema fallback for referrers)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness import seed
from harness.cli import run_portside
from harness.proxy import FaultProxy
from harness.registry import Registry
from harness.skopeo import Skopeo
from portside import lifecycle
from portside.cache import CachedRegistry, CacheStore
from portside.reference import Digest, Reference
from portside.registry import mediatypes as mt
from portside.registry.client import RegistryClient

NOW = dt.datetime.now(dt.timezone.utc)
REPO = "acme/app"


def push_release(reg: Registry, repo: str, tags: dict[str, list[str]], *, index: bool) -> dict:
    """One image per build (an index over two platforms when ``index``), tagged."""
    digests = {}
    for days, (build, build_tags) in enumerate(tags.items()):
        created = (NOW - dt.timedelta(days=100 - days)).strftime("%Y-%m-%dT%H:%M:%SZ")
        artifact = seed.build_artifact(
            f"{repo}-{build}", ("amd64", "arm64v8"), platforms=index, created=created
        )
        digests[build] = seed.push_image(reg, repo, artifact, build_tags, via="fs").digest
    return digests


def referrer_index(reg: Registry, repo: str, subject: str) -> dict:
    """The tag-schema referrers index of ``subject``, as skopeo reads it."""
    skopeo = Skopeo.for_registry(reg)
    tag = "sha256-" + Digest.parse(subject).hex
    assert tag in skopeo.list_tags(f"{reg.host}/{repo}")
    return json.loads(skopeo.inspect_raw(f"{reg.host}/{repo}:{tag}"))


async def lifecycle_of(reg: Registry, ref_text: str, tmp_path: Path) -> lifecycle.Lifecycle:
    async with CachedRegistry(store=CacheStore(str(tmp_path / "cache"))) as cached:
        return await lifecycle.lifecycle_of(cached, Reference.parse(ref_text))


async def test_retire_attaches_what_oras_writes_to_the_index_and_each_platform(
    plain_registry: Registry, tmp_path: Path
) -> None:
    digests = push_release(plain_registry, REPO, {"b1": ["1.0.0"]}, index=True)
    result = run_portside(
        "retire", f"{plain_registry.host}/{REPO}:1.0.0", "--date", "2026-01-31",
        "--reason", "CVE-2026-0001 in openssl", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    retired = json.loads(result.stdout)["retired"]
    skopeo = Skopeo.for_registry(plain_registry)
    index = json.loads(skopeo.inspect_raw(f"{plain_registry.host}/{REPO}:1.0.0"))
    subjects = [digests["b1"]] + [m["digest"] for m in index["manifests"]]
    assert [r["subject"] for r in retired] == subjects
    for subject in subjects:
        (entry,) = referrer_index(plain_registry, REPO, subject)["manifests"]
        assert entry["artifactType"] == lifecycle.LIFECYCLE_ARTIFACT_TYPE
        artifact = json.loads(skopeo.inspect_raw(f"{plain_registry.host}/{REPO}@{entry['digest']}"))
        assert artifact["subject"]["digest"] == subject
        assert artifact["config"]["mediaType"] == mt.OCI_EMPTY
        assert artifact["layers"][0]["digest"] == artifact["config"]["digest"]
        notes = artifact["annotations"]
        assert notes[lifecycle.END_OF_LIFE_ANNOTATION] == "2026-01-31T00:00:00Z"
        assert notes[lifecycle.REASON_ANNOTATION] == "CVE-2026-0001 in openssl"
    found = await lifecycle_of(plain_registry, f"{plain_registry.host}/{REPO}:1.0.0", tmp_path)
    assert found.end_of_life is not None and found.end_of_life.passed(NOW)
    assert found.end_of_life.reason == "CVE-2026-0001 in openssl"
    assert found.warnings == []


async def test_a_future_date_is_not_yet_passed_and_says_when(
    plain_registry: Registry, tmp_path: Path
) -> None:
    push_release(plain_registry, REPO, {"b1": ["2.0.0"]}, index=False)
    later = (NOW + dt.timedelta(days=40)).date().isoformat()
    assert run_portside(
        "retire", f"{plain_registry.host}/{REPO}:2.0.0", "--date", later, cwd=tmp_path
    ).returncode == 0  # fmt: skip
    found = await lifecycle_of(plain_registry, f"{plain_registry.host}/{REPO}:2.0.0", tmp_path)
    assert found.end_of_life is not None and not found.end_of_life.passed(NOW)
    assert found.end_of_life.describe(NOW) == f"reaches its end of life on {later}"


async def _put_artifact(reg: Registry, subject: str, annotations: dict[str, str]) -> Digest:
    repository = Reference.parse(f"{reg.host}/{REPO}")
    async with RegistryClient() as client:
        manifest = await client.get_manifest(repository.with_digest(subject))
        await client.upload_blob(repository, b"{}")
        empty = {"mediaType": mt.OCI_EMPTY, "digest": str(Digest.of(b"{}")), "size": 2}
        raw = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": mt.OCI_MANIFEST,
                "artifactType": lifecycle.LIFECYCLE_ARTIFACT_TYPE,
                "config": empty,
                "layers": [empty],
                "subject": manifest.descriptor.to_json(),
                "annotations": annotations,
            }
        ).encode()
        return await client.put_manifest(
            repository.with_digest(Digest.of(raw)), raw, mt.OCI_MANIFEST
        )


async def test_a_bad_artifact_is_named_once_and_never_hides_a_good_one(
    plain_registry: Registry, tmp_path: Path
) -> None:
    digests = push_release(plain_registry, REPO, {"b1": ["3.0.0"]}, index=False)
    bad = await _put_artifact(
        plain_registry, digests["b1"], {lifecycle.END_OF_LIFE_ANNOTATION: "next spring"}
    )
    # The date as .NET's images carry it: seven fraction digits.
    await _put_artifact(
        plain_registry,
        digests["b1"],
        {lifecycle.END_OF_LIFE_ANNOTATION: "2024-05-12T21:15:10.8343521Z"},
    )
    found = await lifecycle_of(plain_registry, f"{plain_registry.host}/{REPO}:3.0.0", tmp_path)
    assert found.end_of_life is not None
    assert found.end_of_life.date == dt.datetime(2024, 5, 12, 21, 15, 10, 834352, dt.timezone.utc)
    assert len(found.warnings) == 1
    assert bad.short in found.warnings[0] and "'next spring'" in found.warnings[0]


def test_bad_dates_on_the_command_line_are_usage_errors(tmp_path: Path) -> None:
    result = run_portside("retire", "127.0.0.1:9/acme/app:1", "--date", "31/01/2026", cwd=tmp_path)
    assert result.returncode == 2
    assert "--date '31/01/2026' is not a date" in result.stderr


# -- pull-back -----------------------------------------------------------------------------

LINE = {
    "b140": ["1.4.0"],
    "b141": ["1.4.1"],
    "b142": ["1.4.2", "1.4", "1", "latest"],
}


def tag_digests(reg: Registry, repo: str = REPO) -> dict[str, str]:
    skopeo = Skopeo.for_registry(reg)
    return {
        tag: skopeo.digest(f"{reg.host}/{repo}:{tag}")
        for tag in skopeo.list_tags(f"{reg.host}/{repo}")
        if not tag.startswith("sha256-")
    }


def test_pull_back_dry_run_shows_every_change_and_makes_none(
    plain_registry: Registry, tmp_path: Path
) -> None:
    push_release(plain_registry, REPO, LINE, index=False)
    before = tag_digests(plain_registry)
    result = run_portside(
        "pull-back", f"{plain_registry.host}/{REPO}:1.4.2", "--reason", "CVE-2026-1",
        "--dry-run", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    moves = {m["tag"]: m["to_tag"] for m in plan["tags"]}
    assert moves == {"1": "1.4.1", "1.4": "1.4.1", "latest": "1.4.1", "1.4.2": None}
    assert tag_digests(plain_registry) == before
    listed = Skopeo.for_registry(plain_registry).list_tags(f"{plain_registry.host}/{REPO}")
    assert sorted(listed) == sorted(before)  # nothing attached either


def test_pull_back_on_a_registry_that_cannot_delete_a_tag_changes_nothing(
    plain_registry: Registry, tmp_path: Path
) -> None:
    push_release(plain_registry, REPO, LINE, index=False)
    before = tag_digests(plain_registry)
    result = run_portside(
        "pull-back", f"{plain_registry.host}/{REPO}:1.4.2", "--reason", "CVE-2026-1", cwd=tmp_path
    )
    assert result.returncode == 5
    assert "cannot delete the tag '1.4.2'" in result.stderr and "--delete-image" in result.stderr
    assert "nothing was changed" in result.stderr
    assert tag_digests(plain_registry) == before
    tags = Skopeo.for_registry(plain_registry).list_tags(f"{plain_registry.host}/{REPO}")
    assert not any(t.startswith("sha256-") for t in tags)  # not even retired


async def test_pull_back_moves_tags_to_the_newest_build_not_retired(
    plain_registry: Registry, tmp_path: Path
) -> None:
    digests = push_release(plain_registry, REPO, LINE, index=True)
    # 1.4.1 was retired before: the tags go back past it, to 1.4.0.
    assert run_portside(
        "retire", f"{plain_registry.host}/{REPO}:1.4.1", "--date", "2026-01-01", cwd=tmp_path
    ).returncode == 0  # fmt: skip
    result = run_portside(
        "pull-back", f"{plain_registry.host}/{REPO}:1.4.2", "--reason", "CVE-2026-1",
        "--delete-image", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    after = tag_digests(plain_registry)
    assert after == {
        "1.4.0": digests["b140"],
        "1.4.1": digests["b141"],
        "1.4": digests["b140"],
        "1": digests["b140"],
        "latest": digests["b140"],
    }
    # A consumer's view of the digest that was pulled back: it is gone, and what
    # the moved tags now name is not retired.
    with pytest.raises(Exception, match="manifest unknown"):
        Skopeo.for_registry(plain_registry).inspect_raw(
            f"{plain_registry.host}/{REPO}@{digests['b142']}"
        )
    now_latest = await lifecycle_of(
        plain_registry, f"{plain_registry.host}/{REPO}:latest", tmp_path
    )
    assert now_latest.end_of_life is None


def test_a_pull_back_killed_half_way_leaves_every_tag_old_or_new(
    plain_registry: Registry, proxy_factory: Callable[..., FaultProxy], tmp_path: Path
) -> None:
    line = {"b1": ["2.0.0"], "b2": ["2.0.1", "2.0", "2", "latest", "stable"]}
    digests = push_release(plain_registry, REPO, line, index=False)
    proxy = proxy_factory(plain_registry)
    # Slow tag moves (a PUT of a manifest by tag name), so the kill lands between them.
    proxy.delay("PUT", r"/manifests/(2|latest|stable)", 1.0)
    env = {**os.environ, "PORTSIDE_CACHE_DIR": str(tmp_path / "cache")}
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "portside", "pull-back", f"{proxy.host}/{REPO}:2.0.1"),
            *("--reason", "bad build", "--delete-image"),
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60

    def tag_puts() -> int:
        return sum(
            r.method == "PUT" and "/manifests/" in r.path and "/manifests/sha256" not in r.path
            for r in proxy.requests
        )

    # The second tag move has started, so the first is done: kill it there.
    while tag_puts() < 2:
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    after = tag_digests(plain_registry)
    assert set(after) == {"2.0.0", "2.0.1", "2.0", "2", "latest", "stable"}  # none missing
    moving = [after[tag] for tag in ("2.0", "2", "latest", "stable")]
    assert set(moving) == {digests["b1"], digests["b2"]}  # half-way: some moved, some not
    assert after["2.0.0"] == digests["b1"]


# -- what consumers see: check ---------------------------------------------------------------


def check_json(tmp_path: Path, text: str) -> tuple[int, list[dict], str]:
    folder = tmp_path / "consumer"
    folder.mkdir(exist_ok=True)
    (folder / "Dockerfile").write_text(text)
    result = run_portside(
        "check", "--json", str(folder), cwd=tmp_path,
        env={"PORTSIDE_CACHE_DIR": str(tmp_path / "check-cache")},
    )  # fmt: skip
    return result.returncode, json.loads(result.stdout or "[]"), result.stderr


def test_check_reports_a_retired_base_with_the_newest_build_that_is_not(
    plain_registry: Registry, tmp_path: Path
) -> None:
    digests = push_release(plain_registry, REPO, LINE, index=True)
    host = plain_registry.host
    for tag in ("1.4.2", "1.4.1"):
        retired = run_portside(
            "retire",
            f"{host}/{REPO}:{tag}",
            "--date",
            "2026-01-01",
            "--reason",
            "EOL",
            cwd=tmp_path,
        )
        assert retired.returncode == 0, retired.stderr
    code, findings, _ = check_json(
        tmp_path, f"FROM {host}/{REPO}:1.4.1@{digests['b141']}\nFROM {host}/{REPO}:1.4.0\n"
    )
    assert code == 1  # an error-level finding
    eol = [f for f in findings if f["kind"] == "end-of-life"]
    assert len(eol) == 1 and eol[0]["line"] == 1 and eol[0]["severity"] == "error"
    assert "end of life since 2026-01-01: EOL" in eol[0]["message"]
    # 1.4.2 is retired too: the fix is the newest build of the line that is not, 1.4.0,
    # pinned as the line was.
    assert eol[0]["suggestion"] == f"{host}/{REPO}:1.4.0@{digests['b140']}"


def test_check_warns_before_the_date_and_reports_vulnerabilities(
    plain_registry: Registry, tmp_path: Path
) -> None:
    from test_vulnerabilities import attach, openvex, trivy_sarif

    digests = push_release(plain_registry, REPO, {"b1": ["3.0.0"]}, index=False)
    host = plain_registry.host
    later = (NOW + dt.timedelta(days=30)).date().isoformat()
    assert (
        run_portside("retire", f"{host}/{REPO}:3.0.0", "--date", later, cwd=tmp_path).returncode
        == 0
    )
    import asyncio

    async def reports() -> None:
        await attach(
            plain_registry,
            digests["b1"],
            "application/sarif+json",
            trivy_sarif(
                ("CVE-2024-6119", "7.5", "openssl", "3.0.13", "3.0.15"),
                ("CVE-2024-2511", "9.8", "openssl", "3.0.13", "3.0.14"),
            ),
        )
        await attach(
            plain_registry,
            digests["b1"],
            "application/vnd.openvex+json",
            openvex(("CVE-2024-2511", "not_affected")),
        )

    asyncio.run(reports())
    code, findings, _ = check_json(tmp_path, f"FROM {host}/{REPO}:3.0.0\n")
    kinds = {f["kind"]: f for f in findings}
    assert kinds["end-of-life-soon"]["severity"] == "warning"
    assert f"reaches its end of life on {later}" in kinds["end-of-life-soon"]["message"]
    # The critical one does not affect this image (OpenVEX): the worst left is high.
    assert kinds["vulnerable"]["severity"] == "warning"
    assert "CVE-2024-6119 (high in openssl, fixed in 3.0.15)" in kinds["vulnerable"]["message"]
    assert "CVE-2024-2511" not in kinds["vulnerable"]["message"]
    assert code == 0  # warnings only


def test_a_malformed_lifecycle_artifact_is_one_warning_and_the_check_goes_on(
    plain_registry: Registry, tmp_path: Path
) -> None:
    import asyncio

    digests = push_release(plain_registry, REPO, {"b1": ["5.0.0"]}, index=False)
    bad = asyncio.run(
        _put_artifact(plain_registry, digests["b1"], {lifecycle.END_OF_LIFE_ANNOTATION: "soon"})
    )
    code, findings, stderr = check_json(tmp_path, f"FROM {plain_registry.host}/{REPO}:5.0.0\n")
    assert code == 0
    assert not [f for f in findings if f["kind"].startswith(("end-of-life", "vulnerable"))]
    warnings = [line for line in stderr.splitlines() if bad.short in line]
    assert len(warnings) == 1 and "'soon'" in warnings[0]


def test_the_check_hook_fails_a_commit_on_a_retired_base_not_on_one_retiring_later(
    plain_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pre_commit_hooks.check import main as check_hook

    push_release(plain_registry, REPO, {"b1": ["6.0.0"], "b2": ["6.1.0"]}, index=False)
    host = plain_registry.host
    later = (NOW + dt.timedelta(days=30)).date().isoformat()
    for tag, date in (("6.0.0", "2026-01-01"), ("6.1.0", later)):
        assert (
            run_portside("retire", f"{host}/{REPO}:{tag}", "--date", date, cwd=tmp_path).returncode
            == 0
        )
    monkeypatch.setenv("PORTSIDE_CACHE_DIR", str(tmp_path / "hook-cache"))
    monkeypatch.chdir(tmp_path)
    retired, retiring = tmp_path / "retired.Dockerfile", tmp_path / "retiring.Dockerfile"
    retired.write_text(f"FROM {host}/{REPO}:6.0.0\n")
    retiring.write_text(f"FROM {host}/{REPO}:6.1.0\n")
    assert check_hook([str(retiring)]) == 0
    assert check_hook([str(retired)]) == 1


def test_pin_update_moves_past_retired_builds(plain_registry: Registry, tmp_path: Path) -> None:
    line = {"b1": ["7.0.0"], "b2": ["7.0.1"], "b3": ["7.0.2"]}
    digests = push_release(plain_registry, REPO, line, index=False)
    host = plain_registry.host
    done = run_portside("retire", f"{host}/{REPO}:7.0.2", "--date", "2026-01-01", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"FROM {host}/{REPO}:7.0.0\n")
    pinned = run_portside("pin", "--update", "patch", str(dockerfile), cwd=tmp_path)
    assert pinned.returncode == 0, pinned.stderr
    assert dockerfile.read_text() == f"FROM {host}/{REPO}:7.0.1@{digests['b2']}\n"
