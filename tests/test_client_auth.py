"""The auth layer against real registries: anonymous, Basic, the bearer-token flow.

Every test talks to a real ``docker-registry`` (plain, TLS, htpasswd or token auth with
the harness's recording token issuer). A FaultProxy sits in front only where the
registry cannot be made to misbehave (odd challenges, hostile realms, redirects), and
records what the client sent. The checklist lines covered are those of the "Auth"
section, the credential-choice and secret lines of "Credentials and secrets", and the
realm and redirect lines of "Malicious or broken registries".
"""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness import seed
from harness.dockerconfig import DockerConfig
from harness.images import build_image
from harness.proxy import FaultProxy, Recorder
from harness.recording import RecordedRequest
from harness.registry import Registry, RegistryFactory
from harness.skopeo import Skopeo
from harness.tls import TLSBundle
from harness.tokens import TokenIssuer, decode_jwt, grant_only
from portside import errors
from portside.reference import Digest, Reference
from portside.registry import auth as auth_mod
from portside.registry.auth import Token, parse_token_response
from portside.registry.client import ClientOptions, RegistryClient
from portside.registry.credentials import Credential
from portside.registry.transport import check_destination

REPO = "library/app"
WRONG_PASSWORD = "wr0ng-Pa55word-zz9"
FAST = ClientOptions(max_retries=2, backoff_base=0.01, backoff_cap=0.05, timeout=15.0)

ProxyFactory = Callable[..., FaultProxy]

# --- helpers -------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def isolated(docker_config: DockerConfig, no_machine_credentials: Path) -> DockerConfig:
    """No credentials from the machine: a fresh HOME and DOCKER_CONFIG, no env secrets."""
    return docker_config


@pytest.fixture
def issuer(token_registry: Registry) -> TokenIssuer:
    """``token_registry``'s own token issuer, which records every token request."""
    assert token_registry.token_issuer is not None
    return token_registry.token_issuer


def client(**options: Any) -> RegistryClient:
    return RegistryClient(dataclasses.replace(FAST, **options))


def ref(host: str, repo: str = REPO, tag: str = "1.0") -> Reference:
    return Reference.parse(f"{host}/{repo}:{tag}")


def seed_app(reg: Registry, repo: str = REPO, tag: str = "1.0") -> seed.PushedImage:
    return seed.push_image(reg, repo, build_image(f"auth-{repo}-{tag}"), [tag], via="fs")


def login(docker_config: DockerConfig, host: str, username: str, password: str) -> None:
    docker_config(auths={host: (username, password)})


def basic_of(request: RecordedRequest) -> tuple[str, str] | None:
    header = request.authorization
    if not header or not header.lower().startswith("basic "):
        return None
    user, _, password = base64.b64decode(header.split(" ", 1)[1]).decode().partition(":")
    return user, password


def bearer_of(request: RecordedRequest) -> str | None:
    header = request.authorization
    if not header or not header.lower().startswith("bearer "):
        return None
    return header.split(" ", 1)[1]


def granted(jwt: str) -> dict[str, set[str]]:
    """``{repository: actions}`` from a JWT's access claim."""
    _header, claims = decode_jwt(jwt)
    return {a["name"]: set(a["actions"]) for a in claims["access"]}


def challenge(issuer: TokenIssuer, extra: str = "") -> str:
    return f'Bearer realm="{issuer.realm}",service="{issuer.service}"{extra}'


def assert_no_secret(exc: BaseException, secrets: Iterable[str]) -> None:
    rendered = f"{exc!s} {exc!r} " + " ".join(str(a) for a in exc.args)
    for secret in secrets:
        if not secret:
            continue
        assert secret not in rendered, f"secret leaked into {rendered!r}"
        encoded = base64.b64encode(secret.encode()).decode()
        assert encoded not in rendered


def secrets_of(reg: Registry, *more: str) -> list[str]:
    found = [reg.password or "", *more]
    if reg.username and reg.password:
        found.append(base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode())
    return found


def after_probe(proxy: FaultProxy) -> list[RecordedRequest]:
    """The requests after the scheme probe: on loopback, the transport first asks
    ``GET /v2/`` over plain HTTP, anonymously, to learn that the port speaks HTTP."""
    probe, *rest = proxy.requests
    assert (probe.method, probe.path, probe.authorization) == ("GET", "/v2/", None)
    return rest


