"""One watch round over 1,000 tags on a local registry, against Diun's approach.

    .venv/bin/python benchmarks/bench_watch.py [--tags 1000] [--runs 3]

Starts a real ``docker-registry`` the way the tests do (``tests/harness``) and fills
ten repositories with 100 tags each, every tag its own two-platform index (amd64,
arm64). The watched set is those 1,000 tags (``[tool.portside.watch] images``).
Measured, each against a fault-injecting proxy that counts requests (counts) and
against the registry directly (times):

- portside, nothing changed: one round after the first (which only records);
- portside, 10% changed: 100 tags rebuilt (new indexes) before the round;
- the same two with two watcher processes sharing one PostgreSQL (Debian's 15);
- Diun's approach: a manifest GET per tag, same concurrency (8), same client library.

Round times are the watcher's own (state included, process start-up excluded), in
process through ``portside.watch`` with SQLite state, with this process's CPU time per
tag beside them (the client's side only: the registry is another process); the
PostgreSQL rows are the wall time of two ``portside watch --once`` processes started
together, start-up included. A benchmark, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from harness import seed  # noqa: E402
from harness.postgres import PostgresCluster  # noqa: E402
from harness.proxy import FaultProxy  # noqa: E402
from harness.registry import Registry  # noqa: E402
from portside.registry.mediatypes import MANIFEST_ACCEPT  # noqa: E402
from portside.registry.transport import ClientOptions  # noqa: E402
from portside.watch.service import WatchOptions, run_once  # noqa: E402

REPOS = 10
CONCURRENCY = 8


def fill(registry: Registry, tags: int, generation: dict[str, int]) -> list[tuple[str, str]]:
    pairs = []
    for i in range(tags):
        repo, tag = f"bench/r{i % REPOS}", f"1.{i // 100}.{i % 100}"
        pairs.append((repo, tag))
        generation[f"{repo}:{tag}"] = 0
        seed.push_image(
            registry,
            repo,
            seed.build_index(f"{repo}-{tag}-g0", ["amd64", "arm64v8"]),
            [tag],
            via="fs",
        )
    return pairs


def rebuild(
    registry: Registry, pairs: list[tuple[str, str]], generation: dict[str, int], share: float
) -> None:
    # Every tenth tag of every repository, so that each repository has some.
    step = round(1 / share)
    for repo, tag in [p for i, p in enumerate(pairs) if (i // REPOS) % step == 0]:
        key = f"{repo}:{tag}"
        generation[key] += 1
        build = f"{repo}-{tag}-g{generation[key]}"
        seed.push_image(
            registry, repo, seed.build_index(build, ["amd64", "arm64v8"]), [tag], via="fs"
        )


def project(folder: Path, host: str, pairs: list[tuple[str, str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    images = ",\n  ".join(f'"{host}/{repo}:{tag}"' for repo, tag in pairs)
    (folder / "pyproject.toml").write_text(f"[tool.portside.watch]\nimages = [\n  {images}\n]\n")
    return folder


def portside_round(folder: Path, host: str, state: Path) -> tuple[float, int, int]:
    options = WatchOptions(
        paths=[str(folder)],
        state=str(state),
        once=True,
        concurrency=CONCURRENCY,
        client_options=ClientOptions(insecure=frozenset({host})),
        console=False,
    )
    started = time.perf_counter()
    report, _ = asyncio.run(run_once(options))
    wall = time.perf_counter() - started
    return wall, report.checked, len(report.changes)


async def diun_round(
    host: str, pairs: list[tuple[str, str]], seen: dict[str, str]
) -> tuple[float, int]:
    import httpx

    gate = asyncio.Semaphore(CONCURRENCY)
    changed = 0
    async with httpx.AsyncClient(base_url=f"http://{host}", timeout=30) as client:

        async def one(repo: str, tag: str) -> None:
            nonlocal changed
            async with gate:
                response = await client.get(
                    f"/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT}
                )
                response.raise_for_status()
                digest = response.headers["docker-content-digest"]
                if seen.get(f"{repo}:{tag}") not in (None, digest):
                    changed += 1
                seen[f"{repo}:{tag}"] = digest

        started = time.perf_counter()
        await asyncio.gather(*(one(r, t) for r, t in pairs))
        return time.perf_counter() - started, changed


def _what(path: str) -> str:
    if "/manifests/sha256-" in path:
        return "referrers (tag schema)"  # distribution 2.8: no Referrers API
    if "/manifests/" in path:
        return "manifest"
    if "/referrers/" in path:
        return "referrers (API)"
    return "tags" if path.endswith("/tags/list") else path


def counts(proxy: FaultProxy) -> str:
    c = Counter(f"{r.method} {_what(r.path)}" for r in proxy.log.all())
    return ", ".join(f"{n} {k}" for k, n in sorted(c.items()))


def total(proxy: FaultProxy, method: str | None = None) -> int:
    return sum(1 for r in proxy.log.all() if method is None or r.method == method)


def two_watchers(folder: Path, host: str, url: str) -> tuple[float, list[int], int]:
    env = {**os.environ, "PORTSIDE_INSECURE_REGISTRIES": host}
    command = [
        sys.executable,
        "-m",
        "portside",
        "watch",
        "--once",
        "--json",
        "--state",
        url,
        str(folder),
    ]
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"watcher failed: {err[-500:]}")
        reports.append(json.loads(out))
    wall = time.perf_counter() - started
    return wall, [r["checked"] for r in reports], sum(len(r["changes"]) for r in reports)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-watch-"))
    registry = Registry(work / "registry").start()
    proxy = FaultProxy(registry)
    proxy.start()
    cluster = PostgresCluster().start()
    rows: list[tuple[str, str, str, str, str]] = []
    try:
        generation: dict[str, int] = {}
        pairs = fill(registry, options.tags, generation)
        direct = project(work / "direct", registry.host, pairs)
        counted = project(work / "counted", proxy.host, pairs)
        n = len(pairs)

        # Counts, through the proxy (its own state files).
        portside_round(counted, proxy.host, work / "counted.db")  # first round: records
        proxy.log.clear()
        portside_round(counted, proxy.host, work / "counted.db")
        unchanged_counts = counts(proxy)
        unchanged_total = total(proxy)
        unchanged_gets = sum(
            1 for r in proxy.log.all() if r.method == "GET" and "/manifests/" in r.path
        )
        rebuild(registry, pairs, generation, 0.1)
        proxy.log.clear()
        _, _, found = portside_round(counted, proxy.host, work / "counted.db")
        changed_counts, changed_total, _changed_gets = (
            counts(proxy),
            total(proxy),
            total(proxy, "GET"),
        )
        seen: dict[str, str] = {}
        asyncio.run(diun_round(proxy.host, pairs, seen))
        proxy.log.clear()
        asyncio.run(diun_round(proxy.host, pairs, seen))
        diun_total = total(proxy)

        # Times, against the registry directly.
        state = work / "direct.db"
        portside_round(direct, registry.host, state)
        times: dict[str, list[float]] = {
            k: [] for k in ("unchanged", "changed", "diun", "diun-changed")
        }
        # This process's CPU time per round (the client side: the registry is another
        # process); less sensitive to a loaded machine than the wall time.
        cpu: dict[str, list[float]] = {k: [] for k in times}

        def timed(kind: str, run: Callable[[], float]) -> None:
            started = time.process_time()
            times[kind].append(run())
            cpu[kind].append(time.process_time() - started)

        diun_seen: dict[str, str] = {}
        asyncio.run(diun_round(registry.host, pairs, diun_seen))
        for _ in range(options.runs):
            timed("unchanged", lambda: portside_round(direct, registry.host, state)[0])
            timed("diun", lambda: asyncio.run(diun_round(registry.host, pairs, diun_seen))[0])
        for _ in range(options.runs):
            rebuild(registry, pairs, generation, 0.1)
            timed("changed", lambda: portside_round(direct, registry.host, state)[0])
            rebuild(registry, pairs, generation, 0.1)
            timed(
                "diun-changed", lambda: asyncio.run(diun_round(registry.host, pairs, diun_seen))[0]
            )

        # Two watchers on one PostgreSQL.
        url = cluster.create_database()
        two_watchers(direct, registry.host, url)  # first round: records
        pg_unchanged = [two_watchers(direct, registry.host, url) for _ in range(options.runs)]
        pg_changed = []
        for _ in range(options.runs):
            rebuild(registry, pairs, generation, 0.1)
            pg_changed.append(two_watchers(direct, registry.host, url))

        med = {k: statistics.median(v) for k, v in times.items()}
        per_tag = {k: f"{statistics.median(v) * 1000 / n:.2f}" for k, v in cpu.items()}
        rows = [
            (
                "portside, nothing changed",
                f"{unchanged_total} ({unchanged_counts})",
                f"{med['unchanged'] * 1000:.0f}",
                f"{n / med['unchanged']:.0f}",
                per_tag["unchanged"],
            ),
            (
                f"portside, 10% changed ({found} notices)",
                f"{changed_total} ({changed_counts})",
                f"{med['changed'] * 1000:.0f}",
                f"{n / med['changed']:.0f}",
                per_tag["changed"],
            ),
            (
                "Diun's approach (GET per tag)",
                f"{diun_total} ({diun_total} GET manifest)",
                f"{med['diun'] * 1000:.0f}",
                f"{n / med['diun']:.0f}",
                per_tag["diun"],
            ),
            (
                "Diun's approach, 10% changed",
                f"{diun_total}",
                f"{med['diun-changed'] * 1000:.0f}",
                f"{n / med['diun-changed']:.0f}",
                per_tag["diun-changed"],
            ),
            (
                "two watchers + PostgreSQL, nothing changed (2 processes, wall)",
                f"split {pg_unchanged[-1][1]}",
                f"{statistics.median(w for w, _, _ in pg_unchanged) * 1000:.0f}",
                f"{n / statistics.median(w for w, _, _ in pg_unchanged):.0f}",
                "-",
            ),
            (
                f"two watchers + PostgreSQL, 10% changed ({pg_changed[-1][2]} notices)",
                f"split {pg_changed[-1][1]}",
                f"{statistics.median(w for w, _, _ in pg_changed) * 1000:.0f}",
                f"{n / statistics.median(w for w, _, _ in pg_changed):.0f}",
                "-",
            ),
        ]
        ratio_requests = unchanged_gets / diun_total
        ratio_time = med["unchanged"] / med["diun"]
        ratio_time_changed = med["changed"] / med["diun-changed"]
    finally:
        cluster.stop()
        proxy.stop()
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)

    lines = [
        f"One watch round over {n} tags ({REPOS} repositories, two-platform indexes), "
        f"local docker-registry, concurrency {CONCURRENCY}; median of {options.runs} "
        f"(Python {platform.python_version()}, {os.cpu_count()} CPUs)",
        "",
        "| round | requests | ms | tags/s | client CPU ms/tag |",
        "|---|---|---:|---:|---:|",
        *(f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows),
        "",
        f"Against Diun's approach: manifest GETs {unchanged_gets} vs {diun_total} "
        f"(ratio {ratio_requests:.3f}) when nothing changed; time {ratio_time:.2f}x "
        f"(nothing changed), {ratio_time_changed:.2f}x (10% changed).",
    ]
    table = "\n".join(lines)
    print(table)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (out / f"watch-{stamp}.md").write_text(table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
