"""The Dockerfile model: features, positions, never raising, and BuildKit agreement."""

from __future__ import annotations

import random
import re
from pathlib import Path

import dockerfile as dockerfile_pkg  # BuildKit's Go parser, wrapped (the dev extra)
import pytest

from portside.dockerfile import Dockerfile, Document, Position, Range, parse

CORPUS = Path(__file__).parent / "data" / "dockerfiles"
CORPUS_FILES = sorted(p for p in CORPUS.iterdir() if p.suffix not in (".tsv", ".md"))


def read(path: Path) -> str:
    # newline="" keeps CRLF and the BOM exactly as on disk.
    return path.read_bytes().decode("utf-8")


def text_at(doc: Document, where: Range) -> str:
    return doc.text[doc.offset_at(where.start) : doc.offset_at(where.end)]


# --------------------------------------------------------------------------- cross-check


def buildkit_view(text: str) -> list[tuple[object, ...]]:
    """What BuildKit says about each instruction, in our 0-based terms."""
    rows = []
    for c in dockerfile_pkg.parse_string(text):
        heredocs = tuple((h.name, h.content) for h in c.heredocs)
        rows.append(
            (
                (c.cmd or "").upper(),
                (c.sub_cmd or "").upper() or None,
                c.start_line - 1,
                c.end_line - 1,
                c.json,
                c.flags,
                heredocs,
            )
        )
    return rows


def our_view(model: Dockerfile) -> list[tuple[object, ...]]:
    rows = []
    for ins in model.instructions:
        inner = ins.onbuild or ins
        flags = tuple(f"--{f.name}" + ("" if f.value is None else f"={f.value}") for f in ins.flags)
        if ins.onbuild is not None:
            flags = tuple(
                f"--{f.name}" + ("" if f.value is None else f"={f.value}") for f in inner.flags
            )
        heredocs = tuple((h.name, h.body) for h in inner.heredocs)
        sub = ins.onbuild.keyword if ins.onbuild else None
        rows.append(
            (ins.keyword, sub, ins.line_start, ins.line_end, inner.is_json, flags, heredocs)
        )
    return rows


def test_corpus_is_all_there_and_buildkit_parses_all_of_it() -> None:
    # The counts below are what the cross-check covers; a missing file would shrink it.
    assert len(CORPUS_FILES) == 103
    total = sum(len(dockerfile_pkg.parse_string(read(p))) for p in CORPUS_FILES)
    assert total == 2198


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name)
def test_corpus_instructions_match_buildkit(path: Path) -> None:
    text = read(path)
    assert our_view(parse(text)) == buildkit_view(text)


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name)
def test_corpus_from_images_stages_and_args_match_buildkit(path: Path) -> None:
    text = read(path)
    model = parse(text)
    commands = dockerfile_pkg.parse_string(text)
    froms = [c for c in commands if c.cmd.upper() == "FROM"]
    assert [s.base for s in model.stages] == [c.value[0] if c.value else None for c in froms]
    names = [c.value[2].lower() if len(c.value) >= 3 else None for c in froms]
    assert [s.name for s in model.stages] == names
    # The image range holds exactly the text BuildKit reports.
    for stage in model.stages:
        if stage.image is not None:
            assert text_at(model.document, stage.image.range) == stage.image.text
    bk_args = [w for c in commands if c.cmd.upper() == "ARG" for w in c.value]
    ours = [a.name + ("" if a.default is None else f"={a.default}") for a in model.args]
    assert ours == bk_args


# --------------------------------------------------------------------------- never raises

MUTATIONS = [
    "\\", "`", "<<", "<<EOF", "<<-EOF", "EOF", "$", "${", "}", '"', "'", "\r", "\n", "\n\n",
    "#", "# escape=`\n", "--", "=", " ", "\t", "[", "]", "FROM ", "AS ", "\\\n", "ARG X",
    ":-", "\x00", "😀", "\ufeff", "COPY --from=", "RUN --mount=from=x,", "${X:+", "\udc80",
]  # fmt: skip


def mutate(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 4)):
        op, at = rng.randrange(4), rng.randint(0, len(text))
        if op == 0:
            text = text[:at] + rng.choice(MUTATIONS) + text[at:]
        elif op == 1:
            text = text[:at] + text[at + rng.randint(1, 20) :]
        elif op == 2:
            text = text[:at]  # half-typed: the user is somewhere in the middle
        else:
            lines = text.split("\n")
            lines.insert(rng.randrange(len(lines) + 1), rng.choice(lines))
            text = "\n".join(lines)
    return text


