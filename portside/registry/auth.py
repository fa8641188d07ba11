"""Authentication: anonymous, Basic, and the bearer-token flow with its token cache.

Sits on ``transport``: it decides which ``Authorization`` header a request carries
and reacts to 401 challenges. Tokens are cached per (registry, realm, service, scope
set), so a pull token is never used for a push. Tokens never leave memory.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from portside import errors
from portside.registry.challenge import Challenge, Scope, merge_scopes, parse_challenges, pick
from portside.registry.credentials import Credential, CredentialStore
from portside.registry.transport import (
    ERROR_BODY_LIMIT,
    Response,
    Transport,
    check_destination,
    describe_error_body,
)

MIN_TOKEN_LIFETIME = 60.0
# Renew this long before expiry so a token does not die in flight.
RENEW_MARGIN = 10.0


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: float  # time.monotonic() based

    def fresh(self) -> bool:
        return time.monotonic() < self.expires_at - RENEW_MARGIN

    def __repr__(self) -> str:
        return "Token(***)"


def _lifetime(doc: Mapping[str, object]) -> float:
    expires_in = doc.get("expires_in")
    lifetime = (
        float(expires_in)
        if isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool)
        else 0.0
    )
    lifetime = max(lifetime, MIN_TOKEN_LIFETIME)
    issued_at = doc.get("issued_at")
    if isinstance(issued_at, str):
        try:
            issued = dt.datetime.fromisoformat(issued_at.replace("Z", "+00:00"))
        except ValueError:
            return lifetime
        if issued.tzinfo is None:
            issued = issued.replace(tzinfo=dt.timezone.utc)
        age = (dt.datetime.now(dt.timezone.utc) - issued).total_seconds()
        # A clock skewed into the future counts as "just issued"; an old issue time
        # shortens the lifetime, but never below the minimum.
        if age > 0:
            lifetime = max(lifetime - age, MIN_TOKEN_LIFETIME)
    return lifetime


def parse_token_response(body: bytes, *, realm_host: str) -> tuple[str, float, str | None]:
    """(token, lifetime seconds, refresh token) from a token endpoint's JSON."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        doc = None
    if not isinstance(doc, dict):
        raise errors.InvalidResponse(
            "the token endpoint did not answer with JSON", registry=realm_host
        )
    token = doc.get("token")
    if not isinstance(token, str) or not token:
        token = doc.get("access_token")
    if not isinstance(token, str) or not token:
        raise errors.InvalidResponse(
            "the token endpoint's answer holds neither 'token' nor 'access_token'",
            registry=realm_host,
        )
    refresh = doc.get("refresh_token")
    return token, _lifetime(doc), refresh if isinstance(refresh, str) and refresh else None


def _basic(username: str, password: str) -> str:
    raw = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


