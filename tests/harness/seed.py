"""Put deterministic images into a registry: the public seeding helpers.

Two ways in: over HTTP with the harness's own pusher (``via="http"``, the real push
protocol) or straight into the storage directory (``via="fs"``, for thousands of tags in
well under a second). Both give the same digests for the same inputs. Every helper
returns structured results, and records them in ``registry.seeded[repo]``, so client tests
can compare what portside reports against what was put in.

Tag data rows come from ``data.py`` (one distinct image per ``build``; tags with the same
build share a digest; the architectures column drives the index).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from .data import HistoryRow, TagRow, by_build, first_seen, state_at
from .images import (
    ARCHITECTURES,
    DEFAULT_CREATED,
    Artifact,
    Blob,
    Image,
    Index,
    Media,
    Platform,
    build_artifact,
    build_image,
    build_index,
    make_layer,
    merge_indexes,
    platform_for,
    sha256_digest,
)
from .pusher import HttpPusher, PushError
from .storage import FsStorage

if TYPE_CHECKING:
    from .registry import Registry

Via = Literal["http", "fs"]

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_CREATED",
    "Artifact",
    "Blob",
    "FsStorage",
    "HttpPusher",
    "Image",
    "Index",
    "PushError",
    "PushedImage",
    "SeedResult",
    "build_artifact",
    "build_image",
    "build_index",
    "make_layer",
    "merge_indexes",
    "platform_digest",
    "platform_for",
    "push_image",
    "replay_history",
    "seed_from_tsv",
    "seed_many_tags",
    "sha256_digest",
]


@dataclass
class PushedImage:
    """One artifact as it now stands in a repository."""

    repo: str
    build: str
    tags: list[str]
    digest: str  # what the tags point at: the index digest when multi-platform
    media_type: str
    index_digest: str | None
    platform_digests: dict[str, str]  # "linux/arm64/v8" -> child manifest digest (first)
    children: list[tuple[str, str]]  # (platform key, digest) of every child, in order
    config_digests: dict[str, str]  # "linux/arm64/v8" -> config blob digest
    config_digest: str  # of the single image, or of linux/amd64 (else the first child)
    created: str
    artifact: Artifact

    @classmethod
    def of(cls, repo: str, artifact: Artifact, tags: Iterable[str]) -> PushedImage:
        images = artifact.children if isinstance(artifact, Index) else (artifact,)
        # First wins: a shared tag can hold two windows/amd64 children (ltsc2022/2025).
        platform_digests: dict[str, str] = {}
        config_digests: dict[str, str] = {}
        for i in images:
            platform_digests.setdefault(i.platform.key, i.digest)
            config_digests.setdefault(i.platform.key, i.config.digest)
        main = config_digests.get("linux/amd64", images[0].config.digest)
        return cls(
            repo=repo,
            build=artifact.build,
            tags=list(tags),
            digest=artifact.digest,
            media_type=artifact.media_type,
            index_digest=artifact.digest if isinstance(artifact, Index) else None,
            platform_digests=platform_digests,
            children=[(i.platform.key, i.digest) for i in images],
            config_digests=config_digests,
            config_digest=main,
            created=artifact.created,
            artifact=artifact,
        )


@dataclass
class SeedResult:
    """What a repository holds after seeding."""

    repo: str
    tags: dict[str, str] = field(default_factory=dict)  # tag -> digest
    images: dict[str, PushedImage] = field(default_factory=dict)  # build -> image
    removed_tags: list[str] = field(default_factory=list)  # replay_history only

    def digest(self, tag: str) -> str:
        return self.tags[tag]

    def image(self, tag: str) -> PushedImage:
        """The image a tag points at."""
        digest = self.tags[tag]
        return next(i for i in self.images.values() if i.digest == digest)

    def add(self, pushed: PushedImage) -> None:
        self.images[pushed.build] = pushed
        for tag in pushed.tags:
            self.tags[tag] = pushed.digest


def _store(
    registry: Registry,
    repo: str,
    artifact: Artifact,
    tags: Sequence[str],
    via: Via,
    pusher: HttpPusher | None,
) -> None:
    if via == "fs":
        FsStorage(registry.root).write(repo, artifact, tags)
        return
    if via != "http":
        raise ValueError(f"via must be 'http' or 'fs', not {via!r}")
    if pusher is not None:
        pusher.push(repo, artifact, tags)
        return
    with HttpPusher.for_registry(registry) as own:
        own.push(repo, artifact, tags)


def push_image(
    registry: Registry,
    repo: str,
    artifact: Artifact,
    tags: Sequence[str] = (),
    *,
    via: Via = "http",
    pusher: HttpPusher | None = None,
) -> PushedImage:
    """Push one artifact (and tag it); returns its digests. Default: over HTTP."""
    _store(registry, repo, artifact, tags, via, pusher)
    pushed = PushedImage.of(repo, artifact, tags)
    registry.seeded.setdefault(repo, SeedResult(repo)).add(pushed)
    return pushed


def _created_for(build: str, created: str | Mapping[str, str] | Callable[[str], str] | None) -> str:
    if created is None:
        return DEFAULT_CREATED
    if isinstance(created, str):
        return created
    if callable(created):
        return created(build)
    value = created.get(build, DEFAULT_CREATED)
    # Dates from the history files become midnight UTC timestamps.
    return f"{value}T00:00:00Z" if len(value) == 10 else value


def seed_from_tsv(
    registry: Registry,
    repo: str,
    rows: Iterable[TagRow],
    *,
    platforms: bool = True,
    media: Media = "oci",
    via: Via = "fs",
    created: str | Mapping[str, str] | Callable[[str], str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> SeedResult:
    """One image per build, tagged with every tag of that build.

    ``platforms=True`` makes an index over the row's architectures (of the first row of
    the build); ``False`` a single image (amd64 if listed). A tag listed under several
    builds (a shared tag such as python's ``3``: Linux plus Windows builds) points at an
    index merging those builds' children (``images["b1+b2+b3"]``), or without platforms
    at its first build's image. ``created`` is one timestamp,
    a build -> date/timestamp mapping (e.g. ``data.first_seen(history)``) or a function.
    """
    rows = list(rows)
    artifacts: dict[str, Artifact] = {
        build: build_artifact(
            build,
            group[0].architectures,
            platforms=platforms,
            media=media,
            created=_created_for(build, created),
            labels=labels,
        )
        for build, group in by_build(rows).items()
    }
    tag_builds: dict[str, list[str]] = {}
    for row in rows:
        builds = tag_builds.setdefault(row.tag, [])
        if row.build not in builds:
            builds.append(row.build)
    # What to store: every build (tagged or not), plus one merged index per set of
    # builds that share tags. Without platforms a shared tag is its first build's image.
    plan: dict[str, tuple[Artifact, list[str]]] = {b: (a, []) for b, a in artifacts.items()}
    for tag, builds in tag_builds.items():
        key = builds[0] if len(builds) == 1 or not platforms else "+".join(builds)
        if key not in plan:
            merged = merge_indexes(
                key,
                [a for a in (artifacts[b] for b in builds) if isinstance(a, Index)],
                media=media,
            )
            plan[key] = (merged, [])
        plan[key][1].append(tag)
    result = SeedResult(repo)
    pusher = HttpPusher.for_registry(registry) if via == "http" else None
    try:
        for artifact, tags in plan.values():
            _store(registry, repo, artifact, tags, via, pusher)
            result.add(PushedImage.of(repo, artifact, tags))
    finally:
        if pusher is not None:
            pusher.close()
    registry.seeded[repo] = result
    return result


def _default_tag(i: int) -> str:
    return f"1.{i // 100}.{i % 100}"


def seed_many_tags(
    registry: Registry,
    repo: str,
    n: int,
    *,
    distinct: int | None = 10,
    media: Media = "oci",
    via: Via = "fs",
    tag_format: Callable[[int], str] = _default_tag,
) -> SeedResult:
    """``n`` tags (``1.0.0`` .. by default) over ``distinct`` images (None: one per tag).

    Tag ``i`` points at image ``i % distinct``; image ``k`` was created ``k`` hours after
    2024-01-01 so "newest" by creation date is well defined.
    """
    count = n if distinct is None else max(1, min(distinct, n))
    base = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    artifacts = [
        build_image(
            f"many-{k:05d}",
            media=media,
            created=(base + dt.timedelta(hours=k)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        for k in range(count)
    ]
    tags_by_image: list[list[str]] = [[] for _ in range(count)]
    for i in range(n):
        tags_by_image[i % count].append(tag_format(i))
    result = SeedResult(repo)
    pusher = HttpPusher.for_registry(registry) if via == "http" else None
    try:
        for artifact, tags in zip(artifacts, tags_by_image, strict=True):
            _store(registry, repo, artifact, tags, via, pusher)
            result.add(PushedImage.of(repo, artifact, tags))
    finally:
        if pusher is not None:
            pusher.close()
    registry.seeded[repo] = result
    return result


def replay_history(
    registry: Registry,
    repo: str,
    history_rows: Sequence[HistoryRow],
    until: str | dt.date | None = None,
    *,
    platforms: bool = False,
    architectures: Mapping[str, Sequence[str]] | Sequence[str] = ("amd64", "arm64v8"),
    media: Media = "oci",
) -> SeedResult:
    """Make the repository's tags what they were at the end of ``until``.

    Tags that exist in the repository but not in that state are removed, so calling this
    again with a later date moves the registry forward in time (a tag whose build changed
    gets a new digest). Each build's ``created`` is the date it first appeared in the
    history. ``architectures`` is one list for every build, or build -> list. Always the
    storage fast path: distribution cannot untag over HTTP.
    """
    state = state_at(history_rows, until)
    created = first_seen(history_rows)
    storage = FsStorage(registry.root)
    groups: dict[str, list[str]] = {}
    for tag, build in state.items():
        groups.setdefault(build, []).append(tag)
    result = SeedResult(repo)
    for build, tags in groups.items():
        archs = (
            architectures.get(build, ("amd64",))
            if isinstance(architectures, Mapping)
            else architectures
        )
        artifact = build_artifact(
            build,
            list(archs),
            platforms=platforms,
            media=media,
            created=_created_for(build, created),
        )
        storage.write(repo, artifact, tags)
        result.add(PushedImage.of(repo, artifact, tags))
    for tag in storage.tags(repo):
        if tag not in state:
            storage.untag(repo, tag)
            result.removed_tags.append(tag)
    registry.seeded[repo] = result
    return result


def platform_digest(result: SeedResult, tag: str, platform: str | Platform) -> str:
    """The child manifest digest of ``tag`` for ``platform`` (arch name or os/arch/v)."""
    return result.image(tag).platform_digests[platform_for(platform).key]