def check_invariants(model: Dockerfile) -> None:
    doc = model.document
    last = len(doc.lines) - 1

    def inside(where: Range) -> None:
        assert where.start <= where.end
        for p in (where.start, where.end):
            assert 0 <= p.line <= last
            assert 0 <= p.character <= len(doc.lines[p.line])

    previous_end = -1
    for ins in model.instructions:
        inside(ins.range)
        inside(ins.keyword_range)
        inside(ins.arguments_range)
        assert previous_end < ins.line_start <= ins.line_end
        previous_end = ins.line_end
        for flag in ins.flags:
            inside(flag.range)
    for image in model.images:
        inside(image.range)
        for sub in image.substitutions:
            inside(sub.range)
    for arg in model.args:
        inside(arg.range)
        if arg.default_range is not None:
            inside(arg.default_range)
    for problem in model.problems:
        inside(problem.range)


def test_mutated_corpus_never_raises_and_keeps_ranges_in_the_text() -> None:
    rng = random.Random(20240601)
    texts = [read(p) for p in CORPUS_FILES]
    for _ in range(3000):
        check_invariants(parse(mutate(rng, rng.choice(texts))))


def test_every_prefix_of_a_file_parses() -> None:
    # Typing a file from the first character: each intermediate text must work.
    text = read(CORPUS / "moby__buildkit__Dockerfile")[:6000]
    for end in range(0, len(text), 7):
        check_invariants(parse(text[:end]))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\ufeff",
        "\\",
        "`",
        "\n\n\n",
        "FROM",
        "FROM --platform=",
        "FROM a AS",
        "ARG",
        "ARG =",
        "FROM ${",
        "FROM ${X:-${Y",
        "FROM $",
        "RUN <<",
        "RUN <<EOF",
        "RUN <<EOF\nno end",
        "COPY --from=",
        'RUN --mount="from=x',
        "CMD [",
        "CMD [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[" * 50,
        "# escape=\n",
        "# escape=x\nFROM a",
        "FROM a \\",
        "FROM a \\\n",
        "ONBUILD",
        "ONBUILD ONBUILD ONBUILD RUN <<EOF\n",
        "\x00\x01\x02\xff\ud800",
        bytes(range(256)).decode("latin-1"),
    ],
)
def test_odd_inputs_never_raise(text: str) -> None:
    check_invariants(parse(text))


def test_random_binary_and_huge_inputs() -> None:
    rng = random.Random(7)
    for _ in range(200):
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(400)))
        check_invariants(parse(raw.decode("utf-8", "surrogateescape")))
    huge_line = "RUN " + "x" * 1_000_000
    assert parse(huge_line).instructions[0].range.end.character == len(huge_line)
    many = "FROM a\n" + "RUN b \\\n" * 20_000 + "c\n"
    assert parse(many).instructions[1].line_end == 20_001


def test_mutations_agree_with_buildkit_where_buildkit_parses() -> None:
    rng = random.Random(99)
    texts = [read(p) for p in CORPUS_FILES]
    compared = 0
    for _ in range(1500):
        text = mutate(rng, rng.choice(texts))
        if "\x00" in text or "\udc80" in text:
            continue  # the C binding stops at NUL / cannot encode: not BuildKit's behaviour
        try:
            theirs = buildkit_view(text)
        except Exception:  # noqa: S112 - BuildKit rejects it: nothing to compare
            continue
        ours = our_view(parse(text))
        if any(row[0] == "" for row in theirs):
            continue  # a line holding only `\`: see test_lone_escape_line_is_not_an_instruction
        if ours != theirs and re.search(r"\$\{[A-Za-z_]\w*(%|#|/)", text):
            continue  # see test_heredoc_on_a_line_with_pattern_substitution
        assert [r[:4] for r in ours] == [r[:4] for r in theirs]
        compared += 1
    assert compared > 1000


# --------------------------------------------------------------------------- deliberate differences


def test_lone_escape_line_is_not_an_instruction() -> None:
    # BuildKit turns a trailing line holding only `\` into an instruction with no name;
    # nothing can be done with it, so the model leaves it out.
    text = "FROM a\n\\\n"
    assert [c.cmd for c in dockerfile_pkg.parse_string(text)] == ["FROM", None]
    assert [i.keyword for i in parse(text).instructions] == ["FROM"]


