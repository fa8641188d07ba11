"""A Docker-style token issuer the tests run themselves (the Docker Hub auth flow).

``GET /token?service=..&scope=..`` (optionally with Basic credentials) and the OAuth2
``POST /token`` form (``grant_type=password`` / ``refresh_token``) return ES256 JWTs whose
``x5c`` header carries the issuer's self-signed certificate; the registry trusts that
certificate through ``auth.token.rootcertbundle``. Everything about the answer is
configurable so client tests can provoke each case of the token-auth spec, and every
request is recorded (see ``recording``).
"""

from __future__ import annotations

import base64
import datetime as dt
import fnmatch
import json
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from .recording import LoopbackServer, RecordedRequest, RecordingHandler

DEFAULT_SERVICE = "portside-test"
DEFAULT_ISSUER = "portside-test-issuer"
TOKEN_PATH = "/token"

# (subject or None when anonymous, resource type, resource name, requested actions)
# -> granted actions. Returning fewer than requested is "granted less than asked".
GrantFn = Callable[[str | None, str, str, list[str]], list[str]]

Shape = Literal["token", "access_token", "both", "neither", "non_json", "huge"]
Anonymous = Literal["pull", "none", "reject"]


@dataclass(frozen=True)
class Scope:
    """One ``scope=`` value: ``type:name:actions``.

    The name may itself contain colons (``repository:127.0.0.1:5000/x:pull``): the type
    ends at the first colon and the actions start after the last one.
    """

    type: str
    name: str
    actions: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Scope:
        rtype, sep, rest = text.partition(":")
        name, sep2, actions = rest.rpartition(":")
        if not sep or not sep2 or not rtype or not name:
            raise ValueError(f"malformed scope {text!r}")
        return cls(rtype, name, tuple(a for a in actions.split(",") if a))

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


@dataclass(frozen=True)
class IssuedToken:
    """A JWT the issuer handed out, for assertions on what a client later used."""

    jwt: str
    jti: str
    subject: str | None
    access: tuple[dict[str, Any], ...]
    field: str  # "token", "access_token" or "refresh" (issue_token by a test)


def default_grant(anonymous: Anonymous = "pull") -> GrantFn:
    """Authenticated users get whatever they ask for; anonymous gets pull (if allowed)."""

    def grant(subject: str | None, rtype: str, name: str, actions: list[str]) -> list[str]:
        if subject is not None:
            return list(actions)
        if anonymous == "pull" and rtype == "repository":
            return [a for a in actions if a == "pull"]
        return []

    return grant


def grant_only(allowed: Iterable[str], anonymous: Anonymous = "pull") -> GrantFn:
    """Grant authenticated users only ``allowed`` actions (e.g. {"pull"}): less than asked."""
    allowed_set = set(allowed)
    base = default_grant(anonymous)

    def grant(subject: str | None, rtype: str, name: str, actions: list[str]) -> list[str]:
        return [a for a in base(subject, rtype, name, actions) if a in allowed_set]

    return grant


