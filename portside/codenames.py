"""Release codenames of the distributions base images are built on, in release order.

Plain data and the release-date rules, importing only ``time``: ``versions.py`` reads it
on the command line's warm path to recognise variants that carry their own version
(``slim-bookworm`` -> ``slim-trixie``), and the codename schemes in ``schemes.py`` read it
to order codename tags and to offer nothing before its release date.

Each table maps a codename to the release it names, as a tuple of numbers, so that
"newer codename" is plain tuple comparison. Rolling names (``sid``, ``devel``,
``rolling``, ``stable``) are deliberately absent: they move, they do not name a release.
"""

from __future__ import annotations

import time

# Debian: release numbers from debian.org; the point releases do not matter here.
DEBIAN: dict[str, tuple[int, ...]] = {
    "hamm": (2, 0),
    "slink": (2, 1),
    "potato": (2, 2),
    "woody": (3, 0),
    "sarge": (3, 1),
    "etch": (4,),
    "lenny": (5,),
    "squeeze": (6,),
    "wheezy": (7,),
    "jessie": (8,),
    "stretch": (9,),
    "buster": (10,),
    "bullseye": (11,),
    "bookworm": (12,),
    "trixie": (13,),
    "forky": (14,),
    "duke": (15,),
}

# Ubuntu: YY.MM. Interim releases are listed too: the official image tags them while
# they are supported (``stonking`` is 26.10 in the tag data set).
UBUNTU: dict[str, tuple[int, ...]] = {
    "precise": (12, 4),
    "trusty": (14, 4),
    "xenial": (16, 4),
    "yakkety": (16, 10),
    "zesty": (17, 4),
    "artful": (17, 10),
    "bionic": (18, 4),
    "cosmic": (18, 10),
    "disco": (19, 4),
    "eoan": (19, 10),
    "focal": (20, 4),
    "groovy": (20, 10),
    "hirsute": (21, 4),
    "impish": (21, 10),
    "jammy": (22, 4),
    "kinetic": (22, 10),
    "lunar": (23, 4),
    "mantic": (23, 10),
    "noble": (24, 4),
    "oracular": (24, 10),
    "plucky": (25, 4),
    "questing": (25, 10),
    "resolute": (26, 4),
    "stonking": (26, 10),
}

# Release dates, YYYY-MM-DD: nothing is offered before its release (the official images
# tag a release months ahead: ``trixie`` from 2023, ``25.10`` from May 2025). A codename
# without a date is not released yet. Dates of releases still to come are the release
# teams' schedules; ``tests/test_codenames.py`` fails when the newest listed release is
# past its date and the one after it is not listed yet, so this table cannot go stale.
DEBIAN_RELEASED: dict[str, str] = {
    "hamm": "1998-07-24",
    "slink": "1999-03-09",
    "potato": "2000-08-15",
    "woody": "2002-07-19",
    "sarge": "2005-06-06",
    "etch": "2007-04-08",
    "lenny": "2009-02-14",
    "squeeze": "2011-02-06",
    "wheezy": "2013-05-04",
    "jessie": "2015-04-25",
    "stretch": "2017-06-17",
    "buster": "2019-07-06",
    "bullseye": "2021-08-14",
    "bookworm": "2023-06-10",
    "trixie": "2025-08-09",
}

# Ubuntu, by release number: a release is known by its number (its tag ``27.04``)
# before it has a codename.
UBUNTU_RELEASED: dict[tuple[int, ...], str] = {
    (12, 4): "2012-04-26",
    (14, 4): "2014-04-17",
    (16, 4): "2016-04-21",
    (16, 10): "2016-10-13",
    (17, 4): "2017-04-13",
    (17, 10): "2017-10-19",
    (18, 4): "2018-04-26",
    (18, 10): "2018-10-18",
    (19, 4): "2019-04-18",
    (19, 10): "2019-10-17",
    (20, 4): "2020-04-23",
    (20, 10): "2020-10-22",
    (21, 4): "2021-04-22",
    (21, 10): "2021-10-14",
    (22, 4): "2022-04-21",
    (22, 10): "2022-10-20",
    (23, 4): "2023-04-20",
    (23, 10): "2023-10-12",
    (24, 4): "2024-04-25",
    (24, 10): "2024-10-10",
    (25, 4): "2025-04-17",
    (25, 10): "2025-10-09",
    (26, 4): "2026-04-23",
    (26, 10): "2026-10-15",
    (27, 4): "2027-04-22",
}


def today() -> str:
    """Today's date (UTC) as YYYY-MM-DD: what release dates are compared with."""
    return time.strftime("%Y-%m-%d", time.gmtime())


def ubuntu_is_lts(release: tuple[int, ...]) -> bool:
    """Long-term support: the April release of even years (22.04, 24.04)."""
    return len(release) >= 2 and release[1] == 4 and release[0] % 2 == 0


def debian_released(codename: str, on: str | None = None) -> bool:
    date = DEBIAN_RELEASED.get(codename)
    return date is not None and date <= (on or today())


def ubuntu_released(release: tuple[int, ...], on: str | None = None) -> bool:
    date = UBUNTU_RELEASED.get(tuple(release[:2]))
    return date is not None and date <= (on or today())


def variant_offered(current: str, candidate: str) -> bool:
    """Whether a variant ``candidate`` (``slim-trixie``, ``jdk-noble``) may replace
    ``current``: every distribution it names is released, and an Ubuntu LTS in
    ``current`` is replaced by an LTS only."""
    current_lts = any(
        ubuntu_is_lts(UBUNTU[token]) for token in current.split("-") if token in UBUNTU
    )
    for token in candidate.split("-"):
        if token in DEBIAN and not debian_released(token):
            return False
        if token in UBUNTU:
            release = UBUNTU[token]
            if not ubuntu_released(release) or (current_lts and not ubuntu_is_lts(release)):
                return False
    return True


# Windows Server base images: the semi-annual channel names (``1809``) and the LTSC
# names in one order, by the Windows build they are (1809 is LTSC 2019).
WINDOWS: dict[str, tuple[int, ...]] = {
    "1607": (14393,),
    "ltsc2016": (14393,),
    "1709": (16299,),
    "1803": (17134,),
    "1809": (17763,),
    "ltsc2019": (17763,),
    "1903": (18362,),
    "1909": (18363,),
    "2004": (19041,),
    "20h2": (19042,),
    "ltsc2022": (20348,),
    "ltsc2025": (26100,),
}

# Variant words after which a WINDOWS name may follow (``windowsservercore-ltsc2022``).
WINDOWS_BASES = frozenset({"windowsservercore", "nanoserver", "servercore", "windows"})

# Which table a codename belongs to, for the variant families in ``versions.py``.
FAMILIES: dict[str, tuple[str, dict[str, tuple[int, ...]]]] = {
    name: (family, table)
    for family, table in (("debian", DEBIAN), ("ubuntu", UBUNTU))
    for name in table
}
