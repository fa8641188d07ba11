"""What a build is asked (:class:`BuildRequest`) and what it gives back (:class:`BuildResult`).

Apart from :mod:`portside.build.base` (which still offers both by name) because the
builder modules are registered with the plugin manager in every process that builds
one, a warm credentialed answer included, and these dataclasses cost more to create
than everything else a builder module defines: they load when a build is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from portside.contract import CredentialSource
    from portside.reference import Digest
    from portside.registry.transport import ClientOptions

__all__ = ["BuildRequest", "BuildResult"]


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
    # Native builder: the project's wheel, already built (a build plugin's own); None
    # to build it from ``context``.
    wheel: Path | None = None
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

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BuildResult:
        """The result :meth:`to_json` wrote (a build plugin's record of it)."""
        from pathlib import Path

        from portside.reference import Digest

        base = data.get("base") or {}
        layout = data.get("layout")
        return cls(
            builder=str(data["builder"]),
            kind="registry" if data["kind"] == "registry" else "oci-layout",
            digest=Digest.parse(str(data["digest"])),
            platform_digests={
                str(k): Digest.parse(str(v)) for k, v in dict(data.get("platforms") or {}).items()
            },
            layout=Path(str(layout)) if layout else None,
            reference=str(data["reference"]) if data.get("reference") else None,
            base_name=str(base["name"]) if base.get("name") else None,
            base_digest=Digest.parse(str(base["digest"])) if base.get("digest") else None,
        )

    def summary(self) -> list[str]:
        """What ``portside build`` tells a person (``--json`` gives :meth:`to_json`)."""
        where = self.reference if self.kind == "registry" else f"oci:{self.layout}"
        lines = [f"built {self.digest} with the {self.builder} builder", f"  image: {where}"]
        if self.base_name:
            lines.append(f"  base: {self.base_name}@{self.base_digest}")
        lines += [f"  {key}: {value}" for key, value in sorted(self.platform_digests.items())]
        return lines
