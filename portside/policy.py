"""Findings: what is stale, unpinned, missing or moved in the images a Dockerfile uses.

One ``Finding`` type for every surface: the command line prints it, pre-commit fails on
it, the language server shows it as a diagnostic with its ``edit`` as a code action.
Findings that need no network (``latest``, ``unpinned``, invalid references, registries
not allowed) are computed by :func:`local_findings`; the rest ask the registry through
the cache, every distinct image concurrently. Plugins add findings of their own (the
``portside_dockerfile_findings`` hook, hadolint for one): :func:`check_document` runs
them in worker threads alongside the registry checks (see "plugin findings" below).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from portside import errors, versions
from portside.config import ImagePolicy, PolicyConfig

# The plugin contract's types, defined below the plugin manager; re-exported here.
from portside.contract import DockerfileSource
from portside.contract import Edit as Edit
from portside.contract import Finding as Finding
from portside.contract import Proposed as Proposed
from portside.dockerfile import Dockerfile, Document, ImageUse, Position, Range
from portside.reference import Digest, Reference

if TYPE_CHECKING:
    import pluggy

    from portside.cache import CachedRegistry
    from portside.registry.manifest import Descriptor, Manifest

SEVERITY_ORDER = {"hint": 0, "info": 1, "warning": 2, "error": 3}

# Defaults; [tool.portside.severity] overrides per kind (and stale-major/-minor/-patch).
DEFAULT_SEVERITY = {
    "stale-major": "warning",
    "stale-minor": "info",
    "stale-patch": "hint",
    "stale-prerelease": "info",
    "stale-build": "hint",
    "variant-update": "info",
    "unpinned": "info",
    "latest": "warning",
    "tag-moved": "warning",
    "not-found": "error",
    "platform-missing": "error",
    "unreachable": "info",
    # Wrong credentials are not a registry being away: nothing else will fix them.
    "credentials-refused": "error",
    "invalid-reference": "error",
    "disallowed-registry": "error",
    "unresolved": "info",
    "plugin-error": "warning",
    "end-of-life": "error",
    "end-of-life-soon": "warning",  # a date still ahead
    "vulnerable-critical": "error",
    "vulnerable-high": "warning",
    "vulnerable-medium": "info",
    "vulnerable-low": "hint",
    "vulnerable-unknown": "info",
}
KINDS = (
    "stale",
    "variant-update",
    "unpinned",
    "latest",
    "tag-moved",
    "not-found",
    "platform-missing",
    "unreachable",
    "credentials-refused",
    "invalid-reference",
    "disallowed-registry",
    "unresolved",
    "plugin-error",
    "end-of-life",
    "end-of-life-soon",
    "vulnerable",
)

_IGNORE = re.compile(r"^\s*#\s*portside:\s*ignore(?:\s*=\s*([\w,\s./-]+))?\s*$", re.IGNORECASE)


@dataclass
class _Context:
    file: str
    doc: Dockerfile
    lines: list[str]
    config: PolicyConfig
    findings: list[Finding] = field(default_factory=list)

    def add(
        self,
        use: ImageUse,
        kind: str,
        message: str,
        *,
        severity_key: str | None = None,
        default_severity: str | None = None,
        suggestion: str | None = None,
        edit: Edit | None = None,
        level: str | None = None,
        proposals: tuple[Proposed, ...] = (),
    ) -> None:
        key = severity_key or kind
        fallback = default_severity or DEFAULT_SEVERITY[key]
        severity = self.config.severity_for(key, self.config.severity_for(kind, fallback))
        self.findings.append(
            Finding(
                file=self.file,
                range=use.range,
                image=use.text,
                kind=kind,
                severity=severity,
                message=message,
                suggestion=suggestion,
                edit=edit,
                level=level,
                proposals=proposals,
            )
        )


def ignored_kinds(lines: Sequence[str], line: int) -> frozenset[str] | None:
    """Kinds silenced by ``# portside: ignore[=kind,...]`` on the line above ``line``."""
    above = line - 1
    while above >= 0:
        match = _IGNORE.match(lines[above])
        if match:
            kinds = match.group(1)
            if not kinds:
                return frozenset({"*"})
            return frozenset(k.strip().lower() for k in kinds.split(",") if k.strip())
        # Other comments may sit between the ignore comment and the instruction.
        if lines[above].lstrip().startswith("#"):
            above -= 1
            continue
        return None
    return None


@dataclass(frozen=True)
class Judged:
    """One image use with everything the rules need about it."""

    use: ImageUse
    ref: Reference
    policy: ImagePolicy
    ignore: frozenset[str]

    def silenced(self, kind: str) -> bool:
        return "*" in self.ignore or kind in self.ignore or self.policy.ignores(kind)


def _images(doc: Dockerfile) -> Iterable[ImageUse]:
    for use in doc.images:
        if use.is_stage_reference or use.is_scratch:
            continue
        yield use


