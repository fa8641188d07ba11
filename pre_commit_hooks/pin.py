"""``portside-pin``: pin image references to ``tag@digest`` in place (``--update LEVEL``
moves to the newest tag that level allows first). Like pre-commit's fixers it exits 1
when it changed a file, so the commit is retried with the change staged; every byte
other than the references is kept."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from portside.check import plan_pins, write_atomically
from portside.config import LEVELS, load_config
from pre_commit_hooks._common import files_of, parser, run_hook, say, with_registry

PROG = "portside-pin"


def main(argv: Sequence[str] | None = None) -> int:
    p = parser(PROG, "Pin the images Dockerfiles use to their digests, in place.")
    p.add_argument(
        "--update",
        choices=LEVELS,
        help="first move to the newest tag in the line that this level of update allows",
    )
    args = p.parse_args(sys.argv[1:] if argv is None else argv)

    def body() -> int:
        require = args.require_network or load_config(Path.cwd()).require_network
        files = files_of(args.files)
        if not files:
            return 0
        plans = with_registry(args, lambda cached: plan_pins(files, cached, update=args.update))
        failed = changed = False
        unchecked = 0
        for plan in plans:
            hard = [problem for problem in plan.problems if problem not in plan.unchecked]
            for problem in hard:
                say(PROG, "error", f"{plan.file}: {problem}")
            if hard or (require and plan.unchecked):
                failed = True
            unchecked += len(plan.unchecked)
            if plan.problems:
                if hard:
                    say(PROG, "error", f"{plan.file}: left unchanged")
                continue
            if plan.changed and plan.new_text is not None:
                write_atomically(Path(plan.file), plan.new_text)
                changed = True
                for change in plan.changes:
                    sys.stdout.write(f"{plan.file}:{change.line}: {change.old} -> {change.new}\n")
        if unchecked:
            reason = "; ".join(u for plan in plans for u in plan.unchecked[:1])
            say(
                PROG,
                "error" if require else "unchecked",
                f"{unchecked} image(s) not pinned: no registry answered ({reason})"
                + ("" if require else "; not a failure, --require-network makes it one"),
            )
        return 1 if failed or changed else 0

    return run_hook(PROG, body)
