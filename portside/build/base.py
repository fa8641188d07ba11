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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal

from portside import errors

if TYPE_CHECKING:
    # Annotations only: a builder module is imported whenever the plugin manager is
    # built (a warm credentialed answer included), so nothing here may pull in the
    # network stack.
    from pathlib import Path

    from portside.contract import CredentialSource
    from portside.reference import Digest
    from portside.registry.transport import ClientOptions

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


@dataclass(frozen=True)
class BuildRequest:
    """Everything a builder may use; each builder documents what it ignores."""

    context: Path
    dockerfile: Path | None = None
    # Where the result goes: a local name for Docker Engine/buildah builds, the repository a
    # native build writes to (``registry/repo``; a tag here is ignored: tags come last).
    target: str = "localhost/portside-build"
    platforms: tuple[str, ...] = ()
    build_args: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    # Manifest annotations (native builds write them; publish adds them to layouts).
    annotations: Mapping[str, str] = field(default_factory=dict)
    # Native builder: the base image and the image config to set.
    base: str | None = None
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None
    workdir: str | None = None
    pip_args: tuple[str, ...] = ()
    source_date_epoch: int | None = None
    # Scratch space (storage roots, layouts); a fresh temporary directory when None.
    work_dir: Path | None = None
    client_options: ClientOptions | None = None
    credentials: CredentialSource | None = None


@dataclass(frozen=True)
class BuildResult:
    """An image handle: where the image is and its digest(s)."""

    builder: str
    kind: Literal["oci-layout", "registry"]
    digest: Digest  # the top manifest: an index when multi-platform
    platform_digests: Mapping[str, Digest] = field(default_factory=dict)
    layout: Path | None = None  # kind == "oci-layout"
    reference: str | None = None  # kind == "registry": registry/repo@digest
    base_name: str | None = None
    base_digest: Digest | None = None
    engine_image: str | None = None  # the docker engine's image id, when built there

    def to_json(self) -> dict[str, object]:
        return {
            "builder": self.builder,
            "kind": self.kind,
            "digest": str(self.digest),
            "platforms": {k: str(v) for k, v in sorted(self.platform_digests.items())},
            "layout": str(self.layout) if self.layout else None,
            "reference": self.reference,
            "base": {"name": self.base_name, "digest": str(self.base_digest)}
            if self.base_name
            else None,
        }

    def summary(self) -> list[str]:
        """What ``portside build`` tells a person (``--json`` gives :meth:`to_json`)."""
        where = self.reference if self.kind == "registry" else f"oci:{self.layout}"
        lines = [f"built {self.digest} with the {self.builder} builder", f"  image: {where}"]
        if self.base_name:
            lines.append(f"  base: {self.base_name}@{self.base_digest}")
        lines += [f"  {key}: {value}" for key, value in sorted(self.platform_digests.items())]
        return lines


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
