"""The Portside demo: a real registry on loopback, seeded like Docker Hub, and the
``portside`` command run against it the way a person would run it.

Run through ``bash scripts/demo`` (which installs what is needed). The registry is
stopped when the demo ends; its data stays in ``.portside-demo/``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from harness import catalog, data, seed  # noqa: E402  (the harness lives beside the tests)
from harness.registry import Registry  # noqa: E402

BOLD = "\033[1m" if sys.stdout.isatty() else ""
DIM = "\033[2m" if sys.stdout.isatty() else ""
RESET = "\033[0m" if sys.stdout.isatty() else ""


def step(title: str) -> None:
    print(f"\n{BOLD}## {title}{RESET}", flush=True)


def run(
    env: dict[str, str], *args: str, expect: int | tuple[int, ...] = 0, cwd: Path | None = None
) -> float:
    """Run ``portside ARGS`` as a user would; return the wall time in ms."""
    print(f"{DIM}$ portside {shlex.join(args)}{RESET}", flush=True)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "portside", *args], env=env, check=False, cwd=cwd)
    elapsed = (time.perf_counter() - started) * 1000
    print(f"{DIM}  (exit {done.returncode}, {elapsed:.0f} ms){RESET}", flush=True)
    if done.returncode not in (expect if isinstance(expect, tuple) else (expect,)):
        raise SystemExit(f"demo: expected exit {expect}, got {done.returncode}")
    return elapsed


def main() -> int:
    argparse.ArgumentParser(description=__doc__).parse_args()

    work = ROOT / ".portside-demo"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    env = dict(
        os.environ,
        PORTSIDE_CACHE_DIR=str(work / "cache"),
        DOCKER_CONFIG=str(work / "docker"),
    )

    step("Start a local registry (CNCF distribution) and seed it with real tag data")
    registry = Registry(work / "registry").start()
    try:
        catalog.seed_session_registry(registry)
        host = registry.host
        print(f"registry at http://{host}: library/python, library/alpine, library/debian,")
        print(f"library/nginx (Docker Official Images tags) and {catalog.MANY_TAGS_REPO}")
        print(f"({catalog.MANY_TAGS_COUNT} tags)")

        step("Tags of python, newest version first (loopback registries speak plain HTTP)")
        run(env, "tags", f"{host}/library/python", "--limit", "12")

        step("What is python:3.13? An index; Portside picks linux/amd64 unless told")
        run(env, "inspect", f"{host}/library/python:3.13")
        run(env, "inspect", f"{host}/library/python:3.13", "--platform", "linux/arm64")

        step("The exact digest, for pinning a FROM line")
        run(env, "digest", f"{host}/library/alpine:3.22")
        run(env, "inspect", f"{host}/library/alpine:3.22", "--json")

        step("2,100 tags: cold (registry) and warm (cache on disk)")
        cold = run(env, "tags", f"{host}/{catalog.MANY_TAGS_REPO}", "--limit", "3")
        warm = run(env, "tags", f"{host}/{catalog.MANY_TAGS_REPO}", "--limit", "3")
        print(f"cold {cold:.0f} ms, warm {warm:.0f} ms (includes Python start-up)")

        step("Several images in one command: asked concurrently, printed in the order given")
        images = [
            f"{host}/library/{name}" for name in ("python:3.13", "alpine:3.22", "nginx:stable")
        ]
        run(env, "digest", *images)
        print("a reference that fails is reported on its own line; the others are answered:")
        run(env, "digest", images[0], f"{host}/library/python:no-such-tag", images[1], expect=3)

        step("A Dockerfile written in August 2025, against team/python as it was then")
        history = data.load_history("python-since-2025-06")
        then = seed.replay_history(registry, "team/python", history, until="2025-08-12")
        project = work / "project"
        project.mkdir()
        dockerfile = project / "Dockerfile"
        dockerfile.write_text(
            "# syntax=docker/dockerfile:1\n"
            "ARG PY=3.13-slim-bookworm\n"
            f"FROM {host}/team/python:${{PY}} AS build\n"
            "RUN pip wheel --wheel-dir /wheels .\n"
            "\n"
            f"FROM {host}/team/python:3.13-slim-bookworm@{then.digest('3.13-slim-bookworm')}\n"
            "COPY --from=build /wheels /wheels\n",
            encoding="utf-8",
        )
        print(dockerfile.read_text(encoding="utf-8"))
        run(env, "check", cwd=project)

        step("Two months later: python 3.14 is out and 3.13-slim-bookworm was rebuilt")
        seed.replay_history(registry, "team/python", history, until="2025-10-08")
        run(env, "check", "--refresh", "--fail-on", "warning", cwd=project, expect=1)

        step("Pin every image to the newest patch of its line, keeping every other byte")
        run(env, "pin", "--update", "patch", "--check", cwd=project, expect=1)
        run(env, "pin", "--update", "patch", cwd=project)
        print(dockerfile.read_text(encoding="utf-8"))

        step("Exact images by query, decided client-side the same way on any registry")
        run(
            env,
            "query",
            f"{host}/team/python where version ~ 3.14 and variant = slim-bookworm "
            "order by version desc limit 1",
            "--ref",
        )
        run(env, "latest", f"{host}/team/python:3.13-slim-bookworm", "--ref")

        step("Mistakes get a clear message and an exit code, never a traceback")
        run(env, "query", f"{host}/library/python where version >", expect=2)
        run(env, "tags", f"{host}/library/does-not-exist", expect=3)
        run(env, "inspect", "Python:3.13", expect=2)
        run(env, "tags", "127.0.0.1:1/library/python", expect=5)
    finally:
        registry.stop()
    print(f"\n{BOLD}Demo finished.{RESET}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
