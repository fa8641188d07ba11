"""Retention: ``portside prune`` and ``portside usage`` against the real registry.

Repositories are seeded from the official images' tag history (every tag httpd ever
had, at the build it last pointed to, created on the day that build first appeared),
or from images made here with chosen ages. What remains after a prune is read back with
skopeo, an independent client.
"""

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
from typing import Any

import pytest

from harness import data, seed
from harness.cli import run_portside
from harness.proxy import FaultProxy
from harness.registry import Registry, RegistryFactory
from harness.skopeo import Skopeo, SkopeoError
from portside import retention
from portside.errors import ConfigError
from portside.reference import Digest, Reference
from portside.registry import mediatypes as mt
from portside.registry.client import RegistryClient
from portside.versions import DEFAULT_SCHEME

NOW = dt.datetime.now(dt.timezone.utc)
REPO = "acme/httpd"


def released_httpd() -> tuple[list[data.TagRow], dict[str, str]]:
    """Every tag httpd ever had, at the build it last named (a release registry that
    never deletes), and each build's first day as its creation date."""
    history = data.load_history("httpd")
    last: dict[str, str] = {}
    for row in history:
        if row.build is not None:
            last[row.tag] = row.build
    rows = [data.TagRow(tag, build, ("amd64", "arm64v8")) for tag, build in last.items()]
    return rows, data.first_seen(history)


@pytest.fixture
def httpd(registry_factory: RegistryFactory) -> Registry:
    reg = registry_factory()
    rows, created = released_httpd()
    seed.seed_from_tsv(reg, REPO, rows, created=created)
    return reg


@pytest.fixture(autouse=True)
def _own_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """prune and usage remember tagged digests in the state directory: one per test."""
    state = tmp_path / "state"
    monkeypatch.setenv("PORTSIDE_STATE_DIR", str(state))
    return state


def project(tmp_path: Path, toml: str) -> Path:
    folder = tmp_path / "project"
    folder.mkdir(exist_ok=True)
    (folder / "portside.toml").write_text(toml)
    return folder


def prune(reg: Registry | FaultProxy, folder: Path, *extra: str, repo: str = REPO) -> Any:
    return run_portside(
        "prune",
        f"{reg.host}/{repo}",
        "--project",
        str(folder),
        *extra,
        cwd=folder,
        env={"PORTSIDE_CACHE_DIR": str(folder / "cache")},
    )


def tags_of(reg: Registry, repo: str = REPO) -> list[str]:
    return sorted(Skopeo.for_registry(reg).list_tags(f"{reg.host}/{repo}"))


def numeric(tag: str) -> tuple[int, ...]:
    return tuple(int(n) for n in tag.split("-")[0].split("."))


# -- deciding, without a registry ---------------------------------------------------------


def record(digest_seed: str, *tags: str, days_old: float | None = 100) -> retention.ImageRecord:
    created = NOW - dt.timedelta(days=days_old) if days_old is not None else None
    return retention.ImageRecord(
        digest=Digest.of(digest_seed.encode()),
        media_type=mt.OCI_MANIFEST,
        tags=tags,
        created=created,
    )


def test_moving_tags_are_floating_versions_and_names_not_development_builds() -> None:
    tags = ["1", "1.4", "1.4.2", "1.4.1", "1.5.0", "latest", "stable", "pr-12", "9f2c1e0",
            "1.5.0-rc1", "21.0.5", "21.0.5_11"]  # fmt: skip
    moving = retention.moving_tags(tags, DEFAULT_SCHEME, retention.DEFAULT_DEV_TAGS)
    assert moving == {"1", "1.4", "latest", "stable", "21.0.5"}


def test_keep_newest_per_line_keeps_each_lines_newest_and_what_moving_tags_name() -> None:
    images = [
        record("a", "1.4.0"),
        record("b", "1.4.1"),
        record("c", "1.4.2", "1.4", "1"),
        record("d", "1.3.9"),
        record("e", "1.3.8"),
        record("f", "1.3.7"),
    ]
    policy = retention.RetentionPolicy(match="*", keep_newest_per_line=1)
    retention.decide(images, policy, DEFAULT_SCHEME, now=NOW)
    assert {i.tags[0]: i.delete for i in images} == {
        "1.4.0": True,
        "1.4.1": True,
        "1.4.2": False,
        "1.3.9": False,
        "1.3.8": True,
        "1.3.7": True,
    }
    assert "moving tag" in images[2].rule and "keep-newest-per-line" in images[3].rule


