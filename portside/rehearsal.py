"""A dress rehearsal: run ``portside tags`` once against a registry served from this
process, so that a freshly forked daemon worker has walked the paths a command walks
before a real command arrives (a daemon's spare runs :func:`warm_up` and
:func:`rehearse`, then waits for a command).

Why: a forked worker shares its memory with the daemon until it writes to it, and a
Python program writes to almost everything it touches (reference counts, allocator
pools). A worker's first command spends ~13 ms in those copy-on-write page faults; a
rehearsal takes them while no one is waiting (:mod:`portside.daemon`). ``tags`` walks
the command line, the cache, the transport, httpx and asyncio: measured here, after it
an ``inspect`` takes ~115 faults instead of ~2,250, and a rehearsal of ``inspect`` as
well would double the rehearsal's time (~20 ms) for ~0.5 ms.

The registry here is no test double: nothing is checked against it. It answers the two
requests the command makes, on a loopback port, and is gone after.

:func:`warm_up` comes first: the parts of a command that need no registry (~6 ms),
which a rehearsal of ``tags`` alone would leave cold."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
import threading

REPOSITORY = "rehearsal"


def _routes() -> dict[str, bytes]:
    """Path -> JSON body: the version check and a tag list of 150 versions."""
    tags = [
        f"{major}.{minor}.{patch}{variant}"
        for major in range(3)
        for minor in range(10)
        for patch in range(5)
        for variant in ("", "-slim", "-alpine3.20")
    ]
    return {
        "/v2/": b"{}",
        f"/v2/{REPOSITORY}/tags/list": json.dumps({"name": REPOSITORY, "tags": tags}).encode(),
    }


def _answer(conn: socket.socket, routes: dict[str, bytes]) -> None:
    """HTTP/1.1 with keep-alive, GET and HEAD, no request bodies: what the client sends."""
    buffer = b""
    with conn:
        while True:
            while b"\r\n\r\n" not in buffer:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            method, path, *_ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            path = path.partition("?")[0]
            body = routes.get(path)
            status = "200 OK" if body is not None else "404 Not Found"
            body = body if body is not None else b'{"errors":[]}'
            headers = [
                f"HTTP/1.1 {status}",
                "Content-Type: application/json",
                f"Content-Length: {len(body)}",
                "Docker-Distribution-API-Version: registry/2.0",
            ]
            response = ("\r\n".join(headers) + "\r\n\r\n").encode()
            conn.sendall(response if method == "HEAD" else response + body)


def _serve(listener: socket.socket, routes: dict[str, bytes]) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return  # closed: the rehearsal is over
        threading.Thread(target=_answer, args=(conn, routes), daemon=True).start()


def rehearse() -> int:
    """Run the rehearsal (output to this process's stdout, the cache to a temporary
    directory); the command's exit code."""
    from portside.cli import main

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    server = threading.Thread(target=_serve, args=(listener, _routes()), daemon=True)
    server.start()
    host = f"127.0.0.1:{listener.getsockname()[1]}"
    cache = tempfile.mkdtemp(prefix="portside-rehearsal-")
    saved = os.environ.get("PORTSIDE_CACHE_DIR")
    os.environ["PORTSIDE_CACHE_DIR"] = cache
    try:
        return main(["tags", f"{host}/{REPOSITORY}"])
    finally:
        if saved is None:
            os.environ.pop("PORTSIDE_CACHE_DIR", None)
        else:
            os.environ["PORTSIDE_CACHE_DIR"] = saved
        # shutdown() wakes the accept() that close() alone would leave blocked.
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        server.join(timeout=1)
        shutil.rmtree(cache, ignore_errors=True)


def warm_up() -> None:
    """The parts of a command that need no registry: the command line and the cache (a
    cache miss offline), sorting tags, JSON, and a client made and closed."""
    import asyncio

    from portside import jsonscan
    from portside.cli import main
    from portside.registry.client import RegistryClient
    from portside.versions import sort_tags

    main(["tags", "--offline", f"warm-up.invalid/{REPOSITORY}"])
    tags = json.loads(_routes()[f"/v2/{REPOSITORY}/tags/list"])["tags"]
    jsonscan.loads(json.dumps(sort_tags(tags)).encode())

    async def client() -> None:
        async with RegistryClient():
            await asyncio.sleep(0)

    asyncio.run(client())
