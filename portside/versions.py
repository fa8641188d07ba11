"""Tag versions: enough to list tags newest first.

This is the minimal scheme the command line needs today; the full version schemes
(pluggable, "same line" compatibility) extend :func:`parse_tag` later. The rules:

- The text before the first ``-`` is the version, the rest is the *variant*
  (``3.12.1-slim-bookworm`` is version ``3.12.1``, variant ``slim-bookworm``).
- A version is an optional ``v``, dot-separated numbers, and optionally a
  pre-release word glued on with an optional number (``3.15.0rc1``, ``2.0beta``).
  Numbers compare as numbers (``rc10`` > ``rc9``, ``3.10`` > ``3.9``); a pre-release
  is older than its final release; a shorter version is older than a longer one that
  starts with it (``3.12`` < ``3.12.1``, as ``sort -V`` has it).
- Anything else (``latest``, ``edge``, ``bookworm``, ``8u412-jdk``) is not a version:
  such tags sort after all versions, alphabetically. So is a date stamp (a first
  number of eight or more digits, ``20260805``): it would otherwise outrank every
  real version.

Within one version the plain tag comes first, then its variants alphabetically.

Import cost matters here: this module is on the command line's warm path, so it uses
``re`` (already loaded by ``argparse`` and ``json``) and nothing else.
"""

from __future__ import annotations

import re

TYPE_CHECKING = False  # avoids importing typing (~9 ms) on the warm path; mypy knows it
if TYPE_CHECKING:
    from collections.abc import Iterable

_VERSION = re.compile(r"v?(\d+(?:\.\d+)*)(?:([a-z]+)(\d+)?)?", re.ASCII)

# Pre-release words, oldest first (PEP 440 and semver usage). A word not listed here
# makes the tag a non-version rather than a guess: ``8u412`` is not "8, pre-release u".
PRE_RELEASE_RANK = {
    "dev": 0,
    "a": 1,
    "alpha": 1,
    "b": 2,
    "beta": 2,
    "pre": 3,
    "preview": 3,
    "c": 4,
    "rc": 4,
}


class TagVersion:
    """A tag read as ``version[-variant]``; compare with :attr:`key` (larger is newer)."""

    __slots__ = ("numbers", "pre", "tag", "variant")

    def __init__(
        self,
        tag: str,
        numbers: tuple[int, ...],
        pre: tuple[str, int] | None,
        variant: str,
    ) -> None:
        self.tag = tag
        self.numbers = numbers
        self.pre = pre  # (word, number) or None for a final release
        self.variant = variant

    @property
    def key(self) -> tuple[tuple[int, ...], tuple[int, int, int]]:
        """Orders versions oldest to newest; the variant is not part of it."""
        # A final release is newer than any of its pre-releases.
        if self.pre is None:
            return self.numbers, (1, 0, 0)
        return self.numbers, (0, PRE_RELEASE_RANK[self.pre[0]], self.pre[1])

    @property
    def is_prerelease(self) -> bool:
        return self.pre is not None

    def __repr__(self) -> str:
        return f"TagVersion({self.tag!r}, {self.numbers}, {self.pre}, {self.variant!r})"


def _is_date_stamp(numbers: str) -> bool:
    # YYYYMMDD and longer (YYYYMMDDhhmm): Alpine's edge snapshots, nightly builds.
    first = numbers.partition(".")[0]
    return len(first) >= 8


def parse_tag(tag: str) -> TagVersion | None:
    """The version a tag names, or ``None`` when it names none (``latest``)."""
    head, _, variant = tag.partition("-")
    match = _VERSION.fullmatch(head)
    if match is None:
        return None
    text = match.group(1)
    if _is_date_stamp(text):
        return None
    numbers = tuple(int(n) for n in text.split("."))
    word = match.group(2)
    if word is None:
        return TagVersion(tag, numbers, None, variant)
    if word not in PRE_RELEASE_RANK:
        return None
    return TagVersion(tag, numbers, (word, int(match.group(3) or 0)), variant)


_FINAL = (0,)
_match_version = _VERSION.fullmatch


def newest_first_key(tag: str) -> tuple[int, tuple[int, ...], tuple[int, ...], str, str]:
    """A ``sorted`` key that puts ``tag`` in :func:`sort_tags` order (newest first).

    Versions are negated so that an ascending sort is newest first; each number
    tuple ends in ``1`` (larger than any negated number) so that ``3.12.1`` sorts
    before ``3.12``, and a final release (``(0,)``) before its pre-releases.

    Written out rather than built on :func:`parse_tag`: the command line sorts
    thousands of tags per call and this is a third faster (same rules, same result).
    """
    head, _, variant = tag.partition("-")
    match = _match_version(head)
    if match is None:
        return (1, (), _FINAL, "", tag)
    numbers, word, number = match.groups()
    if _is_date_stamp(numbers):
        return (1, (), _FINAL, "", tag)
    negated = (*[-int(n) for n in numbers.split(".")], 1)
    if word is None:
        return (0, negated, _FINAL, variant, tag)
    rank = PRE_RELEASE_RANK.get(word)
    if rank is None:
        return (1, (), _FINAL, "", tag)
    return (0, negated, (1, -rank, -int(number or 0)), variant, tag)


def sort_tags(tags: Iterable[str]) -> list[str]:
    """``tags`` newest version first; within a version the plain tag, then variants
    alphabetically; then the tags that are not versions, alphabetically.

    A registry lists tags in lexical order, so "newest" is always computed here,
    never taken as "last in the list".
    """
    return sorted(tags, key=newest_first_key)
