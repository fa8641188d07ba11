"""The watcher hears of retirements and vulnerability reports; retire and pull-back tell
the project's notifiers. Against the real registry (distribution 2.8: referrers through
the tag-schema fallback), with a recording proxy counting what a round costs."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_lifecycle import LINE, push_release, tag_digests
from test_vulnerabilities import attach, trivy_sarif

from harness import seed
from harness.cli import run_portside
from harness.proxy import FaultProxy
from harness.registry import Registry
from portside.watch.store import SQLiteStore

REPO = "acme/base"


def watch(project: Path, proxy: FaultProxy, state: str, *args: str) -> tuple[int, dict[str, Any]]:
    result = run_portside(
        "watch", "--once", "--json", "--state", state, *args,
        cwd=project, env={"PORTSIDE_INSECURE_REGISTRIES": proxy.host},
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr
    return result.returncode, json.loads(result.stdout)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_retired_base_is_one_end_of_life_notification_and_costs_nothing_when_unchanged(
    backend: str,
    plain_registry: Registry,
    proxy_factory: Callable[..., FaultProxy],
    project: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    state = (
        str(request.getfixturevalue("postgres_url"))
        if backend == "postgresql"
        else str(tmp_path / "state.sqlite3")
    )
    digests = push_release(plain_registry, REPO, {"b100": ["1.0.0"], "b110": ["1.1.0"]}, index=True)
    proxy = proxy_factory(plain_registry)
    (project / "Dockerfile").write_text(f"FROM {proxy.host}/{REPO}:1.0.0\nRUN true\n")
    (project / "Dockerfile.other").write_text(f"FROM {proxy.host}/{REPO}:1.1.0\n")
    jsonl = tmp_path / "notes.jsonl"
    every = ("--jsonl", str(jsonl), "--tags-every", "0")

    code, first = watch(project, proxy, state, *every)
    assert code == 0 and first["changes"] == [] and first["checked"] == 2

    # The publisher retires 1.0.0 (its index and each platform manifest).
    retired = run_portside(
        "retire", f"{plain_registry.host}/{REPO}:1.0.0", "--date", "2026-01-31",
        "--reason", "CVE-2026-0001 in openssl", cwd=tmp_path,
    )  # fmt: skip
    assert retired.returncode == 0, retired.stderr
    code, second = watch(project, proxy, state, *every)
    assert code == 1
    (note,) = second["changes"]
    assert note["kind"] == "end-of-life"
    assert note["image"].endswith(f"/{REPO}:1.0.0") and note["new"] == "2026-01-31T00:00:00Z"
    assert note["message"].startswith(f"{proxy.host}/{REPO}:1.0.0 end of life since 2026-01-31")
    assert "CVE-2026-0001 in openssl" in note["message"]
    assert [(Path(u["file"]).name, u["line"]) for u in note["uses"]] == [("Dockerfile", 1)]
    # The fix `portside check` offers: the newest build of the line that is not retired.
    assert f"move to {proxy.host}/{REPO}:1.1.0," in note["action"]
    assert "portside pin --update" in note["action"]
    assert digests["b100"] != digests["b110"]

    # Told once: a third run (attachments read again) and a fourth (not due) are silent.
    code, third = watch(project, proxy, state, *every)
    assert code == 0 and third["changes"] == []
    proxy.log.clear()
    code, fourth = watch(project, proxy, state, "--jsonl", str(jsonl))
    assert code == 0 and fourth["changes"] == []
    # An unchanged round: one HEAD per watched tag, and nothing else.
    heads = proxy.log.matching("HEAD", r"/manifests/")
    assert sorted(r.path.rsplit("/", 1)[-1] for r in heads) == ["1.0.0", "1.1.0"]
    assert [r.target for r in proxy.log.all() if r.method != "HEAD" and r.path != "/v2/"] == []
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [n["kind"] for n in lines] == ["end-of-life"] and lines[0]["id"] == note["id"]


def test_an_end_of_life_told_as_coming_is_told_again_once_when_it_passes(
    plain_registry: Registry,
    proxy_factory: Callable[..., FaultProxy],
    project: Path,
    tmp_path: Path,
) -> None:
    push_release(plain_registry, REPO, {"b100": ["1.0.0"], "b110": ["1.1.0"]}, index=False)
    proxy = proxy_factory(plain_registry)
    (project / "Dockerfile").write_text(f"FROM {proxy.host}/{REPO}:1.0.0\n")
    state = str(tmp_path / "state.sqlite3")
    assert watch(project, proxy, state, "--tags-every", "0")[0] == 0

    soon = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(seconds=3)
    when = soon.strftime("%Y-%m-%dT%H:%M:%SZ")
    retired = run_portside(
        "retire", f"{plain_registry.host}/{REPO}:1.0.0", "--date", when, cwd=tmp_path
    )
    assert retired.returncode == 0, retired.stderr
    code, second = watch(project, proxy, state, "--tags-every", "0")
    assert code == 1
    assert [(c["kind"], c["level"], c["new"]) for c in second["changes"]] == [
        ("end-of-life", "coming", when)
    ]
    assert (
        f"reaches its end of life on {soon.date().isoformat()}" in second["changes"][0]["message"]
    )

    while dt.datetime.now(dt.timezone.utc) <= soon:
        time.sleep(0.2)
    # The date passed: told again (the state knows the date: no tag list needed for it).
    code, third = watch(project, proxy, state)
    assert code == 1
    (note,) = third["changes"]
    assert (note["kind"], note["level"], note["new"]) == ("end-of-life", "passed", when)
    assert f"end of life since {soon.date().isoformat()}" in note["message"]
    assert f"move to {proxy.host}/{REPO}:1.1.0," in note["action"]
    assert watch(project, proxy, state, "--tags-every", "0")[1]["changes"] == []
    assert watch(project, proxy, state)[1]["changes"] == []


def test_an_attached_sarif_report_is_one_vulnerable_notification(
    plain_registry: Registry,
    proxy_factory: Callable[..., FaultProxy],
    project: Path,
    tmp_path: Path,
) -> None:
    image = seed.build_artifact("scanned", ("amd64", "arm64v8"), platforms=True)
    pushed = seed.push_image(plain_registry, "acme/app", image, ["2.0"], via="fs")
    proxy = proxy_factory(plain_registry)
    (project / "Dockerfile").write_text(f"FROM {proxy.host}/acme/app:2.0\n")
    state = str(tmp_path / "state.sqlite3")
    assert watch(project, proxy, state, "--tags-every", "0") == (
        0,
        {"round": 1, "checked": 1, "changes": [], "problems": [], "undelivered": []},
    )

    # A scanner's report on the amd64 manifest (what the watcher watches): one critical,
    # one medium (below the default severity, high).
    assert isinstance(image, seed.Index)
    report = trivy_sarif(
        ("CVE-2024-6119", "9.8", "openssl", "3.0.13", "3.0.15"),
        ("CVE-2024-2511", "5.9", "openssl", "3.0.13", "3.0.14"),
    )
    await_attach(plain_registry, image.child("amd64").digest, report)
    code, second = watch(project, proxy, state, "--tags-every", "0")
    assert code == 1
    (note,) = second["changes"]
    assert note["kind"] == "vulnerable" and note["new"] == "CVE-2024-6119"
    assert note["level"] == "critical" and note["platform"] == "linux/amd64"
    assert "1 known vulnerability at or above high" in note["message"]
    assert "CVE-2024-6119 (critical in openssl, fixed in 3.0.15)" in note["message"]
    assert "CVE-2024-2511" not in note["message"]
    assert "portside check" in note["action"]

    # Nothing new: silence. A report on the index naming the same one: silence too.
    assert watch(project, proxy, state, "--tags-every", "0")[1]["changes"] == []
    await_attach(plain_registry, pushed.digest, report)
    assert watch(project, proxy, state, "--tags-every", "0")[1]["changes"] == []
    # A new report that adds a high one: only the new one is news.
    await_attach(
        plain_registry,
        image.child("amd64").digest,
        trivy_sarif(("CVE-2024-5535", "7.5", "openssl", "3.0.13", "3.0.15")),
    )
    code, fourth = watch(project, proxy, state, "--tags-every", "0")
    assert code == 1
    assert [(c["kind"], c["new"], c["level"]) for c in fourth["changes"]] == [
        ("vulnerable", "CVE-2024-5535", "critical")
    ]
    assert "2 known vulnerabilities at or above high" in fourth["changes"][0]["message"]


def await_attach(reg: Registry, subject: str, document: bytes) -> None:
    import asyncio

    asyncio.run(attach(reg, subject, "application/sarif+json", document, repo="acme/app"))


def test_pull_back_and_retire_tell_the_projects_notifiers(
    plain_registry: Registry, tmp_path: Path
) -> None:
    digests = push_release(plain_registry, "acme/app", LINE, index=False)
    jsonl = tmp_path / "told.jsonl"
    (tmp_path / "pyproject.toml").write_text('[tool.portside.notify]\njsonl = "told.jsonl"\n')
    # A dry run tells nobody.
    dry = run_portside(
        "pull-back", f"{plain_registry.host}/acme/app:1.4.2", "--reason", "CVE-2026-1",
        "--dry-run", cwd=tmp_path,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert not jsonl.exists()
    result = run_portside(
        "pull-back", f"{plain_registry.host}/acme/app:1.4.2", "--reason", "CVE-2026-1",
        "--delete-image", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert tag_digests(plain_registry, "acme/app")["1.4"] == digests["b141"]
    (note,) = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert note["kind"] == "pulled-back"
    assert note["image"] == f"{plain_registry.host}/acme/app@{digests['b142']}"
    assert note["old"] == digests["b142"]
    moved = f"back to 1.4.1 ({digests['b141']})"
    for tag in ("1", "1.4", "latest"):
        assert f"{tag} {moved}" in note["detail"]
    assert "1.4.2 removed" in note["detail"] and note["detail"].startswith("CVE-2026-1;")
    assert "portside check" in note["action"]

    retired = run_portside(
        "retire", f"{plain_registry.host}/acme/app:1.4.0", "--date", "2026-03-01",
        "--reason", "superseded", cwd=tmp_path,
    )  # fmt: skip
    assert retired.returncode == 0, retired.stderr
    notes = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [n["kind"] for n in notes] == ["pulled-back", "retired"]
    assert notes[1]["image"] == f"{plain_registry.host}/acme/app:1.4.0"
    assert notes[1]["old"] == digests["b140"] and notes[1]["new"] == "2026-03-01T00:00:00Z"
    assert notes[1]["message"].startswith(
        f"{plain_registry.host}/acme/app:1.4.0 was retired: end of life 2026-03-01T00:00:00Z, "
        "superseded"
    )


def test_a_bad_notify_configuration_stops_a_pull_back_before_it_changes_anything(
    plain_registry: Registry, tmp_path: Path
) -> None:
    push_release(plain_registry, "acme/app", LINE, index=False)
    before = tag_digests(plain_registry, "acme/app")
    (tmp_path / "pyproject.toml").write_text("[tool.portside.notify]\njsonl = 7\n")
    result = run_portside(
        "pull-back", f"{plain_registry.host}/acme/app:1.4.2", "--reason", "CVE-2026-1",
        "--delete-image", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "jsonl must be a file path" in result.stderr and "Traceback" not in result.stderr
    assert tag_digests(plain_registry, "acme/app") == before


def test_a_state_file_from_before_gains_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE watch_targets (key TEXT PRIMARY KEY, registry TEXT NOT NULL, "
            "repository TEXT NOT NULL, digest TEXT, platform_digest TEXT, media_type TEXT, "
            "present INTEGER NOT NULL DEFAULT 0, newer_tag TEXT, variant_tag TEXT, "
            "tags_seen INTEGER NOT NULL DEFAULT 0, checked_round BIGINT NOT NULL DEFAULT 0, "
            "last_checked DOUBLE PRECISION, first_seen DOUBLE PRECISION NOT NULL)"
        )
        db.execute(
            "INSERT INTO watch_targets (key, registry, repository, digest, present, "
            "first_seen) VALUES ('r/a:1 linux/amd64', 'r', 'r/a', 'sha256:00', 1, 0)"
        )
    store = SQLiteStore(path)
    try:
        (state,) = store.peek(["r/a:1 linux/amd64"]).values()
    finally:
        store.close()
    assert state.digest == "sha256:00" and state.attached is None and state.end_of_life is None
    assert state.end_of_life_passed is False


def test_a_moved_digest_reads_only_its_own_attachments_until_the_tags_are_due(
    plain_registry: Registry,
    proxy_factory: Callable[..., FaultProxy],
    project: Path,
    tmp_path: Path,
) -> None:
    push_release(plain_registry, REPO, {"b100": ["1.0.0"], "b110": ["1.1.0"]}, index=True)
    proxy = proxy_factory(plain_registry)
    (project / "Dockerfile").write_text(
        f"FROM {proxy.host}/{REPO}:1.0.0\nFROM {proxy.host}/{REPO}:1.1.0\n"
    )
    state = str(tmp_path / "state.sqlite3")
    assert watch(project, proxy, state)[0] == 0

    rebuilt = seed.build_artifact("b110-again", ("amd64", "arm64v8"), platforms=True)
    moved = seed.push_image(plain_registry, REPO, rebuilt, ["1.1.0"], via="fs")
    proxy.log.clear()
    code, report = watch(project, proxy, state)
    assert code == 1
    assert [(c["kind"], c["image"].rsplit(":", 1)[-1]) for c in report["changes"]] == [
        ("rebuilt", "1.1.0")
    ]
    # The new build's index and amd64 manifest are looked at; 1.0.0's are not. (By the
    # tag schema: the Referrers API's one 404 said distribution 2.8 has none.)
    looked = [r.path.rsplit("/", 1)[-1] for r in proxy.log.matching("GET", r"/manifests/sha256-")]
    subjects = [moved.digest, moved.platform_digests["linux/amd64"]]
    assert sorted(looked) == sorted(s.replace(":", "-") for s in subjects)
    api = proxy.log.matching("GET", r"/referrers/")
    assert len(api) == 1 and api[0].path.rsplit("/", 1)[-1] in subjects


async def test_a_webhook_naming_the_repository_reads_what_was_attached_at_once(
    plain_registry: Registry, project: Path, tmp_path: Path
) -> None:
    from portside.registry.client import RegistryClient
    from portside.registry.transport import ClientOptions
    from portside.watch.targets import collect_targets
    from portside.watch.watcher import Watcher

    image = seed.build_image("hooked")
    pushed = seed.push_image(plain_registry, "acme/hooked", image, ["3.0"], via="fs")
    (project / "Dockerfile").write_text(f"FROM {plain_registry.host}/acme/hooked:3.0\n")
    targets, _ = collect_targets([str(project)])
    store = SQLiteStore(tmp_path / "state.sqlite3")
    options = ClientOptions(insecure=frozenset({plain_registry.host}))
    try:
        async with RegistryClient(options) as client:
            watcher = Watcher(store, targets, client, [], tags_every=3600)
            assert (await watcher.run_round(1)).changes == []
            await attach(
                plain_registry,
                pushed.digest,
                "application/sarif+json",
                trivy_sarif(("CVE-2024-6119", "9.8", "openssl", "3.0.13", "3.0.15")),
                repo="acme/hooked",
            )
            # A round now: tags (and attachments) are not due for an hour. Silence.
            assert (await watcher.run_round(2)).changes == []
            # The registry's webhook names the repository: read at once.
            report = await watcher.check_repositories([f"{plain_registry.host}/acme/hooked"])
    finally:
        store.close()
    assert [(c.kind, c.new) for c in report.changes] == [("vulnerable", "CVE-2024-6119")]
