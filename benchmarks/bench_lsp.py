"""Language-server figures over stdio: Portside's server and, where the feature exists,
``docker-langserver`` (npm ``dockerfile-language-server-nodejs``) on the same files.

    .venv/bin/python benchmarks/bench_lsp.py [--requests 200] [--peer PATH/docker-langserver]
    .venv/bin/python benchmarks/bench_lsp.py --startup-only [--startups 15]

Measures start-up to ``initialized``, tag completion latency (cold: an empty cache;
warm: the cache filled) p50/p95, diagnostics latency after an edit on a 300-line
multi-stage Dockerfile (local findings, measured from the didChange to the publish,
debounce excluded), and resident memory (VmRSS) after the run. The registry is a real
local ``docker-registry`` seeded by the test harness (``tests/harness``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
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

    async def start(self, root: Path, init: dict[str, Any] | None = None) -> float:
        began = time.perf_counter()
        client = await ClientServerConfig(server_command=self.command, server_env=self.env).start()
        assert isinstance(client, LanguageClient)
        self.client = client

        def publish(params: lsp.PublishDiagnosticsParams) -> None:
            self.published[params.uri] = time.perf_counter()

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
    server: Server, uri: str, text: str, n: int, debounce: float
) -> list[float]:
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
        while uri not in server.published and time.perf_counter() < deadline:
            await asyncio.sleep(0.0005)
        if uri in server.published:
            out.append((server.published[uri] - began - debounce) * 1000)
    return out


def servers_to_measure(peer: str | None) -> list[tuple[str, list[str]]]:
    """(name, command) of Portside's server and, given its path, docker-langserver."""
    servers = [("portside", [sys.executable, "-m", "lsp_server"])]
    if peer:
        servers.append(("docker-langserver", [peer, "--stdio"]))
    return servers


def server_env(cache: Path) -> dict[str, str]:
    """The servers' environment: this checkout's portside, caching in ``cache``."""
    return {**os.environ, "PORTSIDE_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}


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


async def startup_only(args: argparse.Namespace) -> None:
    """Only start-up to ``initialized`` (no registry needed): ``--startup-only``."""
    work = Path(tempfile.mkdtemp(prefix="bench-lsp-"))
    try:
        for name, command in servers_to_measure(args.peer):
            root = work / f"ws-{name}"
            root.mkdir()
            startups = await startup_times(
                name, command, server_env(work / "cache"), root, args.startups
            )
            print(
                f"{name}: start-up to initialized median of {args.startups}: "
                f"{statistics.median(startups):.0f} ms "
                f"(min {min(startups):.0f}, max {max(startups):.0f})"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def bench(args: argparse.Namespace) -> None:
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

        for name, command in servers_to_measure(args.peer):
            row: dict[str, str] = {}
            cache = work / f"cache-{name}"
            env = server_env(cache)
            root = work / f"ws-{name}"
            root.mkdir()
            startups = await startup_times(name, command, env, root, args.startups)
            row[f"start-up to initialized (ms, median of {args.startups})"] = (
                f"{statistics.median(startups):.0f}"
            )

            server = Server(name, command, env)
            await server.start(root, {"debounceMs": 0} if name == "portside" else None)
            uri = (root / "Dockerfile").as_uri()
            server.open(uri, line_text + "\n")
            column = line_text.index(":3.12") + 1
            # cold: a fresh cache directory per request would need a fresh server; the
            # first request of a fresh server on an empty cache is the cold figure, and
            # repeated over several servers.
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
                        result.items if isinstance(result, lsp.CompletionList) else (result or [])
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
            results[name] = row
        keys = list(results["portside"])
        width = max(len(k) for k in keys)
        print(f"{'':{width}}  " + "  ".join(f"{n:>20}" for n in results))
        for key in keys:
            print(
                f"{key:{width}}  " + "  ".join(f"{results[n].get(key, 'n/a'):>20}" for n in results)
            )
    finally:
        factory.close()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--cold", type=int, default=10)
    parser.add_argument("--edits", type=int, default=50)
    parser.add_argument("--peer", help="path of docker-langserver, to measure it too")
    parser.add_argument("--startups", type=int, default=5, help="start-ups to take the median of")
    parser.add_argument(
        "--startup-only", action="store_true", help="measure start-up only (no registry)"
    )
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
