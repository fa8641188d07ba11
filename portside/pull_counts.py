"""Pull counts: registry-side figures the distribution API does not carry.

A :class:`~portside.contract.PullCountSource` answers for the registries it knows
with a repository's total pulls, or ``None`` when it cannot tell (a private
repository, an API that is down). Sources come from the ``portside_pull_count_sources``
hook, so a plugin can add Harbor's, Quay's or a company registry's; the built-in one
reads Docker Hub's repository API (``GET https://hub.docker.com/v2/namespaces/
{namespace}/repositories/{name}``, field ``pull_count``), anonymously: public
repositories only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from portside.contract import PullCountSource
from portside.plugins import hookimpl
from portside.reference import DOCKER_HUB, Reference

if TYPE_CHECKING:
    import pluggy

DOCKER_HUB_API = "https://hub.docker.com"
_MAX_BODY = 1024 * 1024  # the repository document with its full description is ~100 kB


@dataclass(frozen=True)
class PullCount:
    """What the sources said of one repository."""

    count: int | None = None  # None: no source knows it
    source: str | None = None  # the source that answered
    problem: str | None = None  # why a source that should know did not answer


def parse_docker_hub_repository(document: Any) -> int | None:
    """``pull_count`` of Docker Hub's repository document; None if absent or malformed."""
    if not isinstance(document, dict):
        return None
    count = document.get("pull_count")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        return None
    return count


class DockerHubPullCounts(PullCountSource):
    """Docker Hub's repository API (``hub.docker.com``, not the registry itself)."""

    name = "docker-hub"

    def __init__(self, api: str = DOCKER_HUB_API, *, timeout: float = 10.0) -> None:
        self.api = api.rstrip("/")
        self.timeout = timeout

    def handles(self, repository: Reference) -> bool:
        return repository.registry == DOCKER_HUB

    def url(self, repository: Reference) -> str:
        from urllib.parse import quote

        namespace, _, name = repository.repository.partition("/")
        if not name:  # normalised references always have one; ``library`` for official
            namespace, name = "library", namespace
        return f"{self.api}/v2/namespaces/{quote(namespace)}/repositories/{quote(name, safe='')}"

    async def pull_count(self, repository: Reference) -> int | None:
        import json

        import httpx

        client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
        async with client as http, http.stream("GET", self.url(repository)) as response:
            if response.status_code != 200:
                return None  # private, unknown, or rate limited: not told
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > _MAX_BODY:
                    return None
        try:
            return parse_docker_hub_repository(json.loads(body))
        except ValueError:
            return None


@hookimpl
def portside_pull_count_sources() -> list[PullCountSource]:
    return [DockerHubPullCounts()]


def sources(pm: pluggy.PluginManager | None = None) -> list[PullCountSource]:
    """Every source plugins provide, the first registered first."""
    if pm is None:
        from portside.plugins import get_plugin_manager

        pm = get_plugin_manager()
    # pluggy calls later registrations first; reversed, the first registered comes first.
    return [s for batch in reversed(pm.hook.portside_pull_count_sources()) for s in batch or []]


async def pull_count(repository: Reference, known: list[PullCountSource]) -> PullCount:
    """The first answer of the sources that handle ``repository``'s registry."""
    import httpx

    problem = None
    for source in known:
        if not source.handles(repository):
            continue
        try:
            count = await source.pull_count(repository)
        except httpx.HTTPError as exc:
            problem = f"{source.name}: {type(exc).__name__}"
            continue
        except Exception as exc:  # a plugin's failure is reported, not fatal
            problem = f"{source.name} failed: {type(exc).__name__}: {exc}"
            continue
        if count is not None:
            return PullCount(count, source.name)
    return PullCount(problem=problem)
