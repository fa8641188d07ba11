"""``portside-check``: fail a commit whose Dockerfiles name images that are missing,
unversioned or from a registry not allowed (the thresholds are configurable)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from portside import report, verdict
from portside.check import check_files
from portside.config import load_config
from pre_commit_hooks._common import files_of, parser, run_hook, say, with_registry

PROG = "portside-check"


def main(argv: Sequence[str] | None = None) -> int:
    p = parser(PROG, "Check the images Dockerfiles use against their registries.")
    p.add_argument(
        "--fail-on",
        metavar="SEVERITY|KIND",
        action="append",
        help="fail on findings of this severity or above, or of this kind (repeatable, "
        "comma-separated; default: [tool.portside.pre-commit] fail-on, else "
        f"{','.join(verdict.CHECK_FAIL_ON)})",
    )
    args = p.parse_args(sys.argv[1:] if argv is None else argv)

    def body() -> int:
        config = load_config(Path.cwd())
        thresholds = verdict.thresholds(args.fail_on, config, verdict.CHECK_FAIL_ON)
        require = args.require_network or config.require_network
        files = files_of(args.files)
        if not files:
            return 0
        result = with_registry(args, lambda cached: check_files(files, cached))
        for error in result.errors:
            say(PROG, "error", error)
        outcome = verdict.judge(result.findings, thresholds, require_network=require)
        if outcome.failing:
            sys.stdout.write(report.to_text(outcome.failing) + "\n")
        line = outcome.unchecked_line()
        if line:
            say(PROG, "error" if require else "unchecked", line)
        return 0 if outcome.ok and not result.errors else 1

    return run_hook(PROG, body)
