"""Pull counts in ``portside usage``: Docker Hub's repository API, and "unknown" elsewhere.

Tests never reach Docker Hub: its repository API is played by a loopback server serving
a document of the shape Docker Hub serves (``tests/data/docker-hub/repository.json``;
the field names are Hub's, the values made up), and the source is pointed at it through
its constructor. Against the real local registry, which no source knows, usage says
the count is unknown rather than 0.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import seed
from harness.cli import run_portside
from harness.recording import LoopbackServer, RecordedRequest, RecordingHandler
from harness.registry import Registry
from portside import pull_counts
from portside.contract import PullCountSource
from portside.reference import Reference

HUB_DOCUMENT = (Path(__file__).parent / "data" / "docker-hub" / "repository.json").read_bytes()


class HubApi(LoopbackServer):
    """Docker Hub's repository API for the repositories in ``routes`` (path -> body)."""

    def __init__(self) -> None:
        super().__init__()
        self.routes: dict[str, tuple[int, bytes]] = {}

    def handle(self, handler: RecordingHandler, request: RecordedRequest) -> None:
        status, body = self.routes.get(request.path, (404, b'{"message":"object not found"}'))
        handler.send_simple(status, body)


@pytest.fixture
def hub() -> Iterator[HubApi]:
    server = HubApi()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def count(hub: HubApi, name: str) -> int | None:
    source = pull_counts.DockerHubPullCounts(hub.url, timeout=10)
    return asyncio.run(source.pull_count(Reference.parse(name)))


def test_the_hub_repository_document_gives_the_pull_count(hub: HubApi) -> None:
    hub.routes["/v2/namespaces/library/repositories/httpd"] = (200, HUB_DOCUMENT)
    assert count(hub, "httpd") == json.loads(HUB_DOCUMENT)["pull_count"] == 4736102459
    other = json.dumps({"name": "redis", "namespace": "bitnami", "pull_count": 12}).encode()
    hub.routes["/v2/namespaces/bitnami/repositories/redis"] = (200, other)
    assert count(hub, "docker.io/bitnami/redis") == 12
    assert [r.path for r in hub.requests] == [
        "/v2/namespaces/library/repositories/httpd",
        "/v2/namespaces/bitnami/repositories/redis",
    ]


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (404, b'{"message":"object not found"}'),  # private or unknown: Hub says 404
        (429, b'{"message":"too many requests"}'),
        (200, b"<html>maintenance</html>"),
        (200, b'{"name": "httpd"}'),
        (200, b'{"pull_count": "many"}'),
        (200, b'{"pull_count": -1}'),
        (200, b'{"pull_count": true}'),
        (200, b'{"pull_count": 1, "full_description": "' + b"x" * (2 << 20) + b'"}'),
    ],
)
def test_no_count_when_hub_does_not_give_one(hub: HubApi, status: int, body: bytes) -> None:
    hub.routes["/v2/namespaces/library/repositories/httpd"] = (status, body)
    assert count(hub, "httpd") is None


def test_only_sources_that_know_the_registry_are_asked_and_a_failing_one_is_named() -> None:
    class Broken(PullCountSource):
        name = "broken"

        def handles(self, repository: Reference) -> bool:
            return repository.registry == "registry.example"

        async def pull_count(self, repository: Reference) -> int | None:
            raise RuntimeError("boom")

    class Fixed(PullCountSource):
        name = "fixed"

        def handles(self, repository: Reference) -> bool:
            return True

        async def pull_count(self, repository: Reference) -> int | None:
            return 7

    ref = Reference.parse("registry.example/acme/app")
    told = asyncio.run(pull_counts.pull_count(ref, [Broken(), Fixed()]))
    assert told == pull_counts.PullCount(7, "fixed", None)
    alone = asyncio.run(pull_counts.pull_count(ref, [Broken()]))
    assert alone.count is None and alone.problem == "broken failed: RuntimeError: boom"
    elsewhere = asyncio.run(pull_counts.pull_count(Reference.parse("ghcr.io/a/b"), [Broken()]))
    assert elsewhere == pull_counts.PullCount()


def test_the_built_in_source_is_a_plugin_and_knows_only_docker_hub() -> None:
    (hub_source,) = [s for s in pull_counts.sources() if s.name == "docker-hub"]
    assert hub_source.handles(Reference.parse("httpd"))
    assert not hub_source.handles(Reference.parse("ghcr.io/acme/app"))


def test_usage_says_unknown_not_zero_where_the_registry_has_no_counts(
    plain_registry: Registry, tmp_path: Path
) -> None:
    seed.push_image(plain_registry, "acme/app", seed.build_image("app-1"), ["1.0.0"], via="fs")
    env = {"PORTSIDE_STATE_DIR": str(tmp_path / "state")}
    ref = f"{plain_registry.host}/acme/app"
    table = run_portside("usage", ref, "--project", str(tmp_path), cwd=tmp_path, env=env)
    assert table.returncode == 0, table.stderr
    header, whole, line = table.stdout.splitlines()
    assert header.split("\t")[-1] == "PULLS"
    assert whole.split("\t")[-1] == "unknown" and line.split("\t")[-1] == "-"
    assert "pull count" not in table.stderr  # nobody was asked, so nothing failed
    machine = run_portside(
        "usage", ref, "--json", "--project", str(tmp_path), cwd=tmp_path, env=env
    )
    (document,) = json.loads(machine.stdout)
    assert document["repository"]["pulls"] is None
    assert document["repository"]["pulls_from"] is None
