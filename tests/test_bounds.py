"""Every command is bounded in time: ``--timeout`` per request (the plain-HTTP/HTTPS
probe included), ``--deadline`` for all of a command's registry work (retries, backoff,
``Retry-After``), against hostile servers that drip their answers a byte at a time.

Each test's own generous ``timeout`` is the hang guard: a drip lasts far longer than it
(``harness.proxy.DRIP_SECONDS_CAP``), so an unbounded client fails the test instead of
passing slowly. Nothing here asserts how fast anything is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from test_cli import Runner, assert_clean_error

from harness.proxy import FaultProxy, Recorder
from harness.registry import Registry
from harness.tls import TLSBundle
from portside import errors
from portside.reference import Reference
from portside.registry.client import ClientOptions, RegistryClient

pytestmark = pytest.mark.timeout(120)

ProxyFactory = Callable[..., FaultProxy]
TAGS = r"/tags/list$"
# The subprocess's own hang guard: far below a drip's length, far above a bounded run.
GUARD = 60


@pytest.fixture
def run(tmp_path: pytest.TempPathFactory) -> Runner:
    return Runner(tmp_path)  # type: ignore[arg-type]


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("portside: error: ")]
    assert len(lines) == 1, stderr
    return lines[0]


# -- the probe -------------------------------------------------------------------------


def test_headers_dripped_during_the_plain_http_probe(recorder: Recorder, run: Runner) -> None:
    recorder.drip(None, "", interval=0.5)
    result = run("tags", "--timeout", "2", f"{recorder.host}/x", timeout=GUARD)
    assert_clean_error(result, 5)
    line = one_error_line(result.stderr)
    assert recorder.host in line and "probe" in line, line
    assert "--timeout" in result.stderr  # the hint says what to raise


def test_headers_dripped_during_the_tls_probe(tls_bundle: TLSBundle, run: Runner) -> None:
    # A TLS port: the plain-HTTP probe is refused at once, the HTTPS one gets the drip.
    server = Recorder(ssl_context=tls_bundle.server_context())
    server.start()
    host = server.host
    try:
        server.drip(None, "", interval=0.5)
        result = run(
            "tags",
            "--timeout",
            "2",
            "--ca-file",
            str(tls_bundle.ca_file),
            f"{host}/x",
            timeout=GUARD,
        )
    finally:
        server.stop()
    assert_clean_error(result, 5)
    line = one_error_line(result.stderr)
    assert host in line and "HTTPS probe" in line, line


# -- after the probe -------------------------------------------------------------------


def test_headers_dripped_after_the_probe_are_cut_by_timeout(
    fault_proxy: FaultProxy, run: Runner
) -> None:
    fault_proxy.drip("GET", TAGS, interval=0.5)
    result = run("tags", "--timeout", "2", f"{fault_proxy.host}/library/python", timeout=GUARD)
    assert_clean_error(result, 5)
    assert fault_proxy.host in one_error_line(result.stderr)


def test_token_request_dripped_is_cut_by_timeout(run: Runner) -> None:
    server = Recorder()
    server.start()
    host = server.host
    try:
        challenge = f'Bearer realm="{server.url}/token",service="slow"'
        server.respond("GET", r"^/v2/", 401, b"{}", {"WWW-Authenticate": challenge})
        server.drip("GET", r"^/token$", interval=0.5)
        result = run("tags", "--timeout", "2", f"{host}/some/repo", timeout=GUARD)
    finally:
        server.stop()
    assert_clean_error(result, 5)
    line = one_error_line(result.stderr)
    assert host in line and "/token" in line, line


def test_dripped_body_with_retries_stays_within_the_deadline(
    fault_proxy: FaultProxy, run: Runner
) -> None:
    # --timeout 20 and four retries would take minutes; --deadline 4 ends it all.
    fault_proxy.drip("GET", TAGS, interval=0.2, body=True)
    result = run(
        "tags",
        "--timeout",
        "20",
        "--deadline",
        "4",
        f"{fault_proxy.host}/library/python",
        timeout=GUARD,
    )
    assert_clean_error(result, 5)
    line = one_error_line(result.stderr)
    assert fault_proxy.host in line and "deadline" in line, line


def test_retry_after_longer_than_the_deadline_is_not_waited_out(
    fault_proxy: FaultProxy, run: Runner
) -> None:
    fault_proxy.fail("GET", TAGS, 503, times=None, retry_after=30)
    result = run("tags", "--deadline", "5", f"{fault_proxy.host}/library/python", timeout=GUARD)
    assert_clean_error(result, 5)
    assert fault_proxy.host in one_error_line(result.stderr)
    # Asked once: waiting 30 s would pass the deadline, asking sooner would hammer.
    assert len(fault_proxy.log.matching("GET", TAGS)) == 1


def test_retry_after_within_the_deadline_is_honoured(
    fault_proxy: FaultProxy, registry: Registry, run: Runner
) -> None:
    fault_proxy.fail("GET", TAGS, 503, times=1, retry_after=1)
    result = run("tags", "--deadline", "30", f"{fault_proxy.host}/library/python", timeout=GUARD)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split()) == sorted(registry.seeded["library/python"].tags)
    assert len(fault_proxy.log.matching("GET", TAGS)) == 2


def test_deadline_from_the_environment_and_its_errors(fault_proxy: FaultProxy, run: Runner) -> None:
    fault_proxy.fail("GET", TAGS, 503, times=None, retry_after=30)
    result = run(
        "tags", f"{fault_proxy.host}/library/python", env={"PORTSIDE_DEADLINE": "5"}, timeout=GUARD
    )
    assert_clean_error(result, 5)
    assert len(fault_proxy.log.matching("GET", TAGS)) == 1
    bad = run("tags", f"{fault_proxy.host}/library/python", env={"PORTSIDE_DEADLINE": "soon"})
    assert "PORTSIDE_DEADLINE" in assert_clean_error(bad, 2)
    assert "must be a positive number" in assert_clean_error(
        run("tags", "--deadline", "0", f"{fault_proxy.host}/library/python"), 2
    )


def test_help_documents_timeout_and_deadline(run: Runner) -> None:
    text = " ".join(run("tags", "--help").stdout.split())
    assert "--timeout SECONDS" in text and "the plain-HTTP/HTTPS probe" in text
    assert "--deadline SECONDS" in text and "default $PORTSIDE_DEADLINE or 120;" in text
    assert "push, publish, prune, usage, retire, pull-back: 3600" in text


# -- the client (library use) ----------------------------------------------------------


async def test_client_deadline_bounds_backoff_retries(fault_proxy: FaultProxy) -> None:
    # Eight retries with up to 10 s of backoff each: only the deadline stops it early.
    fault_proxy.fail("GET", TAGS, 503, times=None)
    options = ClientOptions(max_retries=8, backoff_base=2.0, backoff_cap=10.0, deadline=3.0)
    async with RegistryClient(options) as client:
        with pytest.raises(errors.DeadlineExceeded) as caught:
            await client.list_tags(Reference.parse(f"{fault_proxy.host}/library/python"))
    assert caught.value.registry == fault_proxy.host
    assert len(fault_proxy.log.matching("GET", TAGS)) < 9


async def test_client_without_time_left_sends_nothing(fault_proxy: FaultProxy) -> None:
    async with RegistryClient(ClientOptions(deadline=1e-9)) as client:
        with pytest.raises(errors.DeadlineExceeded, match="deadline"):
            await client.list_tags(Reference.parse(f"{fault_proxy.host}/library/python"))
    assert fault_proxy.log.all() == []


# -- query regular expressions -----------------------------------------------------------


LONG_TAG = "a" * 127 + "c"  # 128 characters, the longest tag the spec allows


def test_backtracking_regex_against_a_long_tag(
    fault_proxy: FaultProxy, registry: Registry, run: Runner
) -> None:
    # Python's re takes 2**127 steps on the long tag; RE2's time is linear in the tag.
    real = sorted(registry.seeded["library/python"].tags)[0]
    tags = [LONG_TAG, real]
    fault_proxy.respond("GET", TAGS, 200, json.dumps({"name": "library/python", "tags": tags}))
    regex = f"^(a|a)*b|^{re.escape(real)}$"
    result = run(
        "query", "--ref", f'{fault_proxy.host}/library/python where tag =~ "{regex}"', timeout=GUARD
    )
    assert result.returncode == 0, result.stderr
    digest = registry.seeded["library/python"].digest(real)
    assert result.stdout == f"{fault_proxy.host}/library/python:{real}@{digest}\n"


def test_regex_warnings_of_python_re_never_reach_the_user(
    fault_proxy: FaultProxy, run: Runner
) -> None:
    # re warns "FutureWarning: Possible nested set" for "[[" (and "--", "&&", "||").
    fault_proxy.respond("GET", TAGS, 200, json.dumps({"name": "library/python", "tags": ["b"]}))
    result = run("query", f'{fault_proxy.host}/library/python where tag =~ "[[a]"', timeout=GUARD)
    assert result.returncode == 1, result.stderr  # nothing matches
    assert "Warning" not in result.stderr
    assert result.stderr == "no image matches\n"


def test_regex_it_cannot_run_in_linear_time_is_a_caret_error(run: Runner) -> None:
    result = run("query", 'python where tag =~ "^(a+)\\1$"')
    text = assert_clean_error(result, 2)
    assert "backreferences" in text and "^" in text.splitlines()[-1]
