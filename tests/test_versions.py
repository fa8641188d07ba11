"""Tag ordering (portside.versions): the rules, on made-up and on real Docker Hub tags."""

from __future__ import annotations

import random

import pytest

from harness import data
from portside.versions import newest_first_key, parse_tag, sort_tags


@pytest.mark.parametrize(
    ("newer", "older"),
    [
        ("3.10", "3.9"),  # numbers, not text
        ("3.12.1", "3.12"),  # longer is newer (sort -V)
        ("3.12.1", "3.12.0"),
        ("3.13.0", "3.13.0rc1"),  # final after its pre-releases
        ("3.13.0rc10", "3.13.0rc9"),
        ("3.13.0rc1", "3.13.0b4"),
        ("3.13.0b1", "3.13.0a7"),
        ("3.13.0a1", "3.13.0dev2"),
        ("8.3.11", "8.3.11RC2"),  # an upper-case pre-release is a pre-release
        ("8.3.11RC2", "8.3.11RC1"),
        ("7.0.10", "7.0.10-rc1"),  # so is one after the hyphen
        ("7.0.10-rc1", "7.0.10-rc0"),
        ("8u412-b09", "8u412-b08"),
        ("2", "1.99.99"),
        ("v1.2.3", "1.2.2"),  # a leading v is allowed
        ("3.12", "latest"),  # any version before any name
        ("1.0", "bookworm"),
    ],
)
def test_newer_sorts_first(newer: str, older: str) -> None:
    assert sort_tags([older, newer]) == [newer, older]
    assert newest_first_key(newer) < newest_first_key(older)


def test_variants_follow_their_version_plain_first_then_alphabetical() -> None:
    tags = ["3.12-slim", "3.12.1-alpine", "3.12.1", "3.12.1-slim-bookworm", "3.12", "3.11-slim"]
    assert sort_tags(tags) == [
        "3.12.1",
        "3.12.1-alpine",
        "3.12.1-slim-bookworm",
        "3.12",
        "3.12-slim",
        "3.11-slim",
    ]


def test_non_versions_sort_after_versions_alphabetically() -> None:
    tags = ["latest", "edge", "8u412-jdk", "bookworm", "1.0", "20260805", "rc", "deadbeef1"]
    assert sort_tags(tags) == [
        "8u412-jdk",  # Java 8 update 412: release (8, 412), newer than 1.0
        "1.0",
        "20260805",
        "bookworm",
        "deadbeef1",  # looks like a commit: not a version (as in Renovate)
        "edge",
        "latest",
        "rc",
    ]


def test_build_numbers_sort_numerically_after_the_plain_release() -> None:
    tags = ["21.0.5_9-jdk", "21.0.5_11-jdk", "21.0.5", "21.0.6_7-jdk"]
    assert sort_tags(tags) == ["21.0.6_7-jdk", "21.0.5_11-jdk", "21.0.5_9-jdk", "21.0.5"]


