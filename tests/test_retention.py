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
from harness.skopeo import Skopeo
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


async def _attach(reg: Registry, repo: str, subject: str, kind: str) -> Digest:
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
        return await client.put_manifest(target.with_digest(Digest.of(raw)), raw, mt.OCI_MANIFEST)


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