def test_heredoc_on_a_line_with_pattern_substitution() -> None:
    # The wrapped BuildKit (v0.12) lexer rejects ${VAR%pattern}, and then finds no heredoc
    # on that line; current BuildKit accepts pattern operators, and so does the model.
    text = "FROM a\nRUN echo ${V%.*} && cat <<EOF\nbody\nEOF\n"
    assert dockerfile_pkg.parse_string(text)[1].heredocs == ()
    (heredoc,) = parse(text).instructions[1].heredocs
    assert heredoc.name == "EOF" and heredoc.body == "body\n"


def test_unterminated_heredoc_runs_to_the_end_with_a_problem() -> None:
    # BuildKit refuses the file; an editor needs the rest of the model while typing.
    text = "FROM a\nRUN <<EOF\necho hi\n"
    with pytest.raises(Exception, match="unterminated heredoc"):
        dockerfile_pkg.parse_string(text)
    model = parse(text)
    (heredoc,) = model.instructions[1].heredocs
    assert not heredoc.terminated and heredoc.body == "echo hi\n"
    assert model.instructions[1].line_end == 2
    assert any("unterminated heredoc" in p.message for p in model.problems)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# syntax=a\n# syntax=b\nFROM a\n", "only one syntax"),
        ("# escape=x\nFROM a\n", "invalid escape"),
        ('FROM a\nCMD ["a", 1]\n', "strings only"),
    ],
)
def test_files_buildkit_rejects_still_give_a_model(text: str, message: str) -> None:
    with pytest.raises(dockerfile_pkg.GoParseError):
        dockerfile_pkg.parse_string(text)
    model = parse(text)
    assert model.stages[0].base == "a"
    assert any(message in p.message for p in model.problems)


def test_unclosed_substitution_in_an_image_is_a_syntax_error() -> None:
    # `FROM python:${PY` with `ARG PY=...` set: not "waiting for a build argument" but a
    # line BuildKit's shell lexer rejects.
    model = parse("ARG PY=3.12\nFROM python:${PY AS x\nFROM python:${PY}\n")
    (problem,) = model.problems
    assert "unclosed" in problem.message and "python:${PY" in problem.message
    assert problem.range == model.images[0].range
    assert model.images[1].resolved == "python:3.12"


def test_empty_file_is_an_empty_model() -> None:
    with pytest.raises(Exception, match="no instructions"):
        dockerfile_pkg.parse_string("")
    model = parse("")
    assert model.instructions == () and model.images == ()


# --------------------------------------------------------------------------- features


def test_directives_only_at_the_top_and_case_insensitive() -> None:
    model = parse("# SYNTAX = docker/dockerfile:1\n# Escape=`\n# check=skip=all\nFROM a\n")
    assert [(d.name, d.value) for d in model.directives] == [
        ("syntax", "docker/dockerfile:1"),
        ("escape", "`"),
        ("check", "skip=all"),
    ]
    assert model.escape == "`"
    assert text_at(model.document, model.directives[0].value_range) == "docker/dockerfile:1"
    # After a plain comment or a blank line, a directive is only a comment.
    for text in ("# hello\n# escape=`\nFROM a\n", "\n# escape=`\nFROM a\n"):
        assert parse(text).directives == () and parse(text).escape == "\\"


def test_backtick_escape_continues_lines_and_keeps_backslashes() -> None:
    text = "# escape=`\nFROM mcr.microsoft.com/windows:ltsc2022\nRUN dir C:\\ `\n    && echo hi\n"
    run = parse(text).instructions[1]
    assert (run.line_start, run.line_end) == (2, 3)
    assert run.arguments == "dir C:\\     && echo hi"


def test_continuation_skips_comments_and_blank_lines_inside() -> None:
    text = "FROM a\nRUN apt-get update \\\n# why\n\n    && apt-get install -y curl\nUSER x\n"
    model = parse(text)
    run = model.instructions[1]
    assert (run.line_start, run.line_end) == (1, 4)
    assert run.arguments == "apt-get update     && apt-get install -y curl"
    assert run.range == Range(Position(1, 0), Position(4, 30))
    assert text_at(model.document, run.arguments_range).endswith("install -y curl")
    assert [c.text for c in model.comments] == ["why"]


