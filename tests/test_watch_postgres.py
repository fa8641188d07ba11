"""Two watchers sharing one real PostgreSQL split a round: every image checked once,
every change notified once, by one of them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import seed
from harness.proxy import FaultProxy
from harness.registry import Registry

COUNT = 40


def start(project: Path, proxy: FaultProxy, state: str, jsonl: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "portside",
            "watch",
            "--once",
            "--json",
            "--concurrency",
            "2",
            "--tags-every",
            "3600",
            "--state",
            state,
            "--jsonl",
            str(jsonl),
        ],
        cwd=project,
        env={**os.environ, "PORTSIDE_INSECURE_REGISTRIES": proxy.host},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def both(project: Path, proxy: FaultProxy, state: str, jsonl: Path) -> list[dict[str, Any]]:
    procs = [start(project, proxy, state, jsonl) for _ in range(2)]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode in (0, 1), err
        assert "Traceback" not in err
        reports.append(json.loads(out))
    return reports


def test_two_watchers_split_a_round_without_duplicates(
    plain_registry: Registry,
    proxy_factory: Callable[..., FaultProxy],
    postgres_url: str,
    tmp_path: Path,
) -> None:
    many = seed.seed_many_tags(plain_registry, "team/many", COUNT, distinct=None)
    proxy = proxy_factory(plain_registry)
    # Slow answers, so that both watchers are at work at the same time.
    proxy.delay("HEAD", r"/manifests/", 0.3)
    project = tmp_path / "project"
    project.mkdir()
    images = [f'"{proxy.host}/team/many:{tag}"' for tag in many.tags]
    (project / "pyproject.toml").write_text(
        f"[tool.portside.watch]\nimages = [{', '.join(images)}]\n"
    )
    jsonl = tmp_path / "notes.jsonl"

    first = both(project, proxy, postgres_url, jsonl)
    heads = Counter(r.path for r in proxy.log.matching("HEAD", r"/manifests/"))
    assert len(heads) == COUNT and set(heads.values()) == {1}  # each tag once, in all
    assert sorted(r["checked"] for r in first) != [0, COUNT]  # both did part of it
    assert sum(r["checked"] for r in first) == COUNT
    assert all(r["changes"] == [] for r in first)  # the first round records

    # A tenth of the tags are rebuilt; both watchers run again, together.
    moved = {tag: f"rebuilt-{tag}" for tag in list(many.tags)[::10]}
    new = {
        tag: seed.push_image(
            plain_registry, "team/many", seed.build_image(b), [tag], via="fs"
        ).digest
        for tag, b in moved.items()
    }
    proxy.log.clear()
    second = both(project, proxy, postgres_url, jsonl)
    heads = Counter(r.path for r in proxy.log.matching("HEAD", r"/manifests/"))
    assert len(heads) == COUNT and set(heads.values()) == {1}
    reported = [c for r in second for c in r["changes"]]
    assert sorted((c["kind"], c["image"].rsplit(":", 1)[-1], c["new"]) for c in reported) == sorted(
        ("rebuilt", tag, digest) for tag, digest in new.items()
    )
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert sorted(n["id"] for n in lines) == sorted(c["id"] for c in reported)  # sent once each
