"""The test harness itself works: every registry variant, checked with the real skopeo.

These tests exercise only ``tests/harness`` (never portside), so a failure here means
the harness, or the machine's docker-registry/skopeo, is broken, not the client.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from harness import data, seed
from harness.catalog import MANY_TAGS_COUNT, MANY_TAGS_REPO
from harness.dockerconfig import DockerConfig, encode_auth
from harness.images import DOCKER_LIST, OCI_INDEX, OCI_MANIFEST, Platform
from harness.proxy import FaultProxy, Recorder
from harness.pusher import HttpPusher, PushError
from harness.registry import Registry, RegistryFactory, RegistryStartError
from harness.skopeo import Skopeo, SkopeoError
from harness.storage import FsStorage
from harness.tls import TLSBundle
from harness.tokens import Scope, TokenIssuer, decode_jwt, grant_only

pytestmark = pytest.mark.timeout(60)


# -- images are deterministic --------------------------------------------------------------
def test_images_are_deterministic() -> None:
    a = seed.build_index("b1", ["amd64", "arm64v8"], media="oci")
    b = seed.build_index("b1", ["amd64", "arm64v8"], media="oci")
    assert a.digest == b.digest
    assert a.manifest.data == b.manifest.data
    assert seed.build_index("b2", ["amd64", "arm64v8"]).digest != a.digest
    assert seed.build_index("b1", ["amd64", "arm64v8"], media="docker").digest != a.digest
    # Every child is a distinct image with its own layer.
    assert len({c.layers[0].digest for c in a.children}) == 2
    config = json.loads(a.child("arm64v8").config.data)
    assert (config["os"], config["architecture"], config["variant"]) == ("linux", "arm64", "v8")
    assert config["rootfs"]["diff_ids"] == list(a.child("arm64v8").diff_ids)


def test_architecture_names_map_to_platforms() -> None:
    assert seed.platform_for("arm32v7") == Platform("linux", "arm", "v7")
    assert seed.platform_for("i386").key == "linux/386"
    assert seed.platform_for("windows-amd64").os == "windows"
    assert seed.platform_for("linux/arm64/v8") == seed.platform_for("arm64v8")
    with pytest.raises(ValueError, match="unknown architecture"):
        seed.platform_for("pdp11")


def test_tag_data_loads() -> None:
    rows = data.load_current("python")
    assert len(rows) > 100
    assert all(r.architectures for r in rows)
    history = data.load_history("alpine")
    state = data.state_at(history, "2018-01-01")
    assert state
    assert all(b for b in state.values())
    assert set(data.available("history")) >= {"alpine", "python-since-2025-06"}


# -- the session registry (plain HTTP, seeded through the storage fast path) ----------------
def test_seeded_tags_and_digests_match_skopeo(registry: Registry) -> None:
    sk = Skopeo.for_registry(registry)
    for repo in ("library/python", "library/alpine", "library/debian", "library/nginx"):
        result = registry.seeded[repo]
        assert sorted(sk.list_tags(registry.ref(repo))) == sorted(result.tags)
    python = registry.seeded["library/python"]
    for tag in ("latest", "3.13-slim", "3-alpine"):
        if tag in python.tags:
            assert sk.digest(registry.ref("library/python", tag)) == python.tags[tag]
    # Tags of one build share one digest.
    rows = data.load_current("python")
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.tag] = counts.get(row.tag, 0) + 1
    build, group = next(
        (b, g)
        for b, g in data.by_build(rows).items()
        if len(g) > 1 and all(counts[r.tag] == 1 for r in g)
    )
    assert {python.tags[r.tag] for r in group} == {python.images[build].digest}
    # A shared tag (Linux and Windows builds under "3") is one index over all of them.
    shared = python.image("3")
    builds = [r.build for r in rows if r.tag == "3"]
    assert shared.build == "+".join(builds)
    assert "windows/amd64" in shared.platform_digests
    assert [k for k, _ in shared.children].count("windows/amd64") == 2
    assert "linux/arm64/v8" in shared.platform_digests


def test_index_children_match(registry: Registry) -> None:
    sk = Skopeo.for_registry(registry)
    python = registry.seeded["library/python"]
    rows = data.load_current("python")
    tag = "3.14-slim"
    arch_row = next(r for r in rows if r.tag == tag)
    image = python.image(tag)
    raw = sk.inspect_raw_json(registry.ref("library/python", tag))
    assert raw["mediaType"] == OCI_INDEX
    served = {
        seed.platform_for(
            "/".join(
                [m["platform"]["os"], m["platform"]["architecture"]]
                + ([m["platform"]["variant"]] if "variant" in m["platform"] else [])
            )
        ).key: m["digest"]
        for m in raw["manifests"]
    }
    assert served == image.platform_digests
    assert len(served) == len(arch_row.architectures)
    assert [m["digest"] for m in raw["manifests"]] == [d for _, d in image.children]
    # skopeo's own platform selection lands on our arm64 child and its config.
    config = sk.inspect_config(registry.ref("library/python", tag))
    assert config["architecture"] in {"amd64", "arm64"}
    child = sk.inspect_raw_json(
        registry.ref("library/python", image.platform_digests["linux/arm64/v8"])
    )
    assert child["mediaType"] == OCI_MANIFEST
    assert child["config"]["digest"] == image.config_digests["linux/arm64/v8"]
    inspected = sk.inspect(registry.ref("library/python", tag), platform=("linux", "arm64", "v8"))
    assert inspected["Architecture"] == "arm64"
    assert inspected["Created"].startswith(image.created[:10])
    # Docker media types where asked for.
    alpine = sk.inspect_raw_json(registry.ref("library/alpine", "latest"))
    assert alpine["mediaType"] == DOCKER_LIST
    debian = registry.seeded["library/debian"].image("latest")
    assert debian.index_digest is None
    assert sk.digest(registry.ref("library/debian", "latest")) == debian.digest


def test_many_tags_repository(registry: Registry) -> None:
    tags = Skopeo.for_registry(registry).list_tags(registry.ref(MANY_TAGS_REPO))
    assert len(tags) == MANY_TAGS_COUNT
    assert sorted(tags) == sorted(registry.seeded[MANY_TAGS_REPO].tags)


def test_many_tags_seed_fast(plain_registry: Registry) -> None:
    started = time.monotonic()
    result = seed.seed_many_tags(plain_registry, "fast/seed", 2000)
    assert time.monotonic() - started < 10  # ~1 s here; generous for loaded CI machines
    assert len(result.tags) == 2000
    listed = Skopeo.for_registry(plain_registry).list_tags(plain_registry.ref("fast/seed"))
    assert len(listed) == 2000


def test_http_push_and_fast_path_agree(plain_registry: Registry) -> None:
    artifact = seed.build_index("agree", ["amd64", "arm32v7", "s390x"], media="docker")
    over_http = seed.push_image(plain_registry, "via/http", artifact, ["1.0"])
    on_disk = seed.push_image(plain_registry, "via/fs", artifact, ["1.0"], via="fs")
    assert over_http.digest == on_disk.digest == artifact.digest
    sk = Skopeo.for_registry(plain_registry)
    assert sk.digest(plain_registry.ref("via/http", "1.0")) == artifact.digest
    assert sk.digest(plain_registry.ref("via/fs", "1.0")) == artifact.digest
    # The fast path wrote what a real push writes.
    storage = FsStorage(plain_registry.root)
    assert storage.tag_digest("via/http", "1.0") == storage.tag_digest("via/fs", "1.0")
    # A single image by tag and by digest.
    single = seed.build_image("single", arch="arm64v8")
    pushed = seed.push_image(plain_registry, "via/http", single, ["single"])
    assert pushed.platform_digests == {"linux/arm64/v8": single.digest}
    assert sk.digest(plain_registry.ref("via/http", single.digest)) == single.digest
    # Storage delete is enabled: deleting by digest removes the manifest.
    with HttpPusher.for_registry(plain_registry) as pusher:
        pusher.delete_manifest("via/http", single.digest)
    with pytest.raises(SkopeoError, match=r"(?i)manifest unknown|not found"):
        sk.inspect(plain_registry.ref("via/http", single.digest))


def test_replay_history_moves_forward(plain_registry: Registry) -> None:
    history = data.load_history("alpine")
    sk = Skopeo.for_registry(plain_registry)
    ref = plain_registry.ref("library/alpine")
    early = seed.replay_history(plain_registry, "library/alpine", history, until="2018-06-01")
    assert sorted(sk.list_tags(ref)) == sorted(data.state_at(history, "2018-06-01"))
    later = seed.replay_history(plain_registry, "library/alpine", history, until="2024-06-01")
    expected = data.state_at(history, "2024-06-01")
    assert sorted(sk.list_tags(ref)) == sorted(expected)
    assert set(later.removed_tags) == set(early.tags) - set(expected)
    assert later.removed_tags  # alpine dropped old versions between those dates
    moved = next(t for t in early.tags if t in later.tags and early.tags[t] != later.tags[t])
    assert sk.digest(plain_registry.ref("library/alpine", moved)) == later.tags[moved]
    created = data.first_seen(history)[later.image("latest").build]
    assert later.image("latest").created == f"{created}T00:00:00Z"


# -- TLS, basic, token, read-only ------------------------------------------------------------
def test_tls_registry(tls_registry: Registry, tls_bundle: TLSBundle) -> None:
    assert tls_registry.url.startswith("https://")
    assert tls_registry.ca_file == tls_bundle.ca_file
    pushed = seed.push_image(tls_registry, "tls/image", seed.build_image("tls"), ["v1"])
    sk = Skopeo.for_registry(tls_registry)
    assert sk.list_tags(tls_registry.ref("tls/image")) == ["v1"]
    assert sk.digest(tls_registry.ref("tls/image", "v1")) == pushed.digest
    # Without the CA, verification fails: the certificate is really checked.
    with pytest.raises(SkopeoError, match="certificate"):
        Skopeo(tls_verify=True).list_tags(tls_registry.ref("tls/image"))
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{tls_registry.url}/v2/", timeout=5)


def test_basic_registry(basic_registry: Registry) -> None:
    assert basic_registry.username
    assert basic_registry.password
    seed.push_image(basic_registry, "basic/image", seed.build_image("basic"), ["v1"])
    assert Skopeo.for_registry(basic_registry).list_tags(basic_registry.ref("basic/image")) == [
        "v1"
    ]
    with pytest.raises(SkopeoError):
        Skopeo.for_registry(basic_registry, anonymous=True).list_tags(
            basic_registry.ref("basic/image")
        )
    with pytest.raises(SkopeoError):
        Skopeo(tls_verify=False, creds=(basic_registry.username, "wrong")).list_tags(
            basic_registry.ref("basic/image")
        )
    response = httpx.get(f"{basic_registry.url}/v2/", timeout=5)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_token_registry(token_registry: Registry) -> None:
    issuer = token_registry.token_issuer
    assert issuer is not None
    challenge = httpx.get(f"{token_registry.url}/v2/", timeout=5).headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert f'realm="{issuer.realm}"' in challenge
    pushed = seed.push_image(token_registry, "tok/image", seed.build_image("tok"), ["v1"])
    push_requests = issuer.token_requests()
    assert push_requests[0].params("scope") == ["repository:tok/image:pull,push"]
    assert push_requests[0].authorization is not None
    issuer.log.clear()

    sk = Skopeo.for_registry(token_registry)
    assert sk.digest(token_registry.ref("tok/image", "v1")) == pushed.digest
    seen = issuer.token_requests()
    assert seen
    assert all(r.params("scope") == ["repository:tok/image:pull"] for r in seen)
    assert all(r.authorization and r.authorization.startswith("Basic ") for r in seen)
    issuer.log.clear()

    # Anonymous pull is allowed by default, and sends no Authorization at all.
    Skopeo.for_registry(token_registry, anonymous=True).list_tags(token_registry.ref("tok/image"))
    anonymous = issuer.token_requests()
    assert anonymous
    assert all(r.authorization is None for r in anonymous)
    # The tokens carry the x5c certificate and the granted access.
    header, claims = decode_jwt(issuer.issued[-1].jwt)
    assert header["alg"] == "ES256"
    assert header["x5c"]
    assert claims["aud"] == issuer.service
    assert claims["access"] == [{"type": "repository", "name": "tok/image", "actions": ["pull"]}]


def test_token_issuer_granting_less_than_asked(token_registry: Registry) -> None:
    issuer = token_registry.token_issuer
    assert issuer is not None
    issuer.grant = grant_only({"pull"})
    with pytest.raises(PushError) as caught:
        seed.push_image(token_registry, "tok/denied", seed.build_image("denied"), ["v1"])
    assert caught.value.status == 401
    assert "insufficient_scope" in caught.value.body.lower() or "denied" in caught.value.body


def test_token_issuer_oauth_and_shapes(token_issuer: TokenIssuer) -> None:
    with httpx.Client(timeout=5) as client:
        form = {
            "grant_type": "password",
            "username": "portside",
            "password": "portside-secret-pw",
            "service": token_issuer.service,
            "scope": "repository:a/b:pull",
            "client_id": "portside",
            "access_type": "offline",
        }
        answer = client.post(token_issuer.realm, data=form).json()
        assert answer["access_token"]
        refresh = answer["refresh_token"]
        assert token_issuer.refresh_tokens[refresh] == "portside"
        again = client.post(
            token_issuer.realm,
            data={"grant_type": "refresh_token", "refresh_token": refresh, "service": "s"},
        )
        assert again.status_code == 200
        bad = client.post(
            token_issuer.realm, data={"grant_type": "refresh_token", "refresh_token": "nope"}
        )
        assert bad.status_code == 401

        token_issuer.post_enabled = False
        assert client.post(token_issuer.realm, data=form).status_code == 404

        # One scope= per scope, names with host:port kept whole.
        scopes = ["repository:a:pull", "repository:127.0.0.1:5000/b:pull,push"]
        token_issuer.shape = "both"
        token_issuer.expires_in = None
        got = client.get(
            token_issuer.realm,
            params={"service": "portside-test", "scope": scopes},
            auth=("portside", "portside-secret-pw"),
        ).json()
        assert got["token"] != got["access_token"]
        assert "expires_in" not in got
        assert token_issuer.token_requests()[-1].params("scope") == scopes
        _, claims = decode_jwt(got["token"])
        assert {a["name"] for a in claims["access"]} == {"a", "127.0.0.1:5000/b"}
        assert Scope.parse(scopes[1]).name == "127.0.0.1:5000/b"

        # Identity tokens work as Basic "<token>" on GET too.
        identity = token_issuer.issue_refresh_token("portside")
        token_issuer.shape = "access_token"
        via_identity = client.get(
            token_issuer.realm,
            params={"scope": "repository:a:push"},
            auth=("<token>", identity),
        ).json()
        assert set(via_identity) >= {"access_token", "issued_at"}
        assert "token" not in via_identity
        assert client.get(token_issuer.realm, auth=("portside", "wrong")).status_code == 401

        token_issuer.shape = "non_json"
        assert client.get(token_issuer.realm).headers["content-type"] == "text/html"


def test_readonly_registry_refuses_push(readonly_registry: Registry) -> None:
    sk = Skopeo.for_registry(readonly_registry)
    assert "latest" in sk.list_tags(readonly_registry.ref("library/alpine"))
    with pytest.raises(PushError) as caught:
        seed.push_image(readonly_registry, "ro/image", seed.build_image("ro"), ["v1"])
    assert caught.value.status == 405
    with pytest.raises(SkopeoError):
        sk.copy(
            readonly_registry.ref("library/alpine", "latest"),
            readonly_registry.ref("ro/copy", "latest"),
        )


def test_notifications_reach_an_endpoint(
    registry_factory: RegistryFactory, recorder: Recorder
) -> None:
    reg = registry_factory(notifications_url=f"{recorder.url}/events")
    pushed = seed.push_image(reg, "notify/image", seed.build_image("notify"), ["v1"])
    event_request = recorder.log.wait_for(
        lambda r: r.path == "/events" and pushed.digest.encode() in r.body, timeout=10
    )
    events = json.loads(event_request.body)["events"]
    assert any(
        e["action"] == "push" and e["target"]["repository"] == "notify/image" for e in events
    )


def test_start_failure_is_clear(tmp_path: Path, tls_bundle: TLSBundle) -> None:
    broken = TLSBundle(
        directory=tmp_path,
        ca_file=tls_bundle.ca_file,
        ca_key_file=tls_bundle.ca_key_file,
        cert_file=tmp_path / "missing.pem",
        key_file=tmp_path / "missing-key.pem",
        hosts=tls_bundle.hosts,
    )
    reg = Registry(tmp_path / "broken", tls=broken, start_timeout=5)
    with pytest.raises(RegistryStartError, match=r"missing\.pem"):
        reg.start()
    assert not reg.running


# -- the fault proxy and the recorder --------------------------------------------------------
def _via(proxy: FaultProxy) -> Skopeo:
    return Skopeo(tls_verify=False)


def test_proxy_forwards_and_faults_change_what_skopeo_sees(
    registry: Registry, fault_proxy: FaultProxy
) -> None:
    sk = _via(fault_proxy)
    python = registry.seeded["library/python"]
    ref = f"{fault_proxy.host}/library/python"
    assert sorted(sk.list_tags(ref)) == sorted(python.tags)
    assert sk.digest(f"{ref}:latest") == python.tags["latest"]
    assert fault_proxy.log.matching("GET", r"/tags/list$")

    fault_proxy.replace_body(
        "GET",
        r"/library/python/tags/list$",
        b'{"name":"library/python","tags":["only-this"]}',
        times=1,
    )
    assert sk.list_tags(ref) == ["only-this"]
    # A registry that lies about a digest: same headers, one flipped byte.
    digest = python.tags["latest"]
    fault_proxy.corrupt("GET", rf"/manifests/{digest}$")
    # (skopeo's ``inspect --raw`` does not verify; its parsed ``inspect`` does.)
    with pytest.raises(SkopeoError, match="does not match provided manifest digest"):
        sk.inspect(f"{ref}@{digest}")
    assert sk.digest(f"{ref}@{digest}") != digest
    fault_proxy.clear_rules()
    fault_proxy.respond("GET", r"/tags/list$", 404, '{"errors":[{"code":"NAME_UNKNOWN"}]}')
    with pytest.raises(SkopeoError):
        sk.list_tags(ref)


def test_proxy_push_keeps_going_through_proxy(
    plain_registry: Registry, proxy_factory: object
) -> None:
    assert callable(proxy_factory)
    proxy: FaultProxy = proxy_factory(plain_registry)
    artifact = seed.build_index("through", ["amd64", "arm64v8"])
    with HttpPusher(proxy.url) as pusher:
        pusher.push("through/proxy", artifact, ["v1"])
    uploads = proxy.log.matching("PUT", r"/blobs/uploads/")
    assert len(uploads) == 4  # two configs, two layers
    assert all(u.param("digest") for u in uploads)
    assert (
        Skopeo.for_registry(plain_registry).digest(plain_registry.ref("through/proxy", "v1"))
        == artifact.digest
    )


def test_proxy_fault_kinds(fault_proxy: FaultProxy, recorder: Recorder) -> None:
    url = fault_proxy.url
    with httpx.Client(timeout=5) as client:
        rule = fault_proxy.fail("GET", r"^/v2/$", 429, times=2, retry_after=1)
        statuses = [client.get(f"{url}/v2/").status_code for _ in range(3)]
        assert statuses == [429, 429, 200]
        assert rule.hits == 2

        fault_proxy.set_headers(
            "GET",
            r"^/v2/$",
            [
                ("WWW-Authenticate", "Negotiate"),
                ("WWW-Authenticate", 'Bearer realm="x"'),
                ("ratelimit-remaining", "7;w=21600"),
            ],
            status=401,
            times=1,
        )
        answer = client.get(f"{url}/v2/")
        assert answer.status_code == 401
        assert answer.headers.get_list("WWW-Authenticate") == ["Negotiate", 'Bearer realm="x"']
        assert answer.headers["ratelimit-remaining"] == "7;w=21600"

        fault_proxy.drop_after("GET", r"/tags/list$", 5, times=1)
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(f"{url}/v2/library/python/tags/list")

        fault_proxy.delay("GET", r"^/v2/$", 3, times=1)
        with pytest.raises(httpx.ReadTimeout):
            client.get(f"{url}/v2/", timeout=0.5)

        fault_proxy.endless_body("GET", r"/blobs/", times=1)
        got = 0
        with client.stream("GET", f"{url}/v2/library/python/blobs/sha256:{'0' * 64}") as r:
            for chunk in r.iter_bytes():
                got += len(chunk)
                if got > 4 << 20:
                    break
        assert got > 4 << 20

        fault_proxy.endless_pagination(times=3)
        next_url = f"{url}/v2/library/python/tags/list?n=1"
        pages = []
        for _ in range(3):
            page = client.get(next_url)
            pages.append(page.json()["tags"][0])
            next_url = str(page.url.join(page.links["next"]["url"]))
        assert pages == ["page-000001", "page-000002", "page-000003"]

        fault_proxy.redirect("GET", r"/blobs/", recorder.url, times=1)
        redirected = client.get(
            f"{url}/v2/library/python/blobs/sha256:{'1' * 64}", follow_redirects=False
        )
        assert redirected.status_code == 307
        assert redirected.headers["Location"].startswith(recorder.url + "/v2/library/python/")
        client.get(redirected.headers["Location"])
        assert recorder.requests[-1].path.startswith("/v2/library/python/blobs/")
        assert recorder.authorization_headers() == []
    # Everything the proxy saw was recorded, with query parameters as a multi-dict.
    recorded = fault_proxy.log.matching("GET", r"/tags/list$")
    assert any(r.param("n") == "1" for r in recorded)


def test_docker_config_and_helper(docker_config: DockerConfig, registry: Registry) -> None:
    import os

    identity = "rt-identity"
    path = docker_config(
        auths={
            registry.host: ("user", "pw"),
            "https://index.docker.io/v1/": {"identitytoken": identity},
        },
        cred_helpers={"helped.example": "portside-test"},
        creds_store="portside-store",
    )
    assert os.environ["DOCKER_CONFIG"] == str(docker_config.directory)
    written = json.loads(path.read_text())
    assert written["auths"][registry.host]["auth"] == encode_auth("user", "pw")
    assert base64.b64decode(written["auths"][registry.host]["auth"]) == b"user:pw"
    assert written["auths"]["https://index.docker.io/v1/"] == {"identitytoken": identity}
    assert written["credHelpers"] == {"helped.example": "portside-test"}
    assert written["credsStore"] == "portside-store"

    helper = docker_config.helper("portside-test", {"helped.example": ("<token>", "secret")})
    out = subprocess.run(
        ["docker-credential-portside-test", "get"],
        input=b"helped.example",
        capture_output=True,
        timeout=10,
        check=True,
    )
    assert json.loads(out.stdout) == {
        "ServerURL": "helped.example",
        "Username": "<token>",
        "Secret": "secret",
    }
    missing = subprocess.run(
        ["docker-credential-portside-test", "get"],
        input=b"other.example",
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert missing.returncode == 1
    assert b"credentials not found" in missing.stdout
    assert [c["stdin"] for c in helper.calls()] == ["helped.example", "other.example"]
