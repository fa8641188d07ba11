"""The features as plain functions: core results in, lsprotocol values out.

Nothing here touches the network or the event loop: the server gathers what the core
says (findings, tags, image info) and these functions only translate it, so each one is
testable without JSON-RPC.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from lsprotocol import types as lsp

from portside import errors, versions
from portside.dockerfile import Arg, Dockerfile, ImageUse, Position, Range, Stage
from portside.images import ImageInfo, human_size
from portside.reference import Reference

if TYPE_CHECKING:  # the policy rules load with the first document, not at start-up
    from portside.policy import Finding, UpdateOption

from . import json_forms
from .commands import COMMAND_PIN_ALL
from .positions import Codec

SOURCE = "portside"

SEVERITY = {
    "error": lsp.DiagnosticSeverity.Error,
    "warning": lsp.DiagnosticSeverity.Warning,
    "info": lsp.DiagnosticSeverity.Information,
    "hint": lsp.DiagnosticSeverity.Hint,
}
# Names that suggest an ARG holds a secret: its value is never shown.
_SECRET_NAME = re.compile(r"(?i)(pass|secret|token|key|credential|auth|pwd)")
_WORD_BREAK = " \t"
MAX_TAG_ITEMS = 500


# --------------------------------------------------------------------------- diagnostics


def to_diagnostics(findings: Iterable[Finding], codec: Codec) -> list[lsp.Diagnostic]:
    out = []
    for finding in findings:
        data: dict[str, str] = {"kind": finding.kind}
        if finding.suggestion:
            data["suggestion"] = finding.suggestion
        out.append(
            lsp.Diagnostic(
                range=codec.range(finding.range),
                message=finding.message,
                severity=SEVERITY.get(finding.severity, lsp.DiagnosticSeverity.Information),
                code=finding.kind,
                source=SOURCE,
                data=data,
            )
        )
    return out


class DiagnosticCache:
    """One document's diagnostics by what they are made of (a finding's shown fields and
    the text of its lines), each made and converted to JSON once (see
    :mod:`lsp_server.json_forms`): an edit changes a few lines, and what the others show
    is neither made nor converted again. Keeps only what the last call returned."""

    def __init__(self) -> None:
        self._made: dict[tuple[Any, ...], lsp.Diagnostic] = {}

    def diagnostics(self, findings: Iterable[Finding], codec: Codec) -> list[lsp.Diagnostic]:
        made: dict[tuple[Any, ...], lsp.Diagnostic] = {}
        out = []
        lines = codec.document
        for finding in findings:
            start, end = finding.range
            key = (
                finding.range,
                finding.kind,
                finding.severity,
                finding.message,
                finding.suggestion,
                lines.line(start.line),
                lines.line(end.line),
                codec.encoding,
            )
            diagnostic = self._made.get(key) or made.get(key)
            if diagnostic is None:
                diagnostic = to_diagnostics([finding], codec)[0]
                json_forms.remember(diagnostic)
            made[key] = diagnostic
            out.append(diagnostic)
        kept = {id(d) for d in made.values()}
        for diagnostic in self._made.values():
            if id(diagnostic) not in kept:
                json_forms.forget(diagnostic)
        self._made = made
        return out

    def clear(self) -> None:
        for diagnostic in self._made.values():
            json_forms.forget(diagnostic)
        self._made = {}


def problem_diagnostics(doc: Dockerfile, codec: Codec) -> list[lsp.Diagnostic]:
    """The parser's own problems (what BuildKit would reject), as errors; those about
    an image are the policy's ``invalid-reference`` findings already."""
    images = {use.range for use in doc.images}
    return [
        lsp.Diagnostic(
            range=codec.range(p.range),
            message=p.message,
            severity=lsp.DiagnosticSeverity.Error,
            code="syntax",
            source=SOURCE,
        )
        for p in doc.problems
        if p.range not in images
    ]


# --------------------------------------------------------------------------- completion

ContextKind = Literal["image", "tag", "digest", "stage-or-image", "arg"]


