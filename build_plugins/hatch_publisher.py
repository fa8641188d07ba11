"""``hatch publish -p portside``: publish the project's image from the wheel built
earlier (``hatch build``); ``-o dry-run=true`` shows every tag and push and changes
nothing, as ``portside publish --dry-run`` does. Registered with hatch itself (the
publisher runs in hatch's environment: install portside there)."""

from __future__ import annotations

import email.parser
import zipfile
from pathlib import Path
from typing import Any

from hatchling.plugin import hookimpl


def _wheel_version(wheel: Path) -> str:
    """The version in the wheel's METADATA: what was built, whatever pyproject says now."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.HeaderParser().parsestr(archive.read(name).decode("utf-8"))
    return str(metadata["Version"])


@hookimpl
def hatch_register_publisher() -> type[Any]:
    # hatchling loads every `hatch` entry point too, where hatch is not installed:
    # the publisher's base class is imported only when hatch itself asks.
    from hatch.publish.plugin.interface import PublisherInterface

    from build_plugins._release import fail, publish_release
    from portside.errors import UsageError

    class PortsidePublisher(PublisherInterface):
        PLUGIN_NAME = "portside"

        def publish(self, artifacts: list[str], options: dict[str, Any]) -> None:
            root = Path(self.root)
            found = [Path(a) for a in artifacts] or [root / "dist"]
            wheels = sorted(
                {w for a in found for w in ([a] if a.is_file() else a.glob("*.whl"))},
                key=lambda p: p.stat().st_mtime,
            )
            wheels = [w for w in wheels if w.suffix == ".whl"]
            if not wheels:
                raise fail(UsageError("no wheel to publish from", hint="run `hatch build` first"))
            wheel = wheels[-1]  # the newest: the one just built
            flag = str(options.get("dry-run", options.get("dry_run", ""))).lower()
            publish_release(
                root,
                version=_wheel_version(wheel),
                wheel=wheel,
                out_dir=wheel.parent,
                allow_dev=str(options.get("allow-dev", "")).lower() in ("1", "true"),
                dry_run=flag in ("1", "true"),
            )

    return PortsidePublisher
