"""OCI image layouts on disk: the local hand-over between a builder and publish.

Only what Portside needs: read the top manifest and blobs by digest, add blobs, point
``index.json`` at one image or index, and turn a ``docker save`` archive into a layout
(the engine's layers are uncompressed tars; they stay uncompressed, so their digests
equal their diff ids and nothing is recompressed).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from portside.build.base import BuildError
from portside.reference import Digest
from portside.registry import mediatypes as mt
from portside.registry.manifest import Manifest, parse_manifest

__all__ = ["Layout", "platform_key"]


def platform_key(doc: dict[str, Any]) -> str:
    """``os/arch[/variant]`` of a config or descriptor ``platform`` object."""
    key = f"{doc.get('os', 'linux')}/{doc.get('architecture', 'amd64')}"
    if doc.get("variant"):
        key += f"/{doc['variant']}"
    return key


def canonical(doc: Any) -> bytes:
    """JSON bytes that are the same for the same document (digests depend on them)."""
    return json.dumps(doc, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


@dataclass
class Layout:
    root: Path

    @classmethod
    def create(cls, root: Path) -> Layout:
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        if not (root / "index.json").exists():
            (root / "index.json").write_text('{"schemaVersion":2,"manifests":[]}')
        return cls(root)

    def blob_path(self, digest: Digest) -> Path:
        return self.root / "blobs" / digest.algorithm / digest.hex

    def has(self, digest: Digest) -> bool:
        return self.blob_path(digest).exists()

    def read_blob(self, digest: Digest) -> bytes:
        data = self.blob_path(digest).read_bytes()
        if not digest.matches(data):
            raise BuildError(f"OCI layout {self.root}: blob {digest.short} is corrupt")
        return data

    def add_blob(self, data: bytes) -> Digest:
        digest = Digest.of(data)
        path = self.blob_path(digest)
        if not path.exists():
            path.write_bytes(data)
        return digest

    def add_file(self, source: IO[bytes]) -> tuple[Digest, int]:
        """Copy a stream in as a blob, hashing as it goes (never whole in memory)."""
        hasher = hashlib.sha256()
        size = 0
        with tempfile.NamedTemporaryFile(dir=self.root / "blobs", delete=False) as out:
            while block := source.read(1 << 20):
                hasher.update(block)
                out.write(block)
                size += len(block)
        digest = Digest("sha256", hasher.hexdigest())
        Path(out.name).replace(self.blob_path(digest))
        return digest, size

    def entries(self) -> list[dict[str, Any]]:
        doc = json.loads((self.root / "index.json").read_text())
        manifests: list[dict[str, Any]] = doc.get("manifests") or []
        return manifests

    def set_top(self, media_type: str, digest: Digest, size: int, name: str = "latest") -> None:
        """Make ``index.json`` name exactly one image or index (the build's result)."""
        entry = {
            "mediaType": media_type,
            "digest": str(digest),
            "size": size,
            "annotations": {"org.opencontainers.image.ref.name": name},
        }
        doc = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [entry]}
        (self.root / "index.json").write_text(json.dumps(doc))

    def top(self) -> Manifest:
        """The one image or index this layout holds (an error when it holds several)."""
        entries = self.entries()
        if len(entries) != 1:
            raise BuildError(
                f"OCI layout {self.root} holds {len(entries)} images; expected exactly one"
            )
        return self.manifest(Digest.parse(entries[0]["digest"]), entries[0].get("mediaType"))

    def manifest(self, digest: Digest, media_type: str | None = None) -> Manifest:
        raw = self.read_blob(digest)
        return parse_manifest(raw, digest=digest, content_type=media_type, where=str(self.root))

    def combine(self, entries: list[dict[str, Any]]) -> Manifest:
        """Write an OCI index over image manifests (descriptors with platforms); top it."""
        index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}
        raw = canonical(index)
        digest = self.add_blob(raw)
        self.set_top(mt.OCI_INDEX, digest, len(raw))
        return self.manifest(digest, mt.OCI_INDEX)

    @classmethod
    def from_docker_archive(cls, archive: Path, root: Path) -> Layout:
        """Convert a ``docker save`` tarball (one image) into a layout with an OCI manifest."""
        layout = cls.create(root)
        try:
            with tarfile.open(archive) as tar:
                index = json.load(_member(tar, "manifest.json"))
                if not isinstance(index, list) or len(index) != 1:
                    raise BuildError(f"{archive}: expected one image in the engine's export")
                entry = index[0]
                config_raw = _member(tar, entry["Config"]).read()
                config_digest = layout.add_blob(config_raw)
                layers = []
                for name in entry["Layers"]:
                    digest, size = layout.add_file(_member(tar, name))
                    layers.append({"mediaType": mt.OCI_LAYER, "digest": str(digest), "size": size})
        except (tarfile.TarError, KeyError, ValueError, OSError) as exc:
            raise BuildError(f"cannot read the engine's image export {archive}: {exc}") from exc
        manifest = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {
                "mediaType": mt.OCI_CONFIG,
                "digest": str(config_digest),
                "size": len(config_raw),
            },
            "layers": layers,
        }
        raw = canonical(manifest)
        layout.set_top(mt.OCI_MANIFEST, layout.add_blob(raw), len(raw))
        return layout

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _member(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    handle = tar.extractfile(name)
    if handle is None:
        raise BuildError(f"{name} is not a file in the engine's image export")
    return handle