@dataclass(frozen=True)
class CompletionContext:
    """What the cursor is completing, and the core range the answer replaces."""

    kind: ContextKind
    prefix: str  # the text typed so far (of the part being completed)
    replace: Range
    name: str = ""  # for tag/digest: the image name before ':' / '@'
    use: ImageUse | None = None
    stage: int | None = None  # the stage the cursor is in


def _word_at(line: str, character: int) -> tuple[int, int]:
    start = character
    while start > 0 and line[start - 1] not in _WORD_BREAK:
        start -= 1
    end = character
    while end < len(line) and line[end] not in _WORD_BREAK:
        end += 1
    return start, end


def _stage_at(doc: Dockerfile, line: int) -> int | None:
    current = None
    for stage in doc.stages:
        if stage.range.start.line <= line:
            current = stage.index
    return current


def completion_context(doc: Dockerfile, position: Position) -> CompletionContext | None:
    text = doc.document.line(position.line)
    character = min(position.character, len(text))
    before = text[:character]
    stage = _stage_at(doc, position.line)

    arg = re.search(r"\$\{([A-Za-z0-9_]*)\Z", before) or re.search(
        r"\$([A-Za-z_][A-Za-z0-9_]*)\Z", before
    )
    if arg:
        end = character
        while end < len(text) and (text[end].isalnum() or text[end] == "_"):
            end += 1
        return CompletionContext(
            "arg",
            arg.group(1),
            Range(Position(position.line, arg.start(1)), Position(position.line, end)),
            stage=stage,
        )

    instruction = doc.instruction_at(position)
    if instruction is None:
        return None
    keyword = instruction.keyword
    if keyword == "ARG":
        return _default_context(doc, position)
    head = instruction.keyword_range
    if position.line == head.start.line and character <= head.end.character:
        return None  # on the keyword itself
    start, end = _word_at(text, character)
    word = text[start:end]
    value_start = start
    kind: ContextKind
    if keyword == "FROM":
        if word.startswith("--"):
            return None
        use = doc.image_at(position)
        if use is None:
            # An empty image slot: everything before the cursor is FROM and its flags.
            words = before[instruction.keyword_range.end.character :].split()
            if position.line != instruction.keyword_range.start.line or any(
                not w.startswith("--") for w in words[: -1 if word else None]
            ):
                return None
        elif use.kind != "from":
            return None
        kind = "image"
    elif keyword in ("COPY", "ADD") and word.startswith("--from="):
        value_start = start + len("--from=")
        kind = "stage-or-image"
    elif keyword == "RUN" and word.startswith("--mount="):
        piece = before[start:]
        found = piece.rfind("from=")
        if found < 0 or "," in piece[found:]:
            return None
        value_start = start + found + len("from=")
        comma = text.find(",", value_start)
        end = comma if 0 <= comma < end else end
        kind = "stage-or-image"
    else:
        return None
    if character < value_start:
        return None
    use = doc.image_at(position)
    return _split(
        kind,
        text[value_start:end],
        text[value_start:character],
        value_start,
        position.line,
        use,
        stage,
    )


def _split(
    kind: ContextKind,
    value: str,
    typed: str,
    value_start: int,
    line: int,
    use: ImageUse | None,
    stage: int | None,
) -> CompletionContext:
    """What is being completed in an image reference ``value`` written from column
    ``value_start``, of which ``typed`` precedes the cursor: the name, a tag or a digest."""
    end = value_start + len(value)
    # Past the last '/', ':' starts a tag and '@' a digest.
    slash = typed.rfind("/")
    at = typed.find("@", slash + 1)
    colon = typed.find(":", slash + 1)

    def after(kind: ContextKind, sep: int, stop: int) -> CompletionContext:
        """The tag or digest typed after the separator at ``sep``, up to ``stop``;
        the image name is what precedes the separator."""
        return CompletionContext(
            kind,
            typed[sep + 1 :],
            Range(Position(line, value_start + sep + 1), Position(line, stop)),
            name=typed[:sep],
            use=use,
            stage=stage,
        )

    if at >= 0:
        return after("digest", at, end)
    if colon >= 0:
        tag_end = value.find("@", colon)
        return after("tag", colon, value_start + (tag_end if tag_end >= 0 else len(value)))
    name_end = len(value)
    for sep in (":", "@"):
        index = value.find(sep, len(typed))
        if 0 <= index < name_end and "/" not in value[index:]:
            name_end = index
    return CompletionContext(
        kind,
        typed,
        Range(Position(line, value_start), Position(line, value_start + name_end)),
        use=use,
        stage=stage,
    )


