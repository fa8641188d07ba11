"""Policy configuration: ``portside.toml`` or ``[tool.portside]`` in ``pyproject.toml``.

The nearest file wins, searched from the checked file's folder upwards. Example::

    [tool.portside]
    allowed-registries = ["docker.io", "ghcr.io"]   # globs over registry hosts
    require-digest = true                           # "unpinned" is a warning, not info
    update-levels = ["major", "minor", "patch"]     # which updates count as stale

    [tool.portside.severity]                        # per kind (or stale-major/-minor/-patch)
    variant-update = "warning"

    [[tool.portside.images]]                        # per-image rules; later ones win
    match = "docker.io/library/python"              # glob over the normalised name
    update-levels = ["minor", "patch"]
    scheme = "default"                              # a version scheme by name

    [[tool.portside.images]]
    match = "registry.internal/*"
    ignore = ["stale", "unpinned"]                  # or true for every kind

    [[tool.portside.images]]                        # `portside pin` pins to a query's answer
    match = "python"
    query = "python where variant = slim-bookworm and created < now - 7d limit 1"

    [tool.portside.pre-commit]                      # the portside-check hook and
    fail-on = ["not-found", "latest", "stale"]      # portside check (--fail-on wins)
    require-network = true                          # no registry answered: fail
"""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portside.errors import ConfigError, UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]

LEVELS = ("major", "minor", "patch")
SEVERITIES = ("error", "warning", "info", "hint")
CONFIG_FILES = ("portside.toml", "pyproject.toml")


@dataclass(frozen=True)
class ImageRule:
    """One ``[[tool.portside.images]]`` entry."""

    match: str
    ignore: frozenset[str] | None = None  # None: nothing; {"*"}: everything
    update_levels: tuple[str, ...] | None = None
    require_digest: bool | None = None
    scheme: str | None = None
    query: str | None = None  # the image is resolved by this query (portside pin)

    def applies_to(self, name: str, familiar: str) -> bool:
        return fnmatch.fnmatchcase(name, self.match) or fnmatch.fnmatchcase(familiar, self.match)


@dataclass(frozen=True)
class ImagePolicy:
    """What the rules say about one image, all rules merged."""

    ignore: frozenset[str] = frozenset()
    update_levels: tuple[str, ...] = LEVELS
    require_digest: bool = False
    scheme: str | None = None
    query: str | None = None

    def ignores(self, kind: str) -> bool:
        return "*" in self.ignore or kind in self.ignore


@dataclass(frozen=True)
class PolicyConfig:
    """The whole configuration; the defaults report everything and require nothing."""

    allowed_registries: tuple[str, ...] | None = None
    require_digest: bool = False
    update_levels: tuple[str, ...] = LEVELS
    severity: Mapping[str, str] = field(default_factory=dict)
    images: tuple[ImageRule, ...] = ()
    source: str | None = None  # the file it came from, for messages
    # [tool.portside.pre-commit]: what the portside-check hook fails on (None: its
    # default), and whether an image no registry answered for fails it.
    fail_on: tuple[str, ...] | None = None
    require_network: bool = False

    def for_image(self, name: str, familiar: str) -> ImagePolicy:
        policy = ImagePolicy(update_levels=self.update_levels, require_digest=self.require_digest)
        for rule in self.images:
            if not rule.applies_to(name, familiar):
                continue
            policy = ImagePolicy(
                ignore=policy.ignore | (rule.ignore or frozenset()),
                update_levels=rule.update_levels or policy.update_levels,
                require_digest=policy.require_digest
                if rule.require_digest is None
                else rule.require_digest,
                scheme=rule.scheme or policy.scheme,
                query=rule.query or policy.query,
            )
        return policy

    def registry_allowed(self, registry: str) -> bool:
        if self.allowed_registries is None:
            return True
        return any(fnmatch.fnmatchcase(registry, p) for p in self.allowed_registries)

    def severity_for(self, key: str, default: str) -> str:
        return self.severity.get(key, default)


