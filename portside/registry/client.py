"""Registry operations: tags, manifests, blobs, uploads, referrers.

The facade over ``auth`` and ``transport``. Every digest it returns was checked against
the bytes it came with; nothing it hands out is unverified.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

from portside import errors, jsonscan
from portside.contract import CredentialSource
from portside.redact import redact_url
from portside.reference import Digest, Reference
from portside.registry import mediatypes as mt
from portside.registry.auth import Authenticator
from portside.registry.challenge import Scope
from portside.registry.credentials import Credential, CredentialStore
from portside.registry.manifest import (
    Descriptor,
    ImageConfig,
    Manifest,
    Platform,
    parse_config,
    parse_manifest,
)
from portside.registry.ratelimit import RateLimit
from portside.registry.transport import (
    ClientOptions,
    Response,
    Transport,
    bounded_chunks,
    check_destination,
    origin,
    raise_for_status,
)

__all__ = ["ClientOptions", "RegistryClient", "TagListing", "UploadResult"]

DEFAULT_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class UploadResult:
    descriptor_digest: Digest
    size: int
    mounted: bool = False
    existed: bool = False


@dataclass(frozen=True)
class TagListing:
    """A tag list, or ``tags=None`` when the registry said it had not changed (304)."""

    tags: list[str] | None
    etag: str | None


def _pull(ref: Reference) -> tuple[Scope, ...]:
    return (Scope("repository", ref.repository, ("pull",)),)


def _push(ref: Reference, *extra: Scope) -> tuple[Scope, ...]:
    return (Scope("repository", ref.repository, ("pull", "push")), *extra)


def _raise_for_status(
    response: Response, ref: Reference, *, what: str, ok: Sequence[int] = (200,)
) -> None:
    """:func:`raise_for_status` for a request about ``ref``'s repository."""
    raise_for_status(response, registry=ref.registry, repository=ref.repository, what=what, ok=ok)


def _digest_header(response: Response, ref: Reference) -> Digest | None:
    value = response.headers.get("docker-content-digest")
    if not value:
        return None
    try:
        return Digest.parse(value.strip())
    except errors.InvalidDigest:
        raise errors.InvalidResponse(
            f"the registry sent an invalid Docker-Content-Digest header {value[:80]!r}",
            registry=ref.registry,
            repository=ref.repository,
        ) from None


