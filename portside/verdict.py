"""Pass or fail: what a check gate (a pre-commit hook, a CI step) decides from findings.

A gate fails on findings that reach one of its thresholds (a severity or a kind, as
``portside check --fail-on`` takes them), and always on refused credentials. Images
that could not be checked because no registry answered are not failures unless the
gate requires the network: they are summed up in one calm "unchecked" line, since
pre-commit.ci and many CI runners have no network or no registry credentials.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from portside import errors
from portside.config import PolicyConfig
from portside.policy import KINDS, SEVERITY_ORDER, Finding, is_plugin_kind, meets
from portside.reference import Reference

# What portside-check fails on unless configured otherwise: the image does not exist,
# cannot be named reproducibly, or its publisher retired it. (Stale, unpinned, an end
# of life still ahead and vulnerabilities are advice: a commit is not a release, and the
# publish gate stops what must not ship.)
CHECK_FAIL_ON = ("not-found", "latest", "disallowed-registry", "invalid-reference", "end-of-life")
# portside-lint: the network-free kinds, and anything a plugin (hadolint) calls a
# warning or worse.
LINT_FAIL_ON = ("warning", "latest", "disallowed-registry", "invalid-reference", "unresolved")
# Never "unreachable": nothing but the user can fix wrong credentials.
ALWAYS_FAIL_ON = ("credentials-refused",)


def parse_thresholds(values: Iterable[str], *, where: str = "--fail-on") -> tuple[str, ...]:
    """``--fail-on`` values (repeatable, comma-separated) checked: severities, kinds or
    plugin kinds (``hadolint/DL3008``, ``hadolint``). ``where`` names their source."""
    out: list[str] = []
    for value in values:
        for name in (part.strip() for part in value.split(",")):
            if not name:
                continue
            known = name in SEVERITY_ORDER or name in KINDS or is_plugin_kind(name)
            if not known and name != "hadolint":  # a plugin's name: all its kinds
                raise errors.UsageError(
                    f"{where} {name!r} is neither a severity nor a kind",
                    hint=f"severities: {', '.join(SEVERITY_ORDER)}; kinds: "
                    f"{', '.join(KINDS)}, or a plugin's kind such as hadolint/DL3008",
                )
            out.append(name)
    return tuple(dict.fromkeys(out))


def thresholds(
    given: Sequence[str] | None, config: PolicyConfig, default: Sequence[str]
) -> tuple[str, ...]:
    """What a gate fails on: ``--fail-on`` values when given, else ``fail-on`` of
    ``[tool.portside.pre-commit]`` in ``config`` (the project's), else ``default``. The
    one reading of the setting, for the ``portside-check`` hook and ``portside check``
    alike; a bad value is a usage error naming where it came from."""
    if given:
        return parse_thresholds(given)
    if config.fail_on:
        where = f"{config.source}: [tool.portside.pre-commit] fail-on"
        return parse_thresholds(config.fail_on, where=where)
    return tuple(default)


def fails(finding: Finding, thresholds: Sequence[str]) -> bool:
    return any(meets(finding, t) for t in (*thresholds, *ALWAYS_FAIL_ON))


@dataclass
class Verdict:
    failing: list[Finding] = field(default_factory=list)
    unchecked: list[Finding] = field(default_factory=list)  # no registry answered
    require_network: bool = False

    @property
    def ok(self) -> bool:
        return not self.failing and not (self.require_network and self.unchecked)

    def unchecked_line(self) -> str | None:
        """One calm line for the images no registry answered for, or None."""
        if not self.unchecked:
            return None
        registries = sorted({_registry(f.image) for f in self.unchecked})
        count = len({(f.file, f.range.start.line) for f in self.unchecked})
        line = (
            f"{count} image(s) unchecked: no answer from {', '.join(registries)} and nothing cached"
        )
        if not self.require_network:
            line += " (not a failure; --require-network makes it one)"
        return line


def judge(
    findings: Iterable[Finding], thresholds: Sequence[str], *, require_network: bool = False
) -> Verdict:
    verdict = Verdict(require_network=require_network)
    for finding in findings:
        if finding.kind == "unreachable":
            verdict.unchecked.append(finding)
        elif fails(finding, thresholds):
            verdict.failing.append(finding)
    return verdict


def _registry(image: str) -> str:
    try:
        return Reference.parse(image).registry
    except errors.InvalidReference:
        return image
