"""The VS Code extension end to end: the packaged .vsix installed into a real VS Code
(code-server), a workspace of Dockerfiles against the real registry, and what a user
sees through the browser (Playwright driving Debian's chromium).

A screenshot of each check is kept in vscode-extension/test-artifacts/.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import playwright.sync_api as playwright
import pytest
from test_build_native import seed_base
from test_publish_cli import tags_of

from harness import seed
from harness.cli import run_portside
from harness.codeserver import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, CodeServer, ensure_vsix
from harness.project import make_project
from harness.registry import Registry, RegistryFactory
from harness.skopeo import Skopeo

pytestmark = pytest.mark.timeout(300)

VENV_BIN = str(Path(sys.executable).parent)  # where `portside` is installed for the tests
TRUSTED = {"security.workspace.trust.enabled": False}
UNTRUSTED = {
    "security.workspace.trust.enabled": True,
    "security.workspace.trust.startupPrompt": "never",
    "security.workspace.trust.emptyWindow": False,
}
COMMON = {
    # VS Code's default; code-server's web default (afterDelay) would save what a
    # desktop user finds unsaved.
    "files.autoSave": "off",
    "workbench.startupEditor": "none",
    "workbench.tips.enabled": False,
    "extensions.ignoreRecommendations": True,
    "telemetry.telemetryLevel": "off",
    "git.enabled": False,
    "editor.quickSuggestions": {"other": False, "comments": False, "strings": False},
    "editor.inlayHints.enabled": "off",
    "editor.wordBasedSuggestions": "off",
    "editor.autoClosingBrackets": "never",
    "editor.autoClosingQuotes": "never",
}


class Images:
    """What the e2e registry holds."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.host = registry.host
        self.base_python = seed_base(registry)  # the base image the project builds on
        tool = seed.build_image("e2e-tool")
        self.tool = seed.push_image(
            registry, "acme/tool", tool, ["1.2.3", "1.2.5", "1.4.0", "2.0.1"]
        )
        before = seed.push_image(registry, "acme/base", seed.build_image("e2e-base-0"), ["1.0"])
        # The tag moves on: a Dockerfile pinned to the old digest is "tag-moved".
        seed.push_image(registry, "acme/base", seed.build_image("e2e-base-1"), ["1.0"])
        self.base_old = before.digest


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Images]:

    factory = RegistryFactory(tmp_path_factory.mktemp("e2e-registry"))
    try:
        yield Images(factory(name="vscode-e2e"))
    finally:
        factory.close()


@pytest.fixture(scope="module")
def vsix() -> Path:
    return ensure_vsix()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def make_workspace(root: Path, images: Images) -> Path:
    """Dockerfiles, and a Python project configured to be published to the registry."""
    ws = make_project(root / "workspace")
    with (ws / "pyproject.toml").open("a") as handle:
        handle.write(
            '\n[tool.portside.image]\nbuilder = "native"\n'
            f'base = "{images.registry.ref("base/python", "3.12")}"\n'
            f'destinations = ["{images.registry.ref("team/hello")}"]\n'
        )
    (ws / "app").mkdir(parents=True)
    host = images.host
    (ws / "Dockerfile").write_text(f"FROM {host}/acme/tool:1.2.3\nRUN echo hello\n")
    (ws / "app" / "Containerfile").write_text(
        f"FROM {host}/acme/base:1.0@{images.base_old}\nCOPY . /app\n"
    )
    (ws / "complete.Dockerfile").write_text(f"FROM {host}/acme/tool:\n")
    return ws


