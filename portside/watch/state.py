"""Opening the watcher's state: a file (SQLite, the default) or PostgreSQL by URL."""

from __future__ import annotations

from pathlib import Path

from portside.errors import ConfigError
from portside.statedir import default_state_dir
from portside.watch.store import SQLiteStore, Store


def open_store(spec: str | None) -> Store:
    """``None`` (the default file), a path, ``sqlite:///path`` or ``postgresql://...``."""
    if spec and spec.startswith(("postgresql://", "postgres://")):
        from portside.watch.store_pg import PostgresStore

        return PostgresStore(spec)
    if spec and spec.startswith("sqlite:///"):
        spec = spec[len("sqlite:///") - 1 :]
    if spec and "://" in spec:
        raise ConfigError(
            f"unknown state location {spec.split('://')[0]}://...",
            hint="use a file path, sqlite:///PATH or postgresql://...",
        )
    path = Path(spec) if spec else default_state_dir() / "watch.sqlite3"
    return SQLiteStore(path)
