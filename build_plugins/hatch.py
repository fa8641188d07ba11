"""hatch: a build hook (``[tool.hatch.build.hooks.portside]``) that builds the
project's image after the wheel and publishes it.

A build hook runs in every build, a user's ``pip install`` from an sdist too, so this
one does nothing unless enabled explicitly: ``HATCH_BUILD_HOOK_ENABLE_PORTSIDE=1`` (or
``HATCH_BUILD_HOOKS_ENABLE=1``), or ``enable-by-default = true`` written in its table
(say, of a release-only target). Set ``enable-by-default = false`` too, so hatchling
does not even load it otherwise. Options: ``allow-dev = true`` publishes development
and local versions (refused by default); ``publish = false`` builds the image only,
leaving it for ``hatch publish -p portside`` (:mod:`build_plugins.hatch_publisher`) to
tag and push; ``dry-run = true`` shows the plan only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface
from hatchling.plugin import hookimpl

from build_plugins._release import ALL_HOOKS_ENV, ENABLE_ENV, env_enabled


class PortsideBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "portside"

    def _enabled(self) -> bool:
        explicit = self.config.get("enable-by-default") is True
        return explicit or env_enabled(ENABLE_ENV) or env_enabled(ALL_HOOKS_ENV)

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        # Once per build, after the wheel (an sdist alone has no image to make).
        if self.target_name != "wheel" or not self._enabled():
            return
        from build_plugins._release import build_image, publish_release  # the core, if used

        artifact = Path(artifact_path)
        allow_dev = self.config.get("allow-dev") is True
        # The project's version (its metadata), not the target's `version` argument.
        if self.config.get("publish", True) is False:
            build_image(
                Path(self.root),
                version=self.metadata.version,
                wheel=artifact,
                out_dir=artifact.parent,
                allow_dev=allow_dev,
            )
            return
        publish_release(
            Path(self.root),
            version=self.metadata.version,
            wheel=artifact,
            out_dir=artifact.parent,
            allow_dev=allow_dev,
            dry_run=self.config.get("dry-run") is True,
        )

    def clean(self, versions: list[str]) -> None:
        from build_plugins._release import remove_release_files

        remove_release_files(Path(self.directory))


@hookimpl
def hatch_register_build_hook() -> type[BuildHookInterface]:  # type: ignore[type-arg]
    return PortsideBuildHook