class Workbench:
    """A VS Code window in the browser, and the few gestures the tests need."""

    def __init__(self, page: Any, name: str) -> None:
        self.page = page
        self.name = name
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def shot(self, what: str) -> Path:
        path = ARTIFACTS / f"{self.name}-{what}.png"
        self.page.screenshot(path=str(path))
        return path

    def wait(self, predicate: Callable[[], Any], what: str, timeout: float = 45) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.25)
        self.shot(f"timeout-{re.sub(r'[^a-z0-9]+', '-', what.lower())}")
        raise AssertionError(f"timed out waiting for {what}")

    def command(self, title: str) -> None:
        """Run a command from the palette (asked again until the extensions' commands are
        registered: a window that just loaded lists only the workbench's own)."""

        def palette() -> bool:
            self.page.keyboard.press("Control+Shift+P")
            box = self.page.locator(".quick-input-widget input.input")
            box.wait_for(state="visible")
            box.fill(">" + title)
            row = self.page.locator(".quick-input-list .monaco-list-row").filter(
                has_text=re.compile(f"^{re.escape(title)}")
            )
            try:
                row.first.wait_for(timeout=3000)
            except playwright.TimeoutError:
                self.page.keyboard.press("Escape")
                return False
            row.first.click()
            return True

        self.wait(palette, f"the command {title!r} in the palette")

    def open_file(self, name: str) -> None:
        path = Path(name)

        def quick_open() -> bool:
            self.page.keyboard.press("Control+P")
            box = self.page.locator(".quick-input-widget input.input")
            box.wait_for(state="visible")
            box.fill(name)
            # Recently opened files rank first: pick the row named exactly like the file,
            # in its folder (several folders have a Dockerfile).
            row = self.page.locator(".quick-input-list .monaco-list-row").filter(
                has=self.page.locator(
                    ".label-name", has_text=re.compile(f"^{re.escape(path.name)}$")
                )
            )
            if path.parent != Path("."):
                row = row.filter(
                    has=self.page.locator(".label-description", has_text=str(path.parent))
                )
            row.first.wait_for()
            row.first.click()
            # The list can change under the pointer as results arrive: check what opened
            # (the breadcrumbs' file item of the active editor group is labelled with the
            # file's path; image details may have opened a second group).
            crumb = self.page.locator(
                ".editor-group-container.active .breadcrumbs-control .monaco-breadcrumb-item.file"
            )
            label = crumb.locator(".monaco-icon-label").first
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                opened = (label.get_attribute("aria-label") or "") if crumb.count() else ""
                if opened.split(" \u2022 ")[0].endswith(f"/{name}"):
                    return True
                time.sleep(0.2)
            self.page.keyboard.press("Escape")
            return False

        self.wait(quick_open, f"{name} open in an editor")
        self.page.locator(".monaco-editor.focused").wait_for()

    def goto(self, line: int, column: int) -> None:
        self.page.keyboard.press("Control+G")
        box = self.page.locator(".quick-input-widget input.input")
        box.wait_for(state="visible")
        box.fill(f":{line}:{column}")
        time.sleep(0.2)
        self.page.keyboard.press("Enter")

    def status(self) -> str:
        item = self.page.locator('.statusbar-item[aria-label^="Portside"]')
        return item.first.get_attribute("aria-label") or "" if item.count() else ""

    def notifications(self) -> list[str]:
        return self.page.locator(".notification-list-item-message").all_inner_texts()

    def problems(self) -> list[str]:
        return [
            r.get_attribute("aria-label") or ""
            for r in self.page.locator(".markers-panel .monaco-list-row").all()
        ]


def open_window(server: CodeServer, browser: Any, folder: Path, name: str) -> Workbench:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(server.url(folder))
    page.locator(".monaco-workbench").wait_for(timeout=60_000)
    page.locator(".explorer-folders-view, .explorer-viewlet").first.wait_for(timeout=60_000)
    return Workbench(page, name)


def start_server(
    tmp: Path, vsix: Path, settings: dict[str, Any], *, path: str | None
) -> CodeServer:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "PORTSIDE_CACHE_DIR": str(tmp / "portside-cache"),
        "PORTSIDE_HADOLINT": "off",
        "PORTSIDE_DAEMON": "off",
    }
    server = CodeServer(tmp, settings={**COMMON, **settings}, env=env, path=path, install=vsix)
    return server.start()


@pytest.fixture(scope="module")
def trusted(
    tmp_path_factory: pytest.TempPathFactory, vsix: Path, images: Images, browser: Any
) -> Iterator[tuple[Workbench, Path]]:
    tmp = tmp_path_factory.mktemp("trusted")
    ws = make_workspace(tmp, images)
    server = start_server(tmp, vsix, TRUSTED, path=VENV_BIN)
    try:
        bench = open_window(server, browser, ws, "trusted")
        yield bench, ws
        bench.page.close()
    finally:
        server.stop()


