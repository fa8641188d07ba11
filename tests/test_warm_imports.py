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
        print(sorted(m for m in sys.modules if m.split('.')[0] in {set(HEAVY)!r}))
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
