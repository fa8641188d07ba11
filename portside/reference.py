"""Image references and digests: grammar, validation and normalisation.

``python`` -> ``docker.io/library/python:latest``, the way the docker CLI reads it.

The grammar is written down as regular expressions (the ``_*_PATTERN`` strings) and
decided by small hand-written matchers (``_is_*``): this module is on every command's
path, and ``re`` (with ``enum`` and ``functools``) plus compiling the patterns cost
~7 ms, a quarter of a warm ``portside tags``. The patterns are the reference: each
matcher accepts exactly the strings its pattern ``fullmatch``-es, which
tests/test_reference.py checks on every short string over an alphabet of telling
characters and on many random longer ones. The matchers run in linear time, so no
input can make them backtrack.
"""

from __future__ import annotations

import functools

from portside.errors import InvalidDigest, InvalidReference
from portside.value import Value

TYPE_CHECKING = False  # avoids importing typing (~9 ms) on the warm path; mypy knows it
if TYPE_CHECKING:
    import hashlib

# algorithm -> length of its hex encoding; other registered algorithms are refused
# rather than guessed at, so nothing unvalidated reaches a URL or a path.
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha512": 128}

_DIGITS = "0123456789"
_LOWER_HEX = "0123456789abcdef"
_LOWER_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

_HEX_PATTERN = r"[0-9a-f]+"  # a digest's hex, decided by _made_of(text, _LOWER_HEX)


def _made_of(text: str, allowed: str) -> bool:
    """Whether ``text`` is non-empty and has no character outside ``allowed``.

    ``[<allowed>]+`` without ``re``: stripping every allowed character from both ends
    leaves nothing exactly when there is no other character.
    """
    return bool(text) and not text.strip(allowed)


class Digest(Value, order=True):
    """A content digest, ``algorithm:hex``, validated on construction.

    Frozen, hashable and ordered by (algorithm, hex), like ``@dataclass(frozen=True,
    order=True)``; see :mod:`portside.value` for why it is not a dataclass.
    """

    algorithm: str
    hex: str

    def __post_init__(self) -> None:
        length = _DIGEST_HEX_LENGTHS.get(self.algorithm)
        if length is None:
            raise InvalidDigest(
                f"unsupported digest algorithm {self.algorithm!r}",
                hint="use sha256 or sha512",
            )
        if len(self.hex) != length or not _made_of(self.hex, _LOWER_HEX):
            raise InvalidDigest(
                f"invalid {self.algorithm} digest {self.algorithm}:{self.hex[:80]!r}",
                hint=f"expected {length} lower-case hexadecimal characters",
            )

    @classmethod
    def parse(cls, text: str) -> Digest:
        algorithm, sep, hexpart = text.partition(":")
        if not sep:
            raise InvalidDigest(
                f"invalid digest {text[:80]!r}", hint="expected algorithm:hex, e.g. sha256:…"
            )
        return cls(algorithm, hexpart)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        if algorithm not in _DIGEST_HEX_LENGTHS:
            raise InvalidDigest(f"unsupported digest algorithm {algorithm!r}")
        import hashlib  # ~3 ms (OpenSSL); a warm tag list never hashes anything

        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def hasher(self) -> hashlib._Hash:
        import hashlib

        return hashlib.new(self.algorithm)

    def matches(self, data: bytes) -> bool:
        import hashlib

        return hashlib.new(self.algorithm, data).hexdigest() == self.hex

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @property
    def short(self) -> str:
        return f"{self.algorithm}:{self.hex[:12]}"


# --- references --------------------------------------------------------------
#
# The grammar is docker/distribution's (github.com/distribution/reference):
#
#   reference        := name [ ":" tag ] [ "@" digest ]
#   name             := [ domain "/" ] path
#   domain           := host [ ":" port ]
#   host             := domain-name | "[" ipv6 "]"
#   domain-name      := domain-component [ "." domain-component ]*
#   domain-component := /[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]/
#   path             := path-component [ "/" path-component ]*
#   path-component   := alpha-numeric [ separator alpha-numeric ]*
#   alpha-numeric    := /[a-z0-9]+/
#   separator        := /[_.]|__|[-]*/
#   tag              := /[\w][\w.-]{0,127}/
#
# normalised the way the docker CLI does (ParseNormalizedNamed): the first path
# component is a registry host only if it contains "." or ":" or is "localhost";
# otherwise the image is on Docker Hub, and single-component Hub names live under
# "library/".