def _prepare(ctx: _Context) -> list[Judged]:
    judged: list[Judged] = []
    # An image the parser rejected (an unclosed ``${``: BuildKit refuses the line) is
    # that syntax error, not an argument waiting for its value.
    rejected = {p.range: p.message for p in ctx.doc.problems}
    for use in _images(ctx.doc):
        ignore = ignored_kinds(ctx.lines, use.range.start.line) or frozenset()
        if "*" in ignore:
            continue
        if use.range in rejected:
            if "invalid-reference" not in ignore:
                ctx.add(use, "invalid-reference", rejected[use.range])
            continue
        if use.resolved is None:
            if "unresolved" not in ignore:
                ctx.add(
                    use,
                    "unresolved",
                    f"{use.text} uses a build argument without a default; "
                    "it cannot be checked until the build sets it",
                )
            continue
        try:
            ref = Reference.parse(use.resolved)
        except errors.InvalidReference as exc:
            if "invalid-reference" not in ignore:
                ctx.add(
                    use, "invalid-reference", exc.message + (f" ({exc.hint})" if exc.hint else "")
                )
            continue
        policy = ctx.config.for_image(ref.name, ref.familiar_name)
        judged.append(Judged(use, ref, policy, ignore))
    return judged


def local_findings(
    doc: Dockerfile, *, file: str, text: str, config: PolicyConfig
) -> tuple[list[Finding], list[Judged]]:
    """Findings that need no registry, and the images left to ask the registry about."""
    ctx = _Context(file, doc, text.splitlines(), config)
    judged = _prepare(ctx)
    remote: list[Judged] = []
    for item in judged:
        ref, use = item.ref, item.use
        if not config.registry_allowed(ref.registry):
            if not item.silenced("disallowed-registry"):
                ctx.add(
                    use,
                    "disallowed-registry",
                    f"{ref.registry} is not an allowed registry "
                    f"(allowed: {', '.join(config.allowed_registries or ())})",
                )
            continue
        if (ref.tag is None or ref.tag == "latest") and ref.digest is None:
            if not item.silenced("latest"):
                what = "no tag" if ref.tag is None else "the 'latest' tag"
                ctx.add(
                    use,
                    "latest",
                    f"{use.text} uses {what}: the image changes under you; name a version",
                )
        elif ref.digest is None and not item.silenced("unpinned"):
            ctx.add(
                use,
                "unpinned",
                f"{use.text} is not pinned to a digest: a rebuilt tag changes the build silently",
                # Required pinning makes a missing digest a warning, not a note.
                default_severity="warning" if item.policy.require_digest else None,
            )
        remote.append(item)
    return ctx.findings, remote


# -- edits -------------------------------------------------------------------------------


def replace_piece(use: ImageUse, old: str, new: str) -> Edit | None:
    """An edit turning ``old`` into ``new`` where it is written.

    Literally in the reference as written when it is there once, else in the default
    of the one ``ARG`` it came from (the fix edits the ARG, not the FROM line).
    """
    if old and "${" not in use.text and use.text.endswith(old):
        # A literal reference ends with its tag and digest, so a tail after ":" or "@"
        # is that, even where the same text is also part of the host
        # (127.0.0.1:5000/app:1).
        head = use.text[: -len(old)]
        if head.endswith((":", "@")):
            return Edit(use.range, head + new)
    if old and use.text.count(old) == 1 and "${" not in _around(use.text, old):
        return Edit(use.range, use.text.replace(old, new))
    holders = [s for s in use.substitutions if s.default is not None and old in s.default]
    if len(holders) == 1 and holders[0].default is not None and holders[0].default.count(old) == 1:
        sub = holders[0]
        assert sub.default is not None and sub.default_range is not None
        return Edit(sub.default_range, sub.default.replace(old, new))
    return None


def _around(text: str, piece: str) -> str:
    """The text of ``piece`` widened to any ``${...}`` it sits in (to refuse edits there)."""
    index = text.find(piece)
    opening = text.rfind("${", 0, index + 1)
    closing = text.find("}", opening) if opening >= 0 else -1
    if opening >= 0 and closing >= index:
        return text[opening : closing + 1]
    return piece


def retarget(use: ImageUse, ref: Reference, tag: str, digest: Digest | None) -> Edit | None:
    """An edit moving ``use`` from ``ref`` to ``tag`` (and ``digest``, when given)."""
    new_tail = tag + (f"@{digest}" if digest else "")
    old_tail = (ref.tag or "") + (f"@{ref.digest}" if ref.digest else "")
    candidates: list[tuple[str, str]] = []
    if ref.tag:
        candidates.append((old_tail, new_tail))
        if ref.digest and digest:
            candidates.append((str(ref.digest), str(digest)))
        if not ref.digest and digest:
            candidates.append((ref.tag, new_tail))
        candidates.append((ref.tag, tag))
    for old, new in candidates:
        edit = replace_piece(use, old, new)
        if edit is not None:
            if not ref.digest and digest and new == tag:
                continue  # would drop the pin we were asked for
            return edit
    if not ref.digest and digest and ref.tag == tag and "${" in use.text:
        # Pinning an ARG-built name whose tag is not one ARG's whole tail: append the
        # digest to the reference as written.
        return Edit(use.range, f"{use.text}@{digest}")
    return None


def scheme_at(ref: Reference, folder: Path) -> versions.VersionScheme:
    """The version scheme for ``ref`` under the configuration that applies in ``folder``."""
    from portside.config import load_config

    return image_scheme(ref, load_config(folder).for_image(ref.name, ref.familiar_name))


def image_scheme(ref: Reference, policy: ImagePolicy) -> versions.VersionScheme:
    """The version scheme for ``ref`` under its image rules (``scheme = ...``)."""
    return versions.scheme_for(ref.name, {"*": policy.scheme} if policy.scheme else None)


