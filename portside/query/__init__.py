"""Exact-image queries: a small language over image metadata that resolves to digests.

    docker.io/library/python where version ~ 3.12 and variant = "slim-bookworm"
        and platform = linux/arm64 and created < 2026-06-01 order by version desc limit 1

Answered client-side, identically on every registry, through the cache. The language
(grammar, literals, errors with a caret) is in :mod:`portside.query.syntax`; planning
and evaluation (what is fetched, when checking stops) in :mod:`portside.query.evaluate`;
the bridge to the version schemes in :mod:`portside.query.versioning`.

Library first: the command line, the language server, the hooks and ``pin`` call
:func:`parse_query`, :func:`run_query`, :func:`resolve_one` and :func:`latest`.
"""

from __future__ import annotations

from .evaluate import DEFAULT_CONCURRENCY, NoMatch, Result, latest, resolve_one, run_query
from .syntax import (
    And,
    Condition,
    Field,
    Not,
    Or,
    OrderItem,
    Query,
    QuerySyntaxError,
    parse_query,
)

__all__ = [
    "DEFAULT_CONCURRENCY",
    "And",
    "Condition",
    "Field",
    "NoMatch",
    "Not",
    "Or",
    "OrderItem",
    "Query",
    "QuerySyntaxError",
    "Result",
    "latest",
    "parse_query",
    "resolve_one",
    "run_query",
]
