"""The ``portside`` command (the console script and ``python -m portside``).

A command is one process: whatever sandbox, limits, namespaces and credentials the
caller runs it with are those it has. Where people would run it in a loop, one
command takes several references instead (``tags``, ``inspect`` and ``digest``).

Fast when the cache can answer: the warm path reads argv without argparse, answers
through :meth:`portside.cache.CachedRegistry.run_from_cache` without an event loop, and
imports only ``os``, ``sys`` and Portside's own light modules; a warm tag list imports
neither ``json`` nor ``re`` (with ``enum`` and ``functools``, ~8 ms), even for
``--json``. asyncio, httpx and the registry client are imported when an answer needs the
network, argparse for help, errors and unusual spellings, json for the other JSON
outputs, rich only when writing to a terminal.
``benchmarks/bench_cli.py`` measures the result against skopeo.

Every failure ends as one ``portside: error: ...`` line (and a hint line) on stderr and
an exit code from the table in ``--help``; never a traceback unless ``PORTSIDE_DEBUG=1``.
"""

from __future__ import annotations

import os
import sys

from portside.errors import PortsideError, UsageError
from portside.registry.options import DEFAULT_DEADLINE, TRANSFER_DEADLINE
from portside.terminal import clean

TYPE_CHECKING = False  # avoids importing typing (~9 ms) on the warm path; mypy knows it
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Coroutine, Sequence
    from pathlib import Path
    from typing import Any, TextIO, TypeAlias, TypeVar

    from portside.cache import CachedRegistry
    from portside.images import ImageInfo
    from portside.reference import Reference
    from portside.registry.client import RegistryClient
    from portside.registry.manifest import Platform

    T = TypeVar("T")
    # One reference of several: as typed, parsed (None if it does not parse), outcome.
    Answer: TypeAlias = tuple[str, "Reference | None", "T | PortsideError"]

PROG = "portside"

EXIT_CODES = """\
exit codes:
  0    success
  1    failure not covered below
  2    usage error or invalid input (bad option, reference, platform)
  3    not found (repository, tag, manifest, platform)
  4    authentication or credentials (unauthorized, denied, credential helper)
  5    registry unreachable, too slow (--timeout, --deadline), rate-limited or failing
       (5xx); offline cache miss
  6    integrity (digest mismatch, response too large, invalid response)
  130  interrupted (Ctrl-C)
  141  output closed early (e.g. piped into head)
  With several references (tags, inspect, digest), each one that fails gets one
  error line naming it, the others are still answered, and the exit code is the
  highest of theirs (0 when every one was answered).

environment:
  PORTSIDE_CACHE_DIR            cache directory (default $XDG_CACHE_HOME/portside)
  PORTSIDE_INSECURE_REGISTRIES  comma-separated hosts, like --insecure-registry
  PORTSIDE_DEADLINE             default of --deadline, in seconds
  PORTSIDE_DEBUG=1              show tracebacks
"""


# -- argument parsing ----------------------------------------------------------------
#
# Two parsers, one grammar. ``argparse`` (build_parser) is the reference: it handles
# help, abbreviations, errors and every unusual spelling. It also costs ~5 ms to import
# and build, a sixth of a warm answer, so the plain spellings people and scripts type
# (``portside [options] VERB [options] REF [options]``) are read by _fast_parse, which
# gives up (returns None) on anything it does not fully understand and lets argparse
# decide. tests/test_cli.py checks that both agree on every form _fast_parse accepts.

VERBS = ("tags", "inspect", "digest")