@pytest.mark.parametrize(
    ("tag", "numbers", "pre", "variant", "build", "form"),
    [
        ("3.12.1-slim-bookworm", (3, 12, 1), None, "slim-bookworm", None, ""),
        ("3.15.0rc1", (3, 15, 0), ("rc", 1), "", None, ""),
        ("3.15-rc-trixie", (3, 15), ("rc", -1), "trixie", None, ""),  # floating: no number
        ("8.3.11RC2-fpm-bookworm", (8, 3, 11), ("rc", 2), "fpm-bookworm", None, ""),  # php
        ("7.0.10-rc0", (7, 0, 10), ("rc", 0), "", None, ""),  # mongo
        ("6.0.0-beta-2-jdk17", (6, 0, 0), ("beta", 2), "jdk17", None, ""),  # groovy
        ("23-ea-14-nanoserver", (23,), ("ea", 14), "nanoserver", None, ""),  # openjdk
        ("6.0-alpha2", (6, 0), ("alpha", 2), "", None, ""),  # cassandra
        ("3.12-dev", (3, 12), None, "dev", None, ""),  # a variant with build tools
        ("1.2-bookworm", (1, 2), None, "bookworm", None, ""),
        ("1.2-alpine", (1, 2), None, "alpine", None, ""),
        ("1.2-eap", (1, 2), None, "eap", None, ""),
        ("v2.0beta", (2, 0), ("beta", -1), "", None, ""),
        ("13", (13,), None, "", None, ""),
        ("21.0.5_11-jdk-noble", (21, 0, 5), None, "jdk-noble", "11", ""),
        ("8.1.2.4_1", (8, 1, 2, 4), None, "", "1", ""),
        ("8u412-b08-jdk", (8, 412), None, "jdk", "08", "u"),  # b08: the build number
        ("8u504-al2023-jre", (8, 504), None, "al2023-jre", None, "u"),
    ],
)
def test_parse_tag(
    tag: str,
    numbers: tuple[int, ...],
    pre: tuple[str, int] | None,
    variant: str,
    build: str | None,
    form: str,
) -> None:
    parsed = parse_tag(tag)
    assert parsed is not None
    assert (parsed.numbers, parsed.pre, parsed.variant) == (numbers, pre, variant)
    assert (parsed.release, parsed.build, parsed.form) == (numbers, build, form)
    assert parsed.is_prerelease is (pre is not None)
    assert parsed.tag == tag


@pytest.mark.parametrize(
    "tag",
    ["latest", "edge", "20260805", "alpine3.20", "", "8.1u2", "1a2b3c4", "3.0xyz", "bookworm"],
)
def test_not_versions(tag: str) -> None:
    assert parse_tag(tag) is None


def test_sort_key_agrees_with_parsed_key() -> None:
    # TagVersion.key orders oldest to newest; newest_first_key must agree with it.
    tags = [r.tag for r in data.load_current("python")]
    parsed = [p for p in (parse_tag(t) for t in tags) if p is not None]
    by_key = sorted(parsed, key=lambda p: p.key, reverse=True)
    assert [p.key for p in by_key] == [
        parse_tag(t).key  # type: ignore[union-attr]
        for t in sort_tags(p.tag for p in parsed)
    ]


@pytest.mark.parametrize("image", ["python", "node", "debian", "alpine", "nginx", "redis"])
def test_real_tags_newest_version_first(image: str) -> None:
    tags = sorted({r.tag for r in data.load_current(image)})
    ordered = sort_tags(tags)
    assert sorted(ordered) == tags  # a permutation
    # Order is independent of input order.
    shuffled = list(tags)
    random.Random(7).shuffle(shuffled)
    assert sort_tags(shuffled) == ordered
    versions = [parse_tag(t) for t in ordered]
    first_name = next((i for i, v in enumerate(versions) if v is None), len(versions))
    assert all(v is None for v in versions[first_name:]), "names come after every version"
    keys = [v.key for v in versions[:first_name] if v is not None]
    assert keys == sorted(keys, reverse=True), "versions are newest first"


def test_sort_key_agrees_with_parsed_key_on_every_image() -> None:
    # The written-out sort key and TagVersion.key must order every real tag alike.
    for image in data.available():
        tags = {r.tag for r in data.load_current(image)}
        ordered = [p for p in (parse_tag(t) for t in sort_tags(tags)) if p is not None]
        keys = [p.key for p in ordered]
        assert keys == sorted(keys, reverse=True), image


def test_real_tags_examples() -> None:
    python = sort_tags({r.tag for r in data.load_current("python")})
    # 3.15 is in release candidates; the newest final 3.14 comes after them.
    assert python[0].startswith("3.15.0rc")
    assert python.index("3.14") < python.index("3.13") < python.index("3.10")
    assert python[-1] == "windowsservercore-ltsc2025"
    alpine = sort_tags({r.tag for r in data.load_current("alpine")})
    assert alpine[:2] == ["3.24.1", "3.24"]
    assert alpine[-2:] == ["edge", "latest"]
    debian = sort_tags({r.tag for r in data.load_current("debian")})
    assert debian[:4] == ["13.6", "13.6-slim", "13", "13-slim"]
