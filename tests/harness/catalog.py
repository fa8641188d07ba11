"""What the session-wide ``registry`` fixture holds, in one place tests can import.

Read-mostly data shaped like Docker Hub's official images: tests compare portside's
answers against ``registry.seeded[repo]`` (a ``seed.SeedResult``) for these repositories.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import data, seed
from .images import Media

if TYPE_CHECKING:
    from .registry import Registry

# (data file under tests/data/registry-tags/current, repository, multi-platform, media)
SESSION_REPOS: tuple[tuple[str, str, bool, Media], ...] = (
    ("python", "library/python", True, "oci"),  # indexes, incl. shared Linux+Windows tags
    ("alpine", "library/alpine", True, "docker"),  # Docker manifest lists
    ("debian", "library/debian", False, "oci"),  # single-platform OCI images
    ("nginx", "library/nginx", False, "docker"),  # single-platform Docker v2 schema 2
)
MANY_TAGS_REPO = "portside-test/many-tags"
MANY_TAGS_COUNT = 2100  # over 10 distinct images, tags 1.0.0 .. 1.20.99 (see seed)


def seed_session_registry(registry: Registry) -> None:
    """Fill ``registry`` with ``SESSION_REPOS`` and the many-tags repository (fast path)."""
    for image, repo, platforms, media in SESSION_REPOS:
        seed.seed_from_tsv(
            registry, repo, data.load_current(image), platforms=platforms, media=media
        )
    seed.seed_many_tags(registry, MANY_TAGS_REPO, MANY_TAGS_COUNT)