def test_a_keep_rule_wins_over_a_delete_rule_and_pins_win_over_all() -> None:
    old_rc = record("rc", "2.0.0-rc1", days_old=100)
    new_rc = record("rc2", "2.0.0-rc2", days_old=1)
    old_release = record("rel", "1.0.0", days_old=400)
    pinned = record("pin", "pr-7", days_old=400)
    images = [old_rc, new_rc, old_release, pinned]
    policy = retention.RetentionPolicy(
        match="*",
        keep_within=dt.timedelta(days=7),
        delete_prereleases_older_than=dt.timedelta(days=14),
    )
    retention.decide(
        images, policy, DEFAULT_SCHEME, now=NOW, pinned={pinned.digest: "Dockerfile:1"}
    )
    assert (old_rc.delete, new_rc.delete, old_release.delete, pinned.delete) == (
        True,
        False,
        True,
        False,
    )
    assert "pre-release" in old_rc.rule and "keep-within" in new_rc.rule
    assert old_release.rule.startswith("no keep rule keeps it")
    assert pinned.rule == "pinned in Dockerfile:1"


def test_without_keep_rules_only_delete_rules_delete() -> None:
    images = [record("a", "1.0.0", days_old=900), record("b", "dev-abc", days_old=900)]
    policy = retention.RetentionPolicy(
        match="*", delete_prereleases_older_than=dt.timedelta(days=1)
    )
    retention.decide(images, policy, DEFAULT_SCHEME, now=NOW)
    assert [i.delete for i in images] == [False, True]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"keep-within": "30d"}, "needs a 'match' glob"),
        ({"match": "*", "keep-newest": 3}, "unknown setting 'keep-newest'"),
        ({"match": "*", "keep-within": "a month"}, "not a duration"),
        ({"match": "*", "keep-newest-per-line": 0}, "whole number >= 1"),
        ({"match": "*", "protect": "latest"}, "list of tag globs"),
        ({"match": "*"}, "has no rule"),
    ],
)
def test_bad_policies_are_named(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        retention.parse_policies([table], source="portside.toml")
    assert message in exc.value.message
    assert "retention[0]" in exc.value.message


# -- against the real registry -------------------------------------------------------------


def test_plan_changes_nothing_then_apply_keeps_the_newest_per_line(
    httpd: Registry, tmp_path: Path
) -> None:
    folder = project(tmp_path, '[[retention]]\nmatch = "*/acme/*"\nkeep-newest-per-line = 2\n')
    before = tags_of(httpd)

    shown = prune(httpd, folder)
    assert shown.returncode == 0, shown.stderr
    assert "run again with --apply" in shown.stderr
    assert tags_of(httpd) == before  # the plan alone deletes nothing
    planned = {line.split("\t")[3]: line.split("\t")[1] for line in shown.stdout.splitlines()}
    assert planned["2.4.20"] == "delete"

    applied = prune(httpd, folder, "--apply")
    assert applied.returncode == 0, applied.stderr
    after = tags_of(httpd)
    # Every moving tag survives, and with it the image it names.
    for moving in ("latest", "2", "2.4", "2.2", "alpine", "2-alpine", "2.4-alpine"):
        assert moving in after
    # In the 2.4 line the two newest full versions are left, and any other only because
    # one of its image's other tags is kept (2.4.50 is also 2.4.50-buster, say).
    full = sorted(
        (t for t in before if t.startswith("2.4.") and t.count(".") == 2 and "-" not in t),
        key=numeric,
    )
    assert set(full[-2:]) <= set(after)
    rules = {tag: line.split("\t")[6] for line in shown.stdout.splitlines()
             for tag in line.split("\t")[3].split(",")}  # fmt: skip
    for tag in set(full[:-2]) & set(after):
        assert "is among the newest 2" in rules[tag] and not rules[tag].startswith(f"{tag} ")
    # What the plan said is what happened, tag for tag.
    deleted_tags = {
        tag for tags, action in planned.items() if action == "delete" for tag in tags.split(",")
    }
    assert set(before) - set(after) == deleted_tags
    # Nothing is left to do.
    again = prune(httpd, folder, "--json")
    assert json.loads(again.stdout)[0]["delete"] == 0


def _push_aged(reg: Registry, repo: str, aged: dict[str, float]) -> dict[str, str]:
    """One image per tag, ``days`` old; returns tag -> digest."""
    digests = {}
    for tag, days in aged.items():
        created = (NOW - dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
        image = seed.build_image(f"{repo}-{tag}", created=created)
        digests[tag] = seed.push_image(reg, repo, image, [tag], via="fs").digest
    return digests


def test_prereleases_and_development_builds_older_than_go_releases_stay(
    plain_registry: Registry, tmp_path: Path
) -> None:
    aged = {"1.0.0": 400, "1.1.0": 300, "1.2.0-rc1": 30, "1.2.0-rc2": 3, "pr-41": 40,
            "pr-42": 2, "sha-9f2c1e0": 60, "main": 60}  # fmt: skip
    _push_aged(plain_registry, "acme/app", aged)
    folder = project(
        tmp_path, '[[retention]]\nmatch = "*/acme/app"\ndelete-prereleases-older-than = "14d"\n'
    )
    result = prune(plain_registry, folder, "--apply", repo="acme/app")
    assert result.returncode == 0, result.stderr
    assert tags_of(plain_registry, "acme/app") == sorted(
        ["1.0.0", "1.1.0", "1.2.0-rc2", "pr-42", "main"]
    )


def test_pinned_digests_and_protected_tags_survive(httpd: Registry, tmp_path: Path) -> None:
    folder = project(
        tmp_path,
        '[[retention]]\nmatch = "*/acme/httpd"\nkeep-newest-per-line = 1\nprotect = ["2.2.*"]\n',
    )
    skopeo = Skopeo.for_registry(httpd)
    old = skopeo.digest(f"{httpd.host}/{REPO}:2.4.20")
    uses = tmp_path / "service"
    uses.mkdir()
    (uses / "Dockerfile").write_text(
        f"ARG BASE={httpd.host}/{REPO}:2.4.20@{old}\nFROM ${{BASE}}\nRUN true\n"
    )
    result = prune(httpd, folder, "--apply", "--keep-used", str(uses))
    assert result.returncode == 0, result.stderr
    after = tags_of(httpd)
    assert "2.4.20" in after  # pinned (through an ARG default)
    assert {"2.2.31", "2.2.32", "2.2.34"} <= set(after)  # protected by pattern
    assert "2.4.23" not in after  # the rule still applied to the rest


def test_a_registry_that_does_not_delete_is_named_before_anything_changes(
    registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    reg = registry_factory(deletable=False)
    _push_aged(reg, "acme/app", {"1.0.0": 400, "1.0.1": 300, "1.0.2": 200})
    folder = project(tmp_path, '[[retention]]\nmatch = "*"\nkeep-newest-per-line = 1\n')
    result = prune(reg, folder, "--apply", repo="acme/app")
    assert result.returncode == 5
    assert "storage.delete.enabled" in result.stderr
    assert "Traceback" not in result.stderr
    assert tags_of(reg, "acme/app") == ["1.0.0", "1.0.1", "1.0.2"]


async def _attach(
    reg: Registry, repo: str, subject: str, kind: str, *, tag: str | None = None
) -> Digest:
    target = Reference.parse(f"{reg.host}/{repo}")
    empty = b"{}"
    async with RegistryClient() as client:
        manifest = await client.get_manifest(target.with_digest(subject))
        await client.upload_blob(target, empty)
        raw = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": mt.OCI_MANIFEST,
                "artifactType": kind,
                "config": {"mediaType": mt.OCI_EMPTY, "digest": str(Digest.of(empty)), "size": 2},
                "layers": [{"mediaType": mt.OCI_EMPTY, "digest": str(Digest.of(empty)), "size": 2}],
                "subject": manifest.descriptor.to_json(),
            }
        ).encode()
        where = target.with_tag(tag) if tag else target.with_digest(Digest.of(raw))
        return await client.put_manifest(where, raw, mt.OCI_MANIFEST)


async def test_referrers_go_with_their_subject_and_stay_with_a_kept_one(
    plain_registry: Registry, tmp_path: Path
) -> None:
    digests = _push_aged(plain_registry, "acme/app", {"1.0.0": 400, "1.0.1": 300})
    doomed = await _attach(
        plain_registry, "acme/app", digests["1.0.0"], "application/vnd.test.sbom"
    )
    kept = await _attach(plain_registry, "acme/app", digests["1.0.1"], "application/vnd.test.sbom")
    folder = project(tmp_path, '[[retention]]\nmatch = "*"\nkeep-newest-per-line = 1\n')
    result = prune(plain_registry, folder, "--apply", "--json", repo="acme/app")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)[0]
    assert report["applied"]["referrers_deleted"] == [str(doomed)]
    skopeo = Skopeo.for_registry(plain_registry)
    tags = tags_of(plain_registry, "acme/app")
    old_hex, new_hex = Digest.parse(digests["1.0.0"]).hex, Digest.parse(digests["1.0.1"]).hex
    assert tags == sorted(["1.0.1", f"sha256-{new_hex}"])  # the fallback tag went too
    assert f"sha256-{old_hex}" not in tags
    with pytest.raises(Exception, match="manifest unknown"):
        skopeo.inspect_raw(f"{plain_registry.host}/acme/app@{doomed}")
    assert json.loads(skopeo.inspect_raw(f"{plain_registry.host}/acme/app@{kept}"))["subject"]


