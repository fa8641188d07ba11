"""Time ``portside prune``'s plan and apply against deleting the same set with skopeo.

    .venv/bin/python benchmarks/bench_prune.py [--tags 5000] [--manifests 2000] [--quick]

Everything runs on this machine against the real registry the tests use
(``docker-registry`` on loopback, plain HTTP, deletion enabled, started through
``tests/harness``). One repository holds ``--tags`` tags over ``--manifests`` images
(tag ``1.K.N`` for i = 100*K + N, pointing at image i mod manifests; each image a
single-platform OCI manifest, one config, one layer), and the policy is
``keep-newest-per-line = 2``: most images go.

- **plan**: ``retention.make_plan`` in-process (tags, a HEAD per tag, each manifest and
  config once, the referrers of each image to delete), on a fresh registry;
- **apply**: ``retention.apply_plan`` of that plan (the deletion probe, then one DELETE
  per image and its referrers lookups already made by the plan);
- **skopeo**: ``skopeo delete docker://HOST/REPO@DIGEST`` for the same digests, one
  process per image, on another fresh registry: what a shell loop over a list does.

Requests are counted in separate runs through the harness's recording proxy (so the
timed runs pay no proxy). A benchmark, not a test: nothing here asserts a time. Prints a
markdown table and writes it to ``benchmarks/results/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))  # the harness: same registry setup as the tests

from harness import seed  # noqa: E402
from harness.proxy import FaultProxy  # noqa: E402
from harness.registry import Registry  # noqa: E402
from portside import retention  # noqa: E402
from portside.reference import Reference  # noqa: E402
from portside.registry.client import RegistryClient  # noqa: E402
from portside.versions import DEFAULT_SCHEME  # noqa: E402

REPO = "bench/app"
POLICY = retention.RetentionPolicy(match="*", keep_newest_per_line=2, source="bench")


def fresh_registry(work: Path, name: str, tags: int, manifests: int) -> Registry:
    registry = Registry(work / name)
    registry.start()
    seed.seed_many_tags(registry, REPO, tags, distinct=manifests)
    return registry


async def plan_and_apply(host: str, *, apply: bool) -> tuple[retention.Plan, float, float]:
    repository = Reference.parse(f"{host}/{REPO}")
    async with RegistryClient() as client:
        started = time.perf_counter()
        plan = await retention.make_plan(client, repository, POLICY, DEFAULT_SCHEME)
        planned = time.perf_counter()
        if apply:
            await retention.apply_plan(client, plan)
        done = time.perf_counter()
    return plan, planned - started, done - planned


def skopeo_delete(host: str, digests: Sequence[str]) -> float:
    started = time.perf_counter()
    for digest in digests:
        subprocess.run(
            ["skopeo", "delete", "--tls-verify=false", f"docker://{host}/{REPO}@{digest}"],
            check=True,
            capture_output=True,
        )
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=5000)
    parser.add_argument("--manifests", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="500 tags over 200 images")
    args = parser.parse_args(argv)
    if args.quick:
        args.tags, args.manifests = 500, 200

    work = Path(tempfile.mkdtemp(prefix="bench-prune-"))
    registries: list[Registry] = []
    try:
        # Requests, through the recording proxy.
        counted = fresh_registry(work, "counted", args.tags, args.manifests)
        registries.append(counted)
        proxy = FaultProxy(counted)
        proxy.start()
        try:
            plan, _, _ = asyncio.run(plan_and_apply(proxy.host, apply=False))
            plan_requests = len(proxy.requests)
            before = len(proxy.requests)

            async def apply_counted() -> None:
                async with RegistryClient() as client:
                    await retention.apply_plan(client, plan)

            asyncio.run(apply_counted())
            apply_requests = len(proxy.requests) - before
        finally:
            proxy.stop()
        doomed = [str(image.digest) for image in plan.deletions]

        # skopeo's requests per deletion, on a sample of the same set.
        sample = fresh_registry(work, "sample", args.tags, args.manifests)
        registries.append(sample)
        proxy = FaultProxy(sample)
        proxy.start()
        try:
            skopeo_delete(proxy.host, doomed[:20])
            skopeo_per_image = len(proxy.requests) / min(20, len(doomed))
        finally:
            proxy.stop()

        # Time, without the proxy.
        timed = fresh_registry(work, "timed", args.tags, args.manifests)
        registries.append(timed)
        plan, plan_s, apply_s = asyncio.run(plan_and_apply(timed.host, apply=True))
        assert [str(i.digest) for i in plan.deletions] == doomed
        loop = fresh_registry(work, "skopeo", args.tags, args.manifests)
        registries.append(loop)
        skopeo_s = skopeo_delete(loop.host, doomed)
    finally:
        for registry in registries:
            registry.stop()
        shutil.rmtree(work, ignore_errors=True)

    stamp = dt.datetime.now()
    lines = [
        f"# portside prune: {args.tags} tags over {args.manifests} manifests "
        f"({stamp:%Y-%m-%d %H:%M})",
        "",
        f"Policy keep-newest-per-line = 2: {len(doomed)} of {len(plan.images)} images deleted. "
        f"Local plain-HTTP `docker-registry` on loopback; CPython {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; one run each, each on a freshly seeded registry.",
        "",
        "| step | seconds | requests | per image deleted |",
        "|---|---:|---:|---:|",
        f"| portside plan | {plan_s:.2f} | {plan_requests} | |",
        f"| portside apply | {apply_s:.2f} | {apply_requests} "
        f"| {apply_s / len(doomed) * 1000:.1f} ms |",
        f"| skopeo delete loop | {skopeo_s:.2f} | {skopeo_per_image * len(doomed):.0f} "
        f"(measured on 20) | {skopeo_s / len(doomed) * 1000:.1f} ms |",
        "",
        f"apply / skopeo loop: {apply_s / skopeo_s:.3f}; "
        f"(plan + apply) / skopeo loop: {(plan_s + apply_s) / skopeo_s:.3f}",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    out = HERE / "results" / f"bench_prune-{stamp:%Y%m%d-%H%M%S}.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
