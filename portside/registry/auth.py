"""Authentication: anonymous, Basic, and the bearer-token flow with its token cache.

Sits on ``transport``: it decides which ``Authorization`` header a request carries
and reacts to 401 challenges. Tokens are cached per (registry, realm, service, scope
set), so a pull token is never used for a push. Tokens never leave memory.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from portside import errors, jsonscan
from portside.contract import CredentialSource
from portside.redact import redact_text
from portside.reference import canonical_registry
from portside.registry.challenge import Challenge, Scope, merge_scopes, parse_challenges, pick
from portside.registry.credentials import TOKEN_USERNAME, Credential
from portside.registry.transport import (
    ERROR_BODY_LIMIT,
    Response,
    Transport,
    check_destination,
    describe_error_body,
)

MIN_TOKEN_LIFETIME = 60.0
# A lifetime beyond this is not believed: a day is longer than any command runs, and a
# registry that revokes a token earlier answers 401, which renews it.
MAX_TOKEN_LIFETIME = 24 * 3600.0
# Renew this long before expiry so a token does not die in flight.
RENEW_MARGIN = 10.0
# Token endpoints that answer a POST like this have no OAuth2 endpoint: use GET.
_NO_OAUTH_STATUSES = frozenset({404, 405})
# RFC 3339 as token servers write it (Go writes nanoseconds, which older Pythons'
# fromisoformat does not read).
_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\d)[Tt ](\d\d:\d\d:\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:?\d\d)?")


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: float  # time.monotonic() based

    def fresh(self) -> bool:
        return time.monotonic() < self.expires_at - RENEW_MARGIN

    def __repr__(self) -> str:
        return "Token(***)"


def _seconds(value: object) -> float | None:
    """A finite number of seconds from a JSON value (number or numeric string)."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str):
            number = float(value.strip())
        else:
            return None
    except (ValueError, OverflowError):
        # A 400-digit integer overflows float(); nonsense counts as missing.
        return None
    return number if math.isfinite(number) else None


def _parse_time(value: object) -> dt.datetime | None:
    """An RFC 3339 time stamp (``issued_at``), UTC when it names no zone; else None."""
    if not isinstance(value, str):
        return None
    match = _RFC3339.fullmatch(value.strip())
    if match is None:
        return None
    date, clock, fraction, zone = match.groups()
    text = f"{date}T{clock}"
    if fraction:
        text += "." + fraction[:6].ljust(6, "0")
    if zone and zone not in ("Z", "z"):
        text += zone if ":" in zone else f"{zone[:3]}:{zone[3:]}"
    try:
        stamp = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=dt.timezone.utc)


def _lifetime(doc: Mapping[str, object]) -> float:
    """Seconds a token may be used: ``expires_in`` (at least 60, missing = 60), shortened
    by the age ``issued_at`` reports (never below 60; a future ``issued_at`` is clock skew
    and counts as "just issued")."""
    expires_in = _seconds(doc.get("expires_in"))
    lifetime = min(max(expires_in or 0.0, MIN_TOKEN_LIFETIME), MAX_TOKEN_LIFETIME)
    issued = _parse_time(doc.get("issued_at"))
    if issued is not None:
        age = (dt.datetime.now(dt.timezone.utc) - issued).total_seconds()
        if age > 0:
            lifetime = max(lifetime - age, MIN_TOKEN_LIFETIME)
    return lifetime


def _header_safe(value: str) -> bool:
    """Whether ``value`` can go into an ``Authorization`` header as is (visible ASCII)."""
    return bool(value) and all(33 <= ord(char) <= 126 for char in value)


def parse_token_response(body: bytes, *, realm_host: str) -> tuple[str, float, str | None]:
    """(token, lifetime seconds, refresh token) from a token endpoint's JSON."""
    try:
        doc = jsonscan.loads(body)
    except ValueError:  # not JSON, or nested too deeply
        doc = None
    if not isinstance(doc, dict):
        raise errors.InvalidResponse(
            "the token endpoint did not answer with JSON", registry=realm_host
        )
    # Both may be there (Docker Hub sends both); ``token`` is the one the spec names.
    token = doc.get("token")
    if not isinstance(token, str) or not token:
        token = doc.get("access_token")
    if not isinstance(token, str) or not token:
        raise errors.InvalidResponse(
            "the token endpoint's answer holds neither 'token' nor 'access_token'",
            registry=realm_host,
        )
    if not _header_safe(token):
        # Never echo it: a token with a line break would otherwise end up in an
        # httpx "illegal header value" message.
        raise errors.InvalidResponse(
            "the token endpoint's token holds characters an HTTP header cannot carry",
            registry=realm_host,
        )
    refresh = doc.get("refresh_token")
    usable_refresh = refresh if isinstance(refresh, str) and _header_safe(refresh) else None
    return token, _lifetime(doc), usable_refresh


