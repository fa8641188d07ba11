"""Write images straight into distribution's filesystem storage layout (the fast path).

A registry with 2,000+ tags takes far too long to seed over HTTP; writing the files the
registry would have written takes well under a second. Layout (distribution 2.x,
``storage/paths.go``), under ``<root>/docker/registry/v2``:

- ``blobs/sha256/<hex[:2]>/<hex>/data``: every blob and manifest, by digest
- ``repositories/<repo>/_layers/sha256/<hex>/link``: blobs (configs, layers) the repo may serve
- ``repositories/<repo>/_manifests/revisions/sha256/<hex>/link``: manifests of the repo
- ``repositories/<repo>/_manifests/tags/<tag>/current/link``: what the tag points to
- ``repositories/<repo>/_manifests/tags/<tag>/index/sha256/<hex>/link``: the tag's history

A link file holds ``sha256:<hex>`` with no newline. Files are written atomically (temp
file + rename) so a running registry never reads half a file; the registry keeps no
cache of these (see ``registry.py``), so changes are visible at once.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from .images import Artifact, Blob

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")


def _hex(digest: str) -> str:
    if not _DIGEST.match(digest):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return digest.split(":", 1)[1]


def _write_atomic(path: Path, data: bytes) -> None:
    # os.makedirs stats before it creates: fewer failing mkdir calls than Path.mkdir.
    os.makedirs(path.parent, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class FsStorage:
    """The storage of one registry, addressed by its ``rootdirectory``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.v2 = root / "docker" / "registry" / "v2"

    def blob_path(self, digest: str) -> Path:
        hexd = _hex(digest)
        return self.v2 / "blobs" / "sha256" / hexd[:2] / hexd / "data"

    def repo_path(self, repo: str) -> Path:
        if repo.startswith("/") or ".." in repo.split("/") or not repo:
            raise ValueError(f"bad repository name {repo!r}")
        return self.v2 / "repositories" / repo

    def put_blob(self, blob: Blob) -> None:
        path = self.blob_path(blob.digest)
        if not path.exists():
            _write_atomic(path, blob.data)

    def _link(self, path: Path, digest: str) -> None:
        data = digest.encode()
        with contextlib.suppress(FileNotFoundError):
            if path.read_bytes() == data:
                return
        _write_atomic(path, data)

    def link_layer(self, repo: str, digest: str) -> None:
        self._link(self.repo_path(repo) / "_layers" / "sha256" / _hex(digest) / "link", digest)

    def put_manifest(self, repo: str, manifest: Blob) -> None:
        self.put_blob(manifest)
        hexd = _hex(manifest.digest)
        self._link(
            self.repo_path(repo) / "_manifests" / "revisions" / "sha256" / hexd / "link",
            manifest.digest,
        )

    def put_artifact(self, repo: str, artifact: Artifact) -> None:
        """Blobs, layer links and manifests (children before the index)."""
        for blob in artifact.blobs:
            self.put_blob(blob)
            self.link_layer(repo, blob.digest)
        for manifest in artifact.manifests:
            self.put_manifest(repo, manifest)

    def tag(self, repo: str, tag: str, digest: str) -> None:
        if not _TAG.match(tag):
            raise ValueError(f"bad tag {tag!r}")
        base = self.repo_path(repo) / "_manifests" / "tags" / tag
        self._link(base / "index" / "sha256" / _hex(digest) / "link", digest)
        self._link(base / "current" / "link", digest)

    def untag(self, repo: str, tag: str) -> None:
        shutil.rmtree(self.repo_path(repo) / "_manifests" / "tags" / tag, ignore_errors=True)

    def tags(self, repo: str) -> list[str]:
        base = self.repo_path(repo) / "_manifests" / "tags"
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if (p / "current" / "link").is_file())

    def tag_digest(self, repo: str, tag: str) -> str | None:
        path = self.repo_path(repo) / "_manifests" / "tags" / tag / "current" / "link"
        try:
            return path.read_text()
        except FileNotFoundError:
            return None

    def write(self, repo: str, artifact: Artifact, tags: Iterable[str] = ()) -> None:
        """Everything a push of ``artifact`` under ``tags`` would have written."""
        self.put_artifact(repo, artifact)
        for tag in tags:
            self.tag(repo, tag, artifact.digest)
