"""Time ``portside tags`` / ``inspect`` against ``skopeo`` on one local registry.

    .venv/bin/python benchmarks/bench_cli.py [--runs 30] [--refs 5] [--importtime]

Starts the real registry the way the test harness does (``tests/harness``), seeds one
repository with the 2,000 real tag names in ``benchmarks/data/python-tags.txt`` (a
multi-platform index per release, like Docker Hub's ``library/python``), then runs
``--runs`` rounds; a round runs every command below once, always in the same order, so
that machine noise hits every tool alike. Every command is a new process, as a person
or a script runs it (portside has no resident process: a command is one process):

- ``python -c pass``: the floor every Python program pays;
- ``skopeo list-tags --tls-verify=false docker://REPO`` and
  ``skopeo inspect --tls-verify=false docker://REPO:TAG``: the reference;
- ``portside tags REPO`` and ``portside inspect REPO:TAG``, each *cold* (an empty cache
  directory per run: Python's start-up, the imports of asyncio, httpx and the client,
  then the registry) and *warm* (a filled, fresh cache: answered from disk without
  importing the network stack);
- several images in one command, where a script would loop: ``portside inspect`` of
  ``--refs`` tags (default 5) in one process, cold and warm, against ``skopeo inspect``
  of the same tags run one after another (skopeo takes one image per command);
- a private repository: the same tags on a second registry behind htpasswd basic auth,
  ``portside tags`` warm with the credentials in a docker ``config.json`` (``auths``:
  the cached answer is served only after the caller's credential is looked up through
  the plugins) against ``skopeo list-tags --creds USER:PASSWORD``.

It reports min, median and p95 in milliseconds and each portside median over the
matching skopeo median, as a markdown table on stdout and in ``benchmarks/results/``
(git-ignored). A benchmark, not a test: nothing here asserts a time. The header names
the commit and whether ``portside/`` had uncommitted changes. ``--importtime`` also
prints what a warm, a warm credentialed and a cold ``portside tags`` import, the tool
used to keep these paths lean. The warm caches are filled again (untimed) between
rounds every two minutes, well within their five-minute TTL.

Portside runs as installed: the ``portside`` console script next to this Python when
there is one, else ``python -m portside``; with byte-code caching on (a
``PYTHONDONTWRITEBYTECODE`` in the environment is dropped and the package compiled
first), as pip leaves an installed package. ``PORTSIDE_*`` variables are dropped.
"""

from __future__ import annotations

import argparse
import compileall
import datetime as dt
import itertools
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))  # the harness: same registry setup as the tests

from harness import seed  # noqa: E402
from harness.data import TagRow  # noqa: E402
from harness.dockerconfig import write_docker_config  # noqa: E402
from harness.registry import Registry  # noqa: E402

REPO = "library/python"
INSPECT_TAG = "3.13"  # a multi-platform index, as on Docker Hub
ARCHITECTURES = ("amd64", "arm32v5", "arm32v7", "arm64v8", "i386", "ppc64le", "riscv64", "s390x")
WARM_REFILL = 120.0  # seconds; the cache's tag and manifest TTLs are 300
FLOOR = "python -c pass (floor)"
SKOPEO = {"tags": "skopeo list-tags", "inspect": "skopeo inspect"}
SKOPEO_CREDS = "skopeo list-tags --creds, private repository"


def load_tags() -> list[str]:
    text = (HERE / "data" / "python-tags.txt").read_text()
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def seed_repository(registry: Registry, tags: Sequence[str]) -> None:
    """One index per release (the version before the first '-'), every tag on one."""
    rows = [
        TagRow(tag, "rel-" + tag.partition("-")[0], ARCHITECTURES) for tag in [*tags, INSPECT_TAG]
    ]
    seed.seed_from_tsv(registry, REPO, rows, platforms=True, media="oci", via="fs")


