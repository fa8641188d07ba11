"""``portside watch --once`` against the real registry moving through python's tag history.

The registry is seeded as it stood on one date, the watcher records; the registry moves
forward (later tags pushed, rebuilt ones replaced, removed ones gone), and the watcher
must report exactly what changed, once, with a recording proxy proving what it cost.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness import data, seed
from harness.cli import run_portside
from harness.proxy import FaultProxy
from harness.registry import Registry

HISTORY = "python-since-2025-06"
BEFORE, AFTER = "2025-08-12", "2025-10-08"


def watch(project: Path, proxy: FaultProxy, state: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = run_portside(
        "watch",
        "--once",
        "--json",
        "--state",
        str(state),
        *args,
        cwd=project,
        env={"PORTSIDE_INSECURE_REGISTRIES": proxy.host},
    )
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr
    return result.returncode, json.loads(result.stdout)


def changes(report: dict[str, Any]) -> set[tuple[str, str, str | None]]:
    return {(c["kind"], c["image"].rsplit("/", 1)[-1], c["new"]) for c in report["changes"]}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def test_once_reports_exactly_what_moved_and_unchanged_images_cost_one_head(
    plain_registry: Registry,
    proxy_factory: Callable[..., FaultProxy],
    project: Path,
    tmp_path: Path,
) -> None:
    rows = data.load_history(HISTORY)
    before = seed.replay_history(
        plain_registry, "library/python", rows, until=BEFORE, platforms=True
    )
    proxy = proxy_factory(plain_registry)
    host = proxy.host
    (project / "Dockerfile").write_text(
        f"FROM {host}/library/python:3.13-slim-bookworm AS build\n"
        "RUN echo build\n"
        f"FROM {host}/library/python:3.12.11-slim\n"
        "COPY --from=build /a /a\n"
    )
    (project / "Dockerfile.old").write_text(f"FROM {host}/library/python:3.13.6-slim\n")
    (project / "compose.yaml").write_text(
        f'services:\n  app:\n    image: "{host}/library/python:3.9-slim"\n'
    )
    state = tmp_path / "state.sqlite3"
    jsonl = tmp_path / "notes.jsonl"

    code, first = watch(project, proxy, state, "--jsonl", str(jsonl), "--tags-every", "0")
    assert code == 0, first  # the first run records, it does not notify
    assert first["changes"] == [] and first["checked"] == 4
    assert not jsonl.exists()

    after = seed.replay_history(plain_registry, "library/python", rows, until=AFTER, platforms=True)
    proxy.log.clear()
    code, second = watch(project, proxy, state, "--jsonl", str(jsonl), "--tags-every", "0")
    assert code == 1
    assert changes(second) == {
        (
            "rebuilt",
            "python:3.13-slim-bookworm",
            seed.platform_digest(after, "3.13-slim-bookworm", "amd64"),
        ),
        ("newer", "python:3.13-slim-bookworm", "3.14-slim-bookworm"),
        ("newer", "python:3.12.11-slim", "3.14.0-slim"),
        ("newer", "python:3.9-slim", "3.14-slim"),
        ("removed", "python:3.13.6-slim", None),
    }
    assert len(second["changes"]) == 5  # none twice
    rebuilt = next(c for c in second["changes"] if c["kind"] == "rebuilt")
    assert rebuilt["old"] == seed.platform_digest(before, "3.13-slim-bookworm", "amd64")
    assert rebuilt["platform"] == "linux/amd64"
    # Each notification names its lines and the command that updates them.
    assert [(Path(u["file"]).name, u["line"]) for u in rebuilt["uses"]] == [("Dockerfile", 1)]
    assert "portside pin" in rebuilt["action"]
    compose = next(c for c in second["changes"] if c["image"].endswith(":3.9-slim"))
    assert [(Path(u["file"]).name, u["line"]) for u in compose["uses"]] == [("compose.yaml", 3)]
    assert "portside pin --update minor" in compose["action"]
    removed = next(c for c in second["changes"] if c["kind"] == "removed")
    assert "portside latest" in removed["action"]

    # What it cost: one HEAD per watched tag, one manifest GET for the one index whose
    # digest moved, one tag list for the one repository and, with it, one look at what
    # is attached to each image still there (its index and amd64 manifest, through
    # distribution 2.8's tag-schema fallback: the Referrers API is asked once, and its
    # 404 sends every lookup to the fallback); nothing else.
    heads = proxy.log.matching("HEAD", r"/manifests/")
    assert sorted(r.path.rsplit("/", 1)[-1] for r in heads) == sorted(
        ["3.13-slim-bookworm", "3.12.11-slim", "3.13.6-slim", "3.9-slim"]
    )
    gets = proxy.log.matching("GET", r"/manifests/sha256:")
    assert [r.path.rsplit("/", 1)[-1] for r in gets] == [after.digest("3.13-slim-bookworm")]
    assert len(proxy.log.matching("GET", r"/tags/list$")) == 1
    present = ["3.13-slim-bookworm", "3.12.11-slim", "3.9-slim"]
    subjects = sorted(
        [after.digest(t) for t in present]
        + [seed.platform_digest(after, t, "amd64") for t in present]
    )
    api = proxy.log.matching("GET", r"/referrers/")
    assert len(api) == 1 and api[0].path.rsplit("/", 1)[-1] in subjects
    fallback = proxy.log.matching("GET", r"/manifests/sha256-")
    assert sorted(r.path.rsplit("/", 1)[-1] for r in fallback) == [
        s.replace(":", "-") for s in subjects
    ]
    others = [
        r
        for r in proxy.log.all()
        if "/manifests/" not in r.path
        and "/referrers/" not in r.path
        and not r.path.endswith("/tags/list")
    ]
    assert all(r.path == "/v2/" for r in others), [r.target for r in others]

    # The JSON lines notifier wrote the same five, once each.
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert sorted(n["id"] for n in lines) == sorted(c["id"] for c in second["changes"])

    # Nothing changed since: one HEAD per tag (tag lists wait for --tags-every) and silence.
    proxy.log.clear()
    code, third = watch(project, proxy, state, "--jsonl", str(jsonl))
    assert code == 0 and third["changes"] == []
    assert len(proxy.log.matching("HEAD", r"/manifests/")) == 4
    assert [r for r in proxy.log.all() if r.method != "HEAD" and r.path != "/v2/"] == []
    assert len(jsonl.read_text().splitlines()) == 5

    # History says what changed when, and who was told.
    history = run_portside(
        "watch",
        "--history",
        f"{host}/library/python:3.13-slim-bookworm",
        "--json",
        "--state",
        str(state),
        cwd=project,
    )
    assert history.returncode == 0, history.stderr
    kinds = sorted(row["kind"] for row in json.loads(history.stdout))
    assert kinds == ["newer", "rebuilt"]
    assert all(set(row["deliveries"].values()) == {"sent"} for row in json.loads(history.stdout))
    whole = run_portside(
        "watch", "--history", f"{host}/library/python", "--state", str(state), cwd=project
    )
    assert whole.returncode == 0, whole.stderr
    assert len(whole.stdout.splitlines()) == 5  # one line per change, newest first
    assert all(
        line.endswith(f"[jsonl:{jsonl} sent]")  # --json: no console notifier
        for line in whole.stdout.splitlines()
    )


def test_a_rebuild_of_another_platform_does_not_fire(
    plain_registry: Registry,
    proxy_factory: Callable[..., FaultProxy],
    project: Path,
    tmp_path: Path,
) -> None:
    def index(amd64: str, arm64: str) -> seed.Index:
        return seed.merge_indexes(
            f"{amd64}+{arm64}",
            [seed.build_index(amd64, ["amd64"]), seed.build_index(arm64, ["arm64v8"])],
        )

    seed.push_image(plain_registry, "team/base", index("a1", "r1"), ["1.0"], via="fs")
    proxy = proxy_factory(plain_registry)
    (project / "Dockerfile").write_text(
        f"FROM --platform=linux/amd64 {proxy.host}/team/base:1.0\n"
        f"FROM --platform=linux/arm64/v8 {proxy.host}/team/base:1.0\n"
    )
    state = tmp_path / "state.sqlite3"
    assert watch(project, proxy, state)[0] == 0

    moved = seed.push_image(plain_registry, "team/base", index("a1", "r2"), ["1.0"], via="fs")
    code, report = watch(project, proxy, state)
    assert code == 1
    assert [(c["kind"], c["platform"], c["new"]) for c in report["changes"]] == [
        ("rebuilt", "linux/arm64/v8", moved.platform_digests["linux/arm64/v8"])
    ]
    assert [u["line"] for u in report["changes"][0]["uses"]] == [2]


def test_nothing_to_watch_and_bad_state_are_one_line_errors(project: Path, tmp_path: Path) -> None:
    result = run_portside("watch", "--once", "--state", str(tmp_path / "s.db"), cwd=project)
    assert result.returncode == 2
    assert result.stderr.startswith("portside: error: nothing to watch")
    (project / "Dockerfile").write_text("FROM alpine:3.20\n")
    result = run_portside("watch", "--once", "--state", "mysql://x/y", cwd=project)
    assert result.returncode == 2
    assert "unknown state location mysql://" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_portside(
        "watch", "--once", "--state", "postgresql://portside:pw@127.0.0.1:1/none", cwd=project
    )
    assert result.returncode == 1
    assert result.stderr.startswith("portside: error: cannot open the watch state")
    assert "pw" not in result.stderr and "Traceback" not in result.stderr
    result = run_portside(
        "watch", "--listen", "nowhere", "--state", str(tmp_path / "s.db"), cwd=project
    )
    assert result.returncode == 2
    assert "--listen wants HOST:PORT" in result.stderr


def test_a_new_variant_is_a_variant_update_exactly_as_check_reports_it(
    plain_registry: Registry,
    proxy_factory: Callable[..., FaultProxy],
    project: Path,
    tmp_path: Path,
) -> None:
    # Debian trixie variants appeared on 2025-08-11; bookworm tags were rebuilt with them.
    rows = data.load_history(HISTORY)
    seed.replay_history(plain_registry, "library/python", rows, until="2025-08-06")
    proxy = proxy_factory(plain_registry)
    (project / "Dockerfile").write_text(f"FROM {proxy.host}/library/python:3.12-slim-bookworm\n")
    state = tmp_path / "state.sqlite3"
    assert watch(project, proxy, state, "--tags-every", "0")[0] == 0

    after = seed.replay_history(plain_registry, "library/python", rows, until="2025-08-12")
    code, report = watch(project, proxy, state, "--tags-every", "0")
    assert code == 1
    assert changes(report) == {
        ("variant-update", "python:3.12-slim-bookworm", "3.12-slim-trixie"),
        ("rebuilt", "python:3.12-slim-bookworm", after.digest("3.12-slim-bookworm")),
    }
    # The same rule as `portside check`: its variant-update finding names the same tag.
    check = run_portside(
        "check",
        "--json",
        str(project),
        cwd=project,
        env={"PORTSIDE_INSECURE_REGISTRIES": proxy.host},
    )
    findings = json.loads(check.stdout)
    found = findings["findings"] if isinstance(findings, dict) else findings
    (variant,) = [f for f in found if f["kind"] == "variant-update"]
    assert variant["suggestion"].endswith(":3.12-slim-trixie")
    # check calls 3.13-slim-bookworm stale; it existed at the first run, so it was
    # recorded then and is no news now (the watcher reports what changed).
    (stale,) = [f for f in found if f["kind"] == "stale"]
    assert stale["suggestion"].endswith(":3.13-slim-bookworm")