def test_tag_completion_lists_the_registrys_tags_newest_first(
    trusted: tuple[Workbench, Path], images: Images
) -> None:
    bench, _ = trusted
    bench.open_file("complete.Dockerfile")
    line = f"FROM {images.host}/acme/tool:"
    bench.goto(1, len(line) + 1)

    def labels() -> list[tuple[str, str]]:
        bench.page.keyboard.press("Control+Space")
        rows = bench.page.locator(".suggest-widget.visible .monaco-list-row")
        try:
            rows.first.wait_for(timeout=5000)
        except Exception:
            bench.page.keyboard.press("Escape")
            return []
        found = sorted(
            (
                int(r.get_attribute("data-index") or 0),
                r.locator(".label-name").inner_text(),
                " ".join(r.locator(".details-label").all_inner_texts()),
            )
            for r in rows.all()
        )
        return [(label, source) for _, label, source in found]

    got = bench.wait(labels, "tag completion")
    bench.shot("tag-completion")
    bench.page.keyboard.press("Escape")
    # Newest first, each item saying it is Portside's (next to other extensions' items).
    assert got == [(tag, "Portside") for tag in ("2.0.1", "1.4.0", "1.2.5", "1.2.3")]


def test_stale_base_image_is_a_problem_and_the_pin_action_rewrites_the_line(
    trusted: tuple[Workbench, Path], images: Images
) -> None:
    bench, ws = trusted
    bench.open_file("Dockerfile")
    bench.page.keyboard.press("Control+Shift+M")
    stale = f"{images.host}/acme/tool:2.0.1 is available (major update from 1.2.3)"
    bench.wait(lambda: any(stale in p for p in bench.problems()), "the stale diagnostic")
    rows = bench.problems()
    assert any("is not pinned to a digest" in p for p in rows), rows
    bench.shot("problems-stale")

    # The quick fix on the image: "Pin to digest (sha256:…)".
    bench.goto(1, 10)
    bench.page.keyboard.press("Control+.")
    pin = bench.page.locator(".action-widget .monaco-list-row", has_text="Pin to digest")
    pin.first.wait_for(timeout=20_000)
    titles = bench.page.locator(".action-widget .monaco-list-row").all_inner_texts()
    assert any(f"Update to newest major: {images.host}/acme/tool:2.0.1" in t for t in titles), (
        titles
    )
    bench.shot("code-actions")
    # The widget takes keys, not clicks (a pointer shield lies over it): walk down to it.
    focused = bench.page.locator(".action-widget .monaco-list-row.focused")
    for _ in range(len(titles)):
        if "Pin to digest" in (focused.first.inner_text() if focused.count() else ""):
            break
        bench.page.keyboard.press("ArrowDown")
    bench.page.keyboard.press("Enter")
    bench.page.keyboard.press("Control+S")
    expected = f"FROM {images.host}/acme/tool:1.2.3@{images.tool.digest}\nRUN echo hello\n"
    bench.wait(lambda: (ws / "Dockerfile").read_text() == expected, "the pinned line on disk")
    bench.wait(
        lambda: not any("is not pinned to a digest" in p for p in bench.problems()),
        "the unpinned finding to go",
    )
    bench.shot("pinned")


def test_status_bar_counts_stale_moved_and_unpinned_images_and_jumps_to_them(
    trusted: tuple[Workbench, Path], images: Images
) -> None:
    bench, ws = trusted
    (ws / "Dockerfile").write_text(f"FROM {images.host}/acme/tool:1.2.3\nRUN echo hello\n")
    bench.open_file("Dockerfile")
    bench.open_file("app/Containerfile")
    # Dockerfile: stale and unpinned (one image); Containerfile: the tag moved.
    bench.wait(
        lambda: (
            bench.status() == "Portside: 2 base images to look at (1 stale, 1 moved, 1 unpinned)"
        ),
        f"the status bar count (now {bench.status()!r})",
    )
    item = bench.page.locator('.statusbar-item[aria-label^="Portside"]').first
    assert "Portside: 2" in item.inner_text()
    bench.shot("status-bar")
    item.click()
    rows = bench.page.locator(".quick-input-list .monaco-list-row")
    rows.first.wait_for()
    labels = rows.all_inner_texts()
    assert len(labels) == 2, labels
    assert "Dockerfile:1" in labels[0] and "stale, unpinned" in labels[0], labels
    assert "app/Containerfile:1" in labels[1] and "moved" in labels[1], labels
    bench.shot("status-quick-pick")
    bench.page.keyboard.press("Enter")  # the first: the Dockerfile, line 1
    bench.page.locator('.tab.active[aria-label^="Dockerfile"]').wait_for()
    cursor = bench.page.locator(".statusbar-item", has_text=re.compile(r"^Ln \d+, Col \d+"))
    assert cursor.first.inner_text().startswith("Ln 1, Col 6")


