"""Running builder tools: argv in, lines to progress, a BuildError naming the step."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from portside.build.base import BuildError, Progress

if TYPE_CHECKING:
    from pathlib import Path

# The runtime settings podman and buildah need on these machines (no systemd, no cgroup
# delegation, no user namespaces): written per run and passed through CONTAINERS_CONF,
# so nothing under /etc has to change.
CONTAINERS_CONF = """\
[containers]
netns="host"
ipcns="host"
utsns="host"
cgroupns="host"
pidns="host"
cgroups="disabled"
[engine]
cgroup_manager="cgroupfs"
runtime="runc"
"""


def write_containers_conf(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "containers.conf"
    path.write_text(CONTAINERS_CONF)
    return path


async def run_tool(
    argv: Sequence[str],
    *,
    step: str,
    progress: Progress,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    tail: int = 30,
) -> str:
    """Run ``argv``; every output line goes to ``progress``; stdout text returned.

    On failure the error carries the last ``tail`` lines: the reason is nearly always there.
    """
    import asyncio  # here: the builders that import this module load on warm paths too

    full_env = dict(os.environ)
    full_env.update(env or {})
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
        )
    except OSError as exc:
        raise BuildError(f"{step}: cannot start {argv[0]}: {exc}") from exc
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            lines.append(line)
            progress(step, line)
        code = await proc.wait()
    except BaseException:
        # Cancelled or interrupted: never leave the tool running behind us.
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if code != 0:
        shown = "\n".join(lines[-tail:])
        raise BuildError(f"{step}: {argv[0]} exited with {code}:\n{shown}")
    return "\n".join(lines)
