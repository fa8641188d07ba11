"""Image reference grammar and normalisation.

The tables follow docker/distribution's reference tests, read through the docker
CLI's normalisation (``ParseNormalizedNamed``): a reference without a registry host
is on Docker Hub, and single-component Hub names are under ``library/``.
"""

from __future__ import annotations

import itertools
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from portside import reference
from portside.errors import InvalidDigest, InvalidReference, UsageError
from portside.reference import (
    Digest,
    Reference,
    canonical_registry,
    is_loopback_host,
)

SHA256 = "sha256:" + "f" * 64
SHA512 = "sha512:" + "f" * 128
REAL = "sha256:1b640322f9a983281970daaeba1a6d303f399d67890644389ff419d951963e20"

# input -> (registry, repository, tag, digest)
VALID = [
    ("python", ("docker.io", "library/python", None, None)),
    ("python:3.12", ("docker.io", "library/python", "3.12", None)),
    ("python:3.12-slim-bookworm", ("docker.io", "library/python", "3.12-slim-bookworm", None)),
    ("library/python", ("docker.io", "library/python", None, None)),
    ("docker.io/python", ("docker.io", "library/python", None, None)),
    ("docker.io/library/python:3", ("docker.io", "library/python", "3", None)),
    ("index.docker.io/library/python", ("docker.io", "library/python", None, None)),
    ("index.docker.io/python", ("docker.io", "library/python", None, None)),
    ("registry-1.docker.io/python", ("docker.io", "library/python", None, None)),
    ("Docker.IO/python", ("docker.io", "library/python", None, None)),
    ("user/app", ("docker.io", "user/app", None, None)),
    ("user/app:1", ("docker.io", "user/app", "1", None)),
    ("test_com", ("docker.io", "library/test_com", None, None)),
    ("test.com:tag", ("docker.io", "library/test.com", "tag", None)),
    ("test.com:5000", ("docker.io", "library/test.com", "5000", None)),
    ("test.com/repo:tag", ("test.com", "repo", "tag", None)),
    ("test:5000/repo", ("test:5000", "repo", None, None)),
    ("test:5000/repo:tag", ("test:5000", "repo", "tag", None)),
    (f"test:5000/repo@{SHA256}", ("test:5000", "repo", None, SHA256)),
    (f"test:5000/repo:tag@{SHA256}", ("test:5000", "repo", "tag", SHA256)),
    ("lowercase:Uppercase", ("docker.io", "library/lowercase", "Uppercase", None)),
    ("sub-dom1.foo.com/bar/baz/quux", ("sub-dom1.foo.com", "bar/baz/quux", None, None)),
    (
        "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
        ("sub-dom1.foo.com", "bar/baz/quux", "some-long-tag", None),
    ),
    (
        "b.gcr.io/test.example.com/my-app:test.example.com",
        ("b.gcr.io", "test.example.com/my-app", "test.example.com", None),
    ),
    ("xn--n3h.com/myimage:xn--n3h.com", ("xn--n3h.com", "myimage", "xn--n3h.com", None)),
    (
        f"xn--7o8h.com/myimage:xn--7o8h.com@{SHA512}",
        ("xn--7o8h.com", "myimage", "xn--7o8h.com", SHA512),
    ),
    ("foo_bar.com:8080", ("docker.io", "library/foo_bar.com", "8080", None)),
    ("foo/foo_bar.com:8080", ("docker.io", "foo/foo_bar.com", "8080", None)),
    ("192.168.1.1", ("docker.io", "library/192.168.1.1", None, None)),
    ("192.168.1.1:tag", ("docker.io", "library/192.168.1.1", "tag", None)),
    ("192.168.1.1/repo", ("192.168.1.1", "repo", None, None)),
    ("192.168.1.1:5000/repo", ("192.168.1.1:5000", "repo", None, None)),
    ("192.168.1.1:5000/repo:5050", ("192.168.1.1:5000", "repo", "5050", None)),
    ("localhost/repo", ("localhost", "repo", None, None)),
    ("localhost:5000/x:1", ("localhost:5000", "x", "1", None)),
    ("localhost", ("docker.io", "library/localhost", None, None)),
    ("localhost:5000", ("docker.io", "library/localhost", "5000", None)),
    ("127.0.0.1:5000/a/b/c", ("127.0.0.1:5000", "a/b/c", None, None)),
    ("[2001:db8::1]/repo", ("[2001:db8::1]", "repo", None, None)),
    ("[2001:db8:1:2:3:4:5:6]/repo:tag", ("[2001:db8:1:2:3:4:5:6]", "repo", "tag", None)),
    ("[2001:db8::1]:5000/repo", ("[2001:db8::1]:5000", "repo", None, None)),
    ("[2001:db8::1]:5000/repo:tag", ("[2001:db8::1]:5000", "repo", "tag", None)),
    (f"[2001:db8::1]:5000/repo@{SHA256}", ("[2001:db8::1]:5000", "repo", None, SHA256)),
    ("[2001:db8::]:5000/repo", ("[2001:db8::]:5000", "repo", None, None)),
    ("[::1]:5000/repo", ("[::1]:5000", "repo", None, None)),
    ("ghcr.io/owner/repo", ("ghcr.io", "owner/repo", None, None)),
    ("ghcr.io/owner/repo:v1.2.3", ("ghcr.io", "owner/repo", "v1.2.3", None)),
    ("GHCR.io/owner/repo", ("ghcr.io", "owner/repo", None, None)),
    ("a.b.c/d__e/f-g/h---i/j.k_l", ("a.b.c", "d__e/f-g/h---i/j.k_l", None, None)),
    ("x:_", ("docker.io", "library/x", "_", None)),
    ("x:" + "a" * 128, ("docker.io", "library/x", "a" * 128, None)),
    (f"python@{REAL}", ("docker.io", "library/python", None, REAL)),
    (f"python:3.12@{REAL}", ("docker.io", "library/python", "3.12", REAL)),
    (
        "a/" * 127 + "a:tag-puts-this-over-max",
        ("docker.io", "a/" * 127 + "a", "tag-puts-this-over-max", None),
    ),
]


