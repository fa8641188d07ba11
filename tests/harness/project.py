"""A tiny pure-Python project to build images from: package ``hello``, built with
hatchling (in the dev venv), printing ``hello`` when run as ``python -m hello``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "hello"
version = "{version}"
"""


def write_pyproject(
    root: Path, version: str = "1.4.2", image: Mapping[str, str | Sequence[str]] | None = None
) -> Path:
    """(Re)write ``root/pyproject.toml``; ``image``, if given, is its
    ``[tool.portside.image]`` table (string and list-of-string values)."""
    text = PYPROJECT.format(version=version)
    if image is not None:
        rows = [f"{key} = {json.dumps(value)}" for key, value in image.items()]
        text += "\n[tool.portside.image]\n" + "\n".join(rows) + "\n"
    path = root / "pyproject.toml"
    path.write_text(text)
    return path


def make_project(root: Path, version: str = "1.4.2") -> Path:
    """The ``hello`` package and its pyproject.toml in ``root`` (created); returns root."""
    (root / "hello").mkdir(parents=True)
    (root / "hello" / "__init__.py").write_text('GREETING = "hello"\n')
    (root / "hello" / "__main__.py").write_text("from hello import GREETING\nprint(GREETING)\n")
    write_pyproject(root, version)
    return root