def test_check_now_and_image_details(trusted: tuple[Workbench, Path], images: Images) -> None:
    bench, ws = trusted
    (ws / "Dockerfile").write_text(f"FROM {images.host}/acme/tool:1.2.3\nRUN echo hello\n")
    bench.open_file("Dockerfile")
    bench.command("Portside: Check for Updates Now")
    done = bench.wait(
        lambda: [n for n in bench.notifications() if "against their registries" in n],
        "the check's result",
    )
    assert re.search(r"checked \d+ Dockerfiles? against their registries: \d+ findings?", done[0])
    bench.shot("check-now")

    # The editor's context menu offers the Dockerfile commands.
    bench.page.locator(".monaco-editor .view-lines").first.click(button="right")
    menu = bench.page.locator(".context-view .monaco-menu .action-label")
    menu.first.wait_for()
    entries = set(menu.all_inner_texts())
    assert {
        "Pin All Base Images in File",
        "Show Image Details",
        "Check for Updates Now",
        "Build and Publish",
    } <= entries, entries
    bench.shot("context-menu")
    bench.page.keyboard.press("Escape")

    bench.goto(1, 1)  # anywhere on the FROM line
    bench.command("Portside: Show Image Details")
    bench.page.locator('.tab[aria-label^="Image: "]').wait_for(timeout=30_000)
    body = (
        bench.page.frame_locator("iframe.webview.ready")
        .frame_locator("#active-frame")
        .locator("body")
    )
    bench.wait(lambda: images.tool.digest in body.inner_text(), "the image's digest in the details")
    bench.shot("image-details")