class Clock:
    """A ``time`` stand-in for auth.py: monotonic time that a test moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset


# --- GET /v2/: what the registry says decides the flow -------------------------------


async def test_ping_plain_registry_is_anonymous(
    registry_factory: RegistryFactory, proxy_factory: ProxyFactory
) -> None:
    proxy = proxy_factory(registry_factory())
    async with client() as c:
        await c.ping(proxy.host)
    # The scheme probe (plain HTTP first on loopback), then the ping itself.
    assert [r.path for r in proxy.requests] == ["/v2/", "/v2/"]
    assert all(r.authorization is None for r in proxy.requests)


async def test_ping_bearer_registry_runs_the_token_flow(
    token_registry: Registry, issuer: TokenIssuer
) -> None:
    async with client() as c:
        await c.ping(token_registry.host)
    [request] = issuer.token_requests()
    assert request.method == "GET"
    assert request.param("service") == "portside-test"
    assert request.params("scope") == []


async def test_ping_basic_registry_with_and_without_credentials(
    basic_registry: Registry, isolated: DockerConfig
) -> None:
    async with client() as c:
        with pytest.raises(errors.Unauthorized, match="docker login"):
            await c.ping(basic_registry.host)
    login(isolated, basic_registry.host, *basic_registry.basic_auth)  # type: ignore[misc]
    async with client() as c:
        await c.ping(basic_registry.host)


async def test_ping_404_is_not_a_registry(
    registry_factory: RegistryFactory, proxy_factory: ProxyFactory
) -> None:
    proxy = proxy_factory(registry_factory())
    proxy.respond("GET", r"^/v2/$", 404, "404 page not found", content_type="text/plain")
    async with client() as c:
        with pytest.raises(errors.NotARegistry, match="not an OCI registry"):
            await c.ping(proxy.host)


async def test_ping_5xx_is_retried(
    registry_factory: RegistryFactory, proxy_factory: ProxyFactory
) -> None:
    proxy = proxy_factory(registry_factory())
    proxy.fail("GET", r"^/v2/$", 503, times=2)
    async with client() as c:
        await c.ping(proxy.host)
    assert len(proxy.requests) == 3

    proxy.fail("GET", r"^/v2/$", 502, times=None)
    async with client() as c:
        with pytest.raises(errors.ServerError, match="502"):
            await c.ping(proxy.host)


# --- challenges ----------------------------------------------------------------------


def _variants(issuer: TokenIssuer) -> dict[str, list[tuple[str, str]]]:
    r, s = issuer.realm, issuer.service
    return {
        "negotiate-and-bearer-in-one-header": [
            ("WWW-Authenticate", f'Negotiate, Bearer realm="{r}",service="{s}"')
        ],
        "several-headers": [
            ("WWW-Authenticate", "Negotiate"),
            ("WWW-Authenticate", 'NTLM, Basic realm="elsewhere"'),
            ("WWW-Authenticate", f'Bearer realm="{r}", service="{s}"'),
        ],
        "odd-capitalisation": [("WWW-Authenticate", f'bEaReR ReAlM="{r}", SeRvIcE="{s}"')],
        "quoted-commas-and-escaped-quotes": [
            (
                "WWW-Authenticate",
                'Bearer error_description="say \\"hi\\", then, go", '
                f'realm="{r}?x=a,b", service = "{s}", scope="repository:{REPO}:pull"',
            )
        ],
    }


@pytest.mark.parametrize(
    "variant",
    [
        "negotiate-and-bearer-in-one-header",
        "several-headers",
        "odd-capitalisation",
        "quoted-commas-and-escaped-quotes",
    ],
)
async def test_challenges_are_parsed_exactly(
    variant: str, token_registry: Registry, issuer: TokenIssuer, proxy_factory: ProxyFactory
) -> None:
    seed_app(token_registry)
    proxy = proxy_factory(token_registry)
    proxy.set_headers("GET", r"/tags/list$", _variants(issuer)[variant], times=1)
    async with client() as c:
        assert await c.list_tags(ref(proxy.host)) == ["1.0"]
    [request] = issuer.token_requests()
    assert request.param("service") == issuer.service
    assert request.params("scope") == [f"repository:{REPO}:pull"]
    if variant == "quoted-commas-and-escaped-quotes":
        assert request.param("x") == "a,b"


async def test_unknown_schemes_only_report_the_401(
    token_registry: Registry,
    issuer: TokenIssuer,
    proxy_factory: ProxyFactory,
    isolated: DockerConfig,
) -> None:
    seed_app(token_registry)
    proxy = proxy_factory(token_registry)
    login(isolated, proxy.host, *token_registry.basic_auth)  # type: ignore[misc]
    proxy.set_headers(
        "GET",
        r"/tags/list$",
        [("WWW-Authenticate", "Negotiate"), ("WWW-Authenticate", 'NTLM, Digest realm="x"')],
    )
    async with client() as c:
        with pytest.raises(errors.Unauthorized, match="negotiate") as caught:
            await c.list_tags(ref(proxy.host))
    assert caught.value.status == 401
    # Tried anonymously, once; nothing was sent anywhere.
    assert [r.authorization for r in after_probe(proxy)] == [None]
    assert issuer.token_requests() == []
    assert_no_secret(caught.value, secrets_of(token_registry))


# --- scopes --------------------------------------------------------------------------


async def test_several_scopes_one_parameter_each(
    token_registry: Registry, issuer: TokenIssuer, isolated: DockerConfig
) -> None:
    source = seed_app(token_registry, "library/src")
    login(isolated, token_registry.host, *token_registry.basic_auth)  # type: ignore[misc]
    layer = source.artifact.layers[0]  # type: ignore[union-attr]
    async with client() as c:
        result = await c.upload_blob(
            ref(token_registry.host, "library/dst"),
            layer.data,
            digest=Digest.parse(layer.digest),
            mount_from="library/src",
        )
    assert result.mounted
    mount = [r for r in issuer.token_requests() if len(r.params("scope")) > 1]
    assert len(mount) == 1
    assert sorted(mount[0].params("scope")) == [
        "repository:library/dst:pull,push",
        "repository:library/src:pull",
    ]
    # Each its own parameter, not one space-joined value.
    assert mount[0].target.count("scope=") == 2


async def test_scope_with_host_and_port_is_not_split(
    token_registry: Registry, issuer: TokenIssuer, proxy_factory: ProxyFactory
) -> None:
    seed_app(token_registry)
    proxy = proxy_factory(token_registry)
    mirrored = f"repository:{token_registry.host}/{REPO}:pull"
    proxy.set_headers(
        "GET",
        r"/tags/list$",
        {"WWW-Authenticate": challenge(issuer, f',scope="{mirrored} repository:{REPO}:pull"')},
        times=1,
    )
    async with client() as c:
        assert await c.list_tags(ref(proxy.host)) == ["1.0"]
    [request] = issuer.token_requests()
    assert sorted(request.params("scope")) == sorted([mirrored, f"repository:{REPO}:pull"])


# --- token responses -----------------------------------------------------------------


@pytest.mark.parametrize("shape", ["token", "access_token", "both"])
async def test_token_response_fields(
    shape: str, token_registry: Registry, issuer: TokenIssuer, proxy_factory: ProxyFactory
) -> None:
    seed_app(token_registry)
    issuer.shape = shape  # type: ignore[assignment]
    proxy = proxy_factory(token_registry)
    async with client() as c:
        assert await c.list_tags(ref(proxy.host)) == ["1.0"]
    used = bearer_of(proxy.requests[-1])
    assert used is not None
    issued = issuer.issued_by_jwt(used)
    assert issued is not None
    # With both, ``token`` wins.
    assert issued.field == ("access_token" if shape == "access_token" else "token")


@pytest.mark.parametrize(
    ("shape", "error", "text"),
    [
        ("neither", errors.InvalidResponse, "neither 'token' nor 'access_token'"),
        ("non_json", errors.InvalidResponse, "did not answer with JSON"),
        ("huge", errors.TooLarge, "limit"),
    ],
)
async def test_bad_token_responses_are_clear_errors(
    shape: str, error: type[Exception], text: str, token_registry: Registry, issuer: TokenIssuer
) -> None:
    seed_app(token_registry)
    issuer.shape = shape  # type: ignore[assignment]
    started = time.monotonic()
    async with client() as c:
        with pytest.raises(error, match=text):
            await c.list_tags(ref(token_registry.host))
    assert time.monotonic() - started < 10


def test_token_response_parsing_edges() -> None:
    token, lifetime, refresh = parse_token_response(
        b'{"token": "", "access_token": "abc", "expires_in": "120"}', realm_host="r"
    )
    assert (token, lifetime, refresh) == ("abc", 120.0, None)
    for body in (
        b'{"token": "a\\r\\nX-Evil: 1"}',
        b'{"token": "has space"}',
    ):
        with pytest.raises(errors.InvalidResponse, match="characters") as caught:
            parse_token_response(body, realm_host="r")
        assert "Evil" not in str(caught.value)
    # Nonsense lifetimes count as missing (60 s), never crash.
    for value in ("1" + "0" * 400, "1e999", '"soon"', "true", "-5", "NaN"):
        _t, lifetime, _r = parse_token_response(
            b'{"token": "t", "expires_in": %s}' % value.encode(), realm_host="r"
        )
        assert lifetime == 60.0
    # Go's nanosecond time stamps and offsets are read.
    _t, lifetime, _r = parse_token_response(
        b'{"token": "t", "expires_in": 7200, "issued_at": "2000-01-01T00:00:00.123456789+02:00"}',
        realm_host="r",
    )
    assert lifetime == 60.0
    assert repr(Token("secret-token-value", 0.0)) == "Token(***)"


@pytest.mark.parametrize(
    ("expires_in", "issued_at_offset", "reuse_at", "renew_at"),
    [
        (None, 0.0, 45.0, 55.0),  # missing -> 60 s, renewed 10 s early
        (5, 0.0, 45.0, 55.0),  # under 60 -> 60 s
        (300, None, 280.0, 295.0),  # no issued_at: expires_in as is
        (300, -200.0, 85.0, 95.0),  # issued 200 s ago: 100 s left
        (300, 3600.0, 280.0, 295.0),  # issued "in the future" (skew): just issued
    ],
)
async def test_token_lifetime_and_renewal_before_expiry(
    expires_in: int | None,
    issued_at_offset: float | None,
    reuse_at: float,
    renew_at: float,
    token_registry: Registry,
    issuer: TokenIssuer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed_app(token_registry)
    issuer.expires_in = expires_in
    issuer.issued_at_offset = issued_at_offset
    issuer.lifetime = 3600  # the JWT itself stays valid for the registry
    clock = Clock()
    monkeypatch.setattr(auth_mod, "time", clock)
    target = ref(token_registry.host)
    async with client() as c:
        await c.list_tags(target)
        assert len(issuer.token_requests()) == 1
        clock.offset = reuse_at
        await c.get_manifest(target)
        assert len(issuer.token_requests()) == 1
        clock.offset = renew_at
        await c.list_tags(target)
        assert len(issuer.token_requests()) == 2


async def test_cached_token_reused_across_operations(
    token_registry: Registry, issuer: TokenIssuer
) -> None:
    seed_app(token_registry)
    target = ref(token_registry.host)
    async with client() as c:
        await c.list_tags(target)
        await c.head_manifest(target)
        await c.get_manifest(target)
    assert len(issuer.token_requests()) == 1


async def test_token_cache_is_per_registry_even_with_the_same_realm_and_service(
    token_registry: Registry,
    issuer: TokenIssuer,
    proxy_factory: ProxyFactory,
    isolated: DockerConfig,
) -> None:
    """Two registries (two proxies, two ports) whose challenges name the very same realm,
    service and scope: the token obtained for A, with A's credentials, is never sent to
    B; B gets its own (anonymous) token request."""
    seed_app(token_registry)
    registry_a = proxy_factory(token_registry)
    registry_b = proxy_factory(token_registry)
    login(isolated, registry_a.host, *token_registry.basic_auth)  # type: ignore[misc]
    # The premise: both challenge with one realm, one service, one scope.
    challenges = {
        httpx.get(f"{proxy.url}/v2/{REPO}/tags/list").headers["WWW-Authenticate"]
        for proxy in (registry_a, registry_b)
    }
    assert challenges == {challenge(issuer, f',scope="repository:{REPO}:pull"')}
    registry_a.log.clear()
    registry_b.log.clear()

    def subjects(tokens: set[str]) -> set[str | None]:
        return {issuer.issued_by_jwt(t).subject for t in tokens}  # type: ignore[union-attr]

    async with client() as c:
        # B is met first, so its challenge is known when A's token is in the cache:
        # B's next request is authorised straight from the cache, no 401 round trip.
        await c.ping(registry_b.host)
        assert await c.list_tags(ref(registry_a.host)) == ["1.0"]
        [_ping_b, for_a] = issuer.token_requests()
        assert basic_of(for_a) == token_registry.basic_auth
        tokens_a = {t for t in map(bearer_of, registry_a.requests) if t}
        assert tokens_a, "registry A was sent a bearer token"
        assert subjects(tokens_a) == {token_registry.username}

        assert await c.list_tags(ref(registry_b.host)) == ["1.0"]
        sent_to_b = {t for t in map(bearer_of, registry_b.requests) if t}
        assert not tokens_a & sent_to_b, "registry A's token reached registry B"
        # A token request of B's own after A's, anonymous: B has no credentials.
        [_, _, for_b] = issuer.token_requests()
        assert for_b.authorization is None
        assert for_b.param("account") is None
        assert for_b.params("scope") == [f"repository:{REPO}:pull"]

        # Each token stays cached for its own registry: no more token requests.
        assert await c.list_tags(ref(registry_a.host)) == ["1.0"]
        assert await c.list_tags(ref(registry_b.host)) == ["1.0"]
    assert len(issuer.token_requests()) == 3
    sent_to_b = {t for t in map(bearer_of, registry_b.requests) if t}
    assert not tokens_a & sent_to_b, "registry A's token reached registry B"
    assert sent_to_b, "registry B was sent its own token"
    assert subjects(sent_to_b) == {None}
    assert all(basic_of(r) is None for r in registry_b.requests)
    assert {t for t in map(bearer_of, registry_a.requests) if t} == tokens_a


# --- per-scope tokens, insufficient scope, grants below what was asked ---------------


async def test_pull_token_is_never_used_for_a_push(
    token_registry: Registry,
    issuer: TokenIssuer,
    proxy_factory: ProxyFactory,
    isolated: DockerConfig,
) -> None:
    seed_app(token_registry)
    proxy = proxy_factory(token_registry)
    login(isolated, proxy.host, *token_registry.basic_auth)  # type: ignore[misc]
    blob = b"portside auth layer " * 10
    async with client() as c:
        await c.list_tags(ref(proxy.host))
        await c.upload_blob(ref(proxy.host), blob)
        assert await c.blob_exists(ref(proxy.host), Digest.of(blob)) == len(blob)
    scopes = [r.params("scope") for r in issuer.token_requests()]
    assert scopes == [[f"repository:{REPO}:pull"], [f"repository:{REPO}:pull,push"]]
    for request in proxy.requests:
        token = bearer_of(request)
        if request.method in ("POST", "PUT", "PATCH"):
            assert token is not None
            assert granted(token)[REPO] == {"pull", "push"}
        elif token is not None and request.path.endswith("/tags/list"):
            assert granted(token)[REPO] == {"pull"}
    # The push went out with the push token the first time: no 401 round trip.
    assert len([r for r in proxy.requests if r.method == "POST"]) == 1


async def test_insufficient_scope_on_push_reasks_once_with_wider_scope(
    token_registry: Registry,
    issuer: TokenIssuer,
    proxy_factory: ProxyFactory,
    isolated: DockerConfig,
) -> None:
    proxy = proxy_factory(token_registry)
    login(isolated, proxy.host, *token_registry.basic_auth)  # type: ignore[misc]
    pushes: list[str] = []

    def stingy_once(subject: str | None, rtype: str, name: str, actions: list[str]) -> list[str]:
        if "push" in actions and name == REPO:
            pushes.append(name)
            if len(pushes) == 1:
                return ["pull"]
        return list(actions)

    issuer.grant = stingy_once
    extra = "repository:library/extra:pull"
    proxy.set_headers(
        "POST",
        r"/blobs/uploads/$",
        {
            "WWW-Authenticate": challenge(
                issuer, f',scope="repository:{REPO}:pull,push {extra}",error="insufficient_scope"'
            )
        },
        times=1,
    )
    blob = b"wider scope " * 7
    async with client() as c:
        result = await c.upload_blob(ref(proxy.host), blob)
    assert not result.existed
    push_requests = [r for r in issuer.token_requests() if "push" in " ".join(r.params("scope"))]
    assert len(push_requests) == 2
    assert sorted(push_requests[1].params("scope")) == [f"repository:{REPO}:pull,push", extra]
    assert len([r for r in proxy.requests if r.method == "POST"]) == 2


async def test_token_granting_less_than_asked_is_denied(
    token_registry: Registry, issuer: TokenIssuer, isolated: DockerConfig
) -> None:
    issuer.grant = grant_only({"pull"})
    login(isolated, token_registry.host, *token_registry.basic_auth)  # type: ignore[misc]
    async with client() as c:
        with pytest.raises(errors.Denied) as caught:
            await c.upload_blob(ref(token_registry.host), b"denied layer")
    message = str(caught.value)
    assert "granted less" in message
    assert "refused" not in message  # not "bad credentials"
    assert "docker config" in message  # names where the account came from
    push_requests = [r for r in issuer.token_requests() if "push" in " ".join(r.params("scope"))]
    assert len(push_requests) == 2  # asked, then re-asked once: no loop
    assert_no_secret(caught.value, secrets_of(token_registry))


@pytest.mark.parametrize("auth", ["basic", "token"])
async def test_wrong_password_names_the_source_never_the_password(
    auth: str, registry_factory: RegistryFactory, isolated: DockerConfig
) -> None:
    reg = registry_factory(auth=auth)  # type: ignore[arg-type]
    seed_app(reg)
    login(isolated, reg.host, "portside", WRONG_PASSWORD)
    async with client() as c:
        with pytest.raises(errors.Unauthorized) as caught:
            await c.list_tags(ref(reg.host))
    message = str(caught.value)
    assert "refused" in message
    assert f"docker config {isolated.path}" in message
    assert not isinstance(caught.value, errors.Denied)
    assert_no_secret(caught.value, [WRONG_PASSWORD, f"portside:{WRONG_PASSWORD}"])


async def test_anonymous_refused_by_token_server_is_unauthorized(
    token_registry: Registry,
    issuer: TokenIssuer,
) -> None:
    seed_app(token_registry)
    issuer.anonymous = "reject"
    async with client() as c:
        with pytest.raises(errors.Unauthorized, match=r"no anonymous access.*docker login"):
            await c.list_tags(ref(token_registry.host))


# --- identity tokens and refresh tokens ----------------------------------------------


@pytest.mark.parametrize("source", ["identitytoken", "helper"])
@pytest.mark.parametrize("post_enabled", [True, False])
async def test_identity_token_uses_oauth2_refresh_grant(
    source: str,
    post_enabled: bool,
    token_registry: Registry,
    issuer: TokenIssuer,
    isolated: DockerConfig,
) -> None:
    seed_app(token_registry)
    issuer.post_enabled = post_enabled
    refresh = issuer.issue_refresh_token("portside")
    host = token_registry.host
    if source == "identitytoken":
        isolated(auths={host: {"identitytoken": refresh}})
    else:
        isolated.helper("idt", {host: ("<token>", refresh)})
        isolated(cred_helpers={host: "idt"})
    async with client() as c:
        assert await c.list_tags(ref(host)) == ["1.0"]
        await c.upload_blob(ref(host), b"pushed with an identity token")
    requests = issuer.token_requests()
    posts = [r for r in requests if r.method == "POST"]
    assert posts, "no OAuth2 POST"
    form = posts[0].form
    assert form["grant_type"] == ["refresh_token"]
    assert form["refresh_token"] == [refresh]
    assert form["service"] == [issuer.service]
    assert form["client_id"] == ["portside"]
    assert form["scope"] == [f"repository:{REPO}:pull"]
    # Never in a URL.
    assert all(refresh not in r.target for r in requests)
    gets = [r for r in requests if r.method == "GET"]
    if post_enabled:
        assert gets == []
    else:
        # 404 on POST -> GET with the token as Basic <token>:secret, scopes as params.
        assert len(gets) == len(posts) == 2
        assert basic_of(gets[0]) == ("<token>", refresh)
        assert gets[0].params("scope") == [f"repository:{REPO}:pull"]
        assert gets[0].param("account") is None


async def test_refresh_token_goes_only_to_the_realm_that_issued_it(
    token_registry: Registry,
    issuer: TokenIssuer,
    proxy_factory: ProxyFactory,
    recorder: Recorder,
    isolated: DockerConfig,
) -> None:
    for repo in (REPO, "library/two", "library/three"):
        seed_app(token_registry, repo)
    learned = issuer.issue_refresh_token("portside")
    issuer.extra_fields = {"refresh_token": learned}
    proxy = proxy_factory(token_registry)
    login(isolated, proxy.host, *token_registry.basic_auth)  # type: ignore[misc]
    async with client() as c:
        await c.list_tags(ref(proxy.host))
        assert issuer.token_requests()[-1].method == "GET"
        # The realm handed out a refresh token: the next scope is asked for with it.
        await c.list_tags(ref(proxy.host, "library/two"))
        post = issuer.token_requests()[-1]
        assert post.method == "POST"
        assert post.form_value("refresh_token") == learned
        # Now the registry names another realm: the refresh token stays home.
        proxy.respond(
            "GET",
            r"/library/three/tags/list$",
            401,
            b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
            {"WWW-Authenticate": f'Bearer realm="{recorder.url}/token",service="other"'},
        )
        with pytest.raises(errors.PortsideError) as caught:
            await c.list_tags(ref(proxy.host, "library/three"))
    assert recorder.requests, "the other realm was never asked"
    for request in recorder.requests:
        seen = request.target + request.body.decode("latin-1") + repr(request.headers)
        assert learned not in seen
        credentials = basic_of(request)
        assert credentials is None or credentials[1] != learned
    assert_no_secret(caught.value, [*secrets_of(token_registry), learned])


async def test_refused_learned_refresh_token_falls_back_to_the_password(
    token_registry: Registry, issuer: TokenIssuer, isolated: DockerConfig
) -> None:
    for repo in (REPO, "library/two"):
        seed_app(token_registry, repo)
    issuer.extra_fields = {"refresh_token": "rt-the-issuer-will-not-honour"}
    login(isolated, token_registry.host, *token_registry.basic_auth)  # type: ignore[misc]
    async with client() as c:
        await c.list_tags(ref(token_registry.host))
        assert await c.list_tags(ref(token_registry.host, "library/two")) == ["1.0"]
    methods = [r.method for r in issuer.token_requests()]
    assert methods == ["GET", "POST", "GET"]


# --- anonymous -----------------------------------------------------------------------


async def test_anonymous_sends_no_authorization_and_no_account(
    token_registry: Registry, issuer: TokenIssuer, proxy_factory: ProxyFactory
) -> None:
    seed_app(token_registry)
    proxy = proxy_factory(token_registry)
    async with client() as c:
        assert await c.list_tags(ref(proxy.host)) == ["1.0"]
    [request] = issuer.token_requests()
    assert request.authorization is None
    assert "account" not in request.query
    assert "account" not in request.target
    assert proxy.requests[0].authorization is None


# --- basic auth and credential sources -----------------------------------------------


@pytest.mark.parametrize("source", ["auths", "credHelpers", "credsStore"])
async def test_basic_registry_with_docker_config_credentials(
    source: str,
    basic_registry: Registry,
    proxy_factory: ProxyFactory,
    isolated: DockerConfig,
) -> None:
    seed_app(basic_registry)
    proxy = proxy_factory(basic_registry)
    user, password = basic_registry.basic_auth  # type: ignore[misc]
    if source == "auths":
        isolated(auths={proxy.host: (user, password)})
    else:
        isolated.helper("store", {proxy.host: (user, password)})
        if source == "credHelpers":
            isolated(cred_helpers={proxy.host: "store"})
        else:
            isolated(creds_store="store")
    async with client() as c:
        assert await c.list_tags(ref(proxy.host)) == ["1.0"]
        await c.get_manifest(ref(proxy.host))
    sent = [basic_of(r) for r in after_probe(proxy)]
    assert sent[0] is None  # anonymous first, then the challenge
    assert sent[1:] == [(user, password)] * (len(sent) - 1)


@pytest.mark.parametrize("behaviour", ["missing", "crash", "hang"])
async def test_broken_helper_is_a_clear_error_within_the_timeout(
    behaviour: str,
    basic_registry: Registry,
    proxy_factory: ProxyFactory,
    isolated: DockerConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = proxy_factory(basic_registry)
    monkeypatch.setenv("PORTSIDE_CREDENTIAL_HELPER_TIMEOUT", "1")
    if behaviour != "missing":
        isolated.helper("broken", {proxy.host: ("u", "helper-secret-xyz")}, behaviour=behaviour)  # type: ignore[arg-type]
    isolated(cred_helpers={proxy.host: "broken"})
    started = time.monotonic()
    async with client() as c:
        with pytest.raises(errors.CredentialError, match="docker-credential-broken") as caught:
            await c.ping(proxy.host)
    assert time.monotonic() - started < 8
    assert all(r.authorization is None for r in proxy.requests)
    assert_no_secret(caught.value, ["helper-secret-xyz"])


async def test_credentials_go_only_to_their_exact_host(
    basic_registry: Registry,
    proxy_factory: ProxyFactory,
    recorder: Recorder,
    isolated: DockerConfig,
) -> None:
    seed_app(basic_registry)
    login(isolated, basic_registry.host, *basic_registry.basic_auth)  # type: ignore[misc]
    # Another port on the same address, in front of the very same registry.
    hostile = proxy_factory(basic_registry)
    recorder.respond(None, "", 401, b"", {"WWW-Authenticate": 'Basic realm="give me"'})
    async with client() as c:
        assert await c.list_tags(ref(basic_registry.host)) == ["1.0"]
        for host in (hostile.host, recorder.host):
            with pytest.raises(errors.Unauthorized, match="docker login") as caught:
                await c.list_tags(ref(host))
            assert_no_secret(caught.value, secrets_of(basic_registry))
    assert hostile.requests and recorder.requests
    assert [r.authorization for r in hostile.requests] == [None] * len(hostile.requests)
    assert recorder.authorization_headers() == []


@pytest.mark.parametrize("hostile_met_first", [False, True])
async def test_hostile_token_registry_never_gets_other_hosts_credentials(
    hostile_met_first: bool,
    token_registry: Registry,
    issuer: TokenIssuer,
    proxy_factory: ProxyFactory,
    isolated: DockerConfig,
) -> None:
    seed_app(token_registry)
    login(isolated, token_registry.host, *token_registry.basic_auth)  # type: ignore[misc]
    # In front of the same registry: its challenge names the same realm and service.
    hostile = proxy_factory(token_registry)
    async with client() as c:
        if hostile_met_first:  # its challenge is known while the other token is cached
            await c.ping(hostile.host)
        await c.list_tags(ref(token_registry.host))
        before = len(issuer.token_requests())
        await c.list_tags(ref(hostile.host))  # anonymous pull is allowed
    assert issuer.token_requests()[before:], "the hostile host got no token of its own"
    for request in issuer.token_requests()[before:]:
        assert request.authorization is None
        assert request.param("account") is None
    assert all(basic_of(r) is None for r in hostile.requests)
    # Bearer tokens did reach it, but only anonymous ones: none obtained with the
    # other host's credentials.
    bearers = {t for t in map(bearer_of, hostile.requests) if t}
    assert bearers
    for token in bearers:
        issued = issuer.issued_by_jwt(token)
        assert issued is not None
        assert issued.subject is None


# --- realms --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("realm", "error"),
    [
        ("file:///etc/passwd", errors.UnsafeResponse),
        ("ftp://127.0.0.1/token", errors.UnsafeResponse),
        ("gopher://127.0.0.1:70/_GET", errors.UnsafeResponse),
        ("http://[::1", errors.InvalidResponse),
        ("http:///token", errors.InvalidResponse),
    ],
)
async def test_realm_with_bad_scheme_or_shape_is_refused(
    realm: str,
    error: type[Exception],
    token_registry: Registry,
    issuer: TokenIssuer,
    proxy_factory: ProxyFactory,
    isolated: DockerConfig,
) -> None:
    seed_app(token_registry)
    proxy = proxy_factory(token_registry)
    login(isolated, proxy.host, *token_registry.basic_auth)  # type: ignore[misc]
    proxy.set_headers(
        "GET", r"/tags/list$", {"WWW-Authenticate": f'Bearer realm="{realm}",service="x"'}
    )
    async with client() as c:
        with pytest.raises(error) as caught:
            await c.list_tags(ref(proxy.host))
    assert_no_secret(caught.value, secrets_of(token_registry))
    assert issuer.token_requests() == []


async def test_https_registry_plain_http_realm_is_refused(
    registry_factory: RegistryFactory,
    proxy_factory: ProxyFactory,
    tls_bundle: TLSBundle,
    token_issuer: TokenIssuer,
    isolated: DockerConfig,
) -> None:
    reg = registry_factory(auth="token", tls=True)
    seed_app(reg)
    proxy = proxy_factory(reg, ssl_context=tls_bundle.server_context())
    login(isolated, proxy.host, *reg.basic_auth)  # type: ignore[misc]
    options = {"ca_file": str(reg.ca_file)}
    # The real HTTPS realm works...
    async with client(**options) as c:
        assert await c.list_tags(ref(proxy.host)) == ["1.0"]
    # ...a plain-HTTP one is refused before anything is sent to it.
    proxy.set_headers("GET", r"/tags/list$", {"WWW-Authenticate": challenge(token_issuer)})
    async with client(**options) as c:
        with pytest.raises(errors.UnsafeResponse, match="HTTPS to plain HTTP") as caught:
            await c.list_tags(ref(proxy.host))
    assert token_issuer.token_requests() == []
    assert_no_secret(caught.value, secrets_of(reg))


@pytest.mark.parametrize(
    "realm",
    [
        "https://127.0.0.1/token",
        "https://127.0.0.1:5000/token",
        "https://10.0.0.8/token",
        "https://192.168.1.1/token",
        "http://169.254.169.254/latest/meta-data/",
        "https://[::1]:8443/token",
        "https://0.0.0.0/token",
        "https://localhost/token",
        "https://[fe80::1]/token",
    ],
)
def test_public_registry_may_not_point_realm_inside(realm: str) -> None:
    with pytest.raises(errors.UnsafeResponse):
        check_destination(
            httpx.URL(realm), httpx.URL("https://registry.example.com"), what="the token realm"
        )


@pytest.mark.parametrize(
    ("realm", "registry"),
    [
        ("https://auth.docker.io/token", "https://registry-1.docker.io"),
        ("https://ghcr.io/token", "https://ghcr.io"),
        ("https://10.0.0.5:5000/token", "https://10.0.0.5:5000"),  # its own origin
        ("http://127.0.0.1:9999/token", "http://127.0.0.1:5000"),  # loopback to loopback
    ],
)
def test_public_and_own_realms_stay_allowed(realm: str, registry: str) -> None:
    check_destination(httpx.URL(realm), httpx.URL(registry), what="the token realm")


def test_private_registry_may_not_point_realm_at_link_local() -> None:
    with pytest.raises(errors.UnsafeResponse):
        check_destination(
            httpx.URL("https://169.254.169.254/latest/meta-data/"),
            httpx.URL("https://10.0.0.5:5000"),
            what="the token realm",
        )


# --- redirects -----------------------------------------------------------------------


async def test_redirect_to_another_origin_strips_authorization(
    token_registry: Registry,
    proxy_factory: ProxyFactory,
    recorder: Recorder,
    isolated: DockerConfig,
) -> None:
    pushed = seed_app(token_registry)
    proxy = proxy_factory(token_registry)
    login(isolated, proxy.host, *token_registry.basic_auth)  # type: ignore[misc]
    # proxy -> recorder (another origin) -> back to the proxy: stripped all the way.
    proxy.redirect("GET", r"/blobs/", recorder.url, times=1)
    recorder.redirect("GET", r"/blobs/", proxy.url, times=1)
    async with client() as c:
        target = ref(proxy.host)
        manifest = await c.get_manifest(target)
        assert manifest.config is not None
        config = await c.get_blob(target, manifest.config.digest)
    assert Digest.of(config) == Digest.parse(pushed.config_digest)
    assert recorder.requests
    assert recorder.authorization_headers() == []
    blob_gets = [r for r in proxy.requests if "/blobs/" in r.path]
    assert bearer_of(blob_gets[0]) is not None  # there was something to strip
    assert blob_gets[1].authorization is None  # the hop back came without it


# --- secrets -------------------------------------------------------------------------


async def test_token_server_echoing_secrets_does_not_leak_them(
    token_registry: Registry,
    proxy_factory: ProxyFactory,
    recorder: Recorder,
    isolated: DockerConfig,
) -> None:
    seed_app(token_registry)
    proxy = proxy_factory(token_registry)
    user, password = token_registry.basic_auth  # type: ignore[misc]
    login(isolated, proxy.host, user, password)
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    message = f"bad: {password} / Basic {basic}"
    echo = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": message}]}).encode()
    recorder.respond("GET", "/token", 401, echo)
    proxy.set_headers(
        "GET",
        r"/tags/list$",
        {"WWW-Authenticate": f'Bearer realm="{recorder.url}/token",service="s"'},
    )
    async with client() as c:
        with pytest.raises(errors.Unauthorized) as caught:
            await c.list_tags(ref(proxy.host))
    assert "***" in str(caught.value)
    assert_no_secret(caught.value, [password, basic])


def test_credential_and_authenticator_reprs_hide_secrets() -> None:
    credential = Credential(
        username="u",
        password="pw-secret-1",
        identity_token="idt-secret-2",
        registry_token="rt-secret-3",
        source="test",
    )
    authenticator = auth_mod.Authenticator(None, None)  # type: ignore[arg-type]
    authenticator._tokens[("h", "r", "s", frozenset())] = Token("tok-secret-4", 0.0)
    rendered = f"{credential!r} {credential!s} {authenticator!r} {authenticator._tokens!r}"
    for secret in ("pw-secret-1", "idt-secret-2", "rt-secret-3", "tok-secret-4"):
        assert secret not in rendered


# --- end to end, cross-checked with skopeo -------------------------------------------


async def test_token_registry_end_to_end_with_skopeo(
    token_registry: Registry, isolated: DockerConfig
) -> None:
    image = build_image("auth-e2e")
    host = token_registry.host
    login(isolated, host, *token_registry.basic_auth)  # type: ignore[misc]
    target = ref(host, "team/e2e", "v1")
    async with client() as c:
        for blob in image.blobs:
            await c.upload_blob(target, blob.data)
        digest = await c.put_manifest(target, image.manifest.data, image.media_type)
        assert await c.list_tags(target) == ["v1"]
        descriptor = await c.head_manifest(target)
    assert str(digest) == image.digest == str(descriptor.digest)
    skopeo = Skopeo.for_registry(token_registry)
    assert skopeo.list_tags(f"{host}/team/e2e") == ["v1"]
    assert skopeo.digest(f"{host}/team/e2e:v1") == image.digest
    # What skopeo pushed, Portside reads back (and anonymous pull works as configured).
    skopeo.copy(f"{host}/team/e2e:v1", f"{host}/team/e2e:v2")
    async with client() as c:
        assert await c.list_tags(target) == ["v1", "v2"]
        assert (await c.head_manifest(ref(host, "team/e2e", "v2"))).digest == digest


async def test_token_post_redirected_elsewhere_keeps_the_refresh_token_home(
    token_registry: Registry,
    issuer: TokenIssuer,
    proxy_factory: ProxyFactory,
    recorder: Recorder,
    isolated: DockerConfig,
) -> None:
    """A realm that 307-redirects the OAuth2 POST to another origin gets refused: the
    body holds the refresh token, and a redirect must not carry it to another host."""
    seed_app(token_registry)
    refresh = issuer.issue_refresh_token("portside")
    realm_proxy = proxy_factory(issuer.realm.rsplit("/", 1)[0])
    realm_proxy.redirect("POST", r"/token", recorder.url, status=307)
    proxy = proxy_factory(token_registry)
    proxy.set_headers(
        "GET",
        r"/tags/list$",
        {"WWW-Authenticate": f'Bearer realm="{realm_proxy.url}/token",service="{issuer.service}"'},
        times=1,
    )
    isolated(auths={proxy.host: {"identitytoken": refresh}})
    async with client() as c:
        with pytest.raises(errors.UnsafeResponse, match="another origin") as caught:
            await c.list_tags(ref(proxy.host))
    assert realm_proxy.log.matching("POST", r"/token"), "the realm was never asked"
    assert recorder.requests == []
    assert_no_secret(caught.value, [refresh])
