"""The ``docker`` builder: the Docker Engine API through the ``docker`` package.

Works against any engine at ``DOCKER_HOST`` (Docker itself, or ``podman system service``).
The ``docker`` package blocks, so every call runs in a worker thread. The built image is
exported (``docker save``) into an OCI layout, so publish pushes it with Portside's own
uploader (skip, mount, resume, tags last), exactly like the other builders' results.

``push_via_engine`` is the other way out, through the engine: the engine's push stream
reports failures as ``errorDetail`` entries without an HTTP error, so every one of them
is turned into an exception here.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from portside.build.base import (
    Builder,
    BuildError,
    Progress,
    no_progress,
)
from portside.plugins import hookimpl

if TYPE_CHECKING:
    from portside.build.request import BuildRequest, BuildResult

# Registered with the plugin manager in every process that builds one (a warm
# credentialed answer included): asyncio, the docker package and the image layout
# code are imported by the methods that use them, not here.

__all__ = ["DockerBuilder", "check_stream", "portside_builders"]


def check_stream(
    events: Iterable[Mapping[str, Any]], *, step: str, progress: Progress = no_progress
) -> list[Mapping[str, Any]]:
    """Consume an engine JSON stream; raise on any ``error``/``errorDetail`` entry."""
    seen: list[Mapping[str, Any]] = []
    for event in events:
        seen.append(event)
        detail = event.get("errorDetail")
        if detail or event.get("error"):
            message = (detail.get("message") if isinstance(detail, Mapping) else None) or event.get(
                "error"
            )
            raise BuildError(f"{step}: the engine reported: {message}")
        text = event.get("stream") or event.get("status")
        if isinstance(text, str) and text.strip():
            extra = event.get("progress") or ""
            progress(step, f"{text.strip()} {extra}".strip())
    return seen


class DockerBuilder(Builder):
    name = "docker"
    description = "Dockerfile builds through the Docker Engine API at DOCKER_HOST"

    def __init__(self, base_url: str | None = None, timeout: int = 600) -> None:
        self.base_url = base_url
        self.timeout = timeout

    def _client(self) -> Any:
        # Imported by name: an optional dependency without type stubs, typed Any here.
        docker = importlib.import_module("docker")
        if self.base_url:
            return docker.DockerClient(base_url=self.base_url, timeout=self.timeout)
        return docker.from_env(timeout=self.timeout)

    def unavailable_reason(self) -> str | None:
        try:
            importlib.import_module("docker")
        except ImportError:
            return "the docker package is not installed (pip install 'portside[docker]')"
        try:
            client = self._client()
            try:
                client.ping()
            finally:
                client.close()
        except Exception as exc:  # any failure to reach the engine means "not here"
            where = self.base_url or os.environ.get("DOCKER_HOST") or "the default socket"
            return f"no container engine answers at {where} ({type(exc).__name__}: {exc})"
        return None

    async def build(self, request: BuildRequest, progress: Progress = no_progress) -> BuildResult:
        reason = self.unavailable_reason()
        if reason:
            raise BuildError(f"docker: {reason}")
        if len(request.platforms) > 1:
            raise BuildError(
                "docker: one platform per build through the Engine API; "
                "use the native builder (pure Python) or buildah for several"
            )
        import asyncio

        return await asyncio.to_thread(self._build, request, progress)

    def _build(self, request: BuildRequest, progress: Progress) -> BuildResult:
        import json
        import tempfile
        from pathlib import Path

        from portside.build.layout import Layout, platform_key
        from portside.build.request import BuildResult

        dockerfile = request.dockerfile or request.context / "Dockerfile"
        if not dockerfile.is_file():
            raise BuildError(f"docker: no Dockerfile at {dockerfile}")
        tag = (
            request.target
            if ":" in request.target.rsplit("/", 1)[-1]
            else request.target + ":build"
        )
        client = self._client()
        work = Path(tempfile.mkdtemp(prefix="docker-", dir=request.work_dir))
        try:
            events = client.api.build(
                path=str(request.context),
                dockerfile=str(dockerfile.resolve().relative_to(request.context.resolve())),
                tag=tag,
                buildargs=dict(request.build_args),
                labels=dict(request.labels),
                platform=request.platforms[0] if request.platforms else None,
                rm=True,
                forcerm=True,
                decode=True,
            )
            check_stream(events, step="docker build", progress=progress)
            image = client.images.get(tag)
            progress("docker export", f"saving {image.id}")
            archive = work / "image.tar"
            with archive.open("wb") as out:
                for block in image.save(named=False):
                    out.write(block)
            layout = Layout.from_docker_archive(archive, work / "layout")
            archive.unlink()
        except BuildError:
            raise
        except Exception as exc:  # the docker package raises many types; name the step
            raise BuildError(f"docker build: {type(exc).__name__}: {exc}") from exc
        finally:
            client.close()
        top = layout.top()
        assert top.config is not None
        config = json.loads(layout.read_blob(top.config.digest))
        progress("docker", f"built {top.digest}")
        return BuildResult(
            builder=self.name,
            kind="oci-layout",
            digest=top.digest,
            platform_digests={platform_key(config): top.digest},
            layout=layout.root,
            engine_image=str(image.id),
        )

    async def push_via_engine(
        self, image: str, destination: str, progress: Progress = no_progress
    ) -> None:
        """Tag ``image`` as ``destination`` in the engine and push it from there."""
        import asyncio

        await asyncio.to_thread(self._push_via_engine, image, destination, progress)

    def _push_via_engine(self, image: str, destination: str, progress: Progress) -> None:
        repository, _, tag = destination.rpartition(":")
        if "/" in tag or not repository:
            repository, tag = destination, "latest"
        client = self._client()
        try:
            client.images.get(image).tag(repository, tag)
            events = client.api.push(repository, tag=tag, stream=True, decode=True)
            check_stream(events, step=f"engine push {destination}", progress=progress)
        except BuildError:
            raise
        except Exception as exc:
            raise BuildError(f"engine push {destination}: {type(exc).__name__}: {exc}") from exc
        finally:
            client.close()


@hookimpl
def portside_builders() -> list[Builder]:
    return [DockerBuilder()]
