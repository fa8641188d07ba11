"""Findings carried across an edit, so that what is shown never flickers.

After an edit the server knows the new text's local findings at once, but the registry's
(and plugins') answers come later. Until they do, the last known answers are shown for
what is still there, moved with the text: a registry finding follows its image (the
same reference written the same way, the n-th such one), a plugin finding its line
(lines before and after the edited region keep their findings; lines inside it lose
them until the plugin answers again).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from portside.dockerfile import ImageUse, Position, Range

if TYPE_CHECKING:  # the policy rules load with the first document, not at start-up
    from portside.policy import Edit, Finding, ImageCheck

Key = tuple[int, int]


def use_key(use: ImageUse) -> Key:
    """How an image use is keyed: where it starts (its findings start there too)."""
    return (use.range.start.line, use.range.start.character)


def identities(uses: Iterable[ImageUse]) -> dict[tuple[str, str | None, str | None, int], Key]:
    """Each use by what it says (text, resolved, platform) and its rank among equals."""
    seen: dict[tuple[str, str | None, str | None], int] = {}
    out = {}
    for use in uses:
        what = (use.text, use.resolved, use.platform_resolved)
        rank = seen.get(what, 0)
        seen[what] = rank + 1
        out[(what[0], what[1], what[2], rank)] = use_key(use)
    return out


def _move_edit(edit: Edit | None, old: ImageUse, new: ImageUse) -> Edit | None:
    if edit is None:
        return None
    if edit.range == old.range:
        return replace(edit, range=new.range)
    # An edit of the ARG default the image came from: the same substitution's ARG now.
    for before, after in zip(old.substitutions, new.substitutions, strict=False):
        if before.default_range == edit.range and after.default_range is not None:
            if before.default != after.default:
                return None
            return replace(edit, range=after.default_range)
    return None


def move_check(check: ImageCheck, old: ImageUse, new: ImageUse) -> ImageCheck:
    """``check`` (made for ``old``) as it reads for ``new``, the same image moved."""
    if old.range == new.range and old.substitutions == new.substitutions:
        return replace(check, use=new)  # not moved (an edit elsewhere on the page)
    findings = [
        replace(f, range=new.range, edit=_move_edit(f.edit, old, new)) for f in check.findings
    ]
    return replace(check, use=new, findings=findings)


def origins(old_uses: Sequence[ImageUse], new_uses: Sequence[ImageUse]) -> dict[Key, Key]:
    """Where each image of ``new_uses`` that was there before was: new key -> old key."""
    old_ids = identities(old_uses)
    out = {}
    for identity, key in identities(new_uses).items():
        old_key = old_ids.get(identity)
        if old_key is not None:
            out[key] = old_key
    return out


def carry_checks(
    old_uses: Sequence[ImageUse],
    old_checks: Mapping[Key, ImageCheck],
    new_uses: Sequence[ImageUse],
) -> dict[Key, ImageCheck]:
    """The registry answers of ``old_checks`` for the images of ``new_uses`` that were
    there before, moved to where they are now."""
    if not old_checks:
        return {}
    old_by_key = {use_key(u): u for u in old_uses}
    new_by_key = {use_key(u): u for u in new_uses}
    out: dict[Key, ImageCheck] = {}
    for key, old_key in origins(old_uses, new_uses).items():
        check = old_checks.get(old_key)
        if check is not None:
            out[key] = move_check(check, old_by_key[old_key], new_by_key[key])
    return out


def line_map(old: Sequence[str], new: Sequence[str]) -> dict[int, int]:
    """Old line number -> new line number for the lines an edit left alone: the common
    head and tail of the two texts (an editor's edit is one region)."""
    head = 0
    limit = min(len(old), len(new))
    while head < limit and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < limit - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    mapping = {i: i for i in range(head)}
    shift = len(new) - len(old)
    for i in range(len(old) - tail, len(old)):
        mapping[i] = i + shift
    return mapping


def carry_line_findings(
    findings: Sequence[Finding], old: Sequence[str], new: Sequence[str]
) -> list[Finding]:
    """Per-line findings (a plugin's) moved with their lines; those on edited lines go."""
    if list(old) == list(new):
        return list(findings)
    mapping = line_map(old, new)
    out = []
    for finding in findings:
        start, end = finding.range
        line = mapping.get(start.line)
        last = mapping.get(end.line)
        if line is None or last is None or last - line != end.line - start.line:
            continue
        where = Range(Position(line, start.character), Position(last, end.character))
        out.append(replace(finding, range=where, edit=None))
    return out