@dataclass(frozen=True)
class UpdateOption:
    """One way to update an image: to the newest tag of one step size, or the variant."""

    level: str  # "patch", "minor", "major" or "variant"
    tag: str
    suggestion: str  # the image as it would read after the edit
    edit: Edit


UPDATE_LEVELS = ("patch", "minor", "major")


def update_options(
    use: ImageUse,
    tags: Iterable[str],
    *,
    config: PolicyConfig | None = None,
    digest_for: Callable[[str], Digest | None] | None = None,
) -> list[UpdateOption]:
    """The updates on offer for ``use`` given its repository's ``tags``, no network.

    Per step size (patch, minor, major) that the image's policy allows and the tags
    have: the newest tag reached by a step of exactly that size (the same rules as the
    ``stale`` finding, one level at a time); then the newest variant of the same version
    line (as ``variant-update``). Each with the edit that writes it. A pinned image is
    offered only tags whose digest ``digest_for`` knows (the pin is kept, moved along);
    levels that would give the same tag as a smaller step are left out.
    """
    if use.resolved is None or use.is_stage_reference or use.is_scratch:
        return []
    try:
        ref = Reference.parse(use.resolved)
    except errors.InvalidReference:
        return []
    if ref.tag is None or ref.tag == "latest":
        return []
    policy = (config or PolicyConfig()).for_image(ref.name, ref.familiar_name)
    scheme = image_scheme(ref, policy)
    tags = list(tags)
    wanted: list[tuple[str, str]] = []
    for level in UPDATE_LEVELS:
        if level not in policy.update_levels:
            continue
        newest = versions.newest_in_line(ref.tag, tags, scheme=scheme, allow_levels=(level,))
        if newest is not None and all(newest != tag for _, tag in wanted):
            wanted.append((level, newest))
    variants = versions.variant_updates(ref.tag, tags, scheme=scheme)
    if variants and all(variants[0] != tag for _, tag in wanted):
        wanted.append(("variant", variants[0]))
    out: list[UpdateOption] = []
    for level, tag in wanted:
        digest: Digest | None = None
        if ref.digest is not None:
            digest = digest_for(tag) if digest_for is not None else None
            if digest is None:
                continue  # moving a pinned image needs the new digest
        edit = retarget(use, ref, tag, digest)
        if edit is None:
            continue
        suggestion = f"{ref.familiar_name}:{tag}" + (f"@{digest}" if digest else "")
        out.append(UpdateOption(level, tag, suggestion, edit))
    return out


def apply_edits(text: str, edits: Iterable[Edit]) -> str:
    """``text`` with every edit applied; every other character kept as it was."""
    document = Document(text)
    spans = {
        (document.offset_at(e.range.start), document.offset_at(e.range.end)): e.new_text
        for e in edits  # the same ARG default fixed for two images is one edit
    }
    for (start, end), new_text in sorted(spans.items(), reverse=True):
        text = text[:start] + new_text + text[end:]
    return text


# -- remote findings ---------------------------------------------------------------------


def stale_proposals(
    ref: Reference,
    tags: Iterable[str],
    policy: ImagePolicy,
    *,
    scheme: versions.VersionScheme | None = None,
) -> list[versions.Proposal]:
    """The updates ``ref`` is offered among ``tags`` (newest in its major, newest overall,
    each with its level; oldest first), or none when it is not ``stale``.

    The one rule behind the ``stale`` finding, the watcher's ``newer`` notice and
    anything else that asks "is there a newer version in this image's line".
    """
    if ref.tag is None or ref.tag == "latest":
        return []
    scheme = scheme or image_scheme(ref, policy)
    return versions.proposals(ref.tag, list(tags), scheme=scheme, allow_levels=policy.update_levels)


def stale_tag(
    ref: Reference,
    tags: Iterable[str],
    policy: ImagePolicy,
    *,
    scheme: versions.VersionScheme | None = None,
) -> tuple[str, str] | None:
    """(newest tag, update level) when ``ref`` is ``stale`` among ``tags``, else None."""
    found = stale_proposals(ref, tags, policy, scheme=scheme)
    return (found[-1].tag, found[-1].level) if found else None


def variant_tag(ref: Reference, tags: Iterable[str], policy: ImagePolicy) -> str | None:
    """The newest variant of ``ref``'s version (the ``variant-update`` rule), or None."""
    if ref.tag is None or ref.tag == "latest":
        return None
    updates = versions.variant_updates(ref.tag, list(tags), scheme=image_scheme(ref, policy))
    return updates[0] if updates else None


async def _tags(cached: CachedRegistry, ref: Reference) -> list[str]:
    return await cached.tags(ref.repository_ref())


def _unreachable(ctx: _Context, item: Judged, exc: errors.PortsideError) -> None:
    if isinstance(exc, errors.CredentialsRefused):
        if not item.silenced("credentials-refused"):
            hint = f" ({exc.hint})" if exc.hint else ""
            ctx.add(
                item.use,
                "credentials-refused",
                f"could not check {item.ref.familiar}: {exc.message}{hint}",
            )
        return
    if item.silenced("unreachable"):
        return
    ctx.add(item.use, "unreachable", f"could not check {item.ref.familiar}: {exc.message}")