# --deadline: no command waits on registries for ever (portside.registry.options reads
# $PORTSIDE_DEADLINE). Copying layers and walking or changing a whole registry take longer.
TRANSFER_VERBS = ("build", "push", "publish", "prune", "usage", "retire", "pull-back")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        import argparse

        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1: {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        import argparse

        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


# option -> (namespace attribute, converter or None for a flag, verbs or None for all)
_OPTIONS: dict[str, tuple[str, Callable[[str], object] | None, tuple[str, ...] | None]] = {
    "--insecure-registry": ("insecure_registry", str, None),
    "--ca-file": ("ca_file", str, None),
    "--offline": ("offline", None, None),
    "--refresh": ("refresh", None, None),
    "--timeout": ("timeout", _positive_float, None),
    "--deadline": ("deadline", _positive_float, None),
    "--json": ("json", None, ("tags", "inspect")),
    "--limit": ("limit", _positive_int, ("tags",)),
    "--platform": ("platform", str, ("inspect", "digest")),
}
_GLOBAL_DEFAULTS: dict[str, object] = {
    "ca_file": None,
    "offline": False,
    "refresh": False,
    "timeout": None,
    "deadline": None,
}
_VERB_DEFAULTS: dict[str, dict[str, object]] = {
    "tags": {"json": False, "limit": None},
    "inspect": {"platform": None, "json": False},
    "digest": {"platform": None},
}


def _fast_parse(argv: Sequence[str]) -> dict[str, object] | None:
    """The parsed arguments for the plain spellings, or None to let argparse decide."""
    values: dict[str, object] = {}
    insecure_before: list[str] = []
    insecure_after: list[str] = []
    verb: str | None = None
    refs: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if not token.startswith("-"):
            if verb is None:
                if token not in VERBS:
                    return None
                verb = token
            elif token:
                refs.append(token)
            else:
                return None
            continue
        name, eq, inline = token.partition("=")
        spec = _OPTIONS.get(name)
        if spec is None:
            return None  # -h, --help, --version, --, abbreviations, unknown options
        attr, convert, verbs = spec
        if verbs is not None and (verb is None or verb not in verbs):
            return None
        if convert is None:
            if eq or attr in values:
                return None
            values[attr] = True
            continue
        if eq:
            text = inline
        elif i < len(argv):
            text = argv[i]
            i += 1
        else:
            return None
        if not text or text.startswith("-"):
            return None
        try:
            value = convert(text)
        except Exception:
            return None  # argparse words the error
        if attr == "insecure_registry":
            (insecure_before if verb is None else insecure_after).append(text)
            continue
        if attr in values:
            return None
        values[attr] = value
    if verb is None or not refs:
        return None
    if insecure_before and insecure_after:
        return None  # argparse keeps only the later list; let it do so visibly
    result = {**_GLOBAL_DEFAULTS, **_VERB_DEFAULTS[verb], **values}
    result["insecure_registry"] = insecure_before or insecure_after
    result["verb"] = verb
    result["refs"] = refs
    return result


def parse_args(argv: Sequence[str]) -> Args:
    """Parse the command line: the fast reader when it can, argparse otherwise.

    argparse exits (SystemExit) for --help, --version and usage errors.
    """
    fast = _fast_parse(argv)
    if fast is not None:
        return Args(fast)
    return Args(_argparse(argv))


def _argparse(argv: Sequence[str]) -> dict[str, object]:
    """argparse's reading, with references anywhere among the options: argparse takes
    only the first run of them (``tags a --json b`` leaves ``b`` over), the rest are
    added in their order."""
    parser = build_parser()
    namespace, extra = parser.parse_known_args(argv)
    values = vars(namespace)
    refs = values.get("refs")
    if extra and isinstance(refs, list) and not any(word.startswith("-") for word in extra):
        values["refs"] = [*refs, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return values


class Args:
    """Parsed arguments: attribute access to a dict, whichever parser produced it."""

    def __init__(self, values: dict[str, object]) -> None:
        self.__dict__.update(values)

    # Declared so that type checkers accept attribute access; at run time it is only
    # reached for a name neither parser set (a bug, reported as an internal error).
    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)


def _columns() -> int:
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns
    except (OSError, ValueError):
        return 80


def _add_global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The options every verb takes, before or after the verb.

    On the verbs' parsers the defaults are suppressed, so an option given before the
    verb is not overwritten by the verb parser's default.
    """
    import argparse

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("registry and cache options")
    group.add_argument(
        "--insecure-registry",
        metavar="HOST",
        action="append",
        default=default([]),
        help="allow plain HTTP / unverified TLS for HOST[:PORT] (repeatable; "
        "loopback registries are always allowed plain HTTP)",
    )
    group.add_argument(
        "--ca-file",
        metavar="PEM",
        default=default(None),
        help="extra CA certificates to trust (PEM bundle)",
    )
    group.add_argument(
        "--offline",
        action="store_true",
        default=default(False),
        help="answer from the cache only, whatever its age; fail when it has no answer",
    )
    group.add_argument(
        "--refresh",
        action="store_true",
        default=default(False),
        help="ask the registry again even when the cached answer is fresh",
    )
    group.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_positive_float,
        default=default(None),
        help="time limit of each request to a registry, all of it: connecting, the "
        "plain-HTTP/HTTPS probe, headers and body (default 30)",
    )
    group.add_argument(
        "--deadline",
        metavar="SECONDS",
        type=_positive_float,
        default=default(None),
        help="time limit of all the command's registry work together, retries and "
        f"Retry-After waits included (default $PORTSIDE_DEADLINE or {DEFAULT_DEADLINE:g}; "
        f"{', '.join(TRANSFER_VERBS)}: {TRANSFER_DEADLINE:g})",
    )


# How the verbs that take several references say so in their --help.
_SEVERAL = (
    "Several references are answered concurrently, in one process, and printed in "
    "the order given ({plain}{json}). One that fails gets one error line on stderr "
    "naming it, the others are still answered, and the exit code is the highest of "
    "theirs. One reference prints exactly what it always did."
)


_REPORT_HELP = "print the JSON report instead of a summary"


def build_parser() -> argparse.ArgumentParser:
    """The full argparse parser: help, errors and every spelling argparse accepts."""
    import argparse

    class Formatter(argparse.RawDescriptionHelpFormatter):
        # argparse builds a formatter for every add_argument call and the stock one
        # imports shutil (with bz2 and lzma, ~2 ms) for the width each time.
        def __init__(self, prog: str, *args: Any, **kwargs: Any) -> None:
            if kwargs.get("width") is None and len(args) < 3:
                kwargs["width"] = _columns() - 2
            super().__init__(prog, *args, **kwargs)

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Container registry metadata, fast: tags, digests and image details "
        "from any OCI registry, cached on disk.",
        epilog=EXIT_CODES,
        formatter_class=Formatter,
    )
    from portside import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_global_options(parser, suppress=False)
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND", required=True)

    def verb(name: str, help_text: str, more: str = "") -> argparse.ArgumentParser:
        if more:
            import textwrap

            more = "\n\n" + textwrap.fill(more, min(_columns() - 2, 80))
        sub = verbs.add_parser(
            name,
            help=help_text,
            description=help_text + more,
            epilog=EXIT_CODES,
            formatter_class=Formatter,
        )
        _add_global_options(sub, suppress=True)
        return sub

    def several(name: str, help_text: str, ref_help: str, **output: str) -> argparse.ArgumentParser:
        """A verb that takes several references (REF...)."""
        sub = verb(name, help_text, _SEVERAL.format(**output))
        sub.add_argument("refs", metavar="REF", nargs="+", help=ref_help)
        return sub

    tags = several(
        "tags",
        "list a repository's tags, newest version first",
        "image reference; its tag, if any, is ignored",
        plain="a line is REF<tab>TAG",
        json='; with --json, an array of {"reference", "tags"} objects',
    )
    tags.add_argument(
        "--json", action="store_true", help="print a JSON array of tag names (see above)"
    )
    tags.add_argument(
        "--limit", metavar="N", type=_positive_int, help="print the first N (of each) only"
    )

    inspect = several(
        "inspect",
        "show an image: digests, platforms, created, labels, size",
        "image reference (name[:tag][@digest])",
        plain="an empty line between images",
        json="; with --json, an array of the objects",
    )
    inspect.add_argument(
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        help="which image of a multi-platform index to inspect (default linux/amd64)",
    )
    inspect.add_argument("--json", action="store_true", help="print a JSON object (see above)")

    check = verb("check", "check the images Dockerfiles use: stale, unpinned, moved, missing")
    check.add_argument(
        "paths", metavar="PATH", nargs="*", default=["."], help="files or folders (default .)"
    )
    output = check.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print a JSON array of findings")
    output.add_argument("--sarif", action="store_true", help="print SARIF 2.1.0")
    check.add_argument(
        "--fail-on",
        metavar="SEVERITY|KIND",
        action="append",
        help="exit 1 when a finding reaches this severity (error, warning, info, hint) "
        "or is of this kind, e.g. stale (repeatable, comma-separated; default: "
        "[tool.portside.pre-commit] fail-on, else error)",
    )

    pin = verb("pin", "pin image references to tag@digest, keeping every other byte")
    pin.add_argument(
        "paths", metavar="PATH", nargs="*", default=["."], help="files or folders (default .)"
    )
    pin.add_argument(
        "--update",
        choices=("patch", "minor", "major"),
        help="first move to the newest tag in the line that this level of update allows",
    )
    pin.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 when something would change"
    )

    query = verb("query", "find exact images with a query over tags and image metadata")
    query.add_argument("text", metavar="QUERY", help="e.g. 'python where version ~ 3.12 limit 1'")
    query_output = query.add_mutually_exclusive_group()
    query_output.add_argument("--json", action="store_true", help="print a JSON array")
    query_output.add_argument(
        "--ref",
        dest="ref_only",
        action="store_true",
        help="print repository:tag@digest of the first result only",
    )

    latest = verb("latest", "the newest release in this tag's line (never the 'latest' tag)")
    latest.add_argument("ref", metavar="REF", help="image reference, e.g. python:3.12-slim")
    latest_output = latest.add_mutually_exclusive_group()
    latest_output.add_argument("--json", action="store_true", help="print a JSON object")
    latest_output.add_argument(
        "--ref", dest="ref_only", action="store_true", help="print repository:tag@digest only"
    )

    # Listed for --help only: main() hands `lsp ...` to the language server's parser.
    verbs.add_parser(
        "lsp",
        help="start the Dockerfile language server (see: portside lsp --help)",
        add_help=False,
    )

    build = verb("build", "build the image configured in [tool.portside.image]")
    build.add_argument("--project", metavar="DIR", default=".", help="project folder (default .)")
    build.add_argument("--json", action="store_true", help=_REPORT_HELP)

    push = verb("push", "copy an image to one or more registries (blobs first, tags last)")
    push.add_argument("source", metavar="SRC", help="oci:DIR or a registry reference")
    push.add_argument("destinations", metavar="DEST", nargs="+", help="registry/repo[:tag]")
    push.add_argument("--dry-run", action="store_true", help="show every push; change nothing")
    push.add_argument("--json", action="store_true", help=_REPORT_HELP)

    publish = verb("publish", "build, tag and push everything [tool.portside.image] configures")
    publish.add_argument("--project", metavar="DIR", default=".", help="project folder (default .)")
    publish.add_argument("--dry-run", action="store_true", help="show every tag and push")
    publish.add_argument(
        "--json",
        metavar="FILE",
        nargs="?",
        const="-",
        help=_REPORT_HELP + "; with FILE, write it there instead (also when the publish "
        "fails) and print the summary",
    )

    digest = several(
        "digest",
        "print the digest to pin a reference to (for shell use)",
        "image reference (name[:tag][@digest])",
        plain="a line is REF<tab>DIGEST",
        json="",
    )
    digest.add_argument(
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        help="print the digest of this platform's image instead of the index's",
    )
    from portside.cli_retention import add_verbs as add_retention_verbs

    add_retention_verbs(verb)
    from portside.cli_lifecycle import add_verbs as add_lifecycle_verbs

    add_lifecycle_verbs(verb)
    return parser


# -- running operations --------------------------------------------------------------


def _make_cached(args: Args) -> CachedRegistry:
    from portside.cache import CachedRegistry

    if args.offline and args.refresh:
        raise UsageError("--offline and --refresh contradict each other", hint="use one")
    from portside.registry.options import check_ca_file

    check_ca_file(args.ca_file)
    _deadline(args)  # a bad $PORTSIDE_DEADLINE is a usage error, even on a cache hit

    def client_factory() -> RegistryClient:
        # Only a cache miss gets here: the network stack is imported now, not before.
        from portside.registry.client import RegistryClient

        # The cache's credential store: a helper runs once for reading and fetching.
        return RegistryClient(_client_options(args), credentials=cached.credentials)

    cached = CachedRegistry(
        client_factory=client_factory, offline=args.offline, refresh=args.refresh
    )
    return cached


def _run(cached: CachedRegistry, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """The answer of ``make()`` in an event loop, with the registry's client closed (and
    unfinished fetches cancelled) at the end. (:func:`_each` answers what the cache
    holds without one.)"""
    import asyncio

    async def with_network() -> T:
        async with cached:
            return await make()

    return asyncio.run(with_network())


def _each(
    cached: CachedRegistry,
    texts: Sequence[str],
    make: Callable[[Reference], Coroutine[Any, Any, T]],
) -> list[Answer[T]]:
    """``(text, ref, answer or error)`` for every reference in ``texts``, in their order
    (``ref`` is None when ``text`` is not a reference).

    A fresh cached answer comes without an event loop (``run_from_cache``); the others
    are asked concurrently in one event loop, through one client (its connections and
    cached tokens shared), each failure kept with its reference instead of
    stopping the rest. A failure that is not a :class:`PortsideError` (a bug, Ctrl-C)
    still ends the command.
    """
    from portside.cache import NeedsNetwork

    refs: list[Reference | None] = []
    results: dict[int, T | PortsideError] = {}
    pending: list[tuple[int, Reference]] = []
    for i, text in enumerate(texts):
        try:
            ref = _parse_ref(text)
        except PortsideError as exc:
            refs.append(None)
            results[i] = exc
            continue
        refs.append(ref)
        if cached.refresh:
            pending.append((i, ref))
            continue
        try:
            results[i] = cached.run_from_cache(make(ref))
        except NeedsNetwork:
            pending.append((i, ref))
        except PortsideError as exc:
            results[i] = exc
    if pending:
        import asyncio

        async def one(ref: Reference) -> T | PortsideError:
            try:
                return await make(ref)
            except PortsideError as exc:
                return exc

        async def concurrently() -> list[T | PortsideError]:
            return await asyncio.gather(*(one(ref) for _, ref in pending))

        found = _run(cached, concurrently)
        results.update((i, result) for (i, _), result in zip(pending, found, strict=True))
    return [(text, refs[i], results[i]) for i, text in enumerate(texts)]


def _only(answers: list[Answer[T]]) -> T | None:
    """The one reference's answer, its error raised as the command's own (the output
    of one reference is what it always was); None when there are several."""
    if len(answers) != 1:
        return None
    result = answers[0][2]
    if isinstance(result, PortsideError):
        raise result
    return result


def _failed(text: str, error: PortsideError) -> int:
    """One reference's error line; its exit code."""
    _say("error", f"{text}: {error.message}")
    return error.exit_code


