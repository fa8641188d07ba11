"""``portside retire`` and ``portside pull-back``: the command-line surface of
:mod:`portside.lifecycle` (arguments in, what changed out)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portside import lifecycle
from portside.errors import UsageError
from portside.reference import Reference
from portside.terminal import clean

if TYPE_CHECKING:
    import argparse

    from portside.registry.transport import ClientOptions

Verb = Callable[[str, str], "argparse.ArgumentParser"]


def add_verbs(verb: Verb) -> None:
    retire = verb(
        "retire",
        "mark an image end-of-life: attach a lifecycle artifact (as `oras attach` writes it)",
    )
    retire.add_argument("ref", metavar="REF", help="the image: name:tag or name@digest")
    retire.add_argument(
        "--date", metavar="DATE", help="end of life: YYYY-MM-DD or an RFC 3339 time (default now)"
    )
    retire.add_argument("--reason", metavar="TEXT", help="why, shown to consumers")
    retire.add_argument("--dry-run", action="store_true", help="show what would be attached")
    retire.add_argument("--json", action="store_true", help="print JSON")

    pull = verb(
        "pull-back",
        "retire an image now and move every tag on it back to the newest earlier build",
    )
    pull.add_argument("ref", metavar="REF", help="the image: name:tag or name@digest")
    pull.add_argument("--reason", metavar="TEXT", required=True, help="why, shown to consumers")
    pull.add_argument("--dry-run", action="store_true", help="show every change; make none")
    pull.add_argument(
        "--delete-image",
        action="store_true",
        help="where a tag has no earlier build and the registry cannot delete a tag alone, "
        "delete the retired image (and so its remaining tags) last",
    )
    pull.add_argument("--json", action="store_true", help="print JSON")


def _date(text: str | None) -> dt.datetime:
    if text is None:
        return dt.datetime.now(dt.timezone.utc)
    parsed = lifecycle.parse_date(text)
    if parsed is None:
        raise UsageError(
            f"--date {text!r} is not a date", hint="write YYYY-MM-DD or 2026-01-31T12:00:00Z"
        )
    return parsed


def run_retire(args: Any, options: ClientOptions) -> int:
    from portside.notify.lifecycle import notify_retired
    from portside.notify.published import project_notifiers
    from portside.registry.client import RegistryClient

    ref = Reference.parse(args.ref)
    date = _date(args.date)
    notifiers = [] if args.dry_run else project_notifiers(Path("."))

    async def work() -> list[lifecycle.Retirement]:
        async with RegistryClient(options) as client:
            done = await lifecycle.retire(
                client, ref, date=date, reason=args.reason, dry_run=args.dry_run
            )
        if not args.dry_run:
            # Consumers hear of it through the project's notifiers, as of a publish.
            await notify_retired(
                notifiers, ref, done, date=lifecycle.format_date(date), reason=args.reason
            )
        return done

    done = asyncio.run(work())
    if args.json:
        report = {
            "reference": str(ref),
            "end_of_life": lifecycle.format_date(date),
            "dry_run": args.dry_run,
            "retired": [{"subject": str(r.subject), "artifact": str(r.artifact)} for r in done],
        }
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return 0
    verb = "would attach" if args.dry_run else "attached"
    for retirement in done:
        sys.stdout.write(
            f"{ref.name}@{retirement.subject}: {verb} lifecycle artifact {retirement.artifact} "
            f"(end of life {lifecycle.format_date(date)})\n"
        )
    return 0


def run_pull_back(args: Any, options: ClientOptions) -> int:
    from portside.notify.lifecycle import notify_pulled_back
    from portside.notify.published import project_notifiers
    from portside.policy import scheme_at
    from portside.registry.client import RegistryClient

    ref = Reference.parse(args.ref)
    scheme = scheme_at(ref, Path("."))
    notifiers = [] if args.dry_run else project_notifiers(Path("."))
    now = dt.datetime.now(dt.timezone.utc)

    async def work() -> lifecycle.PullBackPlan:
        async with RegistryClient(options) as client:
            plan = await lifecycle.plan_pull_back(client, ref, scheme, now=now)
            if not args.dry_run:
                await lifecycle.apply_pull_back(
                    client, plan, reason=args.reason, now=now, delete_image=args.delete_image
                )
        if not args.dry_run:
            await notify_pulled_back(notifiers, plan, reason=args.reason)
        return plan

    plan = asyncio.run(work())
    if args.json:
        sys.stdout.write(json.dumps({**plan.to_json(), "dry_run": args.dry_run}, indent=2) + "\n")
        return 0
    head = "would pull back" if args.dry_run else "pulled back"
    sys.stdout.write(f"{head} {plan.repository.name}@{plan.digest}\n")
    for digest in plan.retire:
        sys.stdout.write(f"  retire {digest}\n")
    for move in plan.moves:
        sys.stdout.write(f"  {clean(move.describe())}\n")
    return 0
