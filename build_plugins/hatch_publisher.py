"""``hatch publish -p portside``: tag and push the image the build hook built earlier
(``publish = false`` in ``[tool.hatch.build.hooks.portside]``, then
``HATCH_BUILD_HOOK_ENABLE_PORTSIDE=1 hatch build``), from the record it left in
``dist/``. ``-o dry-run=true`` shows every tag and push and changes nothing, as
``portside publish --dry-run`` does; ``-o allow-dev=true`` as for the hook.

The publisher runs in hatch's own environment: install portside there
(``pipx inject hatch portside``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.plugin import hookimpl


def _flag(options: dict[str, Any], name: str) -> bool:
    return str(options.get(name, "")).strip().lower() in ("1", "true", "yes")


@hookimpl
def hatch_register_publisher() -> type[Any]:
    # hatchling loads every `hatch` entry point too, where hatch is not installed:
    # the publisher's base class is imported only when hatch itself asks.
    from hatch.publish.plugin.interface import PublisherInterface

    from build_plugins._release import publish_image

    class PortsidePublisher(PublisherInterface):  # type: ignore[misc]
        PLUGIN_NAME = "portside"

        def publish(self, artifacts: list[str], options: dict[str, Any]) -> None:
            root = Path(self.root)
            # `hatch publish [ARTIFACTS]`: a folder or a file in it; dist/ by default.
            given = [Path(a) for a in artifacts] or [root / "dist"]
            folder = given[0] if given[0].is_dir() else given[0].parent
            publish_image(
                root,
                out_dir=folder,
                allow_dev=_flag(options, "allow-dev"),
                dry_run=_flag(options, "dry-run"),
            )

    return PortsidePublisher
