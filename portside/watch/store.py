"""The watcher's state: what each watched tag pointed at, rounds, history and the outbox.

Two backends behind one class: SQLite (the default, a file in the user's state
directory, one watcher) and PostgreSQL (``postgresql://...``, several watchers sharing
the work: claims take row locks with ``FOR UPDATE SKIP LOCKED``). Every change is one
transaction: a target's new state, the events it caused and their outbox rows are
written together or not at all.

Delivery follows the outbox pattern. An outbox row (event, notifier) goes ``pending`` ->
``sending`` (committed before the notifier is called, with this watcher as owner and a
lease) -> ``sent`` (committed after the notifier returned). A row found ``sending``
whose owner is gone is a crash between sending and recording: idempotent notifiers are
asked again (the webhook carries the event id as its idempotency key, the JSON lines
file is searched for it), the others are marked ``uncertain``, never sent twice.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portside.errors import PortsideError

MAX_ATTEMPTS = 5
DELIVERY_LEASE = 120.0  # seconds a "sending" row is another live watcher's business


class StateError(PortsideError):
    """The state database cannot be opened or written."""


@dataclass(frozen=True)
class TargetState:
    key: str
    digest: str | None = None
    platform_digest: str | None = None
    media_type: str | None = None
    present: bool = False
    newer_tag: str | None = None
    variant_tag: str | None = None
    tags_seen: bool = False
    checked_round: int = 0
    last_checked: float | None = None
    # What is attached to the image (read at the tag-list cadence, when the digest
    # moves, when a webhook names the repository); None: not read yet.
    attached: tuple[str, ...] | None = None  # lifecycle and report referrers' digests
    end_of_life: str | None = None  # the end-of-life date last told (RFC 3339)
    end_of_life_passed: bool = False  # told that the date passed (not only coming)
    vulnerable: tuple[str, ...] | None = None  # ids at or above the watched severity


@dataclass(frozen=True)
class NewEvent:
    """An event to record: its id is the notification id (the idempotency key)."""

    id: str
    kind: str
    target: str
    repository: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Delivery:
    event_id: str
    notifier: str
    payload: dict[str, Any]
    recovered: bool  # it was "sending" when its owner died: a crash mid-send


@dataclass(frozen=True)
class HistoryRow:
    at: float
    kind: str
    target: str
    payload: dict[str, Any]
    deliveries: dict[str, str]  # notifier -> status (with the last error when failed)


SCHEMA = [
    """CREATE TABLE IF NOT EXISTS watch_targets (
        key TEXT PRIMARY KEY,
        registry TEXT NOT NULL,
        repository TEXT NOT NULL,
        digest TEXT,
        platform_digest TEXT,
        media_type TEXT,
        present INTEGER NOT NULL DEFAULT 0,
        newer_tag TEXT,
        variant_tag TEXT,
        tags_seen INTEGER NOT NULL DEFAULT 0,
        checked_round BIGINT NOT NULL DEFAULT 0,
        last_checked DOUBLE PRECISION,
        first_seen DOUBLE PRECISION NOT NULL,
        attached TEXT,
        end_of_life TEXT,
        vulnerable TEXT,
        end_of_life_passed INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS watch_repositories (
        repository TEXT PRIMARY KEY,
        tags_checked_at DOUBLE PRECISION NOT NULL DEFAULT 0,
        dirty INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS watch_rounds (
        id BIGINT PRIMARY KEY,
        started_at DOUBLE PRECISION NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS watch_events (
        id TEXT PRIMARY KEY,
        at DOUBLE PRECISION NOT NULL,
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        repository TEXT NOT NULL,
        payload TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS watch_events_repository ON watch_events (repository, at)",
    """CREATE TABLE IF NOT EXISTS watch_outbox (
        event_id TEXT NOT NULL REFERENCES watch_events (id),
        notifier TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        owner TEXT,
        lease_until DOUBLE PRECISION,
        updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (event_id, notifier)
    )""",
    "CREATE INDEX IF NOT EXISTS watch_outbox_status ON watch_outbox (status)",
]

_TARGET_COLUMNS = (
    "key, digest, platform_digest, media_type, present, newer_tag, variant_tag, tags_seen, "
    "checked_round, last_checked, attached, end_of_life, vulnerable, end_of_life_passed"
)
# Columns added since the first schema: a state file written before gains them.
ADDED_COLUMNS = (
    ("attached", "TEXT"),
    ("end_of_life", "TEXT"),
    ("vulnerable", "TEXT"),
    ("end_of_life_passed", "INTEGER NOT NULL DEFAULT 0"),
)


def _ids(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(json.loads(text))


def _ids_text(ids: tuple[str, ...] | None) -> str | None:
    return None if ids is None else json.dumps(sorted(ids))


def _state(row: Sequence[Any]) -> TargetState:
    return TargetState(
        key=row[0],
        digest=row[1],
        platform_digest=row[2],
        media_type=row[3],
        present=bool(row[4]),
        newer_tag=row[5],
        variant_tag=row[6],
        tags_seen=bool(row[7]),
        checked_round=int(row[8]),
        last_checked=row[9],
        attached=_ids(row[10]),
        end_of_life=row[11],
        vulnerable=_ids(row[12]),
        end_of_life_passed=bool(row[13]),
    )


def watcher_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_gone(owner: str | None) -> bool:
    """True when ``owner`` was a watcher on this host that no longer runs."""
    if not owner:
        return True
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's: its lease decides
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Store:
    """One connection to the state database; every method is one transaction."""

    placeholder = "%s"
    skip_locked = ""  # FOR UPDATE SKIP LOCKED where the database has row locks
    for_update = ""  # FOR UPDATE likewise (SQLite: BEGIN IMMEDIATE serialises writers)

    def __init__(self, where: str) -> None:
        self.where = where
        self.owner = watcher_id()
        self._lock = threading.Lock()

    # -- backend plumbing ------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Any]:  # pragma: no cover - per backend
        raise NotImplementedError
        yield

    def _sql(self, text: str) -> str:
        return text if self.placeholder == "%s" else text.replace("%s", self.placeholder)

    def _lock_rounds(self, cur: Any) -> None:
        """Serialise round creation (SQLite's BEGIN IMMEDIATE already does)."""

    def close(self) -> None:  # pragma: no cover - per backend
        raise NotImplementedError

    def _exec(self, cur: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        cur.execute(self._sql(sql), tuple(params))
        return cur

    # -- targets ---------------------------------------------------------------------

    def declare(self, targets: Sequence[tuple[str, str, str]]) -> None:
        """Targets (key, registry, repository) this watcher watches; new ones are added."""
        now = time.time()
        with self.transaction() as cur:
            self._exec(cur, "DELETE FROM watch_declared")
            for key, registry, repository in targets:
                self._exec(
                    cur,
                    "INSERT INTO watch_targets (key, registry, repository, first_seen) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT (key) DO NOTHING",
                    (key, registry, repository, now),
                )
                self._exec(
                    cur,
                    "INSERT INTO watch_repositories (repository) VALUES (%s) "
                    "ON CONFLICT (repository) DO NOTHING",
                    (repository,),
                )
                self._exec(
                    cur,
                    "INSERT INTO watch_declared (key) VALUES (%s) ON CONFLICT DO NOTHING",
                    (key,),
                )

    def begin_round(self, *, new_after: float | None, join_within: float) -> int | None:
        """The round to work on: an unfinished recent one, else a new one.

        ``new_after``: start a new round only if the last began that many seconds ago
        (None: always, as ``--once`` does). Returns None when it is not time yet.
        """
        now = time.time()
        with self.transaction() as cur:
            self._lock_rounds(cur)
            row = self._exec(
                cur, "SELECT id, started_at FROM watch_rounds ORDER BY id DESC LIMIT 1"
            ).fetchone()
            if row is not None:
                latest, started = int(row[0]), float(row[1])
                unfinished = self._exec(
                    cur,
                    "SELECT 1 FROM watch_targets WHERE checked_round < %s AND key IN "
                    "(SELECT key FROM watch_declared) LIMIT 1",
                    (latest,),
                ).fetchone()
                if unfinished is not None and now - started < join_within:
                    return latest
                if new_after is not None and now - started < new_after:
                    return None
            number = (int(row[0]) if row else 0) + 1
            self._exec(
                cur, "INSERT INTO watch_rounds (id, started_at) VALUES (%s, %s)", (number, now)
            )
            return number

    def next_round_due(self, interval: float) -> float:
        """Seconds until a new round may start (0: now)."""
        with self.transaction() as cur:
            row = self._exec(cur, "SELECT max(started_at) FROM watch_rounds").fetchone()
        if row is None or row[0] is None:
            return 0.0
        return max(0.0, float(row[0]) + interval - time.time())

    def claim(self, registry: str, round_id: int, limit: int) -> list[TargetState]:
        """Up to ``limit`` declared targets of ``registry`` not yet checked in this round.

        Claimed rows are marked checked in the round at once (committed), so another
        watcher skips them; a watcher that dies mid-check leaves them to the next round.
        """
        with self.transaction() as cur:
            rows = self._exec(
                cur,
                f"SELECT {_TARGET_COLUMNS} FROM watch_targets WHERE registry = %s "
                "AND checked_round < %s AND key IN (SELECT key FROM watch_declared) "
                f"ORDER BY key LIMIT %s{self.skip_locked}",
                (registry, round_id, limit),
            ).fetchall()
            for row in rows:
                self._exec(
                    cur,
                    "UPDATE watch_targets SET checked_round = %s WHERE key = %s",
                    (round_id, row[0]),
                )
        return [_state(r) for r in rows]

    def release(self, keys: Sequence[str], round_id: int) -> None:
        """Give claimed targets back (rate-limited before they were checked)."""
        with self.transaction() as cur:
            for key in keys:
                self._exec(
                    cur,
                    "UPDATE watch_targets SET checked_round = %s WHERE key = %s "
                    "AND checked_round = %s",
                    (round_id - 1, key, round_id),
                )

    def peek(self, keys: Sequence[str]) -> dict[str, TargetState]:
        with self.transaction() as cur:
            out: dict[str, TargetState] = {}
            for key in keys:
                row = self._exec(
                    cur, f"SELECT {_TARGET_COLUMNS} FROM watch_targets WHERE key = %s", (key,)
                ).fetchone()
                if row is not None:
                    out[key] = _state(row)
        return out

    def update_target(
        self,
        key: str,
        decide: Callable[[TargetState], tuple[TargetState, list[NewEvent]]],
        notifiers: Sequence[str],
    ) -> list[NewEvent]:
        """Compare-and-set: ``decide`` sees the row as it is now (locked) and returns the
        new state and the events; both, and one outbox row per notifier and event, are
        committed together."""
        return self.update_targets([(key, decide)], notifiers)

    def update_targets(
        self,
        items: Sequence[tuple[str, Callable[[TargetState], tuple[TargetState, list[NewEvent]]]]],
        notifiers: Sequence[str],
    ) -> list[NewEvent]:
        """:meth:`update_target` for several targets in one transaction (a tag list
        judged for every target of its repository)."""
        now = time.time()
        out: list[NewEvent] = []
        with self.transaction() as cur:
            for key, decide in items:
                out += self._update(cur, key, decide, notifiers, now)
        return out

    def _update(
        self,
        cur: Any,
        key: str,
        decide: Callable[[TargetState], tuple[TargetState, list[NewEvent]]],
        notifiers: Sequence[str],
        now: float,
    ) -> list[NewEvent]:
        row = self._exec(
            cur,
            f"SELECT {_TARGET_COLUMNS} FROM watch_targets WHERE key = %s{self.for_update}",
            (key,),
        ).fetchone()
        if row is None:
            return []
        before = _state(row)
        after, events = decide(before)
        if after != before:
            self._exec(
                cur,
                "UPDATE watch_targets SET digest = %s, platform_digest = %s, "
                "media_type = %s, present = %s, newer_tag = %s, variant_tag = %s, "
                "tags_seen = %s, last_checked = %s, attached = %s, end_of_life = %s, "
                "vulnerable = %s, end_of_life_passed = %s WHERE key = %s",
                (
                    after.digest,
                    after.platform_digest,
                    after.media_type,
                    int(after.present),
                    after.newer_tag,
                    after.variant_tag,
                    int(after.tags_seen),
                    now,
                    _ids_text(after.attached),
                    after.end_of_life,
                    _ids_text(after.vulnerable),
                    int(after.end_of_life_passed),
                    key,
                ),
            )
        for event in events:
            self._exec(
                cur,
                "INSERT INTO watch_events (id, at, kind, target, repository, payload) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    event.id,
                    now,
                    event.kind,
                    event.target,
                    event.repository,
                    json.dumps(event.payload, sort_keys=True),
                ),
            )
            for name in notifiers:
                self._exec(
                    cur,
                    "INSERT INTO watch_outbox (event_id, notifier, status, updated_at) "
                    "VALUES (%s, %s, 'pending', %s)",
                    (event.id, name, now),
                )
        return events

    # -- tag lists -------------------------------------------------------------------

    def claim_tags(self, repository: str, *, every: float, force: bool = False) -> bool:
        """True when this watcher should list ``repository``'s tags now (and it is claimed)."""
        now = time.time()
        with self.transaction() as cur:
            cur = self._exec(
                cur,
                "UPDATE watch_repositories SET tags_checked_at = %s, dirty = 0 "
                "WHERE repository = %s AND (tags_checked_at <= %s OR dirty = 1 OR %s = 1)",
                (now, repository, now - every, int(force)),
            )
            return bool(cur.rowcount == 1)

    def mark_dirty(self, repository: str) -> None:
        with self.transaction() as cur:
            self._exec(
                cur, "UPDATE watch_repositories SET dirty = 1 WHERE repository = %s", (repository,)
            )

    # -- outbox ----------------------------------------------------------------------

    def claim_deliveries(self, notifiers: Sequence[str], limit: int = 100) -> list[Delivery]:
        """Outbox rows for these notifiers that are due, now marked ``sending`` by us."""
        if not notifiers:
            return []
        now = time.time()
        out: list[Delivery] = []
        with self.transaction() as cur:
            marks = ", ".join(["%s"] * len(notifiers))
            rows = self._exec(
                cur,
                "SELECT o.event_id, o.notifier, o.status, o.owner, o.lease_until, e.payload "
                "FROM watch_outbox o JOIN watch_events e ON e.id = o.event_id "
                f"WHERE o.notifier IN ({marks}) AND o.status IN ('pending', 'sending') "
                f"ORDER BY e.at, o.event_id LIMIT %s{self.skip_locked_of('o')}",
                (*notifiers, limit),
            ).fetchall()
            for event_id, notifier, status, owner, lease_until, payload in rows:
                recovered = status == "sending"
                if recovered and owner == self.owner:
                    continue  # in flight in this very process
                if recovered and not (_owner_gone(owner) or (lease_until or 0) < now):
                    continue  # another live watcher is sending it
                self._exec(
                    cur,
                    "UPDATE watch_outbox SET status = 'sending', owner = %s, lease_until = %s, "
                    "attempts = attempts + 1, updated_at = %s "
                    "WHERE event_id = %s AND notifier = %s",
                    (self.owner, now + DELIVERY_LEASE, now, event_id, notifier),
                )
                out.append(Delivery(event_id, notifier, json.loads(payload), recovered))
        return out

    def finish_delivery(self, delivery: Delivery, *, status: str, error: str | None = None) -> None:
        """``sent``, ``uncertain``, or a failure: back to ``pending`` until MAX_ATTEMPTS."""
        now = time.time()
        with self.transaction() as cur:
            if status == "failed":
                row = self._exec(
                    cur,
                    "SELECT attempts FROM watch_outbox WHERE event_id = %s AND notifier = %s",
                    (delivery.event_id, delivery.notifier),
                ).fetchone()
                status = "failed" if row and int(row[0]) >= MAX_ATTEMPTS else "pending"
            self._exec(
                cur,
                "UPDATE watch_outbox SET status = %s, last_error = %s, owner = NULL, "
                "lease_until = NULL, updated_at = %s WHERE event_id = %s AND notifier = %s",
                (status, error, now, delivery.event_id, delivery.notifier),
            )

    def skip_locked_of(self, alias: str) -> str:
        return ""

    # -- history ---------------------------------------------------------------------

    def history(self, image: str | None = None, limit: int = 200) -> list[HistoryRow]:
        """Newest first: one tag's (``name:tag``), one repository's (``name``) or all."""
        with self.transaction() as cur:
            if image and ":" in image.rsplit("/", 1)[-1]:
                # One tag: its targets are "name:tag platform".
                rows = self._exec(
                    cur,
                    "SELECT id, at, kind, target, payload FROM watch_events "
                    "WHERE substr(target, 1, %s) = %s ORDER BY at DESC, id LIMIT %s",
                    (len(image) + 1, image + " ", limit),
                ).fetchall()
            elif image:
                rows = self._exec(
                    cur,
                    "SELECT id, at, kind, target, payload FROM watch_events "
                    "WHERE repository = %s ORDER BY at DESC, id LIMIT %s",
                    (image, limit),
                ).fetchall()
            else:
                rows = self._exec(
                    cur,
                    "SELECT id, at, kind, target, payload FROM watch_events "
                    "ORDER BY at DESC, id LIMIT %s",
                    (limit,),
                ).fetchall()
            out: list[HistoryRow] = []
            for event_id, at, kind, target, payload in rows:
                deliveries = {
                    n: s + (f" ({e})" if e else "")
                    for n, s, e in self._exec(
                        cur,
                        "SELECT notifier, status, last_error FROM watch_outbox "
                        "WHERE event_id = %s ORDER BY notifier",
                        (event_id,),
                    ).fetchall()
                }
                out.append(HistoryRow(float(at), kind, target, json.loads(payload), deliveries))
        return out


class SQLiteStore(Store):
    placeholder = "?"

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                str(path), isolation_level=None, timeout=30, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            with self.transaction() as cur:
                for statement in SCHEMA:
                    cur.execute(statement)
                have = {row[1] for row in cur.execute("PRAGMA table_info(watch_targets)")}
                for column, kind in ADDED_COLUMNS:
                    if column not in have:
                        cur.execute(f"ALTER TABLE watch_targets ADD COLUMN {column} {kind}")
            self._db.execute(
                "CREATE TEMP TABLE IF NOT EXISTS watch_declared (key TEXT PRIMARY KEY)"
            )
        except sqlite3.Error as exc:
            raise StateError(f"cannot open the watch state {path}: {exc}") from None

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self._lock:
            cur = self._db.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            finally:
                cur.close()

    def close(self) -> None:
        self._db.close()
