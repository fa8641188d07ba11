"""Language-server figures over stdio: Portside's server, the floor every pygls server
pays (importing pygls and lsprotocol, nothing else) and ``docker-langserver`` (npm
``dockerfile-language-server-nodejs`` 0.15.0) on the same files.

    .venv/bin/python benchmarks/bench_lsp.py [--requests 200] [--edits 50]
    .venv/bin/python benchmarks/bench_lsp.py --startup-only [--startups 15]

The peer is installed on first use into a cache directory (``--peer-dir``, default
``~/.cache/portside-bench/docker-langserver``) with ``npm install``; ``--peer PATH``
uses another ``docker-langserver``, ``--no-peer`` none.

Measures start-up to ``initialized`` (the floor, Portside, the peer), tag completion
latency (cold: an empty cache; warm: the cache filled) p50/p95, diagnostics latency
after an edit on a 300-line multi-stage Dockerfile (the first publish after the edit,
debounce excluded) with the hadolint plugin off and on, and resident memory (VmRSS)
after the run. The registry is a real local ``docker-registry`` seeded by the test
harness (``tests/harness``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from harness import data, seed  # noqa: E402
from harness.registry import RegistryFactory  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def big_dockerfile(host: str) -> str:
    lines = ["# syntax=docker/dockerfile:1", "ARG PY=3.12-slim-bookworm"]
    stage = 0
    while len(lines) < 300:
        lines.append(f"FROM {host}/library/python:${{PY}} AS s{stage}")
        lines.append(f"FROM {host}/library/alpine:3.21 AS a{stage}")
        for i in range(12):
            lines.append(f"RUN echo step {stage}-{i} && true")
        if stage:
            lines.append(f"COPY --from=s{stage - 1} /a /b")
        stage += 1
    return "\n".join(lines[:300]) + "\n"


class Server:
    def __init__(self, name: str, command: list[str], env: dict[str, str]) -> None:
        self.name, self.command, self.env = name, command, env
        self.client: LanguageClient | None = None
        self.published: dict[str, float] = {}
        self.versions: dict[str, int | None] = {}

    async def start(self, root: Path, init: dict[str, Any] | None = None) -> float:
        began = time.perf_counter()
        client = await ClientServerConfig(server_command=self.command, server_env=self.env).start()
        assert isinstance(client, LanguageClient)
        self.client = client

        def publish(params: lsp.PublishDiagnosticsParams) -> None:
            self.published[params.uri] = time.perf_counter()
            self.versions[params.uri] = params.version

        client.protocol.fm.features[lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = publish

        def register(params: lsp.RegistrationParams) -> None:
            return None

        if lsp.CLIENT_REGISTER_CAPABILITY not in client.protocol.fm.features:
            client.protocol.fm.features[lsp.CLIENT_REGISTER_CAPABILITY] = register

        await client.initialize_session(
            lsp.InitializeParams(
                capabilities=client_capabilities("visual-studio-code"),
                root_uri=root.as_uri(),
                initialization_options=init,
            )
        )
        return time.perf_counter() - began

    @property
    def pid(self) -> int:
        assert self.client is not None and self.client._server is not None
        return self.client._server.pid

    def open(self, uri: str, text: str) -> None:
        assert self.client is not None
        self.client.text_document_did_open(
            lsp.DidOpenTextDocumentParams(
                text_document=lsp.TextDocumentItem(
                    uri=uri, language_id="dockerfile", version=1, text=text
                )
            )
        )

    async def complete(self, uri: str, line: int, character: int) -> Any:
        assert self.client is not None
        return await self.client.text_document_completion_async(
            lsp.CompletionParams(
                text_document=lsp.TextDocumentIdentifier(uri=uri),
                position=lsp.Position(line=line, character=character),
            )
        )

    async def stop(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.client.shutdown_session(), 5)
            await self.client.stop()


async def completion_latencies(
    server: Server, uri: str, line: int, column: int, n: int
) -> list[float]:
    out = []
    for _ in range(n):
        began = time.perf_counter()
        await server.complete(uri, line, column)
        out.append((time.perf_counter() - began) * 1000)
    return out


async def diagnostics_latency(
    server: Server, uri: str, text: str, n: int, debounce: float, pause: float = 0.0
) -> list[float]:
    """Latency (ms) of the first publish after each of ``n`` edits, sent back to back
    (``pause``: seconds between one edit's first publish and the next edit)."""
    assert server.client is not None
    out = []
    for version in range(2, n + 2):
        server.published.pop(uri, None)
        edited = text.replace("step 0-0", f"step 0-0 v{version}")
        began = time.perf_counter()
        server.client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=edited)],
            )
        )
        deadline = began + 10

        def arrived(version: int = version) -> bool:
            # The first publish for this version (a server that sends no version: any).
            return uri in server.published and server.versions.get(uri) in (version, None)

        while not arrived() and time.perf_counter() < deadline:
            await asyncio.sleep(0.0005)
        if arrived():
            out.append((server.published[uri] - began - debounce) * 1000)
        if pause:
            await asyncio.sleep(pause)
    return out


