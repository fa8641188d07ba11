"""The watcher as a service and under pressure: SIGTERM mid-round loses nothing; a
registry at its rate limit is left alone (one request, no hammering) while the others
are checked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from harness import seed
from harness.cli import run_portside
from harness.proxy import FaultProxy
from harness.registry import Registry


def images_project(tmp_path: Path, hosts: list[str], tags: list[str]) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    images = ", ".join(f'"{h}/team/many:{t}"' for h in hosts for t in tags)
    (project / "pyproject.toml").write_text(f"[tool.portside.watch]\nimages = [{images}]\n")
    return project


def test_sigterm_mid_round_finishes_the_round_and_loses_nothing(
    plain_registry: Registry, proxy_factory: Callable[..., FaultProxy], tmp_path: Path
) -> None:
    many = seed.seed_many_tags(plain_registry, "team/many", 12, distinct=None)
    proxy = proxy_factory(plain_registry)
    proxy.delay("HEAD", r"/manifests/", 0.3)
    project = images_project(tmp_path, [proxy.host], list(many.tags))
    state = tmp_path / "state.db"
    log_path = tmp_path / "watch.log"
    env = {**os.environ, "PORTSIDE_INSECURE_REGISTRIES": proxy.host}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "portside",
                "watch",
                "--interval",
                "3600",
                "--quiet",
                "--concurrency",
                "2",
                "--state",
                str(state),
            ],
            cwd=project,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        proxy.log.wait_for(lambda r: r.method == "HEAD", timeout=30)
        proc.send_signal(signal.SIGTERM)  # the round is in flight: ~2 s of HEADs left
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log_path.read_text()
    assert proc.returncode == 0, text
    assert "round in flight" in text and "round 1: checked 12 image(s)" in text
    assert "stopped" in text and "Traceback" not in text
    # The round's results were kept: the next run knows every tag (a first run would
    # record silently; this one must also be silent, and check each tag once).
    rebuilt = seed.push_image(
        plain_registry, "team/many", seed.build_image("again"), [next(iter(many.tags))], via="fs"
    )
    once = run_portside("watch", "--once", "--json", "--state", str(state), cwd=project, env=env)
    assert once.returncode == 1, once.stderr
    assert [(c["kind"], c["new"]) for c in json.loads(once.stdout)["changes"]] == [
        ("rebuilt", rebuilt.digest)
    ]


def test_a_rate_limited_registry_is_left_alone_and_the_others_are_checked(
    plain_registry: Registry, proxy_factory: Callable[..., FaultProxy], tmp_path: Path
) -> None:
    many = seed.seed_many_tags(plain_registry, "team/many", 5, distinct=None)
    limited, fine = proxy_factory(plain_registry), proxy_factory(plain_registry)
    limited.fail("HEAD", r"/manifests/", 429, times=None, retry_after=600)
    project = images_project(tmp_path, [limited.host, fine.host], list(many.tags))
    env = {"PORTSIDE_INSECURE_REGISTRIES": f"{limited.host},{fine.host}"}
    state = tmp_path / "state.db"
    result = run_portside("watch", "--once", "--json", "--state", str(state), cwd=project, env=env)
    assert result.returncode == 5, result.stderr  # nothing changed, but not all was checked
    report = json.loads(result.stdout)
    assert report["checked"] == 5
    assert any(limited.host in p and "rate-limited" in p for p in report["problems"])
    assert len(limited.log.matching("HEAD", r"/manifests/")) == 1  # then it waits for the reset
    assert len(fine.log.matching("HEAD", r"/manifests/")) == 5
    assert "Traceback" not in result.stderr

    # The limit lifted, a run soon after finishes the round: the deferred tags only.
    limited.clear_rules()
    again = run_portside("watch", "--once", "--json", "--state", str(state), cwd=project, env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["checked"] == 5
    assert len(limited.log.matching("HEAD", r"/manifests/")) == 1 + 5
    assert len(fine.log.matching("HEAD", r"/manifests/")) == 5


def test_a_slow_registry_delays_no_other(
    plain_registry: Registry, proxy_factory: Callable[..., FaultProxy], tmp_path: Path
) -> None:
    import sqlite3

    many = seed.seed_many_tags(plain_registry, "team/many", 6, distinct=None)
    slow, fast = proxy_factory(plain_registry), proxy_factory(plain_registry)
    slow.delay("HEAD", r"/manifests/", 3.0)
    project = images_project(tmp_path, [slow.host, fast.host], list(many.tags))
    env = {"PORTSIDE_INSECURE_REGISTRIES": f"{slow.host},{fast.host}"}
    state = tmp_path / "state.db"
    result = run_portside("watch", "--once", "--json", "--state", str(state), cwd=project, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["checked"] == 12
    with sqlite3.connect(state) as db:
        when = dict(db.execute("SELECT key, last_checked FROM watch_targets").fetchall())
    slow_done = [t for k, t in when.items() if k.startswith(slow.host)]
    fast_done = [t for k, t in when.items() if k.startswith(fast.host)]
    # Every tag of the fast registry was recorded before the slow one answered once.
    assert max(fast_done) < min(slow_done)


def test_a_quota_at_zero_stops_the_registry_after_one_request(
    plain_registry: Registry, proxy_factory: Callable[..., FaultProxy], tmp_path: Path
) -> None:
    many = seed.seed_many_tags(plain_registry, "team/many", 5, distinct=None)
    proxy = proxy_factory(plain_registry)
    # Docker Hub's quota headers: the request that used the last pull says so.
    proxy.set_headers(
        "HEAD",
        r"/manifests/",
        {"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "0;w=21600"},
    )
    project = images_project(tmp_path, [proxy.host], list(many.tags))
    env = {"PORTSIDE_INSECURE_REGISTRIES": proxy.host}
    state = tmp_path / "state.db"
    result = run_portside("watch", "--once", "--json", "--state", str(state), cwd=project, env=env)
    assert result.returncode == 5, result.stderr
    report = json.loads(result.stdout)
    assert report["checked"] == 1
    assert any("0 of 100 per 6 h left" in p for p in report["problems"]), report["problems"]
    assert len(proxy.log.matching("HEAD", r"/manifests/")) == 1