@pytest.mark.parametrize(("text", "expected"), VALID, ids=[t[:60] for t, _ in VALID])
def test_valid(text: str, expected: tuple[str, str, str | None, str | None]) -> None:
    registry, repository, tag, digest = expected
    ref = Reference.parse(text)
    assert ref.registry == registry
    assert ref.repository == repository
    assert ref.tag == tag
    assert (str(ref.digest) if ref.digest else None) == digest
    # normalised form round-trips, and so does the familiar one
    assert Reference.parse(str(ref)).repository_ref() == ref.repository_ref()
    again = Reference.parse(str(ref))
    assert again.digest == ref.digest
    assert again.tag == (ref.tag if ref.tag is not None or ref.digest else "latest")
    assert Reference.parse(ref.familiar) == ref


# input -> a fragment the message must contain
INVALID = [
    ("", "empty image reference"),
    (":justtag", "missing repository name"),
    (f"@{SHA256}", "missing repository name"),
    ("repo@sha256:" + "f" * 34, "invalid sha256 digest"),
    ("validname@invaliddigest:" + "f" * 64, "unsupported digest algorithm"),
    ("repo@", "empty digest"),
    ("repo@sha256:" + "F" * 64, "invalid sha256 digest"),
    ("repo@" + "f" * 64, "invalid digest"),
    ("Uppercase:tag", "repository names must be lowercase"),
    ("Uppercase/lowercase:tag", "repository names must be lowercase"),
    ("test:5000/Uppercase/lowercase:tag", "repository names must be lowercase"),
    ("docker.io/Library/python", "repository names must be lowercase"),
    ("a/" * 128 + "a:tag", "repository name too long"),
    ("a" * 256, "repository name too long"),
    ("aa/asdf$$^/aa", "invalid character '$'"),
    ("python:x y", "invalid tag 'x y' in 'python:x y'"),
    ("python:", "empty tag"),
    ("python:-x", "invalid tag '-x'"),
    ("python:.x", "invalid tag '.x'"),
    ("python:" + "a" * 129, "at most 128 characters"),
    ("python:3.12é", "invalid tag"),
    ("pythön", "invalid character"),
    ("a//b", "empty path component"),
    ("/a", "empty path component"),
    ("a/", "empty path component"),
    ("ghcr.io/", "missing repository after the registry host"),
    ("-a", "leading separator"),
    ("a-", "trailing separator"),
    ("a/_b", "leading separator"),
    ("a/b.", "trailing separator"),
    ("a..b", "invalid separator"),
    ("a___b", "invalid separator"),
    ("a._b", "invalid separator"),
    ("[2001:db8::1]", "registry host without a repository"),
    ("[2001:db8::1]:5000", "registry host without a repository"),
    ("[2001:db8::1]:tag", "registry host without a repository"),
    ("[fe80::1%eth0]:5000/repo", "zone identifiers"),
    ("[fe80::1%@invalidzone]:5000/repo", "invalid"),
    ("-bad.com/repo", "invalid registry host"),
    ("bad-.com/repo", "invalid registry host"),
    ("host:port/repo", "invalid registry host"),
    ("ho_st.com/repo", "invalid registry host"),
    ("a" * 64, "image ID"),
    (" python", "whitespace"),
    ("python\n", "whitespace"),
    ("python:3 ", "whitespace"),
    ("a@b@c", "invalid digest"),
    ("http://ghcr.io/x", "invalid"),
]


