"""``portside pin``: rewrite image references to ``tag@digest``, keeping every other byte.

A file is rewritten only when every image in it could be resolved and the rewritten
text parses back to exactly the references intended; otherwise it is left untouched
and the reasons are reported.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from portside import errors, versions
from portside.config import LEVELS, PolicyConfig
from portside.dockerfile import ImageUse, parse
from portside.policy import Edit, apply_edits, ignored_kinds, image_scheme, retarget
from portside.reference import Digest, Reference
from portside.updates import without_same_image

if TYPE_CHECKING:
    from portside.cache import CachedRegistry


@dataclass(frozen=True)
class Change:
    line: int  # 1-based
    old: str
    new: str


@dataclass
class PinPlan:
    """What ``pin`` would do to one file."""

    file: str
    text: str
    new_text: str | None = None  # None: nothing to write (no change, or problems)
    changes: list[Change] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # Those of ``problems`` that mean no registry answered (offline, down): a gate may
    # let them pass (see portside.verdict); the file is left as it is either way.
    unchecked: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.new_text is not None and self.new_text != self.text


def levels_up_to(level: str | None) -> tuple[str, ...]:
    """``patch`` -> (patch,), ``minor`` -> (minor, patch), ``major`` -> all."""
    if level is None:
        return ()
    if level not in LEVELS:
        raise errors.UsageError(f"unknown update level {level!r}", hint="use patch, minor or major")
    return LEVELS[LEVELS.index(level) :]


async def _target(
    use: ImageUse,
    ref: Reference,
    cached: CachedRegistry,
    config: PolicyConfig,
    update: str | None,
) -> tuple[str, Digest]:
    policy = config.for_image(ref.name, ref.familiar_name)
    if policy.query:
        from portside.query import resolve_one

        result = await resolve_one(policy.query, cached)
        if result.reference.repository_ref() != ref.repository_ref():
            raise errors.UsageError(
                f"the configured query answers {result.reference.familiar_name}, "
                f"not {ref.familiar_name}",
                hint="make the query's source the image's own repository",
            )
        # The query's digest may come from a cached entry: pin writes only what the
        # registry (or verified manifest bytes) confirm.
        tagged = result.reference.repository_ref().with_tag(result.tag)
        return result.tag, (await cached.resolve_confirmed(tagged)).digest
    tag = ref.tag or "latest"
    levels = levels_up_to(update)
    if levels and ref.tag:
        allowed = tuple(level for level in levels if level in policy.update_levels)
        scheme = image_scheme(ref, policy)
        tags = await cached.tags(ref.repository_ref())
        tags = await without_same_image(cached, ref, tags, scheme)
        newer = versions.newer_in_line(ref.tag, tags, scheme=scheme, allow_levels=allowed)
        # The newest the level allows whose image its publisher has not retired.
        for candidate in (*newer, ref.tag):
            tagged = Reference(ref.registry, ref.repository, candidate)
            digest = (await cached.resolve_confirmed(tagged)).digest
            if not await _retired(cached, tagged.with_digest(digest)):
                return candidate, digest
        if newer:
            tag = newer[0]  # every one is retired: the newest, which check reports
    tagged = Reference(ref.registry, ref.repository, tag)
    return tag, (await cached.resolve_confirmed(tagged)).digest


async def _retired(cached: CachedRegistry, ref: Reference) -> bool:
    from portside import lifecycle

    try:
        status = await lifecycle.lifecycle_of(cached, ref)
    except errors.PortsideError:
        return False  # what is attached could not be read: the image itself is fine
    eol = status.end_of_life
    return eol is not None and eol.passed(lifecycle.utc_now())


async def plan_pin(
    text: str,
    *,
    file: str,
    cached: CachedRegistry,
    config: PolicyConfig,
    update: str | None = None,
) -> PinPlan:
    plan = PinPlan(file, text)
    doc = parse(text)
    lines = text.splitlines()
    work: list[tuple[ImageUse, Reference]] = []
    for use in doc.images:
        if use.is_stage_reference or use.is_scratch:
            continue
        ignore = ignored_kinds(lines, use.range.start.line) or frozenset()
        if "*" in ignore or "unpinned" in ignore:
            continue
        line = use.range.start.line + 1
        if use.resolved is None:
            plan.problems.append(
                f"line {line}: {use.text} depends on a build argument with no default"
            )
            continue
        try:
            work.append((use, Reference.parse(use.resolved)))
        except errors.InvalidReference as exc:
            plan.problems.append(f"line {line}: {exc.message}")

    async def one(use: ImageUse, ref: Reference) -> tuple[str, Digest] | errors.PortsideError:
        try:
            return await _target(use, ref, cached, config, update)
        except errors.PortsideError as exc:
            return exc

    results = await asyncio.gather(*(one(use, ref) for use, ref in work))
    edits: list[Edit] = []
    expected: dict[int, str] = {}
    for (use, ref), result in zip(work, results, strict=True):
        line = use.range.start.line + 1
        if isinstance(result, errors.PortsideError):
            plan.problems.append(f"line {line}: {use.text}: {result.message}")
            if errors.is_unreachable(result):
                plan.unchecked.append(plan.problems[-1])
            continue
        tag, digest = result
        if ref.digest == digest and (ref.tag or "latest") == tag:
            continue
        edit = retarget(use, ref, tag, digest)
        if edit is None and ref.tag is None and "${" not in use.text:
            edit = Edit(use.range, f"{use.text}:latest@{digest}")
        if edit is None:
            plan.problems.append(
                f"line {line}: cannot rewrite {use.text} safely; pin it by hand to "
                f"{ref.familiar_name}:{tag}@{digest}"
            )
            continue
        edits.append(edit)
        new = f"{ref.familiar_name}:{tag}@{digest}"
        expected[use.range.start.line] = str(Reference.parse(new))
        plan.changes.append(Change(line, use.resolved or use.text, new))
    if plan.problems or not edits:
        return plan
    new_text = apply_edits(text, edits)
    # Never write what we cannot read back: every rewritten image must now resolve to
    # exactly the reference intended.
    after = {
        u.range.start.line: u.resolved
        for u in parse(new_text).images
        if not (u.is_stage_reference or u.is_scratch)
    }
    for line_index, wanted in expected.items():
        got = after.get(line_index)
        if _normal(got) != wanted:
            plan.problems.append(
                f"line {line_index + 1}: the rewritten reference would read {got!r}, "
                f"not {wanted!r}; file left unchanged"
            )
    if not plan.problems:
        plan.new_text = new_text
    return plan


def _normal(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return str(Reference.parse(text))
    except errors.InvalidReference:
        return None
