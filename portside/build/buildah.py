"""The ``buildah`` builder: Dockerfile builds with no engine service (``bud --isolation chroot``).

Every run gets its own storage root (driver ``vfs``, which works without overlay
support or privileges) under the work directory, and the result leaves it as an OCI
layout; the storage is deleted afterwards, so runs never see each other's images.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from portside.build.base import (
    Builder,
    BuildError,
    Progress,
    no_progress,
)
from portside.plugins import hookimpl
from portside.reference import Digest

if TYPE_CHECKING:
    from pathlib import Path

    from portside.build.request import BuildRequest, BuildResult

# Registered with the plugin manager in every process that builds one (a warm
# credentialed answer included): what a build needs is imported when it runs.

__all__ = ["BuildahBuilder", "portside_builders"]


class BuildahBuilder(Builder):
    name = "buildah"
    description = "Dockerfile builds with the buildah CLI, no engine service (--isolation chroot)"

    def __init__(self, executable: str = "buildah") -> None:
        self.executable = executable

    def unavailable_reason(self) -> str | None:
        import shutil

        if shutil.which(self.executable) is None:
            return f"{self.executable} is not on PATH (Debian: apt-get install buildah)"
        return None

    async def build(self, request: BuildRequest, progress: Progress = no_progress) -> BuildResult:
        reason = self.unavailable_reason()
        if reason:
            raise BuildError(f"buildah: {reason}")
        import json
        import tempfile
        import uuid
        from pathlib import Path

        from portside.build._proc import run_tool, write_containers_conf
        from portside.build.layout import Layout, platform_key
        from portside.build.request import BuildResult

        work = Path(tempfile.mkdtemp(prefix="buildah-", dir=request.work_dir))
        storage = work / "storage"
        conf = write_containers_conf(work)
        env = {"CONTAINERS_CONF": str(conf), "BUILDAH_ISOLATION": "chroot"}
        base = [
            self.executable,
            "--root",
            str(storage / "root"),
            "--runroot",
            str(storage / "run"),
            "--storage-driver",
            "vfs",
        ]
        dockerfile = request.dockerfile or request.context / "Dockerfile"
        if not dockerfile.is_file():
            raise BuildError(f"buildah: no Dockerfile at {dockerfile}")
        layout = Layout.create(work / "layout")
        platforms = request.platforms or ("",)
        entries = []
        try:
            for platform in platforms:
                name = f"localhost/portside-build:{uuid.uuid4().hex[:12]}"
                argv = [*base, "bud", "--isolation", "chroot", "-f", str(dockerfile), "-t", name]
                if platform:
                    argv += ["--platform", platform]
                for key, value in sorted(request.build_args.items()):
                    argv += ["--build-arg", f"{key}={value}"]
                for key, value in sorted(request.labels.items()):
                    argv += ["--label", f"{key}={value}"]
                if request.source_date_epoch is not None:
                    argv += ["--timestamp", str(request.source_date_epoch)]
                argv.append(str(request.context))
                await run_tool(
                    argv, step=f"buildah bud {platform or ''}".strip(), progress=progress, env=env
                )
                ref_name = name.rsplit(":", 1)[1]
                await run_tool(
                    [*base, "push", "--format", "oci", name, f"oci:{layout.root}:{ref_name}"],
                    step="buildah export",
                    progress=progress,
                    env=env,
                )
                entry = next(
                    e
                    for e in layout.entries()
                    if e.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref_name
                )
                manifest = layout.manifest(Digest.parse(entry["digest"]), entry["mediaType"])
                assert manifest.config is not None
                config = json.loads(layout.read_blob(manifest.config.digest))
                entry = {
                    "mediaType": manifest.media_type,
                    "digest": str(manifest.digest),
                    "size": len(manifest.raw),
                    "platform": {
                        k: config[k] for k in ("os", "architecture", "variant") if config.get(k)
                    },
                }
                entries.append(entry)
        finally:
            # vfs storage holds a full copy per layer: never keep it.
            await _remove_storage(base, storage, env, progress)
        platform_digests = {platform_key(e["platform"]): Digest.parse(e["digest"]) for e in entries}
        if len(entries) == 1:
            top = entries[0]
            layout.set_top(top["mediaType"], Digest.parse(top["digest"]), top["size"])
            digest = Digest.parse(top["digest"])
        else:
            digest = layout.combine(entries).digest
        progress("buildah", f"built {digest}")
        return BuildResult(
            builder=self.name,
            kind="oci-layout",
            digest=digest,
            platform_digests=platform_digests,
            layout=layout.root,
        )


async def _remove_storage(
    base: list[str], storage: Path, env: dict[str, str], progress: Progress
) -> None:
    import shutil

    from portside.build._proc import run_tool

    if not storage.exists():
        return
    try:
        # vfs layers can contain read-only directories; buildah knows how to drop them.
        await run_tool([*base, "rm", "--all"], step="buildah cleanup", progress=progress, env=env)
        await run_tool(
            [*base, "rmi", "--all", "--force"], step="buildah cleanup", progress=progress, env=env
        )
    except BuildError:
        pass
    shutil.rmtree(storage, ignore_errors=True)


@hookimpl
def portside_builders() -> list[Builder]:
    return [BuildahBuilder()]
