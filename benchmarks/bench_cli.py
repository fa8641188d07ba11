"""Time ``portside tags`` / ``portside inspect`` against ``skopeo`` on one local registry,
in-process and through portside's daemon.

    .venv/bin/python benchmarks/bench_cli.py [--runs 40] [--gap 0.3] [--starts 5] [--importtime]

Starts the real registry the way the test harness does (``tests/harness``), seeds one
repository with the 2,000 real tag names in ``benchmarks/data/python-tags.txt`` (a
multi-platform index per release, like Docker Hub's ``library/python``), then runs
``--runs`` rounds; a round runs every command below once, always in the same order, so
that machine noise hits every tool alike:

- ``python -c pass``: the floor every Python program pays;
- ``skopeo list-tags --tls-verify=false docker://REPO`` and
  ``skopeo inspect --tls-verify=false docker://REPO:TAG``: the reference;
- ``portside tags REPO`` and ``portside inspect REPO:TAG`` **in-process**
  (``PORTSIDE_DAEMON=off``: no daemon, how portside ran before it had one), each
  *cold* (an empty cache directory per run) and *warm* (a filled cache);
- the same four **with the daemon on** (``PORTSIDE_DAEMON=on``; the daemon is started
  with ``portside daemon start`` and every command is run three times before the first
  round). Cold runs go to the daemon; warm ones too when they follow another command
  within 0.1 s, else the launcher answers them from the cache itself (see
  :mod:`portside.launcher`); twice, because the daemon's
  timing depends on the spacing of commands (its spare workers rehearse a command
  while no command runs, and a command that arrives before one is ready gets a worker
  that is not, see :mod:`portside.daemon`):

  - *back to back*: each timed run comes right after an untimed run of the same
    command (a new empty cache for a cold one), as hyperfine or a loop in a script
    runs it;
  - *spaced*: ``--gap`` seconds (default 0.3) of pause before each run, as a person
    types, so that the spare is ready. ``skopeo`` is timed a second time in this part,
    after the same pause, and the spaced daemon figures are compared with those.

After the rounds, ``--starts`` times (default 5), each in a new runtime directory with no
daemon running:

- ``portside daemon start``: until it returns, the daemon serving;
- the very first ``portside tags`` and ``portside inspect`` in the default mode
  (``PORTSIDE_DAEMON=auto``, ``CI`` unset), cold: they run in-process and then start a
  daemon, so this is the in-process cold figure plus the cost of spawning it; and, from
  that command's start, the time until the daemon it started accepts connections.

It reports min, median and p95 in milliseconds, and each portside median over the
matching skopeo median next to the issue's target (warm: no slower than skopeo; cold:
within 2x), as a markdown table on stdout and in ``benchmarks/results/``
(git-ignored). A benchmark, not a test: nothing here asserts a time. ``--importtime``
also prints what a warm and a cold in-process ``portside tags`` import, the tool used to
keep both paths lean.

Every portside run sets ``PORTSIDE_DAEMON`` explicitly and ``PORTSIDE_RUNTIME_DIR`` to a
private directory of the benchmark's (``/tmp/ps-bench-*``, mode 0700; other
``PORTSIDE_*`` variables are dropped), and the benchmark stops every daemon it started
on the way out, so it never uses the user's daemon nor leaves one behind.

A command the daemon does not serve runs in-process, silently (a daemon whose code
changed under it refuses the command and exits, and the next command starts another;
one of another protocol refuses it). So ``portside daemon status`` is asked after every
round: a round is kept only if the same daemon served at least the cold daemon runs the
round made (primers included); otherwise it is dropped and run again, and the report says how
many were and what the daemon's log said. The header names the commit and whether
``portside/`` had uncommitted changes. The warm cache is filled again (untimed) between
rounds every two minutes, well within its five-minute TTL.

Portside runs as installed: the ``portside`` console script next to this Python when
there is one, else ``python -m portside``; with byte-code caching on (a
``PYTHONDONTWRITEBYTECODE`` in the environment is dropped and the package compiled
first), as pip leaves an installed package.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import datetime as dt
import itertools
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
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
WARM_REFILL = 120.0  # seconds; the cache's tag and manifest TTLs are 300
# Each portside figure over the skopeo figure it is held against, and the target.
VERBS = {"tags": "skopeo list-tags", "inspect": "skopeo inspect"}
TARGETS = {"warm": 1.0, "cold": 2.0}
FLOOR = "python -c pass (floor)"


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
    """A command line to time; ``env`` is called for every run (a cold run's cache)."""

    argv: list[str]
    env: Callable[[], dict[str, str]]
    gap: float = 0.0  # seconds of pause before each timed run
    primed: bool = False  # run once, untimed, right before each timed run
    daemon: bool = False  # served by the daemon (counted, see PrivateDaemon.served)

    def time(self) -> float:
        if self.primed:
            run_once(self.argv, self.env())
        if self.gap:
            time.sleep(self.gap)
        return run_once(self.argv, self.env())


class PrivateDaemon:
    """A runtime directory of the benchmark's own for portside's daemon, and the means
    to stop whatever daemon runs from it (never the user's)."""

    def __init__(self, portside: list[str], base_env: dict[str, str]) -> None:
        self.portside = portside
        self.base_env = base_env
        # mkdtemp makes it 0700, as the daemon requires; short, as a socket path must be.
        self.directory = Path(tempfile.mkdtemp(prefix="ps-bench-", dir="/tmp"))

    def env(self, mode: str, **extra: str) -> dict[str, str]:
        return {
            **self.base_env,
            "PORTSIDE_DAEMON": mode,
            "PORTSIDE_RUNTIME_DIR": str(self.directory),
            # A safety net should this process be killed before it stops its daemon.
            "PORTSIDE_DAEMON_IDLE": "600",
            **extra,
        }

    def start(self) -> float:
        """``portside daemon start``; its wall time in ms."""
        return run_once([*self.portside, "daemon", "start"], self.env("on"))

    def log(self) -> str:
        """The daemon's log: a line per start and stop, and why it stopped."""
        return "".join(p.read_text(errors="replace") for p in sorted(self.directory.glob("*.log")))

    def served(self) -> tuple[str, int] | None:
        """The daemon's pid and how many commands it has served; None if it does not
        answer."""
        done = subprocess.run(
            [*self.portside, "daemon", "status"],
            env=self.env("on"),
            capture_output=True,
            text=True,
            check=False,
        )
        fields = dict(line.partition(": ")[::2] for line in done.stdout.splitlines())
        count = fields.get("commands served", "")
        if done.returncode != 0 or "pid" not in fields or not count.isdigit():
            return None
        return fields["pid"], int(count)

    def accepting(self) -> bool:
        for path in self.directory.glob("*.sock"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                try:
                    sock.connect(str(path))
                except OSError:
                    continue
                return True
        return False

    def processes(self) -> list[int]:
        """Daemons (and their workers) using this directory, found by their environment."""
        mine = f"PORTSIDE_RUNTIME_DIR={self.directory}".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if b"portside.daemon" not in (entry / "cmdline").read_bytes():
                    continue
                if mine in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
            except OSError:
                continue
        return pids

    def stop(self) -> None:
        """``portside daemon stop``, then make sure: signal what is left of ours, by pid."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(
                [*self.portside, "daemon", "stop"],
                env=self.env("on"),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
                timeout=30,
            )
        for signum in (None, signal.SIGTERM, signal.SIGKILL):
            if signum is not None:
                for pid in self.processes():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signum)
            deadline = time.monotonic() + 5
            while self.processes() and time.monotonic() < deadline:
                time.sleep(0.05)
            if not self.processes():
                break
        shutil.rmtree(self.directory, ignore_errors=True)


@contextlib.contextmanager
def private_daemon(portside: list[str], base_env: dict[str, str]) -> Iterator[PrivateDaemon]:
    daemon = PrivateDaemon(portside, base_env)
    try:
        yield daemon
    finally:
        daemon.stop()


def name(verb: str, how: str, state: str) -> str:
    return f"portside {verb}, {how}, {state}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40, help="rounds (runs of each command)")
    parser.add_argument(
        "--gap", type=float, default=0.3, help="seconds of pause before each spaced run"
    )
    parser.add_argument("--starts", type=int, default=5, help="times to measure starting a daemon")
    parser.add_argument("--importtime", action="store_true", help="show in-process imports")
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
    portside = portside_command()
    cold_dirs = (str(work / f"cold-{i}") for i in itertools.count())
    warm_dir = str(work / "warm-cache")
    try:
        registry.start()
        tree = tree_state()
        started = time.perf_counter()
        seed_repository(registry, tags)
        seeded = (time.perf_counter() - started) * 1000
        repo = registry.ref(REPO)
        image = registry.ref(REPO, INSPECT_TAG)
        targets = {"tags": repo, "inspect": image}
        skopeo = {
            "tags": ["skopeo", "list-tags", "--tls-verify=false", f"docker://{repo}"],
            "inspect": ["skopeo", "inspect", "--tls-verify=false", f"docker://{image}"],
        }

        with private_daemon(portside, base_env) as daemon:

            def env_for(mode: str, state: str) -> Callable[[], dict[str, str]]:
                if state == "warm":
                    env = daemon.env(mode, PORTSIDE_CACHE_DIR=warm_dir)
                    return lambda: env
                return lambda: daemon.env(mode, PORTSIDE_CACHE_DIR=next(cold_dirs))

            def fill_warm_cache() -> None:
                for verb, target in targets.items():
                    run_once([*portside, verb, "--refresh", target], env_for("off", "warm")())

            fill_warm_cache()
            listed = subprocess.run(
                [*portside, "tags", "--json", repo],
                env=env_for("off", "warm")(),
                capture_output=True,
                check=True,
            ).stdout
            count = listed.count(b'",') + 1

            commands = {FLOOR: Command([sys.executable, "-c", "pass"], lambda: base_env)}
            for verb, target in targets.items():
                commands[VERBS[verb]] = Command(skopeo[verb], lambda: base_env)
                for state in ("warm", "cold"):
                    commands[name(verb, "in-process", state)] = Command(
                        [*portside, verb, target], env_for("off", state)
                    )
            for verb, target in targets.items():
                for state in ("warm", "cold"):
                    # Warm: answered from the cache by the launcher, before any hop.
                    commands[name(verb, "daemon back to back", state)] = Command(
                        [*portside, verb, target],
                        env_for("on", state),
                        primed=True,
                        daemon=state == "cold",
                    )
            for verb, target in targets.items():
                commands[f"{VERBS[verb]}, spaced"] = Command(
                    skopeo[verb], lambda: base_env, gap=args.gap
                )
                for state in ("warm", "cold"):
                    commands[name(verb, "daemon spaced", state)] = Command(
                        [*portside, verb, target],
                        env_for("on", state),
                        gap=args.gap,
                        daemon=state == "cold",
                    )

            daemon.start()
            for command in commands.values():  # warm-up: page cache, byte code, workers
                for _ in range(3):
                    command.time()

            timings: dict[str, list[float]] = {key: [] for key in commands}
            per_round = sum(1 + c.primed for c in commands.values() if c.daemon)
            dropped: list[str] = []
            filled = time.monotonic()
            while len(timings[FLOOR]) < args.runs and len(dropped) < args.runs:
                if time.monotonic() - filled > WARM_REFILL:
                    fill_warm_cache()
                    filled = time.monotonic()
                log, before = daemon.log(), daemon.served()
                sample = {key: command.time() for key, command in commands.items()}
                after = daemon.served()
                # Warm runs may or may not reach the daemon (after a pause the launcher
                # answers them from the cache itself); cold ones must all.
                if before and after and before[0] == after[0] and after[1] >= before[1] + per_round:
                    for key, value in sample.items():
                        timings[key].append(value)
                    continue
                # Some daemon runs ran in-process instead: not what is measured.
                news = daemon.log()[len(log) :].strip() or "(nothing new in the daemon's log)"
                if not (before and after):
                    why = "the daemon did not answer `portside daemon status`"
                elif before[0] != after[0]:
                    why = f"the daemon restarted (pid {before[0]}, then {after[0]})"
                else:
                    served = after[1] - before[1]
                    why = f"the daemon served {served} runs, fewer than the {per_round} cold ones"
                dropped.append(f"{why}; its log: {news}")
            if not timings[FLOOR]:
                raise SystemExit("every round dropped:\n" + "\n".join(dropped))

        startup = time_startup(portside, base_env, targets, cold_dirs, args.starts)
        report = render(
            timings,
            startup,
            count=count,
            seeded=seeded,
            portside=portside,
            gap=args.gap,
            tree=tree,
        )
        if dropped:
            lines = "\n".join(f"    {line}" for text in dropped for line in text.splitlines())
            report += (
                f"\n{len(dropped)} round(s) dropped, as some of their daemon runs ran "
                f"in-process:\n\n{lines}\n"
            )
        print(report)
        results = HERE / "results"
        results.mkdir(exist_ok=True)
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        (results / f"bench_cli-{stamp}.md").write_text(report)
        if args.importtime:
            with private_daemon(portside, base_env) as unused:
                warm_env = unused.env("off", PORTSIDE_CACHE_DIR=warm_dir)
                cold_env = unused.env("off", PORTSIDE_CACHE_DIR=next(cold_dirs))
                print(importtime(portside, repo, warm_env, "Warm"))
                print(importtime(portside, repo, cold_env, "Cold"))
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def time_startup(
    portside: list[str],
    base_env: dict[str, str],
    targets: dict[str, str],
    cold_dirs: Iterator[str],
    starts: int,
) -> dict[str, list[float]]:
    """Starting a daemon, by hand and by the first command in auto mode; each in a new
    runtime directory, so that no daemon runs before."""
    startup: dict[str, list[float]] = {"portside daemon start": []}
    for verb in targets:
        startup[first(verb)] = []
        startup[first(verb, serving=True)] = []
    for _ in range(starts):
        with private_daemon(portside, base_env) as daemon:
            startup["portside daemon start"].append(daemon.start())
        for verb, target in targets.items():
            with private_daemon(portside, base_env) as daemon:
                env = daemon.env("auto", PORTSIDE_CACHE_DIR=next(cold_dirs))
                env.pop("CI", None)  # auto mode starts no daemon in CI
                started = time.perf_counter()
                startup[first(verb)].append(run_once([*portside, verb, target], env))
                deadline = time.monotonic() + 30
                while not daemon.accepting():
                    if time.monotonic() > deadline:
                        raise SystemExit(f"no daemon started after the first {verb}")
                    time.sleep(0.005)
                startup[first(verb, serving=True)].append((time.perf_counter() - started) * 1000)
    return startup


def first(verb: str, *, serving: bool = False) -> str:
    if serving:
        return f"first portside {verb}: from its start until its daemon accepts commands"
    return f"first portside {verb}, auto, cold (in-process, then starts a daemon)"


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
    startup: dict[str, list[float]],
    *,
    count: int,
    seeded: float,
    portside: list[str],
    gap: float,
    tree: str,
) -> str:
    med = {key: statistics.median(values) for key, values in timings.items()}
    smed = {key: statistics.median(values) for key, values in startup.items() if values}
    ratios = [
        "| ratio of medians | value | target |",
        "|---|---:|---:|",
    ]
    for how, against in (
        ("in-process", ""),
        ("daemon back to back", ""),
        ("daemon spaced", ", spaced"),
    ):
        for verb, reference in VERBS.items():
            for state, target in TARGETS.items():
                key = name(verb, how, state)
                ratios.append(
                    f"| {key} / {reference}{against} | "
                    f"{med[key] / med[reference + against]:.2f} | ≤ {target:g} |"
                )
    for verb, reference in VERBS.items():
        if first(verb) in smed:
            ratios.append(
                f"| {first(verb)} / {reference} | {smed[first(verb)] / med[reference]:.2f} "
                f"| ≤ {TARGETS['cold']:g} |"
            )
    runs = len(timings[FLOOR])
    starts = len(startup["portside daemon start"])
    shown = " ".join(Path(p).name if i == 0 else p for i, p in enumerate(portside))
    header = [
        f"# portside vs skopeo ({dt.datetime.now():%Y-%m-%d %H:%M})",
        "",
        f"{count} tags in one repository ({REPO}, a multi-platform OCI index per release,",
        f"seeded in {seeded:.0f} ms), {runs} interleaved rounds of every command, local",
        f"plain-HTTP `docker-registry` on loopback; {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPUs; portside run as `{shown}`.",
        "In-process: `PORTSIDE_DAEMON=off`. Daemon: `PORTSIDE_DAEMON=on`, back to back",
        "(right after an untimed run of the same command) and spaced (after a",
        f"{gap:g} s pause, as skopeo in the spaced rows). Portside at the start: {tree}.",
        "",
    ]
    middle = [
        "",
        f"Starting a daemon ({starts} times each, no daemon running before):",
        "",
    ]
    return "\n".join([*header, *table(timings), *middle, *table(startup), "", *ratios]) + "\n"


def importtime(portside: list[str], repo: str, env: dict[str, str], label: str) -> str:
    python = sys.executable
    if portside[0] != python:
        argv = [python, "-X", "importtime", portside[0], "tags", repo]
    else:
        argv = [python, "-X", "importtime", "-m", "portside", "tags", repo]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    lines = [
        "",
        f"{label} in-process `portside tags` imports (cumulative us, top level only):",
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
