"""setuptools: publish the project's image after ``bdist_wheel``, through setuptools'
own plugin hook ``setuptools.finalize_distribution_options`` (an entry point): when
enabled, it sets the distribution's ``bdist_wheel`` command to one that runs the
usual command and then publishes from the wheel it just wrote.

Enabled explicitly only: ``PORTSIDE_PUBLISH=1`` in the environment of ``python -m
build``, or ``publish = true`` in ``[tool.portside.setuptools]``; and only for a
project that has ``[tool.portside.image]``. Otherwise it changes nothing at all.
``allow-dev = true`` there publishes development and local versions too.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from build_plugins._release import SETUPTOOLS_ENV, env_enabled

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]


def _settings(project: Path) -> dict[str, Any] | None:
    """``[tool.portside.setuptools]`` (empty when absent), or None when the project
    configures no image."""
    try:
        doc = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    table = doc.get("tool", {}).get("portside", {})
    if not isinstance(table, dict) or "image" not in table:
        return None
    settings = table.get("setuptools", {})
    return settings if isinstance(settings, dict) else {}


def finalize(dist: Any) -> None:
    """The ``setuptools.finalize_distribution_options`` hook."""
    project = Path.cwd()  # a build backend runs in the project's folder
    settings = _settings(project)
    if settings is None or not (settings.get("publish") is True or env_enabled(SETUPTOOLS_ENV)):
        return
    base = dist.get_command_class("bdist_wheel")
    allow_dev = settings.get("allow-dev") is True

    class bdist_wheel_and_publish(base):  # type: ignore[misc,valid-type]
        def run(self) -> None:
            super().run()
            from build_plugins._release import publish_release

            wheels = [Path(f) for cmd, _py, f in dist.dist_files if cmd == "bdist_wheel"]
            out_dir = Path(self.dist_dir)
            # `python -m build` has the backend write into OUTDIR/.tmp-XXXX and moves
            # only the wheel out of it: the report goes beside the wheel's final place.
            if out_dir.name.startswith(".tmp-"):
                out_dir = out_dir.parent
            publish_release(
                project,
                version=dist.get_version(),
                wheel=wheels[-1] if wheels else None,
                out_dir=out_dir,
                allow_dev=allow_dev,
            )

    dist.cmdclass["bdist_wheel"] = bdist_wheel_and_publish