class RegistryClient:
    """An OCI distribution client for any registry. Use as an async context manager."""

    def __init__(
        self,
        options: ClientOptions | None = None,
        *,
        credentials: CredentialSource | None = None,
        http_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.options = options or ClientOptions()
        self._transport = Transport(self.options, http_transport=http_transport)
        if credentials is None:
            credentials = CredentialStore()
        self._auth = Authenticator(self._transport, credentials)
        # Per API host: whether the Referrers API is there (absent: not known yet).
        self._referrers_api: dict[str, bool] = {}
        self._referrers_probes: dict[str, asyncio.Lock] = {}

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._transport.aclose()

    @property
    def warnings(self) -> list[str]:
        """Registry ``Warning: 299`` texts seen so far, each once."""
        return list(self._transport.warnings)

    def rate_limit(self, registry: str) -> RateLimit | None:
        """What the registry's quota headers said last; ``None`` means unknown, not zero."""
        host = Reference(registry, "x/x", None, None).api_host
        return self._transport.rate_limit(host)

    def credential_sent(self, registry: str) -> Credential | None:
        """The credential this client's requests to ``registry`` carried so far, or None
        while they all went anonymously (what the cache keys an answer by)."""
        return self._auth.credential_sent(registry)

    # -- plumbing --------------------------------------------------------------------

    async def _request(
        self,
        ref: Reference,
        method: str,
        path: str,
        *,
        scopes: tuple[Scope, ...],
        params: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        max_bytes: int | None = None,
        stream: bool = False,
        url: httpx.URL | None = None,
    ) -> Response:
        base = await self._transport.base_url(ref.api_host)
        if url is None:
            # (An absolute path on the base: one parse, not join's two.)
            url = httpx.URL(f"{base}{path}") if path.startswith("/") else base.join(path)
            if params:
                url = url.copy_merge_params(httpx.QueryParams(tuple(params)))
        return await self._auth.send(
            method,
            url,
            registry=ref.registry,
            base=base,
            scopes=scopes,
            headers=headers,
            content=content,
            max_bytes=max_bytes,
            stream=stream,
        )

    def _where(self, ref: Reference) -> str:
        return f"{ref.registry}/{ref.repository}"

    # -- ping and tags ---------------------------------------------------------------

    async def ping(self, registry: str) -> None:
        """Check that ``registry`` speaks the distribution API (and that we may ask it)."""
        ref = Reference(registry, "x/x", None, None)
        response = await self._request(ref, "GET", "/v2/", scopes=())
        if response.status == 404:
            raise errors.NotARegistry(
                "/v2/ answered 404: this is not an OCI registry",
                registry=registry,
                hint="check the host name and port",
            )
        raise_for_status(response, registry=registry, repository=None, what="/v2/")

    async def list_tags(self, ref: Reference, *, page_size: int | None = None) -> list[str]:
        """Every tag of the repository, following ``Link`` pages on the same origin."""
        listing = await self.list_tags_if_changed(ref, page_size=page_size)
        assert listing.tags is not None  # no ETag given: never "unchanged"
        return listing.tags

    async def list_tags_if_changed(
        self, ref: Reference, *, etag: str | None = None, page_size: int | None = None
    ) -> TagListing:
        """Like :meth:`list_tags`, but asks with ``If-None-Match: etag`` first.

        ``tags`` is ``None`` when the registry answered 304 (the list is unchanged).
        The returned ``etag`` is only set for a list that came in one page: a page's
        ETag says nothing about the pages after it.
        """
        path = f"/v2/{ref.repository}/tags/list"
        params = [("n", str(page_size))] if page_size else None
        base = await self._transport.base_url(ref.api_host)
        url: httpx.URL | None = None
        seen: set[str] = set()
        tags: list[str] = []
        headers = {"If-None-Match": etag} if etag else None
        for page in range(self.options.max_pages):
            response = await self._request(
                ref,
                "GET",
                path,
                scopes=_pull(ref),
                params=params,
                url=url,
                headers=headers if page == 0 else None,
                max_bytes=16 * 1024 * 1024,
            )
            if page == 0 and etag and response.status == 304:
                return TagListing(None, etag)
            _raise_for_status(response, ref, what="tag list")
            tags.extend(self._parse_tags(response, ref))
            url = _next_page(response, base, seen, "tag list", ref.registry, ref.repository)
            if url is None:
                single = page == 0 and response.headers.get("etag")
                return TagListing(tags, single or None)
        raise _endless(self.options.max_pages, "tag list", ref.registry, ref.repository)

    async def catalog(self, registry: str, *, page_size: int | None = None) -> list[str]:
        """The repositories ``registry`` lists in ``GET /v2/_catalog`` (scope
        ``registry:catalog:*``), following ``Link`` pagination by the same rules as tag
        lists (same origin, no loops, at most ``max_pages``).

        Many registries do not offer the catalog, or not to us: a 401, 403 or 404 (also
        when the token service refuses the scope) means "not allowed here" and gives an
        empty list, not an error. Other failures raise as usual.
        """
        ref = Reference(registry, "x/x", None, None)
        scopes = (Scope("registry", "catalog", ("*",)),)
        params = [("n", str(page_size))] if page_size else None
        base = await self._transport.base_url(ref.api_host)
        url: httpx.URL | None = None
        seen: set[str] = set()
        names: list[str] = []
        for _ in range(self.options.max_pages):
            try:
                response = await self._request(
                    ref,
                    "GET",
                    "/v2/_catalog",
                    scopes=scopes,
                    params=params,
                    url=url,
                    max_bytes=16 * 1024 * 1024,
                )
            except (errors.Unauthorized, errors.Denied, errors.NotFound):
                return []
            if response.status in (401, 403, 404):
                return []
            raise_for_status(response, registry=registry, repository=None, what="catalog")
            try:
                doc = jsonscan.loads(response.content)
            except ValueError:  # not JSON, or nested too deeply
                doc = None
            if not isinstance(doc, dict):
                raise errors.InvalidResponse("the catalog is not a JSON object", registry=registry)
            page = doc.get("repositories")
            if page is not None and not isinstance(page, list):
                raise errors.InvalidResponse(
                    "the catalog's 'repositories' is not a list", registry=registry
                )
            names.extend(n for n in page or [] if isinstance(n, str))
            url = _next_page(response, base, seen, "catalog", registry, None)
            if url is None:
                return names
        raise _endless(self.options.max_pages, "catalog", registry, None)

    def _parse_tags(self, response: Response, ref: Reference) -> list[str]:
        try:
            doc = jsonscan.loads(response.content)
        except ValueError:  # not JSON, or nested too deeply
            doc = None
        if not isinstance(doc, dict):
            raise errors.InvalidResponse(
                "the tag list is not a JSON object",
                registry=ref.registry,
                repository=ref.repository,
            )
        tags = doc.get("tags")
        if tags is None:
            return []
        if not isinstance(tags, list):
            raise errors.InvalidResponse(
                "the tag list's 'tags' is not a list",
                registry=ref.registry,
                repository=ref.repository,
            )
        return [t for t in tags if isinstance(t, str)]

    # -- manifests -------------------------------------------------------------------

    async def _manifest_request(
        self, ref: Reference, method: str, *, max_bytes: int | None = None
    ) -> Response:
        """``method`` (HEAD or GET) on ``ref``'s manifest, accepting every type we read."""
        response = await self._request(
            ref,
            method,
            f"/v2/{ref.repository}/manifests/{ref.identifier}",
            scopes=_pull(ref),
            headers={"Accept": mt.MANIFEST_ACCEPT},
            max_bytes=max_bytes,
        )
        _raise_for_status(response, ref, what=f"manifest {ref.identifier}")
        return response

    async def head_manifest(self, ref: Reference) -> Descriptor:
        """The descriptor a tag or digest points to now, without downloading the body.

        A registry that does not send ``Docker-Content-Digest`` on HEAD costs a GET.
        """
        response = await self._manifest_request(ref, "HEAD")
        digest = _digest_header(response, ref)
        media_type = (response.headers.get("content-type") or "").split(";")[0].strip()
        length = response.headers.get("content-length")
        if digest is None or not media_type or not (length and length.isdigit()):
            return (await self.get_manifest(ref)).descriptor
        if ref.digest is not None and digest != ref.digest:
            raise errors.DigestMismatch(
                expected=str(ref.digest),
                actual=str(digest),
                what=f"manifest {ref.identifier}",
                registry=ref.registry,
                repository=ref.repository,
            )
        if media_type in mt.SCHEMA1_TYPES:
            raise errors.UnsupportedMediaType(
                f"{ref.familiar}: Docker schema 1 manifests are not supported",
                registry=ref.registry,
                repository=ref.repository,
            )
        return Descriptor(media_type, digest, int(length))

    async def get_manifest(self, ref: Reference) -> Manifest:
        """The manifest or index a tag or digest names, its digest verified."""
        response = await self._manifest_request(
            ref, "GET", max_bytes=self.options.max_manifest_bytes
        )
        raw = response.content
        expected = ref.digest or _digest_header(response, ref)
        algorithm = expected.algorithm if expected else "sha256"
        actual = Digest.of(raw, algorithm)
        if expected is not None and actual != expected:
            raise errors.DigestMismatch(
                expected=str(expected),
                actual=str(actual),
                what=f"manifest {ref.identifier}",
                registry=ref.registry,
                repository=ref.repository,
            )
        header = _digest_header(response, ref)
        if ref.digest is not None and header is not None and header != ref.digest:
            raise errors.DigestMismatch(
                expected=str(ref.digest),
                actual=str(header),
                what=f"manifest {ref.identifier} (Docker-Content-Digest header)",
                registry=ref.registry,
                repository=ref.repository,
            )
        return parse_manifest(
            raw,
            digest=actual,
            content_type=response.headers.get("content-type"),
            where=f"{self._where(ref)}@{actual}",
        )

    async def get_image_manifest(
        self, ref: Reference, platform: Platform | None = None
    ) -> tuple[Manifest, Manifest | None]:
        """(image manifest, the index it was chosen from or None) for one platform."""
        top = await self.get_manifest(ref)
        if not top.is_index:
            return top, None
        wanted = platform or Platform("linux", "amd64")
        child = top.select(wanted)
        image = await self.get_manifest(ref.with_digest(child.digest))
        if len(image.raw) != child.size or image.media_type != child.media_type:
            raise errors.InvalidResponse(
                f"{ref.familiar}: the manifest for {wanted} does not match its index entry "
                f"(size {len(image.raw)} vs {child.size}, "
                f"type {image.media_type} vs {child.media_type})",
                registry=ref.registry,
                repository=ref.repository,
            )
        if image.is_index:
            raise errors.InvalidResponse(
                f"{ref.familiar}: the index entry for {wanted} is itself an index",
                registry=ref.registry,
                repository=ref.repository,
            )
        return image, top

    async def put_manifest(self, ref: Reference, raw: bytes, media_type: str) -> Digest:
        """Upload a manifest under ``ref``'s tag (or by digest); returns its digest."""
        digest = Digest.of(raw)
        if ref.digest is not None and ref.digest != digest:
            raise errors.DigestMismatch(
                expected=str(ref.digest), actual=str(digest), what="manifest to upload"
            )
        identifier = ref.tag if ref.tag and ref.digest is None else str(digest)
        response = await self._request(
            ref,
            "PUT",
            f"/v2/{ref.repository}/manifests/{identifier}",
            scopes=_push(ref),
            headers={"Content-Type": media_type},
            content=raw,
        )
        _raise_for_status(response, ref, what=f"manifest upload {identifier}", ok=(200, 201, 202))
        answered = _digest_header(response, ref)
        if answered is not None and answered != digest:
            raise errors.DigestMismatch(
                expected=str(digest),
                actual=str(answered),
                what="manifest upload (the registry's digest)",
                registry=ref.registry,
                repository=ref.repository,
            )
        manifest = parse_manifest(
            raw, digest=digest, content_type=media_type, where=self._where(ref)
        )
        if manifest.subject is not None and "oci-subject" not in response.headers:
            await self._add_to_referrers_tag(ref, manifest)
        return digest

    async def delete_manifest(self, ref: Reference) -> None:
        """Delete a manifest by digest, or a tag when the registry supports tag deletion."""
        response = await self._request(
            ref,
            "DELETE",
            f"/v2/{ref.repository}/manifests/{ref.identifier}",
            scopes=(Scope("repository", ref.repository, ("delete",)),),
        )
        _raise_for_status(response, ref, what=f"delete {ref.identifier}", ok=(200, 202))

    # -- blobs -----------------------------------------------------------------------

    async def get_blob(
        self, ref: Reference, digest: Digest, *, max_bytes: int | None = None
    ) -> bytes:
        """A blob read into memory under a cap, verified against ``digest``."""
        cap = max_bytes or self.options.max_config_bytes
        # Read whole, so bounded like any request: --timeout for all of it.
        deadline = self._transport.request_deadline(ref.api_host)
        stream = self._stream_blob(ref, digest, max_bytes=cap, deadline=deadline)
        chunks = [chunk async for chunk in stream]
        return b"".join(chunks)

    def stream_blob(
        self, ref: Reference, digest: Digest, *, max_bytes: int | None = None
    ) -> AsyncIterator[bytes]:
        """Stream a blob; the digest is checked as the bytes pass and at the end.

        A mismatch raises at the end, so callers must not commit what they wrote
        until the iterator finishes. A layer may take long: only the client's deadline
        (``ClientOptions.deadline``) bounds the whole stream.
        """
        deadline = self._transport.deadline_at
        return self._stream_blob(ref, digest, max_bytes=max_bytes, deadline=deadline)

    async def _stream_blob(
        self, ref: Reference, digest: Digest, *, max_bytes: int | None, deadline: float | None
    ) -> AsyncIterator[bytes]:
        response = await self._request(
            ref,
            "GET",
            f"/v2/{ref.repository}/blobs/{digest}",
            scopes=_pull(ref),
            stream=True,
            max_bytes=max_bytes if max_bytes is not None else 1 << 62,
        )
        _raise_for_status(response, ref, what=f"blob {digest.short}")
        assert response.stream is not None
        hasher = hashlib.new(digest.algorithm)
        total = 0
        try:
            async for chunk in bounded_chunks(response.stream, deadline):
                total += len(chunk)
                if max_bytes is not None and total > max_bytes:
                    raise errors.TooLarge(
                        f"blob {digest.short} is larger than the limit of {max_bytes} bytes",
                        registry=ref.registry,
                        repository=ref.repository,
                    )
                hasher.update(chunk)
                yield chunk
        except TimeoutError:
            raise errors.RegistryUnreachable(
                f"reading blob {digest.short} did not finish in time",
                registry=ref.registry,
                repository=ref.repository,
                hint="the registry sends too slowly; check the network, or raise --timeout "
                "(--deadline for whole layers)",
            ) from None
        except httpx.TransportError as exc:
            raise errors.RegistryUnreachable(
                f"the connection broke while reading blob {digest.short}: {type(exc).__name__}",
                registry=ref.registry,
                repository=ref.repository,
            ) from None
        finally:
            await response.aclose()
        actual = Digest(digest.algorithm, hasher.hexdigest())
        if actual != digest:
            raise errors.DigestMismatch(
                expected=str(digest),
                actual=str(actual),
                what=f"blob {digest.short}",
                registry=ref.registry,
                repository=ref.repository,
            )

    async def get_config(self, ref: Reference, manifest: Manifest) -> ImageConfig:
        """The image config of an image manifest, verified and parsed."""
        if manifest.config is None:
            raise errors.InvalidResponse(
                f"{ref.familiar}: an index has no config; choose a platform first",
                registry=ref.registry,
                repository=ref.repository,
            )
        raw = await self.get_blob(
            ref, manifest.config.digest, max_bytes=self.options.max_config_bytes
        )
        return parse_config(raw, digest=manifest.config.digest, where=f"{self._where(ref)} config")

    async def blob_exists(self, ref: Reference, digest: Digest) -> int | None:
        """The blob's size when the repository has it, else ``None``."""
        response = await self._request(
            ref, "HEAD", f"/v2/{ref.repository}/blobs/{digest}", scopes=_pull(ref)
        )
        if response.status == 404:
            return None
        _raise_for_status(response, ref, what=f"blob {digest.short}")
        length = response.headers.get("content-length", "")
        return int(length) if length.isdigit() else 0

    async def upload_blob(
        self,
        ref: Reference,
        data: bytes,
        *,
        digest: Digest | None = None,
        mount_from: str | None = None,
        chunk_size: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> UploadResult:
        """Upload a blob: skip when present, mount from ``mount_from``, else upload.

        ``chunk_size`` switches to a chunked (PATCH) upload; ``None`` uploads in one PUT.
        """
        digest = digest or Digest.of(data)
        if not digest.matches(data):
            raise errors.DigestMismatch(
                expected=str(digest),
                actual=str(Digest.of(data, digest.algorithm)),
                what="blob to upload",
            )
        if chunk_size:
            return await self.upload_blob_chunks(
                ref,
                [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)],
                digest=digest,
                size=len(data),
                mount_from=mount_from,
                chunk_size=chunk_size,
                progress=progress,
            )
        if await self.blob_exists(ref, digest) is not None:
            return UploadResult(digest, len(data), existed=True)
        if mount_from and await self.mount_blob(ref, digest, mount_from):
            return UploadResult(digest, len(data), mounted=True)
        location, _minimum = await self._start_upload(ref)
        try:
            final = location.copy_add_param("digest", str(digest))
            put = await self._upload_request(
                ref,
                "PUT",
                final,
                headers={"Content-Type": "application/octet-stream"},
                content=data,
            )
            _raise_for_status(put, ref, what=f"blob upload {digest.short}", ok=(201, 204))
        except BaseException:
            await self.cancel_upload(ref, location)
            raise
        if progress is not None:
            progress(len(data))
        return UploadResult(digest, len(data))

    async def _start_upload(self, ref: Reference) -> tuple[httpx.URL, int]:
        """Open an upload session: its ``Location`` and the registry's smallest chunk."""
        response = await self._request(
            ref,
            "POST",
            f"/v2/{ref.repository}/blobs/uploads/",
            scopes=_push(ref),
            content=b"",
        )
        _raise_for_status(response, ref, what="blob upload start", ok=(202,))
        minimum = response.headers.get("oci-chunk-min-length", "")
        return self._location(ref, response), int(minimum) if minimum.isdigit() else 0

    def _location(self, ref: Reference, response: Response) -> httpx.URL:
        location = response.headers.get("location")
        if not location:
            raise errors.InvalidResponse(
                "the upload answer has no Location",
                registry=ref.registry,
                repository=ref.repository,
            )
        return response.url.join(location)

    async def _upload_request(
        self,
        ref: Reference,
        method: str,
        url: httpx.URL,
        *,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
    ) -> Response:
        # Same origin as the registry: credentials go along. Another host (a storage
        # backend) gets none: only the signed Location itself.
        base = await self._transport.base_url(ref.api_host)
        if origin(url) == origin(base):
            return await self._request(
                ref, method, "", url=url, scopes=_push(ref), headers=headers, content=content
            )
        check_destination(url, base, what="the upload location")
        return await self._transport.send(
            method, url, registry=base, headers=headers, content=content
        )

    async def cancel_upload(self, ref: Reference, location: httpx.URL) -> None:
        """Abandon an upload session; failure to do so is not an error."""
        try:
            response = await self._upload_request(ref, "DELETE", location)
            await response.aclose()
        except errors.PortsideError:
            pass

    # -- streaming uploads (large blobs, resumable) --------------------------------------

    async def mount_blob(self, ref: Reference, digest: Digest, from_repository: str) -> bool:
        """Ask the registry to link ``digest`` from another repository of it into ``ref``.

        True when mounted (201). A registry that cannot mount answers 202 with an
        upload session instead: that session is given back at once, the caller uploads.
        """
        scopes = _push(ref, Scope("repository", from_repository, ("pull",)))
        response = await self._request(
            ref,
            "POST",
            f"/v2/{ref.repository}/blobs/uploads/",
            scopes=scopes,
            params=[("mount", str(digest)), ("from", from_repository)],
            content=b"",
        )
        if response.status == 201:
            return True
        if response.status == 202 and response.headers.get("location"):
            await self.cancel_upload(ref, self._location(ref, response))
            return False
        _raise_for_status(response, ref, what=f"mount of blob {digest.short}", ok=(201, 202))
        return False

    async def upload_blob_file(
        self,
        ref: Reference,
        path: Path | str,
        *,
        digest: Digest | None = None,
        mount_from: str | None = None,
        chunk_size: int | None = None,
        progress: Callable[[int], None] | None = None,
        max_resumes: int = 5,
    ) -> UploadResult:
        """Upload a blob from a file without holding it in memory.

        Files up to ``chunk_size`` (default 8 MiB) go in one PUT; larger ones are sent
        in chunks, each resumed from the offset the registry reports when the
        connection drops. ``digest`` is checked as the bytes pass; without it the file
        is hashed first (one extra read).
        """
        path = Path(path)
        size = path.stat().st_size
        chunk = chunk_size or DEFAULT_CHUNK
        if digest is None:
            digest = await asyncio.to_thread(_hash_file, path, "sha256")
        if size <= chunk:
            data = await asyncio.to_thread(path.read_bytes)
            return await self.upload_blob(
                ref, data, digest=digest, mount_from=mount_from, progress=progress
            )

        async def pieces() -> AsyncIterator[bytes]:
            with path.open("rb") as handle:
                while True:
                    block = await asyncio.to_thread(handle.read, chunk)
                    if not block:
                        return
                    yield block

        async def upload(mount: str | None) -> UploadResult:
            return await self.upload_blob_chunks(
                ref,
                pieces(),
                digest=digest,
                size=size,
                mount_from=mount,
                chunk_size=chunk,
                progress=progress,
                max_resumes=max_resumes,
            )

        try:
            return await upload(mount_from)
        except (errors.NotFound, errors.RegistryUnreachable, errors.ServerError):
            # The session could not be resumed (some registries invalidate it when an
            # answer is lost). A file can be read again: start one fresh session.
            return await upload(None)

    async def upload_blob_chunks(
        self,
        ref: Reference,
        chunks: AsyncIterable[bytes] | Iterable[bytes],
        *,
        digest: Digest,
        size: int | None = None,
        mount_from: str | None = None,
        chunk_size: int | None = None,
        progress: Callable[[int], None] | None = None,
        max_resumes: int = 5,
    ) -> UploadResult:
        """Upload a blob from an iterable of byte strings, in chunks (PATCH), resumable.

        Only one chunk is held in memory. After a dropped connection or a 416 the
        upload asks the registry for its offset (``GET`` on the session) and resends
        from there; the current chunk is kept until the registry has confirmed it, so
        a one-pass source (a stream from another registry) can still resume. The digest
        is verified before the final ``PUT``: a source that lied is never committed.
        """
        if await self.blob_exists(ref, digest) is not None:
            return UploadResult(digest, size or 0, existed=True)
        if mount_from and await self.mount_blob(ref, digest, mount_from):
            return UploadResult(digest, size or 0, mounted=True)
        location, minimum = await self._start_upload(ref)
        piece_size = max(chunk_size or DEFAULT_CHUNK, minimum)
        hasher = hashlib.new(digest.algorithm)
        offset = 0
        resumes = 0
        try:
            async for piece in _rechunk(chunks, piece_size):
                hasher.update(piece)
                location, resumes = await self._send_piece(
                    ref, location, piece, offset, resumes, max_resumes
                )
                offset += len(piece)
                if progress is not None:
                    progress(len(piece))
            actual = Digest(digest.algorithm, hasher.hexdigest())
            if actual != digest or (size is not None and offset != size):
                raise errors.DigestMismatch(
                    expected=f"{digest} ({size} bytes)",
                    actual=f"{actual} ({offset} bytes)",
                    what="blob to upload (its source)",
                    registry=ref.registry,
                    repository=ref.repository,
                )
            await self._finish_upload(ref, location, digest)
        except BaseException:
            await self.cancel_upload(ref, location)
            raise
        return UploadResult(digest, offset)

    async def _send_piece(
        self,
        ref: Reference,
        location: httpx.URL,
        piece: bytes,
        start: int,
        resumes: int,
        max_resumes: int,
    ) -> tuple[httpx.URL, int]:
        """PATCH one chunk until the registry has all of it; (new location, resumes)."""
        sent = 0
        while sent < len(piece):
            failure: errors.PortsideError | None = None
            try:
                response = await self._upload_request(
                    ref,
                    "PATCH",
                    location,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{start + sent}-{start + len(piece) - 1}",
                    },
                    content=piece[sent:],
                )
                if response.status == 202:
                    return self._location(ref, response), resumes
                if response.status != 416 and response.status < 500:
                    _raise_for_status(
                        response, ref, what=f"blob chunk at {start + sent}", ok=(202,)
                    )
            except (errors.RegistryUnreachable, errors.ServerError) as exc:
                failure = exc
            # The connection dropped, the registry failed or disagrees about the offset:
            # ask it how much it holds and carry on from there.
            resumes += 1
            if resumes > max_resumes:
                if failure is not None:
                    raise failure
                raise errors.RegistryError(
                    f"blob upload: gave up after {max_resumes} resumes at offset {start + sent}",
                    registry=ref.registry,
                    repository=ref.repository,
                )
            have, location = await self._upload_offset(ref, location)
            if not start <= have <= start + len(piece):
                raise errors.RegistryError(
                    f"blob upload cannot resume: the registry holds {have} bytes, "
                    f"but this chunk covers {start}-{start + len(piece)}",
                    registry=ref.registry,
                    repository=ref.repository,
                    hint="retry the push; the upload starts over",
                )
            sent = have - start
        return location, resumes

    async def _upload_offset(self, ref: Reference, location: httpx.URL) -> tuple[int, httpx.URL]:
        """Bytes the upload session holds, and its current location.

        ``Range: 0-0`` is read as nothing received: registries send it for an empty
        session, and a session that got exactly one byte is not a case worth the risk.
        """
        response = await self._upload_request(ref, "GET", location)
        _raise_for_status(response, ref, what="upload status", ok=(204,))
        value = response.headers.get("range", "")
        start, _, end = value.partition("-")
        have = int(end) + 1 if end.isdigit() and start.strip() == "0" and end != "0" else 0
        new = self._location(ref, response) if response.headers.get("location") else location
        return have, new

    async def _finish_upload(self, ref: Reference, location: httpx.URL, digest: Digest) -> None:
        final = location.copy_add_param("digest", str(digest))
        try:
            put = await self._upload_request(
                ref,
                "PUT",
                final,
                headers={"Content-Type": "application/octet-stream"},
                content=b"",
            )
        except errors.RegistryUnreachable:
            # The answer may have been lost after the registry committed the blob.
            if await self.blob_exists(ref, digest) is not None:
                return
            raise
        if put.status not in (201, 204) and await self.blob_exists(ref, digest) is not None:
            return  # a retried PUT whose first try succeeded: the session is gone, the blob is not
        _raise_for_status(put, ref, what=f"blob upload {digest.short}", ok=(201, 204))

    async def copy_blob(
        self,
        source: Reference,
        dest: Reference,
        digest: Digest,
        *,
        size: int | None = None,
        chunk_size: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> UploadResult:
        """Copy a blob between repositories: skip if present, mount on the same registry,
        else stream it registry to registry (never whole in memory, digest verified).
        """
        if await self.blob_exists(dest, digest) is not None:
            return UploadResult(digest, size or 0, existed=True)
        same_registry = source.registry == dest.registry
        if (
            same_registry
            and source.repository != dest.repository
            and await self.mount_blob(dest, digest, source.repository)
        ):
            return UploadResult(digest, size or 0, mounted=True)
        return await self.upload_blob_chunks(
            dest,
            self.stream_blob(source, digest),
            digest=digest,
            size=size,
            chunk_size=chunk_size,
            progress=progress,
        )

    # -- referrers -------------------------------------------------------------------

    async def referrers(
        self, ref: Reference, *, artifact_type: str | None = None
    ) -> list[Descriptor]:
        """Manifests whose ``subject`` is ``ref``'s digest (API, else the tag schema)."""
        if ref.digest is None:
            raise errors.UsageError("referrers need a digest reference (name@sha256:…)")
        host = ref.api_host
        entries: list[Descriptor] | None = None
        asked = False
        if host not in self._referrers_api:
            # Until a registry has answered once, its API requests go one at a time:
            # the first answer says whether the others need the API at all.
            async with self._referrers_probes.setdefault(host, asyncio.Lock()):
                if host not in self._referrers_api:
                    asked = True
                    entries = await self._referrers_from_api(ref, artifact_type)
        if not asked and self._referrers_api.get(host, True):
            entries = await self._referrers_from_api(ref, artifact_type)
        if entries is not None:
            return entries
        return await self._referrers_by_tag(ref, artifact_type)

    def referrers_api(self, registry: str) -> bool | None:
        """Whether ``registry`` has the Referrers API, as far as this client knows
        (None: not asked yet)."""
        return self._referrers_api.get(Reference(registry, "x/x", None, None).api_host)

    def assume_referrers_api(self, registry: str, present: bool) -> None:
        """What an earlier client learnt (the cache keeps it): with ``False`` lookups
        go straight to the tag schema."""
        self._referrers_api[Reference(registry, "x/x", None, None).api_host] = present

    async def _referrers_by_tag(
        self, ref: Reference, artifact_type: str | None
    ) -> list[Descriptor]:
        """The referrers tag schema's answer (``sha256-<hex>``), for registries without
        the API."""
        assert ref.digest is not None
        fallback = ref.with_tag(_referrers_tag(ref.digest))
        fallback = Reference(fallback.registry, fallback.repository, fallback.tag, None)
        try:
            index = await self.get_manifest(fallback)
        except errors.NotFound:
            return []
        entries = list(index.manifests)
        if artifact_type:
            entries = [e for e in entries if e.artifact_type == artifact_type]
        return entries

    async def _referrers_from_api(
        self, ref: Reference, artifact_type: str | None
    ) -> list[Descriptor] | None:
        """The Referrers API's answer; None when the tag schema must answer instead."""
        assert ref.digest is not None
        params = [("artifactType", artifact_type)] if artifact_type else None
        response = await self._request(
            ref,
            "GET",
            f"/v2/{ref.repository}/referrers/{ref.digest}",
            scopes=_pull(ref),
            params=params,
            max_bytes=self.options.max_manifest_bytes,
        )
        if response.status == 404:
            # A registry with the API answers 200 and an empty index for a manifest
            # nothing refers to (OCI distribution spec 1.1): 404 means no API.
            self._referrers_api[ref.api_host] = False
            return None
        if response.status == 200:
            self._referrers_api[ref.api_host] = True
            digest = Digest.of(response.content)
            index = parse_manifest(
                response.content,
                digest=digest,
                content_type=mt.OCI_INDEX,
                where=f"{self._where(ref)} referrers",
            )
            entries = list(index.manifests)
            # The registry may ignore the filter; the header says when it applied it.
            if artifact_type and "oci-filters-applied" not in response.headers:
                entries = [e for e in entries if e.artifact_type == artifact_type]
            return entries
        if response.status != 400:  # (400: this request, not the API; the tag schema)
            _raise_for_status(response, ref, what="referrers")
        return None

    async def _add_to_referrers_tag(self, ref: Reference, manifest: Manifest) -> None:
        assert manifest.subject is not None
        import json

        tag_ref = Reference(
            ref.registry, ref.repository, _referrers_tag(manifest.subject.digest), None
        )
        try:
            existing = list((await self.get_manifest(tag_ref)).manifests)
        except errors.NotFound:
            existing = []
        if any(e.digest == manifest.digest for e in existing):
            return
        entry = Descriptor(
            manifest.media_type,
            manifest.digest,
            len(manifest.raw),
            annotations=manifest.annotations,
            artifact_type=manifest.artifact_type
            or (manifest.config.media_type if manifest.config else None),
        )
        doc = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_INDEX,
            "manifests": [e.to_json() for e in [*existing, entry]],
        }
        await self.put_manifest(
            tag_ref, json.dumps(doc, separators=(",", ":")).encode(), mt.OCI_INDEX
        )


