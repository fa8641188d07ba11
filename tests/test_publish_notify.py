"""A publish calls the same notifiers the watcher uses: consumers hear of a release."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import test_publish_cli
from test_build_native import make_project, seed_base
from test_publish_cli import configure, run_cli

from harness.proxy import Recorder
from harness.registry import Registry

cli_env = test_publish_cli.cli_env  # the same fixture: no host credentials, a private cache


def test_publish_notifies_webhook_and_jsonl_but_not_stdout(
    plain_registry: Registry, recorder: Recorder, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    seed_base(plain_registry)
    project = configure(
        make_project(tmp_path / "app", version="2.0.1"),
        destinations=[plain_registry.ref("team/app")],
        base=plain_registry.ref("base/python", "3.12"),
        extra=(
            'platforms = ["linux/amd64"]\n\n[tool.portside.notify]\n'
            f'jsonl = "published.jsonl"\n'
            f'webhooks = [{{ url = "{recorder.url}/release", secret-env = "RELEASE_SECRET" }}]\n'
        ),
    )
    env = {**cli_env, "RELEASE_SECRET": "s3"}
    dry = run_cli("publish", "--dry-run", "--project", str(project), env=env)
    assert dry.returncode == 0, dry.stderr
    assert recorder.log.all() == []  # a dry run publishes nothing, so tells no one

    done = run_cli("publish", "--project", str(project), "--json", env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # stdout is still the report, nothing else
    (note,) = [json.loads(line) for line in (project / "published.jsonl").read_text().splitlines()]
    assert note["kind"] == "published"
    assert note["image"].startswith(plain_registry.ref("team/app") + ":")
    assert note["new"] == report["digest"]
    (hook,) = recorder.log.matching("POST", r"^/release$")
    assert json.loads(hook.body)["id"] == note["id"]
    expected = "sha256=" + hmac.new(b"s3", hook.body, hashlib.sha256).hexdigest()
    assert hook.header("X-Portside-Signature") == expected


def test_a_notifier_that_cannot_run_does_not_fail_the_publish(
    plain_registry: Registry, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    seed_base(plain_registry)
    project = configure(
        make_project(tmp_path / "app", version="2.0.2"),
        destinations=[plain_registry.ref("team/app")],
        base=plain_registry.ref("base/python", "3.12"),
        extra=(
            'platforms = ["linux/amd64"]\n\n[tool.portside.notify]\n'
            'webhooks = [{ url = "http://127.0.0.1:9/x", secret-env = "UNSET_SECRET" }]\n'
        ),
    )
    env = {k: v for k, v in cli_env.items() if k != "UNSET_SECRET"}
    done = run_cli("publish", "--project", str(project), "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True
    assert "published, but nobody was notified" in done.stderr
    assert "UNSET_SECRET" in done.stderr and "Traceback" not in done.stderr