def test_an_interrupted_apply_stops_between_deletions_and_the_next_run_finishes(
    plain_registry: Registry, proxy_factory: Callable[..., FaultProxy], tmp_path: Path
) -> None:
    aged = {f"1.0.{n}": 400 - n for n in range(12)}
    _push_aged(plain_registry, "acme/app", aged)
    proxy = proxy_factory(plain_registry)
    proxy.delay("DELETE", r"/manifests/sha256:[1-9a-f]", 0.4)  # real deletions, not the probe
    folder = project(tmp_path, '[[retention]]\nmatch = "*"\nkeep-newest-per-line = 2\n')
    env = {**os.environ, "PORTSIDE_CACHE_DIR": str(tmp_path / "cache")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "portside",
            "prune",
            f"{proxy.host}/acme/app",
            "--project",
            str(folder),
            "--apply",
        ],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 60
    for line in process.stderr:  # the first deletion is done: interrupt
        if line.startswith("[delete] 1/"):
            process.send_signal(signal.SIGINT)
            break
        assert time.monotonic() < deadline
    _, rest = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "run the same command again to continue" in rest
    middle = tags_of(plain_registry, "acme/app")
    assert 2 < len(middle) < 12  # stopped part-way, between deletions
    finished = prune(proxy, folder, "--apply", repo="acme/app")
    assert finished.returncode == 0, finished.stderr
    assert tags_of(plain_registry, "acme/app") == ["1.0.10", "1.0.11"]