def _platform(text: str | None) -> Platform | None:
    if text is None:
        return None
    from portside.registry.manifest import Platform

    return Platform.parse(text)


def _parse_ref(text: str) -> Reference:
    from portside.reference import Reference

    return Reference.parse(text)


# -- output --------------------------------------------------------------------------


def _out() -> TextIO:
    return sys.stdout


def _rich_console() -> Any:
    from rich.console import Console

    return Console(highlight=False, markup=False, emoji=False)


def _json_strings(items: list[str]) -> str:
    """``json.dumps(items)`` for a list of strings, without importing ``json``.

    That is what json.dumps writes for one: each string through json's C
    ``encode_basestring_ascii`` (its default ``ensure_ascii``), joined by ", ".
    """
    try:
        from _json import encode_basestring_ascii
    except ImportError:  # a Python without json's C accelerator
        import json

        return json.dumps(items)
    return "[" + ", ".join([encode_basestring_ascii(item) for item in items]) + "]"


def _print_tags(tags: list[str], args: Args, *, heading: str | None = None) -> None:
    """One repository's tags; ``heading``: the reference as typed, when there are several
    (on a pipe each line starts with it and a tab, on a terminal it heads the table)."""
    if args.json:
        _out().write(_json_strings(tags) + "\n")
        return
    if not _out().isatty():
        if tags:
            text = "\n".join(tags)
            # Registry tags are plain ASCII by the grammar; clean only a hostile list.
            if not text.replace("\n", "").isprintable():
                tags = [clean(t) for t in tags]
            if heading is not None:
                prefix = clean(heading) + "\t"
                tags = [prefix + t for t in tags]
            _out().write("\n".join(tags) + "\n")
        return
    from rich.table import Table
    from rich.text import Text

    from portside.versions import parse_tag

    table = Table(box=None, header_style="bold")
    table.add_column("TAG")
    table.add_column("VERSION")
    table.add_column("VARIANT")
    for tag in tags:
        parsed = parse_tag(tag)
        version = ".".join(str(n) for n in parsed.numbers) if parsed else ""
        if parsed is not None and parsed.pre is not None:
            version += parsed.prerelease or ""
        table.add_row(
            Text(clean(tag)), Text(version), Text(clean(parsed.variant if parsed else ""))
        )
    console = _rich_console()
    if heading is not None:
        console.print(Text(clean(heading), style="bold"))
    console.print(table)


