"""Time ``portside.query`` over a 2,000-tag repository, cold and warm.

    .venv/bin/python benchmarks/bench_query.py [--cold-runs 5] [--warm-runs 20]

Starts the real registry the way the test harness does (``tests/harness``) and seeds
``library/python`` with the 2,000 real tag names in ``benchmarks/data/python-tags.txt``
(a multi-platform OCI index per release, eight platforms, each release with its own
``created`` date). Then, in-process through the library API (``run_query``), for three
queries of increasing cost:

- **tags only**: decided by the tag list (plus one HEAD for the result's digest);
- **issue example**: version, variant, platform and created, ``order by version desc
  limit 1``: the planner reads only the newest candidates' manifests and configs;
- **full scan**: ``order by created desc limit 5``: no early stop possible, every
  tag's index is read, every distinct image's config once.

*Cold* is an empty cache directory per run (every request goes to the registry);
*warm* is a new ``CachedRegistry`` on a filled cache (the same query a second time:
no request at all). Reports min and median in ms, and the requests each cold run made,
as markdown on stdout and in ``benchmarks/results/`` (git-ignored). A benchmark, not a
test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))  # the harness: same registry setup as the tests

from harness import seed  # noqa: E402
from harness.data import TagRow  # noqa: E402
from harness.proxy import FaultProxy  # noqa: E402
from harness.registry import Registry  # noqa: E402
from portside.cache import CachedRegistry, CacheStore  # noqa: E402
from portside.query import run_query  # noqa: E402

REPO = "library/python"
ARCHITECTURES = ("amd64", "arm32v5", "arm32v7", "arm64v8", "i386", "ppc64le", "riscv64", "s390x")
NOW = dt.datetime(2026, 9, 1, tzinfo=dt.timezone.utc)


def load_tags() -> list[str]:
    text = (HERE / "data" / "python-tags.txt").read_text()
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def created_for(build: str) -> str:
    # Deterministic, spread over five years: the order differs from the version order,
    # so "order by created" really has to read every image.
    day = dt.date(2021, 9, 1) + dt.timedelta(days=zlib.crc32(build.encode()) % 1800)
    return f"{day.isoformat()}T00:00:00Z"


def seed_repository(registry: Registry, tags: Sequence[str]) -> None:
    rows = [TagRow(tag, "rel-" + tag.partition("-")[0], ARCHITECTURES) for tag in tags]
    seed.seed_from_tsv(
        registry, REPO, rows, platforms=True, media="oci", via="fs", created=created_for
    )


def queries(host: str) -> dict[str, str]:
    ref = f"{host}/{REPO}"
    return {
        "tags only": f'{ref} where version ~ 3.12 and variant = "slim-bookworm" limit 1',
        "issue example": (
            f'{ref} where version ~ 3.12 and variant = "slim-bookworm" and '
            "platform = linux/arm64 and created < 2026-06-01 order by version desc limit 1"
        ),
        "full scan": f"{ref} where created > now - 1000d order by created desc limit 5",
    }


async def run(text: str, cache_dir: str) -> int:
    async with CachedRegistry(store=CacheStore(cache_dir)) as cached:
        results = await run_query(text, cached, now=NOW)
    return len(results)


def timed(text: str, cache_dir: str) -> tuple[float, int]:
    started = time.perf_counter()
    found = asyncio.run(run(text, cache_dir))
    return (time.perf_counter() - started) * 1000, found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--warm-runs", type=int, default=20)
    args = parser.parse_args(argv)

    tags = load_tags()
    work = Path(tempfile.mkdtemp(prefix="bench-query-"))
    registry = Registry(work / "registry")
    rows: list[tuple[str, float, float, float, float, int, int]] = []
    try:
        registry.start()
        started = time.perf_counter()
        seed_repository(registry, tags)
        seed_ms = (time.perf_counter() - started) * 1000
        # Requests are counted through the harness's recording proxy, as the tests do.
        proxy = FaultProxy(registry)
        proxy.start()
        try:
            for name, text in queries(proxy.host).items():
                cold: list[float] = []
                requests = found = 0
                for i in range(args.cold_runs):
                    cache_dir = str(work / f"cold-{name}-{i}")
                    before = len(proxy.requests)
                    ms, found = timed(text, cache_dir)
                    cold.append(ms)
                    requests = len(proxy.requests) - before
                    shutil.rmtree(cache_dir, ignore_errors=True)
                warm_dir = str(work / f"warm-{name}")
                timed(text, warm_dir)  # fill
                before = len(proxy.requests)
                warm = [timed(text, warm_dir)[0] for _ in range(args.warm_runs)]
                warm_requests = len(proxy.requests) - before
                rows.append(
                    (
                        name,
                        min(cold),
                        statistics.median(cold),
                        min(warm),
                        statistics.median(warm),
                        requests,
                        warm_requests,
                    )
                )
                print(f"  {name}: {found} result(s)", file=sys.stderr)
        finally:
            proxy.stop()
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)

    stamp = dt.datetime.now()
    lines = [
        f"# portside query over {len(tags)} tags ({stamp:%Y-%m-%d %H:%M})",
        "",
        f"{REPO}: {len(tags)} tags, one 8-platform OCI index per release (seeded in "
        f"{seed_ms:.0f} ms); local plain-HTTP `docker-registry` on loopback behind the "
        f"harness's recording proxy; in-process `run_query`; {args.cold_runs} cold runs "
        f"(empty cache each), {args.warm_runs} warm runs (filled cache, new CachedRegistry); "
        f"CPython {platform.python_version()}, {os.cpu_count()} CPUs.",
        "",
        "| query | cold min ms | cold median ms | warm min ms | warm median ms "
        "| requests cold | requests warm |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, cmin, cmed, wmin, wmed, req, wreq in rows:
        lines.append(
            f"| {name} | {cmin:.1f} | {cmed:.1f} | {wmin:.1f} | {wmed:.1f} | {req} | {wreq} |"
        )
    report = "\n".join(lines) + "\n"
    print(report)
    out = HERE / "results" / f"bench_query-{stamp:%Y%m%d-%H%M%S}.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