async def _judge_remote(ctx: _Context, item: Judged, cached: CachedRegistry) -> str:
    """Add the registry's findings for one image; returns what the registry said of it:
    ``"known"`` (repository, tag and pinned digest exist), ``"missing"`` or
    ``"unreachable"``."""
    ref, use = item.ref, item.use
    try:
        tags = await _tags(cached, ref)
    except errors.NotFound:
        if not item.silenced("not-found"):
            ctx.add(use, "not-found", f"repository {ref.name} does not exist (or is not visible)")
        return "missing"
    except (errors.RegistryError, errors.CredentialError, errors.CacheMiss) as exc:
        _unreachable(ctx, item, exc)
        return "unreachable"

    missing = ref.tag is not None and ref.tag not in tags
    if missing and not item.silenced("not-found"):
        ctx.add(use, "not-found", f"tag {ref.tag!r} does not exist in {ref.name}")

    if ref.digest is not None and not missing:
        # The pin first: a digest that does not exist is the news, not a rebuilt tag
        # (tag-moved) nor an update offered from it.
        try:
            await cached.manifest(Reference(ref.registry, ref.repository, None, ref.digest))
        except errors.NotFound:
            if not item.silenced("not-found"):
                what = f"digest {ref.digest.short}…"
                ctx.add(use, "not-found", f"{what} does not exist in {ref.name}")
            return "missing"
        except (errors.RegistryError, errors.CredentialError, errors.CacheMiss) as exc:
            _unreachable(ctx, item, exc)
            return "unreachable"

    # A tag that is gone (a removed snapshot: jammy-20240530) still gets the newest in
    # its line offered: that is the fix.
    if ref.tag is not None and ref.tag != "latest":
        scheme = image_scheme(ref, item.policy)
        await _stale(ctx, item, tags, scheme, cached)
        if not item.silenced("variant-update"):
            newest = variant_tag(ref, tags, item.policy)
            if newest is not None:
                current, candidate = scheme.parse(ref.tag), scheme.parse(newest)
                same = bool(current and candidate and current.key == candidate.key)
                what = "the same version" if same else "a newer version"
                ctx.add(
                    use,
                    "variant-update",
                    f"{ref.familiar_name}:{newest}: {what} on a newer variant",
                    suggestion=f"{ref.familiar_name}:{newest}",
                    edit=retarget(use, ref, newest, None),
                )
    if missing:
        return "missing"

    try:
        if ref.digest is not None and ref.tag is not None and not item.silenced("tag-moved"):
            now = await cached.resolve(Reference(ref.registry, ref.repository, ref.tag))
            if now.digest != ref.digest:
                ctx.add(
                    use,
                    "tag-moved",
                    f"{ref.familiar_name}:{ref.tag} now points to {now.digest.short}…, not the "
                    f"pinned {ref.digest.short}… (the image was rebuilt)",
                    suggestion=f"{ref.familiar_name}:{ref.tag}@{now.digest}",
                    edit=replace_piece(use, str(ref.digest), str(now.digest)),
                )
        await _platform(ctx, item, cached)
        await _lifecycle(ctx, item, cached)
    except errors.NotFound:
        if not item.silenced("not-found"):
            ctx.add(use, "not-found", f"tag {ref.tag!r} does not exist in {ref.name}")
        return "missing"
    except errors.InvalidReference as exc:  # a platform not in the index
        if not item.silenced("platform-missing"):
            ctx.add(use, "platform-missing", exc.message + (f" ({exc.hint})" if exc.hint else ""))
    except (errors.RegistryError, errors.CredentialError, errors.CacheMiss) as exc:
        _unreachable(ctx, item, exc)
        return "unreachable"
    return "known"


@dataclass(frozen=True)
class ImageCheck:
    """The registry's findings about one image use, and what the registry said of it."""

    use: ImageUse
    ref: Reference
    findings: list[Finding]
    status: str  # "known", "missing" or "unreachable" (see _judge_remote)


async def check_image(
    doc: Dockerfile, item: Judged, *, file: str, config: PolicyConfig, cached: CachedRegistry
) -> ImageCheck:
    """The registry findings for one image of :func:`local_findings`'s remote list: what
    a surface that shows each image's answer as it lands (the language server) calls."""
    ctx = _Context(file, doc, [], config)
    status = await _judge_remote(ctx, item, cached)
    return ImageCheck(item.use, item.ref, ctx.findings, status)


async def _stale(
    ctx: _Context,
    item: Judged,
    tags: list[str],
    scheme: versions.VersionScheme,
    cached: CachedRegistry,
) -> None:
    ref, use = item.ref, item.use
    if item.silenced("stale") or ref.tag is None:
        return
    from portside.updates import without_same_image

    tags = await without_same_image(cached, ref, tags, scheme)
    found = stale_proposals(ref, tags, item.policy, scheme=scheme)
    if not found:
        return

    async def digest_of(tag: str) -> Digest | None:
        # A pinned image stays pinned: suggest the new tag at its digest.
        if ref.digest is None:
            return None
        try:
            return (await cached.resolve(Reference(ref.registry, ref.repository, tag))).digest
        except errors.PortsideError:
            return None

    import asyncio  # here: the network-free checks (portside-lint) never load it

    digests = await asyncio.gather(*(digest_of(p.tag) for p in found))
    proposed = tuple(
        Proposed(p.tag, p.level, f"{ref.familiar_name}:{p.tag}" + (f"@{d}" if d else ""))
        for p, d in zip(found, digests, strict=True)
    )
    # The finding's own fix is the newest overall; the others ride along.
    newest, level, digest = found[-1].tag, found[-1].level, digests[-1]
    message = f"{ref.familiar_name}:{newest} is available ({level} update from {ref.tag})"
    if len(found) > 1:
        message += f"; in the current major: {found[0].tag} ({found[0].level})"
    ctx.add(
        use,
        "stale",
        message,
        severity_key=f"stale-{level}",
        suggestion=proposed[-1].suggestion,
        edit=retarget(use, ref, newest, digest) if (digest or ref.digest is None) else None,
        level=level,
        proposals=proposed,
    )


