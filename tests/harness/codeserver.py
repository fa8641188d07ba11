"""A real VS Code for the extension's end-to-end tests: code-server 4.99.4 (installed
into a cache directory by vscode-extension/scripts/install-code-server.sh) with the
packaged .vsix installed, driven through Debian's chromium by Playwright.

Each ``CodeServer`` has its own user data and extensions directories, settings, and
environment (PATH decides which Portside server the extension finds).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .ports import free_port

ROOT = Path(__file__).resolve().parents[2]
EXTENSION = ROOT / "vscode-extension"
VSIX = EXTENSION / "portside.vsix"
ARTIFACTS = EXTENSION / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def code_server_dir() -> Path:
    """Where code-server is installed; installs it (once, cached) when needed."""
    given = os.environ.get("PORTSIDE_CODE_SERVER")
    if given and (Path(given) / ".complete").exists():
        return Path(given)
    out = subprocess.run(
        ["bash", str(EXTENSION / "scripts" / "install-code-server.sh")],
        check=True,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    return Path(out.stdout.strip().splitlines()[-1])


def _newest_source() -> float:
    files = [EXTENSION / "package.json", *EXTENSION.glob("src/**/*.ts")]
    return max(f.stat().st_mtime for f in files)


def ensure_vsix() -> Path:
    """The packaged extension, rebuilt when a source is newer (scripts/test builds it)."""
    if not VSIX.exists() or VSIX.stat().st_mtime < _newest_source():
        if not (EXTENSION / "node_modules").exists():
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=EXTENSION, check=True)
        subprocess.run(["npm", "run", "-s", "package"], cwd=EXTENSION, check=True)
    return VSIX


class CodeServer:
    """One code-server process with the extension installed."""

    def __init__(
        self,
        base: Path,
        *,
        settings: Mapping[str, Any],
        env: Mapping[str, str],
        path: str | None = None,
        install: Path | None = None,
    ) -> None:
        self.base = base
        self.home = code_server_dir()
        self.entry = self.home / "node_modules" / "code-server" / "out" / "node" / "entry.js"
        self.user_data = base / "user-data"
        self.extensions = base / "extensions"
        (self.user_data / "User").mkdir(parents=True, exist_ok=True)
        (self.user_data / "User" / "settings.json").write_text(json.dumps(settings, indent=2))
        home = base / "home"
        home.mkdir(exist_ok=True)
        self.env = {**env, "HOME": str(home), "SHELL": "/bin/bash"}
        if path is not None:
            # VS Code takes its extensions' environment from the user's login shell, so
            # a PATH entry goes where a pipx or venv user has it: in ~/.profile.
            (home / ".profile").write_text(f'export PATH="{path}:$PATH"\n')
        self.log = base / "code-server.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        if install is not None:
            self._run(["--install-extension", str(install)])

    def _args(self) -> list[str]:
        return [
            "node",
            str(self.entry),
            "--auth",
            "none",
            "--disable-telemetry",
            "--disable-update-check",
            "--ignore-last-opened",
            "--user-data-dir",
            str(self.user_data),
            "--extensions-dir",
            str(self.extensions),
        ]

    def _run(self, extra: list[str]) -> None:
        subprocess.run(
            [*self._args(), *extra],
            env=self.env,
            cwd=self.base,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> CodeServer:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [*self._args(), "--bind-addr", f"127.0.0.1:{self.port}"],
                env=self.env,
                cwd=self.base,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its extension hosts and servers go with it
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"code-server exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2):
                    return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("code-server did not answer within 60 s")

    def url(self, folder: Path) -> str:
        return f"http://127.0.0.1:{self.port}/?folder={folder}"

    def stop(self) -> None:
        """Stop code-server and everything it started (extension hosts, language servers)."""
        if self.process is None:
            return
        group = self.process.pid  # its own session: the group id is its pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        # Children that outlived it (an extension host still shutting down).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)

    def extension_logs(self) -> str:
        """Every log the extension host wrote (the Portside output channel included)."""
        out = []
        for path in sorted((self.user_data / "logs").rglob("*.log")):
            if "exthost" in str(path) or "Portside" in path.name or "portside" in str(path):
                out.append(f"== {path.name}\n{path.read_text(errors='replace')}")
        return "\n".join(out)
