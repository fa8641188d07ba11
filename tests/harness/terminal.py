"""Running a command on a pseudo-terminal, as a person at a terminal would."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from collections.abc import Mapping, Sequence


def run_in_pty(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    timeout: float = 60,
    stderr_too: bool = False,
) -> tuple[int, str]:
    """Run ``argv`` with stdout (and, with ``stderr_too``, stdin and stderr) on a fresh
    pseudo-terminal; its exit code and everything it wrote there, decoded."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        list(argv),
        stdin=follower if stderr_too else subprocess.DEVNULL,
        stdout=follower,
        stderr=follower if stderr_too else subprocess.DEVNULL,
        env=dict(env),
        close_fds=True,
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    data = os.read(leader, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)
    return code, b"".join(chunks).decode("utf-8", errors="replace")
