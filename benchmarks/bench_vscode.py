"""The VS Code extension in a real VS Code (code-server), against the Dockerfile language
server most editors use today: time from opening a Dockerfile to its first diagnostics,
and to the first tag completion list.

    .venv/bin/python benchmarks/bench_vscode.py [--rounds 5]

Each round starts a fresh code-server (a new extension host, an empty Portside cache),
opens a workspace in chromium (Playwright), and then, timed from the browser:

- open: Quick Open's Enter on ``Dockerfile`` to the first row in the Problems panel (the
  extension activates and starts its server within this time, as when a user opens
  their first Dockerfile of the day); for Portside also to the first registry finding
  (``stale``, which needs the tag list);
- completion: Ctrl+Space after ``FROM host/acme/tool:`` to the suggest list showing.

Portside runs as the packaged .vsix; the peer is ``dockerfile-language-server-nodejs``
0.15.0 (npm) through a minimal client with the same vscode-languageclient
(benchmarks/vscode-peer). Both servers get the same file; the registry is a local
``docker-registry`` seeded by the test harness.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from harness import seed  # noqa: E402
from harness.codeserver import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    EXTENSION,
    CodeServer,
    ensure_vsix,
)
from harness.registry import RegistryFactory  # noqa: E402

PEER_VERSION = "0.15.0"
PEER_DIR = ROOT / "benchmarks" / "vscode-peer"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "portside-test"
SETTINGS = {
    "security.workspace.trust.enabled": False,
    "workbench.startupEditor": "none",
    "telemetry.telemetryLevel": "off",
    "git.enabled": False,
    "editor.wordBasedSuggestions": "off",
    "editor.quickSuggestions": {"other": False, "comments": False, "strings": False},
}


def peer_server() -> Path:
    where = CACHE / f"docker-langserver-{PEER_VERSION}"
    binary = where / "node_modules" / ".bin" / "docker-langserver"
    if not binary.exists():
        where.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "npm",
                "install",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(where),
                f"dockerfile-language-server-nodejs@{PEER_VERSION}",
            ],
            check=True,
        )
    return binary


def peer_vsix() -> Path:
    """The minimal client, bundled with the extension's own esbuild and vsce."""
    bin_dir = EXTENSION / "node_modules" / ".bin"
    env = {**os.environ, "NODE_PATH": str(EXTENSION / "node_modules")}
    subprocess.run(
        [
            str(bin_dir / "esbuild"),
            "extension.ts",
            "--bundle",
            "--platform=node",
            "--format=cjs",
            "--target=node20",
            "--external:vscode",
            "--outfile=dist/extension.js",
            "--log-level=warning",
        ],
        cwd=PEER_DIR,
        env=env,
        check=True,
    )
    subprocess.run(
        [
            str(bin_dir / "vsce"),
            "package",
            "--no-dependencies",
            "--allow-missing-repository",
            "--skip-license",
            "--out",
            "peer.vsix",
        ],
        cwd=PEER_DIR,
        env=env,
        check=True,
        capture_output=True,
    )
    return PEER_DIR / "peer.vsix"


