"""portside pin at the library level: what it rewrites, and what it refuses to write."""

from __future__ import annotations

from pathlib import Path

from harness import data, seed
from harness.registry import Registry
from harness.skopeo import Skopeo
from portside.cache import CachedRegistry, CacheStore
from portside.config import PolicyConfig
from portside.pin import plan_pin


async def pin(text: str, tmp_path: Path, update: str | None = None):  # type: ignore[no-untyped-def]
    store = CacheStore(str(tmp_path / f"cache-{len(list(tmp_path.glob('cache-*')))}"))
    async with CachedRegistry(store=store) as cached:
        return await plan_pin(
            text, file="Dockerfile", cached=cached, config=PolicyConfig(), update=update
        )


async def test_pin_keeps_every_other_byte(registry: Registry, tmp_path: Path) -> None:
    host = registry.host
    skopeo = Skopeo.for_registry(registry)
    text = (
        "\ufeff# syntax=docker/dockerfile:1\r\n"
        f"FROM {host}/library/python:3.13 AS build\r\n"
        "RUN echo 'héllo 🐳' \\\r\n"
        "    && true\r\n"
        f"FROM   {host}/library/alpine:3.22\r\n"
        "COPY --from=build /a /b\r\n"
    )
    plan = await pin(text, tmp_path)
    assert plan.problems == []
    assert plan.new_text is not None
    python = skopeo.digest(f"{host}/library/python:3.13")
    alpine = skopeo.digest(f"{host}/library/alpine:3.22")
    expected = text.replace("python:3.13 ", f"python:3.13@{python} ").replace(
        "alpine:3.22\r", f"alpine:3.22@{alpine}\r"
    )
    assert plan.new_text == expected
    assert [c.line for c in plan.changes] == [2, 5]
    # Pinned already: nothing to do.
    again = await pin(plan.new_text, tmp_path)
    assert again.changes == [] and not again.changed


async def test_pin_a_short_tag_that_is_also_part_of_the_host(
    plain_registry: Registry, tmp_path: Path
) -> None:
    # "1" also stands in "127.0.0.1" (and maybe the port): only the tag is rewritten.
    host = plain_registry.host
    pushed = seed.push_image(plain_registry, "app/one", seed.build_image("one-1"), ["1"])
    text = f"FROM {host}/app/one:1\n"
    plan = await pin(text, tmp_path)
    assert plan.problems == []
    assert plan.new_text == f"FROM {host}/app/one:1@{pushed.digest}\n"
    assert Skopeo.for_registry(plain_registry).digest(f"{host}/app/one:1") == str(pushed.digest)


async def test_pin_edits_the_arg_default(registry: Registry, tmp_path: Path) -> None:
    host = registry.host
    # FROM lines only see ARGs declared before the first FROM.
    text = (
        f"ARG BASE={host}/library/debian:bookworm\n"
        "ARG TAG=3.22\n"
        "FROM ${BASE}\n"
        f"FROM {host}/library/alpine:${{TAG}}\n"
    )
    plan = await pin(text, tmp_path)
    assert plan.problems == []
    assert plan.new_text is not None
    lines = plan.new_text.splitlines()
    debian = registry.seeded["library/debian"].digest("bookworm")
    alpine = registry.seeded["library/alpine"].digest("3.22")
    assert lines[0] == f"ARG BASE={host}/library/debian:bookworm@{debian}"
    assert lines[1] == f"ARG TAG=3.22@{alpine}"
    assert lines[2:] == text.splitlines()[2:]


async def test_pin_with_update_moves_within_the_line(
    plain_registry: Registry, tmp_path: Path
) -> None:
    rows = data.load_history("python-since-2025-06")
    result = seed.replay_history(plain_registry, "library/python", rows, until="2025-10-08")
    host = plain_registry.host
    text = f"FROM {host}/library/python:3.13.7-slim-bookworm\n"
    patch = await pin(text, tmp_path, update="patch")
    assert patch.new_text == (
        f"FROM {host}/library/python:3.13.8-slim-bookworm@{result.digest('3.13.8-slim-bookworm')}\n"
    )
    text = f"FROM {host}/library/python:3.13-slim-bookworm\n"
    minor = await pin(text, tmp_path, update="minor")
    assert minor.new_text is not None and ":3.14-slim-bookworm@" in minor.new_text
    stay = await pin(text, tmp_path, update="patch")
    assert stay.new_text is not None and ":3.13-slim-bookworm@" in stay.new_text


async def test_pin_refuses_a_file_it_cannot_fully_understand(
    registry: Registry, tmp_path: Path
) -> None:
    host = registry.host
    text = (
        f"FROM {host}/library/python:3.13\n"
        "ARG UNKNOWN\n"
        "FROM ${UNKNOWN}\n"
        f"FROM {host}/library/python:0.0.0-missing\n"
    )
    plan = await pin(text, tmp_path)
    assert plan.new_text is None and not plan.changed
    assert len(plan.problems) == 2
    assert "line 3" in plan.problems[0] and "no default" in plan.problems[0]
    assert "line 4" in plan.problems[1] and "not found" in plan.problems[1]


async def test_stage_references_and_scratch_are_left_alone(
    registry: Registry, tmp_path: Path
) -> None:
    text = (
        f"FROM {registry.host}/library/alpine:3.22 AS a\nFROM a\nFROM scratch\nCOPY --from=a / /\n"
    )
    plan = await pin(text, tmp_path)
    assert [c.line for c in plan.changes] == [1]
    assert plan.new_text is not None
    assert plan.new_text.splitlines()[1:] == ["FROM a", "FROM scratch", "COPY --from=a / /"]


async def test_pin_follows_a_configured_query(registry: Registry, tmp_path: Path) -> None:
    """[[tool.portside.images]] query = ...: pin resolves the image by that query."""
    from portside.config import parse_config

    host = registry.host
    config = parse_config(
        {
            "images": [
                {
                    "match": f"{host}/library/python",
                    "query": f"{host}/library/python where version ~ 3.12 and variant = slim "
                    "order by version desc limit 1",
                }
            ]
        },
        source="test",
    )
    text = f"FROM {host}/library/python:3.11-slim\n"
    store = CacheStore(str(tmp_path / "cache"))
    async with CachedRegistry(store=store) as cached:
        plan = await plan_pin(text, file="Dockerfile", cached=cached, config=config)
    assert plan.problems == []
    tags = registry.seeded["library/python"].tags
    newest = max(
        (t for t in tags if t.startswith("3.12.") and t.endswith("-slim") and t.count("-") == 1),
        key=lambda t: tuple(int(n) for n in t.split("-")[0].split(".")),
    )
    assert plan.new_text == f"FROM {host}/library/python:{newest}@{tags[newest]}\n"


def test_a_broken_query_in_config_is_a_config_error() -> None:
    import pytest

    from portside.config import parse_config
    from portside.errors import ConfigError

    with pytest.raises(ConfigError) as exc:
        parse_config({"images": [{"match": "x", "query": "python where version >"}]}, source="t")
    assert "images[0].query" in str(exc.value)
    assert "^" in str(exc.value)
