"""The types the plugin contract names, below everything that implements or calls it.

``hookspecs`` documents the hooks; the values they take and return are defined here,
so the hook specifications, the plugin manager, the built-in plugins and the core
modules that call the hooks all import them from one low module, and none of those
imports closes a circle. Each type stays importable where it always was
(``portside.policy.Finding``, ``portside.registry.credentials.Credential``,
``portside.versions.VersionScheme``...).

- :class:`Credential` (``portside_credentials``) and :class:`CredentialSource`, what a
  registry client asks for credentials, defined in :mod:`portside.credential` (light:
  every warm answer cached with a credential looks one up) and re-exported here;
- :class:`Finding`, :class:`Edit` and :class:`Proposed` (``portside_dockerfile_findings``),
  and :class:`DockerfileSource` (``portside_dockerfile_batch_findings``);
- :class:`ImageAttachments`, :class:`Attachment`, :class:`Vulnerability` and
  :class:`VulnerabilityReport` (``portside_vulnerabilities``);
- :class:`PullCountSource` (``portside_pull_count_sources``);
- :class:`VersionScheme` and :class:`TagVersion` (``portside_version_schemes``), with
  the rules their defaults use, defined in :mod:`portside.tagversion` (kept free of
  ``dataclasses`` for the command line's warm path) and re-exported here.

Only ``dataclasses`` and these low modules are imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The credential types live in their own light module: a warm credentialed answer
# looks the caller's credential up without the dataclasses below.
from portside.credential import Credential as Credential
from portside.credential import CredentialSource as CredentialSource

# The version contract lives in its own light module: versions.py (on the command
# line's warm path) imports it without the dataclasses above.
from portside.tagversion import LEVELS as LEVELS
from portside.tagversion import PRE_RELEASE_RANK as PRE_RELEASE_RANK
from portside.tagversion import TagVersion as TagVersion
from portside.tagversion import VersionScheme as VersionScheme
from portside.tagversion import release_numbers as release_numbers
from portside.tagversion import variant_family as variant_family

TYPE_CHECKING = False  # avoids importing typing (~9 ms) on the warm path; mypy knows it
if TYPE_CHECKING:
    from typing import Any

    from portside.dockerfile import Dockerfile, Range
    from portside.reference import Digest, Reference


# -- findings -------------------------------------------------------------------------


@dataclass(frozen=True)
class Edit:
    """Replace the text in ``range`` with ``new_text``."""

    range: Range
    new_text: str


@dataclass(frozen=True)
class Finding:
    # A docstring also spares ``@dataclass`` computing one from ``inspect.signature``.
    """One thing to report about a Dockerfile line (a stale image, a linter's rule)."""

    file: str
    range: Range
    image: str
    kind: str
    severity: str
    message: str
    suggestion: str | None = None  # the image as it would read after the fix
    edit: Edit | None = None
    level: str | None = None  # for stale: major / minor / patch
    # For stale: every update on offer, smallest step first (the newest in the current
    # major, then the newest overall when that is a major), as images to write.
    proposals: tuple[Proposed, ...] = ()

    def to_json(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.kind == "stale":
            extra = {"level": self.level, "proposals": [p.to_json() for p in self.proposals]}
        return {
            "file": self.file,
            "line": self.range.start.line + 1,
            "column": self.range.start.character + 1,
            "end_line": self.range.end.line + 1,
            "end_column": self.range.end.character + 1,
            "image": self.image,
            "kind": self.kind,
            "severity": self.severity,
            "message": self.message,
            "suggestion": self.suggestion,
            **extra,
        }


@dataclass(frozen=True)
class Proposed:
    """One update a ``stale`` finding offers: ``tag`` at ``level``, written as
    ``suggestion`` (with the new digest when the image is pinned)."""

    tag: str
    level: str
    suggestion: str

    def to_json(self) -> dict[str, str]:
        return {"tag": self.tag, "level": self.level, "suggestion": self.suggestion}


class DockerfileSource:
    """One Dockerfile of a batch: ``path`` as the surface names it (a file on disk for
    the command line and pre-commit), ``text`` its exact text, ``document`` the core's
    parse of that text.

    The parse is made on first use when not given: a plugin that reads only the file
    (hadolint) then starts before the core has parsed the batch, which is most of the
    pre-commit hook's own time. Parsing is a pure function of ``text``, so two threads
    asking at once at worst parse twice.
    """

    __slots__ = ("_document", "path", "text")

    def __init__(self, path: str, text: str, document: Dockerfile | None = None) -> None:
        self.path = path
        self.text = text
        self._document = document

    @property
    def document(self) -> Dockerfile:
        if self._document is None:
            from portside.dockerfile import parse

            self._document = parse(self.text)
        return self._document

    def __repr__(self) -> str:
        return f"DockerfileSource({self.path!r})"


# -- vulnerabilities ------------------------------------------------------------------

SEVERITIES = ("unknown", "low", "medium", "high", "critical")  # least to most severe


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


@dataclass(frozen=True)
class Vulnerability:
    """One known vulnerability of an image."""

    id: str  # CVE-2024-1234, GHSA-…
    severity: str  # one of SEVERITIES
    package: str | None = None
    fixed_in: str | None = None
    source: str = ""  # what said so: "SARIF sha256:… (Trivy)"

    def describe(self) -> str:
        package = f" in {self.package}" if self.package else ""
        fixed = f", fixed in {self.fixed_in}" if self.fixed_in else ""
        return f"{self.id} ({self.severity}{package}{fixed})"

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "severity": self.severity,
            "package": self.package,
            "fixed_in": self.fixed_in,
            "source": self.source,
        }


@dataclass(frozen=True)
class Attachment:
    """An artifact attached to the image, with the bytes of its layers."""

    artifact_type: str
    digest: Digest
    annotations: dict[str, str]
    documents: tuple[bytes, ...]


@dataclass(frozen=True)
class ImageAttachments:
    """What the ``portside_vulnerabilities`` hook is given about one image."""

    reference: str  # as the Dockerfile names it, normalised
    digests: tuple[Digest, ...]  # the index and/or the platform manifest
    attachments: tuple[Attachment, ...]


@dataclass
class VulnerabilityReport:
    """What the ``portside_vulnerabilities`` plugins found for one image, and what not."""

    vulnerabilities: list[Vulnerability] = field(default_factory=list)
    suppressed: list[str] = field(default_factory=list)  # ids an OpenVEX statement cleared
    warnings: list[str] = field(default_factory=list)

    @property
    def highest(self) -> str | None:
        if not self.vulnerabilities:
            return None
        return max((v.severity for v in self.vulnerabilities), key=severity_rank)

    def at_least(self, severity: str) -> list[Vulnerability]:
        floor = severity_rank(severity)
        return [v for v in self.vulnerabilities if severity_rank(v.severity) >= floor]

    def top(self, count: int = 5) -> list[Vulnerability]:
        return sorted(self.vulnerabilities, key=lambda v: (-severity_rank(v.severity), v.id))[
            :count
        ]


# -- pull counts ----------------------------------------------------------------------


class PullCountSource:
    """Where one kind of registry keeps its pull counts (subclass it; see
    ``portside_pull_count_sources``)."""

    name: str = ""

    def handles(self, repository: Reference) -> bool:
        """Whether this source knows ``repository``'s registry."""
        raise NotImplementedError

    async def pull_count(self, repository: Reference) -> int | None:
        """The repository's total pulls, or ``None`` when the registry does not say."""
        raise NotImplementedError
