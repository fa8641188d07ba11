"""Version schemes (portside.versions, portside.schemes): hard cases, every real tag, and
replayed history.

The corpus is ``tests/data/registry-tags/`` (Docker Official Images tag data, see its
README): every tag of every image either parses in the scheme Portside would use for
that image or is a non-version, and the non-versions are counted per image so that a
change in what parses shows up here.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys

import pytest

from harness import data
from portside import plugins, versions
from portside.versions import (
    DEFAULT_SCHEME,
    TagVersion,
    UnknownSchemeError,
    VersionScheme,
    get_scheme,
    newer_in_line,
    newest_in_line,
    scheme_for,
    variant_family,
    variant_updates,
)


def parse(tag: str, scheme: VersionScheme = DEFAULT_SCHEME) -> TagVersion:
    parsed = scheme.parse(tag)
    assert parsed is not None, tag
    return parsed


# -- the default scheme: same line, pre-releases, levels -------------------------------

TAGS = [
    "3.9", "3.10", "3.12.1", "3.12.2", "3.12.10", "3.13.0rc9", "3.13.0rc10", "3.13.0",
    "1.2.3-alpine3.20", "1.2.4-alpine3.20", "1.2.4-alpine3.21", "1.2.3-alpine3.24",
    "v1.2.5", "1.2.6", "8u412-al2", "8u504-al2", "8-al2", "8.504-al2",
    "21.0.5_9-jdk-noble", "21.0.5_11-jdk-noble", "21.0.6_7-jdk-noble", "21-jdk-noble",
    "21.0.6-jdk-noble", "3.12-windowsservercore-ltsc2022", "3.12-windowsservercore-ltsc2025",
    "3.13-windowsservercore-ltsc2022", "3.12-nanoserver-ltsc2025", "3.12-windowsservercore",
    "latest", "alpine3.24", "20260805",
]  # fmt: skip


@pytest.mark.parametrize(
    ("current", "newer"),
    [
        ("3.9", ["3.10"]),  # numbers, not text; 3.12.1 has three parts: another line
        ("3.12.1", ["3.13.0", "3.12.10", "3.12.2"]),  # 1.2.6 has three parts but is older
        ("3.13.0rc9", ["3.13.0", "3.13.0rc10"]),  # rc10 > rc9; the final beats both
        ("3.13.0rc10", ["3.13.0"]),
        ("3.13.0", []),  # pre-releases are never offered to a final release
        ("1.2.3-alpine3.20", ["1.2.4-alpine3.20"]),  # the variant stays the variant
        ("v1.2.5", ["3.13.0", "3.12.10", "3.12.2", "3.12.1", "1.2.6"]),  # v ignored (Renovate)
        ("8u412-al2", ["8u504-al2"]),  # Java updates are their own line, not 8.504
        ("8-al2", []),
        ("21.0.5_9-jdk-noble", ["21.0.6_7-jdk-noble", "21.0.5_11-jdk-noble"]),  # _11 > _9
        ("21.0.6-jdk-noble", []),  # without a build number: not the build-numbered line
        ("21-jdk-noble", []),
        ("3.12-windowsservercore-ltsc2022", ["3.13-windowsservercore-ltsc2022"]),
        ("3.12-windowsservercore", []),
        ("latest", []),
        ("alpine3.24", []),
        ("20260805", []),  # a date stamp is not a default-scheme version
        ("not-in-the-list-1", []),
    ],
)
def test_newer_in_line(current: str, newer: list[str]) -> None:
    assert newer_in_line(current, TAGS) == newer
    assert newest_in_line(current, TAGS) == (newer[0] if newer else None)


def test_newer_in_line_ignores_duplicates_and_the_current_tag() -> None:
    assert newer_in_line("1.0", ["1.0", "1.1", "1.1", "v1.0", "1.0"]) == ["1.1"]


def test_pre_release_offered_only_for_the_same_release() -> None:
    tags = ["3.14.0rc1", "3.14.0rc2", "3.14.0", "3.15.0a1", "3.15.0b2"]
    assert newer_in_line("3.14.0rc1", tags) == ["3.14.0", "3.14.0rc2"]
    assert newer_in_line("3.14.0", tags) == []  # 3.15.0a1 is a pre-release of another one
    assert newer_in_line("3.15.0a1", tags) == ["3.15.0b2"]


@pytest.mark.parametrize(
    ("allow", "expected"),
    [
        (("major", "minor", "patch"), ["2.0.0", "1.3.0", "1.2.4"]),
        (("minor", "patch"), ["1.3.0", "1.2.4"]),
        (("patch",), ["1.2.4"]),
        (("major",), ["2.0.0"]),
        ((), []),
    ],
)
def test_allow_levels(allow: tuple[str, ...], expected: list[str]) -> None:
    tags = ["1.2.3", "1.2.4", "1.3.0", "2.0.0"]
    assert newer_in_line("1.2.3", tags, allow_levels=allow) == expected


def test_patch_allows_build_and_prerelease_steps() -> None:
    tags = ["21.0.5_9", "21.0.5_11", "21.0.6_1", "22.0.1_1"]
    assert newer_in_line("21.0.5_9", tags, allow_levels=("patch",)) == ["21.0.6_1", "21.0.5_11"]
    assert newer_in_line("21.0.5_9", tags, allow_levels=("build",)) == ["21.0.5_11"]


@pytest.mark.parametrize(
    ("current", "candidate", "level"),
    [
        ("1.2.3", "2.0.0", "major"),
        ("1.2.3", "1.3.0", "minor"),
        ("1.2.3", "1.2.4", "patch"),
        ("1.2.3.4", "1.2.3.5", "patch"),
        ("3.12", "3.12.1", "patch"),  # padded with zeros
        ("3.9", "3.10", "minor"),
        ("3.13.0rc9", "3.13.0rc10", "prerelease"),
        ("3.13.0rc10", "3.13.0", "prerelease"),
        ("3.13.0rc10", "3.13.1", "patch"),
        ("21.0.5_9", "21.0.5_11", "build"),
        ("8u412", "8u504", "minor"),
        ("1.2.4", "1.2.3", None),  # older
        ("1.2.3", "1.2.3", None),
        ("1.2.3", "v1.2.3", None),  # the same version spelled differently
        ("3.12", "3.12.0", None),
    ],
)
def test_update_level(current: str, candidate: str, level: str | None) -> None:
    assert DEFAULT_SCHEME.update_level(parse(current), parse(candidate)) == level


@pytest.mark.parametrize(
    ("current", "candidate", "compatible"),
    [
        ("1.2.3-alpine", "1.2.4-alpine", True),
        ("1.2.3-alpine", "1.2.4", False),
        ("1.2.3-alpine3.20", "1.2.4-alpine3.21", False),  # a variant update, not the line
        ("1.2", "1.2.4", False),
        ("1.2", "1.3", True),
        ("v1.2", "1.3", True),
        ("8u412", "8.412", False),
        ("21.0.5_11-jdk", "21.0.5-jdk", False),
    ],
)
def test_is_compatible(current: str, candidate: str, compatible: bool) -> None:
    assert DEFAULT_SCHEME.is_compatible(parse(current), parse(candidate)) is compatible


# -- variants that carry their own version ---------------------------------------------


@pytest.mark.parametrize(
    ("variant", "family"),
    [
        ("alpine3.20", ("alpine#.#", (3, 20))),
        ("slim-bookworm", ("slim-<debian>", (12,))),
        ("jdk-noble", ("jdk-<ubuntu>", (24, 4))),
        ("windowsservercore-ltsc2022", ("windowsservercore-<windows>", (20348,))),
        ("windowsservercore-1809", ("windowsservercore-<windows>", (17763,))),
        ("nanoserver-ltsc2025", ("nanoserver-<windows>", (26100,))),
        ("al2023-jre", ("al#-jre", (2023,))),
        ("jre-alpine-3.22", ("jre-alpine-#.#", (3, 22))),
        ("alpine", None),
        ("slim", None),
        ("windowsservercore", None),
        ("", None),
    ],
)
def test_variant_family(variant: str, family: tuple[str, tuple[int, ...]] | None) -> None:
    assert variant_family(variant) == family


@pytest.mark.parametrize(
    ("current", "updates"),
    [
        # Same version on a newer variant first (the smallest change).
        ("1.2.3-alpine3.20", ["1.2.3-alpine3.24", "1.2.4-alpine3.21"]),
        # The Renovate gap: 1.2.4-alpine3.20 is stuck (alpine3.20 no longer built).
        ("1.2.4-alpine3.20", ["1.2.4-alpine3.21"]),
        ("3.12-windowsservercore-ltsc2022", ["3.12-windowsservercore-ltsc2025"]),
        ("3.12-windowsservercore", []),  # floating: no version to move
        ("3.12-nanoserver-ltsc2025", []),
        ("8u412-al2", []),  # 8u504-al2 is the same variant
        ("1.2.4-alpine3.21", []),
        ("latest", []),
    ],
)
def test_variant_updates(current: str, updates: list[str]) -> None:
    assert variant_updates(current, TAGS) == updates


def test_variant_updates_codenames_and_majors() -> None:
    tags = ["3.12-slim-bookworm", "3.12-slim-trixie", "3.13-slim-trixie", "4.0-slim-trixie",
            "3.12-bookworm", "3.12-slim-jammy", "3.11-slim-trixie"]  # fmt: skip
    # Not a new major, not a different distribution, never an older version.
    assert variant_updates("3.12-slim-bookworm", tags) == ["3.12-slim-trixie", "3.13-slim-trixie"]
    assert variant_updates("3.12-slim-buster", tags) == [
        "3.12-slim-trixie",
        "3.12-slim-bookworm",
        "3.13-slim-trixie",
    ]


# -- the plugin schemes -----------------------------------------------------------------


def test_debian_codenames() -> None:
    debian = get_scheme("debian")
    tags = ["bullseye", "bookworm", "trixie", "forky", "sid", "13.6", "13", "bookworm-slim",
            "trixie-slim", "bookworm-20260803", "bookworm-20260901", "trixie-20260803",
            "sid-20260803", "sid-20260901", "buster-backports", "bookworm-backports"]  # fmt: skip
    assert parse("bookworm", debian).release == (12,)
    # forky has no release date yet: its tags exist (testing), it is not offered.
    assert newer_in_line("bullseye", tags, scheme=debian) == ["trixie", "bookworm"]
    assert newer_in_line("forky", tags, scheme=debian) == []
    assert newer_in_line("bookworm-slim", tags, scheme=debian) == ["trixie-slim"]
    assert newer_in_line("bookworm-20260803", tags, scheme=debian) == [
        "trixie-20260803",
        "bookworm-20260901",
    ]
    assert newer_in_line("buster-backports", tags, scheme=debian) == ["bookworm-backports"]
    assert newer_in_line("sid-20260803", tags, scheme=debian) == ["sid-20260901"]
    assert newer_in_line("13", tags, scheme=debian) == []  # numbers stay numbers
    assert debian.parse("sid") is None  # rolling: not a version
    level = debian.update_level(
        parse("bookworm-20260803", debian), parse("bookworm-20260901", debian)
    )
    assert level == "build"
    assert debian.update_level(parse("bookworm", debian), parse("trixie", debian)) == "major"


def test_ubuntu_codenames_and_versions() -> None:
    ubuntu = scheme_for("ubuntu")  # built in: ubuntu's own versions are codenames
    assert ubuntu.name == "ubuntu"
    tags = ["focal", "jammy", "noble", "20.04", "22.04", "24.04", "jammy-20260810",
            "noble-20260810", "resolute-20260811", "resolute-20260811.1", "devel"]  # fmt: skip
    assert parse("jammy", ubuntu).release == (22, 4)
    assert newer_in_line("focal", tags, scheme=ubuntu) == ["noble", "jammy"]
    assert newer_in_line("22.04", tags, scheme=ubuntu) == ["24.04"]
    assert newer_in_line("resolute-20260811", tags, scheme=ubuntu) == ["resolute-20260811.1"]
    assert ubuntu.update_level(parse("jammy", ubuntu), parse("noble", ubuntu)) == "major"
    assert ubuntu.parse("devel") is None


def test_calendar() -> None:
    calendar = get_scheme("calendar")
    tags = ["20260805", "20260815", "tip-20260815", "tip-20260820", "3.24", "3.23",
            "devel-20260817-alpine3.22", "devel-20260817-alpine3.24", "base-20260816.0.574111",
            "base-20260816.0.574200", "20261340"]  # fmt: skip
    assert newer_in_line("20260801", tags, scheme=calendar) == ["20260815", "20260805"]
    assert newer_in_line("tip-20260815", tags, scheme=calendar) == ["tip-20260820"]
    assert newer_in_line("3.22", tags, scheme=calendar) == ["3.24", "3.23"]
    assert newer_in_line("base-20260816.0.574111", tags, scheme=calendar) == [
        "base-20260816.0.574200"
    ]
    assert variant_updates("devel-20260801-alpine3.22", tags, scheme=calendar) == [
        "devel-20260817-alpine3.24"
    ]
    assert calendar.parse("20261340") is None  # no 13th month: not a date
    older, newer = parse("20260805", calendar), parse("20260815", calendar)
    assert calendar.update_level(older, newer) == "patch"  # a snapshot, not a major


def test_prefixed() -> None:
    prefixed = get_scheme("prefixed")
    tags = ["enterprise-7.6.2", "enterprise-8.0.2", "community-8.0.2", "7.6.2", "8.0.2",
            "open-17.0.10.0-jdk-jammy", "open-17.0.20.0-jdk-jammy", "open-17.0.20.0-jdk-noble",
            "python3.13-trixie", "python3.14-trixie", "jdk17", "jdk21", "temurin-8-bookworm",
            "temurin-21-bookworm", "ee-8.1.2.4", "ee-8.1.2.4_1", "ee-8.1.2.4_2"]  # fmt: skip
    assert newer_in_line("enterprise-7.6.2", tags, scheme=prefixed) == ["enterprise-8.0.2"]
    assert newer_in_line("7.6.2", tags, scheme=prefixed) == ["8.0.2"]
    assert newer_in_line("python3.13-trixie", tags, scheme=prefixed) == ["python3.14-trixie"]
    assert newer_in_line("jdk17", tags, scheme=prefixed) == ["jdk21"]
    assert newer_in_line("temurin-8-bookworm", tags, scheme=prefixed) == ["temurin-21-bookworm"]
    assert newer_in_line("ee-8.1.2.4_1", tags, scheme=prefixed) == ["ee-8.1.2.4_2"]
    assert variant_updates("open-17.0.10.0-jdk-jammy", tags, scheme=prefixed) == [
        "open-17.0.20.0-jdk-noble"
    ]
    assert parse("open-17.0.20.0-jdk-jammy", prefixed).form == "open-"
    assert prefixed.parse("latest") is None
    assert prefixed.parse("base-20260816") is None  # a date: calendar's


# -- choosing a scheme ------------------------------------------------------------------


def test_scheme_for_config() -> None:
    config = {"*/eclipse-temurin": "prefixed", "docker.io/library/alpine": "calendar"}
    assert scheme_for("docker.io/library/eclipse-temurin", config).name == "prefixed"
    assert scheme_for("eclipse-temurin", config).name == "prefixed"
    assert scheme_for("alpine", config).name == "calendar"
    assert scheme_for("alpine:3.20", config).name == "calendar"
    assert scheme_for("ghcr.io/acme/alpine", config) is DEFAULT_SCHEME
    assert scheme_for("python") is DEFAULT_SCHEME
    assert scheme_for("debian").name == "debian"
    assert scheme_for("debian", {"*": "default"}) is DEFAULT_SCHEME  # config wins
    # An exact name beats an earlier glob.
    assert scheme_for("ubuntu", {"*": "calendar", "docker.io/library/ubuntu": "docker"}).name == (
        "docker"
    )
    with pytest.raises(UnknownSchemeError, match="nope"):
        scheme_for("python", {"python": "nope"})


def test_default_scheme_never_loads_plugins() -> None:
    # The warm path: the default scheme, even through scheme_for and with a config that
    # names it, must not import pluggy, httpx, typing or dataclasses.
    code = (
        "import sys, portside.versions as v\n"
        "s = v.scheme_for('python', {'*': 'default'})\n"
        "assert v.newer_in_line('3.12-slim', ['3.13-slim'], scheme=s) == ['3.13-slim']\n"
        "v.variant_updates('3.12-alpine3.20', ['3.12-alpine3.24'])\n"
        "v.sort_tags(['1', '2'])\n"
        "heavy = ('pluggy', 'httpx', 'typing', 'dataclasses')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


class _Odd(VersionScheme):
    name = "odd"

    def parse(self, tag: str) -> TagVersion | None:
        return TagVersion(tag, (int(tag),)) if tag.isdigit() and int(tag) % 2 else None


class _GoodPlugin:
    @plugins.hookimpl
    def portside_version_schemes(self) -> list[VersionScheme]:
        return [_Odd()]


class _BrokenPlugin:
    @plugins.hookimpl
    def portside_version_schemes(self) -> list[VersionScheme]:
        raise RuntimeError("boom")


def test_third_party_scheme_and_a_broken_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    pm = plugins.create_plugin_manager(load_entrypoints=False)
    pm.register(_GoodPlugin(), name="good")
    pm.register(_BrokenPlugin(), name="broken")
    monkeypatch.setattr(plugins, "get_plugin_manager", lambda: pm)
    monkeypatch.setattr(versions, "_registry", None)
    odd = scheme_for("acme/thing", {"acme/*": "odd"})
    assert newer_in_line("3", ["2", "4", "5", "7"], scheme=odd) == ["7", "5"]
    assert "odd" in versions.scheme_names() and "debian" in versions.scheme_names()
    with pytest.raises(UnknownSchemeError, match="plugin 'broken' failed"):
        get_scheme("missing")
    monkeypatch.setattr(versions, "_registry", None)  # forget the test's plugins


# -- every real tag ---------------------------------------------------------------------

# Images whose tags put words before the version or use dates: the scheme a user would
# configure for them. Everything else uses the default (debian, ubuntu: built in).
CORPUS_CONFIG = {
    "docker.io/library/alpine": "calendar",  # 20260805 (edge snapshots)
    "docker.io/library/bash": "calendar",  # devel-20260817
    "docker.io/library/archlinux": "calendar",  # base-20260816.0.574111
    "docker.io/library/buildpack-deps": "debian",  # bookworm-curl
    "docker.io/library/neurodebian": "prefixed",  # nd22.04
    "docker.io/library/clojure": "prefixed",  # temurin-21-lein-2.13.0
    "docker.io/library/couchbase": "prefixed",  # enterprise-8.0.2
    "docker.io/library/percona": "prefixed",  # psmdb-8.0.29
    "docker.io/library/aerospike": "prefixed",  # ee-8.1.2.4_1
    "docker.io/library/ibm-semeru-runtimes": "prefixed",  # open-17.0.20.0-jdk
    "docker.io/library/hylang": "prefixed",  # python3.14-trixie
    "docker.io/library/groovy": "prefixed",  # jdk21-noble
    "docker.io/library/jetty": "prefixed",  # jdk21
    "docker.io/library/tomee": "prefixed",  # jre25-...
    "docker.io/library/wordpress": "prefixed",  # cli-2.12.0-php8.2
    "docker.io/library/sapmachine": "prefixed",  # ubuntu-24.04
    "docker.io/library/drupal": "prefixed",  # php8.5-apache
    "docker.io/library/joomla": "prefixed",  # php8.4-apache
    "docker.io/library/alt": "prefixed",  # p10, p11
    "docker.io/library/flink": "prefixed",  # scala_2.12-java21
    "docker.io/library/spark": "prefixed",  # python3-java17
}

# Per image, how many distinct tags are not versions in its scheme. Images not listed
# have none. A change here means a change in what Portside understands: look at it.
NON_VERSIONS = {
    "adminer": 3,
    "almalinux": 2,
    "alpine": 2,
    "alt": 2,
    "amazoncorretto": 1,
    "amazonlinux": 1,
    "api-firewall": 1,
    "arangodb": 1,
    "archlinux": 4,
    "backdrop": 3,
    "bash": 4,
    "bonita": 1,
    "buildpack-deps": 33,
    "busybox": 8,
    "caddy": 12,
    "cassandra": 2,
    "chronograf": 2,
    "cirros": 1,
    "clearlinux": 2,
    "clickhouse": 4,
    "clojure": 15,
    "composer": 1,
    "convertigo": 1,
    "couchbase": 3,
    "couchdb": 1,
    "crate": 1,
    "dart": 6,
    "debian": 18,
    "docker": 7,
    "drupal": 8,
    "eclipse-mosquitto": 3,
    "eggdrop": 3,
    "emqx": 1,
    "erlang": 3,
    "espocrm": 7,
    "fedora": 2,
    "flink": 1,
    "fluentd": 1,
    "friendica": 16,
    "gcc": 2,
    "geonetwork": 1,
    "ghost": 4,
    "groovy": 8,
    "haskell": 6,
    "haxe": 1,
    "hello-world": 5,
    "hitch": 1,
    "httpd": 4,
    "hylang": 8,
    "ibmjava": 4,
    "influxdb": 8,
    "irssi": 4,
    "jetty": 1,
    "joomla": 2,
    "jruby": 1,
    "julia": 12,
    "kapacitor": 2,
    "kong": 2,
    "krakend": 1,
    "lightstreamer": 2,
    "liquibase": 2,
    "mageia": 2,
    "matomo": 4,
    "maven": 5,
    "mediawiki": 7,
    "memcached": 4,
    "monica": 4,
    "mysql": 9,
    "nats": 9,
    "neo4j": 9,
    "neurodebian": 18,
    "nextcloud": 12,
    "nginx": 42,
    "nim": 1,
    "node": 56,
    "odoo": 1,
    "open-liberty": 12,
    "orientdb": 1,
    "perl": 48,
    "photon": 1,
    "phpmyadmin": 4,
    "postfixadmin": 4,
    "pypy": 9,
    "python": 12,
    "r-base": 1,
    "rabbitmq": 4,
    "rakudo-star": 4,
    "redis": 4,
    "redmine": 6,
    "registry": 1,
    "rethinkdb": 2,
    "rocket.chat": 1,
    "ros": 36,
    "sapmachine": 42,
    "satosa": 4,
    "silverpeas": 1,
    "solr": 2,
    "sonarqube": 6,
    "spark": 3,
    "spiped": 2,
    "storm": 1,
    "swift": 15,
    "swipl": 2,
    "teamspeak": 1,
    "telegraf": 2,
    "tomee": 40,
    "ubuntu": 3,
    "varnish": 5,
    "websphere-liberty": 9,
    "wordpress": 5,
    "xwiki": 18,
    "yourls": 4,
    "znc": 2,
    "zookeeper": 1,
}

# A tag token that is a version on its own (13, 3.24, 20260805, 3.15rc1, 21.0.5_11):
# a non-version must have none, or the scheme missed a version the tag carries.
_VERSION_TOKEN = re.compile(r"v?\d+(?:\.\d+)*(?:[a-z]+\d*)?(?:_\d+)?", re.ASCII)


def _classify(image: str) -> tuple[list[str], list[str]]:
    scheme = scheme_for(image, CORPUS_CONFIG)
    tags = sorted({r.tag for r in data.load_current(image)})
    parsed = [t for t in tags if scheme.parse(t) is not None]
    return parsed, [t for t in tags if scheme.parse(t) is None]


def test_every_tag_of_every_image_parses_or_is_a_non_version() -> None:
    images = data.available()
    assert len(images) == 132
    total = versions_seen = 0
    counts: dict[str, int] = {}
    for image in images:
        parsed, names = _classify(image)
        total += len(parsed) + len(names)
        versions_seen += len(parsed)
        if names:
            counts[image] = len(names)
        for tag in names:
            carried = [t for t in tag.split("-") if _VERSION_TOKEN.fullmatch(t)]
            assert not carried, f"{image}:{tag} carries {carried} but did not parse"
        scheme = scheme_for(image, CORPUS_CONFIG)
        for tag in parsed:
            parsed_tag = scheme.parse(tag)
            assert parsed_tag is not None and parsed_tag.tag == tag
            # Every parsed tag has a total order within its line (no exceptions).
            newer_in_line(tag, parsed[:50], scheme=scheme)
    assert counts == NON_VERSIONS
    assert (total, versions_seen) == (7320, 6551)


def test_default_scheme_alone_on_every_tag() -> None:
    # Without any configuration (what a new user gets): still no version-looking token
    # is missed in the first position, and the figures are pinned.
    total = parsed = 0
    for image in data.available():
        for tag in {r.tag for r in data.load_current(image)}:
            total += 1
            parsed += DEFAULT_SCHEME.parse(tag) is not None
    assert (total, parsed) == (7320, 5756)  # alpine's 20260805: a snapshot


@pytest.mark.parametrize(
    ("image", "names"),
    [
        ("python", ["alpine", "alpine3.23", "alpine3.24", "bookworm", "latest", "slim",
                    "slim-bookworm", "slim-trixie", "trixie", "windowsservercore",
                    "windowsservercore-ltsc2022", "windowsservercore-ltsc2025"]),
        ("ubuntu", ["devel", "latest", "rolling"]),
        ("debian", ["experimental", "latest", "oldoldstable", "oldoldstable-slim", "oldstable",
                    "oldstable-backports", "oldstable-slim", "rc-buggy", "sid", "sid-slim",
                    "stable", "stable-backports", "stable-slim", "testing", "testing-backports",
                    "testing-slim", "unstable", "unstable-slim"]),
        ("alpine", ["edge", "latest"]),
        ("eclipse-mosquitto", ["alpine", "latest", "openssl"]),
        ("couchbase", ["community", "enterprise", "latest"]),
        ("registry", ["latest"]),
    ],
)  # fmt: skip
def test_non_versions_of_some_images(image: str, names: list[str]) -> None:
    assert _classify(image)[1] == names


def test_real_lines() -> None:
    python = sorted({r.tag for r in data.load_current("python")})
    assert newest_in_line("3.9-slim-bookworm", python) == "3.14-slim-bookworm"
    assert variant_updates("3.13-slim-bookworm", python)[0] == "3.13-slim-trixie"
    assert variant_updates("3.13-windowsservercore-ltsc2022", python)[0] == (
        "3.13-windowsservercore-ltsc2025"
    )
    corretto = sorted({r.tag for r in data.load_current("amazoncorretto")})
    assert newest_in_line("8u412-al2", corretto) == "8u504-al2"
    assert variant_updates("8u412-al2", corretto) == ["8u504-al2023"]
    debian = sorted({r.tag for r in data.load_current("debian")})
    assert newest_in_line("bullseye-20250101-slim", debian, scheme=scheme_for("debian")) == (
        "trixie-20260803-slim"  # forky is not released
    )


# -- history: the newest in a line never goes backwards ---------------------------------

HISTORIES = [
    ("alpine", "calendar"),
    ("busybox", "docker"),
    ("registry", "docker"),
    ("python-since-2025-06", "docker"),
    ("httpd", "docker"),
    ("mysql", "docker"),
    ("ubuntu", "ubuntu"),
    ("ubuntu", "ubuntu-interim"),
]


@pytest.mark.parametrize(("history", "scheme_name"), HISTORIES)
def test_history_newest_in_line_never_goes_backwards(history: str, scheme_name: str) -> None:
    """Replay the history date by date; for every tag, the newest tag in its line as of
    that date must be at least as new (by version) as it was on the previous date.
    The one allowed exception: the previous newest was deleted from the registry
    (ubuntu pulled hirsute-20210224 in 2021, so hirsute-20210119 was newest again)."""
    scheme = get_scheme(scheme_name)
    state: dict[str, str] = {}
    newest: dict[str, TagVersion] = {}
    moved = backwards_after_removal = 0
    for _, rows in itertools.groupby(data.load_history(history), key=lambda r: r.date):
        for row in rows:
            if row.build is None:
                state.pop(row.tag, None)
            else:
                state[row.tag] = row.build
        tags = list(state)
        for tag in list(newest):
            if tag not in state:
                del newest[tag]
        for tag in tags:
            best = scheme.parse(newest_in_line(tag, tags, scheme=scheme) or tag)
            if best is None:
                continue
            before = newest.get(tag)
            if before is not None and before.tag != best.tag:
                moved += 1
                if before.key > best.key:
                    assert before.tag not in state, f"{tag}: {before.tag} -> {best.tag}"
                    backwards_after_removal += 1
            newest[tag] = best
    assert moved > 0, "the history moved no line forward: the test would prove nothing"
    # LTS lines never see hirsute (an interim); with interims offered, five lines did.
    expected = {"ubuntu": 1, "ubuntu-interim": 5}.get(scheme_name, 0)
    assert backwards_after_removal == expected


# -- the kinds Renovate compared badly on (issue 16), on real tags ----------------------


def _tags_on(image: str, day: str) -> list[str]:
    return list(data.state_at(data.load_history(image), day))


def test_ubuntu_lts_and_release_dates(monkeypatch: pytest.MonkeyPatch) -> None:
    from portside import codenames

    tags = _tags_on("ubuntu", "2024-04-01")  # noble (24.04) tagged, not yet released
    assert {"noble", "24.04", "jammy", "22.04", "mantic", "23.10"} <= set(tags)
    ubuntu = scheme_for("ubuntu")
    monkeypatch.setattr(codenames, "today", lambda: "2024-04-01")
    assert newer_in_line("jammy", tags, scheme=ubuntu) == []  # mantic is interim
    assert newer_in_line("20.04", tags, scheme=ubuntu) == ["22.04"]
    assert newer_in_line("mantic", tags, scheme=ubuntu) == []  # noble: not out yet
    assert newer_in_line("noble", tags, scheme=ubuntu) == []
    interim = get_scheme("ubuntu-interim")
    assert newer_in_line("jammy", tags, scheme=interim) == ["mantic"]
    monkeypatch.setattr(codenames, "today", lambda: "2024-04-25")
    assert newer_in_line("jammy", tags, scheme=ubuntu) == ["noble"]
    assert newer_in_line("mantic", tags, scheme=ubuntu) == ["noble"]  # interim: any newer
    assert newer_in_line("22.04", tags, scheme=ubuntu) == ["24.04"]


def test_dated_snapshots_move_to_the_newest_of_their_release(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from portside import codenames

    monkeypatch.setattr(codenames, "today", lambda: "2024-06-01")
    tags = _tags_on("ubuntu", "2024-06-01")
    ubuntu = scheme_for("ubuntu")
    # jammy-20240530 is a snapshot the registry has dropped by now; its line still moves.
    assert versions.proposals("jammy-20240212", tags, scheme=ubuntu) == [
        versions.Proposal("jammy-20240427", "build"),
        versions.Proposal("noble-20240429", "major"),
    ]
    assert versions.proposals("noble-20240423", tags, scheme=ubuntu) == [
        versions.Proposal("noble-20240429", "build")
    ]
    debian = scheme_for("debian")
    tags = _tags_on("debian-since-2024-03", "2025-06-01")
    monkeypatch.setattr(codenames, "today", lambda: "2025-06-01")
    assert "trixie-20250520" in tags  # trixie is tagged, not released (2025-08-09)
    assert versions.proposals("bookworm-20240722", tags, scheme=debian) == [
        versions.Proposal("bookworm-20250520", "build")
    ]
    assert versions.proposals("bookworm-20240722-slim", tags, scheme=debian) == [
        versions.Proposal("bookworm-20250520-slim", "build")
    ]
    # Suite aliases are not versions: never moved, never offered to anyone.
    for alias in ("stable", "oldstable", "testing", "stable-slim"):
        assert alias in tags and newer_in_line(alias, tags, scheme=debian) == []
    assert all(
        not t.startswith(("stable", "testing", "oldstable"))
        for t in newer_in_line("bullseye", tags, scheme=debian)
    )


def test_pre_releases_after_a_hyphen_or_in_upper_case() -> None:
    mongo = _tags_on("mongo-2024-03-to-06", "2024-06-01")
    assert "7.0.10-rc0" in _tags_on("mongo-2024-03-to-06", "2024-05-10")
    assert "8.0.0-rc6" in mongo and "7.0.10-rc0" not in mongo  # a gone rc still moves on
    # The rc of 7.0.10 moves to 7.0.10 and newer finals, never to 8.0.10-rc0.
    newer = newer_in_line("7.0.10-rc0", mongo)
    assert newer and all(parse(t).pre is None for t in newer), newer
    assert newer[0] == "7.0.11"
    openjdk = _tags_on("openjdk-22-to-25-2024-03-to-06", "2024-06-01")
    assert "23-ea-14-nanoserver" in _tags_on("openjdk-22-to-25-2024-03-to-06", "2024-03-20")
    newer = newer_in_line("23-ea-14-nanoserver", openjdk)
    # Its own release only: the newest early-access build, and 23 itself (openjdk tags
    # the 23 line's newest build 23-nanoserver); never 24-ea-* or 25-ea-14-nanoserver.
    assert newer[:2] == ["23-nanoserver", "23-ea-25-nanoserver"]
    assert all(t.startswith("23-") and t.endswith("-nanoserver") for t in newer)
    temurin_like = ["8u392-b08-jre", "8u412-b08-jre", "8u452-b09-jre", "8u452-jre"]
    assert newer_in_line("8u392-b08-jre", temurin_like) == ["8u452-b09-jre", "8u412-b08-jre"]
    php = ["8.3.11RC2-fpm-bookworm", "8.3.11-fpm-bookworm", "8.3.12-fpm-bookworm",
           "8.4.7-fpm-bookworm", "8.4.0RC1-fpm-bookworm", "8.3.11RC3-fpm-bookworm"]  # fmt: skip
    assert versions.proposals("8.3.11RC2-fpm-bookworm", php) == [
        versions.Proposal("8.4.7-fpm-bookworm", "minor"),
    ]
    assert versions.proposals("8.3.11RC2-fpm-bookworm", php, allow_levels=("patch",)) == [
        versions.Proposal("8.3.12-fpm-bookworm", "patch"),
    ]
    assert newer_in_line("8.3.11RC2-fpm-bookworm", php) == [
        "8.4.7-fpm-bookworm", "8.3.12-fpm-bookworm", "8.3.11-fpm-bookworm",
        "8.3.11RC3-fpm-bookworm",
    ]  # fmt: skip


def test_date_only_tags_are_snapshots() -> None:
    alpine = _tags_on("alpine", "2025-06-01")
    assert "20250108" in alpine and "3.22.0" in alpine
    # The newest snapshot, however far (alpine keeps one), never a version.
    assert versions.proposals("20240329", alpine) == [versions.Proposal("20250108", "patch")]
    assert versions.proposals("3.21.2", alpine) == [versions.Proposal("3.22.0", "minor")]


def test_two_proposals_newest_in_major_and_newest_overall() -> None:
    mysql = _tags_on("mysql", "2025-06-01")
    assert versions.proposals("8.0.36", mysql) == [
        versions.Proposal("8.4.5", "minor"),
        versions.Proposal("9.3.0", "major"),
    ]
    assert versions.proposals("8.0.36", mysql, allow_levels=("patch",)) == [
        versions.Proposal("8.0.42", "patch")
    ]
    assert versions.proposals("8.0.36-bookworm", mysql) == [
        versions.Proposal("8.0.42-bookworm", "patch")  # 8.4 has no bookworm variant
    ]
    assert versions.proposals("9.3.0", mysql) == []


def test_a_floating_pre_release_moves_only_to_the_final_release() -> None:
    # bash's 5.3-rc, 5.3-alpha: the channel's own moving tags (Renovate agrees).
    before = ["5.3-alpha", "5.3-beta", "5.3-rc", "5.3-rc1", "5.3-rc2", "5.2.37", "5.2"]
    assert newer_in_line("5.3-rc", before) == []
    assert newer_in_line("5.3-alpha", before) == []
    assert newer_in_line("5.3-rc1", before) == ["5.3-rc2"]  # never to the floating 5.3-rc
    after = [*before, "5.3", "5.3.0"]
    assert newer_in_line("5.3-rc", after) == ["5.3"]
    assert newer_in_line("5.3-rc1", after) == ["5.3", "5.3-rc2"]