DOCKER_HUB = "docker.io"
"""The canonical name of Docker Hub in references."""

DOCKER_HUB_API_HOST = "registry-1.docker.io"
"""Where Docker Hub's registry API actually answers."""

DOCKER_HUB_LEGACY_KEY = "https://index.docker.io/v1/"
"""How docker's config.json and credential helpers name Docker Hub."""

DEFAULT_TAG = "latest"
MAX_REPOSITORY_LENGTH = 255

_DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})

# The terminals of the grammar as patterns (for ``re.fullmatch``), each followed by the
# matcher that decides the same language; see the module docstring.

_DOMAIN_COMPONENT = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[[a-fA-F0-9:]+\]"
_DOMAIN_PATTERN = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_PORT_PATTERN = r":[0-9]+"
_IPV6_CHARS = "ABCDEFabcdef0123456789:"


def _is_domain_component(text: str) -> bool:
    """``_DOMAIN_COMPONENT``: letters, digits and "-", not starting or ending with "-"."""
    return _made_of(text, _ALNUM + "-") and text[0] != "-" and text[-1] != "-"


def _is_port(text: str) -> bool:
    """``_PORT_PATTERN``: a colon and at least one ASCII digit."""
    return text[:1] == ":" and _made_of(text[1:], _DIGITS)


def _is_domain(host: str) -> bool:
    """``_DOMAIN_PATTERN``: a dotted host name or a bracketed IPv6 address, then maybe a port."""
    if host.startswith("["):
        # The address cannot hold "]", so the first one closes it.
        address, bracket, rest = host[1:].partition("]")
        if not (bracket and _made_of(address, _IPV6_CHARS)):
            return False
    else:
        # A host name cannot hold ":", so the first one starts the port.
        name, colon, port = host.partition(":")
        if not all(_is_domain_component(part) for part in name.split(".")):
            return False
        rest = colon + port
    return not rest or _is_port(rest)


# distribution writes the dash separator "[-]*"; "-+" matches the same names (an
# empty separator only splits a run of alphanumerics) without the exponential
# backtracking "[-]*" causes in a backtracking regex engine.
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT_PATTERN = rf"[a-z0-9]+(?:{_SEPARATOR}[a-z0-9]+)*"
_SEPARATOR_CHARS = "._-"


def _is_separator(run: str) -> bool:
    """``_SEPARATOR``: one ".", one or two "_", or any number (at least one) of "-"."""
    return run in (".", "_", "__") or _made_of(run, "-")


def _is_path_component(text: str) -> bool:
    """``_PATH_COMPONENT_PATTERN``: alphanumeric runs joined by one separator each.

    Alphanumerics and separator characters are disjoint, so the pattern holds exactly
    when the text starts and ends with an alphanumeric and each maximal run of
    separator characters is one separator.
    """
    if not _made_of(text, _LOWER_ALNUM + _SEPARATOR_CHARS):
        return False
    if text[0] in _SEPARATOR_CHARS or text[-1] in _SEPARATOR_CHARS:
        return False
    run_start = -1  # where the separator run being read began; -1: none
    for i, char in enumerate(text):
        if char in _SEPARATOR_CHARS:
            if run_start < 0:
                run_start = i
        elif run_start >= 0:
            if not _is_separator(text[run_start:i]):
                return False
            run_start = -1
    return True


# Go's \w is ASCII-only; Python's is not, hence the explicit class.
_TAG_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"


def _is_tag(text: str) -> bool:
    """``_TAG_PATTERN``: 1 to 128 characters, the first not "." or "-"."""
    return len(text) <= 128 and _made_of(text, _ALNUM + "_.-") and text[0] not in ".-"


_IDENTIFIER_PATTERN = r"[a-f0-9]{64}"


