"""Tag version schemes: what version a tag names, which tags are "the same line", and
which of them is newer.

The default scheme (:data:`DEFAULT_SCHEME`, named ``docker``) follows Renovate's docker
versioning, which users already know:

- The text before the first ``-`` is the version, the rest is the *variant*
  (``3.12.1-slim-bookworm`` is version ``3.12.1``, variant ``slim-bookworm``).
- A version is an optional ``v``, dot-separated numbers, and optionally a
  pre-release word glued on with an optional number (``3.15.0rc1``, ``2.0beta``).
- A newer tag "in the same line" has the same variant and the same number of version
  parts (``3.12`` moves to ``3.13``, never to ``3.13.1``; ``-alpine`` stays ``-alpine``).
- Pre-releases are offered only to a tag that is itself a pre-release of that release.

Deliberate differences from Renovate, each because Renovate gets real tags wrong:

- Pre-releases compare numerically (``rc10`` > ``rc9``); Renovate compares them as text.
- A pre-release word must be a known one (:data:`PRE_RELEASE_RANK`): ``8u412`` is not
  "8, pre-release u412" but Java's "8 update 412", read as release ``(8, 412)`` in a
  line of its own (form ``u``).
- ``_N`` after the version is a build number (``21.0.5_11-jdk-noble``, Eclipse Temurin;
  ``8.1.2.4_1``), not a pre-release, so such tags are stable and ``_9`` < ``_11``.
- A date stamp (a first number of eight or more digits, ``20260805``) is not a version
  here: it would outrank every real version. A tag that is only a date (alpine's
  ``20240329``) is a snapshot in a line of its own (:func:`parse_date_tag`); the
  ``calendar`` scheme reads the rest (``tip-20260815``).
- Pre-release words in upper case (php's ``8.3.11RC2``) and right after the hyphen
  (mongo's ``7.0.10-rc0``, openjdk's ``23-ea-14``) are pre-releases, not variants; so
  is Java's ``-b08`` a build number (``8u392-b08-jre``). Renovate keeps them in the
  variant and "updates" ``7.0.21-rc0`` to ``8.0.10-rc0``. A pre-release without a
  number (``5.3-rc``) is a floating tag: only its final release moves it on.
- Several proposals: :func:`proposals` gives the newest in the current major and the
  newest overall, each with its level, as Renovate does.
- Variants that carry their own version (``alpine3.20``, ``bookworm``,
  ``windowsservercore-ltsc2022``) are recognised, so a tag on an old variant can be
  offered the same line on a newer variant (:func:`variant_updates`) instead of
  being stuck where Renovate offers nothing.

Other schemes (Debian and Ubuntu codenames, calendar tags, prefixed versions) live in
``portside.schemes`` and are pluggy plugins (hook ``portside_version_schemes``);
:func:`scheme_for` picks one per image from configuration.

Import cost matters here: this module is on the command line's warm path
(``portside tags`` from the cache), so it uses ``re`` (already loaded by ``argparse`` and
``json``) and nothing else at import time. No ``typing``, ``dataclasses`` or pluggy: the
plugin manager is imported only when a scheme other than the default is asked for.
"""

from __future__ import annotations

import re

from portside.errors import ConfigError

# The plugin contract's version types and their rules, defined below the plugin
# manager (which this module calls to load schemes); re-exported here.
from portside.tagversion import LEVELS as LEVELS
from portside.tagversion import PRE_RELEASE_RANK as PRE_RELEASE_RANK
from portside.tagversion import TagVersion as TagVersion
from portside.tagversion import VersionScheme as VersionScheme
from portside.tagversion import release_numbers as _numbers
from portside.tagversion import variant_family as variant_family

TYPE_CHECKING = False  # avoids importing typing (~9 ms) on the warm path; mypy knows it
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

# v? numbers [u update] [pre-release word [number]] [_build]; the word in either case
# (php's 8.3.11RC2 is 8.3.11rc2).
_VERSION = re.compile(
    r"v?(\d+(?:\.\d+)*)(?:u(\d+))?(?:([a-zA-Z]+)(\d+)?)?(?:_(\d+))?",
    re.ASCII,
)
# A pre-release or build part written as the first part after the hyphen: mongo's
# 7.0.10-rc0, groovy's 6.0.0-beta-2, openjdk's 23-ea-14, Java's 8u392-b08 (a build
# number). Only words that mean a pre-release in every official image that uses them;
# ``dev`` is not one (Chainguard's 3.12-dev is a variant with build tools).
_HYPHEN_PART = re.compile(
    r"(?:(rc|alpha|beta|preview|ea)(?:-?(\d+))?|b(\d+))(?:-|$)", re.ASCII | re.IGNORECASE
)
_HYPHEN_FIRST = frozenset("rabepRABEP")
# A date-only tag (alpine's 20240329), optionally with a respin and a variant.
_DATE_TAG = re.compile(
    r"((?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))((?:\.\d+)*)(?:-(.+))?", re.ASCII
)
# Renovate skips tags that look like a git commit; so do we (``1a2b3c4``).
_COMMIT = re.compile(r"[0-9a-f]{7,40}", re.ASCII)