def _blob_bytes(reg: Registry) -> int:
    blobs = reg.root / "docker" / "registry" / "v2" / "blobs"
    return sum(p.stat().st_size for p in blobs.rglob("data"))


def test_garbage_collection_frees_what_usage_and_the_plan_said(
    httpd: Registry, tmp_path: Path
) -> None:
    folder = project(tmp_path, '[[retention]]\nmatch = "*/acme/httpd"\nkeep-newest-per-line = 2\n')
    figures = run_portside(
        "usage", f"{httpd.host}/{REPO}", "--project", str(folder), "--json", cwd=folder,
        env={"PORTSIDE_CACHE_DIR": str(folder / "cache")},
    )  # fmt: skip
    assert figures.returncode == 0, figures.stderr
    whole = json.loads(figures.stdout)[0]["repository"]
    assert whole["tags"] == len(tags_of(httpd))
    assert whole["bytes"] == _blob_bytes(httpd)  # one repository: every blob is its own
    assert 0 < whole["freed"] < whole["bytes"]

    assert prune(httpd, folder, "--apply").returncode == 0
    httpd.stop()
    subprocess.run(
        ["docker-registry", "garbage-collect", str(httpd.config_file)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert _blob_bytes(httpd) == whole["bytes"] - whole["freed"]


def test_usage_without_a_policy_shows_figures_and_frees_nothing(
    httpd: Registry, tmp_path: Path
) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    result = run_portside("usage", f"{httpd.host}/{REPO}", "--project", str(folder), cwd=folder)
    assert result.returncode == 0, result.stderr
    header, first, *lines = result.stdout.splitlines()
    assert header.split("\t")[:3] == ["LINE", "TAGS", "MANIFESTS"]
    assert first.split("\t")[1] == str(len(tags_of(httpd)))
    assert any(line.startswith("2.4.*\t") for line in lines)
    assert all(line.split("\t")[4] == "0 B" for line in [first, *lines])


def test_prune_without_a_matching_policy_is_a_configuration_error(
    httpd: Registry, tmp_path: Path
) -> None:
    folder = project(tmp_path, '[[retention]]\nmatch = "*/other/*"\nkeep-within = "30d"\n')
    result = prune(httpd, folder)
    assert result.returncode == 2
    assert "no [[tool.portside.retention]] table matches" in result.stderr


def test_end_of_life_images_go_after_the_grace_period(
    plain_registry: Registry, tmp_path: Path
) -> None:
    _push_aged(plain_registry, "acme/app", {"1.0.0": 400, "1.1.0": 300, "1.2.0": 200})
    host = plain_registry.host
    long_ago = (NOW - dt.timedelta(days=60)).date().isoformat()
    lately = (NOW - dt.timedelta(days=5)).date().isoformat()
    for tag, date in (("1.0.0", long_ago), ("1.1.0", lately)):
        retired = run_portside("retire", f"{host}/acme/app:{tag}", "--date", date, cwd=tmp_path)
        assert retired.returncode == 0, retired.stderr
    folder = project(
        tmp_path, '[[retention]]\nmatch = "*/acme/app"\ndelete-end-of-life-after = "30d"\n'
    )
    result = prune(plain_registry, folder, "--apply", "--json", repo="acme/app")
    assert result.returncode == 0, result.stderr
    (report,) = json.loads(result.stdout)
    deleted = [i for i in report["images"] if i["action"] == "delete"]
    assert [i["tags"] for i in deleted] == [["1.0.0"]]
    assert "delete-end-of-life-after" in deleted[0]["rule"]
    remaining = tags_of(plain_registry, "acme/app")
    # The retired image went with its lifecycle artifact and that artifact's fallback tag.
    assert [t for t in remaining if not t.startswith("sha256-")] == ["1.1.0", "1.2.0"]
    assert len([t for t in remaining if t.startswith("sha256-")]) == 1


# -- untagged manifests ------------------------------------------------------------------


def untagged_record(digest_seed: str, *, days_old: float | None, untagged_days: float) -> Any:
    image = record(digest_seed, days_old=days_old)
    image.tags = ()
    image.untagged_since = NOW - dt.timedelta(days=untagged_days)
    return image


def test_untagged_age_is_the_creation_date_else_since_first_seen_untagged() -> None:
    old = untagged_record("old", days_old=30, untagged_days=1)
    new = untagged_record("new", days_old=2, untagged_days=1)
    undated_long = untagged_record("undated-long", days_old=None, untagged_days=10)
    undated_short = untagged_record("undated-short", days_old=None, untagged_days=3)
    pinned = untagged_record("pinned", days_old=300, untagged_days=300)
    images = [old, new, undated_long, undated_short, pinned]
    policy = retention.RetentionPolicy(match="*", delete_untagged_older_than=dt.timedelta(days=7))
    retention.decide(images, policy, DEFAULT_SCHEME, now=NOW, pinned={pinned.digest: "D:1"})
    assert [i.delete for i in images] == [True, False, True, False, False]
    assert old.rule == "untagged, created 30d ago: older than 1w (delete-untagged-older-than)"
    assert "not older than 1w" in new.rule
    assert undated_long.rule.startswith("untagged, no creation date, first seen untagged 10d ago")
    assert pinned.rule == "pinned in D:1"


def test_keep_within_keeps_an_untagged_manifest_and_no_other_rule_deletes_one() -> None:
    recent = untagged_record("recent", days_old=20, untagged_days=1)
    images = [recent, record("rel", "pr-1", days_old=20)]
    policy = retention.RetentionPolicy(
        match="*",
        keep_within=dt.timedelta(days=30),
        delete_untagged_older_than=dt.timedelta(days=7),
    )
    retention.decide(images, policy, DEFAULT_SCHEME, now=NOW)
    assert not recent.delete and "keep-within" in recent.rule
    # A development-build rule never reads an untagged manifest as a development build.
    policy = retention.RetentionPolicy(match="*", delete_prereleases_older_than=dt.timedelta(1))
    retention.decide([recent], policy, DEFAULT_SCHEME, now=NOW)
    assert not recent.delete


def test_a_platform_manifest_a_kept_index_lists_is_never_deleted() -> None:
    child = record("child", "1.0.0-amd64", days_old=400)
    index = record("index", "1.0.0", days_old=400)
    index.children = (child.digest,)
    images = [child, index, record("newer", "1.0.1-amd64", days_old=1)]
    policy = retention.RetentionPolicy(match="*", keep_newest_per_line=1, protect=["1.0.0"])
    retention.decide(images, policy, DEFAULT_SCHEME, now=NOW)
    assert not child.delete
    assert child.rule == f"a platform manifest of the kept index {index.digest.short}"


def test_remembering_starts_the_untagged_clock_once_and_stops_it_when_tagged_again() -> None:
    from portside import untagged

    a, b = Digest.of(b"a"), Digest.of(b"b")
    seen: dict[Digest, untagged.Seen] = {}
    assert untagged.remember(seen, [a, b], NOW) == []
    later = NOW + dt.timedelta(days=1)
    assert untagged.remember(seen, [b], later) == [a]
    assert seen[a].untagged_since == later.timestamp()
    assert untagged.remember(seen, [b], later + dt.timedelta(days=1)) == [a]
    assert seen[a].untagged_since == later.timestamp()  # first seen untagged, kept
    assert untagged.remember(seen, [a, b], later) == []
    assert seen[a].untagged_since is None


def _stage(reg: Registry, name: str, days: float, *, index: bool = False) -> str:
    """An image ``days`` old in acme/staging under tag ``name``; its digest."""
    created = (NOW - dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
    artifact = (
        seed.build_index(f"staging-{name}", ["amd64", "arm64v8"], created=created)
        if index
        else seed.build_image(f"staging-{name}", created=created)
    )
    return seed.push_image(reg, "acme/staging", artifact, [name], via="fs").digest


def _exists(skopeo: Skopeo, ref: str) -> bool:
    """Whether the registry serves ``ref`` (``skopeo inspect``); any other failure raises."""
    try:
        skopeo.inspect_raw(ref)
    except SkopeoError as exc:
        if "manifest unknown" not in str(exc):
            raise
        return False
    return True


def test_untagged_manifests_seen_tagged_before_go_when_older_and_nothing_else_does(
    plain_registry: Registry, tmp_path: Path
) -> None:
    reg = plain_registry
    host = reg.host
    skopeo = Skopeo.for_registry(reg)
    # What the tags name at first: old and recent images, an old index (2.0), and an
    # index (1.0) whose amd64 manifest is also tagged on its own (1.0-amd64).
    old = _push_aged(reg, "acme/app", {"main": 30, "edge": 2, "pinned": 30})
    index_1 = seed.build_index("app-1.0", ["amd64", "arm64v8"], created="2020-01-01T00:00:00Z")
    seed.push_image(reg, "acme/app", index_1, ["1.0"], via="fs")
    amd64 = index_1.children[0].digest
    seed.push_image(reg, "acme/app", index_1.children[0], ["1.0-amd64"], via="fs")
    index_2 = seed.build_index("app-2.0", ["amd64", "arm64v8"], created="2020-01-01T00:00:00Z")
    seed.push_image(reg, "acme/app", index_2, ["2.0"], via="fs")
    # Pushed by digest only: Portside never sees it tagged, so never deletes it.
    hidden_image = seed.build_image("hidden", created="2020-01-01T00:00:00Z")
    hidden = seed.push_image(reg, "acme/app", hidden_image, [], via="fs").digest
    folder = project(
        tmp_path, '[[retention]]\nmatch = "*/acme/app"\ndelete-untagged-older-than = "7d"\n'
    )
    uses = tmp_path / "service"
    uses.mkdir()
    (uses / "Dockerfile").write_text(f"FROM {host}/acme/app@{old['pinned']}\n")

    first = prune(reg, folder, "--apply", "--json", repo="acme/app")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)[0]["delete"] == 0  # nothing untagged yet

    # The tags move to new builds, pushed with skopeo: the old manifests are untagged.
    for tag, days, index in (("main", 0, False), ("edge", 0, False), ("pinned", 0, False),
                             ("1.0-amd64", 0, False), ("2.0", 0, True)):  # fmt: skip
        _stage(reg, tag, days, index=index)
        skopeo.copy(f"{host}/acme/staging:{tag}", f"{host}/acme/app:{tag}")
    tags_before = {t: skopeo.digest(f"{host}/acme/app:{t}") for t in tags_of(reg, "acme/app")}
    untagged_now = {
        "main": old["main"], "edge": old["edge"], "pinned": old["pinned"],
        "1.0-amd64": amd64, "2.0": index_2.digest,
    }  # fmt: skip
    assert all(tags_before[t] != d for t, d in untagged_now.items())

    # The plan lists each untagged manifest with its verdict, and changes nothing.
    shown = prune(reg, folder, "--json", "--keep-used", str(uses), repo="acme/app")
    assert shown.returncode == 0, shown.stderr
    (plan,) = json.loads(shown.stdout)
    listed = {i["digest"]: i for i in plan["images"] if not i["tags"]}
    assert set(listed) == {old["main"], old["edge"], old["pinned"], index_2.digest}
    assert {d for d, i in listed.items() if i["action"] == "delete"} == {
        old["main"], index_2.digest
    }  # fmt: skip
    assert "delete-untagged-older-than" in listed[old["main"]]["rule"]
    assert listed[old["pinned"]]["rule"] == f"pinned in {uses / 'Dockerfile'}:1"
    assert "pushed by digest only" in plan["untagged_note"]
    for digest in [*untagged_now.values(), hidden]:
        assert _exists(skopeo, f"{host}/acme/app@{digest}")

    figures = run_portside(
        "usage", f"{host}/acme/app", "--project", str(folder), "--json", cwd=folder,
        env={"PORTSIDE_CACHE_DIR": str(folder / "cache")},
    )  # fmt: skip
    assert figures.returncode == 0, figures.stderr
    lines = {row["line"]: row for row in json.loads(figures.stdout)[0]["lines"]}
    assert (lines["(untagged)"]["manifests"], lines["(untagged)"]["tags"]) == (4, 0)

    text = prune(reg, folder, "--keep-used", str(uses), repo="acme/app")
    assert "acme/app: 4 untagged manifests among the 11 digests" in text.stderr
    rows = [line.split("\t") for line in text.stdout.splitlines()]
    assert sorted(row[1] for row in rows if row[3] == "(untagged)") == [
        "delete", "delete", "keep", "keep"
    ]  # fmt: skip
    assert "not visible to it" in text.stderr

    applied = prune(reg, folder, "--apply", "--keep-used", str(uses), repo="acme/app")
    assert applied.returncode == 0, applied.stderr
    gone = {old["main"], index_2.digest, *(c.digest for c in index_2.children)}
    for digest in gone:
        assert not _exists(skopeo, f"{host}/acme/app@{digest}"), digest
    # Newer than the threshold, pinned, listed by a tagged index, never seen tagged: kept.
    for digest in (old["edge"], old["pinned"], amd64, hidden):
        assert _exists(skopeo, f"{host}/acme/app@{digest}"), digest
    # Every tag still names what it named.
    assert {t: skopeo.digest(f"{host}/acme/app:{t}") for t in tags_of(reg, "acme/app")} == (
        tags_before
    )


def test_what_one_credential_saw_tagged_is_not_used_for_another(
    registry_factory: RegistryFactory, tmp_path: Path, no_machine_credentials: Path
) -> None:
    reg = registry_factory(auth="basic", users={"alice": "alice-secret", "bob": "bob-secret"})
    host = reg.host
    old = _push_aged(reg, "acme/app", {"main": 30})
    folder = project(
        tmp_path, '[[retention]]\nmatch = "*/acme/app"\ndelete-untagged-older-than = "7d"\n'
    )

    def as_user(user: str, *extra: str) -> Any:
        env = {
            "PORTSIDE_REGISTRY": host,
            "PORTSIDE_USERNAME": user,
            "PORTSIDE_PASSWORD": f"{user}-secret",
            "PORTSIDE_CACHE_DIR": str(folder / "cache"),
        }
        args = ("prune", f"{host}/acme/app", "--project", str(folder), "--json", *extra)
        return run_portside(*args, cwd=folder, env=env)

    assert as_user("alice").returncode == 0
    _stage(reg, "main", 0)
    Skopeo.for_registry(reg).copy(f"{host}/acme/staging:main", f"{host}/acme/app:main")

    bob = as_user("bob")
    assert bob.returncode == 0, bob.stderr
    assert [i for i in json.loads(bob.stdout)[0]["images"] if not i["tags"]] == []
    alice = as_user("alice")
    assert alice.returncode == 0, alice.stderr
    (orphan,) = [i for i in json.loads(alice.stdout)[0]["images"] if not i["tags"]]
    assert orphan["digest"] == old["main"] and orphan["action"] == "delete"
    # The remembered state names credentials only by a keyed hash.
    state = tmp_path / "state"
    written = b"".join(p.read_bytes() for p in state.rglob("*") if p.is_file())
    assert b"alice" not in written and b"bob" not in written and b"secret" not in written
    assert all(p.stat().st_mode & 0o077 == 0 for p in state.rglob("*") if p.is_file())


async def test_a_referrer_whose_tag_moved_is_not_an_untagged_orphan(
    plain_registry: Registry, tmp_path: Path
) -> None:
    """An SBOM once tagged ``sbom`` is untagged when the tag moves, but it is attached
    to a kept image: it goes with that image, never on its own."""
    digests = _push_aged(plain_registry, "acme/app", {"1.0.0": 30})
    first = await _attach(plain_registry, "acme/app", digests["1.0.0"], "a/sbom", tag="sbom")
    folder = project(
        tmp_path, '[[retention]]\nmatch = "*/acme/app"\ndelete-untagged-older-than = "1h"\n'
    )
    seen = run_portside(  # usage remembers what tags point to, as prune does
        "usage", f"{plain_registry.host}/acme/app", "--project", str(folder), cwd=folder
    )
    assert seen.returncode == 0, seen.stderr
    assert "0 untagged manifests among the 2 digests" in seen.stderr
    second = await _attach(plain_registry, "acme/app", digests["1.0.0"], "b/sbom", tag="sbom")
    assert first != second
    result = prune(plain_registry, folder, "--apply", "--json", repo="acme/app")
    assert result.returncode == 0, result.stderr
    (report,) = json.loads(result.stdout)
    assert [i["digest"] for i in report["images"] if not i["tags"]] == []
    # The first SBOM is remembered from the usage run, and still not an orphan.
    assert "0 untagged manifests among the 3 digests" in report["untagged_note"]
    skopeo = Skopeo.for_registry(plain_registry)
    assert _exists(skopeo, f"{plain_registry.host}/acme/app@{first}")
