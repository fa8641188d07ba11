"""The real ``skopeo``, as an independent second client for cross-checks.

Plain-HTTP registries get ``--tls-verify=false``, TLS ones ``--cert-dir`` with the test
CA, auth registries ``--creds``. Every call has a timeout and fails with skopeo's stderr.
An empty auth file is passed so the machine's own credentials never leak into a test.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .registry import Registry

DEFAULT_TIMEOUT = 30.0


class SkopeoError(RuntimeError):
    """skopeo failed or timed out; the message has the command line and its stderr."""

    def __init__(self, argv: list[str], detail: str, returncode: int | None = None) -> None:
        self.argv = argv
        self.detail = detail
        self.returncode = returncode
        super().__init__(f"{' '.join(argv)} failed ({returncode}): {detail.strip()[-2000:]}")


_EMPTY_AUTH: Path | None = None


def _empty_authfile() -> Path:
    """One empty auth file (and HOME) per process, removed at exit."""
    global _EMPTY_AUTH
    if _EMPTY_AUTH is None:
        folder = Path(tempfile.mkdtemp(prefix="portside-skopeo-"))
        atexit.register(shutil.rmtree, folder, True)
        _EMPTY_AUTH = folder / "auth.json"
        _EMPTY_AUTH.write_text('{"auths": {}}')
    return _EMPTY_AUTH


def skopeo_available() -> bool:
    return shutil.which("skopeo") is not None


class Skopeo:
    """skopeo bound to one registry's transport settings and credentials."""

    def __init__(
        self,
        *,
        tls_verify: bool = True,
        cert_dir: Path | None = None,
        creds: tuple[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        authfile: Path | None = None,
    ) -> None:
        self.tls_verify = tls_verify
        self.cert_dir = cert_dir
        self.creds = creds
        self.timeout = timeout
        self.authfile = authfile or _empty_authfile()

    @classmethod
    def for_registry(
        cls, registry: Registry, *, anonymous: bool = False, timeout: float = DEFAULT_TIMEOUT
    ) -> Skopeo:
        """Settings to reach ``registry``: TLS via its CA, its credentials unless anonymous."""
        return cls(
            tls_verify=registry.tls is not None,
            cert_dir=registry.tls.cert_dir() if registry.tls else None,
            creds=None if anonymous else registry.basic_auth,
            timeout=timeout,
        )

    def _transport_flags(self, prefix: str = "") -> list[str]:
        # ``copy`` wants --src-*/--dest-* variants of the same flags.
        flags = [f"--{prefix}tls-verify={'true' if self.tls_verify else 'false'}"]
        if self.cert_dir is not None:
            flags.append(f"--{prefix}cert-dir={self.cert_dir}")
        if self.creds is not None:
            flags.append(f"--{prefix}creds={self.creds[0]}:{self.creds[1]}")
        else:
            flags.append(f"--{prefix}no-creds")
        return flags

    def run(self, *args: str, input_data: bytes | None = None) -> bytes:
        """Run ``skopeo ARGS`` (bounded); stdout bytes or SkopeoError."""
        argv = ["skopeo", "--command-timeout", f"{int(self.timeout)}s", *args]
        shown = [
            a
            if not a.startswith(("--creds", "--src-creds", "--dest-creds"))
            else a.split("=", 1)[0] + "=***"
            for a in argv
        ]
        try:
            done = subprocess.run(
                argv,
                input=input_data,
                capture_output=True,
                timeout=self.timeout + 5,
                env={
                    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                    "HOME": str(self.authfile.parent),
                    "REGISTRY_AUTH_FILE": str(self.authfile),
                },
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SkopeoError(shown, f"timed out after {self.timeout}s") from exc
        if done.returncode != 0:
            raise SkopeoError(shown, done.stderr.decode(errors="replace"), done.returncode)
        return done.stdout

    @staticmethod
    def _docker(ref: str) -> str:
        return ref if ref.startswith("docker://") else f"docker://{ref}"

    def list_tags(self, repo_ref: str) -> list[str]:
        """Tags of ``HOST/REPO`` (skopeo follows the registry's pagination itself)."""
        out = self.run("list-tags", *self._transport_flags(), self._docker(repo_ref))
        tags: list[str] = json.loads(out)["Tags"] or []
        return tags

    def inspect_raw(self, ref: str) -> bytes:
        """The manifest bytes exactly as the registry serves them (index or image).

        skopeo does not verify these against a digest reference; ``inspect`` does.
        """
        return self.run("inspect", "--raw", *self._transport_flags(), self._docker(ref))

    def inspect_raw_json(self, ref: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.inspect_raw(ref))
        return data

    def inspect(
        self, ref: str, *, platform: tuple[str, str, str | None] | None = None
    ) -> dict[str, Any]:
        """skopeo's parsed view; for an index, of the child for ``platform`` (os, arch,
        variant), by default the machine's own.
        """
        flags: list[str] = []
        if platform is not None:
            os_name, arch, variant = platform
            flags += [f"--override-os={os_name}", f"--override-arch={arch}"]
            if variant:
                flags.append(f"--override-variant={variant}")
        out = self.run(*flags, "inspect", *self._transport_flags(), self._docker(ref))
        data: dict[str, Any] = json.loads(out)
        return data

    def inspect_config(self, ref: str) -> dict[str, Any]:
        """The image config blob of ``ref`` (platform-selected for an index)."""
        out = self.run("inspect", "--config", "--raw", *self._transport_flags(), self._docker(ref))
        data: dict[str, Any] = json.loads(out)
        return data

    def digest(self, ref: str) -> str:
        """The digest of the manifest ``ref`` names, computed from the served bytes."""
        return "sha256:" + hashlib.sha256(self.inspect_raw(ref)).hexdigest()

    def delete(self, ref: str) -> None:
        self.run("delete", *self._transport_flags(), self._docker(ref))

    def copy(self, src: str, dest: str, *, all_platforms: bool = True) -> None:
        """Copy between two refs of this registry (same transport settings both sides)."""
        flags = ["--all"] if all_platforms else []
        self.run(
            "copy",
            *flags,
            *self._transport_flags("src-"),
            *self._transport_flags("dest-"),
            self._docker(src),
            self._docker(dest),
        )
