"""``portside prune`` and ``portside usage``: the command-line surface of
:mod:`portside.retention` (arguments in, plans and figures out)."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portside import retention, untagged
from portside.errors import ConfigError, UsageError
from portside.policy import scheme_at
from portside.reference import Reference
from portside.terminal import clean
from portside.versions import VersionScheme

if TYPE_CHECKING:
    import argparse

    from portside.pull_counts import PullCount
    from portside.registry.transport import ClientOptions

Verb = Callable[[str, str], "argparse.ArgumentParser"]


def add_verbs(verb: Verb) -> None:
    prune = verb(
        "prune",
        "show what the retention policy deletes in each repository; --apply deletes it",
    )
    _common(prune)
    prune.add_argument(
        "--apply", action="store_true", help="delete what the plan says (default: only show it)"
    )
    usage = verb(
        "usage",
        "tags, manifests and bytes per repository and version line, and what prune frees",
    )
    _common(usage)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "repositories", metavar="REPO", nargs="+", help="registry/repository, e.g. ghcr.io/acme/app"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--keep-used",
        metavar="PATH",
        action="append",
        default=[],
        help="never delete digests that Dockerfiles under PATH pin (repeatable)",
    )
    parser.add_argument(
        "--project",
        metavar="DIR",
        default=".",
        help="where the [[tool.portside.retention]] configuration is looked for (default .)",
    )


def _repository(text: str) -> Reference:
    ref = Reference.parse(text)
    if ref.digest is not None or ref.tag is not None:
        raise UsageError(f"{text}: name a repository, without a tag or digest")
    return ref.repository_ref()


def _age(created: dt.datetime | None, now: dt.datetime) -> str:
    if created is None:
        return "?"
    days = (now - created).days
    if days < 1:
        return f"{max(0, int((now - created).total_seconds() // 3600))}h"
    if days < 60:
        return f"{days}d"
    if days < 730:
        return f"{days // 30}mo"
    return f"{days // 365}y"


def _print_plan(plan: retention.Plan, now: dt.datetime, *, applying: bool) -> None:
    from portside.images import human_size

    out = sys.stdout
    rows = [
        (
            "delete" if image.delete else "keep",
            image.digest.short,
            image.tags_text,
            _age(image.created, now),
            human_size(image.size),
            image.rule,
        )
        for image in plan.images
    ]
    if out.isatty():
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, header_style="bold", title=plan.repository.name)
        for column in ("ACTION", "DIGEST", "TAGS", "AGE", "SIZE", "RULE"):
            table.add_column(column)
        for row in rows:
            style = "red" if row[0] == "delete" else ""
            table.add_row(*(Text(clean(cell), style=style) for cell in row))
        Console(highlight=False, markup=False, emoji=False).print(table)
    else:
        for row in rows:
            out.write(f"{plan.repository.name}\t" + "\t".join(clean(c) for c in row) + "\n")
    deletions = plan.deletions
    freed = human_size(plan.bytes_freed)
    summary = (
        f"{plan.repository.name}: {len(deletions)} of {len(plan.images)} manifests to delete "
        f"({freed} for the registry's garbage collection to free)"
    )
    if deletions and not applying:
        summary += "; nothing was deleted: run again with --apply to delete"
    sys.stderr.write(clean(summary) + "\n")


async def _plans(
    args: Any, client: Any, *, need_policy: bool
) -> list[tuple[retention.Plan, VersionScheme]]:
    project = Path(args.project)
    policies = retention.load_policies(project)
    for path in args.keep_used:
        if not Path(path).exists():
            raise UsageError(f"--keep-used {path}: no such file or folder")
    plans = []
    # What tags pointed to, remembered so a later run finds them untagged.
    history = untagged.TaggedHistory()
    for text in args.repositories:
        ref = _repository(text)
        policy = retention.policy_for(policies, ref)
        if policy is None:
            if need_policy:
                raise ConfigError(
                    f"no [[tool.portside.retention]] table matches {ref.name}",
                    hint="add one whose match glob names it (in pyproject.toml or portside.toml)",
                )
            policy = retention.RetentionPolicy(match=ref.name, source="(no policy)")
        scheme = scheme_at(ref, project)
        pinned = retention.pinned_digests(args.keep_used, ref) if args.keep_used else {}
        plan = await retention.make_plan(
            client, ref, policy, scheme, pinned=pinned, history=history
        )
        plans.append((plan, scheme))
        if plan.untagged_note and not args.json:
            sys.stderr.write(clean(plan.untagged_note) + "\n")
    if history.problem:
        sys.stderr.write(f"portside: not remembering tagged digests: {clean(history.problem)}\n")
    return plans


async def _apply(client: Any, plan: retention.Plan, stop: asyncio.Event) -> retention.ApplyResult:
    from portside.progress import reporter_for

    loop = asyncio.get_running_loop()
    # Ctrl-C stops between deletions, never inside one: the next run continues.
    loop.add_signal_handler(signal.SIGINT, stop.set)
    try:
        with reporter_for(sys.stderr) as progress:
            bar = progress.transfer(plan.repository.name, len(plan.deletions))

            def step(image: retention.ImageRecord, number: int, total: int) -> None:
                tags = image.tags_text
                progress("delete", f"{number}/{total} {image.digest.short} {tags}")
                if bar is not None:
                    bar(1)

            result = await retention.apply_plan(client, plan, stop=stop, progress=step)
            progress.done(plan.repository.name, ok=not result.stopped)
            return result
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def run_prune(args: Any, options: ClientOptions) -> int:
    from portside.registry.client import RegistryClient

    now = dt.datetime.now(dt.timezone.utc)
    stop = asyncio.Event()
    outcomes: list[tuple[retention.Plan, retention.ApplyResult | None]] = []

    async def work() -> None:
        async with RegistryClient(options) as client:
            for plan, _ in await _plans(args, client, need_policy=True):
                if not args.json:
                    _print_plan(plan, now, applying=args.apply)
                if not args.apply or not plan.deletions:
                    outcomes.append((plan, None))
                    continue
                result = await _apply(client, plan, stop)
                outcomes.append((plan, result))
                if result.stopped:
                    break

    asyncio.run(work())
    if args.json:
        import json

        report = [
            {**plan.to_json(), "applied": result.to_json() if result else None}
            for plan, result in outcomes
        ]
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    stopped = [result for _, result in outcomes if result is not None and result.stopped]
    if stopped:
        done = sum(len(result.deleted) for _, result in outcomes if result is not None)
        sys.stderr.write(
            f"portside: stopped after {done} deletions; run the same command again to continue\n"
        )
        return 130
    return 0


def run_usage(args: Any, options: ClientOptions) -> int:
    from portside import pull_counts
    from portside.images import human_size
    from portside.registry.client import RegistryClient

    async def work() -> tuple[list[tuple[retention.Plan, VersionScheme]], list[PullCount]]:
        async with RegistryClient(options) as client:
            plans = await _plans(args, client, need_policy=False)
        known = pull_counts.sources()
        pulls = await asyncio.gather(
            *(pull_counts.pull_count(plan.repository, known) for plan, _ in plans)
        )
        return plans, list(pulls)

    plans, pulls = asyncio.run(work())
    results = [retention.usage(plan, scheme) for plan, scheme in plans]
    for (plan, _), told in zip(plans, pulls, strict=True):
        if told.problem:
            name = plan.repository.name
            sys.stderr.write(f"portside: {clean(name)}: no pull count: {clean(told.problem)}\n")
    if args.json:
        import json

        document: list[dict[str, object]] = []
        for rows, told in zip(results, pulls, strict=True):
            whole = rows[0].to_json()
            # None, never 0, when no source knows (most registries do not say).
            whole.update(pulls=told.count, pulls_from=told.source)
            document.append({"repository": whole, "lines": [row.to_json() for row in rows[1:]]})
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return 0

    def when(value: dt.datetime | None) -> str:
        return value.date().isoformat() if value else "?"

    def count(told: PullCount) -> str:
        # Unknown is not zero: most registries do not say.
        return "unknown" if told.count is None else str(told.count)

    header = ("LINE", "TAGS", "MANIFESTS", "SIZE", "PRUNE FREES", "NEWEST", "OLDEST", "PULLS")
    table = [
        (
            clean(row.line) if i else f"{clean(row.line)} (all)",
            str(row.tags),
            str(row.manifests),
            human_size(row.bytes),
            human_size(row.freed),
            when(row.newest),
            when(row.oldest),
            count(told) if i == 0 else "-",  # counted per repository, not per line
        )
        for rows, told in zip(results, pulls, strict=True)
        for i, row in enumerate(rows)
    ]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        view = Table(box=None, header_style="bold")
        for column in header:
            view.add_column(column)
        for cells in table:
            view.add_row(*cells)
        Console(highlight=False, markup=False, emoji=False).print(view)
    else:
        sys.stdout.write("\n".join("\t".join(cells) for cells in (header, *table)) + "\n")
    return 0