@pytest.mark.parametrize(("text", "fragment"), INVALID, ids=[t[:60] for t, _ in INVALID])
def test_invalid(text: str, fragment: str) -> None:
    with pytest.raises(InvalidReference) as info:
        Reference.parse(text)
    assert fragment in str(info.value)
    # a usage error: the command line exits 2 for it
    assert isinstance(info.value, UsageError)


def test_errors_are_precise() -> None:
    with pytest.raises(InvalidReference) as info:
        Reference.parse("python:x y")
    assert info.value.message == "invalid tag 'x y' in 'python:x y'"

    with pytest.raises(InvalidReference) as info:
        Reference.parse("ghcr.io/Owner/app:1")
    assert "repository names must be lowercase" in info.value.message
    assert "'Owner'" in info.value.message
    assert info.value.hint == "write 'owner'"

    with pytest.raises(InvalidDigest) as digest_info:
        Reference.parse("python@sha256:abc")
    assert "'python@sha256:abc'" in digest_info.value.message


def test_long_input_is_cut_in_messages() -> None:
    with pytest.raises(InvalidReference) as info:
        Reference.parse("a" * 10_000)
    assert len(str(info.value)) < 500


def test_str_forms() -> None:
    assert str(Reference.parse("python")) == "docker.io/library/python:latest"
    assert str(Reference.parse("python:3.12")) == "docker.io/library/python:3.12"
    assert str(Reference.parse(f"python@{REAL}")) == f"docker.io/library/python@{REAL}"
    assert str(Reference.parse(f"python:3.12@{REAL}")) == f"docker.io/library/python:3.12@{REAL}"
    assert str(Reference.parse("localhost:5000/x")) == "localhost:5000/x:latest"
    assert str(Reference.parse("[::1]:5000/x:1")) == "[::1]:5000/x:1"


def test_name_identifier_api_host() -> None:
    ref = Reference.parse("python:3.12")
    assert ref.name == "docker.io/library/python"
    assert ref.identifier == "3.12"
    assert ref.api_host == "registry-1.docker.io"
    assert Reference.parse("python").identifier == "latest"
    assert Reference.parse(f"python:3.12@{REAL}").identifier == REAL
    other = Reference.parse("ghcr.io/o/r:1")
    assert other.api_host == "ghcr.io"
    assert other.name == "ghcr.io/o/r"


@pytest.mark.parametrize(
    ("text", "familiar"),
    [
        ("python", "python"),
        ("python:3.12", "python:3.12"),
        ("docker.io/library/python:3.12", "python:3.12"),
        ("index.docker.io/user/app:1", "user/app:1"),
        ("docker.io/library/a/b", "library/a/b"),
        ("localhost:5000/x:1", "localhost:5000/x:1"),
        ("ghcr.io/o/r", "ghcr.io/o/r"),
        (f"python@{REAL}", f"python@{REAL}"),
        (f"user/app:1@{REAL}", f"user/app:1@{REAL}"),
        # dropping docker.io here would make foo.com read as a registry host
        ("docker.io/foo.com/bar", "docker.io/foo.com/bar"),
        ("docker.io/localhost/bar", "docker.io/localhost/bar"),
    ],
)
def test_familiar(text: str, familiar: str) -> None:
    ref = Reference.parse(text)
    assert ref.familiar == familiar
    assert Reference.parse(familiar) == ref


