"""Which files are Dockerfiles: ``Dockerfile``, ``*.Dockerfile``, ``Dockerfile.*``,
``Containerfile`` (and the same shapes for it), found under the paths given."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

# Folders no one keeps their own Dockerfiles in; walking them is slow and noisy.
SKIP_DIRS = frozenset(
    {".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__", ".tox", ".mypy_cache"}
)


def is_dockerfile(name: str) -> bool:
    lower = name.lower()
    for base in ("dockerfile", "containerfile"):
        if lower == base or lower.startswith(base + ".") or lower.endswith("." + base):
            return True
    return False


def find_dockerfiles(paths: Iterable[str | Path]) -> list[Path]:
    """Dockerfiles under ``paths`` (files are taken as given), sorted, each once."""
    found: dict[str, Path] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            found.setdefault(str(path.resolve()), path)
            continue
        if not path.is_dir():
            continue
        for folder, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
            for name in files:
                if is_dockerfile(name):
                    candidate = Path(folder) / name
                    found.setdefault(str(candidate.resolve()), candidate)
    return sorted(found.values())
