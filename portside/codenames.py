"""Release codenames of the distributions base images are built on, in release order.

Plain data, no imports: ``versions.py`` reads it on the command line's warm path to
recognise variants that carry their own version (``slim-bookworm`` -> ``slim-trixie``),
and the codename schemes in ``schemes.py`` read it to order codename tags.

Each table maps a codename to the release it names, as a tuple of numbers, so that
"newer codename" is plain tuple comparison. Rolling names (``sid``, ``devel``,
``rolling``, ``stable``) are deliberately absent: they move, they do not name a release.
"""

from __future__ import annotations

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
