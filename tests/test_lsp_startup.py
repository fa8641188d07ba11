"""The language server ships with every install, and costs nothing to the other verbs:
none of them imports pygls or lsprotocol (~0.4 s of imports)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.registry import Registry

ROOT = Path(__file__).resolve().parents[1]


def imported(args: list[str], cache: Path) -> tuple[int, set[str]]:
    """Run ``python -X importtime -m portside ARGS``; its exit code and top-level imports."""
    env = {
        **os.environ,
        "PORTSIDE_DAEMON": "off",
        "PORTSIDE_CACHE_DIR": str(cache),
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "portside", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    modules = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            modules.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return done.returncode, modules


@pytest.mark.parametrize(
    "args",
    [
        ["tags", "--insecure-registry", "{host}", "{host}/library/alpine"],
        ["inspect", "--insecure-registry", "{host}", "{host}/library/alpine:3.21"],
        ["check", "{dockerfile}"],
        ["--help"],
    ],
)
def test_other_verbs_never_import_the_language_server(
    registry: Registry, tmp_path: Path, args: list[str]
) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"FROM {registry.host}/library/alpine:3.21\n")
    filled = [a.format(host=registry.host, dockerfile=dockerfile) for a in args]
    code, modules = imported(filled, tmp_path / "cache")
    assert code in (0, 1), (code, filled)  # check exits 1 on its findings
    assert ("portside" in modules and "httpx" in modules) or args == ["--help"]
    assert not modules & {"lsprotocol", "pygls", "lsp_server", "cattrs"}, modules


def test_the_server_starts_from_a_plain_install(tmp_path: Path) -> None:
    # `portside lsp --version` goes through the same entry point every editor starts.
    env = {**os.environ, "PORTSIDE_DAEMON": "off", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "portside", "lsp", "--version"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("portside-lsp ")


def test_a_broken_install_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    # An environment where lsprotocol cannot be imported (a broken install).
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "class Missing:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('lsprotocol', 'pygls'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, Missing())\n"
    )
    env = {**os.environ, "PORTSIDE_DAEMON": "off", "PYTHONPATH": f"{tmp_path}:{ROOT}"}
    done = subprocess.run(
        [sys.executable, "-m", "portside", "lsp"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "reinstall portside" in done.stderr and "lsprotocol" in done.stderr
