"""Time ``portside check`` on 50 Dockerfiles with 50 distinct base images.

    .venv/bin/python benchmarks/bench_check.py [--runs 5]

Starts a real registry the way the tests do (``tests/harness``) and fills 50
repositories, one for each of the first 50 official images in
``tests/data/registry-tags/current`` (their real tags, one image per build). Writes 50
Dockerfiles into a temporary folder, each ``FROM`` a different one of those images at a
real tag, and runs ``portside check --json FOLDER``:

- cold: an empty cache directory each run (every tag list and manifest is fetched),
- warm: a filled cache (within its TTL, no request at all),
- cold with a registry that answers each request 20 ms late (a fault-injecting proxy
  in front of it), which shows that the 50 images are checked concurrently: in a row
  that alone would cost at least 50 x 2 x 20 ms,
- warm with the hadolint plugin on (when its binary is installed): hadolint over all
  the files at once, a process per CPU at most (one per file before the batch hook).

Reports min, median and max wall time in milliseconds as a markdown table on stdout
and in ``benchmarks/results/``. A benchmark, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from harness import data, seed  # noqa: E402
from harness.proxy import FaultProxy  # noqa: E402
from harness.registry import Registry  # noqa: E402

IMAGES = 50


def prepare(registry: Registry, folder: Path) -> list[str]:
    names = sorted(p.stem for p in (data.DATA_DIR / "current").glob("*.tsv"))
    used: list[str] = []
    for name in names:
        if len(used) == IMAGES:
            break
        rows = data.load_current(name)
        if not rows:
            continue  # an image with no current tags (deprecated upstream)
        i = len(used)
        seed.seed_from_tsv(registry, f"library/{name}", rows, platforms=False, via="fs")
        # A tag that is not the newest, so checking has something to find.
        tag = rows[len(rows) // 2].tag
        sub = folder / f"svc{i:02d}"
        sub.mkdir()
        (sub / "Dockerfile").write_text(
            f"FROM {registry.host}/library/{name}:{tag}\nRUN true\n", encoding="utf-8"
        )
        used.append(f"{name}:{tag}")
    return used


def run(folder: Path, cache: Path, *, hadolint: bool = False) -> float:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PORTSIDE_CACHE_DIR"] = str(cache)
    # The registry side is what is measured; hadolint is one row.
    if not hadolint:
        env["PORTSIDE_HADOLINT"] = "off"
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "portside", "check", "--json", str(folder)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = (time.perf_counter() - started) * 1000
    if done.returncode not in (0, 1) or '"unreachable"' in done.stdout:
        raise SystemExit(f"portside check failed ({done.returncode}): {done.stderr[-500:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-check-"))
    registry = Registry(work / "registry").start()
    proxy: FaultProxy | None = None
    try:
        plain = work / "plain"
        plain.mkdir()
        prepare(registry, plain)
        proxy = FaultProxy(registry)
        proxy.start()
        proxy.delay(None, r"^/v2/.+", 0.02)
        slow = work / "slow"
        shutil.copytree(plain, slow)
        for dockerfile in slow.glob("*/Dockerfile"):
            text = dockerfile.read_text(encoding="utf-8")
            dockerfile.write_text(text.replace(registry.host, proxy.host), encoding="utf-8")

        results: dict[str, list[float]] = {
            "cold": [],
            "warm": [],
            "cold, +20 ms per request": [],
            "warm, with the hadolint plugin": [],
        }
        warm_cache = work / "warm-cache"
        run(plain, warm_cache)
        for i in range(options.runs):
            results["cold"].append(run(plain, work / f"cold-{i}"))
            results["warm"].append(run(plain, warm_cache))
            results["cold, +20 ms per request"].append(run(slow, work / f"slow-{i}"))
            results["warm, with the hadolint plugin"].append(run(plain, warm_cache, hadolint=True))
    finally:
        if proxy is not None:
            proxy.stop()
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)

    lines = [
        f"`portside check` on {IMAGES} Dockerfiles, {IMAGES} distinct base images "
        f"({options.runs} runs; {platform.python_version()}, {os.cpu_count()} CPUs)",
        "",
        "| run | min ms | median ms | max ms |",
        "|---|---:|---:|---:|",
    ]
    for name, times in results.items():
        lines.append(
            f"| {name} | {min(times):.0f} | {statistics.median(times):.0f} | {max(times):.0f} |"
        )
    table = "\n".join(lines)
    print(table)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (out / f"check-{stamp}.md").write_text(table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