def test_heredocs_with_ranges() -> None:
    text = (
        "FROM a\n"
        "RUN <<EOF cat - <<-'END' > /out\n"
        "one\n"
        "EOF\n"
        "\ttwo $X\n"
        "\tEND\n"
        "COPY <<EOF /dst\n"
        "three\n"
        "EOF\n"
    )
    model = parse(text)
    run, copy = model.instructions[1], model.instructions[2]
    first, second = run.heredocs
    assert (first.name, first.body, first.expand, first.chomp) == ("EOF", "one\n", True, False)
    assert (second.name, second.body, second.expand, second.chomp) == (
        "END",
        "\ttwo $X\n",
        False,
        True,
    )
    assert text_at(model.document, second.marker_range) == "<<-'END'"
    assert second.body_range == Range(Position(4, 0), Position(4, 7))
    assert second.terminator_range == Range(Position(5, 0), Position(5, 4))
    assert (run.line_start, run.line_end) == (1, 5)
    assert copy.heredocs[0].body == "three\n" and copy.arguments == "<<EOF /dst"


def test_json_and_shell_forms() -> None:
    model = parse('FROM a\nCMD ["python", "-m", "app"]\nENTRYPOINT python -m app\nCMD [oops\n')
    cmd, entry, broken = model.instructions[1:]
    assert cmd.json_args == ("python", "-m", "app")
    assert entry.json_args is None and entry.arguments == "python -m app"
    assert broken.json_args is None and broken.arguments == "[oops"


def test_from_platform_and_stage_name() -> None:
    text = "FROM --platform=$BUILDPLATFORM golang:1.22 As Builder\nFROM builder\n"
    model = parse(text)
    first, second = model.stages
    assert (first.name, first.base) == ("builder", "golang:1.22")
    assert text_at(model.document, first.name_range) == "Builder"  # type: ignore[arg-type]
    assert first.platform is not None and first.platform.value == "$BUILDPLATFORM"
    image = first.image
    assert image is not None
    assert (image.platform, image.platform_resolved) == ("$BUILDPLATFORM", None)
    assert image.range == Range(Position(0, 31), Position(0, 42))
    assert second.image is not None and second.image.is_stage_reference
    assert second.image.stage_reference == 0 and not second.image.is_image


def test_copy_from_stage_index_and_image() -> None:
    text = (
        "FROM golang AS build\n"
        "FROM alpine\n"
        "COPY --from=build /a /a\n"
        "COPY --from=0 /b /b\n"
        "COPY --from=nginx:1.27 /etc/nginx /etc/nginx\n"
        "COPY --link --from=BUILD /c /c\n"
    )
    uses = [(i.kind, i.text, i.is_stage_reference, i.stage_reference) for i in parse(text).images]
    assert uses == [
        ("from", "golang", False, None),
        ("from", "alpine", False, None),
        ("copy-from", "build", True, 0),
        ("copy-from", "0", True, 0),
        ("copy-from", "nginx:1.27", False, None),
        ("copy-from", "BUILD", True, 0),
    ]


def test_nginx_as_nginx_is_an_image() -> None:
    (image,) = parse("FROM nginx AS nginx\n").images
    assert not image.is_stage_reference


def test_run_mount_from_is_found_and_source_is_not_confused() -> None:
    text = (
        "FROM golang AS deps\n"
        "FROM alpine\n"
        "RUN --mount=type=cache,target=/from=x \\\n"
        "    --mount=type=bind,source=/from,from=deps,target=/src \\\n"
        "    --mount=type=bind,from=busybox:1.36,source=/bin/sh,target=/sh true\n"
    )
    model = parse(text)
    mounts = [i for i in model.images if i.kind == "mount-from"]
    assert [(m.text, m.is_stage_reference) for m in mounts] == [
        ("deps", True),
        ("busybox:1.36", False),
    ]
    assert mounts[1].range == Range(Position(4, 27), Position(4, 39))
    assert text_at(model.document, mounts[1].range) == "busybox:1.36"


def test_scratch() -> None:
    (image,) = parse("FROM scratch\nCOPY app /\n").images
    assert image.is_scratch and not image.is_image


def test_onbuild_wraps_an_instruction_and_uses_no_image() -> None:
    model = parse("FROM a\nONBUILD COPY --from=nginx:1 . /app\nONBUILD RUN <<EOF\nx\nEOF\n")
    copy, run = model.instructions[1].onbuild, model.instructions[2].onbuild
    assert copy is not None and copy.keyword == "COPY" and copy.flag("from") is not None
    assert run is not None and run.heredocs[0].body == "x\n"
    assert [i.kind for i in model.images] == ["from"]  # only used by downstream builds


