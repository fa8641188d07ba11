"""PostgreSQL state for a team's shared watcher (``--state postgresql://...``, psycopg).

Several watcher processes, on several machines, share one set of watched images: they
claim targets and outbox rows with ``FOR UPDATE SKIP LOCKED``, so each target is
checked once per round and each notification sent by one watcher only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from portside.errors import ConfigError
from portside.redact import redact_url
from portside.watch.store import ADDED_COLUMNS, SCHEMA, StateError, Store


class PostgresStore(Store):
    placeholder = "%s"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    for_update = " FOR UPDATE"

    def __init__(self, dsn: str) -> None:
        super().__init__(redact_url(dsn))
        try:
            import psycopg
        except ImportError:
            raise ConfigError(
                "PostgreSQL state needs psycopg", hint="pip install 'portside[postgresql]'"
            ) from None
        self._psycopg = psycopg
        try:
            self._db: Any = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
            with self.transaction() as cur:
                # One schema set-up at a time: CREATE TABLE IF NOT EXISTS races otherwise.
                cur.execute("SELECT pg_advisory_xact_lock(7215470301)")
                for statement in SCHEMA:
                    cur.execute(statement)
                for column, kind in ADDED_COLUMNS:
                    cur.execute(
                        f"ALTER TABLE watch_targets ADD COLUMN IF NOT EXISTS {column} {kind}"
                    )
            self._db.execute(
                "CREATE TEMP TABLE IF NOT EXISTS watch_declared (key TEXT PRIMARY KEY)"
            )
        except psycopg.Error as exc:
            raise StateError(
                f"cannot open the watch state {self.where}: {str(exc).strip().splitlines()[0]}"
            ) from None

    def skip_locked_of(self, alias: str) -> str:
        return f" FOR UPDATE OF {alias} SKIP LOCKED"

    def _lock_rounds(self, cur: Any) -> None:
        cur.execute("LOCK TABLE watch_rounds IN SHARE ROW EXCLUSIVE MODE")

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self._lock:
            try:
                with self._db.transaction(), self._db.cursor() as cur:
                    yield cur
            except self._psycopg.OperationalError as exc:
                raise StateError(
                    f"the watch state {self.where} failed: {str(exc).strip().splitlines()[0]}"
                ) from None

    def close(self) -> None:
        self._db.close()
