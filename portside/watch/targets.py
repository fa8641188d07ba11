"""What is watched: every tag a set of Dockerfiles (and compose files) uses, plus the
images listed in ``[tool.portside.watch]``, each with the platforms that matter.

A target is one tag on one platform. Its uses are the lines that name it, so every
notification can say which lines a change concerns. References pinned only by digest
cannot change and are not watched; ``tag@digest`` watches the tag.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from portside import errors
from portside.check import read_dockerfile
from portside.config import ImagePolicy, PolicyConfig, load_config, load_table
from portside.discover import find_dockerfiles, find_files
from portside.dockerfile import parse
from portside.notify.base import Use
from portside.reference import Reference

DEFAULT_PLATFORM = "linux/amd64"
COMPOSE_NAMES = re.compile(r"^(docker-)?compose(\.[\w-]+)?\.ya?ml$|^.*\.compose\.ya?ml$")
# `image: name` in a compose file (YAML), quoted or not, with an optional comment.
_COMPOSE_IMAGE = re.compile(r"""^\s*-?\s*image:\s*(?:"([^"]+)"|'([^']+)'|([^\s#]+))""")


@dataclass
class Target:
    """One watched tag on one platform, with the lines that use it."""

    ref: Reference  # registry/repository:tag, no digest
    platform: str
    policy: ImagePolicy
    uses: list[Use] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.ref.name}:{self.ref.tag} {self.platform}"

    @property
    def repository(self) -> str:
        return self.ref.name

    @property
    def files(self) -> list[str]:
        return sorted({u.file for u in self.uses})


@dataclass(frozen=True)
class WatchConfig:
    """``[tool.portside.watch]``."""

    images: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()


def parse_watch(table: object, *, source: str) -> WatchConfig:
    if not isinstance(table, dict):
        raise errors.ConfigError(f"{source}: [tool.portside.watch] must be a table")
    unknown = set(table) - {"images", "platforms"}
    if unknown:
        raise errors.ConfigError(
            f"{source}: unknown setting {sorted(unknown)[0]!r} in [tool.portside.watch]",
            hint="known settings: images, platforms",
        )
    out: dict[str, tuple[str, ...]] = {}
    for key in ("images", "platforms"):
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise errors.ConfigError(
                f"{source}: [tool.portside.watch] {key} must be a list of strings"
            )
        out[key] = tuple(value)
    return WatchConfig(images=out["images"], platforms=out["platforms"])


def load_watch_config(start: Path) -> tuple[WatchConfig, Path | None]:
    found = load_table(start)
    if found is None:
        return WatchConfig(), None
    table, source = found
    return parse_watch(table.get("watch", {}), source=source), Path(source)


def find_compose_files(paths: Iterable[str | Path]) -> list[Path]:
    return find_files(paths, lambda name: COMPOSE_NAMES.match(name) is not None, take_given=False)


class _Collector:
    def __init__(self, default_platforms: tuple[str, ...]) -> None:
        self.default_platforms = default_platforms or (DEFAULT_PLATFORM,)
        self.targets: dict[str, Target] = {}
        self.problems: list[str] = []

    def add(
        self,
        text: str,
        *,
        use: Use | None,
        platforms: Iterable[str],
        config: PolicyConfig,
    ) -> None:
        try:
            ref = Reference.parse(text)
        except errors.InvalidReference as exc:
            where = f"{use.file}:{use.line}: " if use else ""
            self.problems.append(f"{where}{exc.message}")
            return
        watched = watched_tag(ref)
        if watched is None:
            return
        ref = watched
        policy = config.for_image(ref.name, ref.familiar_name)
        if "*" in policy.ignore:
            return
        for platform in platforms:
            target = Target(ref, platform, policy)
            target = self.targets.setdefault(target.key, target)
            if use is not None and use not in target.uses:
                target.uses.append(use)


def watched_tag(ref: Reference) -> Reference | None:
    """The tag a watcher watches for ``ref`` as a Dockerfile names it: without its digest,
    ``latest`` when no tag is named; ``None`` for a bare digest, which never moves.
    Notices name images as ``f"{tag.name}:{tag.tag}"`` of this."""
    if ref.tag is None and ref.digest is not None:
        return None
    return Reference(ref.registry, ref.repository, ref.tag or "latest", None)


def collect_targets(paths: Iterable[str | Path]) -> tuple[list[Target], list[str]]:
    """The targets under ``paths`` and lines that could not be watched (as messages)."""
    given = [Path(p) for p in paths] or [Path(".")]
    for path in given:
        if not path.exists():
            raise errors.UsageError(f"{path}: no such file or directory")
    roots = {p if p.is_dir() else p.parent for p in given}
    watch_configs = [load_watch_config(root) for root in sorted(roots)]
    platforms: tuple[str, ...] = ()
    for cfg, _ in watch_configs:
        platforms = platforms or cfg.platforms
    collector = _Collector(platforms)
    for file in find_dockerfiles(given):
        text = read_dockerfile(file)
        config = load_config(file)
        for image in parse(text).images:
            if not image.is_image:
                continue
            use = Use(str(file), image.range.start.line + 1, image.text)
            if image.resolved is None:
                collector.problems.append(
                    f"{use.file}:{use.line}: {image.text} uses a build argument without a "
                    "default; it cannot be watched"
                )
                continue
            wanted = (image.platform_resolved,) if image.platform_resolved else None
            if image.platform and not image.platform_resolved:
                wanted = None  # --platform=$BUILDPLATFORM and friends: the defaults
            collector.add(
                image.resolved,
                use=use,
                platforms=wanted or collector.default_platforms,
                config=config,
            )
    for file in find_compose_files(given):
        config = load_config(file)
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            collector.problems.append(f"cannot read {file}: {exc}")
            continue
        for number, line in enumerate(lines, start=1):
            match = _COMPOSE_IMAGE.match(line)
            if match is None:
                continue
            text = next(g for g in match.groups() if g)
            if "$" in text:
                collector.problems.append(
                    f"{file}:{number}: {text} uses a variable; it cannot be watched"
                )
                continue
            collector.add(
                text,
                use=Use(str(file), number, text),
                platforms=collector.default_platforms,
                config=config,
            )
    for cfg, source in watch_configs:
        if source is None:
            continue
        config = load_config(source)
        for text in cfg.images:
            collector.add(text, use=None, platforms=collector.default_platforms, config=config)
    return sorted(collector.targets.values(), key=lambda t: t.key), collector.problems
