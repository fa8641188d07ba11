"""Reading a whole repository: every tag and the digest it points to, concurrently.

What commands that change a repository (``prune``, ``pull-back``) start from; always
asked of the registry (a HEAD per tag), never of the cache.
"""

from __future__ import annotations

import asyncio
from typing import Any

from portside import errors
from portside.reference import Digest, Reference

CONCURRENCY = 16


async def tag_digests(
    client: Any, repository: Reference, *, limit: asyncio.Semaphore | None = None
) -> dict[str, Digest]:
    """Tag -> digest for every tag of ``repository`` (tags deleted meanwhile left out)."""
    limit = limit or asyncio.Semaphore(CONCURRENCY)
    tags = await client.list_tags(repository)

    async def one(tag: str) -> tuple[str, Digest | None]:
        ref = Reference(repository.registry, repository.repository, tag, None)
        try:
            async with limit:
                descriptor = await client.head_manifest(ref)
        except errors.NotFound:  # deleted while we read: not there
            return tag, None
        return tag, descriptor.digest

    pairs = await asyncio.gather(*(one(tag) for tag in tags))
    return {tag: digest for tag, digest in pairs if digest is not None}
