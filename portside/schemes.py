"""The built-in version schemes beyond the default, as a pluggy plugin.

Registered exactly like a third-party plugin (``BUILTIN_PLUGINS`` in ``plugins.py``)
through the ``portside_version_schemes`` hook; ``versions.scheme_for`` resolves an
image to one of them by name from configuration. Each falls back to the default
(docker) reading for tags of the usual ``version-variant`` shape, so one image can mix
both kinds (``debian:13.6`` and ``debian:trixie-20260803-slim``).

- ``debian``, ``ubuntu`` (``ubuntu-interim``): a release codename is the version
  (``bookworm`` is 12, ``jammy`` is 22.04), optionally followed by a date stamp that is its build
  (``jammy-20260810``, ``resolute-20260811.1``) and a variant (``bookworm-slim``);
  other date-stamped tags (``sid-20260803``) are read as ``calendar`` reads them.
  Nothing is offered before its release date (``codenames.py``); ``ubuntu`` offers an
  LTS user (``jammy``, ``22.04``) LTS releases only, ``ubuntu-interim`` every release.
- ``calendar``: a date is the version (``20260815``, ``tip-20260815``,
  ``devel-20260817-alpine3.24``, ``base-20260816.0.574111``); the words before it name
  the line. A newer date is a ``patch`` update: snapshots are rebuilds, not majors.
- ``prefixed``: a version after leading words (``enterprise-8.0.2``,
  ``open-17.0.20.0-jdk-jammy``, ``temurin-21-lein-2.13.0``) or glued to one
  (``python3.14-trixie``, ``jdk21``, ``php8.5-fpm``); the words name the line.
"""

from __future__ import annotations

import re

from portside import codenames
from portside.plugins import hookimpl
from portside.versions import (
    DEFAULT_SCHEME,
    PRE_RELEASE_RANK,
    TagVersion,
    VersionScheme,
    parse_tag,
)

# A Debian/Ubuntu image date stamp: YYYYMMDD, optionally with a respin (.1).
_DATE = re.compile(r"(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?:\.\d+)*", re.ASCII)


_CALENDAR = re.compile(
    r"(?:(?P<words>[a-z][a-z0-9.]*(?:-[a-z][a-z0-9.]*)*)-)?"
    r"(?P<date>(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))"
    r"(?P<more>(?:\.\d+)*)"
    r"(?:-(?P<variant>.+))?",
    re.ASCII,
)


class CalendarScheme(VersionScheme):
    """Date-stamped tags: the date (and any ``.N`` after it) is the version."""

    name = "calendar"
    description = "a date is the version: 20260815, tip-20260815, devel-20260817-alpine3.24"

    def parse(self, tag: str) -> TagVersion | None:
        match = _CALENDAR.fullmatch(tag)
        if match is None:
            return parse_tag(tag)
        words, date, more, variant = match.group("words", "date", "more", "variant")
        release = (int(date), *(int(n) for n in more.split(".")[1:]))
        # A newer snapshot is a "patch" and any newer variant of its family will do:
        # VersionScheme's rules for the form "calendar:".
        return TagVersion(tag, release, None, variant or "", None, f"calendar:{words or ''}")


