"""``--listen HOST:PORT``: registry webhooks trigger a check of the named repository at once.

Understood payloads: the CNCF distribution notification envelope
(``application/vnd.docker.distribution.events.v1+json``), Harbor's webhook (``type`` +
``event_data``) and Docker Hub's (``push_data`` + ``repository``). Anything else,
oversized or malformed, is answered 400 with a log line, never a crash. With a shared
secret, requests must carry it as ``X-Portside-Token`` (or ``Authorization: Bearer``,
or ``?token=``), compared in constant time; a wrong or missing one is 401.
``GET /healthz`` answers 200 while the watcher runs.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from portside.errors import UsageError

log = logging.getLogger("portside.watch.listener")

MAX_BODY = 1 << 20
# (registry host or None when the payload does not say, repository path, tag, digest);
# tag and digest are None when the payload does not name them.
RepositoryEvent = tuple["str | None", str, "str | None", "str | None"]


class PayloadError(ValueError):
    """The body is not a webhook payload we understand; the message says why."""


def _host_of(url: object) -> str | None:
    if not isinstance(url, str) or not url:
        return None
    parts = urlsplit(url if "://" in url else f"//{url}")
    return parts.netloc or None


def parse_payload(body: bytes) -> list[RepositoryEvent]:
    """The repositories a webhook says changed (may be empty: pulls, blob pushes)."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"not JSON ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise PayloadError("not a JSON object")
    if "events" in data:
        return _distribution(data["events"])
    if "event_data" in data and "type" in data:
        return _harbor(data)
    if "push_data" in data and "repository" in data:
        return _docker_hub(data)
    raise PayloadError("unknown payload (not a distribution, Harbor or Docker Hub webhook)")


def _distribution(events: Any) -> list[RepositoryEvent]:
    if not isinstance(events, list):
        raise PayloadError("envelope: events is not a list")
    out: list[RepositoryEvent] = []
    for item in events:
        if not isinstance(item, dict) or not isinstance(item.get("target"), dict):
            raise PayloadError("envelope: an event without a target")
        target = item["target"]
        repository = target.get("repository")
        if not isinstance(repository, str) or not repository:
            raise PayloadError("envelope: an event without a repository")
        if item.get("action") not in ("push", "delete"):
            continue  # pulls (our own HEADs among them) change nothing
        tag = target.get("tag") if isinstance(target.get("tag"), str) else None
        if item.get("action") == "push" and not tag:
            continue  # blobs, and manifests by digest: the tag's push that follows is the change
        request = item.get("request")
        host = _host_of(target.get("url")) or (
            _host_of(request.get("host")) if isinstance(request, dict) else None
        )
        digest = target.get("digest") if isinstance(target.get("digest"), str) else None
        out.append((host, repository, tag, digest))
    return out


def _harbor(data: dict[str, Any]) -> list[RepositoryEvent]:
    event = data["event_data"]
    if not isinstance(event, dict) or not isinstance(event.get("repository"), dict):
        raise PayloadError("Harbor: event_data.repository missing")
    name = event["repository"].get("repo_full_name")
    if not isinstance(name, str) or not name:
        raise PayloadError("Harbor: repo_full_name missing")
    if not str(data.get("type", "")).upper().startswith(("PUSH", "DELETE")):
        return []
    out: list[RepositoryEvent] = []
    resources = event.get("resources")
    for resource in resources if isinstance(resources, list) else []:
        if not isinstance(resource, dict):
            continue
        url = resource.get("resource_url")
        host = _host_of(url.split("/", 1)[0]) if isinstance(url, str) else None
        tag, digest = resource.get("tag"), resource.get("digest")
        out.append(
            (
                host,
                name,
                tag if isinstance(tag, str) and tag else None,
                digest if isinstance(digest, str) and digest else None,
            )
        )
    return out or [(None, name, None, None)]


def _docker_hub(data: dict[str, Any]) -> list[RepositoryEvent]:
    repo = data["repository"]
    if not isinstance(repo, dict) or not isinstance(repo.get("repo_name"), str):
        raise PayloadError("Docker Hub: repository.repo_name missing")
    name = repo["repo_name"]
    push = data["push_data"] if isinstance(data["push_data"], dict) else {}
    tag = push.get("tag") if isinstance(push.get("tag"), str) else None
    return [("docker.io", name if "/" in name else f"library/{name}", tag, None)]


class Listener:
    """A small threaded HTTP server; ``on_event`` is called from its threads."""

    def __init__(
        self,
        address: str,
        on_event: Callable[[list[RepositoryEvent]], None],
        *,
        secret: str | None = None,
    ) -> None:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise UsageError(f"--listen wants HOST:PORT, not {address!r}")
        self.on_event = on_event
        self.secret = secret
        listener = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "portside-watch"

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("listener: " + format, *args)

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if urlsplit(self.path).path in ("/healthz", "/health"):
                    self._answer(200, {"status": "ok"})
                else:
                    self._answer(404, {"error": "not found"})

            def do_POST(self) -> None:
                listener._post(self)

        self._handler = Handler
        try:
            self.server = ThreadingHTTPServer((host.strip("[]"), int(port)), Handler)
        except OSError as exc:
            raise UsageError(f"cannot listen on {address}: {exc.strerror or exc}") from None
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host!s}:{port}"

    def _authorised(self, handler: BaseHTTPRequestHandler) -> bool:
        if not self.secret:
            return True
        given = handler.headers.get("X-Portside-Token") or ""
        auth = handler.headers.get("Authorization") or ""
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if not given:
            given = (parse_qs(urlsplit(handler.path).query).get("token") or [""])[0]
        return hmac.compare_digest(given.encode(), self.secret.encode())

    def _post(self, handler: Any) -> None:
        peer = handler.client_address[0]
        if not self._authorised(handler):
            log.warning("listener: request from %s without the shared secret, refused", peer)
            handler._answer(401, {"error": "missing or wrong token"})
            return
        length = handler.headers.get("Content-Length")
        if length is None or not length.isdigit():
            log.warning("listener: request from %s without a Content-Length, refused", peer)
            handler._answer(400, {"error": "a Content-Length is required"})
            handler.close_connection = True
            return
        if int(length) > MAX_BODY:
            log.warning(
                "listener: %s bytes from %s is over the %s limit, refused", length, peer, MAX_BODY
            )
            handler._answer(400, {"error": f"payload over {MAX_BODY} bytes"})
            handler.close_connection = True
            return
        body = handler.rfile.read(int(length))
        try:
            events = parse_payload(body)
        except PayloadError as exc:
            log.warning("listener: payload from %s refused: %s", peer, exc)
            handler._answer(400, {"error": str(exc)})
            return
        if events:
            self.on_event(events)
        handler._answer(202, {"accepted": len(events)})

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="portside-listener", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def match_repositories(events: list[RepositoryEvent], watched: list[str]) -> set[str]:
    """Watched repository names (``host/path``) the events name.

    The host must match when the payload gives one that is watched; a registry that
    knows itself by another name (behind a proxy) still matches by its path.
    """
    found: set[str] = set()
    for host, path, _, _ in events:
        exact = [w for w in watched if host and w == f"{host}/{path}"]
        found.update(exact or [w for w in watched if w.endswith(f"/{path}")])
    return found