def image_of_default(doc: Dockerfile, position: Position) -> tuple[ImageUse, Arg] | None:
    """The image a ``FROM`` builds from the ``ARG`` whose default is at ``position``
    (``ARG BASE=python:3.12`` for ``FROM ${BASE}``), and that ARG: the default is that
    image's line too, for hover, completion and fixes."""
    for arg in doc.args:
        where = arg.default_range
        if where is None or not (
            where.start <= position <= where.end and where.start.line == where.end.line
        ):
            continue
        for use in doc.images:
            if (
                use.kind == "from"
                and use.is_image
                and any(sub.default_range == where for sub in use.substitutions)
            ):
                return use, arg
    return None


def _default_context(doc: Dockerfile, position: Position) -> CompletionContext | None:
    """Completion inside an ARG default that a FROM uses: the whole image
    (``FROM ${BASE}``) or its tag (``FROM python:${PY}``)."""
    found = image_of_default(doc, position)
    if found is None:
        return None
    use, arg = found
    where, default = arg.default_range, arg.default
    if where is None or default is None or default[:1] in ("'", '"'):
        return None
    typed = default[: position.character - where.start.character]
    stage = _stage_at(doc, position.line)
    sub = next(s for s in use.substitutions if s.default_range == where)
    written = use.text
    start = sub.range.start.character - use.range.start.character
    stop = sub.range.end.character - use.range.start.character
    if sub.range.start.line != use.range.start.line:
        return None
    before = written[:start].removesuffix("${").removesuffix("$")
    rest = written[stop:].removeprefix("}")
    if not before and not rest:  # the ARG is the whole image
        return _split("image", default, typed, where.start.character, where.start.line, use, stage)
    if before.endswith(":") and not rest and "/" not in default:  # the ARG is the tag
        return CompletionContext("tag", typed, where, name=before[:-1], use=use, stage=stage)
    return None


def image_reference(context: CompletionContext) -> Reference | None:
    """The repository the tag/digest being completed belongs to."""
    name = context.name
    if "$" in name:
        use = context.use
        if use is None or use.resolved is None:
            return None
        name = use.resolved
        for sep in ("@",):
            name = name.split(sep, 1)[0]
        slash = name.rfind("/")
        colon = name.find(":", slash + 1)
        if colon >= 0:
            name = name[:colon]
    try:
        return Reference.parse(name).repository_ref()
    except errors.InvalidReference:
        return None


def current_tag(context: CompletionContext) -> str | None:
    """The tag written at the cursor (the whole of it, not only what precedes it)."""
    use = context.use
    if use is None or use.resolved is None:
        return None
    try:
        return Reference.parse(use.resolved).tag
    except errors.InvalidReference:
        return None


def _edit(codec: Codec, where: Range, text: str) -> lsp.TextEdit:
    return lsp.TextEdit(range=codec.range(where), new_text=text)


def catalog_registry(context: CompletionContext, registries: Iterable[str]) -> str | None:
    """The configured registry whose repositories the cursor is typing (``host/…``)."""
    host, slash, _ = context.prefix.partition("/")
    if not slash:
        return None
    return host if host in set(registries) else None