async def _lifecycle(ctx: _Context, item: Judged, cached: CachedRegistry) -> None:
    """``end-of-life`` and ``vulnerable``, from what is attached to the image (the
    index's digest and the platform manifest's): lifecycle artifacts, SARIF, OpenVEX."""
    quiet = ("end-of-life", "end-of-life-soon", "vulnerable")
    if all(item.silenced(kind) for kind in quiet):
        return
    from portside import lifecycle, vulnerabilities
    from portside.registry.manifest import Platform

    ref, use = item.ref, item.use
    try:
        platform = Platform.parse(use.platform_resolved) if use.platform_resolved else None
    except errors.InvalidReference:
        platform = None
    subjects = await lifecycle.image_subjects(cached, ref, platform)
    status = await lifecycle.read_lifecycle(cached, ref, subjects)
    now = lifecycle.utc_now()
    eol = status.end_of_life
    kind = "end-of-life" if eol is not None and eol.passed(now) else "end-of-life-soon"
    if eol is not None and not item.silenced(kind):
        passed = eol.passed(now)
        target = await _alive(cached, item, now) if passed else None
        ctx.add(
            use,
            kind,
            f"{ref.familiar} {eol.describe(now)}"
            + (f"; {target[0]} is not" if target is not None else ""),
            suggestion=f"{ref.familiar_name}:{target[0]}" + (f"@{target[1]}" if target[1] else "")
            if target is not None
            else None,
            edit=retarget(use, ref, target[0], target[1]) if target is not None else None,
        )
    report = None
    if not item.silenced("vulnerable"):
        report = await vulnerabilities.collect(cached, ref, subjects)
        if report.vulnerabilities and report.highest is not None:
            top = "; ".join(v.describe() for v in report.top(3))
            count = len(report.vulnerabilities)
            ctx.add(
                use,
                "vulnerable",
                f"{ref.familiar} has {count} known vulnerabilit{'y' if count == 1 else 'ies'}, "
                f"the worst {report.highest}: {top}",
                severity_key=f"vulnerable-{report.highest}",
            )
    for warning in [*status.warnings, *(report.warnings if report else [])]:
        if warning not in cached.warnings:
            cached.warnings.append(warning)


async def _alive(
    cached: CachedRegistry, item: Judged, now: Any, limit: int = 5
) -> tuple[str, Digest | None] | None:
    return await newest_not_retired(
        cached, item.ref, item.policy, now, tags=await _tags(cached, item.ref), limit=limit
    )


class LineSource(Protocol):
    """What finding the newest build that is not retired reads: a tag's digest and what
    is attached to an image (:class:`portside.cache.CachedRegistry`; the watcher's own)."""

    async def resolve(self, ref: Reference) -> Descriptor: ...

    async def manifest(self, ref: Reference) -> Manifest: ...

    async def referrers(self, ref: Reference) -> list[Descriptor]: ...


async def newest_not_retired(
    source: LineSource,
    ref: Reference,
    policy: ImagePolicy,
    now: Any,
    *,
    tags: Sequence[str],
    limit: int = 5,
) -> tuple[str, Digest | None] | None:
    """The newest tag of the image's line whose image is not past its end of life (the
    fix an ``end-of-life`` finding offers: newer first, then the tag itself, then older
    ones), pinned if the image was; looks at ``limit`` candidates at most."""
    from portside import lifecycle

    scheme = image_scheme(ref, policy)
    current = scheme.parse(ref.tag) if ref.tag is not None else None
    if ref.tag is None or current is None:
        return None
    line = []
    for tag in tags:
        version = scheme.parse(tag)
        usable = version is not None and not version.is_prerelease
        if usable and version is not None and scheme.is_compatible(current, version):
            line.append((version.key, tag))
    line.sort(reverse=True)
    for _, tag in line[:limit]:
        candidate = Reference(ref.registry, ref.repository, tag)
        try:
            digest = (await source.resolve(candidate)).digest
            if ref.digest is not None and digest == ref.digest:
                continue
            status = await lifecycle.lifecycle_of(source, candidate.with_digest(digest))
        except errors.PortsideError:
            continue
        if status.end_of_life is None or not status.end_of_life.passed(now):
            return tag, digest if ref.digest is not None else None
    return None


async def _platform(ctx: _Context, item: Judged, cached: CachedRegistry) -> None:
    platform = item.use.platform_resolved
    if not platform or item.silenced("platform-missing"):
        return
    from portside.registry.manifest import Platform

    try:
        wanted = Platform.parse(platform)
    except errors.InvalidReference:
        return
    manifest = await cached.manifest(item.ref)
    if manifest.is_index:
        manifest.select(wanted)


