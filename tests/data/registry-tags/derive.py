"""Derive a small history file from a full one (how the ``history/*-since-*`` files
were made; see README.md).

    python derive.py FULL.tsv OUT.tsv --since 2024-03-01 [--until 2025-10-01] [--match REGEX]

The output's first rows, all dated ``--since``, are the state of every tag on that day
(changes dated before it applied in order); then the full history's rows dated after
``--since`` and up to ``--until``, unchanged. ``--match`` keeps only the tags it matches
(from their start). So the state the output gives for any date in the window equals the
full history's (for the matched tags).
"""

from __future__ import annotations

import argparse
import csv
import re
import sys


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("full")
    parser.add_argument("out")
    parser.add_argument("--since", required=True)
    parser.add_argument("--until", default="9999-12-31")
    parser.add_argument("--match", default="")
    args = parser.parse_args(argv)
    pattern = re.compile(args.match)
    with open(args.full, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    header, body = rows[0], [r for r in rows[1:] if r and pattern.match(r[1])]
    state: dict[str, str] = {}
    later: list[list[str]] = []
    for date, tag, build in body:
        if date < args.since:
            if build == "-":
                state.pop(tag, None)
            else:
                state[tag] = build
        elif args.since < date <= args.until or date == args.since:
            later.append([date, tag, build])
    with open(args.out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        writer.writerows([args.since, tag, build] for tag, build in sorted(state.items()))
        writer.writerows(later)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