def _server_pids(cache_dir: Path) -> list[int]:
    """The language servers started by one code-server (told apart by their cache dir)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        is_server = cmdline[-2:-1] == [b"lsp"]  # `portside lsp` (argv ends with b"")
        if is_server and f"PORTSIDE_CACHE_DIR={cache_dir}".encode() in environ:
            pids.append(int(proc.name))
    return pids


def test_a_crashed_server_is_restarted(trusted: tuple[Workbench, Path], images: Images) -> None:
    bench, ws = trusted
    cache = ws.parent / "portside-cache"
    before = bench.wait(lambda: _server_pids(cache), "the running server")
    os.kill(before[0], 9)
    after = bench.wait(
        lambda: [p for p in _server_pids(cache) if p not in before], "a restarted server"
    )
    assert after
    # It works again: a fresh edit gets fresh diagnostics.
    (ws / "Dockerfile").write_text(f"FROM {images.host}/acme/tool:1.4.0\n")
    bench.open_file("Dockerfile")
    bench.page.keyboard.press("Control+Shift+M")
    stale = f"{images.host}/acme/tool:2.0.1 is available (major update from 1.4.0)"
    bench.wait(lambda: any(stale in p for p in bench.problems()), "diagnostics after the restart")
    bench.command("Portside: Restart Server")
    bench.wait(
        lambda: [p for p in _server_pids(cache) if p not in before + after],
        "the server restarted by the command",
    )


def test_untrusted_workspace_contacts_only_user_allow_listed_registries(
    tmp_path: Path, vsix: Path, images: Images, browser: Any
) -> None:
    ws = make_workspace(tmp_path, images)
    # The workspace's own settings try to widen what may be contacted: ignored while
    # the workspace is not trusted (restricted configurations).
    (ws / ".vscode").mkdir()
    (ws / ".vscode" / "settings.json").write_text(
        json.dumps({"portside.trustedRegistries": ["*"], "portside.server.command": ["/bin/false"]})
    )
    server = start_server(tmp_path, vsix, UNTRUSTED, path=VENV_BIN)
    try:
        bench = open_window(server, browser, ws, "untrusted")
        bench.page.locator(".statusbar-item", has_text="Restricted Mode").first.wait_for()
        bench.open_file("Dockerfile")
        bench.page.keyboard.press("Control+Shift+M")
        gated = f"{images.host} is not contacted from an untrusted workspace"
        bench.wait(lambda: any(gated in p for p in bench.problems()), "the untrusted notice")
        assert not any("is available" in p for p in bench.problems())
        # Only what needs no registry: the missing digest.
        assert bench.status() == "Portside: 1 base image to look at (1 unpinned)"
        bench.shot("not-contacted")

        # The user allows this registry in their own settings: now it is asked.
        settings = server.user_data / "User" / "settings.json"
        current = json.loads(settings.read_text())
        bench.command("Preferences: Open User Settings (JSON)")
        bench.page.locator('.tab.active[aria-label^="settings.json"]').first.wait_for()
        editor = bench.page.locator(
            ".editor-instance .monaco-editor", has_text="workbench.startupEditor"
        )
        editor.first.locator(".view-lines").click()
        bench.page.keyboard.press("Control+A")
        bench.page.keyboard.press("Delete")
        # One line: typed newlines would be auto-indented.
        bench.page.keyboard.insert_text(
            json.dumps({**current, "portside.trustedRegistries": [images.host]})
        )
        bench.page.keyboard.press("Control+S")
        bench.wait(lambda: images.host in settings.read_text(), "the saved user settings")
        saved = json.loads(settings.read_text())
        assert saved["portside.trustedRegistries"] == [images.host]
        stale = f"{images.host}/acme/tool:2.0.1 is available (major update from 1.2.3)"
        bench.wait(lambda: any(stale in p for p in bench.problems()), "the allow-listed check")
        bench.shot("allow-listed")
        log = server.extension_logs()
        assert "workspace not trusted" in log
        assert "/bin/false" not in log  # the workspace's server.command was not run
        bench.page.close()
    finally:
        server.stop()


def test_server_not_found_says_how_to_install_and_opens_the_log(
    tmp_path: Path, vsix: Path, images: Images, browser: Any
) -> None:
    ws = make_workspace(tmp_path, images)
    server = start_server(tmp_path, vsix, TRUSTED, path=None)  # no portside on PATH
    try:
        bench = open_window(server, browser, ws, "no-server")
        bench.open_file("Dockerfile")
        found = bench.wait(
            lambda: [n for n in bench.notifications() if "no language server found" in n],
            "the not-found message",
        )
        assert len(found) == 1, found
        assert bench.status() == "Portside: the language server is not running (see the log)"
        assert "pipx install 'portside[lsp]'" in found[0]
        bench.shot("not-found")
        toast = bench.page.locator(".notification-toast", has_text="no language server found")
        toast.get_by_role("button", name="Open log").click()
        output = bench.page.locator(".panel .view-lines").first

        def log() -> str:
            return output.inner_text().replace("\xa0", " ")  # the editor's spaces

        bench.wait(lambda: "discovery: PATH: no portside" in log(), "the log")
        text = log()
        assert "portside.server.command: not set" in text
        assert "python3 -m lsp_server" in text
        bench.shot("not-found-log")
        bench.page.close()
    finally:
        server.stop()


def test_pin_all_in_the_workspace_saves_every_dockerfile(
    trusted: tuple[Workbench, Path], images: Images
) -> None:
    bench, ws = trusted
    (ws / "Dockerfile").write_text(f"FROM {images.host}/acme/tool:1.2.3\nRUN echo hello\n")
    (ws / "app" / "build.Dockerfile").write_text(
        f"FROM {images.host}/acme/tool:1.4.0 AS build\nFROM {images.host}/acme/base:1.0\n"
    )
    bench.command("Portside: Pin All Base Images in Workspace")
    done = bench.wait(
        lambda: [n for n in bench.notifications() if "Portside: pinned" in n], "the pin result"
    )
    bench.shot("pin-workspace")
    base_now = Skopeo.for_registry(images.registry).digest(images.registry.ref("acme/base", "1.0"))
    assert (ws / "Dockerfile").read_text() == (
        f"FROM {images.host}/acme/tool:1.2.3@{images.tool.digest}\nRUN echo hello\n"
    )
    assert (ws / "app" / "build.Dockerfile").read_text() == (
        f"FROM {images.host}/acme/tool:1.4.0@{images.tool.digest} AS build\n"
        f"FROM {images.host}/acme/base:1.0@{base_now}\n"
    )
    # The moved pin is brought up to date too; the half-typed complete.Dockerfile cannot be.
    assert (ws / "app" / "Containerfile").read_text() == (
        f"FROM {images.host}/acme/base:1.0@{base_now}\nCOPY . /app\n"
    )
    assert done == [
        "Portside: pinned 4 images in 3 of 4 Dockerfiles. 1 could not be pinned (see the log)."
    ]


def test_build_and_publish_pushes_with_progress(
    trusted: tuple[Workbench, Path], images: Images
) -> None:
    bench, _ = trusted
    bench.open_file("Dockerfile")
    bench.command("Portside: Build and Publish")
    rows = bench.page.locator(".quick-input-list .monaco-list-row")
    rows.first.wait_for()
    labels = rows.locator(".label-name").all_inner_texts()
    assert labels[0] == "Publish" and "Dry run" in labels, labels
    bench.page.keyboard.press("Enter")
    done = bench.wait(
        lambda: [n for n in bench.notifications() if n.startswith("Portside: published")],
        "the publish result",
        timeout=120,
    )
    bench.shot("published")
    tags = Skopeo.for_registry(images.registry).list_tags(images.registry.ref("team/hello"))
    assert sorted(tags) == ["1", "1.4", "1.4.2", "latest"], (tags, done)
    assert done[0].startswith(
        f"Portside: published: tagged {images.registry.ref('team/hello')}: 1.4.2, 1.4, 1, latest"
    ), done


def test_cancelling_a_publish_stops_it_before_any_tag_moves(
    trusted: tuple[Workbench, Path], images: Images, proxy_factory: Any
) -> None:
    bench, ws = trusted
    proxy = proxy_factory(images.registry)
    # Blobs go through; the manifest waits, so the publish is still running when cancelled.
    proxy.delay("PUT", r"/v2/team/slow/manifests/.*", 30)
    pyproject = ws / "pyproject.toml"
    original = pyproject.read_text()
    pyproject.write_text(
        original.replace(images.registry.ref("team/hello"), f"{proxy.host}/team/slow")
    )
    try:
        bench.open_file("Dockerfile")
        bench.command("Portside: Build and Publish")
        bench.page.locator(".quick-input-list .monaco-list-row").first.wait_for()
        bench.page.keyboard.press("Enter")  # Publish
        bench.wait(
            lambda: any(r.method == "PUT" and "/manifests/" in r.path for r in proxy.requests),
            "the manifest upload to start",
        )
        toast = bench.page.locator(".notification-toast", has_text="Portside: publish")
        bench.shot("publish-progress")
        toast.get_by_role("button", name="Cancel").click()
        done = bench.wait(
            lambda: [n for n in bench.notifications() if "publish cancelled" in n],
            "the cancelled message",
        )
        assert done == [
            "Portside: publish cancelled; tags are moved only when every push is complete."
        ]
        bench.shot("publish-cancelled")
        assert tags_of(images.registry, "team/slow") == []
    finally:
        pyproject.write_text(original)


class Watcher:
    """`portside watch --once --editor` run as the user of the code-server runs it: same
    HOME, so the watcher's inbox is the one their language server follows."""

    def __init__(self, ws: Path, images: Images) -> None:
        self.ws = ws
        self.registry = images.registry
        self.skopeo = Skopeo.for_registry(images.registry)

    def round(self, *paths: str) -> int:
        done = run_portside(
            *("watch", "--once", "--editor", "--quiet", "--tags-every", "0", *paths),
            cwd=self.ws,
            env={"HOME": str(self.ws.parent / "home")},
            unset=("PORTSIDE_STATE_DIR", "XDG_STATE_HOME"),
        )
        assert done.returncode in (0, 1), done.stderr
        return done.returncode

    def push(self, repo: str, tag: str, build: str) -> str:
        """A new build under `repo:tag`, moved there by skopeo the way a publisher promotes
        one; the digest the registry now serves for the tag."""
        staged = seed.push_image(self.registry, "acme/staging", seed.build_image(build), [build])
        self.skopeo.copy(self.registry.ref("acme/staging", build), self.registry.ref(repo, tag))
        digest = self.skopeo.digest(self.registry.ref(repo, tag))
        assert digest == staged.digest
        return digest


