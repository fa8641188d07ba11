"""A dress rehearsal: run ``tags`` and ``inspect`` once against a registry of one image
served from this process, so that a freshly forked daemon worker has walked every
path a command walks before a real command arrives.

Why: a forked worker shares its memory with the daemon until it writes to it, and a
Python program writes to almost everything it touches (reference counts, allocator
pools). A worker's first command used to spend ~10 ms in those copy-on-write page
faults; a rehearsal takes them while no one is waiting (:mod:`portside.daemon`).

The registry here is no test double: nothing is checked against it. It answers the
handful of requests the two commands make, on a loopback port, and is gone after.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import tempfile
import threading

from portside.registry.mediatypes import OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST

REPOSITORY = "rehearsal"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _routes() -> dict[str, tuple[str, bytes]]:
    """Path -> (content type, body) for one multi-platform image and a tag list."""
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2025-01-01T00:00:00Z",
            "config": {"Labels": {"org.opencontainers.image.version": "1.0"}},
            "rootfs": {"type": "layers", "diff_ids": [_digest(b"layer")]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": _digest(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": _digest(b"layer"), "size": 5}],
        }
    ).encode()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": _digest(manifest),
                    "size": len(manifest),
                    "platform": {"architecture": "amd64", "os": "linux"},
                }
            ],
        }
    ).encode()
    tags = [
        f"{major}.{minor}.{patch}{variant}"
        for major in range(3)
        for minor in range(10)
        for patch in range(5)
        for variant in ("", "-slim", "-alpine3.20")
    ]
    base = f"/v2/{REPOSITORY}"
    return {
        "/v2/": ("application/json", b"{}"),
        f"{base}/tags/list": (
            "application/json",
            json.dumps({"name": REPOSITORY, "tags": tags}).encode(),
        ),
        f"{base}/manifests/1.0.0": (OCI_INDEX, index),
        f"{base}/manifests/{_digest(index)}": (OCI_INDEX, index),
        f"{base}/manifests/{_digest(manifest)}": (OCI_MANIFEST, manifest),
        f"{base}/blobs/{_digest(config)}": ("application/octet-stream", config),
    }


def _answer(conn: socket.socket, routes: dict[str, tuple[str, bytes]]) -> None:
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
            found = routes.get(path)
            if found is None:
                status, media, body = "404 Not Found", "application/json", b'{"errors":[]}'
            else:
                status, (media, body) = "200 OK", found
            headers = [
                f"HTTP/1.1 {status}",
                f"Content-Type: {media}",
                f"Content-Length: {len(body)}",
                f"Docker-Content-Digest: {_digest(body)}",
                "Docker-Distribution-API-Version: registry/2.0",
            ]
            response = ("\r\n".join(headers) + "\r\n\r\n").encode()
            conn.sendall(response if method == "HEAD" else response + body)


def _serve(listener: socket.socket, routes: dict[str, tuple[str, bytes]]) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return  # closed: the rehearsal is over
        threading.Thread(target=_answer, args=(conn, routes), daemon=True).start()


def rehearse() -> None:
    """Run the rehearsal; output goes to /dev/null, the cache to a temporary directory."""
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
        for argv in (["tags", f"{host}/{REPOSITORY}"], ["inspect", f"{host}/{REPOSITORY}:1.0.0"]):
            with contextlib.suppress(Exception):
                main(argv)
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