PEER_PACKAGE = "dockerfile-language-server-nodejs@0.15.0"
# The floor: a pygls server that imports pygls and lsprotocol and answers initialize.
FLOOR = "from pygls.lsp.server import LanguageServer; LanguageServer('floor', '0').start_io()"


def find_peer(args: argparse.Namespace) -> str | None:
    """``docker-langserver``: ``--peer``, else the one in ``--peer-dir`` (installed there
    with npm on first use); ``None`` with ``--no-peer`` or without npm."""
    if args.no_peer:
        return None
    if args.peer:
        return str(args.peer)
    folder = Path(args.peer_dir).expanduser()
    binary = folder / "node_modules" / ".bin" / "docker-langserver"
    if not binary.exists():
        npm = shutil.which("npm")
        if npm is None:
            print("npm not found: measuring without docker-langserver", file=sys.stderr)
            return None
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(folder), PEER_PACKAGE],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return str(binary)


def servers_to_measure(peer: str | None) -> list[tuple[str, list[str]]]:
    """(name, command) of Portside's server and, given its path, docker-langserver."""
    servers = [("portside", [sys.executable, "-m", "lsp_server"])]
    if peer:
        servers.append(("docker-langserver", [peer, "--stdio"]))
    return servers


def startup_servers(peer: str | None) -> list[tuple[str, list[str]]]:
    """What start-up is measured for: the pygls floor, Portside, the peer."""
    return [("pygls floor", [sys.executable, "-c", FLOOR]), *servers_to_measure(peer)]


