"""Tag versions and the base of version schemes: the ``portside_version_schemes`` contract.

A plugin's scheme subclasses :class:`VersionScheme` and reads tags into
:class:`TagVersion` objects; ``versions.py`` holds the default rules and the scheme
lookup (which calls the plugin manager), this module only what a scheme is, so the
hook specifications can name it without an import circle. Re-exported by
``portside.contract`` and ``portside.versions``.
"""

from __future__ import annotations

import abc
import re

from portside import codenames

# Pre-release words, oldest first (PEP 440 and semver usage). A word not listed here
# makes the tag a non-version rather than a guess.
PRE_RELEASE_RANK = {
    "dev": 0,
    "a": 1,
    "alpha": 1,
    "b": 2,
    "beta": 2,
    "pre": 3,
    "preview": 3,
    "ea": 1,  # Java's early-access builds: 23-ea-14
    "c": 4,
    "rc": 4,
}

# Update levels, largest first. "prerelease" and "build" are steps within one release.
LEVELS = ("major", "minor", "patch", "prerelease", "build")


def release_numbers(text: str) -> tuple[int, ...]:
    """``"3.12.1"`` -> ``(3, 12, 1)``."""
    return tuple(int(n) for n in text.split("."))


class TagVersion:
    """A tag read by a scheme; compare with :attr:`key` (larger is newer).

    ``release`` is the numbers (``(3, 12, 1)``), ``prerelease`` the glued pre-release
    text or ``None`` (``"rc1"``), ``variant`` the compatibility suffix
    (``"slim-bookworm"``, ``""`` for none), ``build`` the build number text or ``None``
    (``"11"`` in ``21.0.5_11-jdk``, the date in ``jammy-20260810``). ``form`` is what
    else a scheme needs to keep tags of different shapes apart (``"u"`` for ``8u412``,
    the prefix of ``enterprise-8.0.2``, ``"debian"`` for a codename tag); tags of one
    line share it. The variant is not part of :attr:`key`.
    """

    __slots__ = ("build", "form", "pre", "release", "tag", "variant")

    def __init__(
        self,
        tag: str,
        release: tuple[int, ...],
        pre: tuple[str, int] | None = None,
        variant: str = "",
        build: str | None = None,
        form: str = "",
    ) -> None:
        self.tag = tag
        self.release = release
        self.pre = pre  # (word, number) or None for a final release
        self.variant = variant
        self.build = build
        self.form = form

    @property
    def numbers(self) -> tuple[int, ...]:
        """The release numbers (the name the command line knows them by)."""
        return self.release

    @property
    def prerelease(self) -> str | None:
        """The pre-release as written after the numbers (``"rc1"``), or ``None``."""
        if self.pre is None:
            return None
        word, number = self.pre
        return word if number < 0 else f"{word}{number}"

    @property
    def is_prerelease(self) -> bool:
        return self.pre is not None

    @property
    def key(self) -> tuple[tuple[int, ...], tuple[int, int, int], tuple[int, ...]]:
        """Orders versions oldest to newest: release, then pre-release, then build."""
        # A final release is newer than any of its pre-releases.
        if self.pre is None:
            pre = (1, 0, 0)
        else:
            pre = (0, PRE_RELEASE_RANK.get(self.pre[0], 0), self.pre[1])
        build = release_numbers(self.build) if self.build else ()
        return self.release, pre, build

    @property
    def line(self) -> tuple[str, int, str, bool]:
        """Tags with equal lines are "the same line" (see :meth:`VersionScheme.is_compatible`)."""
        # A build-numbered tag (21.0.5_11) moves to build-numbered tags only: 21.0.5
        # without a build is a different, floating tag.
        return self.form, len(self.release), self.variant, self.build is not None

    def __repr__(self) -> str:
        return (
            f"TagVersion({self.tag!r}, {self.release}, {self.pre}, {self.variant!r}, "
            f"build={self.build!r}, form={self.form!r})"
        )


_VARIANT_TOKEN = re.compile(r"([a-z]*?)(\d+(?:\.\d+)*)", re.ASCII)


def variant_family(variant: str) -> tuple[str, tuple[int, ...]] | None:
    """``variant`` as (family, version), or ``None`` when it carries no version.

    The family is the variant with its versions replaced by placeholders, so
    ``alpine3.20`` and ``alpine3.24`` are one family (``alpine#.#``) at versions
    ``(3, 20)`` and ``(3, 24)``; ``slim-bookworm`` and ``slim-trixie`` are ``slim-<debian>``
    at ``(12,)`` and ``(13,)``; ``windowsservercore-ltsc2022`` and ``-ltsc2025`` are
    ``windowsservercore-<windows>``. A larger version is a newer variant.
    """
    if not variant:
        return None
    shape: list[str] = []
    numbers: list[int] = []
    after_windows = False
    for token in variant.split("-"):
        family = codenames.FAMILIES.get(token)
        if family is not None:
            shape.append(f"<{family[0]}>")
            numbers.extend(family[1][token])
        elif after_windows and token in codenames.WINDOWS:
            shape.append("<windows>")
            numbers.extend(codenames.WINDOWS[token])
        else:
            match = _VARIANT_TOKEN.fullmatch(token)
            if match is None:
                shape.append(token)
            else:
                word, text = match.groups()
                parts = release_numbers(text)
                shape.append(word + ".".join("#" * len(parts)))
                numbers.extend(parts)
        after_windows = token in codenames.WINDOWS_BASES
    if not numbers:
        return None
    return "-".join(shape), tuple(numbers)


