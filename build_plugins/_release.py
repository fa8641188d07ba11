"""What the hatch hook, the hatch publisher and the setuptools command share: publish
the configured image through the core (:func:`portside.publish.run_publish`) and turn
its errors into the one line a build tool shows."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from portside.cli import clean
from portside.errors import PortsideError

if TYPE_CHECKING:
    from portside.publish import PublishReport

REPORT_NAME = "portside-publish.json"
ENABLE_ENV = "HATCH_BUILD_HOOK_ENABLE_PORTSIDE"
ALL_HOOKS_ENV = "HATCH_BUILD_HOOKS_ENABLE"
SETUPTOOLS_ENV = "PORTSIDE_PUBLISH"


def env_enabled(name: str) -> bool:
    """hatchling's own reading of its switches: ``1`` or ``true``."""
    return os.environ.get(name, "").strip().lower() in ("1", "true")


class ReleaseFailed(SystemExit):
    """Ends the build with exit code 1 after the one-line error was written: a build
    backend shows a traceback for any other exception."""


def fail(exc: PortsideError) -> ReleaseFailed:
    sys.stderr.write(f"portside: error: {clean(exc.message.splitlines()[0])}\n")
    if exc.hint:
        sys.stderr.write(f"portside: hint: {clean(exc.hint)}\n")
    return ReleaseFailed(1)


def publish_release(
    project_dir: Path,
    *,
    version: str,
    wheel: Path | None,
    out_dir: Path,
    allow_dev: bool = False,
    dry_run: bool = False,
) -> PublishReport:
    """Build the image (from ``wheel`` for the native builder), tag it from
    ``version``, push, and write the report to ``out_dir``; all or nothing."""
    from portside.publish import check_release_version, run_publish

    try:
        check_release_version(version, allow_dev=allow_dev)
        report = asyncio.run(
            run_publish(
                project_dir,
                version=version,
                wheel=wheel,
                dry_run=dry_run,
                json_path=out_dir / REPORT_NAME,
            )
        )
    except PortsideError as exc:
        raise fail(exc) from None
    moved = ", ".join(report.tags_moved) or "no tag moved (dry run)"
    sys.stderr.write(f"portside: published {report.digest}: {moved}\n")
    return report
