"""Findings against the real registry, including one replayed through real history:
the same Dockerfile is clean on one date and stale, moved or missing on a later one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness import data, seed
from harness.proxy import FaultProxy
from harness.registry import Registry
from portside.cache import CachedRegistry, CacheStore
from portside.config import ImageRule, PolicyConfig
from portside.dockerfile import parse
from portside.policy import Finding, apply_edits, check_document, meets
from portside.registry.transport import ClientOptions

FAST = ClientOptions(max_retries=1, backoff_base=0.01, backoff_cap=0.02, timeout=5)


def cached(tmp_path: Path) -> CachedRegistry:
    """A cache of its own each time: every check sees the registry as it is now."""
    store_dir = tmp_path / f"cache-{len(list(tmp_path.glob('cache-*')))}"
    return CachedRegistry(store=CacheStore(str(store_dir)), options=FAST)


async def check(
    text: str, tmp_path: Path, config: PolicyConfig | None = None, *, remote: bool = True
) -> list[Finding]:
    if not remote:
        return await check_document(
            parse(text), file="Dockerfile", text=text, config=config or PolicyConfig(), cached=None
        )
    async with cached(tmp_path) as registry:
        return await check_document(
            parse(text),
            file="Dockerfile",
            text=text,
            config=config or PolicyConfig(),
            cached=registry,
        )


def kinds(findings: list[Finding]) -> list[tuple[int, str]]:
    return [(f.range.start.line + 1, f.kind) for f in findings]


# -- local findings ----------------------------------------------------------------------


async def test_local_findings_need_no_registry(tmp_path: Path) -> None:
    text = """\
# syntax=docker/dockerfile:1
FROM python AS build
FROM python:latest
FROM Python:3.12
ARG BASE
FROM ${BASE}
FROM build
FROM scratch
COPY --from=build /a /b
FROM alpine:3.20
"""
    findings = await check(text, tmp_path, remote=False)
    assert kinds(findings) == [
        (2, "latest"),
        (3, "latest"),
        (4, "invalid-reference"),
        (6, "unresolved"),
        (10, "unpinned"),
    ]
    latest = findings[0]
    assert latest.image == "python"
    assert latest.severity == "warning"
    assert "no tag" in latest.message
    assert "lowercase" in findings[2].message
    assert findings[4].severity == "info"
    assert findings[4].to_json()["line"] == 10
    assert findings[4].to_json()["column"] == 6


async def test_unclosed_substitution_is_a_syntax_error_not_unresolved(tmp_path: Path) -> None:
    text = "ARG PY=3.12\nFROM python:${PY\n"
    findings = await check(text, tmp_path, remote=False)
    assert kinds(findings) == [(2, "invalid-reference")]  # not "unresolved"
    assert findings[0].severity == "error"
    assert findings[0].message == parse(text).problems[0].message
    assert "BuildKit rejects" in findings[0].message


async def test_ignore_comments_and_config_rules(tmp_path: Path) -> None:
    text = """\
# portside: ignore
FROM python:latest
# portside: ignore=unpinned
# (the ignore comment may sit above other comments)
FROM alpine:3.20
FROM evil.example/x/y:1
FROM debian:12
"""
    config = PolicyConfig(
        allowed_registries=("docker.io",),
        require_digest=True,
        images=(ImageRule(match="debian", ignore=frozenset({"unpinned"})),),
    )
    findings = await check(text, tmp_path, config, remote=False)
    assert kinds(findings) == [(6, "disallowed-registry")]
    assert findings[0].severity == "error"
    findings = await check("FROM alpine:3.20\n", tmp_path, config, remote=False)
    assert [(f.kind, f.severity) for f in findings] == [("unpinned", "warning")]


# -- a registry moving through time -----------------------------------------------------


async def test_history_makes_images_stale_and_moves_tags(
    plain_registry: Registry, tmp_path: Path
) -> None:
    rows = data.load_history("python-since-2025-06")
    before = seed.replay_history(plain_registry, "library/python", rows, until="2025-08-12")
    host = plain_registry.host
    pinned = before.digest("3.13-slim-bookworm")
    text = f"""\
ARG PY=3.13-slim-bookworm
FROM {host}/library/python:${{PY}} AS base
RUN echo hi