_FINER_THAN_PATCH = ("prerelease", "build")


def _is_date_stamp(numbers: str) -> bool:
    # YYYYMMDD and longer (YYYYMMDDhhmm): Alpine's edge snapshots, nightly builds.
    first = numbers.partition(".")[0]
    return len(first) >= 8


def _pre_number(text: str | None) -> int:
    # A pre-release without a number (3.15-rc, 5.3-alpha) is the floating tag of that
    # channel: -1, below rc0, and never moved to another pre-release (offers_prerelease).
    return int(text) if text else -1


def _hyphen_part(variant: str) -> tuple[tuple[str, int] | None, str | None, str] | None:
    """(pre-release, build, rest of the variant) when ``variant`` starts with a
    pre-release or build part (``rc0``, ``ea-14-nanoserver``, ``b08-jre``), else ``None``."""
    match = _HYPHEN_PART.match(variant)
    if match is None:
        return None
    word, number, build = match.groups()
    rest = variant[match.end() :]
    if word is not None:
        return (word.lower(), _pre_number(number)), None, rest
    return None, build, rest


def parse_tag(tag: str) -> TagVersion | None:
    """The version a tag names in the default scheme, or ``None`` (``latest``)."""
    head, _, variant = tag.partition("-")
    match = _VERSION.fullmatch(head)
    if match is None:
        return None
    text, update, word, number, build = match.groups()
    if _is_date_stamp(text):
        return None
    if _COMMIT.fullmatch(head) and not head.isdigit():
        return None
    pre = None
    if word is not None:
        word = word.lower()
        if word not in PRE_RELEASE_RANK:
            return None
        pre = (word, _pre_number(number))
    elif build is None and variant[:1] in _HYPHEN_FIRST:
        part = _hyphen_part(variant)
        if part is not None:
            pre, build, variant = part
    if update is not None:
        # Java's 8u412: one number, then "u" and the update number.
        if "." in text:
            return None
        return TagVersion(tag, (int(text), int(update)), pre, variant, build, "u")
    return TagVersion(tag, _numbers(text), pre, variant, build)


