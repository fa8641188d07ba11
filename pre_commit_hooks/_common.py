"""What the three hooks share: their options, the registry, and one-line errors."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from portside.errors import PortsideError
from portside.terminal import clean

T = TypeVar("T")


def parser(prog: str, description: str, *, network: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("files", metavar="FILE", nargs="*", help="Dockerfiles (pre-commit passes them)")
    if network:
        p.add_argument(
            "--require-network",
            action="store_true",
            help="fail when an image cannot be checked because no registry answered "
            "(default: say so in one line and pass)",
        )
        p.add_argument(
            "--offline", action="store_true", help="answer from the cache only, never ask"
        )
        p.add_argument(
            "--insecure-registry",
            metavar="HOST",
            action="append",
            default=[],
            help="allow plain HTTP / unverified TLS for HOST[:PORT] (repeatable; also "
            "$PORTSIDE_INSECURE_REGISTRIES, comma-separated)",
        )
        p.add_argument("--ca-file", metavar="PEM", help="extra CA certificates to trust")
    return p


def files_of(names: Sequence[str]) -> list[Path]:
    return [Path(name) for name in names]


def say(prog: str, kind: str, text: str) -> None:
    sys.stderr.write(f"{prog}: {kind}: {clean(text)}\n")


def with_registry(args: argparse.Namespace, work: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
    """``work(cached)`` with a cached registry client made from the hook's options."""
    import asyncio  # here: portside-lint needs no event loop

    from portside.cache import CachedRegistry
    from portside.registry.options import client_options

    # As the command line configures it: $PORTSIDE_INSECURE_REGISTRIES, $PORTSIDE_DEADLINE.
    options = client_options(insecure=args.insecure_registry, ca_file=args.ca_file)
    cached = CachedRegistry(options=options, offline=args.offline)

    async def run() -> T:
        async with cached:
            return await work(cached)

    result = asyncio.run(run())
    for warning in cached.warnings:  # a stale answer served: calm, one line each
        sys.stderr.write(f"note: {clean(warning)}\n")
    return result


def run_hook(prog: str, body: Callable[[], int]) -> int:
    """``body()``'s exit code; a Portside error is one line (and a hint), never a
    traceback (unless ``PORTSIDE_DEBUG=1``)."""
    try:
        return body()
    except PortsideError as exc:
        if os.environ.get("PORTSIDE_DEBUG", "") not in ("", "0"):
            raise
        say(prog, "error", exc.message.split("\n")[0])
        if exc.hint:
            say(prog, "hint", exc.hint)
        return exc.exit_code or 1
    except KeyboardInterrupt:
        return 130
