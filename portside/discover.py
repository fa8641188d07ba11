"""Which files are Dockerfiles: ``Dockerfile``, ``*.Dockerfile``, ``Dockerfile.*``,
``Containerfile`` (and the same shapes for it), in any case, found under the paths given.

The rule is written once, as :data:`DOCKERFILE_PATTERN`: ``portside check``, the language
server and the ``files:`` of every hook in ``.pre-commit-hooks.yaml`` use it (a test
checks that the YAML's regex is this one). pre-commit's own ``types: [dockerfile]``
misses ``api.Dockerfile`` and the ``Containerfile`` shapes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

# Folders no one keeps their own Dockerfiles in; walking them is slow and noisy.
SKIP_DIRS = frozenset(
    {".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__", ".tox", ".mypy_cache"}
)


# A path (``/``-separated, as pre-commit passes them) whose last part is a Dockerfile.
DOCKERFILE_PATTERN = (
    r"(?i)(?:^|/)(?:(?:dockerfile|containerfile)(?:\.[^/]*)?|[^/]*\.(?:dockerfile|containerfile))$"
)
_DOCKERFILE = re.compile(DOCKERFILE_PATTERN)


def is_dockerfile(name: str) -> bool:
    """Whether a file name (or a ``/``-separated path) names a Dockerfile."""
    return _DOCKERFILE.search(name) is not None


def find_files(
    paths: Iterable[str | Path], matches: Callable[[str], bool], *, take_given: bool = True
) -> list[Path]:
    """Files under ``paths`` whose name ``matches``, sorted, each once; a file named
    directly is taken as given (``take_given``) or only if its name matches."""
    found: dict[str, Path] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            if take_given or matches(path.name):
                found.setdefault(str(path.resolve()), path)
            continue
        if not path.is_dir():
            continue
        for folder, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
            for name in files:
                if matches(name):
                    candidate = Path(folder) / name
                    found.setdefault(str(candidate.resolve()), candidate)
    return sorted(found.values())


def find_dockerfiles(paths: Iterable[str | Path]) -> list[Path]:
    """Dockerfiles under ``paths`` (files are taken as given), sorted, each once."""
    return find_files(paths, is_dockerfile)
