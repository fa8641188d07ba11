"""Diagnostics after an edit, in interleaved rounds, with the server's CPU time per edit:
Portside with the hadolint plugin off and on, ``docker-langserver`` (see
``bench_lsp.py``, whose measurement this repeats) and, with ``--compare CHECKOUT``,
Portside's server from another checkout (its code, this checkout's benchmark).

    .venv/bin/python benchmarks/bench_lsp_edits.py [--rounds 5] [--edits 40]
    .venv/bin/python benchmarks/bench_lsp_edits.py --compare ../other-checkout
    .venv/bin/python benchmarks/bench_lsp_edits.py --pause 150 --no-peer

Each round starts every server afresh on the 300-line file of ``bench_lsp.py``, waits
1 s after opening it (as ``bench_lsp.py`` does: hadolint's first run may still be
going) and sends ``--edits`` edits back to back, each after the previous one's first
publish (``--pause MS``: that long after it, as someone typing would, so that each
edit's work runs to its end before the next one). Latencies of all rounds are pooled
into p50/p95; the servers take turns, so a noisy moment costs each alike. CPU time per
edit (user + system of the server process, from ``/proc``; hadolint's processes are not
counted) is less noisy than wall time on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import bench_lsp as b

from harness import data, seed  # bench_lsp put tests/ on sys.path
from harness.registry import RegistryFactory


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process ``pid`` (its own, not its children's)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_command(checkout: Path) -> list[str]:
    """Portside's server from ``checkout``, wherever the benchmark runs: ``-m`` would
    put the working folder's ``lsp_server`` first on ``sys.path``, ahead of PYTHONPATH."""
    code = f"import sys; sys.path.insert(0, {str(checkout)!r}); import lsp_server; "
    return [sys.executable, "-c", code + "sys.exit(lsp_server.main())"]


async def one_round(
    name: str,
    command: list[str],
    env: dict[str, str],
    root: Path,
    text: str,
    edits: int,
    pause: float,
) -> tuple[list[float], float]:
    """Latencies (ms) of ``edits`` edits and the server's CPU ms per edit."""
    server = b.Server(name, command, env)
    await server.start(root, {"debounceMs": 0} if name.startswith("portside") else None)
    try:
        uri = (root / "big.Dockerfile").as_uri()
        server.open(uri, text)
        await asyncio.sleep(1.0)
        began = cpu_seconds(server.pid)
        latencies = await b.diagnostics_latency(server, uri, text, edits, 0.0, pause)
        await asyncio.sleep(pause)  # the last edit's work ends too
        return latencies, (cpu_seconds(server.pid) - began) * 1000 / edits
    finally:
        await server.stop()


async def bench(args: argparse.Namespace) -> None:
    b.compile_checkout()
    work = Path(tempfile.mkdtemp(prefix="bench-lsp-edits-"))
    factory = RegistryFactory(work / "registries")
    try:
        registry = factory(name="bench")
        seed.seed_from_tsv(registry, "library/python", data.load_current("python"), platforms=True)
        seed.seed_from_tsv(registry, "library/alpine", data.load_current("alpine"), platforms=True)
        text = b.big_dockerfile(registry.host)
        configs: list[tuple[str, list[str], dict[str, str]]] = []
        checkouts = [("portside", b.ROOT)]
        if args.compare:
            other = Path(args.compare).resolve()
            for package in ("portside", "lsp_server"):
                import compileall

                compileall.compile_dir(str(other / package), quiet=1)
            checkouts.append((f"portside@{other.name}", other))
        for label, checkout in checkouts:
            for hadolint in (False, True):
                cache = work / f"cache-{len(configs)}"
                env = {**b.server_env(cache, hadolint=hadolint), "PYTHONPATH": str(checkout)}
                name = f"{label} (hadolint {'on' if hadolint else 'off'})"
                configs.append((name, server_command(checkout), env))
        peer = b.find_peer(args)
        if peer:
            configs.append(("docker-langserver", [peer, "--stdio"], dict(os.environ)))
        latencies: dict[str, list[float]] = {name: [] for name, _, _ in configs}
        cpu: dict[str, list[float]] = {name: [] for name, _, _ in configs}
        for round_ in range(args.rounds):
            for index, (name, command, env) in enumerate(configs):
                root = work / f"ws-{round_}-{index}"
                root.mkdir()
                got, per_edit = await one_round(
                    name, command, env, root, text, args.edits, args.pause / 1000
                )
                latencies[name] += got
                cpu[name].append(per_edit)
        width = max(len(name) for name in latencies)
        pace = f", {args.pause:g} ms between edits" if args.pause else ", back to back"
        print(
            f"diagnostics after an edit, {args.rounds} rounds x {args.edits} edits{pace}, "
            "debounce excluded (ms)"
        )
        print(f"{'':{width}}  {'p50':>6}  {'p95':>6}  {'CPU/edit, median of rounds':>26}")
        for name, values in latencies.items():
            print(
                f"{name:{width}}  {b.pct(values, 0.5):6.1f}  {b.pct(values, 0.95):6.1f}  "
                f"{statistics.median(cpu[name]):26.1f}"
            )
    finally:
        factory.close()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--edits", type=int, default=40)
    parser.add_argument("--compare", help="another checkout whose server is measured too")
    parser.add_argument(
        "--pause", type=float, default=0.0, help="ms from an edit's first publish to the next edit"
    )
    parser.add_argument("--peer", help="path of docker-langserver (default: installed)")
    parser.add_argument(
        "--peer-dir",
        default="~/.cache/portside-bench/docker-langserver",
        help="where docker-langserver is installed with npm on first use",
    )
    parser.add_argument("--no-peer", action="store_true", help="measure Portside alone")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