def test_with_tag_with_digest_repository_ref() -> None:
    ref = Reference.parse("python:3.12")
    assert ref.with_tag("3.13") == Reference.parse("python:3.13")
    assert ref.with_tag(None).tag is None
    pinned = ref.with_digest(REAL)
    assert pinned.digest == Digest.parse(REAL)
    assert pinned.tag == "3.12"
    assert str(pinned) == f"docker.io/library/python:3.12@{REAL}"
    assert ref.with_digest(Digest.parse(REAL)) == pinned
    assert pinned.with_digest(None) == ref
    assert pinned.repository_ref() == Reference("docker.io", "library/python")
    assert str(pinned.repository_ref()) == "docker.io/library/python:latest"
    with pytest.raises(InvalidReference, match="invalid tag"):
        ref.with_tag("bad tag")
    with pytest.raises(InvalidDigest):
        ref.with_digest("sha256:nothex")


def test_direct_construction_validates_and_normalises() -> None:
    ref = Reference("index.docker.io", "python", "3")
    assert ref == Reference.parse("python:3")
    assert Reference("GHCR.IO", "o/r").registry == "ghcr.io"
    with pytest.raises(InvalidReference):
        Reference("ghcr.io", "O/r")
    with pytest.raises(InvalidReference):
        Reference("ghcr.io", "o/../r")
    with pytest.raises(InvalidReference):
        Reference("evil.com/x", "r")
    with pytest.raises(InvalidReference):
        Reference("", "r")
    with pytest.raises(InvalidReference):
        Reference("ghcr.io", "r", "bad tag")
    with pytest.raises(InvalidDigest):
        Reference("ghcr.io", "r", None, REAL)  # type: ignore[arg-type]


def test_frozen_and_hashable() -> None:
    ref = Reference.parse("python:3.12")
    with pytest.raises(AttributeError):
        ref.tag = "x"  # type: ignore[misc]
    assert len({ref, Reference.parse("docker.io/library/python:3.12")}) == 1


