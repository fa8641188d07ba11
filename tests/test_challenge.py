"""WWW-Authenticate parsing and token scopes (checklist: Auth)."""

from __future__ import annotations

import random

import pytest

from portside.errors import InvalidResponse
from portside.registry.challenge import (
    Challenge,
    Scope,
    merge_scopes,
    parse_challenges,
    pick,
    scope_query,
)

HUB = (
    'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
    'scope="repository:library/python:pull"'
)


def one(header: str) -> Challenge:
    challenges = parse_challenges([header])
    assert len(challenges) == 1, challenges
    return challenges[0]


def test_docker_hub_challenge() -> None:
    challenge = one(HUB)
    assert challenge.scheme == "bearer"
    assert challenge.params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/python:pull",
    }
    assert challenge.realm == "https://auth.docker.io/token"
    assert challenge.service == "registry.docker.io"
    assert challenge.scope == "repository:library/python:pull"
    assert challenge.token68 is None


def test_distribution_registry_challenge() -> None:
    challenge = one('Bearer realm="http://127.0.0.1:5003/token",service="portside-test"')
    assert challenge.realm == "http://127.0.0.1:5003/token"
    assert challenge.service == "portside-test"


def test_basic() -> None:
    challenge = one('Basic realm="Registry Realm"')
    assert challenge.scheme == "basic"
    assert challenge.realm == "Registry Realm"


def test_odd_capitalisation() -> None:
    challenge = one('bEaReR REALM="https://Auth.Example.com/Token", Service=Reg.Example.com')
    assert challenge.scheme == "bearer"
    # names fold, values keep their case
    assert challenge.params == {
        "realm": "https://Auth.Example.com/Token",
        "service": "Reg.Example.com",
    }
    assert challenge.get("ReAlM") == "https://Auth.Example.com/Token"
    assert challenge.get("missing", "d") == "d"


def test_quoted_values_with_commas_and_escaped_quotes() -> None:
    challenge = one(
        r'Bearer realm="https://a.example/token?x=1,2",scope="repository:a:pull,push",'
        r'error_description="the \"scope\" is wrong, really \\ badly"'
    )
    assert challenge.realm == "https://a.example/token?x=1,2"
    assert challenge.scope == "repository:a:pull,push"
    assert challenge.params["error_description"] == r'the "scope" is wrong, really \ badly'


def test_several_challenges_in_one_header() -> None:
    challenges = parse_challenges(['Negotiate, Bearer realm="https://a/t",service="s", Basic'])
    assert [c.scheme for c in challenges] == ["negotiate", "bearer", "basic"]
    assert challenges[1].params == {"realm": "https://a/t", "service": "s"}
    assert challenges[0].params == {}
    assert challenges[2].params == {}


def test_rfc_9110_example() -> None:
    challenges = parse_challenges(
        [r'Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple"']
    )
    assert challenges == [
        Challenge("newauth", {"realm": "apps", "type": "1", "title": 'Login to "apps"'}),
        Challenge("basic", {"realm": "simple"}),
    ]


def test_several_headers() -> None:
    challenges = parse_challenges(["Negotiate", 'Basic realm="r"', HUB])
    assert [c.scheme for c in challenges] == ["negotiate", "basic", "bearer"]
    assert pick(challenges) is challenges[2]


def test_single_string_is_one_header() -> None:
    assert [c.scheme for c in parse_challenges(HUB)] == ["bearer"]


def test_token68() -> None:
    challenges = parse_challenges(["Negotiate YIIBnwYGKwYBBQUC+/==, NTLM TlRMTVNTUAACAAAA"])
    assert [(c.scheme, c.token68) for c in challenges] == [
        ("negotiate", "YIIBnwYGKwYBBQUC+/=="),
        ("ntlm", "TlRMTVNTUAACAAAA"),
    ]
    assert pick(challenges) is None


def test_whitespace_tolerance() -> None:
    challenge = one('  Bearer   realm = "r" ,\t service\t=\ts ,  ,scope="a:b:c"  ')
    assert challenge.params == {"realm": "r", "service": "s", "scope": "a:b:c"}


def test_first_duplicate_parameter_wins() -> None:
    assert one('Bearer realm="first", realm="second"').realm == "first"


def test_empty_and_unterminated_values() -> None:
    assert one('Bearer realm="", service=s').params == {"realm": "", "service": "s"}
    assert one('Bearer realm="https://a/t').realm == "https://a/t"