def image_name_items(
    context: CompletionContext,
    workspace: Iterable[str],
    well_known: Iterable[str],
    codec: Codec,
    *,
    recent: Iterable[str] = (),
    catalog: Iterable[str] = (),
    registries: Iterable[str] = (),
) -> list[lsp.CompletionItem]:
    """Image names: recently used first, then the catalog of the registry being typed
    (``catalog``: full names, ``host/repo``), the workspace's, official images, and the
    configured registries themselves (``host/``)."""
    items: dict[str, lsp.CompletionItem] = {}
    for group, names, detail in (
        ("0", recent, "recently used"),
        ("1", catalog, "in the registry's catalog"),
        ("2", workspace, "used in this workspace"),
        ("3", well_known, "official image"),
        ("4", [f"{r}/" for r in registries], "configured registry"),
    ):
        for index, name in enumerate(names):
            if name in items or name == context.prefix:
                continue  # what is typed already is no candidate
            items[name] = lsp.CompletionItem(
                label=name,
                kind=lsp.CompletionItemKind.Folder
                if group == "4"
                else lsp.CompletionItemKind.Module,
                detail=detail,
                sort_text=f"{group}{index:04d}" if group in "01" else f"{group}{name}",
                text_edit=_edit(codec, context.replace, name),
            )
    return list(items.values())


def stage_items(
    doc: Dockerfile, context: CompletionContext, codec: Codec
) -> list[lsp.CompletionItem]:
    out = []
    for stage in doc.stages:
        if stage.name is None or (context.stage is not None and stage.index >= context.stage):
            continue
        out.append(
            lsp.CompletionItem(
                label=stage.name,
                kind=lsp.CompletionItemKind.Reference,
                detail=f"stage {stage.index}" + (f" (FROM {stage.base})" if stage.base else ""),
                sort_text=f"0{stage.index:04d}",
                text_edit=_edit(codec, context.replace, stage.name),
            )
        )
    return out


def visible_args(doc: Dockerfile, stage: int | None) -> list[Arg]:
    """ARGs in scope at a stage (global ones when outside any stage), last one winning."""
    found: dict[str, Arg] = {}
    for arg in doc.args:
        if arg.stage is None or arg.stage == stage:
            found[arg.name] = arg
    return list(found.values())


def shown_value(arg: Arg) -> str | None:
    if arg.default is None:
        return None
    return "***" if _SECRET_NAME.search(arg.name) else arg.default


def arg_items(
    doc: Dockerfile, context: CompletionContext, codec: Codec
) -> list[lsp.CompletionItem]:
    out = []
    for arg in visible_args(doc, context.stage):
        value = shown_value(arg)
        out.append(
            lsp.CompletionItem(
                label=arg.name,
                kind=lsp.CompletionItemKind.Variable,
                detail=f"ARG {arg.name}" + (f"={value}" if value is not None else ""),
                text_edit=_edit(codec, context.replace, arg.name),
            )
        )
    return out


def order_tags(
    tags: Sequence[str], current: str | None, scheme: versions.VersionScheme
) -> list[str]:
    """Newest first, with the current tag's line (same variant, same kind) first."""
    ordered = versions.sort_tags(tags)
    parsed = scheme.parse(current) if current else None
    if parsed is None:
        return ordered
    line: list[str] = []
    rest: list[str] = []
    for tag in ordered:
        candidate = scheme.parse(tag)
        (
            line if candidate is not None and scheme.is_compatible(parsed, candidate) else rest
        ).append(tag)
    return line + rest


def tag_items(
    context: CompletionContext,
    ordered: Sequence[str],
    details: Mapping[str, str],
    codec: Codec,
    *,
    image: str,
    limit: int = MAX_TAG_ITEMS,
) -> tuple[list[lsp.CompletionItem], bool]:
    """Items for ``ordered`` tags (already sorted); True when the list was cut."""
    prefix = context.prefix
    chosen = [t for t in ordered if t.startswith(prefix)] if prefix else list(ordered)
    cut = len(chosen) > limit
    edit_range = codec.range(context.replace)
    items = [
        lsp.CompletionItem(
            label=tag,
            kind=lsp.CompletionItemKind.Value,
            detail=details.get(tag),
            sort_text=f"{index:05d}",
            filter_text=tag,
            text_edit=lsp.TextEdit(range=edit_range, new_text=tag),
            data={"image": f"{image}:{tag}"},
        )
        for index, tag in enumerate(chosen[:limit])
    ]
    return items, cut