def _toast(bench: Workbench, text: str) -> Any:
    """The notification toast whose message contains `text` (waited for)."""
    toast = bench.page.locator(".notification-toast", has_text=text)
    bench.wait(lambda: toast.count() == 1, f"the notification about {text}")
    return toast.first


def _buttons(toast: Any) -> list[str]:
    return [b.strip() for b in toast.locator(".monaco-button").all_inner_texts() if b.strip()]


def test_a_rebuilt_base_image_is_a_notification_whose_update_moves_the_pins(
    trusted: tuple[Workbench, Path], images: Images
) -> None:
    bench, ws = trusted
    watcher = Watcher(ws, images)
    host = images.host
    old = watcher.push("acme/notify", "1.0", "e2e-notify-0")
    (ws / "watched").mkdir()
    dockerfile = ws / "watched" / "Dockerfile"  # open in an editor, no unsaved changes
    worker = ws / "watched" / "worker.Dockerfile"  # not open
    dev = ws / "watched" / "dev.Dockerfile"  # open, with the user's unsaved edit
    text = (
        f"FROM {host}/acme/notify:1.0@{old} AS build\n"
        "RUN echo build > /built\n"
        f"FROM {host}/acme/notify:1.0@{old}\n"
        "COPY --from=build /built /built\n"
    )
    dockerfile.write_text(text)
    worker.write_text(f'FROM {host}/acme/notify:1.0@{old}\nCMD ["work"]\n')
    dev.write_text(f"FROM {host}/acme/notify:1.0@{old}\nRUN echo dev\n")
    worker_text, dev_text = worker.read_text(), dev.read_text()
    bench.open_file("watched/Dockerfile")
    bench.open_file("watched/dev.Dockerfile")
    bench.goto(2, len("RUN echo dev") + 1)
    bench.page.keyboard.type(" && true")
    dirty = bench.page.locator('.tab.dirty[aria-label^="dev.Dockerfile"]')
    bench.wait(lambda: dirty.count() == 1, "the user's unsaved edit")
    assert watcher.round("watched") == 0  # the first round only records

    new = watcher.push("acme/notify", "1.0", "e2e-notify-1")
    assert watcher.round("watched") == 1
    toast = _toast(bench, f"{host}/acme/notify:1.0 was rebuilt")
    message = toast.locator(".notification-list-item-message").inner_text()
    assert (
        "Used in watched/Dockerfile:1, watched/Dockerfile:3, watched/dev.Dockerfile:1, "
        "watched/worker.Dockerfile:1." in message
    ), message
    assert f"{old[7:19]} -> {new[7:19]}" in message, message
    assert _buttons(toast) == ["Update", "Ignore"]
    bench.shot("watch-notice")

    toast.get_by_role("button", name="Update").click()
    # The core's fix for a moved tag: each pin moves to the digest the registry serves now,
    # every other byte kept. Files without unsaved changes are saved, as "Pin All Base
    # Images in Workspace" saves them; the user's edited file is updated but left to them.
    bench.wait(lambda: dockerfile.read_text() == text.replace(old, new), "the updated Dockerfile")
    bench.wait(lambda: worker.read_text() == worker_text.replace(old, new), "the updated worker")
    assert bench.page.locator(".notification-toast", has_text="acme/notify").count() == 0
    editor = bench.page.locator(".editor-group-container.active .view-lines").first
    bench.wait(lambda: new[7:19] in editor.inner_text(), "the new pin in the edited editor")
    assert "RUN echo dev && true" in editor.inner_text().replace("\xa0", " ")
    assert bench.page.locator(".tab.dirty").all_inner_texts() == ["dev.Dockerfile"]
    assert dev.read_text() == dev_text
    bench.shot("watch-updated")
    bench.page.keyboard.press("Control+S")  # the user saves: their edit and the new pin
    bench.wait(
        lambda: dev.read_text() == dev_text.replace(old, new).replace("dev\n", "dev && true\n"),
        "the user's file saved with both",
    )


