"""``portside-lint``: what needs no network, fast enough for every commit of a large
repository: a missing or ``latest`` tag, a registry not allowed, a malformed reference,
an ``ARG`` with no default in ``FROM``; and hadolint's findings when its binary is
installed (the core's hadolint plugin)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from portside import report, verdict
from portside.check import lint_files
from pre_commit_hooks._common import files_of, parser, run_hook, say

PROG = "portside-lint"


def main(argv: Sequence[str] | None = None) -> int:
    p = parser(PROG, "Lint Dockerfiles without asking any registry.", network=False)
    p.add_argument(
        "--fail-on",
        metavar="SEVERITY|KIND",
        action="append",
        help="fail on findings of this severity or above, or of this kind (repeatable, "
        f"comma-separated; default {','.join(verdict.LINT_FAIL_ON)})",
    )
    args = p.parse_args(sys.argv[1:] if argv is None else argv)

    def body() -> int:
        thresholds = verdict.parse_thresholds(args.fail_on or verdict.LINT_FAIL_ON)
        files = files_of(args.files)
        if not files:
            return 0
        result = lint_files(files)  # no registry, no event loop: nothing of the network
        for error in result.errors:
            say(PROG, "error", error)
        outcome = verdict.judge(result.findings, thresholds)
        if outcome.failing:
            sys.stdout.write(report.to_text(outcome.failing) + "\n")
        return 0 if outcome.ok and not result.errors else 1

    return run_hook(PROG, body)