FROM {host}/library/python:3.13-slim-bookworm@{pinned}
COPY --from=base /a /b
"""
    findings = await check(text, tmp_path)
    # Current then: only unpinned, and trixie (out since 2025-08-09) as a newer variant.
    assert kinds(findings) == [(2, "unpinned"), (2, "variant-update"), (5, "variant-update")]
    assert findings[1].suggestion is not None
    assert findings[1].suggestion.endswith(":3.13-slim-trixie")

    after = seed.replay_history(plain_registry, "library/python", rows, until="2025-10-08")
    findings = await check(text, tmp_path)
    assert sorted(kinds(findings)) == [
        (2, "stale"),
        (2, "unpinned"),
        (2, "variant-update"),
        (5, "stale"),
        (5, "tag-moved"),
        (5, "variant-update"),
    ]
    found = {(f.range.start.line + 1, f.kind): f for f in findings}
    stale = found[2, "stale"]
    assert stale.level == "minor"
    assert stale.suggestion is not None and stale.suggestion.endswith(":3.14-slim-bookworm")
    # The fix edits the ARG default, not the FROM line.
    assert stale.edit is not None and stale.edit.range.start.line == 0
    moved = found[5, "tag-moved"]
    new_digest = after.digest("3.13-slim-bookworm")
    assert new_digest != pinned
    assert moved.suggestion is not None and moved.suggestion.endswith(new_digest)
    assert moved.severity == "warning"
    # The pinned stale image's suggestion stays pinned, to the new tag's digest.
    assert found[5, "stale"].suggestion is not None
    assert found[5, "stale"].suggestion.endswith(
        f":3.14-slim-bookworm@{after.digest('3.14-slim-bookworm')}"
    )

    fixed = apply_edits(text, [stale.edit, moved.edit])  # type: ignore[list-item]
    assert fixed.splitlines()[0] == "ARG PY=3.14-slim-bookworm"
    assert fixed.splitlines()[4].endswith(f"python:3.13-slim-bookworm@{new_digest}")
    assert fixed.splitlines()[1:4] == text.splitlines()[1:4]
    refixed = await check(fixed, tmp_path)
    assert "tag-moved" not in {f.kind for f in refixed}
    assert (2, "stale") not in kinds(refixed)


async def test_missing_repository_tag_and_digest(registry: Registry, tmp_path: Path) -> None:
    host = registry.host
    zero = "sha256:" + "0" * 64
    text = f"""\
FROM {host}/library/nope:1.0
FROM {host}/library/python:0.0.1-nope
FROM {host}/library/python@{zero}
"""
    findings = [f for f in await check(text, tmp_path) if f.kind != "unpinned"]
    assert kinds(findings) == [(1, "not-found"), (2, "not-found"), (3, "not-found")]
    assert "library/nope" in findings[0].message
    assert "0.0.1-nope" in findings[1].message
    assert all(f.severity == "error" for f in findings)


async def test_pinned_digest_that_does_not_exist_is_not_found_not_moved(
    registry: Registry, tmp_path: Path
) -> None:
    host = registry.host
    zero = "sha256:" + "0" * 64
    real = registry.seeded["library/python"].digest("3.13")
    text = f"FROM {host}/library/python:3.13@{zero}\nFROM {host}/library/python:3.13@{real}\n"
    findings = await check(text, tmp_path)
    assert [(line, kind) for line, kind in kinds(findings) if line == 1] == [(1, "not-found")]
    assert findings[0].severity == "error"
    assert "sha256:000000000000" in findings[0].message
    assert findings[0].edit is None  # nothing offered from a digest that is not there
    assert (2, "tag-moved") not in kinds(findings)  # the real pin is where the tag points


async def test_platform_missing(registry: Registry, tmp_path: Path) -> None:
    host = registry.host
    text = f"""\