def test_arg_substitution_with_defaults_and_origin() -> None:
    text = (
        "ARG PY_VERSION=3.12\n"
        'ARG VARIANT="slim"\n'
        "ARG NO_DEFAULT\n"
        "FROM python:${PY_VERSION}-$VARIANT AS base\n"
        "FROM python:${NO_DEFAULT}\n"
        "FROM python:${NO_DEFAULT:-3.11}\n"
    )
    model = parse(text)
    first, second, third = model.images
    assert first.text == "python:${PY_VERSION}-$VARIANT"
    assert first.resolved == "python:3.12-slim"
    assert [s.name for s in first.substitutions] == ["PY_VERSION", "VARIANT"]
    arg = first.substitutions[0].arg
    assert arg is not None and arg.stage is None and arg.default == "3.12"
    assert arg.default_range == Range(Position(0, 15), Position(0, 19))
    assert text_at(model.document, first.substitutions[0].range) == "${PY_VERSION}"
    assert first.substitutions[0].default_range == arg.default_range
    assert second.resolved is None
    assert third.resolved == "python:3.11"


def test_fix_by_editing_the_arg_default() -> None:
    # What a bump fix does: replace the ARG default, not the FROM line.
    text = "ARG BASE=python:3.11-slim\nFROM ${BASE}\n"
    model = parse(text)
    (image,) = model.images
    arg = image.substitutions[0].arg
    assert arg is not None and arg.default_range is not None
    doc = model.document
    start, end = doc.offset_at(arg.default_range.start), doc.offset_at(arg.default_range.end)
    fixed = text[:start] + "python:3.13-slim" + text[end:]
    assert fixed == "ARG BASE=python:3.13-slim\nFROM ${BASE}\n"
    assert parse(fixed).images[0].resolved == "python:3.13-slim"


@pytest.mark.parametrize(
    ("reference", "resolved"),
    [
        ("${SET}", "v"),
        ("${SET:-d}", "v"),
        ("${SET-d}", "v"),
        ("${SET:+alt}", "alt"),
        ("${SET+alt}", "alt"),
        ("${EMPTY:-d}", "d"),
        ("${EMPTY-d}", ""),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET:-d}", "d"),
        ("${UNSET-d}", "d"),
        ("${UNSET:+alt}", ""),
        ("${UNDECLARED:-d}", "d"),
        ("${UNSET}", None),
        ("${UNDECLARED}", None),
        ("${UNSET:-${SET}}", "v"),
        ("\\$SET", "$SET"),
        ("${TARGETARCH}", None),
        ("${TARGETARCH:-amd64}", None),  # BuildKit always sets it: the default never applies
        ("${BROKEN", None),
    ],
)
def test_substitution_forms(reference: str, resolved: str | None) -> None:
    text = f"ARG SET=v\nARG EMPTY=\nARG UNSET\nFROM img:{reference}\n"
    (image,) = parse(text).images
    assert image.resolved == (None if resolved is None else f"img:{resolved}")


def test_platform_args_with_a_default_resolve() -> None:
    model = parse("ARG TARGETARCH=arm64\nFROM --platform=linux/$TARGETARCH img:$TARGETARCH\n")
    (image,) = model.images
    assert image.resolved == "img:arm64" and image.platform_resolved == "linux/arm64"


def test_stage_must_redeclare_a_global_arg() -> None:
    text = (
        "ARG IMAGE=nginx:1.27\n"
        "FROM alpine AS one\n"
        "COPY --from=${IMAGE} /a /a\n"
        "FROM alpine AS two\n"
        "ARG IMAGE\n"
        "COPY --from=${IMAGE} /b /b\n"
        "FROM alpine AS three\n"
        "ARG IMAGE=httpd:2\n"
        "COPY --from=${IMAGE} /c /c\n"
    )
    model = parse(text)
    copies = [i for i in model.images if i.kind == "copy-from"]
    assert [c.resolved for c in copies] == [None, "nginx:1.27", "httpd:2"]
    # Re-declared without a default: the value, and the place to edit it, is the global ARG.
    origin = copies[1].substitutions[0].arg
    assert origin is not None and origin.stage is None
    assert [a.name for a in model.stages[1].args] == ["IMAGE"]
    assert [a.stage for a in model.args] == [None, 1, 2]


def test_stage_ranges_and_members() -> None:
    model = parse("FROM a AS one\nRUN x\n\nFROM b\nRUN y \\\n  z\n")
    one, two = model.stages
    assert one.range == Range(Position(0, 0), Position(1, 5))
    assert two.range == Range(Position(3, 0), Position(5, 3))
    assert [i.keyword for i in two.instructions] == ["FROM", "RUN"]