def one_round(
    name: str, vsix: Path, settings: dict[str, Any], host: str, browser: Any
) -> dict[str, float | None]:
    import playwright.sync_api as pw

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ws = tmp / "workspace"
        ws.mkdir()
        (ws / "Dockerfile").write_text(
            f"FROM {host}/acme/tool:1.2.3\nMAINTAINER someone\nFROM {host}/acme/tool:\n"
        )
        (ws / "other.Dockerfile").write_text(f"FROM {host}/acme/tool:1.4.0\nMAINTAINER someone\n")
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "PORTSIDE_CACHE_DIR": str(tmp / "cache"),
            "PORTSIDE_HADOLINT": "off",
        }
        server = CodeServer(
            tmp,
            settings={**SETTINGS, **settings},
            env=env,
            path=str(Path(sys.executable).parent),
            install=vsix,
        ).start()
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            page.goto(server.url(ws))
            page.locator(".explorer-folders-view").first.wait_for(timeout=60_000)
            time.sleep(2)  # let the window settle: its own start-up is not what is timed
            page.keyboard.press("Control+Shift+M")
            page.keyboard.press("Control+P")
            box = page.locator(".quick-input-widget input.input")
            box.wait_for()
            box.fill("Dockerfile")
            page.locator(".quick-input-list .monaco-list-row").first.wait_for()
            rows = page.locator(".markers-panel .monaco-list-row")
            start = time.perf_counter()
            page.keyboard.press("Enter")
            out: dict[str, float | None] = {}
            rows.first.wait_for(timeout=60_000)
            out["first diagnostics"] = time.perf_counter() - start
            if name == "portside":
                page.locator(
                    ".markers-panel .monaco-list-row", has_text="is available"
                ).first.wait_for(timeout=60_000)
                out["first registry finding"] = time.perf_counter() - start
            page.locator(".monaco-editor .view-lines").first.click()
            page.keyboard.press("Control+G")
            box.wait_for()
            box.fill(f":3:{len(f'FROM {host}/acme/tool:') + 1}")
            page.keyboard.press("Enter")
            time.sleep(0.5)
            start = time.perf_counter()
            page.keyboard.press("Control+Space")
            try:
                page.locator(".suggest-widget.visible .monaco-list-row").first.wait_for(
                    timeout=10_000
                )
                out["tag completion list"] = time.perf_counter() - start
            except pw.TimeoutError:
                out["tag completion list"] = None  # the server offers none there
            page.keyboard.press("Escape")
            # A second Dockerfile, the server already running.
            page.keyboard.press("Control+P")
            box.wait_for()
            box.fill("other.Dockerfile")
            row = page.locator(".quick-input-list .monaco-list-row").filter(
                has=page.locator(".label-name", has_text=re.compile("^other.Dockerfile$"))
            )
            row.first.wait_for()
            time.sleep(0.3)  # the list settles (recent files first, then matches)
            other = page.locator(".markers-panel .monaco-list-row", has_text="other.Dockerfile")
            start = time.perf_counter()
            row.first.click()
            other.first.wait_for(timeout=60_000)
            out["second file, first diagnostics"] = time.perf_counter() - start
            return out
        finally:
            page.close()
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import playwright.sync_api as pw

    portside_vsix = ensure_vsix()
    peer = peer_server()
    peer_ext = peer_vsix()
    with tempfile.TemporaryDirectory() as reg_tmp:
        factory = RegistryFactory(Path(reg_tmp))
        try:
            registry = factory(name="bench-vscode")
            seed.push_image(
                registry,
                "acme/tool",
                seed.build_image("bench-tool"),
                ["1.2.3", "1.2.5", "1.4.0", "2.0.1"],
            )
            servers = [
                ("portside", portside_vsix, {}),
                ("docker-langserver", peer_ext, {"peer.server": str(peer)}),
            ]
            results: dict[str, dict[str, list[float | None]]] = {n: {} for n, _, _ in servers}
            with pw.sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                for round_ in range(args.rounds):
                    for name, vsix, settings in servers:  # interleaved rounds
                        got = one_round(name, vsix, settings, registry.host, browser)
                        print(
                            f"round {round_ + 1} {name}: "
                            + ", ".join(
                                f"{k} {'-' if v is None else f'{v * 1000:.0f} ms'}"
                                for k, v in got.items()
                            ),
                            flush=True,
                        )
                        for key, value in got.items():
                            results[name].setdefault(key, []).append(value)
                browser.close()
        finally:
            factory.close()

    def median(values: list[float | None]) -> float | None:
        real = [v for v in values if v is not None]
        if not real or len(real) != len(values):
            return None
        return statistics.median(real) * 1000

    print(f"\nmedians of {args.rounds} rounds (ms)")
    print(f"{'':32} {'portside':>10} {'docker-langserver':>18} {'ratio':>7}")
    for key in (
        "first diagnostics",
        "first registry finding",
        "tag completion list",
        "second file, first diagnostics",
    ):
        mine = median(results["portside"].get(key, []))
        theirs = median(results["docker-langserver"].get(key, []))
        ratio = f"{mine / theirs:.2f}" if mine and theirs else "-"
        print(
            f"{key:32} {'-' if mine is None else f'{mine:.0f}':>10} "
            f"{'none' if theirs is None else f'{theirs:.0f}':>18} {ratio:>7}"
        )
    shutil.rmtree(PEER_DIR / "dist", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