def test_an_ignored_notification_changes_nothing_and_is_not_shown_again(
    trusted: tuple[Workbench, Path], images: Images
) -> None:
    bench, ws = trusted
    watcher = Watcher(ws, images)
    host = images.host
    old = watcher.push("acme/quiet", "2.0", "e2e-quiet-0")
    watcher.push("acme/sentinel", "1.0", "e2e-sentinel-0")
    (ws / "ignored").mkdir()
    dockerfile = ws / "ignored" / "Dockerfile"
    text = f"FROM {host}/acme/quiet:2.0@{old}\nRUN echo quiet\n"
    dockerfile.write_text(text)
    # Unpinned: a rebuild needs no edit here, so its notice offers no Update.
    (ws / "ignored" / "sentinel.Dockerfile").write_text(f"FROM {host}/acme/sentinel:1.0\n")
    bench.open_file("ignored/Dockerfile")
    assert watcher.round("ignored") == 0

    watcher.push("acme/quiet", "2.0", "e2e-quiet-1")
    assert watcher.round("ignored") == 1
    toast = _toast(bench, f"{host}/acme/quiet:2.0 was rebuilt")
    assert "Used in ignored/Dockerfile:1." in toast.inner_text()
    assert _buttons(toast) == ["Update", "Ignore"]
    toast.get_by_role("button", name="Ignore").click()
    bench.wait(
        lambda: bench.page.locator(".notification-toast", has_text="acme/quiet").count() == 0,
        "the ignored notice to go",
    )
    bench.shot("watch-ignored")

    # The next round: nothing new for acme/quiet, a rebuild of the sentinel. Its notice
    # comes after anything the round could have said about acme/quiet, so once it shows,
    # the ignored one would have too.
    watcher.push("acme/sentinel", "1.0", "e2e-sentinel-1")
    assert watcher.round("ignored") == 1
    sentinel = _toast(bench, f"{host}/acme/sentinel:1.0 was rebuilt")
    assert (
        "Used in ignored/sentinel.Dockerfile:1. Rebuild to pick it up; "
        "`portside pin ignored/sentinel.Dockerfile` pins the new digest"
    ) in sentinel.inner_text().replace("\n", " ")
    assert _buttons(sentinel) == ["Ignore"]  # nothing to edit in an unpinned line
    assert not [n for n in bench.notifications() if "acme/quiet" in n], bench.notifications()
    assert dockerfile.read_text() == text
    assert bench.page.locator(".tab.dirty").count() == 0
    bench.shot("watch-not-again")
    sentinel.get_by_role("button", name="Ignore").click()