class Authenticator:
    """Adds credentials to requests for one client; answers 401s once per request."""

    def __init__(self, transport: Transport, credentials: CredentialStore | None) -> None:
        self._transport = transport
        self._credentials = credentials
        self._challenges: dict[str, Challenge | None] = {}
        self._tokens: dict[tuple[str, str, str, frozenset[str]], Token] = {}
        self._token_locks: dict[tuple[str, str, str, frozenset[str]], asyncio.Lock] = {}
        # Refresh tokens learned from a realm go back to that realm only.
        self._refresh_tokens: dict[tuple[str, str], str] = {}

    async def credential(self, registry: str) -> Credential | None:
        if self._credentials is None:
            return None
        return await self._credentials.aget(registry)

    async def send(
        self,
        method: str,
        url: httpx.URL,
        *,
        registry: str,
        base: httpx.URL,
        scopes: tuple[Scope, ...],
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        max_bytes: int | None = None,
        stream: bool = False,
    ) -> Response:
        """Send a request to ``base``'s registry with the right credentials.

        ``registry`` is the name credentials are looked up by (``docker.io``), ``base``
        the origin requests go to (``https://registry-1.docker.io``).
        """
        host = base.netloc.decode()
        send_headers = dict(headers or {})
        same_origin = (url.scheme, url.netloc) == (base.scheme, base.netloc)
        if same_origin:
            authorization = await self._authorization(registry, base, scopes, renew=False)
            if authorization:
                send_headers["Authorization"] = authorization
        limit = max_bytes if max_bytes is not None else ERROR_BODY_LIMIT

        async def attempt() -> Response:
            return await self._transport.send(
                method,
                url,
                registry=base,
                headers=send_headers,
                content=content,
                max_bytes=limit,
                stream=stream,
            )

        response = await attempt()
        if response.status != 401 or not same_origin:
            return response

        await response.aclose()
        challenges = parse_challenges(response.headers.get_list("www-authenticate"))
        challenge = pick(challenges)
        if challenge is None:
            if challenges:
                schemes = ", ".join(sorted({c.scheme for c in challenges}))
                raise errors.Unauthorized(
                    f"the registry asks for {schemes} authentication, which Portside does not speak",
                    registry=registry,
                    hint="use a registry account with Basic or token (Bearer) authentication",
                    status=401,
                )
            raise errors.Unauthorized(
                "the registry refused the request (401) without saying how to authenticate",
                registry=registry,
                status=401,
            )
        self._challenges[host] = challenge
        wanted = _merge_scopes(scopes, challenge.params.get("scope"))
        authorization = await self._authorization(registry, base, wanted, renew=True)
        if authorization is None:
            # Basic auth asked for and no credentials for this host: asking again is moot.
            raise await self._refused(registry, response, sent_credentials=False)
        send_headers["Authorization"] = authorization
        response = await attempt()
        if response.status == 401:
            await response.aclose()
            raise await self._refused(registry, response, authorization is not None)
        return response

    async def _refused(
        self, registry: str, response: Response, sent_credentials: bool
    ) -> errors.RegistryError:
        credential = await self.credential(registry)
        again = pick(parse_challenges(response.headers.get_list("www-authenticate")))
        insufficient = again is not None and again.params.get("error") == "insufficient_scope"
        text, _codes = describe_error_body(response.headers, response.content)
        if credential is None:
            return errors.Unauthorized(
                "authentication required" + (f": {text}" if text else ""),
                registry=registry,
                hint=f"log in with `docker login {registry}`, or check the repository name",
                status=401,
            )
        if insufficient or sent_credentials:
            return errors.Denied(
                "the token granted less access than asked for",
                registry=registry,
                hint=f"the account from {credential.source} lacks the rights for this repository",
                status=401,
            )
        return errors.Unauthorized(
            "the credentials were refused",
            registry=registry,
            hint=f"check the credentials from {credential.source}",
            status=401,
        )

    async def _authorization(
        self, registry: str, base: httpx.URL, scopes: tuple[Scope, ...], *, renew: bool
    ) -> str | None:
        host = base.netloc.decode()
        challenge = self._challenges.get(host)
        if challenge is None:
            return None
        credential = await self.credential(registry)
        if challenge.scheme == "basic":
            if credential is None or credential.username is None or credential.password is None:
                return None
            return _basic(credential.username, credential.password)
        if challenge.scheme != "bearer":
            return None
        if credential is not None and credential.registry_token:
            return f"Bearer {credential.registry_token}"
        realm = challenge.params.get("realm")
        if not realm:
            raise errors.InvalidResponse(
                "the registry's Bearer challenge has no realm", registry=registry
            )
        service = challenge.params.get("service", "")
        scopes = merge_scopes(scopes)
        key = (host, realm, service, frozenset(str(s) for s in scopes))
        lock = self._token_locks.setdefault(key, asyncio.Lock())
        async with lock:
            token = self._tokens.get(key)
            if token is not None and token.fresh() and not renew:
                return f"Bearer {token.value}"
            token = await self._fetch_token(registry, base, realm, service, scopes, credential)
            self._tokens[key] = token
            return f"Bearer {token.value}"

    async def _fetch_token(
        self,
        registry: str,
        base: httpx.URL,
        realm: str,
        service: str,
        scopes: tuple[Scope, ...],
        credential: Credential | None,
    ) -> Token:
        realm_url = httpx.URL(realm)
        check_destination(realm_url, base, what="the token realm")
        realm_host = realm_url.netloc.decode()
        refresh = self._refresh_tokens.get((registry, realm))
        if refresh is None and credential is not None:
            refresh = credential.identity_token
        limit = self._transport.options.max_token_bytes

        if refresh:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": refresh,
                "service": service,
                "client_id": "portside",
                "scope": " ".join(str(s) for s in scopes),
            }
            response = await self._transport.send(
                "POST",
                realm_url,
                registry=base,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                content=httpx.QueryParams(form).__str__().encode(),
                max_bytes=limit,
            )
            if response.status != 404:
                return self._token_from(response, registry, realm, realm_host)
            # 404: the realm has no OAuth2 endpoint; fall back to GET below.

        params: list[tuple[str, str]] = []
        if service:
            params.append(("service", service))
        params.extend(("scope", str(s)) for s in scopes)
        headers: dict[str, str] = {}
        if credential is not None and credential.username and credential.password:
            headers["Authorization"] = _basic(credential.username, credential.password)
            params.append(("account", credential.username))
        elif credential is not None and refresh:
            headers["Authorization"] = _basic(credential.username or "<token>", refresh)
        url = realm_url.copy_merge_params(httpx.QueryParams(tuple(params)))
        response = await self._transport.send(
            "GET", url, registry=base, headers=headers, max_bytes=limit
        )
        return self._token_from(response, registry, realm, realm_host)

    def _token_from(self, response: Response, registry: str, realm: str, realm_host: str) -> Token:
        if response.status in (401, 403):
            text, _codes = describe_error_body(response.headers, response.content)
            raise errors.Unauthorized(
                "the token server refused the credentials" + (f": {text}" if text else ""),
                registry=registry,
                hint="check the user name and password or token (docker login)",
                status=response.status,
            )
        if response.status != 200:
            text, _codes = describe_error_body(response.headers, response.content)
            raise errors.RegistryError(
                f"the token server {realm_host} answered {response.status}"
                + (f": {text}" if text else ""),
                registry=registry,
                status=response.status,
            )
        value, lifetime, refresh = parse_token_response(response.content, realm_host=realm_host)
        if refresh:
            self._refresh_tokens[(registry, realm)] = refresh
        return Token(value, time.monotonic() + lifetime)


def _merge_scopes(scopes: tuple[Scope, ...], challenge_scope: str | None) -> tuple[Scope, ...]:
    """Our scopes plus what the challenge asks for (the push insufficient_scope case)."""
    if not challenge_scope:
        return merge_scopes(scopes)
    return merge_scopes([*scopes, *Scope.parse_many(challenge_scope)])