def _strings(value: Any, where: str, *, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of strings")
    if allowed is not None:
        for item in value:
            if item not in allowed:
                raise ConfigError(
                    f"{where}: unknown value {item!r}", hint=f"use {', '.join(allowed)}"
                )
    return tuple(value)


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false")
    return value


def parse_config(table: Mapping[str, Any], *, source: str) -> PolicyConfig:
    """Validate a ``[tool.portside]`` table; unknown keys are errors (typos must show)."""
    known = {
        "allowed-registries",
        "require-digest",
        "update-levels",
        "severity",
        "images",
        "pre-commit",
    }
    # Keys other surfaces own (image building, the language server) are theirs to check.
    foreign = {"image", "lsp", "watch", "notify", "query", "retention", "setuptools"}
    for key in table:
        if key not in known and key not in foreign:
            raise ConfigError(
                f"{source}: unknown setting {key!r} in [tool.portside]",
                hint=f"known settings: {', '.join(sorted(known))}",
            )
    allowed = table.get("allowed-registries")
    severity = table.get("severity", {})
    if not isinstance(severity, dict):
        raise ConfigError(f"{source}: [tool.portside.severity] must be a table")
    for kind, value in severity.items():
        if value not in SEVERITIES:
            raise ConfigError(
                f"{source}: severity of {kind!r} is {value!r}", hint=f"use {', '.join(SEVERITIES)}"
            )
    images = table.get("images", [])
    if not isinstance(images, list):
        raise ConfigError(f"{source}: images must be an array of tables ([[tool.portside.images]])")
    rules: list[ImageRule] = []
    for i, entry in enumerate(images):
        where = f"{source}: images[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("match"), str):
            raise ConfigError(f"{where} needs a 'match' glob")
        unknown = set(entry) - {
            "match",
            "ignore",
            "update-levels",
            "require-digest",
            "scheme",
            "query",
        }
        if unknown:
            raise ConfigError(f"{where}: unknown setting {sorted(unknown)[0]!r}")
        ignore = entry.get("ignore")
        ignore_set: frozenset[str] | None = None
        if ignore is True:
            ignore_set = frozenset({"*"})
        elif ignore is not None and ignore is not False:
            ignore_set = frozenset(_strings(ignore, f"{where}.ignore"))
        levels = entry.get("update-levels")
        scheme = entry.get("scheme")
        if scheme is not None and not isinstance(scheme, str):
            raise ConfigError(f"{where}.scheme must be a string")
        query = entry.get("query")
        if query is not None:
            if not isinstance(query, str):
                raise ConfigError(f"{where}.query must be a string")
            from portside.query import parse_query

            try:
                parse_query(query)  # a typo shows when the config is read, not mid-pin
            except ConfigError:
                raise
            except UsageError as exc:
                raise ConfigError(f"{where}.query: {exc.message}") from None
        require = entry.get("require-digest")
        rules.append(
            ImageRule(
                match=entry["match"],
                ignore=ignore_set,
                update_levels=_strings(levels, f"{where}.update-levels", allowed=LEVELS)
                if levels is not None
                else None,
                require_digest=_bool(require, f"{where}.require-digest")
                if require is not None
                else None,
                scheme=scheme,
                query=query,
            )
        )
    hooks = table.get("pre-commit", {})
    if not isinstance(hooks, dict):
        raise ConfigError(f"{source}: [tool.portside.pre-commit] must be a table")
    unknown_hook_keys = set(hooks) - {"fail-on", "require-network"}
    if unknown_hook_keys:
        raise ConfigError(
            f"{source}: unknown setting {sorted(unknown_hook_keys)[0]!r} in "
            "[tool.portside.pre-commit]",
            hint="known settings: fail-on, require-network",
        )
    fail_on = hooks.get("fail-on")
    return PolicyConfig(
        fail_on=_strings(fail_on, f"{source}: pre-commit.fail-on") if fail_on is not None else None,
        require_network=_bool(
            hooks.get("require-network", False), f"{source}: pre-commit.require-network"
        ),
        allowed_registries=_strings(allowed, f"{source}: allowed-registries")
        if allowed is not None
        else None,
        require_digest=_bool(table.get("require-digest", False), f"{source}: require-digest"),
        update_levels=_strings(
            table.get("update-levels", list(LEVELS)), f"{source}: update-levels", allowed=LEVELS
        ),
        severity=dict(severity),
        images=tuple(rules),
        source=source,
    )


def find_config_file(start: Path) -> Path | None:
    """The nearest ``portside.toml``, or ``pyproject.toml`` with a ``[tool.portside]``."""
    folder = start if start.is_dir() else start.parent
    for directory in (folder.resolve(), *folder.resolve().parents):
        for name in CONFIG_FILES:
            candidate = directory / name
            if not candidate.is_file():
                continue
            if name == "portside.toml":
                return candidate
            try:
                text = candidate.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if "[tool.portside" in text:
                return candidate
    return None


def load_table(start: Path) -> tuple[dict[str, Any], str] | None:
    """The ``[tool.portside]`` table that applies under ``start`` and the file it came
    from, or ``None`` when no configuration file is found."""
    path = find_config_file(start)
    if path is None:
        return None
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    if path.name == "portside.toml":
        table = doc.get("tool", {}).get("portside", doc)
    else:
        table = doc.get("tool", {}).get("portside", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.portside] must be a table")
    return table, str(path)


def load_config(start: Path) -> PolicyConfig:
    """The configuration that applies to files under ``start`` (defaults when none)."""
    found = load_table(start)
    if found is None:
        return PolicyConfig()
    table, source = found
    return parse_config(table, source=source)
