"""Hostile input is contained: deeply nested JSON from every place it can come from is an
invalid response (exit 6) for that image only, or a cache miss; registry error text stays
on one line; a closed stderr keeps the documented exit codes.

Against the real registry (a hostile manifest and config really pushed to it) or, where
the registry cannot be made to misbehave, the fault proxy and a recording server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import Runner, assert_clean_error

from harness.hostile import NESTED, nested_doc, push_nested_images
from harness.proxy import FaultProxy, Recorder
from harness.registry import Registry
from portside.cache import CacheStore

pytestmark = pytest.mark.timeout(120)

TAGS = r"/tags/list$"


@pytest.fixture
def run(tmp_path: Path) -> Runner:
    return Runner(tmp_path)


def internal_error_free(result: subprocess.CompletedProcess[str]) -> None:
    assert "internal error" not in result.stderr and "Recursion" not in result.stderr


# -- from the registry -------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_images(registry: Registry) -> dict[str, str]:
    return push_nested_images(registry)


@pytest.mark.parametrize(
    "args",
    [("inspect",), ("digest",), ("digest", "--platform", "linux/amd64")],
    ids=["inspect", "digest", "digest --platform"],
)
def test_nested_manifest_is_an_invalid_response(
    hostile_images: dict[str, str], run: Runner, args: tuple[str, ...]
) -> None:
    result = run(*args, hostile_images["manifest"])
    internal_error_free(result)
    assert "not valid JSON" in assert_clean_error(result, 6)


def test_nested_config_is_an_invalid_response(hostile_images: dict[str, str], run: Runner) -> None:
    result = run("inspect", hostile_images["config"])
    internal_error_free(result)
    assert "config is not valid JSON" in assert_clean_error(result, 6)


def test_nested_tag_list_is_an_invalid_response(fault_proxy: FaultProxy, run: Runner) -> None:
    fault_proxy.respond("GET", TAGS, 200, nested_doc(name="library/python"))
    result = run("tags", f"{fault_proxy.host}/library/python")
    internal_error_free(result)
    assert "tag list is not a JSON object" in assert_clean_error(result, 6)


@pytest.mark.parametrize(("status", "code"), [(404, 3), (500, 5)])
def test_nested_error_body_keeps_the_status_meaning(
    fault_proxy: FaultProxy, run: Runner, status: int, code: int
) -> None:
    fault_proxy.respond(
        "GET", TAGS, status, b'{"errors": [{"code": "X", "detail": ' + NESTED.encode() + b"}]}"
    )
    result = run("tags", f"{fault_proxy.host}/library/python")
    internal_error_free(result)
    assert_clean_error(result, code)


def test_nested_token_response_is_an_invalid_response(run: Runner) -> None:
    server = Recorder()
    server.start()
    try:
        realm = f"{server.url}/token"
        server.respond(
            "GET",
            r"^/v2/",
            401,
            b"{}",
            {"WWW-Authenticate": f'Bearer realm="{realm}",service="hostile"'},
        )
        server.respond("GET", r"^/token$", 200, nested_doc(token="abc"))
        result = run("tags", f"{server.host}/some/repo")
    finally:
        server.stop()
    internal_error_free(result)
    assert "token endpoint did not answer with JSON" in assert_clean_error(result, 6)


def test_check_reports_the_other_images_despite_one_nested(
    hostile_images: dict[str, str], registry: Registry, run: Runner, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    good = f"{registry.host}/library/python:3.13"
    (project / "Dockerfile").write_text(
        f"FROM {hostile_images['pinned']} AS one\nFROM {good}\n", encoding="utf-8"
    )
    result = subprocess.run(
        [sys.executable, "-m", "portside", "check", "--json", "--fail-on", "never-a-kind/x"],
        cwd=project,
        capture_output=True,
        text=True,
        env=run.env(),
        timeout=60,
        check=False,
    )
    internal_error_free(result)
    findings = json.loads(result.stdout)
    by_image = {(f["line"], f["kind"]) for f in findings}
    assert (2, "unpinned") in by_image, findings  # the good image is still judged
    bad = [f for f in findings if f["line"] == 1]
    assert bad and "not valid JSON" in " ".join(f["message"] for f in bad), findings


# -- from the cache ------------------------------------------------------------------------


def test_nested_cache_entry_is_a_miss_and_is_replaced(registry: Registry, run: Runner) -> None:
    ref = f"{registry.host}/library/python"
    first = run("tags", ref)
    assert first.returncode == 0, first.stderr
    tags = first.stdout.split()
    entries = []
    for path in run.cache_dir.rglob("*"):
        try:
            doc = json.loads(path.read_bytes())
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and sorted(doc.get("value") or []) == sorted(tags):
            entries.append((path, doc))
    assert entries, "the tag list was cached"
    for path, doc in entries:
        path.write_bytes(
            json.dumps({**doc, "value": "@"})[:-1].replace('"@"', NESTED).encode() + b"}"
        )
    again = run("tags", ref)
    internal_error_free(again)
    assert again.returncode == 0, again.stderr
    assert again.stdout.split() == tags
    for path, _doc in entries:  # replaced by the fresh answer
        assert sorted(json.loads(path.read_bytes())["value"]) == sorted(tags)


def test_nested_recent_images_is_empty_and_is_replaced(tmp_path: Path) -> None:
    store = CacheStore(str(tmp_path))
    recent = Path(store.root) / "recent-images.json"
    recent.parent.mkdir(parents=True)
    recent.write_text(NESTED)
    assert store.recent_images() == []
    assert store.remember_images(["example.com/app"]) == ["example.com/app"]
    assert json.loads(recent.read_text()) == ["example.com/app"]


# -- error text and stderr -------------------------------------------------------------------


def test_registry_error_message_stays_on_one_line(fault_proxy: FaultProxy, run: Runner) -> None:
    message = "denied\nportside: error: forged second line\x1b[2J"
    fault_proxy.respond(
        "GET", TAGS, 403, json.dumps({"errors": [{"code": "DENIED", "message": message}]})
    )
    result = run("tags", f"{fault_proxy.host}/library/python")
    text = assert_clean_error(result, 4)
    errors = [line for line in text.splitlines() if line.startswith("portside: error:")]
    assert len(errors) == 1 and "forged second line" in errors[0], text
    assert "\x1b" not in text


def test_query_caret_still_has_its_lines(run: Runner) -> None:
    result = run("query", "python where tag <")
    lines = assert_clean_error(result, 2).splitlines()
    assert lines[0].startswith("portside: error: invalid query at column")
    assert lines[1] == "    python where tag <" and lines[2].strip() == "^"


def run_with_stderr_closed(run: Runner, *args: str) -> subprocess.CompletedProcess[bytes]:
    """``python -m portside ARGS 2>&-``: the command starts with descriptor 2 closed."""
    return subprocess.run(
        ["sh", "-c", 'exec "$0" -m portside "$@" 2>&-', sys.executable, *args],
        capture_output=True,
        env=run.env(),
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("tags", "--offline", "127.0.0.1:1/nothing/cached"), 5),
        (("tags", "Not/A/Valid:Reference:"), 2),
        (("query", "python where tag <"), 2),
    ],
)
def test_closed_stderr_keeps_the_exit_code(run: Runner, args: tuple[str, ...], code: int) -> None:
    result = run_with_stderr_closed(run, *args)
    assert result.returncode == code, result
    assert result.stdout == b""


def test_unauthorized_with_stderr_closed_is_exit_4(basic_registry: Registry, run: Runner) -> None:
    # The case: exit 4 became 1 when the error could not be written.
    result = run_with_stderr_closed(run, "tags", f"{basic_registry.host}/library/python")
    assert result.returncode == 4, result


def test_stderr_pipe_closed_by_its_reader_keeps_the_exit_code(run: Runner) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "portside", "tags", "--offline", "127.0.0.1:1/nothing/cached"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=run.env(),
    )
    assert process.stderr is not None and process.stdout is not None
    process.stderr.close()  # the reader goes away before the error is written
    assert process.stdout.read() == b""
    assert process.wait(timeout=60) == 5


def test_nested_vulnerability_reports_are_report_errors() -> None:
    # Reports are attached to images in the registry: as hostile as any manifest.
    from portside import vulnerabilities

    data = nested_doc(version="2.1.0", runs=[])
    with pytest.raises(vulnerabilities.ReportError, match="not JSON"):
        vulnerabilities.parse_sarif(data, source="test")
    with pytest.raises(vulnerabilities.ReportError, match="not JSON"):
        vulnerabilities.parse_openvex(data)
