"""A throw-away PostgreSQL cluster (Debian's postgresql 15) on a free loopback port.

``initdb`` + ``pg_ctl start`` take about two seconds: one cluster per test session, a
database per test. PostgreSQL refuses to run as root, so as root the server runs as
the ``postgres`` user (its data directory handed to it); as anyone else it runs as is.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from .ports import LOOPBACK, free_port


def find_bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class PostgresCluster:
    def __init__(self) -> None:
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bin = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="portside-pg-"))
        self.port = free_port()
        self.as_root = os.geteuid() == 0

    def _run(self, command: str) -> None:
        argv = (
            ["su", "postgres", "-s", "/bin/sh", "-c", command]
            if self.as_root
            else ["sh", "-c", command]
        )
        subprocess.run(argv, check=True, capture_output=True, timeout=60)

    def start(self) -> PostgresCluster:
        if self.as_root:
            shutil.chown(self.dir, "postgres")
        data = self.dir / "data"
        self._run(f"{self.bin}/initdb -D {data} -A trust -U portside >/dev/null")
        self._run(
            f"{self.bin}/pg_ctl -D {data} -o '-p {self.port} -k {self.dir} "
            f"-c listen_addresses={LOOPBACK}' -l {self.dir}/log -w start"
        )
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run(f"{self.bin}/pg_ctl -D {self.dir / 'data'} -m immediate -w stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://portside@{LOOPBACK}:{self.port}/{database}"

    def create_database(self) -> str:
        """A fresh database; its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