def digest_item(
    context: CompletionContext, digest: str, tag: str, codec: Codec
) -> lsp.CompletionItem:
    return lsp.CompletionItem(
        label=digest,
        kind=lsp.CompletionItemKind.Constant,
        detail=f"what {tag} points to now",
        text_edit=_edit(codec, context.replace, digest),
    )


# --------------------------------------------------------------------------- image text


def age(created: str | None, now: dt.datetime | None = None) -> str | None:
    from portside.lifecycle import parse_date  # the core's one RFC 3339 reader

    when = parse_date(created) if created else None
    if when is None:
        return None
    seconds = ((now or dt.datetime.now(dt.timezone.utc)) - when).total_seconds()
    if seconds < 0:
        return "just now"
    for unit, size in (("year", 31536000), ("month", 2592000), ("day", 86400), ("hour", 3600)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''} old"
    return "less than an hour old"


def info_detail(info: ImageInfo) -> str:
    """One line for a completion item: digest, age, platforms."""
    parts = [f"{info.digest.short}…"]
    old = age(info.created)
    if old:
        parts.append(old)
    if info.platforms:
        parts.append(
            ", ".join(str(p) for p in info.platforms[:4]) + ("…" if len(info.platforms) > 4 else "")
        )
    return " · ".join(parts)


KEY_LABELS = (
    "org.opencontainers.image.version",
    "org.opencontainers.image.source",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.title",
)


# Findings about the image itself that a hover repeats: its publisher's word on it.
HOVER_KINDS = ("end-of-life", "end-of-life-soon", "vulnerable")


def hover_markdown(
    ref: Reference,
    info: ImageInfo | None,
    newer: Sequence[str],
    problem: str | None = None,
    notes: Sequence[str] = (),
) -> str:
    lines = [f"**{ref.familiar}**", "", f"`{ref}`"]
    if notes:
        lines += ["", *(f"**⚠ {note}**" for note in notes)]
    if info is not None:
        lines += ["", f"- digest: `{info.digest}`"]
        created = info.created or "unknown"
        old = age(info.created)
        lines.append(f"- created: {created}" + (f" ({old})" if old else ""))
        if info.platforms:
            lines.append("- platforms: " + ", ".join(f"`{p}`" for p in info.platforms))
        lines.append(
            f"- compressed size: {human_size(info.size)}"
            + (f" ({info.platform})" if info.platform else "")
        )
        for key in KEY_LABELS:
            if key in info.labels:
                lines.append(f"- {key.rsplit('.', 1)[1]}: `{info.labels[key]}`")
    if newer:
        shown = ", ".join(f"`{t}`" for t in newer[:8]) + (" …" if len(newer) > 8 else "")
        lines += ["", f"Newer in its line: {shown}"]
    if problem:
        lines += ["", f"_{problem}_"]
    return "\n".join(lines)


def stage_hover(stage: Stage) -> str:
    name = stage.name or f"stage {stage.index}"
    return f"**stage {name}** (line {stage.range.start.line + 1})" + (
        f"\n\nFROM `{stage.base}`" if stage.base else ""
    )


# --------------------------------------------------------------------------- navigation


def document_symbols(doc: Dockerfile, codec: Codec) -> list[lsp.DocumentSymbol]:
    def arg_symbol(arg: Arg) -> lsp.DocumentSymbol:
        value = shown_value(arg)
        return lsp.DocumentSymbol(
            name=arg.name,
            kind=lsp.SymbolKind.Variable,
            detail=value,
            range=codec.range(arg.range),
            selection_range=codec.range(arg.name_range),
        )

    out = [arg_symbol(a) for a in doc.global_args]
    for stage in doc.stages:
        selection = stage.name_range or stage.instruction.keyword_range
        out.append(
            lsp.DocumentSymbol(
                name=stage.name or f"stage {stage.index}",
                kind=lsp.SymbolKind.Class,
                detail=stage.base,
                range=codec.range(stage.range),
                selection_range=codec.range(selection),
                children=[arg_symbol(a) for a in stage.args],
            )
        )
    return out