_FINAL = (0,)
_match_version = _VERSION.fullmatch
_NOT_A_VERSION: tuple[int, tuple[int, ...], tuple[int, ...], tuple[int, ...]] = (1, (), _FINAL, ())
# The version part of a key, per tag head ("3.13.1" of "3.13.1-slim-bookworm"): a
# repository has several tags per version (python: 2,000 tags, ~400 versions), so most
# keys are a dictionary lookup. Bounded so that a long-lived process cannot grow it
# without end.
_head_keys: dict[str, tuple[int, tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = {}
_HEAD_KEYS_MAX = 65536


def _head_key(head: str) -> tuple[int, tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    match = _match_version(head)
    if match is None:
        return _NOT_A_VERSION
    numbers, update, word, number, build = match.groups()
    if _is_date_stamp(numbers) or (_COMMIT.fullmatch(head) and not head.isdigit()):
        return _NOT_A_VERSION
    if update is not None:
        if "." in numbers:
            return _NOT_A_VERSION
        numbers = f"{numbers}.{update}"
    negated = (*[-int(n) for n in numbers.split(".")], 1)
    builds = (-int(build), 1) if build else (1,)
    if word is None:
        return (0, negated, _FINAL, builds)
    rank = PRE_RELEASE_RANK.get(word.lower())
    if rank is None:
        return _NOT_A_VERSION
    return (0, negated, (1, -rank, -_pre_number(number)), builds)


def newest_first_key(
    tag: str,
) -> tuple[int, tuple[int, ...], tuple[int, ...], tuple[int, ...], str, str]:
    """A ``sorted`` key that puts ``tag`` in :func:`sort_tags` order (newest first).

    Versions are negated so that an ascending sort is newest first; each number
    tuple ends in ``1`` (larger than any negated number) so that ``3.12.1`` sorts
    before ``3.12``, and a final release (``(0,)``) before its pre-releases.

    Written out rather than built on :func:`parse_tag`, and memoised per version
    (``_head_key``): the command line sorts thousands of tags per call (same rules,
    same result; ``test_sort_key_agrees_with_parsed_key`` holds them together).
    """
    head, _, variant = tag.partition("-")
    key = _head_keys.get(head)
    if key is None:
        key = _head_key(head)
        if len(_head_keys) < _HEAD_KEYS_MAX:
            _head_keys[head] = key
    if key[0]:
        return (1, (), _FINAL, (), "", tag)
    if variant[:1] in _HYPHEN_FIRST and key[2] == _FINAL and key[3] == (1,):
        part = _hyphen_part(variant)  # 7.0.10-rc0: as parse_tag reads it
        if part is not None:
            pre, build, rest = part
            pre_key = (1, -PRE_RELEASE_RANK[pre[0]], -pre[1]) if pre else _FINAL
            build_key = (-int(build), 1) if build else key[3]
            return (0, key[1], pre_key, build_key, rest, tag)
    return (0, key[1], key[2], key[3], variant, tag)


def sort_tags(tags: Iterable[str]) -> list[str]:
    """``tags`` newest version first; within a version the plain tag, then variants
    alphabetically; then the tags that are not versions, alphabetically.

    A registry lists tags in lexical order, so "newest" is always computed here,
    never taken as "last in the list".
    """
    return sorted(tags, key=newest_first_key)


# -- schemes ----------------------------------------------------------------------------


def parse_date_tag(tag: str) -> TagVersion | None:
    """A date-only tag (``20240329``, ``20240329.1-slim``) as a snapshot: the date is
    the release, in a line of its own (form ``calendar:``, as the calendar scheme reads
    it), so it moves to the newest snapshot and never to a version."""
    match = _DATE_TAG.fullmatch(tag)
    if match is None:
        return None
    date, more, variant = match.groups()
    release = (int(date), *(int(n) for n in more.split(".")[1:]))
    return TagVersion(tag, release, None, variant or "", None, "calendar:")


class DockerScheme(VersionScheme):
    """The default: Renovate's docker versioning with the differences listed above;
    date-only tags are snapshots (:func:`parse_date_tag`)."""

    name = "docker"
    description = "version before the first '-', the rest is the variant (Renovate's docker)"

    def parse(self, tag: str) -> TagVersion | None:
        # Memoised: a watch round judges each watched tag of a repository against the
        # same tag list (100 tags watched of 100: 10,000 parses of 100 strings). A
        # TagVersion is never changed once made, so one may be shared.
        try:
            return _parsed[tag]
        except KeyError:
            pass
        version = parse_tag(tag) or parse_date_tag(tag)
        if len(_parsed) < _PARSED_MAX:
            _parsed[tag] = version
        return version


_parsed: dict[str, TagVersion | None] = {}
_PARSED_MAX = 65536

DEFAULT_SCHEME: VersionScheme = DockerScheme()
# Names that mean the default scheme in configuration.
DEFAULT_NAMES = frozenset({"docker", "default"})


def _levels(allow_levels: Iterable[str]) -> frozenset[str]:
    allowed = set(allow_levels)
    # Steps within a release are finer than a patch: whoever takes patches takes them.
    if "patch" in allowed:
        allowed.update(_FINER_THAN_PATCH)
    return frozenset(allowed)


def _other_versions(
    current_tag: str, tags: Iterable[str], scheme: VersionScheme
) -> Iterator[TagVersion]:
    """The versions ``scheme`` reads in ``tags``, each tag once, ``current_tag`` left out."""
    seen = {current_tag}
    for tag in tags:
        if tag in seen:
            continue
        seen.add(tag)
        version = scheme.parse(tag)
        if version is not None:
            yield version


def newer_in_line(
    current_tag: str,
    tags: Iterable[str],
    *,
    scheme: VersionScheme | None = None,
    allow_levels: Iterable[str] = ("major", "minor", "patch"),
) -> list[str]:
    """Tags in ``current_tag``'s line that are newer, newest first (``current_tag`` and
    equal versions excluded). ``allow_levels`` limits how big a step may be; allowing
    ``patch`` also allows pre-release and build steps. Empty when ``current_tag`` is
    not a version in ``scheme`` (default: :data:`DEFAULT_SCHEME`).
    """
    return [v.tag for v, _ in _newer(current_tag, tags, scheme, allow_levels)]


def _newer(
    current_tag: str,
    tags: Iterable[str],
    scheme: VersionScheme | None,
    allow_levels: Iterable[str],
) -> list[tuple[TagVersion, str]]:
    """:func:`newer_in_line` with each tag's version and update level."""
    scheme = scheme or DEFAULT_SCHEME
    current = scheme.parse(current_tag)
    if current is None:
        return []
    allowed = _levels(allow_levels)
    found: list[tuple[TagVersion, str]] = []
    for candidate in _other_versions(current_tag, tags, scheme):
        if not scheme.is_compatible(current, candidate):
            continue
        if not scheme.offers(current, candidate):
            continue
        level = scheme.update_level(current, candidate)
        if level is not None and level in allowed:
            found.append((candidate, level))
    return _newest_first(current, found)


class Proposal:
    """One update on offer: the ``tag`` to move to and its update ``level``
    (``major``, ``minor``, ``patch``, ``prerelease``, ``build``)."""

    __slots__ = ("level", "tag")

    def __init__(self, tag: str, level: str) -> None:
        self.tag = tag
        self.level = level

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Proposal):
            return NotImplemented
        return (self.tag, self.level) == (other.tag, other.level)

    def __hash__(self) -> int:
        return hash((self.tag, self.level))

    def __repr__(self) -> str:
        return f"Proposal({self.tag!r}, {self.level!r})"

    def to_json(self) -> dict[str, str]:
        return {"tag": self.tag, "level": self.level}


def proposals(
    current_tag: str,
    tags: Iterable[str],
    *,
    scheme: VersionScheme | None = None,
    allow_levels: Iterable[str] = ("major", "minor", "patch"),
) -> list[Proposal]:
    """The updates to offer ``current_tag``, as Renovate offers them: the newest tag in
    the current major (a minor or smaller step), then the newest overall when that is
    a major step (``16.1-bookworm`` -> ``16.9-bookworm`` and ``17.5-bookworm``). Each
    tag once; empty when nothing is newer. Same rules as :func:`newer_in_line`.
    """
    found = _newer(current_tag, tags, scheme, allow_levels)
    if not found:
        return []
    out: list[Proposal] = []
    in_major = next(((v, level) for v, level in found if level != "major"), None)
    if in_major is not None:
        out.append(Proposal(in_major[0].tag, in_major[1]))
    newest, level = found[0]
    if level == "major":
        out.append(Proposal(newest.tag, level))
    return out


def newest_in_line(
    current_tag: str,
    tags: Iterable[str],
    *,
    scheme: VersionScheme | None = None,
    allow_levels: Iterable[str] = ("major", "minor", "patch"),
) -> str | None:
    """The first of :func:`newer_in_line`, or ``None`` when nothing is newer."""
    newer = newer_in_line(current_tag, tags, scheme=scheme, allow_levels=allow_levels)
    return newer[0] if newer else None


def variant_updates(
    current_tag: str, tags: Iterable[str], *, scheme: VersionScheme | None = None
) -> list[str]:
    """Tags that are ``current_tag``'s line on a newer variant of the same family, best
    first: ``3.12.1-alpine3.20`` -> ``3.12.1-alpine3.24``, ``3.12-slim-bookworm`` ->
    ``3.12-slim-trixie``. See :meth:`VersionScheme.variant_update`."""
    scheme = scheme or DEFAULT_SCHEME
    current = scheme.parse(current_tag)
    if current is None:
        return []
    found = [
        v for v in _other_versions(current_tag, tags, scheme) if scheme.variant_update(current, v)
    ]
    # The smallest change first: the same version on the newest variant when the image
    # has it (3.12-slim-bookworm -> 3.12-slim-trixie; moving on to 3.13 is a separate
    # "stale" decision); otherwise newest variant, then newest version (a line stuck on
    # a variant that is no longer built: 1.2.3-alpine3.20 -> 1.2.4-alpine3.21).
    ordered = sorted(found, key=lambda v: v.tag)
    ordered.sort(key=lambda v: (v.key == current.key, _variant_rank(v), v.key), reverse=True)
    return [v.tag for v in ordered]


def _variant_rank(version: TagVersion) -> tuple[int, ...]:
    family = variant_family(version.variant)
    return family[1] if family else ()


def _newest_first(
    current: TagVersion, found: Iterable[tuple[TagVersion, str]]
) -> list[tuple[TagVersion, str]]:
    # Equal keys (v1.2.4 and 1.2.4): the spelling the current tag uses first, then by name.
    v_prefixed = current.tag.startswith("v")
    ordered = sorted(found, key=lambda f: (f[0].tag.startswith("v") != v_prefixed, f[0].tag))
    ordered.sort(key=lambda f: f[0].key, reverse=True)
    return ordered


# -- choosing a scheme ------------------------------------------------------------------


class UnknownSchemeError(ConfigError, LookupError):
    """A scheme name that no installed plugin provides (a configuration mistake)."""


# Images whose own versions are codenames; configuration overrides these.
BUILTIN_IMAGE_SCHEMES = {
    "docker.io/library/debian": "debian",
    "docker.io/library/ubuntu": "ubuntu",
}

_registry: dict[str, VersionScheme] | None = None
_plugin_errors: list[str] = []


def _load_schemes() -> dict[str, VersionScheme]:
    """Every scheme the plugins provide, by name (loaded once, on first need)."""
    global _registry
    if _registry is not None:
        return _registry
    from portside.plugins import get_plugin_manager  # pluggy: only off the warm path

    schemes: dict[str, VersionScheme] = {}
    errors: list[str] = []
    hook = get_plugin_manager().hook.portside_version_schemes
    # Called one plugin at a time: a plugin that raises loses its own schemes only,
    # and is named in the error if its scheme is asked for.
    for impl in hook.get_hookimpls():  # registration order: built-ins first
        try:
            provided = impl.function()
            if not isinstance(provided, (list, tuple)):
                raise TypeError(f"returned {type(provided).__name__}, not a list of schemes")
            for scheme in provided:
                if not isinstance(scheme, VersionScheme):
                    raise TypeError(f"returned {scheme!r}, not a VersionScheme")
                schemes.setdefault(scheme.name, scheme)
        except Exception as exc:  # a plugin's failure is reported, never raised from here
            errors.append(f"plugin {impl.plugin_name!r} failed: {exc!r}")
    _plugin_errors[:] = errors
    _registry = schemes
    return schemes


def get_scheme(name: str) -> VersionScheme:
    """The scheme called ``name`` (``docker``/``default`` without loading plugins)."""
    if name in DEFAULT_NAMES:
        return DEFAULT_SCHEME
    schemes = _load_schemes()
    scheme = schemes.get(name)
    if scheme is None:
        known = ", ".join(sorted({*schemes, "docker"}))
        detail = "; ".join(_plugin_errors)
        raise UnknownSchemeError(
            f"unknown version scheme {name!r} (known: {known})" + (f"; {detail}" if detail else "")
        )
    return scheme


def scheme_names() -> list[str]:
    """Names of every available scheme (loads plugins)."""
    return sorted({"docker", *_load_schemes()})


def _normalise_name(image_name: str) -> str:
    # The repository name as reference.py writes it (python -> docker.io/library/python),
    # without importing reference.py and its dataclasses on the warm path.
    name = image_name.partition("@")[0]
    last = name.rfind("/")
    if ":" in name[last + 1 :]:
        name = name[: name.rindex(":")]
    first, _, rest = name.partition("/")
    if not rest:
        return f"docker.io/library/{first}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{name}"
    if first in ("index.docker.io", "registry-1.docker.io"):
        first = "docker.io"
    if first == "docker.io" and "/" not in rest:
        return f"docker.io/library/{rest}"
    return f"{first}/{rest}"


def _glob(pattern: str) -> re.Pattern[str]:
    # fnmatch semantics without fnmatch: * and ? match any characters, / included.
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts))


