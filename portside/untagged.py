"""Untagged manifests: the ones Portside saw tagged before.

The distribution API lists tags, never the manifests no tag names: an untagged manifest
is invisible to any client that did not know its digest already. So every time
``prune`` or ``usage`` reads a repository, Portside remembers the digests its tags point
to, and when a remembered digest is no longer tagged (the tag moved to a newer build,
or was deleted) while the registry still serves it, that is an untagged manifest.

What this cannot see: manifests pushed by digest only, and manifests untagged before
Portside first read the repository under this credential. Registries with an API of
their own that lists untagged artifacts (Harbor's artifact API, ECR's
``describe-images``) could answer completely; that is not read yet.

The memory is a small JSON document per registry, repository and credential, in the
user's state directory (``retention/`` beside the watcher's state), kept with the
cache's rules for private files: a directory and files only this user may write, one
atomic write per run, the credential named only by an HMAC under a random key kept
there, so what one credential saw is never offered to another. Losing the memory (or a
concurrent run overwriting it) only forgets: a forgotten manifest is not deleted.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portside.cache import ANONYMOUS, CacheStore, credential_scope
from portside.errors import InvalidDigest
from portside.reference import Digest, Reference
from portside.statedir import default_state_dir

_KIND = "tagged-manifests"


@dataclass
class Seen:
    """What Portside knows of one manifest it saw tagged in the repository."""

    first_tagged: float  # when a run first saw a tag point to it (seconds since the epoch)
    untagged_since: float | None = None  # when a run first saw no tag point to it

    def to_json(self) -> list[float | None]:
        return [self.first_tagged, self.untagged_since]


def _seen(value: Any) -> Seen | None:
    def number(x: Any) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    if not isinstance(value, list) or len(value) != 2 or not number(value[0]):
        return None
    if value[1] is not None and not number(value[1]):
        return None
    return Seen(float(value[0]), None if value[1] is None else float(value[1]))


class _StateStore(CacheStore):
    """The cache's private-file rules, in the state directory."""

    def _refuse(self, problem: str) -> None:
        self.problem = (
            f"{problem}; remove it or make it yours alone (chmod go-w), or set PORTSIDE_STATE_DIR"
        )


class TaggedHistory:
    """The remembered digests of each repository, per credential."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.store = _StateStore(str(root or Path(default_state_dir()) / "retention"))

    @property
    def problem(self) -> str | None:
        """Why nothing can be remembered (another user's directory, say), or None."""
        return self.store.problem

    def _key(self, repository: Reference, credential: Any) -> tuple[str, ...] | None:
        if credential is None:
            scope = ANONYMOUS
        else:
            secret = self.store.secret_key()
            if secret is None:
                return None  # no safe key: remember nothing rather than name the credential
            scope = credential_scope(secret, repository.registry, credential)
        return (_KIND, repository.registry, scope, repository.repository)

    def load(self, repository: Reference, credential: Any) -> dict[Digest, Seen]:
        key = self._key(repository, credential)
        entry = self.store.get_entry(key) if key is not None else None
        if entry is None or not isinstance(entry.value, dict):
            return {}
        found = {}
        for text, value in entry.value.items():
            seen = _seen(value)
            if seen is None:
                continue
            try:
                found[Digest.parse(text)] = seen
            except InvalidDigest:
                continue  # a damaged entry is forgotten, not fatal
        return found

    def save(self, repository: Reference, credential: Any, seen: dict[Digest, Seen]) -> None:
        key = self._key(repository, credential)
        if key is None:
            return
        value = {str(digest): s.to_json() for digest, s in sorted(seen.items(), key=str)}
        self.store.put_entry(key, value, fetched_at=dt.datetime.now(dt.timezone.utc).timestamp())


def remember(seen: dict[Digest, Seen], tagged: Iterable[Digest], now: dt.datetime) -> list[Digest]:
    """Update ``seen`` with what is tagged now; the remembered digests no tag names.

    A digest tagged again (a tag moved back) is no longer untagged; one newly found
    untagged starts its clock now.
    """
    stamp = now.timestamp()
    current = set(tagged)
    for digest in current:
        if digest in seen:
            seen[digest].untagged_since = None
        else:
            seen[digest] = Seen(first_tagged=stamp)
    untagged = []
    for digest, record in seen.items():
        if digest not in current:
            if record.untagged_since is None:
                record.untagged_since = stamp
            untagged.append(digest)
    return sorted(untagged, key=str)