# A server that says it is older than the extension supports: only a different version
# of the real server could, so a pygls server that answers `initialize` stands in for it.
OLD_SERVER = """
from pygls.lsp.server import LanguageServer
LanguageServer("portside-lsp", "0.0.1").start_io()
"""


def test_a_server_older_than_supported_is_stopped_with_a_message(
    tmp_path: Path, vsix: Path, images: Images, browser: Any
) -> None:
    ws = make_workspace(tmp_path, images)
    stub = tmp_path / "old_server.py"
    stub.write_text(OLD_SERVER)
    settings = {**TRUSTED, "portside.server.command": [sys.executable, str(stub)]}
    server = start_server(tmp_path, vsix, settings, path=None)
    try:
        bench = open_window(server, browser, ws, "old-server")
        bench.open_file("Dockerfile")
        found = bench.wait(
            lambda: [n for n in bench.notifications() if "this extension needs" in n],
            "the too-old message",
        )
        assert found == [
            f"Portside: the language server at {sys.executable} is portside-lsp 0.0.1; this "
            "extension needs >= 0.1.0 and < 1.0.0. Upgrade it (pipx upgrade portside) or set "
            "portside.server.command."
        ]
        assert bench.status() == "Portside: the language server is not running (see the log)"
        bench.shot("too-old")
        bench.page.close()
    finally:
        server.stop()