def _print_inspect(info: ImageInfo, args: Args) -> None:
    if args.json:
        import json

        _out().write(json.dumps(info.to_json(), indent=2, ensure_ascii=False) + "\n")
        return
    rows: list[tuple[str, str]] = [
        ("reference", info.reference),
        ("digest", str(info.digest)),
        ("media-type", info.media_type),
    ]
    if info.is_index:
        rows.append(("manifest-digest", str(info.manifest_digest)))
        rows.append(("manifest-media-type", info.manifest_media_type))
    rows.append(("platform", str(info.platform) if info.platform else ""))
    rows.append(("platforms", ",".join(str(p) for p in info.platforms)))
    rows.append(("created", info.created or ""))
    rows.append(("size", str(info.size)))
    rows.append(("layers", str(info.layers)))
    labels = sorted(info.labels.items())
    if not _out().isatty():
        lines = [f"{k}\t{clean(v)}" for k, v in rows]
        lines += [f"label\t{clean(k)}={clean(v)}" for k, v in labels]
        _out().write("\n".join(lines) + "\n")
        return
    from rich.table import Table
    from rich.text import Text

    from portside.images import human_size

    table = Table(box=None, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for k, v in rows:
        if k == "size":
            v = f"{human_size(info.size)} ({info.size} bytes, compressed)"
        elif k == "platforms":
            v = ", ".join(str(p) for p in info.platforms)
        table.add_row(Text(k), Text(clean(v)))
    for i, (k, v) in enumerate(labels):
        table.add_row(Text("labels" if i == 0 else ""), Text(f"{clean(k)}={clean(v)}"))
    _rich_console().print(table)


# -- verbs ---------------------------------------------------------------------------


def _newest_first(tags: list[str]) -> list[str]:
    from portside.versions import sort_tags  # only when the cache has no ranking yet

    return sort_tags(tags)


def _print_each(
    answers: list[Answer[T]], print_one: Callable[[str, T], object], *, between: str = ""
) -> int:
    """Several references' answers in order, ``between`` separating those printed, each
    failure as its error line at its place; the highest exit code (0: none failed)."""
    code = 0
    printed = False
    for text, _, result in answers:
        if isinstance(result, PortsideError):
            code = max(code, _failed(text, result))
            continue
        if printed and between:
            _out().write(between)
        print_one(text, result)
        printed = True
    return code


def _print_json_each(
    answers: list[Answer[T]],
    name: Callable[[Reference], str],
    entry: Callable[[str, T], dict[str, object]],
) -> int:
    """Several references' answers as one JSON array in their order, a failed one as
    ``{"reference", "error", "exitCode"}`` (its error line on stderr too); the highest
    exit code. ``name(ref)`` is how the entries name their reference."""
    import json

    entries = []
    codes = [0]
    for text, ref, result in answers:
        reference = name(ref) if ref is not None else text
        if isinstance(result, PortsideError):
            entries.append(
                {"reference": reference, "error": result.message, "exitCode": result.exit_code}
            )
            codes.append(_failed(text, result))
        else:
            entries.append(entry(reference, result))
    _out().write(json.dumps(entries, indent=2, ensure_ascii=False) + "\n")
    return max(codes)


def _cmd_tags(args: Args, cached: CachedRegistry) -> int:
    limit = args.limit

    async def newest_first(ref: Reference) -> list[str]:
        # Ranking is ours, not the cache's; it keeps the ranked list beside the tags.
        return (await cached.tags_derived(ref, "newest-first", _newest_first))[:limit]

    answers = _each(cached, args.refs, newest_first)
    only = _only(answers)
    if only is not None:
        _print_tags(only, args)
        return 0
    if args.json:
        # Named by repository: the tags are the repository's, whatever tag REF names.
        return _print_json_each(
            answers, lambda ref: ref.name, lambda name, tags: {"reference": name, "tags": tags}
        )
    between = "\n" if _out().isatty() else ""
    return _print_each(
        answers, lambda text, tags: _print_tags(tags, args, heading=text), between=between
    )


def _cmd_inspect(args: Args, cached: CachedRegistry) -> int:
    from portside.images import inspect

    platform = _platform(args.platform)
    answers = _each(cached, args.refs, lambda ref: inspect(cached, ref, platform))
    only = _only(answers)
    if only is not None:
        _print_inspect(only, args)
        return 0
    if args.json:
        return _print_json_each(answers, str, lambda _, info: info.to_json())
    return _print_each(answers, lambda _, info: _print_inspect(info, args), between="\n")


def _cmd_digest(args: Args, cached: CachedRegistry) -> int:
    from portside.images import platform_digest

    platform = _platform(args.platform)
    answers = _each(cached, args.refs, lambda ref: platform_digest(cached, ref, platform))
    only = _only(answers)
    if only is not None:
        _out().write(f"{only}\n")
        return 0
    return _print_each(answers, lambda text, digest: _out().write(f"{clean(text)}\t{digest}\n"))


def _files(paths: Sequence[str]) -> list[Path]:
    from portside.discover import find_dockerfiles

    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise UsageError(f"no such file or folder: {missing[0]}")
    files = find_dockerfiles(paths)
    if not files:
        raise UsageError(
            f"no Dockerfile found under {', '.join(paths)}",
            hint="Dockerfile, *.Dockerfile, Dockerfile.* and Containerfile are looked for",
        )
    return files


def _cmd_check(args: Args, cached: CachedRegistry) -> int:
    from pathlib import Path

    from portside import report, verdict
    from portside.check import check_files
    from portside.config import load_config
    from portside.policy import SEVERITY_ORDER, meets

    # The project's gate, read as the portside-check hook reads it.
    fail_on = verdict.thresholds(args.fail_on, load_config(Path.cwd()), ("error",))
    files = _files(args.paths)
    result = _run(cached, lambda: check_files(files, cached))
    for error in result.errors:
        _say("error", error)
    findings = result.findings
    if args.json:
        _out().write(report.to_json(findings) + "\n")
    elif args.sarif:
        _out().write(report.to_sarif(findings) + "\n")
    elif findings:
        _out().write(report.to_text(findings) + "\n")
    if not (args.json or args.sarif):
        counts = {s: sum(1 for f in findings if f.severity == s) for s in SEVERITY_ORDER}
        summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no findings"
        sys.stderr.write(f"{len(files)} file(s) checked: {summary}\n")
    if result.errors:
        return 2
    return 1 if any(meets(f, t) for f in findings for t in fail_on) else 0


def _cmd_pin(args: Args, cached: CachedRegistry) -> int:
    from pathlib import Path

    from portside.check import plan_pins, write_atomically

    files = _files(args.paths)
    plans = _run(cached, lambda: plan_pins(files, cached, update=args.update))
    out = _out()
    failed = changed = False
    for plan in plans:
        for problem in plan.problems:
            _say("error", f"{plan.file}: {problem}")
        if plan.problems:
            failed = True
            _say("error", f"{plan.file}: left unchanged")
            continue
        for change in plan.changes:
            out.write(f"{plan.file}:{change.line}: {change.old} -> {change.new}\n")
        if plan.changed and plan.new_text is not None:
            changed = True
            if not args.check:
                write_atomically(Path(plan.file), plan.new_text)
    if failed:
        return 1
    if args.check and changed:
        sys.stderr.write("pin --check: files would change\n")
        return 1
    return 0


def _print_results(results: list[Any], args: Args) -> None:
    out = _out()
    if args.json:
        import json

        out.write(json.dumps([r.to_json() for r in results], indent=2) + "\n")
    elif args.ref_only:
        out.write(results[0].ref_text() + "\n")
    else:
        for r in results:
            extra = "\t".join(str(x) for x in (r.platform, r.created) if x)
            out.write(f"{r.ref_text()}" + (f"\t{extra}" if extra else "") + "\n")


def _cmd_query(args: Args, cached: CachedRegistry) -> int:
    from portside.query import parse_query, run_query

    query = parse_query(args.text)  # syntax errors before any request
    results = _run(cached, lambda: run_query(query, cached))
    if not results:
        sys.stderr.write("no image matches\n")
        return 1
    _print_results(results, args)
    return 0


def _cmd_latest(args: Args, cached: CachedRegistry) -> int:
    from portside.query import latest

    ref = _parse_ref(args.ref)
    result = _run(cached, lambda: latest(ref, cached))
    if result is None:
        sys.stderr.write(f"no release found in the line of {ref.familiar}\n")
        return 1
    if args.json:
        import json

        _out().write(json.dumps(result.to_json(), indent=2) + "\n")
    else:
        _print_results([result], args)
    return 0


def _deadline(args: Args) -> float:
    """--deadline, else $PORTSIDE_DEADLINE, else the verb's default: never unbounded."""
    from portside.registry.options import deadline

    return deadline(
        args.deadline, TRANSFER_DEADLINE if args.verb in TRANSFER_VERBS else DEFAULT_DEADLINE
    )


def _client_options(args: Args) -> Any:
    # The one core function every surface configures its client with.
    from portside.registry.options import client_options

    return client_options(
        insecure=args.insecure_registry,
        ca_file=args.ca_file,
        timeout=args.timeout,
        deadline_s=_deadline(args),
    )


def _print_report(report: Any, as_json: bool) -> None:
    """A build's or push's report: JSON with ``--json``, else its summary for a person."""
    if as_json:
        import json

        _out().write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        _out().write("".join(clean(line) + "\n" for line in report.summary()))


def _cmd_build(args: Args, cached: CachedRegistry) -> int:
    import asyncio
    from pathlib import Path

    from portside import publish
    from portside.progress import reporter_for

    config = publish.load_image_config(Path(args.project))
    with reporter_for(sys.stderr) as progress:
        result = asyncio.run(
            publish.run_build(config, client_options=_client_options(args), progress=progress)
        )
    _print_report(result, args.json)
    return 0


def _cmd_push(args: Args, cached: CachedRegistry) -> int:
    import asyncio

    from portside import publish
    from portside.progress import reporter_for

    destinations: dict[str, list[str]] = {}
    for text in args.destinations:
        ref = _parse_ref(text)
        if ref.digest is not None:
            raise UsageError(f"{text}: a destination names a tag, not a digest")
        destinations.setdefault(ref.repository_ref().name, []).append(ref.tag or "latest")
    try:
        with reporter_for(sys.stderr) as progress:
            report = asyncio.run(
                publish.run_push(
                    args.source,
                    destinations,
                    dry_run=args.dry_run,
                    client_options=_client_options(args),
                    progress=progress,
                )
            )
    except publish.PublishError as exc:
        _print_report(exc.report, args.json)
        raise
    _print_report(report, args.json)
    return 0


def _cmd_publish(args: Args, cached: CachedRegistry) -> int:
    import asyncio
    from pathlib import Path

    from portside import publish
    from portside.progress import reporter_for

    try:
        with reporter_for(sys.stderr) as progress:
            report = asyncio.run(
                publish.run_publish(
                    Path(args.project),
                    dry_run=args.dry_run,
                    json_path=Path(args.json) if args.json not in (None, "-") else None,
                    client_options=_client_options(args),
                    progress=progress,
                )
            )
    except publish.PublishError as exc:
        _print_report(exc.report, args.json == "-")
        raise
    _print_report(report, args.json == "-")
    return 0


def _cmd_prune(args: Args, cached: CachedRegistry) -> int:
    from portside.cli_retention import run_prune

    return run_prune(args, _client_options(args))


def _cmd_usage(args: Args, cached: CachedRegistry) -> int:
    from portside.cli_retention import run_usage

    return run_usage(args, _client_options(args))


def _cmd_retire(args: Args, cached: CachedRegistry) -> int:
    from portside.cli_lifecycle import run_retire

    return run_retire(args, _client_options(args))


def _cmd_pull_back(args: Args, cached: CachedRegistry) -> int:
    from portside.cli_lifecycle import run_pull_back

    return run_pull_back(args, _client_options(args))


_COMMANDS = {
    "retire": _cmd_retire,
    "pull-back": _cmd_pull_back,
    "prune": _cmd_prune,
    "usage": _cmd_usage,
    "build": _cmd_build,
    "push": _cmd_push,
    "publish": _cmd_publish,
    "tags": _cmd_tags,
    "inspect": _cmd_inspect,
    "digest": _cmd_digest,
    "check": _cmd_check,
    "pin": _cmd_pin,
    "query": _cmd_query,
    "latest": _cmd_latest,
}


# -- entry point ---------------------------------------------------------------------


def _say(kind: str, text: str) -> None:
    """One line on stderr: ``text``'s line breaks and other controls are escaped, so a
    registry's message cannot add lines of its own."""
    _stderr(f"{PROG}: {kind}: {clean(text)}\n")


def _stderr(text: str) -> None:
    # A stderr that is gone (a closed pipe) must not turn the documented exit code of
    # the error being reported into an internal error.
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _debug() -> bool:
    return os.environ.get("PORTSIDE_DEBUG", "") not in ("", "0")


def _print_traceback() -> None:
    import traceback

    traceback.print_exc(file=sys.stderr)


def _lsp(argv: Sequence[str]) -> int:
    """``portside lsp [--tcp HOST:PORT] ...``: the language server, its own options."""
    try:
        from lsp_server import main as lsp_main
    except ImportError as exc:  # pygls and lsprotocol are dependencies: a broken install
        _say("error", f"the language server cannot start: {exc}")
        _say("hint", "reinstall portside: pip install --force-reinstall portside")
        return 2
    return lsp_main(list(argv))


def _watch(argv: Sequence[str]) -> int:
    """``portside watch ...``: the watcher, its own options (see ``portside.cli_watch``)."""
    from portside.cli_watch import main as watch_main

    try:
        return watch_main(argv)
    except SystemExit as exc:  # argparse: --help, usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except KeyboardInterrupt:
        return 130
    except PortsideError as exc:
        _say("error", exc.message)
        if exc.hint:
            _say("hint", exc.hint)
        return exc.exit_code
    except Exception as exc:
        if _debug():
            _print_traceback()
        _say("internal error", f"unexpected {type(exc).__name__}")
        _say("hint", "this is a bug in portside; rerun with PORTSIDE_DEBUG=1 to see the traceback")
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``portside`` command with ``argv`` (default ``sys.argv[1:]``); the exit code."""
    cached: CachedRegistry | None = None
    arguments = sys.argv[1:] if argv is None else list(argv)
    if sys.stderr is None:
        # Started with stderr closed (``2>&-``): write into nothing. Opening /dev/null
        # also takes descriptor 2, so no file opened later lands there by accident.
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the process's lifetime
    if arguments[:1] == ["lsp"]:
        return _lsp(arguments[1:])
    if arguments[:1] == ["watch"]:
        return _watch(arguments[1:])
    try:
        try:
            args = parse_args(arguments)
        except SystemExit as exc:  # argparse: --help, --version, usage errors
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        cached = _make_cached(args)
        code = _COMMANDS[args.verb](args, cached)
        sys.stdout.flush()
        return code
    except KeyboardInterrupt:
        return 130
    except PortsideError as exc:
        if _debug():
            _print_traceback()
        # One line, whatever the message holds; only a query error's excerpt and caret,
        # which Portside made, follow on lines of their own.
        message, excerpt = exc.message, getattr(exc, "excerpt", None)
        if isinstance(excerpt, str) and message.endswith("\n" + excerpt):
            message = message[: -len(excerpt) - 1]
        else:
            excerpt = None
        _say("error", message)
        for line in excerpt.split("\n") if excerpt else ():
            _stderr(f"  {clean(line)}\n")
        if exc.hint:
            _say("hint", exc.hint)
        return exc.exit_code
    except BrokenPipeError:
        # The reader went away (``portside tags x | head -1``): stop quietly, and point
        # stdout at /dev/null so the interpreter's final flush does not complain.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 141
    except Exception as exc:
        if _debug():
            _print_traceback()
        # Only the type: an unexpected exception's text may hold anything, secrets too.
        _say("internal error", f"unexpected {type(exc).__name__}")
        _say("hint", "this is a bug in portside; rerun with PORTSIDE_DEBUG=1 to see the traceback")
        return 1
    finally:
        if cached is not None:
            for warning in cached.warnings:
                _say("warning", warning)
            if cached.store.write_errors:
                # The answer is right, but the next run will ask the registry again.
                _say("warning", f"could not write to the cache in {cached.store.root}")
