"""An HTTP pusher written with plain httpx, independent of portside's client.

Monolithic blob uploads (``POST`` then ``PUT ?digest=``), manifests ``PUT`` by digest and
by tag, with Basic auth or the bearer-token flow of the harness issuer. It is the
harness's own, deliberately simple, second implementation of the push protocol.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import httpx

from .images import Artifact, Blob

if TYPE_CHECKING:
    from .registry import Registry

_PARAM = re.compile(r'(\w+)="([^"]*)"')


class PushError(RuntimeError):
    """A push step failed; carries the status and the registry's error body."""

    def __init__(self, step: str, response: httpx.Response) -> None:
        self.status = response.status_code
        self.body = response.text[:2000]
        super().__init__(f"{step}: HTTP {self.status}: {self.body}")


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    # Enough for the challenges of distribution and of the harness's issuer; portside's
    # own parser is the thing under test, not this one.
    scheme, _, rest = header.partition(" ")
    return scheme.lower(), dict(_PARAM.findall(rest))


class HttpPusher:
    """Pushes artifacts to one registry over HTTP(S)."""

    def __init__(
        self,
        base_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        verify: Any = True,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = (username, password) if username is not None else None
        self.client = httpx.Client(verify=verify, timeout=timeout, trust_env=False)
        self._tokens: dict[str, str] = {}
        self._basic = False

    @classmethod
    def for_registry(cls, registry: Registry, *, anonymous: bool = False) -> HttpPusher:
        creds = None if anonymous else registry.basic_auth
        return cls(
            registry.url,
            username=creds[0] if creds else None,
            password=creds[1] if creds else None,
            verify=registry.verify,
        )

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> HttpPusher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- auth --------------------------------------------------------------------------
    def _auth_headers(self, scope: str) -> dict[str, str]:
        if scope in self._tokens:
            return {"Authorization": f"Bearer {self._tokens[scope]}"}
        if self._basic and self.credentials:
            user, password = self.credentials
            raw = f"{user}:{password or ''}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}
        return {}

    def _authenticate(self, response: httpx.Response, scope: str) -> bool:
        """React to a 401 once; True if a retry makes sense."""
        header = response.headers.get("WWW-Authenticate", "")
        scheme, params = _challenge(header)
        if scheme == "basic" and self.credentials and not self._basic:
            self._basic = True
            return True
        if scheme == "bearer" and scope not in self._tokens:
            query: list[tuple[str, str | int | float | bool | None]] = [
                ("service", params.get("service", ""))
            ]
            # Our own scope, not the challenge's: a HEAD is challenged for pull only, but
            # the same token must also cover the POST/PUT that follow.
            query.append(("scope", scope))
            auth = (
                httpx.BasicAuth(self.credentials[0], self.credentials[1] or "")
                if self.credentials
                else None
            )
            token_response = self.client.get(params["realm"], params=query, auth=auth)
            if token_response.status_code != 200:
                raise PushError("token request", token_response)
            body = token_response.json()
            self._tokens[scope] = body.get("token") or body["access_token"]
            return True
        return False

    def request(self, method: str, url: str, *, scope: str, **kwargs: Any) -> httpx.Response:
        """One request with at most one auth round trip."""
        if not url.startswith(("http://", "https://")):
            url = urljoin(self.base_url + "/", url.lstrip("/"))
        headers = dict(kwargs.pop("headers", {}))
        response = self.client.request(
            method, url, headers={**headers, **self._auth_headers(scope)}, **kwargs
        )
        if response.status_code == 401 and self._authenticate(response, scope):
            response = self.client.request(
                method, url, headers={**headers, **self._auth_headers(scope)}, **kwargs
            )
        return response

    # -- protocol ----------------------------------------------------------------------
    @staticmethod
    def _scope(repo: str, actions: str = "pull,push") -> str:
        return f"repository:{repo}:{actions}"

    def blob_exists(self, repo: str, digest: str) -> bool:
        response = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", scope=self._scope(repo))
        return response.status_code == 200

    def push_blob(self, repo: str, blob: Blob) -> None:
        """Monolithic upload: ``POST`` a session, ``PUT`` the bytes with ``digest=``."""
        if self.blob_exists(repo, blob.digest):
            return
        scope = self._scope(repo)
        start = self.request("POST", f"/v2/{repo}/blobs/uploads/", scope=scope)
        if start.status_code != 202:
            raise PushError(f"start upload of {blob.digest}", start)
        location = urljoin(f"{self.base_url}/v2/{repo}/blobs/uploads/", start.headers["Location"])
        sep = "&" if "?" in location else "?"
        done = self.request(
            "PUT",
            f"{location}{sep}digest={blob.digest}",
            scope=scope,
            content=blob.data,
            headers={"Content-Type": "application/octet-stream"},
        )
        if done.status_code != 201:
            raise PushError(f"finish upload of {blob.digest}", done)

    def put_manifest(self, repo: str, reference: str, manifest: Blob) -> str:
        """``PUT`` a manifest by tag or digest; returns the registry's digest."""
        response = self.request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            scope=self._scope(repo),
            content=manifest.data,
            headers={"Content-Type": manifest.media_type},
        )
        if response.status_code != 201:
            raise PushError(f"put manifest {repo}:{reference}", response)
        return str(response.headers.get("Docker-Content-Digest", manifest.digest))

    def push(self, repo: str, artifact: Artifact, tags: Iterable[str] = ()) -> str:
        """Blobs, child manifests by digest, the top manifest by digest then by each tag."""
        for blob in artifact.blobs:
            self.push_blob(repo, blob)
        for manifest in artifact.manifests:
            self.put_manifest(repo, manifest.digest, manifest)
        for tag in tags:
            self.put_manifest(repo, tag, artifact.manifest)
        return artifact.digest

    def delete_manifest(self, repo: str, digest: str) -> None:
        """Delete a manifest by digest (every tag pointing at it goes too)."""
        response = self.request(
            "DELETE", f"/v2/{repo}/manifests/{digest}", scope=self._scope(repo, "delete")
        )
        if response.status_code not in (202, 404):
            raise PushError(f"delete manifest {repo}@{digest}", response)
