"""Rate-limit headers (``ratelimit-limit: 100;w=21600``) and 429 classification.

No header means "unknown", never zero; no quota is hard-coded anywhere.
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import re
from collections.abc import Mapping
from dataclasses import dataclass

_VALUE = re.compile(r"^\s*(\d+)\s*(?:;\s*w\s*=\s*(\d+))?")


@dataclass(frozen=True)
class RateLimit:
    """What the registry last said about its quota for us."""

    limit: int | None
    remaining: int | None
    window_seconds: int | None
    source: str | None = None

    def describe(self) -> str:
        if self.limit is None and self.remaining is None:
            return "unknown"
        window = f" per {_duration(self.window_seconds)}" if self.window_seconds else ""
        return (
            f"{self.remaining if self.remaining is not None else '?'} of "
            f"{self.limit if self.limit is not None else '?'}{window} left"
        )


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def _parse_value(text: str | None) -> tuple[int | None, int | None]:
    if not text:
        return None, None
    m = _VALUE.match(text)
    if not m:
        return None, None
    return int(m.group(1)), int(m.group(2)) if m.group(2) else None


def parse_rate_limit(headers: Mapping[str, str]) -> RateLimit | None:
    """The quota headers of one response, or ``None`` when it carries none."""
    limit, window = _parse_value(headers.get("ratelimit-limit"))
    remaining, window2 = _parse_value(headers.get("ratelimit-remaining"))
    if limit is None and remaining is None:
        return None
    return RateLimit(limit, remaining, window or window2, headers.get("docker-ratelimit-source"))


# Retry-After may be seconds or an HTTP date; anything else falls back to backoff.
def parse_retry_after(value: str | None, *, now: _dt.datetime | None = None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return max(0.0, (when - now).total_seconds())


def classify_429(body: bytes) -> str:
    """Docker Hub's pull quota, the spec's TOOMANYREQUESTS code, or a bare 429."""
    text = body[:4096].decode("utf-8", "replace").lower()
    if "pull rate limit" in text or ("rate limit exceeded" in text and "pull" in text):
        return "pull-limit"
    if "toomanyrequests" in text:
        return "toomanyrequests"
    return "too-many-requests"