def scheme_for(image_name: str, config: Mapping[str, str] | None = None) -> VersionScheme:
    """The scheme for an image. ``config`` maps image names or globs over the normalised
    name (``docker.io/library/ubuntu``, ``*/eclipse-temurin``) to scheme names: an exact
    name wins, then the first glob that matches. Then :data:`BUILTIN_IMAGE_SCHEMES` (also
    for mirrors: ``*/library/ubuntu``), then the default. Raises
    :class:`UnknownSchemeError` for a name no plugin provides.
    """
    name = _normalise_name(image_name)
    chosen: str | None = None
    if config:
        for pattern in (name, image_name):
            if pattern in config:
                chosen = config[pattern]
                break
        else:
            for pattern, scheme_name in config.items():
                glob = _glob(pattern)
                if glob.fullmatch(name) or glob.fullmatch(image_name):
                    chosen = scheme_name
                    break
    if chosen is None:
        chosen = BUILTIN_IMAGE_SCHEMES.get(name)
    if chosen is None and "/library/" in name:
        # A mirror of the official image keeps its path (mirror.gcr.io/library/ubuntu,
        # public.ecr.aws/docker/library/debian, a local registry seeded from Docker Hub).
        chosen = BUILTIN_IMAGE_SCHEMES.get("docker.io/library/" + name.rpartition("/")[2])
    if chosen is None:
        return DEFAULT_SCHEME
    return get_scheme(chosen)