async def check_document(
    doc: Dockerfile,
    *,
    file: str,
    text: str,
    config: PolicyConfig,
    cached: CachedRegistry | None,
    plugins: pluggy.PluginManager | None = None,
    ask_plugins: bool = True,
) -> list[Finding]:
    """Every finding for one Dockerfile; ``cached=None`` gives the local ones only.

    Plugin findings are included unless ``ask_plugins`` is false (a caller checking
    many files asks them once for all, with :func:`batch_plugin_findings`);
    ``plugins``: the manager to ask, the process-wide one by default.
    """
    import asyncio

    findings, remote = local_findings(doc, file=file, text=text, config=config)
    remote_checks = (
        [check_image(doc, item, file=file, config=config, cached=cached) for item in remote]
        if cached
        else []
    )

    async def nothing() -> list[Finding]:
        return []

    extra, checks = await asyncio.gather(
        plugin_findings_async(doc, file=file, text=text, config=config, plugins=plugins)
        if ask_plugins
        else nothing(),
        asyncio.gather(*remote_checks),
    )
    return sort_findings(findings + [f for c in checks for f in c.findings] + extra)


def group_unreachable(findings: Sequence[Finding], doc: Dockerfile) -> list[Finding]:
    """``findings`` with the ``unreachable`` ones merged: one per registry, on its first
    image, saying how many images it concerns (an editor shows a registry that is down
    once, not on every line). Other findings are kept as they are, in order."""
    if not any(f.kind == "unreachable" for f in findings):
        return list(findings)  # the usual case, on every keystroke: nothing to parse
    registry_at: dict[tuple[int, int], tuple[str, str]] = {}
    for use in doc.images:
        if use.resolved is None:
            continue
        try:
            ref = Reference.parse(use.resolved)
        except errors.InvalidReference:
            continue
        start = (use.range.start.line, use.range.start.character)
        registry_at[start] = (ref.registry, ref.familiar)
    groups: dict[str, list[Finding]] = {}
    for finding in findings:
        if finding.kind == "unreachable":
            start = (finding.range.start.line, finding.range.start.character)
            registry = registry_at.get(start, (finding.image, finding.image))[0]
            groups.setdefault(registry, []).append(finding)
    out: list[Finding] = []
    for finding in findings:
        if finding.kind != "unreachable":
            out.append(finding)
            continue
        start = (finding.range.start.line, finding.range.start.character)
        registry, familiar = registry_at.get(start, (finding.image, finding.image))
        group = groups[registry]
        if finding is not group[0]:
            continue
        images = len({(f.range.start.line, f.range.start.character) for f in group})
        prefix = f"could not check {familiar}: "
        reason = finding.message[len(prefix) :] if finding.message.startswith(prefix) else None
        if reason is not None:
            # "host: ..." repeats the host we already name; and whether this round
            # was refused by the pause of a rate-limited host or by the host itself is
            # the same news to the reader (the message stays put between re-checks).
            while reason.startswith(f"{registry}: "):
                reason = reason[len(registry) + 2 :]
            reason = reason.removesuffix(_PAUSED_SUFFIX)
        if images == 1:
            message = f"could not check {familiar} on {registry}: {reason}" if reason else None
        else:
            message = f"could not check {images} images on {registry}" + (
                f": {reason}" if reason else f" ({finding.message})"
            )
        if message is None:
            out.append(finding)
            continue
        out.append(replace(finding, message=message))
    return out


_PAUSED_SUFFIX = "; paused until its reset, no request was sent"


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """By position, then most severe first: the order every surface shows them in."""
    return sorted(
        findings,
        key=lambda f: (
            f.range.start.line,
            f.range.start.character,
            -SEVERITY_ORDER[f.severity],
            f.kind,
        ),
    )


def meets(finding: Finding, threshold: str) -> bool:
    """Whether ``finding`` reaches ``threshold``: a severity name or a kind."""
    if threshold in SEVERITY_ORDER:
        return SEVERITY_ORDER[finding.severity] >= SEVERITY_ORDER[threshold]
    return finding.kind == threshold or kind_matches(finding.kind, threshold)


# -- plugin findings ---------------------------------------------------------------------
#
# Plugins (the ``portside_dockerfile_findings`` hook) may block: hadolint is a process.
# So they never run inside :func:`local_findings`, which the language server calls on
# its event loop and must stay instantaneous. :func:`check_document` runs each plugin in
# a worker thread (``plugin_findings_async``) concurrently with the registry checks and
# stops waiting after ``PLUGIN_TIMEOUT``; sync callers use :func:`plugin_findings`.
# Surfaces that check many files at once ask the plugins once for all of them
# (:func:`start_plugin_findings`): a plugin that implements the batch hook is called
# once, the others once per document, all in daemon threads.
# Whatever a plugin does wrong becomes one ``plugin-error`` finding naming it.

PLUGIN_TIMEOUT = 30.0  # seconds the core waits for one plugin on one document


def is_plugin_kind(name: str) -> bool:
    """Whether ``name`` is a plugin's kind (``"hadolint/DL3008"``): what ``--fail-on``
    accepts besides severities and ``KINDS``."""
    plugin, _, rule = name.partition("/")
    return bool(plugin and rule)


def kind_matches(kind: str, name: str) -> bool:
    """Whether ``name`` (from an ignore comment, config or ``--fail-on``) names the
    plugin kind ``kind``: the same kind in any case, or its plugin (``hadolint``)."""
    kind, name = kind.lower(), name.lower()
    return "/" in kind and (name == kind or kind.startswith(name.rstrip("/") + "/"))