_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")


def _var_at(doc: Dockerfile, position: Position) -> tuple[str, Range] | None:
    text = doc.document.line(position.line)
    for match in _VAR.finditer(text):
        name = match.group(1) or match.group(2)
        start = match.start(1) if match.group(1) else match.start(2)
        if start - 2 <= position.character <= start + len(name):
            return name, Range(
                Position(position.line, start), Position(position.line, start + len(name))
            )
    return None


def _arg_named_at(doc: Dockerfile, position: Position) -> str | None:
    for arg in doc.args:
        if arg.name_range.contains(position):
            return arg.name
    found = _var_at(doc, position)
    return found[0] if found else None


def _stage_target(doc: Dockerfile, position: Position) -> Stage | None:
    use = doc.image_at(position)
    if use is not None and use.is_stage_reference and use.stage_reference is not None:
        return doc.stages[use.stage_reference]
    for stage in doc.stages:
        if stage.name_range is not None and stage.name_range.contains(position):
            return stage
    return None


def definition(doc: Dockerfile, position: Position, uri: str, codec: Codec) -> list[lsp.Location]:
    stage = _stage_target(doc, position)
    if stage is not None and stage.name_range is not None:
        return [lsp.Location(uri=uri, range=codec.range(stage.name_range))]
    name = _arg_named_at(doc, position)
    if name is None:
        return []
    scope = _stage_at(doc, position.line)
    # The declaration in scope: the stage's own, else the global one.
    candidates = [
        a for a in doc.args if a.name == name and a.stage == scope and a.range.start <= position
    ]
    candidates = candidates or [a for a in doc.args if a.name == name and a.stage is None]
    return [lsp.Location(uri=uri, range=codec.range(a.name_range)) for a in candidates[-1:]]


def references(
    doc: Dockerfile, position: Position, uri: str, codec: Codec, *, include_declaration: bool
) -> list[lsp.Location]:
    stage = _stage_target(doc, position)
    out: list[Range] = []
    if stage is not None:
        if include_declaration and stage.name_range is not None:
            out.append(stage.name_range)
        out += [
            u.range for u in doc.images if u.stage_reference == stage.index and u.is_stage_reference
        ]
    else:
        name = _arg_named_at(doc, position)
        if name is None:
            return []
        if include_declaration:
            out += [a.name_range for a in doc.args if a.name == name]
        for line_no, text in enumerate(doc.document.lines):
            if "$" not in text:
                continue
            for match in _VAR.finditer(text):
                found = match.group(1) or match.group(2)
                if found == name:
                    start = match.start(1) if match.group(1) else match.start(2)
                    out.append(
                        Range(Position(line_no, start), Position(line_no, start + len(name)))
                    )
    return [lsp.Location(uri=uri, range=codec.range(r)) for r in out]


def image_refs(images: Iterable[ImageUse]) -> Iterator[tuple[int, ImageUse, Reference]]:
    """The registry images among ``images`` (no stages, no scratch): index, use, parsed
    reference. One that does not parse is passed over; the diagnostics report it."""
    for index, use in enumerate(images):
        if not use.is_image or use.resolved is None:
            continue
        try:
            ref = Reference.parse(use.resolved)
        except errors.InvalidReference:
            continue
        yield index, use, ref


def literal_image_names(doc: Dockerfile) -> set[str]:
    """Familiar names of the images written out (no ARG in them): the workspace's
    images that completion offers."""
    return {ref.familiar_name for _, use, ref in image_refs(doc.images) if "$" not in use.text}


