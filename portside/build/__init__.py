"""Image builders behind one interface, found through the ``portside_builders`` hook.

``get_builder(name)`` returns a builder that can run here, or raises
``BuilderUnavailable`` saying why and which other builders can.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from portside.build.base import (
    Builder,
    BuildError,
    BuilderUnavailable,
    Progress,
    no_progress,
)

if TYPE_CHECKING:
    import pluggy

    from portside.build.request import BuildRequest as BuildRequest
    from portside.build.request import BuildResult as BuildResult

__all__ = [
    "BuildError",
    "BuildRequest",
    "BuildResult",
    "Builder",
    "BuilderUnavailable",
    "Progress",
    "available_builders",
    "builders",
    "get_builder",
    "no_progress",
]


def _manager(pm: pluggy.PluginManager | None) -> pluggy.PluginManager:
    if pm is None:
        from portside.plugins import get_plugin_manager

        pm = get_plugin_manager()
    return pm


def builders(pm: pluggy.PluginManager | None = None) -> dict[str, Builder]:
    """Every builder plugins provide, by name (the first registration of a name wins)."""
    found: dict[str, Builder] = {}
    # pluggy calls later registrations first; reversed, the first registered comes first.
    for provided in reversed(_manager(pm).hook.portside_builders()):
        for builder in provided or []:
            found.setdefault(builder.name, builder)
    return found


def available_builders(pm: pluggy.PluginManager | None = None) -> dict[str, str | None]:
    """``{name: None if it can run here else why not}``."""
    return {name: b.unavailable_reason() for name, b in builders(pm).items()}


def get_builder(name: str, pm: pluggy.PluginManager | None = None) -> Builder:
    """The builder called ``name``, checked to be able to run here."""
    known = builders(pm)
    builder = known.get(name)
    others = [n for n, b in sorted(known.items()) if n != name and b.unavailable_reason() is None]
    can = f"available here: {', '.join(others)}" if others else "no other builder can run here"
    if builder is None:
        raise BuilderUnavailable(f"no builder called {name!r}", hint=can)
    reason = builder.unavailable_reason()
    if reason is not None:
        raise BuilderUnavailable(f"builder {name!r} cannot run here: {reason}", hint=can)
    return builder


def __getattr__(name: str) -> object:
    # Loaded on first use: this package is imported with every builder plugin module,
    # on every plugin-manager start (see portside.build.request).
    if name in ("BuildRequest", "BuildResult"):
        from portside.build.request import BuildRequest, BuildResult

        return BuildRequest if name == "BuildRequest" else BuildResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