def grant_rules(rules: Mapping[str | None, Mapping[str, Iterable[str]]]) -> GrantFn:
    """Per-user rules: ``{user or None: {repo glob: actions}}``; the first glob that matches
    the repository decides. Users (or anonymous) without an entry get nothing.
    """

    def grant(subject: str | None, rtype: str, name: str, actions: list[str]) -> list[str]:
        for pattern, granted in rules.get(subject, {}).items():
            if fnmatch.fnmatchcase(name, pattern):
                granted_set = set(granted)
                if "*" in granted_set:
                    return list(actions)
                return [a for a in actions if a in granted_set]
        return []

    return grant


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a JWT, without verifying it (for test assertions)."""
    header_b64, claims_b64, _sig = token.split(".")

    def load(part: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        return data

    return load(header_b64), load(claims_b64)


class _TokenHandler(RecordingHandler):
    pass


class TokenIssuer(LoopbackServer):
    """Threaded token server on a free 127.0.0.1 port.

    Attributes after construction may be changed by a test at any time (they are read per
    request): ``users``, ``anonymous``, ``grant``, ``post_enabled``, ``shape``,
    ``post_shape``, ``expires_in``, ``issued_at_offset``, ``lifetime``,
    ``require_client_id``, ``extra_fields``.
    """

    handler_class = _TokenHandler

    def __init__(
        self,
        directory: Path,
        *,
        service: str = DEFAULT_SERVICE,
        issuer: str = DEFAULT_ISSUER,
        users: Mapping[str, str] | None = None,
        anonymous: Anonymous = "pull",
        grant: GrantFn | None = None,
        post_enabled: bool = True,
        shape: Shape = "token",
        post_shape: Shape = "access_token",
        expires_in: int | None = 300,
        issued_at_offset: float | None = 0.0,
        lifetime: int | None = None,
        require_client_id: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(ssl_context=ssl_context)
        self.directory = directory
        self.service = service
        self.issuer = issuer
        self.users: dict[str, str] = dict(users or {})
        self.anonymous: Anonymous = anonymous
        self.grant: GrantFn | None = grant
        self.post_enabled = post_enabled
        self.shape: Shape = shape
        self.post_shape: Shape = post_shape
        # Reported ``expires_in`` (None: omitted from the answer).
        self.expires_in = expires_in
        # ``issued_at`` = now + offset seconds (None: omitted; negative: in the past).
        self.issued_at_offset = issued_at_offset
        # Real validity of the JWT (``exp``); defaults to expires_in, else 300 s.
        self.lifetime = lifetime
        self.require_client_id = require_client_id
        self.extra_fields: dict[str, Any] = {}
        self.issued: list[IssuedToken] = []
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> username
        self._lock = threading.Lock()
        self._key, self._cert_der = self._make_key(directory)

    # -- key material ------------------------------------------------------------------
    def _make_key(self, directory: Path) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "portside test token issuer")])
        now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=3))
            .sign(key, hashes.SHA256())
        )
        self.cert_file = directory / "issuer-cert.pem"
        self.key_file = directory / "issuer-key.pem"
        self.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return key, cert.public_bytes(serialization.Encoding.DER)

    @property
    def realm(self) -> str:
        """The URL to put in ``auth.token.realm`` (and what the registry's challenge names)."""
        return f"{self.url}{TOKEN_PATH}"

    # -- tokens ------------------------------------------------------------------------
    def issue_token(
        self,
        subject: str | None,
        access: Iterable[Mapping[str, Any]],
        *,
        audience: str | None = None,
        lifetime: int | None = None,
        field: str = "token",
    ) -> str:
        """Sign a JWT the registry accepts; tests may call this to craft tokens directly."""
        now = int(time.time())
        life = lifetime or self.lifetime or self.expires_in or 300
        jti = secrets.token_hex(12)
        access_list = tuple(dict(a) for a in access)
        header = {
            "typ": "JWT",
            "alg": "ES256",
            "x5c": [base64.b64encode(self._cert_der).decode("ascii")],
        }
        claims = {
            "iss": self.issuer,
            "sub": subject or "",
            "aud": audience or self.service,
            "exp": now + life,
            # A little slack for clock skew between this process and the registry.
            "nbf": now - 10,
            "iat": now,
            "jti": jti,
            "access": list(access_list),
        }
        signing_input = (
            _b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        der = self._key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        # JWS ES256 wants raw r||s, 32 bytes each, not the DER that cryptography returns.
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        jwt = f"{signing_input}.{_b64url(signature)}"
        with self._lock:
            self.issued.append(IssuedToken(jwt, jti, subject, access_list, field))
        return jwt

    def issue_refresh_token(self, username: str) -> str:
        """An identity/refresh token for ``username`` (``identitytoken`` in config.json)."""
        token = "rt-" + secrets.token_urlsafe(24)
        with self._lock:
            self.refresh_tokens[token] = username
        return token

    def access_for(self, subject: str | None, scopes: Iterable[str]) -> list[dict[str, Any]]:
        """The ``access`` claim this issuer grants ``subject`` for the requested scopes."""
        grant = self.grant or default_grant(self.anonymous)
        merged: dict[tuple[str, str], list[str]] = {}
        for text in scopes:
            for part in text.split(" "):  # some clients join scopes with spaces
                if not part:
                    continue
                try:
                    scope = Scope.parse(part)
                except ValueError:
                    continue
                granted = grant(subject, scope.type, scope.name, list(scope.actions))
                have = merged.setdefault((scope.type, scope.name), [])
                have.extend(a for a in granted if a not in have)
        return [
            {"type": rtype, "name": name, "actions": actions}
            for (rtype, name), actions in merged.items()
        ]

    # -- HTTP --------------------------------------------------------------------------
    def _basic_user(self, request: RecordedRequest) -> tuple[str | None, bool]:
        """(username, valid) from a Basic header; (None, True) when there is none."""
        header = request.authorization
        if not header:
            return None, True
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None, False
        try:
            user, _, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None, False
        if user == "<token>":  # docker's convention for identity tokens from helpers
            owner = self.refresh_tokens.get(password)
            return owner, owner is not None
        return user, self.users.get(user) == password and user in self.users

    def _body(
        self, shape: Shape, subject: str | None, access: list[dict[str, Any]], audience: str | None
    ) -> tuple[bytes, str]:
        fields: dict[str, Any] = {}
        if shape in ("token", "both", "huge"):
            fields["token"] = self.issue_token(subject, access, audience=audience)
        if shape in ("access_token", "both"):
            fields["access_token"] = self.issue_token(
                subject, access, audience=audience, field="access_token"
            )
        if shape == "non_json":
            return b"<html><body>token service says hello</body></html>", "text/html"
        if self.expires_in is not None:
            fields["expires_in"] = self.expires_in
        if self.issued_at_offset is not None:
            stamp = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=self.issued_at_offset)
            fields["issued_at"] = stamp.isoformat().replace("+00:00", "Z")
        if shape == "huge":
            # Bigger than any sane client should read whole.
            fields["padding"] = "x" * (8 << 20)
        fields.update(self.extra_fields)
        return json.dumps(fields).encode(), "application/json"

    def handle(self, handler: RecordingHandler, request: RecordedRequest) -> None:
        if request.path != TOKEN_PATH:
            handler.send_simple(404, b'{"error":"not_found"}')
            return
        if request.method == "GET":
            self._handle_get(handler, request)
        elif request.method == "POST":
            self._handle_post(handler, request)
        else:
            handler.send_simple(405, b'{"error":"method_not_allowed"}')

    def _unauthorized(self, handler: RecordingHandler, error: str = "invalid_grant") -> None:
        handler.send_simple(
            401,
            json.dumps({"error": error, "details": "bad credentials"}).encode(),
            [("WWW-Authenticate", 'Basic realm="portside-test-issuer"')],
        )

    def _handle_get(self, handler: RecordingHandler, request: RecordedRequest) -> None:
        user, valid = self._basic_user(request)
        if not valid:
            self._unauthorized(handler, "unauthorized")
            return
        if user is None and self.anonymous == "reject":
            self._unauthorized(handler, "unauthorized")
            return
        access = self.access_for(user, request.params("scope"))
        body, ctype = self._body(self.shape, user, access, request.param("service"))
        if user is not None and request.param("offline_token") == "true" and ctype.endswith("json"):
            data = json.loads(body)
            data["refresh_token"] = self.issue_refresh_token(user)
            body = json.dumps(data).encode()
        handler.send_simple(200, body, content_type=ctype)

    def _handle_post(self, handler: RecordingHandler, request: RecordedRequest) -> None:
        if not self.post_enabled:
            # Like registries whose token endpoint only speaks GET: clients must fall back.
            handler.send_simple(404, b"404 page not found\n", content_type="text/plain")
            return
        form = request.form
        if self.require_client_id and not request.form_value("client_id"):
            handler.send_simple(400, b'{"error":"invalid_request","details":"no client_id"}')
            return
        grant_type = request.form_value("grant_type")
        user: str | None
        if grant_type == "password":
            user = request.form_value("username")
            if user is None or self.users.get(user) != request.form_value("password"):
                self._unauthorized(handler)
                return
        elif grant_type == "refresh_token":
            user = self.refresh_tokens.get(request.form_value("refresh_token") or "")
            if user is None:
                self._unauthorized(handler)
                return
        else:
            handler.send_simple(400, b'{"error":"unsupported_grant_type"}')
            return
        scopes = form.get("scope", [])
        access = self.access_for(user, scopes)
        body, ctype = self._body(self.post_shape, user, access, request.form_value("service"))
        if ctype.endswith("json"):
            data = json.loads(body)
            data["scope"] = " ".join(scopes)
            if request.form_value("access_type") == "offline":
                data["refresh_token"] = (
                    request.form_value("refresh_token")
                    if grant_type == "refresh_token"
                    else self.issue_refresh_token(user)
                )
            body = json.dumps(data).encode()
        handler.send_simple(200, body, content_type=ctype)

    # -- assertions helpers ------------------------------------------------------------
    def token_requests(self) -> list[RecordedRequest]:
        """Every request to the token endpoint, oldest first."""
        return [r for r in self.log.all() if r.path == TOKEN_PATH]

    def issued_by_jwt(self, jwt: str) -> IssuedToken | None:
        with self._lock:
            return next((t for t in self.issued if t.jwt == jwt), None)