def registry_page(ref: Reference) -> str | None:
    """The image's page on its registry's website, where there is a well-known one."""
    if ref.registry == "docker.io":
        repo = ref.repository
        if repo.startswith("library/") and repo.count("/") == 1:
            return f"https://hub.docker.com/_/{repo.split('/', 1)[1]}"
        return f"https://hub.docker.com/r/{repo}"
    if ref.registry == "quay.io":
        return f"https://quay.io/repository/{ref.repository}"
    if ref.registry in ("ghcr.io", "gcr.io", "mcr.microsoft.com", "public.ecr.aws"):
        if ref.registry == "mcr.microsoft.com":
            return f"https://mcr.microsoft.com/en-us/artifact/mar/{ref.repository}"
        return f"https://{ref.registry}/{ref.repository}"
    return None


def document_links(doc: Dockerfile, codec: Codec) -> list[lsp.DocumentLink]:
    out = []
    for _, use, ref in image_refs(doc.images):
        target = registry_page(ref)
        if target:
            out.append(
                lsp.DocumentLink(
                    range=codec.range(use.range),
                    target=target,
                    tooltip=f"{ref.familiar_name} on {ref.registry}",
                )
            )
    return out


def inlay_hints(
    doc: Dockerfile,
    findings: Iterable[Finding],
    infos: Mapping[int, ImageInfo],
    codec: Codec,
    window: Range | None = None,
) -> list[lsp.InlayHint]:
    """After each image: its age (when known) and the newest version in its line."""
    stale: dict[tuple[int, int], str] = {}
    for finding in findings:
        if finding.kind == "stale" and finding.suggestion:
            newest = finding.suggestion.rsplit(":", 1)[-1].split("@", 1)[0]
            stale[image_key(finding.range)] = newest
    out = []
    for index, use in enumerate(doc.images):
        if not use.is_image:
            continue
        if window is not None and not (
            window.start.line <= use.range.start.line <= window.end.line
        ):
            continue
        parts: list[str] = []
        info = infos.get(index)
        old = age(info.created) if info is not None else None
        if old:
            parts.append(old)
        available = stale.get(image_key(use.range))
        if available:
            parts.append(f"{available} available")
        if parts:
            out.append(
                lsp.InlayHint(
                    position=codec.position(use.range.end),
                    label=" · ".join(parts),
                    padding_left=True,
                )
            )
    return out


# --------------------------------------------------------------------------- code actions

_TITLES = {
    "stale": "Update to {}",
    "variant-update": "Move to variant {}",
    "tag-moved": "Refresh the pinned digest ({})",
    "unpinned": "Pin to digest ({})",
    "latest": "Pin to digest ({})",
}


def image_key(where: Range) -> tuple[int, int]:
    """How an image is keyed in ``pin_edits`` and ``updates``: by where it starts, which
    is where the findings about it start too."""
    return (where.start.line, where.start.character)


def _overlaps(a: Range, b: Range) -> bool:
    """Line-wise: a cursor anywhere on an image's line gets its fixes."""
    return not (a.end.line < b.start.line or b.end.line < a.start.line)


def findings_at(doc: Dockerfile, findings: Sequence[Finding], window: Range) -> list[Finding]:
    """The findings on the window's lines, and those of images whose ``ARG`` default
    is on them (``ARG BASE=…`` is the line a fix of ``FROM ${BASE}`` edits)."""
    images = set()
    for use in doc.images:
        for sub in use.substitutions:
            if sub.default_range is not None and _overlaps(sub.default_range, window):
                images.add(image_key(use.range))
    return [f for f in findings if _overlaps(f.range, window) or image_key(f.range) in images]