def _plugin_silenced(finding: Finding, lines: Sequence[str], config: PolicyConfig) -> bool:
    above = ignored_kinds(lines, finding.range.start.line) or frozenset()
    # Plugin findings are per line, not per image: of the image rules, only those
    # matching every image (``match = "*"``) apply to them.
    configured = config.for_image("", "").ignore
    return (
        "*" in above
        or "*" in configured
        or any(kind_matches(finding.kind, name) for name in above | configured)
    )


def _plugin_error(file: str, config: PolicyConfig, plugin: str, problem: str) -> Finding:
    return Finding(
        file=file,
        range=Range(Position(0, 0), Position(0, 0)),
        image="",
        kind="plugin-error",
        severity=config.severity_for("plugin-error", DEFAULT_SEVERITY["plugin-error"]),
        message=f"plugin {plugin} failed: {problem}",
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, errors.PortsideError):
        return exc.message + (f" ({exc.hint})" if exc.hint else "")
    from portside.redact import redact_url

    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {redact_url(text)[:200]}" if text else type(exc).__name__


def _plugin_impls(
    plugins: pluggy.PluginManager | None, hook: str = "portside_dockerfile_findings"
) -> list[Any]:
    from portside.plugins import hook_impls

    # In pluggy's order (the last registered first). Wrappers wrap nothing here.
    return [i for i in hook_impls(hook, plugins) if not (i.hookwrapper or i.wrapper)]


def _accept(
    result: Any, *, doc: Dockerfile, file: str, text: str, config: PolicyConfig
) -> list[Finding]:
    """One plugin's answer checked, completed and filtered (see the hookspec)."""
    if not isinstance(result, list) or not all(isinstance(f, Finding) for f in result):
        raise TypeError(f"returned {type(result).__name__}, not a list of Finding")
    lines = doc.document.lines  # the plugin's line numbers count "\n" only
    last = max(len(lines) - 1, 0)
    accepted = []
    for finding in result:
        if finding.severity not in SEVERITY_ORDER:
            raise ValueError(
                f"severity {finding.severity!r} of {finding.kind!r} is not one of "
                f"{', '.join(SEVERITY_ORDER)}"
            )
        if finding.range.start.line > last:  # a document that changed under the plugin
            continue
        if _plugin_silenced(finding, lines, config):
            continue
        plugin = finding.kind.partition("/")[0]
        severity = config.severity_for(finding.kind, config.severity_for(plugin, finding.severity))
        accepted.append(replace(finding, file=file, severity=severity))
    return accepted


def _call_plugin(
    impl: Any, *, doc: Dockerfile, file: str, text: str, config: PolicyConfig
) -> list[Finding]:
    arguments = {"path": file, "text": text, "document": doc}
    try:
        result = impl.function(*(arguments[name] for name in impl.argnames))
        return _accept(result, doc=doc, file=file, text=text, config=config)
    except Exception as exc:
        return [_plugin_error(file, config, impl.plugin_name, _describe(exc))]


def plugin_findings(
    doc: Dockerfile,
    *,
    file: str,
    text: str,
    config: PolicyConfig,
    plugins: pluggy.PluginManager | None = None,
) -> list[Finding]:
    """Every plugin's findings for one document, here and now (plugins may block)."""
    try:
        impls = _plugin_impls(plugins)
    except Exception as exc:  # a broken entry point: say so, check the rest
        return [_plugin_error(file, config, "(loading plugins)", _describe(exc))]
    found: list[Finding] = []
    for impl in impls:
        found += _call_plugin(impl, doc=doc, file=file, text=text, config=config)
    return found


async def plugin_findings_async(
    doc: Dockerfile,
    *,
    file: str,
    text: str,
    config: PolicyConfig,
    plugins: pluggy.PluginManager | None = None,
    background: bool = False,
) -> list[Finding]:
    """:func:`plugin_findings` with each plugin in a worker thread, concurrently; one
    that takes longer than ``PLUGIN_TIMEOUT`` is a ``plugin-error`` (its thread is left
    to finish on its own: a thread cannot be stopped). ``background``: the plugins run
    behind an interactive user (see :func:`portside.plugins.in_background`)."""
    import asyncio

    try:
        impls = _plugin_impls(plugins)
    except Exception as exc:  # a broken entry point: say so, check the rest
        return [_plugin_error(file, config, "(loading plugins)", _describe(exc))]

    async def one(impl: Any) -> list[Finding]:
        if background:  # this task's context only; to_thread carries it to the thread
            from portside.plugins import BACKGROUND

            BACKGROUND.set(True)
        work = asyncio.to_thread(_call_plugin, impl, doc=doc, file=file, text=text, config=config)
        try:
            return await asyncio.wait_for(work, PLUGIN_TIMEOUT)
        except asyncio.TimeoutError:  # not yet TimeoutError on Python 3.10
            return [
                _plugin_error(
                    file, config, impl.plugin_name, f"no answer within {PLUGIN_TIMEOUT:g} s"
                )
            ]

    answers = await asyncio.gather(*(one(impl) for impl in impls))
    return [finding for answer in answers for finding in answer]


# -- plugin findings for a batch of documents --------------------------------------------

