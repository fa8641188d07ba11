"""``portside watch``: the command-line surface of ``portside.watch`` (argv in, exit code out).

Exit codes with ``--once``: 0 nothing changed, 1 something changed (the notifications
say what), 5 nothing changed but some images could not be checked, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from portside.errors import PortsideError

HELP = """\
Watch the base images your Dockerfiles use and say when one is rebuilt (same tag, new
digest), superseded (a newer version in its line, or a newer variant) or removed, when
its publisher retires it (end of life) and when a report attached to it names new
vulnerabilities.

  portside watch --once [PATH...]             one round; exit 1 when something changed
  portside watch --interval 300 [PATH...]     a service: a round every 5 minutes
  portside watch --listen 0.0.0.0:8080 ...    also act on registry webhooks at once
  portside watch --history IMAGE              what changed when (and who was told)

State: --state PATH | sqlite:///PATH | postgresql://USER@HOST/DB (shared by several
watchers), default $XDG_STATE_HOME/portside/watch.sqlite3. Notifiers come from
[tool.portside.notify] plus --jsonl, --webhook (signed with $PORTSIDE_WEBHOOK_SECRET)
and --editor. The first run only records what it sees.

exit codes with --once: 0 nothing changed, 1 something changed, 5 nothing changed but
some images could not be checked (unreachable, rate-limited), 2 usage or configuration.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="portside watch",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "paths", nargs="*", metavar="PATH", help="Dockerfiles, compose files or folders (default .)"
    )
    parser.add_argument(
        "--once", action="store_true", help="one round, then exit (1 when something changed)"
    )
    parser.add_argument(
        "--json", action="store_true", help="with --once or --history: JSON on stdout"
    )
    parser.add_argument(
        "--interval", type=float, default=300.0, help="seconds between rounds (service)"
    )
    parser.add_argument(
        "--tags-every",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="list a repository's tags (newer versions) and what is attached to its images "
        "(end of life, vulnerability reports) at most this often; 0: every round",
    )
    parser.add_argument(
        "--concurrency", type=int, default=8, help="requests in flight per registry"
    )
    parser.add_argument(
        "--vulnerable-at",
        choices=("low", "medium", "high", "critical"),
        default="high",
        help="tell of attached vulnerabilities at or above this severity (default high)",
    )
    parser.add_argument("--state", help="state location (file, sqlite:///PATH, postgresql://...)")
    parser.add_argument(
        "--history", metavar="IMAGE", nargs="?", const="", help="show what changed when"
    )
    parser.add_argument("--listen", metavar="HOST:PORT", help="accept registry webhooks here")
    parser.add_argument(
        "--listen-secret-env",
        metavar="VAR",
        help="environment variable holding the webhook shared secret",
    )
    parser.add_argument(
        "--jsonl", type=Path, help="append notifications as JSON lines to this file"
    )
    parser.add_argument(
        "--webhook", action="append", default=[], metavar="URL", help="POST notifications here"
    )
    parser.add_argument(
        "--editor", action="store_true", help="tell open editors (the language server)"
    )
    parser.add_argument("--quiet", action="store_true", help="no console notifications")
    parser.add_argument("--insecure-registry", action="append", default=[], metavar="HOST")
    parser.add_argument("--ca-file")
    parser.add_argument("--timeout", type=float, default=15.0)
    return parser


def _print_history(spec: str | None, image: str, as_json: bool) -> int:
    from portside.reference import Reference
    from portside.watch.state import open_store

    name = ""
    if image:
        ref = Reference.parse(image)  # a bad reference is a one-line error
        # "python" is the repository's history, "python:3.13" that tag's.
        tagged = ":" in image.rsplit("/", 1)[-1].split("@", 1)[0]
        name = f"{ref.name}:{ref.tag}" if tagged and ref.tag else ref.name
    store = open_store(spec)
    try:
        rows = store.history(name or None)
    finally:
        store.close()
    if as_json:
        out = [
            {
                "at": r.at,
                "kind": r.kind,
                "target": r.target,
                "deliveries": r.deliveries,
                **r.payload,
            }
            for r in rows
        ]
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
        return 0
    if not rows:
        sys.stdout.write(f"no changes recorded{' for ' + image if image else ''}\n")
        return 0
    for row in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(row.at))
        told = ", ".join(f"{n} {s}" for n, s in row.deliveries.items()) or "nobody"
        sys.stdout.write(
            f"{when}Z {row.kind:<14} {row.payload.get('message', row.target)}  [{told}]\n"
        )
    return 0


def main(argv: Sequence[str]) -> int:
    import asyncio

    from portside.registry.transport import ClientOptions
    from portside.watch.service import WatchOptions, run_once, run_service

    parser = _parser()
    args = parser.parse_args(list(argv))
    for name in ("interval", "timeout"):
        if not 0 < getattr(args, name) < float("inf"):
            parser.error(f"--{name} must be a positive number of seconds")
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    # The service logs what each round checked and found; --once prints its problems
    # itself (below), so its log stays quiet.
    logging.basicConfig(
        level=logging.INFO if not args.once else logging.ERROR,
        format="%(asctime)s portside watch: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    if args.history is not None:
        return _print_history(args.state, args.history, args.json)
    from portside.registry.options import insecure_hosts

    secret = None
    if args.listen_secret_env:
        secret = os.environ.get(args.listen_secret_env)
        if not secret:
            raise PortsideError(f"--listen-secret-env: {args.listen_secret_env} is not set")
    options = WatchOptions(
        paths=args.paths,
        state=args.state,
        once=args.once,
        interval=args.interval,
        tags_every=max(0.0, args.tags_every),
        concurrency=args.concurrency,
        severity=args.vulnerable_at,
        listen=args.listen,
        listen_secret=secret,
        client_options=ClientOptions(
            insecure=insecure_hosts(args.insecure_registry),
            ca_file=args.ca_file,
            timeout=args.timeout,
        ),
        console=not (args.quiet or args.json),
        jsonl=args.jsonl,
        webhooks=args.webhook,
        webhook_secret=os.environ.get("PORTSIDE_WEBHOOK_SECRET") or None,
        editor=args.editor,
    )
    if not args.once:
        return asyncio.run(run_service(options))
    report, failures = asyncio.run(run_once(options))
    for problem in report.problems:
        sys.stderr.write(f"portside: warning: {problem}\n")
    for failure in failures:
        sys.stderr.write(f"portside: warning: notification not delivered: {failure}\n")
    if args.json:
        sys.stdout.write(
            json.dumps(
                {
                    "round": report.round_id,
                    "checked": report.checked,
                    "changes": [c.to_json() for c in report.changes],
                    "problems": report.problems,
                    "undelivered": failures,
                },
                indent=2,
            )
            + "\n"
        )
    if report.changes:
        return 1
    return 5 if report.problems else 0
