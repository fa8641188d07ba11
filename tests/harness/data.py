"""Loaders for the Docker Official Images tag data in ``tests/data/registry-tags``.

``current/<image>.tsv`` rows are (tag, build, architectures); ``history/<image>.tsv`` rows
are (date, tag, build or removed). ``state_at`` turns a history into the tags as they
stood on a date, which ``seed.replay_history`` then puts into a registry.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "registry-tags"

# Official images with an empty architectures column are amd64-only in practice.
DEFAULT_ARCHITECTURES: tuple[str, ...] = ("amd64",)


@dataclass(frozen=True)
class TagRow:
    """A tag as it stands now: which build it is and for which architectures."""

    tag: str
    build: str
    architectures: tuple[str, ...]


@dataclass(frozen=True)
class HistoryRow:
    """One change: on ``date`` the tag started pointing at ``build`` (None: removed)."""

    date: str  # ISO date, YYYY-MM-DD
    tag: str
    build: str | None


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter="\t")
        next(reader, None)  # header
        return [row for row in reader if row]


def available(kind: str = "current") -> list[str]:
    """Image names with a file under ``current/`` or ``history/``."""
    return sorted(p.stem for p in (DATA_DIR / kind).glob("*.tsv"))


def load_current(image: str) -> list[TagRow]:
    """Rows of ``current/<image>.tsv`` in file order."""
    rows = []
    for row in _rows(DATA_DIR / "current" / f"{image}.tsv"):
        archs = tuple(a for a in (row[2] if len(row) > 2 else "").split(",") if a)
        rows.append(TagRow(row[0], row[1], archs or DEFAULT_ARCHITECTURES))
    return rows


def load_history(image: str) -> list[HistoryRow]:
    """Rows of ``history/<image>.tsv``, oldest first (file order)."""
    return [
        HistoryRow(row[0], row[1], None if row[2] == "-" else row[2])
        for row in _rows(DATA_DIR / "history" / f"{image}.tsv")
    ]


def _iso(day: str | dt.date | None) -> str | None:
    if day is None or isinstance(day, str):
        return day
    return day.isoformat()


def state_at(rows: Iterable[HistoryRow], until: str | dt.date | None = None) -> dict[str, str]:
    """Tag -> build as it stood at the end of ``until`` (inclusive); None: the end."""
    limit = _iso(until)
    state: dict[str, str] = {}
    for row in rows:
        if limit is not None and row.date > limit:
            break
        if row.build is None:
            state.pop(row.tag, None)
        else:
            state[row.tag] = row.build
    return dict(sorted(state.items()))


def first_seen(rows: Iterable[HistoryRow]) -> dict[str, str]:
    """Build -> the date it first appeared (a natural ``created`` for its image)."""
    seen: dict[str, str] = {}
    for row in rows:
        if row.build is not None and row.build not in seen:
            seen[row.build] = row.date
    return seen


def change_dates(rows: Iterable[HistoryRow]) -> list[str]:
    """The distinct dates on which something changed, oldest first."""
    return sorted({row.date for row in rows})


def by_build(rows: Iterable[TagRow]) -> dict[str, list[TagRow]]:
    """Rows grouped by build, in first-seen order (one image per build)."""
    groups: dict[str, list[TagRow]] = {}
    for row in rows:
        groups.setdefault(row.build, []).append(row)
    return groups
