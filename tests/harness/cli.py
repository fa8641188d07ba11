"""Running ``python -m portside`` as a user runs it: a subprocess of this interpreter,
its output captured. (A subprocess, so the harness still never imports portside.)"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path


def run_portside(
    *args: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    unset: Iterable[str] = (),
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``python -m portside ARGS`` in ``cwd``, in this process's environment with ``env``
    added and ``unset`` removed; never raises for a non-zero exit code."""
    full_env = {**os.environ, **(env or {})}
    for name in unset:
        full_env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "portside", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
