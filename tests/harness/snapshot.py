"""This repository as tools outside the test process see it: a git snapshot of the
working tree (what pre-commit installs a hook from) and a wheel of it (what a build
backend installs a build plugin from). Made once per session, so pre-commit installs
its hook environment once and every build finds the same wheel."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Not part of what a user installs; keeps the copy small.
_LEFT_OUT = ("tests/", "benchmarks/", "vscode-extension/")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Portside Tests",
    "GIT_AUTHOR_EMAIL": "tests@portside.invalid",
    "GIT_COMMITTER_NAME": "Portside Tests",
    "GIT_COMMITTER_EMAIL": "tests@portside.invalid",
}


def git(cwd: Path, *args: str) -> str:
    import os

    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def snapshot_repository(dest: Path) -> str:
    """Copy the working tree's files (tracked and untracked, not ignored) into a new
    git repository at ``dest``, commit them; the commit's sha."""
    names = git(ROOT, "ls-files", "-co", "--exclude-standard").splitlines()
    for name in names:
        source = ROOT / name
        if name.startswith(_LEFT_OUT) or not source.is_file():
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "snapshot")
    return git(dest, "rev-parse", "HEAD")


def build_wheel(source: Path, out: Path) -> Path:
    """The wheel of the project at ``source`` (no dependencies), in ``out``."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = out.glob("portside-*.whl")
    return wheel


def init_repo(path: Path) -> Path:
    """A fresh git repository (pre-commit runs in one) at ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q")
    return path


def install_hatch(home: Path, wheelhouse: Path) -> Path:
    """``hatch`` in a new virtualenv at ``home`` with portside (from ``wheelhouse``)
    installed beside it, as ``pipx install hatch && pipx inject hatch portside`` would."""
    import os
    import venv

    venv.create(home, with_pip=True)
    links = " ".join(filter(None, [os.environ.get("PIP_FIND_LINKS"), str(wheelhouse)]))
    subprocess.run(
        [str(home / "bin" / "python"), "-m", "pip", "install", "-q", "hatch>=1.12", "portside"],
        env={**os.environ, "PIP_FIND_LINKS": links},
        check=True,
        capture_output=True,
        timeout=600,
    )
    return home / "bin" / "hatch"