def server_env(cache: Path, *, hadolint: bool = False) -> dict[str, str]:
    """The servers' environment: this checkout's portside, caching in ``cache``; the
    hadolint plugin on (its binary from the ``hadolint`` extra) or off."""
    env = {**os.environ, "PORTSIDE_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    if hadolint:
        env.pop("PORTSIDE_HADOLINT", None)
    else:
        env["PORTSIDE_HADOLINT"] = "off"
    return env


async def startup_times(
    name: str, command: list[str], env: dict[str, str], root: Path, runs: int
) -> list[float]:
    """Start-up to ``initialized`` in ms, of ``runs`` fresh servers one after another."""
    startups = []
    for _ in range(runs):
        server = Server(name, command, env)
        startups.append(await server.start(root) * 1000)
        await server.stop()
    return startups


async def interleaved_startups(
    servers: list[tuple[str, list[str]]], env: dict[str, str], root: Path, runs: int
) -> dict[str, list[float]]:
    """Start-up to ``initialized`` (ms) of each server, ``runs`` rounds interleaved so a
    noisy moment costs every server alike."""
    times: dict[str, list[float]] = {name: [] for name, _ in servers}
    for _ in range(runs):
        for name, command in servers:
            times[name] += await startup_times(name, command, env, root, 1)
    return times


def own_imports(runs: int) -> list[float]:
    """What the server's own modules add to the floor's imports, in ms, by
    ``python -X importtime``: the floor (asyncio, pygls, lsprotocol) first, then
    ``lsp_server.handlers`` (everything ``initialize`` runs on), whose cumulative time
    counts only what the floor did not already import."""
    # asyncio belongs to the floor: every pygls server imports it to run.
    code = "import asyncio, pygls.lsp.server, lsprotocol.types; import lsp_server.handlers"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        for line in done.stderr.splitlines():
            if line.rstrip().endswith("| lsp_server.handlers"):
                out.append(int(line.split("|")[1]) / 1000)
    return out


def print_startups(times: dict[str, list[float]]) -> None:
    floor = statistics.median(times["pygls floor"])
    for name, values in times.items():
        median = statistics.median(values)
        extra = f", floor + {median - floor:.0f} ms" if name == "portside" else ""
        print(
            f"{name}: start-up to initialized, median of {len(values)}: {median:.0f} ms "
            f"(min {min(values):.0f}, max {max(values):.0f}{extra})"
        )


def print_own_imports(runs: int) -> None:
    values = own_imports(runs)
    print(
        f"portside's own imports on top of the floor (-X importtime, {len(values)} runs): "
        f"min {min(values):.0f} ms, median {statistics.median(values):.0f} ms"
    )


async def startup_only(args: argparse.Namespace) -> None:
    """Only start-up to ``initialized`` (no registry needed): ``--startup-only``."""
    compile_checkout()
    work = Path(tempfile.mkdtemp(prefix="bench-lsp-"))
    try:
        root = work / "ws"
        root.mkdir()
        servers = startup_servers(find_peer(args))
        print_startups(
            await interleaved_startups(servers, server_env(work / "cache"), root, args.startups)
        )
        print_own_imports(args.startups)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def compile_checkout() -> None:
    """Bytecode for this checkout's modules, as an installed package has: start-up is
    measured from bytecode, not from compiling the sources."""
    import compileall

    for package in ("portside", "lsp_server"):
        compileall.compile_dir(str(ROOT / package), quiet=1)


async def bench(args: argparse.Namespace) -> None:
    compile_checkout()
    if args.startup_only:
        await startup_only(args)
        return
    work = Path(tempfile.mkdtemp(prefix="bench-lsp-"))
    factory = RegistryFactory(work / "registries")
    try:
        registry = factory(name="bench")
        seed.seed_from_tsv(registry, "library/python", data.load_current("python"), platforms=True)
        seed.seed_from_tsv(registry, "library/alpine", data.load_current("alpine"), platforms=True)
        host = registry.host
        text = big_dockerfile(host)
        line_text = f"FROM {host}/library/python:3.12-slim-bookworm"
        results: dict[str, dict[str, str]] = {}

        peer = find_peer(args)
        startup_root = work / "ws-startup"
        startup_root.mkdir()
        startups = await interleaved_startups(
            startup_servers(peer), server_env(work / "cache-startup"), startup_root, args.startups
        )
        print_startups(startups)
        print_own_imports(args.startups)
        floor = statistics.median(startups["pygls floor"])
        runs = [(n, c, False) for n, c in servers_to_measure(peer)]
        runs.insert(1, ("portside", [sys.executable, "-m", "lsp_server"], True))
        for name, command, hadolint in runs:
            label = f"{name} (hadolint on)" if hadolint else name
            row: dict[str, str] = {}
            # Plain folder names: a URI with spaces or parentheses may come back from a
            # server spelled another way, and its publishes would not be recognised.
            slug = f"{name}-hadolint" if hadolint else name
            cache = work / f"cache-{slug}"
            env = server_env(cache, hadolint=hadolint)
            root = work / f"ws-{slug}"
            root.mkdir()
            median = statistics.median(startups[name])
            row[f"start-up to initialized (ms, median of {args.startups})"] = f"{median:.0f}" + (
                f" (floor+{median - floor:.0f})" if name == "portside" else ""
            )

            server = Server(name, command, env)
            await server.start(root, {"debounceMs": 0} if name == "portside" else None)
            uri = (root / "Dockerfile").as_uri()
            server.open(uri, line_text + "\n")
            column = line_text.index(":3.12") + 1
            if not hadolint:
                # cold: the first request of a fresh server on an empty cache, repeated
                # over several servers.
                cold: list[float] = []
                for i in range(args.cold):
                    shutil.rmtree(cache, ignore_errors=True)
                    s = Server(name, command, env)
                    await s.start(root, None)
                    s.open(uri, line_text + "\n")
                    began = time.perf_counter()
                    result = await s.complete(uri, 0, column)
                    cold.append((time.perf_counter() - began) * 1000)
                    if i == 0:
                        items = (
                            result.items
                            if isinstance(result, lsp.CompletionList)
                            else (result or [])
                        )
                        row["tag items (first request)"] = str(len(items))
                    await s.stop()
                row["cold tag completion p50/p95 (ms)"] = (
                    f"{pct(cold, 0.5):.1f} / {pct(cold, 0.95):.1f}"
                )
                await server.complete(uri, 0, column)  # fill the cache
                warm = await completion_latencies(server, uri, 0, column, args.requests)
                row["warm tag completion p50/p95 (ms)"] = (
                    f"{pct(warm, 0.5):.2f} / {pct(warm, 0.95):.2f}"
                )
            big = (root / "big.Dockerfile").as_uri()
            server.open(big, text)
            await asyncio.sleep(1.0)
            diag = await diagnostics_latency(server, big, text, args.edits, 0.0)
            if diag:
                row["diagnostics after edit p50/p95 (ms, debounce excluded)"] = (
                    f"{pct(diag, 0.5):.1f} / {pct(diag, 0.95):.1f}"
                )
            row["resident memory after run (MB)"] = f"{rss_mb(server.pid):.0f}"
            await server.stop()
            results[label] = row
        keys = list(results["portside"])
        width = max(len(k) for k in keys)
        print(f"{'':{width}}  " + "  ".join(f"{n:>22}" for n in results))
        for key in keys:
            print(
                f"{key:{width}}  " + "  ".join(f"{results[n].get(key, 'n/a'):>22}" for n in results)
            )
    finally:
        factory.close()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--cold", type=int, default=10)
    parser.add_argument("--edits", type=int, default=50)
    parser.add_argument("--peer", help="path of docker-langserver (default: installed)")
    parser.add_argument(
        "--peer-dir",
        default="~/.cache/portside-bench/docker-langserver",
        help="where docker-langserver is installed with npm on first use",
    )
    parser.add_argument("--no-peer", action="store_true", help="measure Portside alone")
    parser.add_argument("--startups", type=int, default=5, help="start-ups to take the median of")
    parser.add_argument(
        "--startup-only", action="store_true", help="measure start-up only (no registry)"
    )
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