FROM --platform=linux/arm64 {host}/library/python:3.13 AS ok
FROM --platform=plan9/mips {host}/library/python:3.13 AS bad
"""
    findings = [f for f in await check(text, tmp_path) if f.kind == "platform-missing"]
    assert kinds(findings) == [(2, "platform-missing")]
    assert "plan9/mips" in findings[0].message
    assert "linux/amd64" in findings[0].message


async def test_variant_update(plain_registry: Registry, tmp_path: Path) -> None:
    for i, tag in enumerate(["1.2.3-alpine3.20", "1.2.3-alpine3.22", "1.2.4-alpine3.20"]):
        seed.push_image(plain_registry, "acme/tool", seed.build_image(f"tool-{i}"), [tag], via="fs")
    text = f"FROM {plain_registry.host}/acme/tool:1.2.3-alpine3.20\n"
    findings = await check(text, tmp_path)
    by_kind = {f.kind: f for f in findings}
    assert by_kind["stale"].suggestion is not None
    assert by_kind["stale"].suggestion.endswith(":1.2.4-alpine3.20")
    assert by_kind["stale"].level == "patch"
    assert by_kind["variant-update"].suggestion is not None
    assert by_kind["variant-update"].suggestion.endswith(":1.2.3-alpine3.22")
    assert by_kind["variant-update"].message.endswith(
        "1.2.3-alpine3.22: the same version on a newer variant"
    )


async def test_variant_update_to_a_newer_version_says_so(
    plain_registry: Registry, tmp_path: Path
) -> None:
    # postgres:16.1-alpine3.19 when 16.1 was never built on alpine3.22 but 16.9 was.
    for i, tag in enumerate(["16.1-alpine3.19", "16.9-alpine3.19", "16.9-alpine3.22"]):
        seed.push_image(plain_registry, "acme/pg", seed.build_image(f"pg-{i}"), [tag], via="fs")
    text = f"FROM {plain_registry.host}/acme/pg:16.1-alpine3.19\n"
    variant = next(f for f in await check(text, tmp_path) if f.kind == "variant-update")
    assert variant.message.endswith("16.9-alpine3.22: a newer version on a newer variant")
    assert "same version" not in variant.message


async def test_unreachable_is_never_not_found(tmp_path: Path) -> None:
    findings = await check("FROM 127.0.0.1:1/library/python:3.12\n", tmp_path)
    assert kinds(findings) == [(1, "unpinned"), (1, "unreachable")]
    assert findings[1].severity == "info"
    assert "cannot connect" in findings[1].message


async def test_rate_limited_host_is_reported_and_paused(
    registry: Registry, proxy_factory: Callable[..., FaultProxy], tmp_path: Path
) -> None:
    proxy = proxy_factory(registry)
    proxy.fail(
        "GET",
        r"/tags/list$",
        429,
        times=None,
        retry_after=3600,
        body=b'{"errors":[{"code":"TOOMANYREQUESTS",'
        b'"message":"You have reached your pull rate limit."}]}',
    )
    text = "".join(
        f"FROM {proxy.host}/library/{name}:1\n" for name in ("python", "alpine", "debian")
    )
    async with cached(tmp_path) as registry_cache:
        findings = await check_document(
            parse(text), file="Dockerfile", text=text, config=PolicyConfig(), cached=registry_cache
        )
        unreachable = [f for f in findings if f.kind == "unreachable"]
        assert len(unreachable) == 3
        assert all("pull rate limit" in f.message for f in unreachable)
        asked = len(proxy.log.matching("GET", r"/tags/list$"))
        assert asked <= 3
        # The host is paused: checking again sends nothing.
        again = await check_document(
            parse(text), file="Dockerfile", text=text, config=PolicyConfig(), cached=registry_cache
        )
    assert len([f for f in again if f.kind == "unreachable"]) == 3
    assert len(proxy.log.matching("GET", r"/tags/list$")) == asked


async def test_distinct_images_are_checked_concurrently(
    registry: Registry, proxy_factory: Callable[..., FaultProxy], tmp_path: Path
) -> None:
    proxy = proxy_factory(registry)
    proxy.delay("GET", r"/tags/list$", 0.8)
    repos = ["library/python", "library/alpine", "library/debian", "library/nginx"]
    text = "".join(f"FROM {proxy.host}/{repo}:1\n" for repo in repos)
    await check(text, tmp_path)
    arrivals = sorted(r.when for r in proxy.log.matching("GET", r"/tags/list$"))
    assert len(arrivals) == len(repos)
    # All four were asked while the first was still being answered.
    assert arrivals[-1] - arrivals[0] < 0.8


def test_meets_severity_or_kind() -> None:
    from portside.dockerfile import Position, Range

    finding = Finding("f", Range(Position(0, 0), Position(0, 1)), "x", "stale", "info", "m")
    assert meets(finding, "info") and meets(finding, "hint") and not meets(finding, "warning")
    assert meets(finding, "stale") and not meets(finding, "unpinned")


@pytest.mark.parametrize("junk", ["", "\x00\x01binary", "FROM", "FROM --platform=", "FROM ${"])
async def test_junk_never_raises(junk: str, tmp_path: Path) -> None:
    await check(junk, tmp_path, remote=False)
