"""The plugin manager's shortcut: with no plugin installed besides the built-ins, the
implementations of the hooks a commit hook calls come straight from the built-in
modules, exactly as pluggy would give them, and the manager (pluggy importing and
inspecting every built-in) is not built."""

from __future__ import annotations

import pytest

from portside import hookspecs, plugins
from portside.plugins import DIRECT_HOOKS, create_plugin_manager, hook_impls, hookimpl

HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("portside_"))


def described(impls: list[object]) -> list[tuple[object, ...]]:
    return [
        (i.plugin_name, i.function, tuple(i.argnames), i.hookwrapper, i.wrapper)  # type: ignore[attr-defined]
        for i in impls
    ]


@pytest.fixture
def no_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that has not built the manager and has no plugin installed."""
    monkeypatch.setattr(plugins, "_manager", None)
    monkeypatch.setattr(plugins, "entry_points_may_exist", lambda group: False)


def test_direct_hooks_list_what_pluggy_finds() -> None:
    pm = create_plugin_manager(load_entrypoints=False)
    found = {
        hook: tuple(
            name
            for name in plugins.BUILTIN_PLUGINS
            if getattr(pm.hook, hook) in pm.get_hookcallers(pm.get_plugin(name)) or []
        )
        for hook in HOOKS
    }
    assert {hook: found[hook] for hook in DIRECT_HOOKS} == DIRECT_HOOKS
    # Plain implementations, so that the order pluggy calls them in is the reverse of
    # registration, as the shortcut assumes.
    for hook in DIRECT_HOOKS:
        for impl in getattr(pm.hook, hook).get_hookimpls():
            assert not (impl.tryfirst or impl.trylast or impl.hookwrapper or impl.wrapper)


@pytest.mark.parametrize("hook", HOOKS)
def test_the_shortcut_gives_what_the_manager_gives(hook: str, no_manager: None) -> None:
    direct = hook_impls(hook)
    assert (plugins._manager is None) == (hook in DIRECT_HOOKS)  # answered without it
    managed = create_plugin_manager(load_entrypoints=False)
    assert described(direct) == described(hook_impls(hook, managed))


class Extra:
    @hookimpl
    def portside_dockerfile_findings(self) -> list[object]:
        return []


def test_installed_or_registered_plugins_are_never_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A plugin may be installed: the manager is built, entry points and all.
    built = create_plugin_manager(load_entrypoints=False)
    built.register(Extra(), name="extra")
    monkeypatch.setattr(plugins, "_manager", None)
    monkeypatch.setattr(plugins, "entry_points_may_exist", lambda group: True)
    monkeypatch.setattr(plugins, "create_plugin_manager", lambda: built)
    names = [i.plugin_name for i in hook_impls("portside_dockerfile_findings")]
    assert names == ["extra", "portside.hadolint"]
    # Once the process-wide manager exists, it answers (plugins registered at run time).
    monkeypatch.setattr(plugins, "entry_points_may_exist", lambda group: False)
    names = [i.plugin_name for i in hook_impls("portside_dockerfile_findings")]
    assert names == ["extra", "portside.hadolint"]