@pytest.mark.parametrize(
    ("host", "canonical"),
    [
        ("docker.io", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("https://index.docker.io/v1/", "docker.io"),
        ("http://localhost:5000", "localhost:5000"),
        ("GHCR.io", "ghcr.io"),
        ("ghcr.io/", "ghcr.io"),
        (" quay.io ", "quay.io"),
    ],
)
def test_canonical_registry(host: str, canonical: str) -> None:
    assert canonical_registry(host) == canonical


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST:5000", True),
        ("127.0.0.1", True),
        ("127.0.0.1:5000", True),
        ("127.255.3.4:80", True),
        ("::1", True),
        ("[::1]", True),
        ("[::1]:5000", True),
        ("::ffff:127.0.0.1", True),
        ("[::ffff:127.0.0.1]:5000", True),
        ("0:0:0:0:0:0:0:1", True),
        ("128.0.0.1", False),
        ("10.0.0.1:5000", False),
        ("0.0.0.0", False),
        ("[::]:5000", False),
        ("example.com", False),
        ("localhost.example.com", False),
        ("127.0.0.1.nip.io", False),
        ("localhost:abc", False),
        ("[::1]x", False),
        ("[::1", False),
        ("[::1]:", False),
        ("[::1]:5x", False),
        ("[::1]:\u0665", False),  # an Arabic-Indic digit is no port digit
        ("", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def _imported_after(code: str, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has imported after running ``code``."""
    script = f"{code}\nimport sys\nprint(','.join(m for m in {modules!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.strip()
    return out.split(",") if out else []


def test_import_stays_light() -> None:
    code = "import portside.reference, portside.redact"
    assert _imported_after(code, ("httpx", "pluggy", "rich")) == []
    # Parsing a reference, valid or not, needs neither re nor enum (the warm command path).
    code = (
        "from portside.reference import InvalidReference, Reference\n"
        "Reference.parse('localhost:5000/a/b-c__d.e:1.2@sha256:' + 'a' * 64)\n"
        "for bad in ('A', 'a:-x', '-h.com/x', '[::1%2]/x', 'a..b', 'f' * 64):\n"
        "    try: Reference.parse(bad)\n"
        "    except InvalidReference: pass"
    )
    assert _imported_after(code, ("re", "enum")) == []


@pytest.mark.parametrize(
    "text",
    [
        "a" * 30 + "!",
        "a" * 100_000 + "!",
        "a-" * 50_000 + "!",
        "x.com/" + "a-a_" * 30_000 + "!",
        "a" * 100_000 + ".com/" + "b" * 100_000 + "!",
        "-" * 100_000 + "a.com/x",
        "[" + ":" * 100_000 + "/x",
        "a" + "-a" * 100_000 + "/!",  # a long valid component before the bad one
        "a" + "._" * 100_000 + "a",
    ],
    ids=lambda text: f"{text[:8]}…{len(text)}",
)
def test_no_catastrophic_backtracking(text: str) -> None:
    # distribution's "[-]*" separator backtracks exponentially in Python's engine;
    # half-typed FROM lines in an editor must never hang the server
    started = time.perf_counter()
    with pytest.raises(InvalidReference):
        Reference.parse(text)
    assert time.perf_counter() - started < 1.0


# -- the hand-written matchers decide exactly the grammar's patterns ----------------------
#
# reference.py keeps the grammar as regular expressions and decides it without ``re``.
# Each matcher is compared with ``re.fullmatch`` of its pattern on every string up to a
# few characters over an alphabet holding a character of each class the pattern tells
# apart (and look-alikes it must not confuse: upper case, non-ASCII letters and digits,
# a newline for ``$``), then on random edits of valid strings, long enough to reach the
# length limits.

# pattern, matcher, alphabet, exhaustive length, valid strings to edit at random
MATCHERS: list[tuple[str, Callable[[str], bool], str, int, tuple[str, ...]]] = [
    (
        reference._HEX_PATTERN,
        lambda text: reference._made_of(text, reference._LOWER_HEX),
        "0af9gA:\u0665",
        6,
        ("f" * 64, "0123456789abcdef", "a"),
    ),
    (
        reference._DOMAIN_PATTERN,
        reference._is_domain,
        "aFgZ0-.:[]_\n",
        5,
        ("ghcr.io", "a.b-c.d:5000", "xn--n3h.com", "localhost:5", "[::1]", "[fe80::1]:5000"),
    ),
    (
        reference._PORT_PATTERN,
        reference._is_port,
        ":09a\u0665\u00b2 ",
        5,
        (":5000", ":0", ":65535"),
    ),
    (
        reference._PATH_COMPONENT_PATTERN,
        reference._is_path_component,
        "a0A._-\u00e9",
        6,
        ("library", "a.b_c__d-e---f", "x9", "my-app", "test.example.com"),
    ),
    (
        reference._TAG_PATTERN,
        reference._is_tag,
        "aZ0_.-\u00e9 ",
        5,
        ("latest", "3.12-slim", "_x", "v1.2.3", "a" * 127, "9" * 128, "A-" * 64),
    ),
    (
        reference._IDENTIFIER_PATTERN,
        reference._is_identifier,
        "0afgA",
        4,
        ("0123456789abcdef" * 4, "f" * 64),
    ),
]


def _samples(alphabet: str, length: int, valid: tuple[str, ...], seed: str) -> Iterator[str]:
    for n in range(length + 1):
        for chars in itertools.product(alphabet, repeat=n):
            yield "".join(chars)
    rng = random.Random(seed)
    for _ in range(20_000):
        chars = list(rng.choice(valid) + rng.choice(("", "", *valid)))
        for _ in range(rng.choice((0, 1, 1, 2, 3))):  # replace, insert or delete one
            at = rng.randrange(len(chars) + 1)
            edit = rng.randrange(3)
            if edit == 0 and at < len(chars):
                chars[at] = rng.choice(alphabet)
            elif edit == 1:
                chars.insert(at, rng.choice(alphabet))
            elif at < len(chars):
                del chars[at]
        yield "".join(chars)


@pytest.mark.parametrize(
    ("pattern", "matcher", "alphabet", "length", "valid"),
    MATCHERS,
    ids=["hex", "domain", "port", "path-component", "tag", "identifier"],
)
def test_matcher_decides_its_pattern(
    pattern: str,
    matcher: Callable[[str], bool],
    alphabet: str,
    length: int,
    valid: tuple[str, ...],
) -> None:
    compiled = re.compile(pattern)
    assert all(compiled.fullmatch(text) for text in valid)
    verdicts = {True: 0, False: 0}
    for text in _samples(alphabet, length, valid, seed=pattern):
        expected = compiled.fullmatch(text) is not None
        assert matcher(text) is expected, (pattern, text)
        verdicts[expected] += 1
    # Not vacuous: plenty of strings on either side of the line.
    assert min(verdicts.values()) > 1000, verdicts
