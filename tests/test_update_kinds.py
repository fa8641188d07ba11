"""The update rules on the tag shapes of the official images, end to end: a real registry
replayed from the tag history to a date, ``portside check --json``, ``portside latest``
and ``portside pin --update`` run as a user runs them, with the clock at that date
(``faketime``: release dates decide what may be offered).

One case per kind of tag Renovate and Portside were compared on: Ubuntu and Debian
dated snapshots and codenames, Debian suite aliases, upper-case pre-releases,
pre-release and build parts after a hyphen, date-only tags, two proposals (the newest in
the current major and the newest overall). ``tests/test_lsp_update_kinds.py`` runs the
same cases through the language server's code actions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import data, seed
from harness.registry import Registry


@dataclass(frozen=True)
class Case:
    id: str
    history: str  # a file in tests/data/registry-tags/history
    repository: str  # where it is seeded (library/...: the official image's path)
    day: str  # the registry as it stood that day, and the clock
    tag: str  # what the FROM line names (it may be gone from the registry by then)
    proposals: list[tuple[str, str]]  # (tag, level), smallest step first
    latest: str | None  # what `portside latest` answers
    pin_patch: str  # the tag `pin --update patch` writes
    pin_major: str  # the tag `pin --update major` writes


CASES = [
    # 1. Ubuntu: a snapshot moves to the newest of its release, and to the newest LTS.
    Case("ubuntu-snapshot", "ubuntu", "library/ubuntu", "2024-06-01", "jammy-20240212",
         [("jammy-20240427", "build"), ("noble-20240429", "major")], "noble-20240429",
         "jammy-20240427", "noble-20240429"),
    Case("ubuntu-codename", "ubuntu", "library/ubuntu", "2024-06-01", "jammy",
         [("noble", "major")], "noble", "jammy", "noble"),
    # noble is tagged from February but out on 2024-04-25; mantic (23.10) is interim.
    Case("ubuntu-before-release", "ubuntu", "library/ubuntu", "2024-04-01", "jammy",
         [], "jammy", "jammy", "jammy"),
    Case("ubuntu-lts-only", "ubuntu", "library/ubuntu", "2024-04-01", "20.04",
         [("22.04", "major")], "22.04", "20.04", "22.04"),
    # 2. Debian: the newest snapshot of the suite; trixie only once released.
    Case("debian-snapshot", "debian-since-2024-03", "library/debian", "2025-06-01",
         "bookworm-20240722", [("bookworm-20250520", "build")], "bookworm-20250520",
         "bookworm-20250520", "bookworm-20250520"),
    Case("debian-snapshot-after-trixie", "debian-since-2024-03", "library/debian",
         "2025-10-01", "bookworm-20240722",
         [("bookworm-20250929", "build"), ("trixie-20250929", "major")], "trixie-20250929",
         "bookworm-20250929", "trixie-20250929"),
    Case("debian-alias", "debian-since-2024-03", "library/debian", "2025-10-01", "stable",
         [], "stable", "stable", "stable"),
    # 3. Upper-case pre-releases: one rule for check and latest.
    Case("php-upper-case-rc", "php-by-hand", "library/php", "2025-06-01",
         "8.3.11RC2-fpm-bookworm", [("8.4.7-fpm-bookworm", "minor")], "8.4.7-fpm-bookworm",
         "8.3.12-fpm-bookworm", "8.4.7-fpm-bookworm"),
    # 4. Pre-release and build parts after a hyphen.
    Case("mongo-rc", "mongo-2024-03-to-06", "library/mongo", "2024-06-01", "7.0.10-rc0",
         [("7.0.11", "patch")], "7.0.11", "7.0.11", "7.0.11"),  # never 8.0.0-rc6
    # openjdk's 23-nanoserver is the image of 23-ea-25-nanoserver (23 is not out): not
    # an update of either; never 24-ea-*-nanoserver.
    Case("openjdk-ea", "openjdk-22-to-25-2024-03-to-06", "library/openjdk", "2024-06-01",
         "23-ea-14-nanoserver", [("23-ea-25-nanoserver", "prerelease")],
         "23-ea-25-nanoserver", "23-ea-25-nanoserver", "23-ea-25-nanoserver"),
    Case("openjdk-ea-alias", "openjdk-22-to-25-2024-03-to-06", "library/openjdk",
         "2024-06-01", "23-ea-25-nanoserver", [], None,  # no final release: latest says so
         "23-ea-25-nanoserver", "23-ea-25-nanoserver"),
    Case("temurin-build", "eclipse-temurin-by-hand", "library/eclipse-temurin", "2025-06-01",
         "8u392-b08-jre", [("8u452-b09-jre", "minor")], "8u452-b09-jre", "8u392-b08-jre",
         "8u452-b09-jre"),
    # 5. Date-only tags: the newest snapshot.
    Case("alpine-date", "alpine", "library/alpine", "2025-06-01", "20240329",
         [("20250108", "patch")], "20250108", "20250108", "20250108"),
    # 6. Two proposals: the newest in the current major and the newest overall.
    Case("mysql-two", "mysql", "library/mysql", "2025-06-01", "8.0.36",
         [("8.4.5", "minor"), ("9.3.0", "major")], "9.3.0", "8.0.42", "9.3.0"),
    # What worked before and must stay: variants, Windows tags, lower-case pre-releases,
    # floating tags.
    Case("python-variant", "python-since-2025-06", "library/python", "2025-10-08",
         "3.13.7-slim-bookworm", [("3.14.0-slim-bookworm", "minor")], "3.14.0-slim-bookworm",
         "3.13.8-slim-bookworm", "3.14.0-slim-bookworm"),
    Case("python-windows", "python-since-2025-06", "library/python", "2025-10-08",
         "3.13-windowsservercore-ltsc2022", [("3.14-windowsservercore-ltsc2022", "minor")],
         "3.14-windowsservercore-ltsc2022", "3.13-windowsservercore-ltsc2022",
         "3.14-windowsservercore-ltsc2022"),
    Case("python-rc", "python-since-2025-06", "library/python", "2025-10-08",
         "3.14.0rc2-slim-trixie", [("3.14.0-slim-trixie", "prerelease")],
         "3.14.0-slim-trixie", "3.14.0-slim-trixie", "3.14.0-slim-trixie"),
    Case("python-floating", "python-since-2025-06", "library/python", "2025-10-08",
         "3.13-slim", [("3.14-slim", "minor")], "3.14-slim", "3.13-slim", "3.14-slim"),
]  # fmt: skip


def faked(day: str) -> list[str]:
    """The command prefix that runs a program with the clock at noon (UTC) on ``day``."""
    return ["faketime", f"{day} 12:00:00"]


def portside(case: Case, *args: str, cwd: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PORTSIDE_CACHE_DIR": str(cache),
        "DOCKER_CONFIG": str(cache / "docker"),
        "TZ": "UTC",
        # Timeouts and asyncio keep the real monotonic clock; only the date is moved.
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    return subprocess.run(
        [*faked(case.day), sys.executable, "-m", "portside", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_check_latest_and_pin_update(case: Case, plain_registry: Registry, tmp_path: Path) -> None:
    state = seed.replay_history(
        plain_registry, case.repository, data.load_history(case.history), until=case.day
    )
    image = f"{plain_registry.host}/{case.repository}"
    cache = tmp_path / "cache"
    folder = tmp_path / "project"
    folder.mkdir()
    dockerfile = folder / "Dockerfile"
    dockerfile.write_text(f"FROM {image}:{case.tag}\n", encoding="utf-8")

    checked = portside(case, "check", "--json", cwd=folder, cache=cache)
    assert "Traceback" not in checked.stderr, checked.stderr
    findings = json.loads(checked.stdout)
    stale = [f for f in findings if f["kind"] == "stale"]
    if case.proposals:
        assert len(stale) == 1, findings
        got = [(p["tag"], p["level"]) for p in stale[0]["proposals"]]
        assert got == case.proposals
        assert stale[0]["level"] == case.proposals[-1][1]
        assert stale[0]["suggestion"] == f"{image}:{case.proposals[-1][0]}"
        assert [p["suggestion"] for p in stale[0]["proposals"]] == [
            f"{image}:{tag}" for tag, _ in case.proposals
        ]
    else:
        assert stale == [], stale
    # A FROM line naming a snapshot the registry has dropped is told so, and offered
    # the newest of its line all the same (above).
    gone = case.tag not in state.tags
    assert any(f["kind"] == "not-found" for f in findings) is gone

    latest = portside(case, "latest", "--json", f"{image}:{case.tag}", cwd=folder, cache=cache)
    if case.latest is None:
        assert latest.returncode == 1, latest.stdout
    else:
        assert latest.returncode == 0, latest.stderr
        answer = json.loads(latest.stdout)
        assert answer["tag"] == case.latest
        assert answer["digest"] == state.digest(case.latest)

    for level, expected in (("patch", case.pin_patch), ("major", case.pin_major)):
        dockerfile.write_text(f"FROM {image}:{case.tag}\n", encoding="utf-8")
        pinned = portside(case, "pin", "--update", level, cwd=folder, cache=cache)
        if expected == case.tag and gone:
            # Nothing newer to move to and the tag is gone: nothing to pin, said so.
            assert pinned.returncode != 0
            assert dockerfile.read_text(encoding="utf-8") == f"FROM {image}:{case.tag}\n"
            continue
        assert pinned.returncode == 0, pinned.stderr
        assert dockerfile.read_text(encoding="utf-8") == (
            f"FROM {image}:{expected}@{state.digest(expected)}\n"
        ), level