def code_actions(
    doc: Dockerfile,
    findings: Sequence[Finding],
    window: Range,
    uri: str,
    version: int | None,
    codec: Codec,
    *,
    pin_edits: Mapping[tuple[int, int], tuple[Range, str, str]] | None = None,
    updates: Mapping[tuple[int, int], Sequence[UpdateOption]] | None = None,
) -> list[lsp.CodeAction]:
    """Quick fixes from the findings' edits, a suppress comment per kind, and pin-all.

    ``pin_edits`` maps an image's start to (range, new text, suggestion) for images the
    server could compute a pin for (from the core's pin plan). ``updates`` maps an
    image's start to the core's update options (:func:`portside.policy.update_options`):
    a ``stale`` finding then offers one action per step size, a ``variant-update`` one
    the variant, instead of the finding's single edit.
    """
    out: list[lsp.CodeAction] = []
    here = findings_at(doc, findings, window)

    def workspace_edit(edits: list[lsp.TextEdit]) -> lsp.WorkspaceEdit:
        return lsp.WorkspaceEdit(
            document_changes=[
                lsp.TextDocumentEdit(
                    text_document=lsp.OptionalVersionedTextDocumentIdentifier(
                        uri=uri, version=version
                    ),
                    edits=list(edits),
                )
            ]
        )

    diagnostics = {id(f): to_diagnostics([f], codec)[0] for f in here}
    for finding in here:
        options = (updates or {}).get(image_key(finding.range))
        levels = ("variant",) if finding.kind == "variant-update" else ("patch", "minor", "major")
        chosen = [o for o in options or () if o.level in levels]
        if finding.kind in ("stale", "variant-update") and chosen:
            for option in chosen:
                title = (
                    f"Move to variant {option.suggestion}"
                    if option.level == "variant"
                    else f"Update to newest {option.level}: {option.suggestion}"
                )
                out.append(
                    lsp.CodeAction(
                        title=title,
                        kind=lsp.CodeActionKind.QuickFix,
                        diagnostics=[diagnostics[id(finding)]],
                        is_preferred=finding.kind == "stale"
                        and option.suggestion == finding.suggestion,
                        edit=workspace_edit(
                            [_edit(codec, option.edit.range, option.edit.new_text)]
                        ),
                    )
                )
        elif finding.edit is not None:
            title = _TITLES.get(finding.kind, "Apply {}").format(
                finding.suggestion or finding.edit.new_text
            )
            out.append(
                lsp.CodeAction(
                    title=title,
                    kind=lsp.CodeActionKind.QuickFix,
                    diagnostics=[diagnostics[id(finding)]],
                    is_preferred=finding.kind in ("stale", "tag-moved"),
                    edit=workspace_edit([_edit(codec, finding.edit.range, finding.edit.new_text)]),
                )
            )
        elif finding.kind in ("unpinned", "latest") and pin_edits:
            pin = pin_edits.get(image_key(finding.range))
            if pin is not None:
                where, new_text, suggestion = pin
                out.append(
                    lsp.CodeAction(
                        title=_TITLES[finding.kind].format(
                            suggestion.rsplit("@", 1)[-1][:19] + "…"
                        ),
                        kind=lsp.CodeActionKind.QuickFix,
                        diagnostics=[diagnostics[id(finding)]],
                        edit=workspace_edit([_edit(codec, where, new_text)]),
                    )
                )
    seen: set[tuple[int, str]] = set()
    for finding in here:
        line = finding.range.start.line
        if (line, finding.kind) in seen:
            continue
        seen.add((line, finding.kind))
        indent = re.match(r"[ \t]*", doc.document.line(line))
        comment = f"{indent.group(0) if indent else ''}# portside: ignore={finding.kind}\n"
        out.append(
            lsp.CodeAction(
                title=f"Ignore {finding.kind} here (# portside: ignore={finding.kind})",
                kind=lsp.CodeActionKind.QuickFix,
                diagnostics=[diagnostics[id(finding)]],
                edit=workspace_edit(
                    [
                        lsp.TextEdit(
                            range=lsp.Range(
                                start=lsp.Position(line=line, character=0),
                                end=lsp.Position(line=line, character=0),
                            ),
                            new_text=comment,
                        )
                    ]
                ),
            )
        )
    if any(u.is_image for u in doc.images):
        out.append(
            lsp.CodeAction(
                title="Pin every image in this file to its digest",
                kind=lsp.CodeActionKind.Source,
                command=lsp.Command(
                    title="Pin all images", command=COMMAND_PIN_ALL, arguments=[uri]
                ),
            )
        )
    return out
