"""Time ``portside tags`` / ``portside inspect`` against ``skopeo`` on one local registry.

    .venv/bin/python benchmarks/bench_cli.py [--runs 40] [--importtime]

Starts the real registry the way the test harness does (``tests/harness``), seeds one
repository with the 2,000 real tag names in ``benchmarks/data/python-tags.txt`` (a
multi-platform index per release, like Docker Hub's ``library/python``), then runs, on
the same machine in the same run, interleaved so that machine noise hits every tool
alike:

- ``portside tags REPO`` and ``portside inspect REPO:TAG``, cold (an empty cache
  directory per run) and warm (a filled cache),
- ``skopeo list-tags --tls-verify=false docker://REPO`` and
  ``skopeo inspect --tls-verify=false docker://REPO:TAG``,
- ``python -c pass`` as the floor every Python program pays.

It reports min, median and p95 in milliseconds and the median ratios, as a markdown
table on stdout and in ``benchmarks/results/`` (git-ignored). A benchmark, not a test:
nothing here asserts a time. ``--importtime`` also prints what a warm and a cold
``portside tags`` import, the tool used to keep both paths lean.

Portside runs as installed: the ``portside`` console script next to this Python when
there is one, else ``python -m portside``; with byte-code caching on (a
``PYTHONDONTWRITEBYTECODE`` in the environment is dropped and the package compiled
first), as pip leaves an installed package.
"""

from __future__ import annotations

import argparse
import compileall
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))  # the harness: same registry setup as the tests

from harness import seed  # noqa: E402
from harness.data import TagRow  # noqa: E402
from harness.registry import Registry  # noqa: E402

REPO = "library/python"
INSPECT_TAG = "3.13"  # a multi-platform index, as on Docker Hub
ARCHITECTURES = ("amd64", "arm32v5", "arm32v7", "arm64v8", "i386", "ppc64le", "riscv64", "s390x")


def load_tags() -> list[str]:
    text = (HERE / "data" / "python-tags.txt").read_text()
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def seed_repository(registry: Registry, tags: Sequence[str]) -> None:
    """One index per release (the version before the first '-'), every tag on one."""
    rows = [
        TagRow(tag, "rel-" + tag.partition("-")[0], ARCHITECTURES) for tag in [*tags, INSPECT_TAG]
    ]
    seed.seed_from_tsv(registry, REPO, rows, platforms=True, media="oci", via="fs")


def portside_command() -> list[str]:
    script = Path(sys.executable).with_name("portside")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "portside"]


