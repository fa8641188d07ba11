"""Reproducible layer tarballs: the same files give the same bytes, hence the same digest.

What varies between two otherwise equal builds is removed: entry order (sorted), owners
(0:0, no names), modes (0644, or 0755 for directories and executables), mtimes (all
``SOURCE_DATE_EPOCH``, or 0) and gzip's own header (no name, mtime 0).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from portside.reference import Digest

__all__ = ["Layer", "make_layer"]


@dataclass(frozen=True)
class Layer:
    data: bytes  # gzip-compressed tar
    digest: Digest  # of ``data``
    diff_id: Digest  # of the uncompressed tar
    files: int


def make_layer(files: Mapping[str, tuple[bytes, bool]], *, mtime: int = 0) -> Layer:
    """A gzip'd tar of ``{path: (content, executable)}``; parents are added as directories."""
    directories: set[str] = set()
    for path in files:
        for parent in PurePosixPath(path).parents:
            if str(parent) not in (".", "/", ""):
                directories.add(str(parent))
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(directories | set(files)):
            info = tarfile.TarInfo(name)
            info.mtime = mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if name in files:
                content, executable = files[name]
                info.size = len(content)
                info.mode = 0o755 if executable else 0o644
                tar.addfile(info, io.BytesIO(content))
            else:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
    tar_bytes = raw.getvalue()
    compressed = gzip.compress(tar_bytes, compresslevel=6, mtime=0)
    return Layer(
        data=compressed,
        digest=Digest("sha256", hashlib.sha256(compressed).hexdigest()),
        diff_id=Digest("sha256", hashlib.sha256(tar_bytes).hexdigest()),
        files=len(files),
    )
