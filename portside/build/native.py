"""The ``native`` builder: a Python project's image with no container engine and no Dockerfile.

The base image stays on its registry: only its manifest and config are read. Two layers
go on top, the dependencies and the project's own wheel, unpacked into ``/app`` (on
``PYTHONPATH``) as reproducible tarballs, and the image is written straight to the
target repository by digest, untagged (tags are publish's job). Base layers reach the
target by cross-repository mount when the base is on the same registry, else streamed
registry to registry; they never touch the disk.

Pure-Python projects (a ``py3-none-any`` wheel and pure dependencies) get every platform
the base offers from one pair of layers; a project with compiled wheels builds for the
platforms asked for, each with its own dependency download.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from portside import errors, jsonscan
from portside.build.base import (
    Builder,
    BuildError,
    Progress,
    created_timestamp,
    no_progress,
)
from portside.plugins import hookimpl
from portside.reference import Digest, Reference
from portside.registry import mediatypes as mt

if TYPE_CHECKING:
    from pathlib import Path

    from portside.build.layers import Layer
    from portside.build.request import BuildRequest, BuildResult
    from portside.registry.client import RegistryClient
    from portside.registry.manifest import Descriptor, Manifest, Platform

# Registered with the plugin manager in every process that builds one (a warm
# credentialed answer included): the registry client (httpx, asyncio), the layer and
# wheel code are imported by the functions that use them, not here.

__all__ = ["NativeBuilder", "portside_builders", "unpack_wheel"]

APP_DIR = "app"
_MACHINES = {"amd64": "x86_64", "arm64": "aarch64", "386": "i686"}
_MANYLINUX2014 = {"x86_64", "aarch64", "i686", "armv7l", "ppc64le", "s390x"}
_LAYER_TYPES = {mt.DOCKER_LAYER_GZIP: mt.OCI_LAYER_GZIP}
_CONCURRENCY = 4


def unpack_wheel(wheel: Path, prefix: str = APP_DIR) -> dict[str, tuple[bytes, bool]]:
    """The files a wheel installs, as ``{path in image: (bytes, executable)}``.

    ``*.data/purelib`` and ``platlib`` go to the root like the rest; scripts, headers
    and data are not installed (the image runs ``python -m``).
    """
    import stat
    import zipfile

    files: dict[str, tuple[bytes, bool]] = {}
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            name = info.filename
            parts = name.split("/")
            if parts[0].endswith(".data"):
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue
                name = "/".join(parts[2:])
            if name.startswith("/") or ".." in name.split("/"):
                raise BuildError(f"{wheel.name}: unsafe path {info.filename!r} in the wheel")
            mode = (info.external_attr >> 16) & 0o777
            files[f"{prefix}/{name}"] = (archive.read(info), bool(mode & stat.S_IXUSR))
    return files


def _is_pure(wheel: Path) -> bool:
    return wheel.name.endswith("-none-any.whl")


def _requirements(wheel: Path) -> list[str]:
    import email.parser
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        message = email.parser.Parser().parsestr(archive.read(meta).decode())
    # Requirements for extras are not installed: the image gets what `pip install` gets.
    return [r for r in message.get_all("Requires-Dist") or [] if "extra ==" not in r]


def _top_module(files: Mapping[str, Any]) -> str | None:
    names = sorted({p.split("/")[1] for p in files if p.count("/") >= 2})
    for name in names:
        if not name.endswith((".dist-info", ".data")) and f"{APP_DIR}/{name}/__init__.py" in files:
            return name
    return None


class NativeBuilder(Builder):
    name = "native"
    description = "Python projects with no engine or Dockerfile, written straight to a registry"

    def unavailable_reason(self) -> str | None:
        return None  # needs only Python, pip and a registry

    async def build(self, request: BuildRequest, progress: Progress = no_progress) -> BuildResult:
        import shutil
        import tempfile
        from pathlib import Path

        from portside.build.layers import make_layer
        from portside.build.layout import canonical, platform_key
        from portside.build.request import BuildResult
        from portside.registry.client import RegistryClient

        if not request.base:
            raise BuildError("native: no base image; set [tool.portside.image] base")
        target = Reference.parse(request.target)
        target = Reference(target.registry, target.repository, None, None)
        base_ref = Reference.parse(request.base)
        work = Path(tempfile.mkdtemp(prefix="native-", dir=request.work_dir))
        try:
            async with RegistryClient(
                request.client_options, credentials=request.credentials
            ) as client:
                # The base first: a wrong name fails in a second, not after the wheel.
                progress("base", f"resolving {base_ref}")
                try:
                    top = await client.get_manifest(base_ref)
                except errors.NotFound as exc:
                    raise BuildError(f"native: base image {base_ref} not found") from exc
                if request.wheel is not None:
                    wheel = request.wheel  # the build that called us made it: no rebuild
                    progress("wheel", f"using {wheel.name}")
                else:
                    progress("wheel", f"building the wheel of {request.context}")
                    wheel = await self._wheel(request, work, progress)
                app_files = unpack_wheel(wheel)
                epoch = request.source_date_epoch or 0
                bases = await self._base_images(client, base_ref, top, request, wheel)
                app_layer = make_layer(app_files, mtime=epoch)
                module = _top_module(app_files)
                requirements = _requirements(wheel)
                entries: list[dict[str, Any]] = []
                platform_digests: dict[str, Digest] = {}
                dep_layers: dict[str, Layer] = {}
                for platform, manifest in bases:
                    key = str(platform)
                    deps: Layer | None = None
                    if requirements:
                        pure_key = "any"
                        deps = dep_layers.get(pure_key) or dep_layers.get(key)
                        if deps is None:
                            deps, pure = await self._deps(
                                requirements, platform, request, work, progress, epoch
                            )
                            dep_layers[pure_key if pure else key] = deps
                    layers = [layer for layer in (deps, app_layer) if layer is not None]
                    descriptor = await self._write_image(
                        client, base_ref, target, top, manifest, layers, request, module, progress
                    )
                    platform_digests[platform_key(_platform_json(platform))] = descriptor.digest
                    entry = descriptor.to_json()
                    entry["platform"] = _platform_json(platform)
                    entries.append(entry)
                if len(entries) == 1 and not top.is_index:
                    digest = Digest.parse(entries[0]["digest"])
                else:
                    index = {
                        "schemaVersion": 2,
                        "mediaType": mt.OCI_INDEX,
                        "manifests": entries,
                        "annotations": _base_annotations(base_ref, top, request),
                    }
                    raw = canonical(index)
                    digest = await client.put_manifest(
                        target.with_digest(Digest.of(raw)), raw, mt.OCI_INDEX
                    )
        finally:
            shutil.rmtree(work, ignore_errors=True)
        progress("native", f"wrote {target}@{digest}")
        return BuildResult(
            builder=self.name,
            kind="registry",
            digest=digest,
            platform_digests=platform_digests,
            reference=f"{target.registry}/{target.repository}@{digest}",
            base_name=str(Reference(base_ref.registry, base_ref.repository, base_ref.tag, None)),
            base_digest=top.digest,
        )

    async def _wheel(self, request: BuildRequest, work: Path, progress: Progress) -> Path:
        from portside.build._proc import run_tool

        out = work / "wheel"
        argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out)]
        env = {"PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        if request.source_date_epoch is not None:
            env["SOURCE_DATE_EPOCH"] = str(request.source_date_epoch)
        try:
            # The build backend is usually installed already: no index needed then.
            await run_tool(
                [*argv, "--no-build-isolation", str(request.context)],
                step="wheel",
                progress=progress,
                env=env,
            )
        except BuildError as exc:
            if _disk_full(exc):
                raise _disk_full_error(work) from exc
            try:
                await run_tool(
                    [*argv, str(request.context)], step="wheel", progress=progress, env=env
                )
            except BuildError as again:
                if _disk_full(again):
                    raise _disk_full_error(work) from again
                raise
        wheels = sorted(out.glob("*.whl"))
        if len(wheels) != 1:
            raise BuildError(
                f"native: expected one wheel from {request.context}, got {len(wheels)}"
            )
        return wheels[0]

    async def _base_images(
        self,
        client: RegistryClient,
        base_ref: Reference,
        top: Manifest,
        request: BuildRequest,
        wheel: Path,
    ) -> list[tuple[Platform, Manifest]]:
        from portside.registry.manifest import Platform

        wanted = [Platform.parse(p) for p in request.platforms]
        if not top.is_index:
            config = await client.get_config(base_ref, top)
            platform = config.platform or Platform("linux", "amd64")
            if wanted and not any(platform.matches(w) for w in wanted):
                raise BuildError(f"native: base image {base_ref} is only {platform}")
            return [(platform, top)]
        available = [
            d.platform
            for d in top.manifests
            if d.platform is not None and d.platform.os != "unknown"
        ]
        chosen = wanted or available
        if not wanted and not _is_pure(wheel):
            raise BuildError(
                f"native: {wheel.name} is not pure Python; name the platforms to build for"
            )
        out = []
        for platform in chosen:
            child = top.select(platform)
            manifest = await client.get_manifest(base_ref.with_digest(child.digest))
            out.append((child.platform or platform, manifest))
        return out

    async def _deps(
        self,
        requirements: list[str],
        platform: Platform,
        request: BuildRequest,
        work: Path,
        progress: Progress,
        epoch: int,
    ) -> tuple[Layer, bool]:
        from portside.build._proc import run_tool
        from portside.build.layers import make_layer

        dest = work / f"deps-{platform.architecture}{platform.variant or ''}"
        argv = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--only-binary=:all:",
            "-d",
            str(dest),
        ]
        argv += _pip_platforms(platform)
        if "--python-version" not in request.pip_args:
            argv += ["--python-version", f"{sys.version_info.major}.{sys.version_info.minor}"]
        argv += [*request.pip_args, *requirements]
        try:
            await run_tool(argv, step=f"dependencies {platform}", progress=progress)
        except BuildError as exc:
            if _disk_full(exc):
                raise _disk_full_error(work, f"dependencies {platform}") from exc
            raise
        files: dict[str, tuple[bytes, bool]] = {}
        wheels = sorted(dest.glob("*.whl"))
        for wheel in wheels:
            files.update(unpack_wheel(wheel))
        return make_layer(files, mtime=epoch), all(_is_pure(w) for w in wheels)

    async def _write_image(
        self,
        client: RegistryClient,
        base_ref: Reference,
        target: Reference,
        top: Manifest,
        base: Manifest,
        layers: list[Layer],
        request: BuildRequest,
        module: str | None,
        progress: Progress,
    ) -> Descriptor:
        import asyncio

        from portside.build.layout import canonical
        from portside.registry.manifest import Descriptor

        assert base.config is not None
        raw = await client.get_blob(base_ref, base.config.digest)
        try:
            config = jsonscan.loads(raw)
        except ValueError:  # not JSON, or nested too deeply
            config = None
        if not isinstance(config, dict):
            raise errors.InvalidResponse(
                "the base image's config is not a JSON object",
                registry=base_ref.registry,
                repository=base_ref.repository,
            )
        config = _image_config(config, layers, request, module)
        config_raw = canonical(config)
        gate = asyncio.Semaphore(_CONCURRENCY)

        async def copy_base(layer: Descriptor) -> None:
            async with gate:
                result = await client.copy_blob(base_ref, target, layer.digest, size=layer.size)
                how = "present" if result.existed else "mounted" if result.mounted else "copied"
                progress("base layers", f"{layer.digest.short} {how}")

        async def upload(data: bytes) -> None:
            async with gate:
                await client.upload_blob(target, data)

        await asyncio.gather(
            *(copy_base(layer) for layer in base.layers),
            *(upload(layer.data) for layer in layers),
            upload(config_raw),
        )
        manifest = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {
                "mediaType": mt.OCI_CONFIG,
                "digest": str(Digest.of(config_raw)),
                "size": len(config_raw),
            },
            "layers": [
                {
                    "mediaType": _LAYER_TYPES.get(layer.media_type, layer.media_type),
                    "digest": str(layer.digest),
                    "size": layer.size,
                }
                for layer in base.layers
            ]
            + [
                {
                    "mediaType": mt.OCI_LAYER_GZIP,
                    "digest": str(layer.digest),
                    "size": len(layer.data),
                }
                for layer in layers
            ],
            "annotations": _base_annotations(base_ref, top, request),
        }
        raw = canonical(manifest)
        digest = await client.put_manifest(target.with_digest(Digest.of(raw)), raw, mt.OCI_MANIFEST)
        progress("manifest", f"{digest.short} written")
        return Descriptor(mt.OCI_MANIFEST, digest, len(raw))


def _disk_full(exc: BuildError) -> bool:
    return "No space left on device" in exc.message or "[Errno 28]" in exc.message


def _disk_full_error(work: Path, step: str = "wheel") -> BuildError:
    return BuildError(
        f"native: {step}: the disk holding {work} is full (No space left on device)",
        hint="free some space, or point TMPDIR at a bigger disk",
    )


def _pip_platforms(platform: Platform) -> list[str]:
    """``--platform`` flags for ``pip download``: always some, or pip picks the host's wheels."""
    if platform.architecture == "arm":
        machine = f"arm{platform.variant or 'v7'}l"  # armv7l, armv6l
    else:
        machine = _MACHINES.get(platform.architecture, platform.architecture)
    tags = [f"manylinux2014_{machine}"] if machine in _MANYLINUX2014 else []
    tags.append(f"linux_{machine}")
    return [flag for tag in tags for flag in ("--platform", tag)]