def several_tags(tags: Sequence[str], count: int) -> list[str]:
    """``count`` tags on distinct indexes (distinct releases), INSPECT_TAG first."""
    chosen, releases = [INSPECT_TAG], {INSPECT_TAG}
    for tag in tags:
        release = tag.partition("-")[0]
        if len(chosen) < count and release not in releases:
            chosen.append(tag)
            releases.add(release)
    return chosen


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


def tree_state() -> str:
    """The commit, and whether ``portside/`` differs from it (others may be editing)."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(ROOT), *args],
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},  # never take the index lock
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = len(git("status", "--porcelain", "--", "portside").splitlines())
    if changed:
        return f"commit {commit} with uncommitted changes to {changed} file(s) in `portside/`"
    return f"commit {commit}, `portside/` unchanged"


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


@dataclass(frozen=True)
class Command:
    """Command lines to time, run one after another (one timing for them all); ``env``
    is called for every run (a cold run's new cache)."""

    argvs: list[list[str]]
    env: Callable[[], dict[str, str]]

    def time(self) -> float:
        env = self.env()
        return sum(run_once(argv, env) for argv in self.argvs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="rounds (runs of each command)")
    parser.add_argument("--refs", type=int, default=5, help="images in the several-image rows")
    parser.add_argument("--importtime", action="store_true", help="show what portside imports")
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
    private = Registry(work / "registry-basic", auth="basic")
    portside = portside_command()
    cold_dirs = (str(work / f"cold-{i}") for i in itertools.count())
    warm_env = {**base_env, "PORTSIDE_CACHE_DIR": str(work / "warm-cache")}
    # The private registry's credentials, where docker login leaves them.
    auth_env = {
        **base_env,
        "PORTSIDE_CACHE_DIR": str(work / "warm-cache-auth"),
        "DOCKER_CONFIG": str(work / "docker"),
    }

    def cold_env() -> dict[str, str]:
        return {**base_env, "PORTSIDE_CACHE_DIR": next(cold_dirs)}

    try:
        registry.start()
        private.start()
        tree = tree_state()
        started = time.perf_counter()
        seed_repository(registry, tags)
        seeded = (time.perf_counter() - started) * 1000
        seed_repository(private, tags)
        assert private.username is not None and private.password is not None
        write_docker_config(
            work / "docker", auths={private.host: (private.username, private.password)}
        )
        private_repo = private.ref(REPO)
        creds = f"{private.username}:{private.password}"
        repo = registry.ref(REPO)
        image = registry.ref(REPO, INSPECT_TAG)
        images = [registry.ref(REPO, tag) for tag in several_tags(tags, args.refs)]
        targets = {"tags": repo, "inspect": image}

        def skopeo(verb: str, target: str) -> list[str]:
            word = "list-tags" if verb == "tags" else "inspect"
            return ["skopeo", word, "--tls-verify=false", f"docker://{target}"]

        def fill_warm_cache() -> None:
            for verb, target in targets.items():
                run_once([*portside, verb, "--refresh", target], warm_env)
            run_once([*portside, "inspect", "--refresh", *images], warm_env)
            run_once([*portside, "tags", "--refresh", private_repo], auth_env)

        fill_warm_cache()
        listed = subprocess.run(
            [*portside, "tags", "--json", repo], env=warm_env, capture_output=True, check=True
        ).stdout
        count = listed.count(b'",') + 1

        several = f"{len(images)} images"
        commands = {FLOOR: Command([[sys.executable, "-c", "pass"]], lambda: base_env)}
        against: dict[str, str] = {}  # each portside row -> the skopeo row it is held to
        for verb, target in targets.items():
            commands[SKOPEO[verb]] = Command([skopeo(verb, target)], lambda: base_env)
            for state, env in (("warm", lambda: warm_env), ("cold", cold_env)):
                commands[f"portside {verb}, {state}"] = Command([[*portside, verb, target]], env)
                against[f"portside {verb}, {state}"] = SKOPEO[verb]
        loop = f"skopeo inspect, {several} one after another"
        commands[loop] = Command([skopeo("inspect", i) for i in images], lambda: base_env)
        for state, env in (("warm", lambda: warm_env), ("cold", cold_env)):
            key = f"portside inspect, {several} in one command, {state}"
            commands[key] = Command([[*portside, "inspect", *images]], env)
            against[key] = loop
        skopeo_creds = [*skopeo("tags", private_repo)]
        skopeo_creds[-1:-1] = ["--creds", creds]  # before the image, as documented
        commands[SKOPEO_CREDS] = Command([skopeo_creds], lambda: base_env)
        key = "portside tags, private repository (config.json auths), warm"
        commands[key] = Command([[*portside, "tags", private_repo]], lambda: auth_env)
        against[key] = SKOPEO_CREDS

        for command in commands.values():  # warm-up: page cache, byte code
            command.time()
        timings: dict[str, list[float]] = {key: [] for key in commands}
        filled = time.monotonic()
        for _ in range(args.runs):
            if time.monotonic() - filled > WARM_REFILL:
                fill_warm_cache()
                filled = time.monotonic()
            for key, command in commands.items():
                timings[key].append(command.time())

        report = render(timings, against, count=count, seeded=seeded, portside=portside, tree=tree)
        print(report)
        results = HERE / "results"
        results.mkdir(exist_ok=True)
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        (results / f"bench_cli-{stamp}.md").write_text(report)
        if args.importtime:
            print(importtime(portside, repo, warm_env, "Warm"))
            print(importtime(portside, private_repo, auth_env, "Warm credentialed"))
            print(importtime(portside, repo, cold_env(), "Cold"))
    finally:
        registry.stop()
        private.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def table(timings: dict[str, list[float]]) -> list[str]:
    rows = ["| command | min ms | median ms | p95 ms |", "|---|---:|---:|---:|"]
    for key, values in timings.items():
        rows.append(
            f"| {key} | {min(values):.1f} | {statistics.median(values):.1f} | "
            f"{percentile(values, 0.95):.1f} |"
        )
    return rows


def render(
    timings: dict[str, list[float]],
    against: dict[str, str],
    *,
    count: int,
    seeded: float,
    portside: list[str],
    tree: str,
) -> str:
    med = {key: statistics.median(values) for key, values in timings.items()}
    ratios = ["| ratio of medians | value |", "|---|---:|"]
    for key, reference in against.items():
        ratios.append(f"| {key} / {reference} | {med[key] / med[reference]:.2f} |")
    runs = len(timings[FLOOR])
    shown = " ".join(Path(p).name if i == 0 else p for i, p in enumerate(portside))
    header = [
        f"# portside vs skopeo ({dt.datetime.now():%Y-%m-%d %H:%M})",
        "",
        f"{count} tags in one repository ({REPO}, a multi-platform OCI index per release,",
        f"seeded in {seeded:.0f} ms), {runs} interleaved rounds of every command, each a new",
        "process, local plain-HTTP `docker-registry` on loopback; "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; portside run as `{shown}`. Portside at the start: {tree}.",
        "",
    ]
    return "\n".join([*header, *table(timings), "", *ratios]) + "\n"


def importtime(portside: list[str], repo: str, env: dict[str, str], label: str) -> str:
    python = sys.executable
    if portside[0] != python:
        argv = [python, "-X", "importtime", portside[0], "tags", repo]
    else:
        argv = [python, "-X", "importtime", "-m", "portside", "tags", repo]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    lines = [
        "",
        f"{label} `portside tags` imports (cumulative us, top level only):",
        "",
    ]
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, module = line.split("|")
        # Nested imports are indented past the one space after the bar.
        top_level = not module.startswith("  ")
        cumulative = cumulative.strip()
        if top_level and cumulative.isdigit() and int(cumulative) >= 300:
            lines.append(f"    {int(cumulative):>7}  {module.strip()}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