def _hash_file(path: Path, algorithm: str) -> Digest:
    hasher = hashlib.new(algorithm)
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            hasher.update(block)
    return Digest(algorithm, hasher.hexdigest())


async def _rechunk(
    source: AsyncIterable[bytes] | Iterable[bytes], size: int
) -> AsyncIterator[bytes]:
    """Pieces of exactly ``size`` bytes (the last one shorter) from any byte source."""
    buffer = bytearray()
    if isinstance(source, AsyncIterable):
        async for block in source:
            buffer += block
            while len(buffer) >= size:
                yield bytes(buffer[:size])
                del buffer[:size]
    else:
        for block in source:
            buffer += block
            while len(buffer) >= size:
                yield bytes(buffer[:size])
                del buffer[:size]
    if buffer:
        yield bytes(buffer)


def _referrers_tag(digest: Digest) -> str:
    return f"{digest.algorithm}-{digest.hex}"[:128]


def _next_page(
    response: Response,
    base: httpx.URL,
    seen: set[str],
    what: str,
    registry: str,
    repository: str | None,
) -> httpx.URL | None:
    """Where the page after ``response`` is (None: it was the last), once it is known
    safe to follow: on the registry's own origin (no credentials for another host) and
    not a page already fetched (a loop)."""
    next_url = _next_link(response)
    if next_url is None:
        return None
    target = response.url.join(next_url)
    if origin(target) != origin(base):
        raise errors.UnsafeResponse(
            f"the {what}'s next page is on another origin ({redact_url(str(target))}); refused",
            registry=registry,
            repository=repository,
        )
    if str(target) in seen:
        raise errors.InvalidResponse(
            f"the {what}'s pages loop back on themselves",
            registry=registry,
            repository=repository,
        )
    seen.add(str(target))
    return target


def _endless(pages: int, what: str, registry: str, repository: str | None) -> errors.RegistryError:
    return errors.InvalidResponse(
        f"the {what} has more than {pages} pages; stopped",
        registry=registry,
        repository=repository,
        hint="a registry that never ends its pagination is broken or hostile",
    )


def _next_link(response: Response) -> str | None:
    """The ``rel="next"`` target of a ``Link`` header, if any."""
    for value in response.headers.get_list("link"):
        for part in value.split(","):
            section = part.strip()
            if not section.startswith("<") or ">" not in section:
                continue
            target, _, rest = section[1:].partition(">")
            params = [p.strip().lower().replace(" ", "") for p in rest.split(";")]
            if 'rel="next"' in params or "rel=next" in params:
                return target
    return None