def _platform_json(platform: Platform) -> dict[str, str]:
    out = {"architecture": platform.architecture, "os": platform.os}
    if platform.variant:
        out["variant"] = platform.variant
    return out


def _base_annotations(base_ref: Reference, top: Manifest, request: BuildRequest) -> dict[str, str]:
    name = Reference(base_ref.registry, base_ref.repository, base_ref.tag, None)
    return {
        "org.opencontainers.image.created": created_timestamp(request.source_date_epoch or 0),
        **request.annotations,
        "org.opencontainers.image.base.name": str(name),
        "org.opencontainers.image.base.digest": str(top.digest),
    }


def _image_config(
    config: dict[str, Any], layers: list[Layer], request: BuildRequest, module: str | None
) -> dict[str, Any]:
    created = created_timestamp(request.source_date_epoch or 0)
    inner = dict(config.get("config") or {})
    env = [e for e in inner.get("Env") or [] if not e.startswith("PYTHONPATH=")]
    env.append(f"PYTHONPATH=/{APP_DIR}")
    names = {e.split("=", 1)[0] for e in env}
    for key, value in sorted(request.env.items()):
        if key in names:
            env = [e for e in env if e.split("=", 1)[0] != key]
        env.append(f"{key}={value}")
    inner["Env"] = env
    if request.entrypoint is not None:
        inner["Entrypoint"] = list(request.entrypoint)
    elif request.cmd is None and module:
        inner["Entrypoint"] = ["python", "-m", module]
    if request.cmd is not None:
        inner["Cmd"] = list(request.cmd)
    elif request.entrypoint is not None or module:
        inner.pop("Cmd", None)  # the base's command would be arguments to ours
    if request.user is not None:
        inner["User"] = request.user
    if request.workdir is not None:
        inner["WorkingDir"] = request.workdir
    labels = dict(inner.get("Labels") or {})
    labels.update(request.labels)
    inner["Labels"] = labels
    config = dict(config)
    config["config"] = inner
    config["created"] = created
    rootfs = dict(config.get("rootfs") or {"type": "layers", "diff_ids": []})
    rootfs["diff_ids"] = [*rootfs.get("diff_ids", []), *(str(layer.diff_id) for layer in layers)]
    config["rootfs"] = rootfs
    history = list(config.get("history") or [])
    for layer in layers:
        history.append(
            {
                "created": created,
                "created_by": f"portside native: {layer.files} files into /{APP_DIR}",
            }
        )
    config["history"] = history
    return config


@hookimpl
def portside_builders() -> list[Builder]:
    return [NativeBuilder()]