def run_once(argv: Sequence[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    elapsed = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode(errors='replace')}")
    return elapsed


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40, help="repetitions of each command")
    parser.add_argument("--importtime", action="store_true", help="show warm-path imports")
    args = parser.parse_args(argv)
    if shutil.which("skopeo") is None or shutil.which("docker-registry") is None:
        raise SystemExit("needs the Debian packages skopeo and docker-registry")

    # Byte-code caching as in an installed package: compile once, let Python use it.
    compileall.compile_dir(str(ROOT / "portside"), quiet=1)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("PORTSIDE_")}
    base_env.pop("PYTHONDONTWRITEBYTECODE", None)

    tags = load_tags()
    work = Path(tempfile.mkdtemp(prefix="portside-bench-"))
    registry = Registry(work / "registry")
    try:
        registry.start()
        started = time.perf_counter()
        seed_repository(registry, tags)
        seeded = (time.perf_counter() - started) * 1000
        repo = registry.ref(REPO)
        image = registry.ref(REPO, INSPECT_TAG)
        portside = portside_command()

        warm_env = {**base_env, "PORTSIDE_CACHE_DIR": str(work / "warm-cache")}
        for verb, target in (("tags", repo), ("inspect", image)):
            run_once([*portside, verb, target], warm_env)  # fill the warm cache
        listed = subprocess.run(
            [*portside, "tags", "--json", repo], env=warm_env, capture_output=True, check=True
        ).stdout
        count = listed.count(b'",') + 1

        cold_dirs = iter(work / f"cold-{i}" for i in range(10 * args.runs + 100))

        def cold_env() -> dict[str, str]:
            return {**base_env, "PORTSIDE_CACHE_DIR": str(next(cold_dirs))}

        def same(env: dict[str, str]) -> Callable[[], dict[str, str]]:
            return lambda: env

        # name -> (argv, a fresh environment per run: cold runs get an empty cache)
        commands: dict[str, tuple[list[str], Callable[[], dict[str, str]]]] = {
            "python -c pass (floor)": ([sys.executable, "-c", "pass"], same(base_env)),
            "portside tags, warm": ([*portside, "tags", repo], same(warm_env)),
            "portside tags, cold": ([*portside, "tags", repo], cold_env),
            "skopeo list-tags": (
                ["skopeo", "list-tags", "--tls-verify=false", f"docker://{repo}"],
                same(base_env),
            ),
            "portside inspect, warm": ([*portside, "inspect", image], same(warm_env)),
            "portside inspect, cold": ([*portside, "inspect", image], cold_env),
            "skopeo inspect": (
                ["skopeo", "inspect", "--tls-verify=false", f"docker://{image}"],
                same(base_env),
            ),
        }
        timings: dict[str, list[float]] = {name: [] for name in commands}
        for command, env in commands.values():  # warm-up: page cache, byte code
            for _ in range(3):
                run_once(command, env())
        for _ in range(args.runs):
            for name, (command, env) in commands.items():
                timings[name].append(run_once(command, env()))

        report = render(timings, args.runs, count, seeded, portside)
        print(report)
        results = HERE / "results"
        results.mkdir(exist_ok=True)
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        (results / f"bench_cli-{stamp}.md").write_text(report)
        if args.importtime:
            print(importtime(portside, repo, warm_env, "Warm"))
            print(importtime(portside, repo, cold_env(), "Cold"))
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def render(
    timings: dict[str, list[float]], runs: int, count: int, seeded: float, portside: list[str]
) -> str:
    rows = [
        "| command | min ms | median ms | p95 ms |",
        "|---|---:|---:|---:|",
    ]
    for name, values in timings.items():
        rows.append(
            f"| {name} | {min(values):.1f} | {statistics.median(values):.1f} | "
            f"{percentile(values, 0.95):.1f} |"
        )
    med = {name: statistics.median(values) for name, values in timings.items()}
    ratios = [
        "",
        "| ratio of medians | value |",
        "|---|---:|",
        f"| portside tags warm / skopeo list-tags | "
        f"{med['portside tags, warm'] / med['skopeo list-tags']:.2f} |",
        f"| portside tags cold / skopeo list-tags | "
        f"{med['portside tags, cold'] / med['skopeo list-tags']:.2f} |",
        f"| portside inspect warm / skopeo inspect | "
        f"{med['portside inspect, warm'] / med['skopeo inspect']:.2f} |",
        f"| portside inspect cold / skopeo inspect | "
        f"{med['portside inspect, cold'] / med['skopeo inspect']:.2f} |",
    ]
    header = [
        f"# portside vs skopeo ({dt.datetime.now():%Y-%m-%d %H:%M})",
        "",
        f"{count} tags in one repository ({REPO}, a multi-platform OCI index per release,",
        f"seeded in {seeded:.0f} ms), {runs} interleaved runs of each command, local",
        f"plain-HTTP `docker-registry` on loopback; {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPUs; portside run as "
        f"`{' '.join(Path(p).name if i == 0 else p for i, p in enumerate(portside))}`.",
        "",
    ]
    return "\n".join(header + rows + ratios) + "\n"


def importtime(portside: list[str], repo: str, env: dict[str, str], label: str) -> str:
    python = sys.executable
    if portside[0] != python:
        argv = [python, "-X", "importtime", portside[0], "tags", repo]
    else:
        argv = [python, "-X", "importtime", "-m", "portside", "tags", repo]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    lines = ["", f"{label} `portside tags` imports (cumulative us, top level only):", ""]
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        # Nested imports are indented past the one space after the bar.
        top_level = not name.startswith("  ")
        cumulative = cumulative.strip()
        if top_level and cumulative.isdigit() and int(cumulative) >= 300:
            lines.append(f"    {int(cumulative):>7}  {name.strip()}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