class VersionScheme(abc.ABC):
    """How one kind of tag is read and compared. Subclass it and override :meth:`parse`
    (and, if the defaults do not fit, the other methods); register an instance through
    the ``portside_version_schemes`` hook.

    The defaults work on any :class:`TagVersion`: the same line is an equal
    :attr:`TagVersion.line`, the update level is the first release number that
    differs, and a variant update is the same line on a newer variant of one family.
    """

    name = "base"
    description = ""

    @abc.abstractmethod
    def parse(self, tag: str) -> TagVersion | None:
        """The version ``tag`` names, or ``None`` when it names none (``latest``)."""

    def is_compatible(self, current: TagVersion, candidate: TagVersion) -> bool:
        """Whether ``candidate`` is in ``current``'s line (either may be newer)."""
        return current.line == candidate.line

    def update_level(self, current: TagVersion, candidate: TagVersion) -> str | None:
        """How big a step ``current`` -> ``candidate`` is, or ``None`` if not newer.

        ``"major"``, ``"minor"``, ``"patch"`` (first, second, later release number),
        ``"prerelease"`` (same release, another pre-release or its final release) or
        ``"build"`` (same release, newer build number). Shorter releases are padded
        with zeros, so ``3.12`` -> ``3.12.1`` is a patch.
        """
        if candidate.key <= current.key:
            return None
        if current.form.startswith("calendar:"):
            return "patch"  # a newer snapshot of the same thing: the smallest release step
        a, b = current.release, candidate.release
        width = max(len(a), len(b))
        a = a + (0,) * (width - len(a))
        b = b + (0,) * (width - len(b))
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return LEVELS[min(index, 2)]
        if current.pre != candidate.pre:
            return "prerelease"
        if current.build != candidate.build:
            return "build"
        return None  # 3.12 -> 3.12.0: another spelling, not an update

    def offers_prerelease(self, current: TagVersion, candidate: TagVersion) -> bool:
        """A pre-release is offered only to a numbered pre-release of the same release,
        and only a numbered one (``5.3-rc1`` -> ``5.3-rc2``): a floating pre-release
        tag (``5.3-rc``, ``5.3-alpha``) follows its channel by itself, so only the final
        release moves it on."""
        if candidate.pre is None:
            return True
        if current.pre is None or current.release != candidate.release:
            return False
        return current.pre[1] >= 0 and candidate.pre[1] >= 0

    def is_released(self, version: TagVersion) -> bool:
        """Whether ``version`` may be offered today (a distribution release is not
        before its release date, see :mod:`portside.codenames`); final or not is
        :meth:`offers_prerelease`'s business."""
        return True

    def offers(self, current: TagVersion, candidate: TagVersion) -> bool:
        """Whether ``candidate`` may be offered to a user of ``current`` at all:
        :meth:`offers_prerelease`, and released unless ``current`` is of its release."""
        if not self.offers_prerelease(current, candidate):
            return False
        return current.release == candidate.release or self.is_released(candidate)

    def variant_update(self, current: TagVersion, candidate: TagVersion) -> bool:
        """Whether ``candidate`` is ``current``'s line on a newer variant of one family
        (``alpine3.20`` -> ``alpine3.24``, ``bookworm`` -> ``trixie``), at the same or a
        newer version of the same major. A distribution in the variant must be released
        (``trixie`` from 2025-08-09); an Ubuntu LTS moves to an LTS only.

        A newer major is not offered this way: that is a ``stale`` decision with its
        own update levels.
        """
        if current.form.startswith("calendar:"):
            # A date has no "major" to stay within: any snapshot at least as new will do.
            if current.form != candidate.form or candidate.key < current.key:
                return False
            return _newer_variant(current.variant, candidate.variant)
        if (current.form, len(current.release), current.build is None) != (
            candidate.form,
            len(candidate.release),
            candidate.build is None,
        ):
            return False
        if candidate.release[:1] != current.release[:1] or candidate.key < current.key:
            return False
        if not self.offers(current, candidate):
            return False
        return _newer_variant(current.variant, candidate.variant)

    def __repr__(self) -> str:
        return f"<version scheme {self.name}>"


def _newer_variant(mine_text: str, theirs_text: str) -> bool:
    mine = variant_family(mine_text)
    theirs = variant_family(theirs_text)
    if mine is None or theirs is None or mine[0] != theirs[0] or theirs[1] <= mine[1]:
        return False
    return codenames.variant_offered(mine_text, theirs_text)
