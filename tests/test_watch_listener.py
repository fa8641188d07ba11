"""``portside watch --listen``: the real registry's notifications turn a push into a
notification at once; the listener refuses what it does not understand."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from harness import seed
from harness.cli import run_portside
from harness.ports import free_port, wait_for
from harness.registry import Registry
from portside.watch.listener import MAX_BODY, Listener, RepositoryEvent

TOKEN = "listener-shared-token"


def test_a_push_becomes_a_notification_at_once(
    registry_factory: Callable[..., Registry], tmp_path: Path
) -> None:
    port = free_port()
    registry = registry_factory(notifications_url=f"http://127.0.0.1:{port}/events?token={TOKEN}")
    seed.push_image(registry, "team/app-base", seed.build_image("v1"), ["1.0"], via="fs")
    project = tmp_path / "project"
    project.mkdir()
    (project / "Dockerfile").write_text(f"FROM {registry.host}/team/app-base:1.0\n")
    jsonl = tmp_path / "notes.jsonl"
    state = tmp_path / "state.db"
    log_path = tmp_path / "watch.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "portside",
                "watch",
                "--interval",
                "3600",
                "--quiet",
                "--listen",
                f"127.0.0.1:{port}",
                "--listen-secret-env",
                "HOOK_TOKEN",
                "--jsonl",
                str(jsonl),
                "--state",
                str(state),
            ],
            cwd=project,
            env={**os.environ, "PORTSIDE_INSECURE_REGISTRIES": registry.host, "HOOK_TOKEN": TOKEN},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        wait_for(
            lambda: "round 1: checked 1" in log_path.read_text() or None,
            timeout=30,
            what="the first round",
        )
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert health.status_code == 200 and health.json() == {"status": "ok"}

        pushed = seed.push_image(registry, "team/app-base", seed.build_image("v2"), ["1.0"])

        def notified() -> dict[str, object] | None:
            if not jsonl.exists():
                return None
            lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
            return lines[0] if lines else None

        # Polling is an hour away (--interval 3600): only the registry's webhook can bring
        # this notification now. The bound is a hang guard, not a speed claim (the
        # registry posts within about a second; machines are noisy).
        note = wait_for(notified, timeout=30.0, what="the notification of the push")
        assert note["kind"] == "rebuilt" and note["new"] == pushed.digest
        assert "webhook: checking" in log_path.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert proc.returncode == 0, log_path.read_text()
    assert "stopped" in log_path.read_text()
    # Nothing lost, nothing repeated: a later run has nothing new to say.
    again = run_portside(
        "watch",
        "--once",
        "--json",
        "--state",
        str(state),
        cwd=project,
        env={"PORTSIDE_INSECURE_REGISTRIES": registry.host},
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["changes"] == []


@pytest.fixture
def listener() -> Iterator[tuple[Listener, list[list[RepositoryEvent]]]]:
    seen: list[list[RepositoryEvent]] = []
    server = Listener("127.0.0.1:0", seen.append, secret=TOKEN)
    server.start()
    try:
        yield server, seen
    finally:
        server.stop()


def post(server: Listener, body: bytes | dict[str, object], **headers: str) -> httpx.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        f"http://{server.address}/hook",
        content=data,
        headers={"X-Portside-Token": TOKEN, **headers},
        timeout=5,
    )


def test_harbor_and_docker_hub_payloads(
    listener: tuple[Listener, list[list[RepositoryEvent]]],
) -> None:
    server, seen = listener
    harbor = {
        "type": "PUSH_ARTIFACT",
        "occur_at": 1733400000,
        "operator": "admin",
        "event_data": {
            "resources": [
                {
                    "digest": "sha256:" + "a" * 64,
                    "tag": "1.0",
                    "resource_url": "harbor.example.com/library/nginx:1.0",
                }
            ],
            "repository": {
                "name": "nginx",
                "namespace": "library",
                "repo_full_name": "library/nginx",
                "repo_type": "public",
            },
        },
    }
    hub = {
        "callback_url": "https://registry.hub.docker.com/u/team/app/hook/x/",
        "push_data": {"pushed_at": 1733400000, "pusher": "team", "tag": "latest"},
        "repository": {"repo_name": "team/app", "namespace": "team", "name": "app"},
    }
    assert post(server, harbor).status_code == 202
    assert post(server, hub).status_code == 202
    assert seen == [
        [("harbor.example.com", "library/nginx", "1.0", "sha256:" + "a" * 64)],
        [("docker.io", "team/app", "latest", None)],
    ]


def test_refuses_unknown_malformed_oversized_and_unauthenticated(
    listener: tuple[Listener, list[list[RepositoryEvent]]],
) -> None:
    server, seen = listener
    assert post(server, {"hello": "world"}).status_code == 400
    assert post(server, b"{not json").status_code == 400
    assert post(server, {"events": [{"action": "push"}]}).status_code == 400
    big = b'{"events": [], "pad": "' + b"x" * MAX_BODY + b'"}'
    assert post(server, big).status_code == 400
    envelope = {"events": [{"action": "push", "target": {"repository": "a/b", "tag": "1"}}]}
    assert post(server, envelope, **{"X-Portside-Token": "wrong"}).status_code == 401
    assert (
        httpx.post(
            f"http://{server.address}/hook", content=json.dumps(envelope).encode(), timeout=5
        ).status_code
        == 401
    )
    assert (
        httpx.post(
            f"http://{server.address}/hook?token={TOKEN}",
            content=json.dumps(envelope).encode(),
            timeout=5,
        ).status_code
        == 202
    )
    assert seen == [[(None, "a/b", "1", None)]]  # only the authorised, well-formed one
    # Still serving after all that.
    assert httpx.get(f"http://{server.address}/healthz", timeout=5).status_code == 200