def test_insufficient_scope_error() -> None:
    challenge = one(
        'Bearer realm="https://a/t",service="s",scope="repository:x:pull,push",'
        'error="insufficient_scope"'
    )
    assert challenge.error == "insufficient_scope"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("", []),
        ("   ", []),
        (",,,", []),
        ("@@@", []),
        ('"just a string"', []),
        ("=", []),
        ('realm="stray"', []),
        ('Bearer realm="x", @@@, service="y"', [("bearer", {"realm": "x", "service": "y"})]),
        ('Bearer realm="x"junk, service=y', [("bearer", {"realm": "x", "service": "y"})]),
        ("Bearer realm=a b, service=y", [("bearer", {"realm": "a", "service": "y"})]),
        ('@@ , Bearer realm="x"', [("bearer", {"realm": "x"})]),
        ("Bearer realm=", [("bearer", {})]),
        ('Bearer ="x", realm=y', [("bearer", {"realm": "y"})]),
        ("Bearer\x00realm=x", [("bearer", {})]),
        ('Bearer realm="\\', [("bearer", {"realm": "\\"})]),
    ],
)
def test_junk_tolerance(header: str, expected: list[tuple[str, dict[str, str]]]) -> None:
    got = [(c.scheme, c.params) for c in parse_challenges([header])]
    assert got == expected


def test_never_raises_on_random_input() -> None:
    rng = random.Random(20240601)
    alphabet = 'Bearer Basic realm=",\\ \t\x00é;=/+abc'
    for _ in range(3000):
        header = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 60)))
        for challenge in parse_challenges([header]):
            assert challenge.scheme == challenge.scheme.lower()
            assert all(key == key.lower() for key in challenge.params)


def test_huge_header_is_linear() -> None:
    header = "Bearer " + ", ".join(f'p{i}="{"v" * 20}"' for i in range(20000))
    assert len(one(header).params) == 20000


def test_pick_prefers_bearer_then_basic() -> None:
    basic = Challenge("basic", {"realm": "r"})
    bearer = Challenge("bearer", {"realm": "https://a/t"})
    negotiate = Challenge("negotiate")
    assert pick([negotiate, basic, bearer]) is bearer
    assert pick([negotiate, basic]) is basic
    assert pick([negotiate, Challenge("ntlm")]) is None
    assert pick([]) is None
    first = Challenge("bearer", {"realm": "1"})
    assert pick([first, Challenge("bearer", {"realm": "2"})]) is first


# --- scopes ------------------------------------------------------------------


def test_scope_basics() -> None:
    scope = Scope(kind="repository", name="lib/golang", actions=("pull",))
    assert str(scope) == "repository:lib/golang:pull"
    assert Scope.repository("lib/golang", "pull") == scope
    assert str(Scope("repository", "a", ("push", "pull", "push"))) == "repository:a:pull,push"
    assert str(Scope("registry", "catalog", ("*",))) == "registry:catalog:*"


def test_scope_parse_host_port_name() -> None:
    scope = Scope.parse("repository:host:5000/a/b:pull,push")
    assert scope.kind == "repository"
    assert scope.name == "host:5000/a/b"
    assert scope.actions == ("pull", "push")
    assert str(scope) == "repository:host:5000/a/b:pull,push"


@pytest.mark.parametrize(
    "text",
    [
        "repository:lib/golang:pull",
        "repository:[::1]:5000/x:pull",
        "registry:catalog:*",
        "repository(plugin):vieux/sshfs:pull",
        "repository:a:",
    ],
)
def test_scope_round_trip(text: str) -> None:
    assert str(Scope.parse(text)) == text


@pytest.mark.parametrize("text", ["", "repository", "repository:a", ":a:pull", "repository::pull"])
def test_scope_parse_rejects(text: str) -> None:
    with pytest.raises(InvalidResponse):
        Scope.parse(text)


def test_scope_constructor_rejects() -> None:
    with pytest.raises(InvalidResponse):
        Scope("repository", "a b", ("pull",))
    with pytest.raises(InvalidResponse):
        Scope("repository", "a", ("pull,push",))
    with pytest.raises(TypeError):
        Scope("repository", "a", "pull")  # type: ignore[arg-type]


def test_scope_parse_many() -> None:
    scopes = Scope.parse_many("repository:a:pull  repository:h:5000/b:push junk registry:catalog:*")
    assert [str(s) for s in scopes] == [
        "repository:a:pull",
        "repository:h:5000/b:push",
        "registry:catalog:*",
    ]


def test_merge_scopes() -> None:
    merged = merge_scopes(
        [
            Scope.repository("b", "pull"),
            Scope.repository("a", "push"),
            Scope.repository("a", "pull"),
            Scope.repository("b", "pull"),
        ]
    )
    assert [str(s) for s in merged] == ["repository:a:pull,push", "repository:b:pull"]
    assert merge_scopes([]) == ()
    # order of input does not matter: usable as a cache key
    assert merged == merge_scopes(reversed(merged))


def test_scope_query_one_parameter_per_scope() -> None:
    query = scope_query(
        [
            Scope.repository("a", "pull"),
            Scope.repository("host:5000/b", "pull"),
            Scope.repository("a", "pull"),
        ]
    )
    assert query == [("scope", "repository:a:pull"), ("scope", "repository:host:5000/b:pull")]


def test_covers() -> None:
    push = Scope.repository("a", "pull", "push")
    pull = Scope.repository("a", "pull")
    assert push.covers(pull)
    assert not pull.covers(push)
    assert not push.covers(Scope.repository("b", "pull"))
    assert Scope.repository("a", "*").covers(push)
    assert pull.with_actions("push") == push
