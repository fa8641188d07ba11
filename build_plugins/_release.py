"""What the hatch hook, the hatch publisher and the setuptools command share: publish
the configured image through the core (:func:`portside.publish.run_publish`) and turn
its errors into the one line a build tool shows."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from portside.errors import PortsideError
from portside.terminal import clean

if TYPE_CHECKING:
    from portside.publish import PublishReport
    from portside.registry.transport import ClientOptions

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


def _client_options() -> ClientOptions:
    """The client as ``portside publish`` configures it (no flags here: the environment's
    ``PORTSIDE_INSECURE_REGISTRIES`` and ``PORTSIDE_DEADLINE``)."""
    from portside.registry.options import TRANSFER_DEADLINE, client_options

    return client_options(default_deadline=TRANSFER_DEADLINE)


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
    from portside.publish import RELEASE_REPORT, check_release_version, run_publish

    try:
        check_release_version(version, allow_dev=allow_dev)
        report = asyncio.run(
            run_publish(
                project_dir,
                version=version,
                wheel=wheel,
                dry_run=dry_run,
                json_path=out_dir / RELEASE_REPORT,
                client_options=_client_options(),
            )
        )
    except PortsideError as exc:
        raise fail(exc) from None
    _said(report)
    return report


def remove_release_files(out_dir: Path) -> None:
    """What the plugins wrote beside the artifacts, removed (a build tool's clean)."""
    import shutil

    from portside.publish import RELEASE_FILES

    for name in RELEASE_FILES:
        path = out_dir / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _said(report: PublishReport) -> None:
    moved = ", ".join(report.tags_moved) or "no tag moved (dry run)"
    sys.stderr.write(f"portside: published {report.digest}: {moved}\n")


def build_image(
    project_dir: Path, *, version: str, wheel: Path | None, out_dir: Path, allow_dev: bool = False
) -> None:
    """Build the image now, tag and push it later (:func:`publish_image`)."""
    from portside.publish import build_for_release, check_release_version

    try:
        check_release_version(version, allow_dev=allow_dev)
        result = asyncio.run(
            build_for_release(
                project_dir,
                out_dir,
                version=version,
                wheel=wheel,
                client_options=_client_options(),
            )
        )
    except PortsideError as exc:
        raise fail(exc) from None
    sys.stderr.write(
        f"portside: built {result.digest}; publish it with hatch publish -p portside\n"
    )


def publish_image(
    project_dir: Path, *, out_dir: Path, allow_dev: bool = False, dry_run: bool = False
) -> PublishReport:
    """Tag and push the image :func:`build_image` left in ``out_dir``."""
    import json

    from portside.publish import BUILD_RECORD, RELEASE_REPORT, check_release_version, publish_built

    record = out_dir / BUILD_RECORD
    try:
        try:
            version = str(json.loads(record.read_text(encoding="utf-8"))["version"])
        except (OSError, ValueError, KeyError, TypeError):
            version = None  # publish_built words the problem
        if version is not None:
            check_release_version(version, allow_dev=allow_dev)
        report = asyncio.run(
            publish_built(
                project_dir,
                record,
                dry_run=dry_run,
                json_path=out_dir / RELEASE_REPORT,
                client_options=_client_options(),
            )
        )
    except PortsideError as exc:
        raise fail(exc) from None
    _said(report)
    return report
