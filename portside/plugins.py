"""The plugin manager: built-ins first, then whatever is installed under ``portside``.

Built-in plugins are plain modules registered exactly like third-party ones (the
pytest pattern), so a third-party plugin can block one by name with
``pm.set_blocked(name)`` or sit before it with ``tryfirst``.
"""

from __future__ import annotations

import contextvars
import importlib
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

import pluggy

from portside import hookspecs

hookimpl = pluggy.HookimplMarker("portside")

# Module names, in registration order. Later registration runs earlier in pluggy, so
# ordering between built-ins is set with tryfirst/trylast on the hooks themselves.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "portside.registry.credentials",
    "portside.schemes",
    "portside.build.docker",
    "portside.build.buildah",
    "portside.build.native",
    "portside.hadolint",
    "portside.notify.console",
    "portside.notify.jsonl",
    "portside.notify.webhook",
    "portside.notify.apprise_chat",
    "portside.notify.desktop",
    "portside.notify.editor",
    "portside.attached_reports",
    "portside.pull_counts",
)

# The hooks a commit hook calls, and the built-ins that implement them (plainly: one
# module function each, no tryfirst/trylast or wrappers; tests/test_plugins.py keeps
# this equal to what pluggy finds), so that hook_impls can answer without the manager.
DIRECT_HOOKS: dict[str, tuple[str, ...]] = {
    "portside_dockerfile_findings": ("portside.hadolint",),
    "portside_dockerfile_batch_findings": ("portside.hadolint",),
}

_lock = threading.Lock()
_manager: pluggy.PluginManager | None = None

# Set while plugins run behind someone typing (the language server): see in_background.
BACKGROUND: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "portside_plugins_background", default=False
)
# The niceness a plugin's process gets in the background (19 is the lowest priority).
BACKGROUND_NICENESS = 10


def in_background() -> bool:
    """Whether the plugin hook runs in the background of an interactive surface (the
    language server, which runs plugins while the user edits): a plugin that starts a
    process should then start it at a lower CPU priority (:func:`lower_priority`), so
    the editor's own answers are never slowed down by a linter."""
    return BACKGROUND.get()


def lower_priority(pid: int) -> None:
    """Lower the CPU priority of the process ``pid`` (a plugin's child process) to
    ``BACKGROUND_NICENESS``; where the platform cannot, nothing happens."""
    setpriority = getattr(os, "setpriority", None)
    if setpriority is None:  # Windows
        return
    try:
        current = os.getpriority(os.PRIO_PROCESS, pid)
        setpriority(os.PRIO_PROCESS, pid, max(current, BACKGROUND_NICENESS))
    except OSError:  # it has ended already, or this system does not allow it
        pass


def create_plugin_manager(*, load_entrypoints: bool = True) -> pluggy.PluginManager:
    """A fresh manager with the built-ins and (unless told not to) installed plugins."""
    pm = pluggy.PluginManager("portside")
    pm.add_hookspecs(hookspecs)
    for name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    if load_entrypoints and entry_points_may_exist("portside"):
        pm.load_setuptools_entrypoints("portside")
    # A hookimpl whose name matches no spec is a typo in a plugin: fail loudly.
    pm.check_pending()
    return pm


def entry_points_may_exist(group: str) -> bool:
    """False only when no installed distribution can declare an entry point in ``group``.

    ``load_setuptools_entrypoints`` imports ``importlib.metadata`` (email, zipfile, csv:
    ~15 ms, half a warm credentialed answer) and parses every distribution's metadata.
    Most machines have no Portside plugin installed, so the ``entry_points.txt`` files
    in the ``*.dist-info`` / ``*.egg-info`` folders on ``sys.path`` are read first, the
    way ``importlib.metadata`` finds them; anything this scan cannot read as surely
    (a zip or egg on the path, another distribution finder) counts as "may exist", so
    no plugin is ever missed: then pluggy looks itself.
    """
    import importlib.machinery  # loaded at start-up already

    for finder in sys.meta_path:
        if finder is not importlib.machinery.PathFinder and hasattr(finder, "find_distributions"):
            return True
    for entry in sys.path:
        if not isinstance(entry, str) or entry.endswith(".egg"):
            return True
        try:
            names = os.listdir(entry or ".")
        except NotADirectoryError:
            return True  # a zip archive: importlib.metadata reads inside it
        except OSError:
            continue  # a missing folder holds nothing, for importlib.metadata too
        for name in names:
            if name.lower().endswith((".dist-info", ".egg-info")) and _declares_group(
                os.path.join(entry or ".", name, "entry_points.txt"), group
            ):
                return True
    return False


def _declares_group(path: str, group: str) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except (FileNotFoundError, NotADirectoryError):
        return False  # no entry points (an ``.egg-info`` file holds only PKG-INFO)
    except OSError:
        return True  # unreadable here; let importlib.metadata decide
    if group not in text:
        return False
    # A section header as importlib.metadata reads one: a stripped line in brackets.
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]") and line.strip("[]").strip() == group:
            return True
    return False


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide manager, created on first use."""
    global _manager
    with _lock:
        if _manager is None:
            _manager = create_plugin_manager()
        return _manager


class BuiltinImpl(NamedTuple):
    """A built-in's implementation of a hook, called without the manager: the
    attributes of pluggy's ``HookImpl`` that callers of :func:`hook_impls` read."""

    plugin_name: str
    function: Callable[..., Any]
    argnames: tuple[str, ...]
    hookwrapper: bool = False
    wrapper: bool = False


def _builtin_impl(module_name: str, hook: str) -> BuiltinImpl:
    function = getattr(importlib.import_module(module_name), hook)
    code = function.__code__
    names = code.co_varnames[: code.co_argcount]
    passed = len(names) - len(function.__defaults__ or ())  # pluggy skips defaulted ones
    return BuiltinImpl(module_name, function, names[:passed])


def hook_impls(hook: str, plugins: pluggy.PluginManager | None = None) -> list[Any]:
    """The implementations of ``hook``, in the order pluggy calls them (the last
    registered first), from ``plugins`` or else the process-wide manager.

    For a hook in ``DIRECT_HOOKS``, when this process has not built that manager and no
    installed distribution declares a ``portside`` entry point, the only implementations
    are the built-ins: then the modules named there are imported and their functions
    returned as they are, and the manager is not built (pluggy importing and inspecting
    thirteen built-ins costs ~15 ms, a tenth of a ``portside-lint`` run). The answer is
    the same either way.
    """
    if plugins is None:
        with _lock:
            built = _manager is not None
        if hook in DIRECT_HOOKS and not built and not entry_points_may_exist("portside"):
            return [_builtin_impl(name, hook) for name in reversed(DIRECT_HOOKS[hook])]
        plugins = get_plugin_manager()
    return list(reversed(getattr(plugins.hook, hook).get_hookimpls()))