def test_lookups_for_the_editor() -> None:
    model = parse("FROM python:3.12\nRUN x\n")
    image = model.image_at(Position(0, 10))
    assert image is not None and image.text == "python:3.12"
    assert model.image_at(Position(1, 2)) is None
    instruction = model.instruction_at(Position(1, 0))
    assert instruction is not None and instruction.keyword == "RUN"
    assert model.stage_named("nope") is None


# --------------------------------------------------------------------------- positions


def test_crlf_positions_exclude_the_carriage_return() -> None:
    model = parse("FROM a:1\r\nRUN x \\\r\n  y\r\n")
    run = model.instructions[1]
    assert run.range == Range(Position(1, 0), Position(2, 3))
    assert model.images[0].range == Range(Position(0, 5), Position(0, 8))


def test_bom_is_character_zero() -> None:
    model = parse("\ufeffFROM alpine\n")
    assert model.instructions[0].keyword == "FROM"
    assert model.instructions[0].keyword_range.start == Position(0, 1)
    assert model.images[0].text == "alpine"


def test_utf16_columns() -> None:
    model = parse('LABEL x="😀é" \\\n  y=1\nFROM ghcr.io/😀/a:1\n')
    doc = model.document
    assert doc.utf16_column(0, 9) == 9  # up to the emoji
    assert doc.utf16_column(0, 10) == 11  # the emoji is a surrogate pair
    assert doc.utf16_column(0, 11) == 12
    assert doc.character_from_utf16(0, 11) == 10
    assert doc.character_from_utf16(0, 12) == 11
    image = model.images[0]
    assert image.range.end == Position(2, 18)
    assert doc.to_utf16(image.range.end) == Position(2, 19)
    assert doc.from_utf16(doc.to_utf16(image.range.end)) == image.range.end
    assert doc.utf16_column(99, 3) == 0  # out of range is clamped, not an error


# --------------------------------------------------------------------------- reuse


def small_edit(rng: random.Random, text: str) -> str:
    """A keystroke or a paste somewhere in ``text``: what an editor sends between two
    versions."""
    at = rng.randint(0, len(text))
    op = rng.randrange(3)
    if op == 0:
        return text[:at] + rng.choice([*MUTATIONS, "a", " ", "\n", "\\", "\\\n"]) + text[at:]
    if op == 1:
        return text[:at] + text[at + rng.randint(1, 3) :]
    lines = text.split("\n")
    lines[rng.randrange(len(lines))] = rng.choice(lines)
    return "\n".join(lines)


def same_model(a: Dockerfile, b: Dockerfile) -> None:
    assert a == b
    assert a.document.text == b.document.text
    assert a.comments == b.comments and a.problems == b.problems
    assert [i.heredocs for i in a.instructions] == [i.heredocs for i in b.instructions]


def test_parsing_after_an_edit_reuses_nothing_that_changed() -> None:
    rng = random.Random(20261205)
    texts = [read(p) for p in CORPUS_FILES]
    for _ in range(1500):
        before = rng.choice(texts)
        if rng.random() < 0.3:
            before = mutate(rng, before)
        previous = parse(before)
        for _ in range(rng.randint(1, 3)):  # a chain of edits, each reusing the last
            after = small_edit(rng, before)
            model = parse(after, previous=previous)
            same_model(model, parse(after))
            before, previous = after, model


def test_an_edit_in_one_line_reads_only_that_instruction_again() -> None:
    text = read(CORPUS / "moby__buildkit__Dockerfile")
    previous = parse(text)
    middle = previous.instructions[len(previous.instructions) // 2]
    line = text.split("\n")[middle.line_start]
    edited = text.replace(line, line + " ", 1)
    model = parse(edited, previous=previous)
    same_model(model, parse(edited))
    kept = [a is b for a, b in zip(previous.instructions, model.instructions, strict=True)]
    assert kept.count(False) == 1 and not kept[len(kept) // 2]


def test_a_new_escape_character_reads_every_instruction_again() -> None:
    body = "FROM alpine AS base\nRUN echo a \\\n  b `\n  c\nCOPY --from=base /a /b\n"
    previous = parse("# escape=\\\n" + body)
    model = parse("# escape=`\n" + body, previous=previous)
    same_model(model, parse("# escape=`\n" + body))
    assert model.instructions[1].line_end == 2 and previous.instructions[1].line_end == 3
