"""The plugin manager: built-ins first, then whatever is installed under ``portside``.

Built-in plugins are plain modules registered exactly like third-party ones (the
pytest pattern), so a third-party plugin can block one by name with
``pm.set_blocked(name)`` or sit before it with ``tryfirst``.
"""

from __future__ import annotations

import importlib
import threading

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
)

_lock = threading.Lock()
_manager: pluggy.PluginManager | None = None


def create_plugin_manager(*, load_entrypoints: bool = True) -> pluggy.PluginManager:
    """A fresh manager with the built-ins and (unless told not to) installed plugins."""
    pm = pluggy.PluginManager("portside")
    pm.add_hookspecs(hookspecs)
    for name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    if load_entrypoints:
        pm.load_setuptools_entrypoints("portside")
    # A hookimpl whose name matches no spec is a typo in a plugin: fail loudly.
    pm.check_pending()
    return pm


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide manager, created on first use."""
    global _manager
    with _lock:
        if _manager is None:
            _manager = create_plugin_manager()
        return _manager