def _basic(username: str, password: str) -> str:
    raw = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


class Authenticator:
    """Adds credentials to requests for one client; answers 401s once per request."""

    def __init__(self, transport: Transport, credentials: CredentialSource | None) -> None:
        self._transport = transport
        self._credentials = credentials
        self._challenges: dict[str, Challenge | None] = {}
        self._tokens: dict[tuple[str, str, str, frozenset[str]], Token] = {}
        self._token_locks: dict[tuple[str, str, str, frozenset[str]], asyncio.Lock] = {}
        # Refresh tokens learned from a realm go back to that realm only.
        self._refresh_tokens: dict[tuple[str, str], str] = {}
        # Registries an Authorization derived from a credential went to (the cache keys
        # what they answered by that credential; see credential_sent).
        self._sent: dict[str, Credential] = {}

    def __repr__(self) -> str:
        return f"<Authenticator {len(self._tokens)} cached token(s)>"

    async def credential(self, registry: str) -> Credential | None:
        if self._credentials is None:
            return None
        return await self._credentials.aget(registry)

    def credential_sent(self, registry: str) -> Credential | None:
        """The credential requests to ``registry`` carried (directly or as a token it
        obtained) so far; None while everything went anonymously."""
        return self._sent.get(canonical_registry(registry))

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
            # Only schemes we do not speak (or none at all): the request above went
            # without credentials, so this 401 is the anonymous answer; report it.
            if challenges:
                schemes = ", ".join(sorted({c.scheme for c in challenges}))
                raise errors.Unauthorized(
                    f"the registry asks for {schemes} authentication, "
                    "which Portside does not speak",
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
        # Our scopes plus what the challenge asks for: a push answered with
        # insufficient_scope asks again, once, for the wider set.
        wanted = _merge_scopes(scopes, challenge.params.get("scope"))
        authorization = await self._authorization(
            registry, base, wanted, renew=True, also_for=scopes
        )
        if authorization is None:
            # Basic auth asked for and no usable credentials for this host: asking
            # again is moot.
            raise await self._refused(registry, response, challenge)
        send_headers["Authorization"] = authorization
        response = await attempt()
        if response.status == 401:
            await response.aclose()
            raise await self._refused(registry, response, challenge)
        return response

    async def _refused(
        self, registry: str, response: Response, challenge: Challenge
    ) -> errors.RegistryError:
        """The error for a 401 that survived our best answer to ``challenge``."""
        credential = await self.credential(registry)
        again = pick(parse_challenges(response.headers.get_list("www-authenticate")))
        error = again.params.get("error") if again is not None else None
        text, _codes = describe_error_body(response.headers, response.content)
        detail = f": {_redacted(text, credential)}" if text else ""
        if credential is None:
            return errors.Unauthorized(
                "authentication required" + detail,
                registry=registry,
                hint=f"log in with `docker login {registry}`, or check the repository name",
                status=401,
            )
        if challenge.scheme == "basic":
            if credential.username is None or credential.password is None:
                return errors.CredentialsRefused(
                    f"the registry asks for a user name and password, but the "
                    f"{credential.kind} from {credential.source} is not one" + detail,
                    registry=registry,
                    hint=f"log in with `docker login {registry}`",
                    status=401,
                )
            return errors.CredentialsRefused(
                f"the registry refused the {credential.kind} from {credential.source}" + detail,
                registry=registry,
                hint=f"check the user name and password (`docker login {registry}`)",
                status=401,
            )
        if error == "invalid_token" or credential.registry_token:
            return errors.CredentialsRefused(
                f"the registry did not accept the token obtained with the {credential.kind} "
                f"from {credential.source}" + detail,
                registry=registry,
                hint=f"log in again with `docker login {registry}`",
                status=401,
            )
        # The token server accepted the credentials, yet the token does not open the
        # door: it granted less than asked (insufficient_scope). Denied, not "bad
        # credentials".
        return errors.Denied(
            "the token server granted less access than the request needs" + detail,
            registry=registry,
            hint=f"the account from {credential.source} lacks the rights for this repository",
            status=401,
        )

    async def _authorization(
        self,
        registry: str,
        base: httpx.URL,
        scopes: tuple[Scope, ...],
        *,
        renew: bool,
        also_for: tuple[Scope, ...] | None = None,
    ) -> str | None:
        """The ``Authorization`` value for ``scopes`` (None: send none).

        ``renew`` fetches a new token even when one is cached. A token fetched for a
        scope set widened by a challenge also replaces the one cached for ``also_for``
        (the narrower set the caller asked for): the old one was just refused, and the
        new one covers it.
        """
        host = base.netloc.decode()
        challenge = self._challenges.get(host)
        if challenge is None:
            return None
        credential = await self.credential(registry)
        if credential is not None:
            # Recorded before use: an answer is never counted anonymous when it was not.
            self._sent[canonical_registry(registry)] = credential
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
        if also_for is not None:
            narrow = (host, realm, service, frozenset(str(s) for s in merge_scopes(also_for)))
            if narrow != key:
                self._tokens[narrow] = token
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
        realm_url = _realm_url(realm, registry)
        check_destination(realm_url, base, what="the token realm")
        realm_host = realm_url.netloc.decode()
        limit = self._transport.options.max_token_bytes
        learned = self._refresh_tokens.get((registry, realm))
        refresh = learned or (credential.identity_token if credential is not None else None)

        if refresh:
            # OAuth2 (what docker does with identity tokens): the refresh token goes in
            # a form body, never in a URL.
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
                content=str(httpx.QueryParams(form)).encode(),
                max_bytes=limit,
            )
            if learned and response.status in (400, 401, 403):
                # A refresh token this realm handed out earlier and no longer takes:
                # forget it and authenticate with what the user configured.
                del self._refresh_tokens[(registry, realm)]
                return await self._fetch_token(registry, base, realm, service, scopes, credential)
            if response.status not in _NO_OAUTH_STATUSES:
                return self._token_from(response, registry, realm, realm_host, credential)
            # No OAuth2 endpoint at this realm: fall back to GET below.

        params: list[tuple[str, str]] = []
        if service:
            params.append(("service", service))
        # One scope= per scope (several repositories: one each).
        params.extend(("scope", str(s)) for s in scopes)
        headers: dict[str, str] = {}
        if credential is not None and credential.username and credential.password:
            headers["Authorization"] = _basic(credential.username, credential.password)
            params.append(("account", credential.username))
        elif refresh:
            username = credential.username if credential is not None else None
            headers["Authorization"] = _basic(username or TOKEN_USERNAME, refresh)
        # Anonymous: no Authorization header and no account parameter at all.
        url = realm_url.copy_merge_params(httpx.QueryParams(tuple(params)))
        response = await self._transport.send(
            "GET", url, registry=base, headers=headers, max_bytes=limit
        )
        return self._token_from(response, registry, realm, realm_host, credential)

    def _token_from(
        self,
        response: Response,
        registry: str,
        realm: str,
        realm_host: str,
        credential: Credential | None,
    ) -> Token:
        detail = ""
        if response.status != 200:
            text, _codes = describe_error_body(response.headers, response.content)
            detail = f": {_redacted(text, credential)}" if text else ""
        if response.status in (401, 403):
            if credential is None or not credential.secrets:
                raise errors.Unauthorized(
                    f"the token server {realm_host} gives no anonymous access" + detail,
                    registry=registry,
                    hint=f"log in with `docker login {registry}`",
                    status=response.status,
                )
            raise errors.CredentialsRefused(
                f"the token server {realm_host} refused the {credential.kind} "
                f"from {credential.source}" + detail,
                registry=registry,
                hint=f"check the credentials there, or log in again with `docker login {registry}`",
                status=response.status,
            )
        if response.status != 200:
            raise errors.RegistryError(
                f"the token server {realm_host} answered {response.status}" + detail,
                registry=registry,
                status=response.status,
            )
        value, lifetime, refresh = parse_token_response(response.content, realm_host=realm_host)
        if refresh:
            self._refresh_tokens[(registry, realm)] = refresh
        return Token(value, time.monotonic() + lifetime)