def _is_identifier(text: str) -> bool:
    """``_IDENTIFIER_PATTERN``: 64 lower-case hexadecimal digits (an image ID)."""
    return len(text) == 64 and _made_of(text, _LOWER_HEX)


def _q(text: str, limit: int = 300) -> str:
    """``text`` quoted for a message, cut to a readable length."""
    if len(text) > limit:
        text = text[:limit] + "…"
    return repr(text)


def canonical_registry(host: str) -> str:
    """The canonical form of a registry host as written by a user or a config file.

    Lower-cases it, drops a scheme and anything after the first ``/`` (docker's
    ``https://index.docker.io/v1/`` config keys) and folds Docker Hub's aliases
    (``index.docker.io``, ``registry-1.docker.io``) into ``docker.io``. The port is
    kept: ``localhost:5000`` and ``localhost`` are different registries. This does
    not validate the host; :meth:`Reference.parse` does.
    """
    text = host.strip()
    lowered = text.lower()
    for scheme in ("https://", "http://"):
        if lowered.startswith(scheme):
            text = text[len(scheme) :]
            break
    return _fold_host(text.split("/", 1)[0])


def _fold_host(host: str) -> str:
    """Lower case, with Docker Hub's aliases folded into ``docker.io``."""
    host = host.lower()
    return DOCKER_HUB if host in _DOCKER_HUB_ALIASES else host


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (with or without ``:port``) names this machine.

    ``localhost``, anything in ``127.0.0.0/8``, ``::1`` (bare or as ``[::1]``) and
    IPv4-mapped loopback (``::ffff:127.0.0.1``). Names other than ``localhost`` are
    not resolved: a DNS name that happens to point at 127.0.0.1 is not trusted as
    loopback.
    """
    import ipaddress  # a few ms; only the network paths need it

    text = host.strip().lower()
    if not text:
        return False
    if text.startswith("["):
        end = text.find("]")
        if end == -1:
            return False
        rest = text[end + 1 :]
        if rest and not _is_port(rest):
            return False
        text = text[1:end]
    elif text.count(":") == 1:
        text, _, port = text.partition(":")
        if not port.isdigit():
            return False
    if text.endswith("."):
        text = text[:-1]
    if text == "localhost":
        return True
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _check_tag(tag: str, where: str) -> None:
    if not tag:
        raise InvalidReference(f"empty tag in {_q(where)}", hint="write name:tag or leave out ':'")
    if not _is_tag(tag):
        if len(tag) > 128:
            hint = f"a tag has at most 128 characters, this one has {len(tag)}"
        elif tag[0] in ".-":
            hint = "a tag starts with a letter, digit or '_'"
        else:
            bad = next(c for c in tag if not (c.isascii() and (c.isalnum() or c in "_.-")))
            hint = f"character {bad!r} is not allowed; tags use letters, digits, '_', '.' and '-'"
        raise InvalidReference(f"invalid tag {_q(tag)} in {_q(where)}", hint=hint)


def _check_registry(host: str, where: str) -> None:
    if not _is_domain(host):
        if "%" in host:
            hint = "IPv6 zone identifiers are not allowed in references"
        elif host.startswith("["):
            hint = "an IPv6 host is written [address] or [address]:port, e.g. [::1]:5000"
        else:
            hint = (
                "a registry host is dot-separated letters, digits and '-' "
                "(no leading or trailing '-'), with an optional :port"
            )
        raise InvalidReference(f"invalid registry host {_q(host)} in {_q(where)}", hint=hint)


def _check_component(component: str, where: str) -> None:
    if not component:
        raise InvalidReference(
            f"empty path component in {_q(where)}",
            hint="remove the doubled, leading or trailing '/'",
        )
    if _is_path_component(component):
        return
    lowered = component.lower()
    if lowered != component and _is_path_component(lowered):
        raise InvalidReference(
            f"repository names must be lowercase: {_q(component)} in {_q(where)}",
            hint=f"write {lowered!r}",
        )
    what = f"path component {_q(component)} in {_q(where)}"
    if component[0] in _SEPARATOR_CHARS:
        raise InvalidReference(
            f"leading separator in {what}", hint="path components start with a-z or 0-9"
        )
    if component[-1] in _SEPARATOR_CHARS:
        raise InvalidReference(
            f"trailing separator in {what}", hint="path components end with a-z or 0-9"
        )
    bad = next(
        (c for c in component if not (c in _SEPARATOR_CHARS or c.isdigit() or "a" <= c <= "z")),
        None,
    )
    if bad is not None:
        if "A" <= bad <= "Z":
            raise InvalidReference(
                f"repository names must be lowercase: {what}", hint=f"write {lowered!r}"
            )
        raise InvalidReference(
            f"invalid character {bad!r} in {what}",
            hint="path components use a-z, 0-9 and the separators '.', '_', '__' and '-'",
        )
    raise InvalidReference(
        f"invalid separator in {what}",
        hint="separators are one '.', one or two '_', or any number of '-'",
    )


def _check_repository(repository: str, where: str) -> None:
    if not repository:
        raise InvalidReference(f"empty repository name in {_q(where)}")
    for component in repository.split("/"):
        _check_component(component, where)
    if len(repository) > MAX_REPOSITORY_LENGTH:
        raise InvalidReference(
            f"repository name too long in {_q(where, 80)}",
            hint=f"at most {MAX_REPOSITORY_LENGTH} characters, this one has {len(repository)}",
        )


def _parse_digest(text: str, where: str) -> Digest:
    if not text:
        raise InvalidDigest(f"empty digest in {_q(where)}", hint="write name@sha256:<64 hex>")
    try:
        return Digest.parse(text)
    except InvalidDigest as exc:
        raise InvalidDigest(f"{exc.message} in {_q(where, 200)}", hint=exc.hint) from None


class Reference(Value):
    """A normalised image reference: ``registry/repository[:tag][@digest]``.

    ``registry`` is canonical (``docker.io`` for every spelling of Docker Hub, lower
    case) and ``repository`` is the path on it (``library/python`` for official
    images). ``tag`` is ``None`` when the reference did not name one; ``str()``
    shows ``:latest`` then, which is what a registry would be asked for.

    Constructing one directly validates and normalises the fields the same way
    :meth:`parse` does, so a ``Reference`` always holds something safe to put in a
    URL or a path. Frozen and hashable, like ``@dataclass(frozen=True)``; see
    :mod:`portside.value` for why it is not a dataclass.
    """

    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    def __post_init__(self) -> None:
        registry = _fold_host(self.registry)
        repository = self.repository
        if registry == DOCKER_HUB and repository and "/" not in repository:
            repository = f"library/{repository}"
        object.__setattr__(self, "registry", registry)
        object.__setattr__(self, "repository", repository)
        where = f"{registry}/{repository}"
        if not registry:
            raise InvalidReference(f"empty registry host in {_q(where)}")
        _check_registry(registry, where)
        _check_repository(repository, where)
        if self.tag is not None:
            _check_tag(self.tag, where)
        if self.digest is not None and not isinstance(self.digest, Digest):
            raise InvalidDigest(f"digest of {_q(where)} must be a Digest, not {self.digest!r}")

    @classmethod
    def parse(cls, text: str) -> Reference:
        """Parse ``text`` the way ``docker pull`` reads it, or raise ``InvalidReference``.

        ``python`` -> ``docker.io/library/python`` (no tag written),
        ``ghcr.io/o/r:1@sha256:…``, ``localhost:5000/x``, ``[::1]:5000/x``.
        """
        if cls is Reference and isinstance(text, str):
            # The language server reads a document's images on every keystroke: the
            # same texts, and a Reference is immutable, so each is parsed once.
            return _parse_once(text)
        return cls._parse(text)

    @classmethod
    def _parse(cls, text: str) -> Reference:
        if not isinstance(text, str):
            raise InvalidReference(f"a reference must be a string, not {type(text).__name__}")
        if not text:
            raise InvalidReference("empty image reference", hint="e.g. python:3.12")
        if text != text.strip():
            raise InvalidReference(
                f"whitespace around the image reference {_q(text)}", hint="remove it"
            )
        if _is_identifier(text):
            raise InvalidReference(
                f"invalid repository name {_q(text)}: a 64-character hexadecimal string "
                "is an image ID, not a name",
                hint="to pin by digest write name@sha256:<hex>",
            )

        rest, at, digest_text = text.partition("@")
        digest = _parse_digest(digest_text, text) if at else None

        if rest.startswith("[") and "/" not in rest:
            raise InvalidReference(
                f"registry host without a repository in {_q(text)}",
                hint="write [address]:port/name:tag, e.g. [::1]:5000/app:1",
            )
        name, tag = rest, None
        colon = rest.rfind(":")
        if colon > rest.rfind("/"):
            name, tag = rest[:colon], rest[colon + 1 :]
            _check_tag(tag, text)

        if not name:
            raise InvalidReference(f"missing repository name in {_q(text)}")

        first, slash, remainder = name.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost"):
            _check_registry(first, text)
            registry, repository = _fold_host(first), remainder
            if not repository:
                raise InvalidReference(
                    f"missing repository after the registry host in {_q(text)}",
                    hint=f"e.g. {first}/name:tag",
                )
        else:
            registry, repository = DOCKER_HUB, name
        if registry == DOCKER_HUB and "/" not in repository:
            repository = f"library/{repository}"
        _check_repository(repository, text)
        return cls(registry, repository, tag, digest)

    @property
    def name(self) -> str:
        """``registry/repository``: ``docker.io/library/python``."""
        return f"{self.registry}/{self.repository}"

    @property
    def identifier(self) -> str:
        """What goes into ``/v2/<repository>/manifests/<identifier>``: digest, else tag."""
        if self.digest is not None:
            return str(self.digest)
        return self.tag if self.tag is not None else DEFAULT_TAG

    @property
    def api_host(self) -> str:
        """The host that answers the registry API (``registry-1.docker.io`` for Hub)."""
        return DOCKER_HUB_API_HOST if self.registry == DOCKER_HUB else self.registry

    @property
    def familiar_name(self) -> str:
        """The name the docker CLI shows: ``python``, ``user/app``, ``ghcr.io/o/r``."""
        if self.registry != DOCKER_HUB:
            return self.name
        path = self.repository
        if path.startswith("library/") and "/" not in path[len("library/") :]:
            path = path[len("library/") :]
        first = path.split("/", 1)[0]
        # Keep "docker.io/" where dropping it would make the first component read
        # as a registry host ("docker.io/foo.com/x" is not "foo.com/x").
        if "/" in path and ("." in first or first == "localhost"):
            return self.name
        return path

    @property
    def familiar(self) -> str:
        """Docker's short form: ``python:3.12``, ``localhost:5000/x:1``, ``user/app@sha256:…``.

        No ``:latest`` is added when no tag was written.
        """
        return self._render(self.familiar_name, self.tag)

    def __str__(self) -> str:
        tag = self.tag if self.tag is not None or self.digest is not None else DEFAULT_TAG
        return self._render(self.name, tag)

    def _render(self, name: str, tag: str | None) -> str:
        text = name
        if tag is not None:
            text += f":{tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    def with_tag(self, tag: str | None) -> Reference:
        """The same reference with ``tag`` (validated); ``None`` removes the tag."""
        if tag is not None:
            _check_tag(tag, f"{self.name}:{tag}")
        return Reference(self.registry, self.repository, tag, self.digest)

    def with_digest(self, digest: Digest | str | None) -> Reference:
        """The same reference pinned to ``digest`` (validated); ``None`` removes it."""
        if isinstance(digest, str):
            digest = _parse_digest(digest, f"{self.name}@{digest}")
        return Reference(self.registry, self.repository, self.tag, digest)

    def repository_ref(self) -> Reference:
        """The repository alone, without tag or digest."""
        return Reference(self.registry, self.repository)


@functools.lru_cache(maxsize=4096)
def _parse_once(text: str) -> Reference:
    """:meth:`Reference.parse`, remembered (an invalid text raises again each time)."""
    return Reference._parse(text)