BATCH_TIMEOUT_PER_DOCUMENT = 1.0  # seconds, beyond PLUGIN_TIMEOUT, a batch may take per file
# Threads running plugins' jobs: as many as ThreadPoolExecutor's default.
_WORKERS = min(32, (os.cpu_count() or 1) + 4)

# One document of a batch and the configuration that applies to it.
Checked = tuple[DockerfileSource, PolicyConfig]


@dataclass
class _Job:
    run: Callable[[], list[Finding]]
    late: Callable[[str], list[Finding]]  # the plugin-error findings if it never answers
    answer: list[Finding] | None = None


class PendingFindings:
    """Plugin findings being computed in daemon threads (a hung plugin cannot keep the
    process alive); :meth:`wait` for them. Started by :func:`start_plugin_findings`."""

    def __init__(self, jobs: list[_Job], timeout: float) -> None:
        import threading
        import time

        self._jobs = jobs
        self._timeout = timeout
        self._deadline = time.monotonic() + timeout
        queue = iter(jobs)
        taking = threading.Lock()

        def work() -> None:
            while True:
                with taking:
                    job = next(queue, None)
                if job is None:
                    return
                job.answer = job.run()

        self._threads = [
            threading.Thread(target=work, name="portside-plugin", daemon=True)
            for _ in range(min(_WORKERS, len(jobs)))
        ]
        for thread in self._threads:
            thread.start()

    def wait(self) -> list[Finding]:
        """Every answer, in no particular order; a plugin still running at the deadline
        is a ``plugin-error`` on each document it was asked about."""
        import time

        for thread in self._threads:
            thread.join(max(0.0, self._deadline - time.monotonic()))
        found: list[Finding] = []
        for job in self._jobs:
            answer = job.answer  # read once: a late thread may still set it
            found += (
                answer if answer is not None else job.late(f"no answer within {self._timeout:g} s")
            )
        return found


def _call_batch(impl: Any, documents: Sequence[Checked]) -> list[Finding]:
    """One batch plugin's answer, checked and filtered per document like
    :func:`_call_plugin`'s; anything wrong is a ``plugin-error`` on every document."""
    by_path = {source.path: (source, config) for source, config in documents}
    try:
        arguments = {"documents": [source for source, _ in documents]}
        result = impl.function(*(arguments[name] for name in impl.argnames))
        if not isinstance(result, list) or not all(isinstance(f, Finding) for f in result):
            raise TypeError(f"returned {type(result).__name__}, not a list of Finding")
        grouped: dict[str, list[Finding]] = {}
        for finding in result:
            if finding.file not in by_path:
                raise ValueError(f"returned a finding for {finding.file!r}, which it was not given")
            grouped.setdefault(finding.file, []).append(finding)
        accepted: list[Finding] = []
        for path, findings in grouped.items():
            source, config = by_path[path]
            accepted += _accept(
                findings, doc=source.document, file=path, text=source.text, config=config
            )
        return accepted
    except Exception as exc:
        problem = _describe(exc)
        return [_plugin_error(s.path, c, impl.plugin_name, problem) for s, c in documents]


def start_plugin_findings(
    documents: Sequence[Checked], *, plugins: pluggy.PluginManager | None = None
) -> PendingFindings:
    """Start every plugin's findings for ``documents`` (each with its configuration):
    plugins that implement ``portside_dockerfile_batch_findings`` are called once for
    all of them, the others once per document, concurrently in daemon threads. The
    caller does its own work meanwhile and then calls ``wait()``; the core waits at most
    ``PLUGIN_TIMEOUT + BATCH_TIMEOUT_PER_DOCUMENT`` per document for the whole batch."""
    documents = list(documents)
    timeout = PLUGIN_TIMEOUT + BATCH_TIMEOUT_PER_DOCUMENT * len(documents)
    if not documents:
        return PendingFindings([], timeout)
    try:
        batch = _plugin_impls(plugins, "portside_dockerfile_batch_findings")
        batched = {impl.plugin_name for impl in batch}
        single = [i for i in _plugin_impls(plugins) if i.plugin_name not in batched]
    except Exception as exc:  # a broken entry point: say so, check the rest
        problem = _describe(exc)
        failed = [_plugin_error(s.path, c, "(loading plugins)", problem) for s, c in documents]
        return PendingFindings([_Job(run=lambda: failed, late=lambda _: failed)], timeout)

    def batch_job(impl: Any) -> _Job:
        return _Job(
            run=lambda: _call_batch(impl, documents),
            late=lambda problem: [
                _plugin_error(s.path, c, impl.plugin_name, problem) for s, c in documents
            ],
        )

    def single_job(impl: Any, source: DockerfileSource, config: PolicyConfig) -> _Job:
        return _Job(
            run=lambda: _call_plugin(
                impl, doc=source.document, file=source.path, text=source.text, config=config
            ),
            late=lambda problem: [_plugin_error(source.path, config, impl.plugin_name, problem)],
        )

    jobs = [batch_job(impl) for impl in batch]
    jobs += [single_job(impl, source, config) for impl in single for source, config in documents]
    return PendingFindings(jobs, timeout)


def batch_plugin_findings(
    documents: Sequence[Checked], *, plugins: pluggy.PluginManager | None = None
) -> list[Finding]:
    """:func:`start_plugin_findings` and wait: every plugin's findings for many documents."""
    return start_plugin_findings(documents, plugins=plugins).wait()
