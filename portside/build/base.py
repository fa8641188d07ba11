"""One interface for every builder, and what a build gives back.

A build ends in one of two places: an OCI image layout on disk (``buildah``, ``docker``;
publish reads blobs from there) or a repository on a registry, by digest and untagged
(``native`` writes straight there; publish then only mounts, skips and tags). Either way
the result names the image by digest, so tagging later can never pick up another build.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, ClassVar

from portside import errors

if TYPE_CHECKING:
    # A builder module is imported whenever the plugin manager is built (a warm
    # credentialed answer included): nothing here may pull in the network stack, and
    # the request and result dataclasses load on first use (``__getattr__`` below).
    from portside.build.request import BuildRequest as BuildRequest
    from portside.build.request import BuildResult as BuildResult

__all__ = [
    "BuildError",
    "BuildRequest",
    "BuildResult",
    "Builder",
    "BuilderUnavailable",
    "Progress",
    "created_timestamp",
    "no_progress",
    "source_date_epoch",
]

# (step, message): a builder calls it for every step it starts and every output line.
Progress = Callable[[str, str], None]


def no_progress(step: str, message: str) -> None:
    """The default progress callback: say nothing."""


class BuildError(errors.PortsideError):
    """A build failed; the message names the builder and the step."""


class BuilderUnavailable(errors.UsageError):
    """The chosen builder cannot run here (missing tool, no engine to talk to, unknown name)."""


def source_date_epoch(environ: Mapping[str, str] | None = None) -> int | None:
    """``SOURCE_DATE_EPOCH`` as an int, None when unset; garbage is a usage error."""
    value = (environ if environ is not None else os.environ).get("SOURCE_DATE_EPOCH")
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise errors.UsageError(
            f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds",
            hint="set it to e.g. $(git log -1 --format=%ct)",
        )
    return int(value)


def created_timestamp(epoch: int | None) -> str:
    """RFC 3339 time for ``created``: from the epoch when given (reproducible), else now."""
    import datetime as dt

    when = (
        dt.datetime.fromtimestamp(epoch, dt.timezone.utc)
        if epoch is not None
        else dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    )
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


class Builder(abc.ABC):
    """A way to build an image. Subclass it and return instances from ``portside_builders``."""

    name: ClassVar[str]
    description: ClassVar[str] = ""

    @abc.abstractmethod
    def unavailable_reason(self) -> str | None:
        """None when this builder can run here, else why not (a sentence, with the fix)."""

    @abc.abstractmethod
    async def build(self, request: BuildRequest, progress: Progress = no_progress) -> BuildResult:
        """Build the image; raise ``BuildError`` naming the failing step."""


def __getattr__(name: str) -> object:
    """``BuildRequest`` and ``BuildResult``, still importable from here, loaded lazily."""
    if name in ("BuildRequest", "BuildResult"):
        from portside.build.request import BuildRequest, BuildResult

        return BuildRequest if name == "BuildRequest" else BuildResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