class CodenameScheme(CalendarScheme):
    """Release codenames from one table, ordered by the release each one names.

    Other date-stamped tags (the rolling suites: ``sid-20260803``, ``stable-20260803-slim``)
    are read as calendar tags, and everything else as the default scheme reads it.
    """

    def __init__(
        self,
        name: str,
        table: dict[str, tuple[int, ...]],
        description: str,
        *,
        distribution: str,
        lts_only: bool = False,
    ) -> None:
        self.name = name
        self.table = table
        self.description = description
        self.distribution = distribution  # "debian" or "ubuntu": whose release dates
        self.lts_only = lts_only
        self._codename_of = {release: codename for codename, release in table.items()}

    def _distribution_release(self, version: TagVersion) -> tuple[int, ...] | None:
        """The distribution release a tag names, by codename (``jammy``) or number
        (``22.04``, ``12.6``), or ``None`` (``stable-20240722``, ``sid``)."""
        if version.form == self.name:
            return version.release
        if version.form or not version.release:
            return None
        if self.distribution == "ubuntu":
            release = version.release
            return release if len(release) == 2 and release[1] in (4, 10) else None
        major = version.release[:1]
        return major if major in self._codename_of else None

    def is_released(self, version: TagVersion) -> bool:
        release = self._distribution_release(version)
        if release is None:
            return True
        if self.distribution == "ubuntu":
            return codenames.ubuntu_released(release)
        codename = self._codename_of.get(release)
        return codename is None or codenames.debian_released(codename)

    def offers(self, current: TagVersion, candidate: TagVersion) -> bool:
        if not super().offers(current, candidate):
            return False
        if not self.lts_only:
            return True
        mine = self._distribution_release(current)
        theirs = self._distribution_release(candidate)
        # An LTS user is offered LTS releases only; an interim user any newer release.
        return not (
            mine is not None
            and theirs is not None
            and codenames.ubuntu_is_lts(mine)
            and not codenames.ubuntu_is_lts(theirs)
        )

    def parse(self, tag: str) -> TagVersion | None:
        codename, _, rest = tag.partition("-")
        release = self.table.get(codename)
        if release is None:
            return super().parse(tag)
        build: str | None = None
        first, _, after = rest.partition("-")
        if first and _DATE.fullmatch(first):
            build, rest = first, after
        # The form keeps codename tags in their own line: bookworm moves to trixie,
        # not to 13.6 (a different tag shape, chosen on purpose by whoever wrote it).
        return TagVersion(tag, release, None, rest, build, self.name)


# Leading words, then a version (glued to the last word or its own token).
_PREFIXED_TOKEN = re.compile(
    r"([a-z][a-z_]*?)?(\d+(?:\.\d+)*)(?:([a-z]+)(\d+)?)?(?:_(\d+))?", re.ASCII
)


class PrefixedScheme(VersionScheme):
    """A version after words that name the line: ``enterprise-8.0.2``, ``jdk21-noble``."""

    name = "prefixed"
    description = "a version after words that name the line: enterprise-8.0.2, python3.14"

    def parse(self, tag: str) -> TagVersion | None:
        parsed = parse_tag(tag)
        if parsed is not None:
            return parsed
        tokens = tag.split("-")
        for index, token in enumerate(tokens):
            match = _PREFIXED_TOKEN.fullmatch(token)
            if match is None:
                continue
            glued, numbers, word, number, build = match.groups()
            if len(numbers.partition(".")[0]) >= 8:
                return None  # a date: the calendar scheme's business
            if word is not None and word not in PRE_RELEASE_RANK:
                return None
            pre = (word, int(number) if number else -1) if word is not None else None
            form = "".join(t + "-" for t in tokens[:index]) + (glued or "")
            release = tuple(int(n) for n in numbers.split("."))
            return TagVersion(tag, release, pre, "-".join(tokens[index + 1 :]), build, form)
        return None


DEBIAN = CodenameScheme(
    "debian",
    codenames.DEBIAN,
    "Debian codenames: buster < bullseye < bookworm < trixie",
    distribution="debian",
)
UBUNTU = CodenameScheme(
    "ubuntu",
    codenames.UBUNTU,
    "Ubuntu codenames: focal < jammy < noble < resolute; LTS users are offered LTS releases",
    distribution="ubuntu",
    lts_only=True,
)
UBUNTU_INTERIM = CodenameScheme(
    "ubuntu-interim",
    codenames.UBUNTU,
    "Ubuntu codenames, interim releases (24.10, 25.04) offered to LTS users too",
    distribution="ubuntu",
)
CALENDAR = CalendarScheme()
PREFIXED = PrefixedScheme()


@hookimpl
def portside_version_schemes() -> list[VersionScheme]:
    return [DEFAULT_SCHEME, DEBIAN, UBUNTU, UBUNTU_INTERIM, CALENDAR, PREFIXED]
