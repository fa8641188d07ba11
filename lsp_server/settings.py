"""The language server's settings: one typed object, three sources.

Precedence, lowest first (a later source overrides a key an earlier one set):

1. ``initializationOptions`` of the ``initialize`` request (``{"portside": {...}}`` or
   the keys at the top level);
2. the client's ``workspace/configuration`` answer for the section ``portside`` (asked
   at ``initialized`` and again on every ``workspace/didChangeConfiguration``);
3. ``[tool.portside.lsp]`` in the workspace's ``pyproject.toml`` (or ``[lsp]`` /
   ``[tool.portside.lsp]`` in ``portside.toml``).

Keys are camelCase from the editor and kebab-case in TOML (``debounceMs`` /
``debounce-ms``). Three keys decide what the server may contact and are taken from the
editor only, never from the workspace's own files: ``trusted`` (the client says whether
the workspace is trusted), ``trustedRegistries`` (globs of registry hosts that may be
contacted from an untrusted workspace) and ``insecureRegistries``. A workspace that is
not trusted cannot widen what it may reach by writing a ``pyproject.toml``.

Severity per finding kind comes from ``severity`` here (``{"unpinned": "hint"}``) and
is overridden by the core's own ``[tool.portside.severity]``.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from portside.config import SEVERITIES, find_config_file

log = logging.getLogger("portside.lsp")

EDITOR_ONLY = frozenset({"trusted", "trusted_registries", "insecure_registries"})

WELL_KNOWN_IMAGES = (
    "alpine",
    "busybox",
    "debian",
    "ubuntu",
    "python",
    "node",
    "golang",
    "rust",
    "openjdk",
    "eclipse-temurin",
    "nginx",
    "httpd",
    "redis",
    "postgres",
    "mysql",
    "mariadb",
    "mongo",
    "php",
    "ruby",
    "perl",
    "gcc",
    "fedora",
    "almalinux",
    "rockylinux",
    "amazonlinux",
    "archlinux",
    "haproxy",
    "traefik",
    "caddy",
    "memcached",
    "rabbitmq",
    "elixir",
    "erlang",
    "haskell",
    "julia",
    "maven",
    "gradle",
    "docker",
    "registry",
)


@dataclass(frozen=True)
class Settings:
    """Everything the server can be told; the defaults are what an editor gets unasked."""

    # Diagnostics
    debounce_ms: int = 250
    remote_checks: bool = True  # ask registries (stale, moved, not-found, ...)
    severity: Mapping[str, str] = field(default_factory=dict)
    recheck_interval_s: float = 900.0  # re-check open documents (0: never)
    max_document_bytes: int = 2_000_000  # larger documents are not analysed
    # Network
    network_budget_ms: int = 1500  # how long completion/hover wait on a registry
    tags_ttl_s: float = 300.0
    # Features
    inlay_hints: bool = True
    document_links: bool = True
    well_known_images: tuple[str, ...] = WELL_KNOWN_IMAGES
    # Trust (editor only)
    trusted: bool = True
    trusted_registries: tuple[str, ...] = ()
    insecure_registries: tuple[str, ...] = ()
    log_level: str = "warning"
    # Registries whose catalog completes repository names (``FROM host/…``); from the
    # workspace's own files only when the workspace is trusted.
    registries: tuple[str, ...] = ()


_FIELDS = {f.name: f for f in fields(Settings)}


def _snake(key: str) -> str:
    key = key.replace("-", "_")
    return re.sub(r"(?<=[a-z0-9])([A-Z])", lambda m: "_" + m.group(1).lower(), key)


def _coerce(name: str, value: Any) -> Any:
    default = getattr(Settings(), name)
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise ValueError("expected true or false")
    if isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        raise ValueError("expected a whole number >= 0")
    if isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            return float(value)
        raise ValueError("expected a number >= 0")
    if isinstance(default, tuple):
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ValueError("expected a list of strings")
    if name == "severity":
        if isinstance(value, Mapping) and all(
            isinstance(k, str) and v in SEVERITIES for k, v in value.items()
        ):
            return dict(value)
        raise ValueError(f"expected a table of kind = one of {', '.join(SEVERITIES)}")
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        raise ValueError("expected a string")
    raise ValueError("unsupported")


def _shown(name: str, value: Any) -> str:
    """A setting's value for a message: scalars as written (JSON-like, cut short); a
    table by its keys only (a value where a severity belongs may be anything)."""
    if name == "severity" or isinstance(value, Mapping):
        keys = ", ".join(repr(k) for k in list(value)[:5]) if isinstance(value, Mapping) else ""
        return f"{{{keys}}}" if isinstance(value, Mapping) else "a table"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_shown("", v) for v in list(value)[:5]) + "]"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "…"


def merge(
    base: Settings,
    raw: object,
    *,
    source: str,
    editor: bool,
    problems: list[str] | None = None,
    editor_only: frozenset[str] = EDITOR_ONLY,
) -> Settings:
    """``base`` with the keys of ``raw`` applied; bad keys are skipped and reported."""
    if not isinstance(raw, Mapping):
        return base
    if "portside" in raw and isinstance(raw["portside"], Mapping):
        raw = raw["portside"]
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            continue
        name = _snake(key)
        if name not in _FIELDS:
            if problems is not None:
                problems.append(f"{source}: unknown setting {key!r}")
            continue
        if name in editor_only and not editor:
            if problems is not None:
                problems.append(f"{source}: {key!r} can only be set by the editor")
            continue
        try:
            coerced = _coerce(name, value)
        except ValueError as exc:
            if problems is not None:
                problems.append(
                    f"{key} = {_shown(name, value)} from {source} is not valid ({exc}); "
                    f"using {_shown(name, getattr(base, name))}"
                )
            continue
        if name == "severity":
            coerced = {**base.severity, **changes.get("severity", {}), **coerced}
        changes[name] = coerced
    return replace(base, **changes) if changes else base


def workspace_table(root: Path) -> tuple[dict[str, Any], str | None]:
    """``[tool.portside.lsp]`` of the workspace's config file, and the file's path."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]

    path = find_config_file(root)
    if path is None:
        return {}, None
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        log.warning("cannot read %s: %s", path, type(exc).__name__)
        return {}, str(path)
    tool = doc.get("tool", {}).get("portside", {})
    table = tool.get("lsp") if isinstance(tool, dict) else None
    if table is None and path.name == "portside.toml":
        table = doc.get("lsp")
    return (table if isinstance(table, dict) else {}), str(path)


def resolve_settings(
    init_options: object,
    client_config: object,
    workspace_root: Path | None,
    problems: list[str] | None = None,
    *,
    client_source: str = "workspace/configuration",
) -> Settings:
    """The effective settings from the three sources, in precedence order.

    ``client_source`` names how the editor's settings came (``workspace/configuration``
    or ``workspace/didChangeConfiguration``), for the messages about them."""
    settings = merge(
        Settings(), init_options, source="initializationOptions", editor=True, problems=problems
    )
    settings = merge(settings, client_config, source=client_source, editor=True, problems=problems)
    if workspace_root is not None:
        table, path = workspace_table(workspace_root)
        # An untrusted workspace cannot point the server at registries of its choosing.
        settings = merge(
            settings,
            table,
            source=path or "pyproject",
            editor=False,
            problems=problems,
            editor_only=EDITOR_ONLY if settings.trusted else EDITOR_ONLY | {"registries"},
        )
    return settings
