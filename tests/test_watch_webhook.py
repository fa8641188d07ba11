"""The webhook notifier against a local HTTP receiver: payload, signature, retry, the
failure record, and the no-duplicate rule across a watcher killed while sending."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness import seed
from harness.cli import run_portside
from harness.proxy import Recorder
from harness.registry import Registry

SECRET = "webhook-signing-secret"


def setup_project(registry: Registry, tmp_path: Path) -> Path:
    seed.push_image(registry, "team/app-base", seed.build_image("v1"), ["1.0"], via="fs")
    project = tmp_path / "project"
    project.mkdir()
    (project / "Dockerfile").write_text(f"FROM {registry.host}/team/app-base:1.0\n")
    return project


def rebuild(registry: Registry, build: str) -> str:
    return seed.push_image(
        registry, "team/app-base", seed.build_image(build), ["1.0"], via="fs"
    ).digest


def args(registry: Registry, recorder: Recorder, tmp_path: Path) -> list[str]:
    return [
        "watch",
        "--once",
        "--state",
        str(tmp_path / "state.db"),
        "--webhook",
        f"{recorder.url}/hook",
    ]


def env(registry: Registry) -> dict[str, str]:
    return {"PORTSIDE_INSECURE_REGISTRIES": registry.host, "PORTSIDE_WEBHOOK_SECRET": SECRET}


def hooks(recorder: Recorder) -> list[tuple[str, bytes, str]]:
    return [
        (r.header("X-Portside-Delivery") or "", r.body, r.header("X-Portside-Signature") or "")
        for r in recorder.log.matching("POST", r"^/hook$")
    ]


def test_payload_signature_retry_and_failure_record(
    plain_registry: Registry, recorder: Recorder, tmp_path: Path
) -> None:
    project = setup_project(plain_registry, tmp_path)
    first = run_portside(
        *args(plain_registry, recorder, tmp_path), cwd=project, env=env(plain_registry)
    )
    assert first.returncode == 0, first.stderr
    assert hooks(recorder) == []

    new = rebuild(plain_registry, "v2")
    recorder.respond("POST", r"^/hook$", 503, times=2)  # two failures, then the default 200
    second = run_portside(
        *args(plain_registry, recorder, tmp_path), cwd=project, env=env(plain_registry)
    )
    assert second.returncode == 1, second.stderr
    sent = hooks(recorder)
    assert len(sent) == 3  # retried with backoff until it went through
    assert len({(key, body) for key, body, _ in sent}) == 1  # the same delivery each time
    key, body, _ = sent[0]
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert all(hmac.compare_digest(s, expected) for _, _, s in sent)
    payload = json.loads(body)
    assert payload["id"] == key
    assert payload["kind"] == "rebuilt"
    assert payload["new"] == new
    assert payload["image"] == f"{plain_registry.host}/team/app-base:1.0"
    assert [(Path(u["file"]).name, u["line"]) for u in payload["uses"]] == [("Dockerfile", 1)]
    assert "portside pin" in payload["action"]
    assert recorder.log.matching("POST", r"^/hook$")[0].header("X-Portside-Event") == "rebuilt"
    assert SECRET not in second.stdout + second.stderr

    # A receiver that refuses: the failure is said, recorded, and retried next round.
    recorder.log.clear()
    rebuild(plain_registry, "v3")
    recorder.respond("POST", r"^/hook$", 404, times=1)
    third = run_portside(
        *args(plain_registry, recorder, tmp_path), cwd=project, env=env(plain_registry)
    )
    assert third.returncode == 1
    assert "notification not delivered" in third.stderr and "HTTP 404" in third.stderr
    assert len(hooks(recorder)) == 1  # 4xx is final: no pointless retries
    history = run_portside(
        "watch", "--history", "--json", "--state", str(tmp_path / "state.db"), cwd=project
    )
    rows = json.loads(history.stdout)
    failed = [r for r in rows if r["new"] != new]
    assert len(failed) == 1
    assert "HTTP 404" in failed[0]["deliveries"][f"webhook:{recorder.url}/hook"]
    assert failed[0]["deliveries"]["console"] == "sent"
    fourth = run_portside(
        *args(plain_registry, recorder, tmp_path), cwd=project, env=env(plain_registry)
    )
    assert fourth.returncode == 0  # nothing new changed; the outbox delivered the old one
    assert [k for k, _, _ in hooks(recorder)] == [failed[0]["id"]] * 2


def test_no_duplicate_across_a_watcher_killed_while_sending(
    plain_registry: Registry, recorder: Recorder, tmp_path: Path
) -> None:
    project = setup_project(plain_registry, tmp_path)
    jsonl = tmp_path / "notes.jsonl"
    command = [*args(plain_registry, recorder, tmp_path), "--jsonl", str(jsonl)]
    assert run_portside(*command, cwd=project, env=env(plain_registry)).returncode == 0
    rebuild(plain_registry, "v2")

    # The receiver takes the notification and never answers; the watcher is killed there:
    # sent, but not recorded as sent.
    recorder.respond("POST", r"^/hook$", 200, times=1, delay=30)
    proc = subprocess.Popen(
        [sys.executable, "-m", "portside", *command],
        cwd=project,
        env={**os.environ, **env(plain_registry)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        recorder.log.wait_for(lambda r: r.path == "/hook", timeout=30)
        time.sleep(0.2)  # let the other notifiers finish; the webhook is still waiting
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    history = run_portside(
        "watch", "--history", "--json", "--state", str(tmp_path / "state.db"), cwd=project
    )
    (row,) = json.loads(history.stdout)
    assert row["deliveries"][f"webhook:{recorder.url}/hook"] == "sending"

    recorder.clear_rules()
    again = run_portside(*command, cwd=project, env=env(plain_registry))
    assert again.returncode == 0, again.stderr  # nothing new changed
    assert "rebuilt" not in again.stdout  # the console line was not printed a second time
    sent = hooks(recorder)
    assert [key for key, _, _ in sent] == [row["id"], row["id"]]
    assert sent[0][1] == sent[1][1]  # the same body: the receiver drops the repeat by its key
    # The JSON lines notifier looked before it wrote: one line.
    assert [json.loads(line)["id"] for line in jsonl.read_text().splitlines()] == [row["id"]]

    final = run_portside(*command, cwd=project, env=env(plain_registry))
    assert final.returncode == 0
    assert len(hooks(recorder)) == 2  # recorded as sent: never again
    history = run_portside(
        "watch", "--history", "--json", "--state", str(tmp_path / "state.db"), cwd=project
    )
    (row,) = json.loads(history.stdout)
    assert set(row["deliveries"].values()) == {"sent"}


def test_chat_through_apprise_reaches_its_endpoint_once(
    plain_registry: Registry, recorder: Recorder, tmp_path: Path
) -> None:
    # apprise's json:// service POSTs {"title", "message", "type"}: a chat endpoint.
    project = setup_project(plain_registry, tmp_path)
    (project / "pyproject.toml").write_text(
        f'[tool.portside.notify]\nconsole = false\napprise = ["json://{recorder.host}/chat"]\n'
    )
    command = ["watch", "--once", "--state", str(tmp_path / "state.db")]
    assert run_portside(*command, cwd=project, env=env(plain_registry)).returncode == 0
    rebuild(plain_registry, "v2")
    result = run_portside(*command, cwd=project, env=env(plain_registry))
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""  # console = false
    (chat,) = recorder.log.matching("POST", r"^/chat$")
    body = json.loads(chat.body)
    assert "team/app-base:1.0 was rebuilt" in body["title"]
    assert "used in Dockerfile:1" in body["message"] and "portside pin" in body["message"]
    again = run_portside(*command, cwd=project, env=env(plain_registry))
    assert again.returncode == 0
    assert len(recorder.log.matching("POST", r"^/chat$")) == 1  # sent once, recorded