def _realm_url(realm: str, registry: str) -> httpx.URL:
    """The challenge's realm as a URL; a malformed one is the registry's fault."""
    try:
        url = httpx.URL(realm)
    except (httpx.InvalidURL, ValueError):
        url = None
    if url is None or (not url.host and url.scheme in ("http", "https")):
        raise errors.InvalidResponse(
            "the registry's Bearer challenge names a realm that is not a URL",
            registry=registry,
        )
    if url.userinfo:
        # User info chosen by the registry would make httpx send it as Basic auth.
        url = url.copy_with(username=None, password=None)
    return url


def _redacted(text: str, credential: Credential | None) -> str:
    """Server text with our own secrets masked (a hostile server may echo them)."""
    if credential is None:
        return text
    secrets: list[str] = list(credential.secrets)
    if credential.username and credential.password:
        secrets.append(_basic(credential.username, credential.password).split(" ", 1)[1])
    return redact_text(text, secrets)


def _merge_scopes(scopes: tuple[Scope, ...], challenge_scope: str | None) -> tuple[Scope, ...]:
    """Our scopes plus what the challenge asks for (the push insufficient_scope case)."""
    if not challenge_scope:
        return merge_scopes(scopes)
    return merge_scopes([*scopes, *Scope.parse_many(challenge_scope)])
