"""A warm credentialed answer imports no network stack and no builder's dependencies.

An answer cached from an authenticated request is served only after the caller's
credential is resolved through the plugin manager, which imports every built-in plugin
module. These tests run ``portside`` in-process in a fresh interpreter against a real
htpasswd registry, with the credentials in a docker ``config.json``, and list what the
warm command imported: the modules of the plugins must load what they need when they
run, not when they are registered.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness import seed
from harness.dockerconfig import CREDENTIAL_ENV, DockerConfig
from harness.images import build_image
from harness.registry import Registry

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parent.parent
PRIVATE = "team/private"
HEAVY = ("httpx", "asyncio", "docker")


def run_in_process(args: list[str], env: dict[str, str], cwd: Path) -> tuple[str, list[str]]:
    """``portside ARGS`` through ``portside.cli.main`` in a new interpreter: its output,
    and which of ``HEAVY`` (top-level packages) it had imported by the end."""
    code = textwrap.dedent(
        f"""
        import sys
        from portside.cli import main
        code = main({args!r})
        sys.stdout.flush()
        print("EXIT", code)
        loaded = [m for m, v in sys.modules.items() if v is not None]  # None: a blocked import
        print(sorted(m for m in loaded if m.split('.')[0] in {set(HEAVY)!r}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )
    lines = done.stdout.splitlines()
    assert len(lines) >= 2 and lines[-2] == "EXIT 0", (done.stdout, done.stderr)
    return "\n".join(lines[:-2]), ast.literal_eval(lines[-1])


@pytest.fixture
def env(tmp_path: Path, docker_config: DockerConfig) -> dict[str, str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PORTSIDE_", "XDG_")) and k not in CREDENTIAL_ENV
    }
    home = tmp_path / "home"
    home.mkdir()
    return {
        **clean,
        "DOCKER_CONFIG": os.environ["DOCKER_CONFIG"],  # set by the docker_config fixture
        "PORTSIDE_CACHE_DIR": str(tmp_path / "cache"),
        "HOME": str(home),
        "PYTHONPATH": str(ROOT),
    }


@pytest.mark.parametrize("verb", ["tags", "digest", "inspect"])
def test_warm_credentialed_answer_imports_no_network_stack(
    basic_registry: Registry,
    docker_config: DockerConfig,
    env: dict[str, str],
    tmp_path: Path,
    verb: str,
) -> None:
    reg = basic_registry
    image = build_image("warm-imports", labels={"org.example.secret": "private-label"})
    pushed = seed.push_image(reg, PRIVATE, image, ["1.0", "1.1"], via="fs")
    docker_config(auths={reg.host: (reg.username, reg.password)})
    target = reg.ref(PRIVATE) if verb == "tags" else reg.ref(PRIVATE, "1.0")

    # Cold: asks the registry with the credential (and so imports the client).
    cold, cold_heavy = run_in_process([verb, target], env, tmp_path)
    assert "httpx" in cold_heavy and "asyncio" in cold_heavy  # the check can see them
    # Warm: the same answer, from the cache, after the credential was looked up.
    warm, warm_heavy = run_in_process([verb, target], env, tmp_path)
    assert warm == cold
    if verb == "tags":
        assert sorted(warm.split()) == ["1.0", "1.1"]
    elif verb == "digest":
        assert pushed.digest in warm
    assert warm_heavy == []


def test_warm_credentialed_answer_still_needs_the_credential(
    basic_registry: Registry,
    docker_config: DockerConfig,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    """The cheap path is not a bypass: with the credential gone, the warm entry is not
    served (the registry is asked, and refuses)."""
    reg = basic_registry
    seed.push_image(reg, PRIVATE, build_image("warm-imports"), ["1.0"], via="fs")
    docker_config(auths={reg.host: (reg.username, reg.password)})
    run_in_process(["tags", reg.ref(PRIVATE)], env, tmp_path)
    docker_config(auths={})
    done = subprocess.run(
        [sys.executable, "-m", "portside", "tags", reg.ref(PRIVATE)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "1.0" not in done.stdout
    assert done.stderr.startswith("portside: error: "), done.stderr


VAULT_PLUGIN = """
import os

from portside.contract import Credential
from portside.plugins import hookimpl


@hookimpl(specname="portside_credentials", tryfirst=True)
def vault_credentials(registry):
    with open(os.environ["VAULT_LOG"], "a") as log:
        log.write(registry + "\\n")
    if registry != os.environ["VAULT_REGISTRY"]:
        return None
    return Credential(
        username=os.environ["VAULT_USER"], password=os.environ["VAULT_PASSWORD"], source="vault"
    )
"""


def install_plugin(site: Path) -> None:
    """A third-party credential plugin, installed as pip leaves one: a module and a
    ``*.dist-info`` folder declaring it in the ``portside`` entry-point group."""
    site.mkdir()
    (site / "vault_credentials.py").write_text(VAULT_PLUGIN)
    info = site / "vault_credentials-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vault-credentials\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[portside]\nvault = vault_credentials\n")


def test_an_installed_credential_plugin_is_asked_on_the_warm_path(
    basic_registry: Registry,
    docker_config: DockerConfig,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    """Entry-point plugins are still found and asked before a credentialed entry is
    served, and their credential keys the cache like a built-in source's."""
    reg = basic_registry
    assert reg.username is not None and reg.password is not None
    seed.push_image(reg, PRIVATE, build_image("warm-imports"), ["1.0", "1.1"], via="fs")
    docker_config(auths={})  # only the plugin knows the password
    site = tmp_path / "site"
    install_plugin(site)
    log = tmp_path / "vault.log"
    with_plugin = {
        **env,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{site}",
        "VAULT_LOG": str(log),
        "VAULT_REGISTRY": reg.host,
        "VAULT_USER": reg.username,
        "VAULT_PASSWORD": reg.password,
    }

    cold, _ = run_in_process(["tags", reg.ref(PRIVATE)], with_plugin, tmp_path)
    assert sorted(cold.split()) == ["1.0", "1.1"]
    warm, heavy = run_in_process(["tags", reg.ref(PRIVATE)], with_plugin, tmp_path)
    assert warm == cold and heavy == []
    assert log.read_text().splitlines() == [reg.host, reg.host]  # asked by each command

    # The plugin answering with another password: the warm entry is not for this caller.
    wrong = {**with_plugin, "VAULT_PASSWORD": "not-the-password"}
    done = subprocess.run(
        [sys.executable, "-m", "portside", "tags", reg.ref(PRIVATE)],
        capture_output=True,
        text=True,
        env=wrong,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0 and "1.0" not in done.stdout, (done.stdout, done.stderr)
    assert log.read_text().splitlines()[-1] == reg.host


def test_the_entry_point_scan_finds_every_group_importlib_metadata_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan that spares ``importlib.metadata`` may say "maybe" too often, never
    "none" when there is one: checked against importlib.metadata on this machine's
    installed distributions plus the test plugin."""
    import importlib.metadata
    import zipfile

    from portside.plugins import entry_points_may_exist

    site = tmp_path / "site"
    install_plugin(site)
    monkeypatch.syspath_prepend(str(site))
    groups = {ep.group for dist in importlib.metadata.distributions() for ep in dist.entry_points}
    assert {"portside", "console_scripts"} <= groups
    assert [g for g in sorted(groups) if not entry_points_may_exist(g)] == []
    assert not entry_points_may_exist("portside-no-such-group")

    # A zip archive on sys.path is read by importlib.metadata, not by the scan: "maybe".
    archive = tmp_path / "plugins.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("other-1.0.dist-info/entry_points.txt", "[portside-zipped]\nx = y\n")
    monkeypatch.syspath_prepend(str(archive))
    assert entry_points_may_exist("portside-zipped")
