"""Secrets never reach output: URLs, wrapped values, free text."""

from __future__ import annotations

import json
import logging
import pickle

import pytest

from portside.redact import (
    MASK,
    Secret,
    redact_headers,
    redact_text,
    redact_url,
)

TOKEN = "s3cr3t-T0ken/with+chars=="


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://auth.example.com/token?scope=repository:a:pull&service=reg&account=bob",
            "https://auth.example.com/token?scope=repository:a:pull&service=reg&account=***",
        ),
        (
            "https://reg.example.com/v2/a/tags/list?n=100&last=v1",
            "https://reg.example.com/v2/a/tags/list?n=100&last=v1",
        ),
        (
            "https://reg.example.com/v2/a/blobs/uploads/?mount=sha256:ab&from=b",
            "https://reg.example.com/v2/a/blobs/uploads/?mount=sha256:ab&from=b",
        ),
        (
            "https://reg.example.com/v2/a/blobs/uploads/u1?_state=SIGNED&digest=sha256:ab",
            "https://reg.example.com/v2/a/blobs/uploads/u1?_state=***&digest=sha256:ab",
        ),
        (
            "https://s3.example.com/blob?X-Amz-Credential=AKIA&X-Amz-Signature=abc&X-Amz-Expires=60",
            "https://s3.example.com/blob?X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Expires=***",
        ),
        ("https://bob:hunter2@reg.example.com/v2/", "https://reg.example.com/v2/"),
        ("https://bob@reg.example.com:5000/v2/", "https://reg.example.com:5000/v2/"),
        ("https://reg.example.com/v2/?token", "https://reg.example.com/v2/?***"),
        ("https://reg.example.com/v2/#access_token=x", "https://reg.example.com/v2/#***"),
        (
            "https://reg.example.com/v2/?SCOPE=x&Token=y",
            "https://reg.example.com/v2/?SCOPE=x&Token=***",
        ),
        ("/v2/a/tags/list?n=1&last=b&token=t", "/v2/a/tags/list?n=1&last=b&token=***"),
        ("https://reg.example.com/v2/", "https://reg.example.com/v2/"),
        ("", ""),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_url_never_raises_on_garbage() -> None:
    # urlsplit refuses an unbalanced IPv6 bracket
    out = redact_url("https://user:pw@[::1/v2/?token=abc")
    assert "pw" not in out
    assert "abc" not in out
    out = redact_url("http://[bad?x=secretvalue#frag")
    assert "secretvalue" not in out
    assert "frag" not in out


def test_secret_hides_itself() -> None:
    secret = Secret(TOKEN)
    assert str(secret) == MASK
    assert repr(secret) == "Secret('***')"
    assert f"{secret}" == MASK
    assert f"{secret!r}" == "Secret('***')"
    assert "%s" % secret == MASK  # noqa: UP031 - the old formatting path matters too
    assert "{}".format(secret) == MASK  # noqa: UP032
    assert f"{secret:>5}" == "  ***"
    assert TOKEN not in repr([secret, {"k": secret}])
    assert secret.reveal() == TOKEN
    assert bool(secret)
    assert not bool(Secret(""))
    assert len(secret) == len(TOKEN)
    with pytest.raises(TypeError):
        json.dumps(secret)
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(TypeError):
        Secret(b"bytes")  # type: ignore[arg-type]


def test_secret_equality_and_rewrap() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert Secret("a") != "a"
    assert Secret(Secret("a")).reveal() == "a"  # type: ignore[arg-type]
    assert len({Secret("a"), Secret("a")}) == 1


def test_secret_in_logs_and_exceptions(caplog: pytest.LogCaptureFixture) -> None:
    secret = Secret(TOKEN)
    with caplog.at_level(logging.INFO):
        logging.getLogger("t").info("using %s / %r", secret, secret)
    assert TOKEN not in caplog.text
    with pytest.raises(ValueError, match="failed with") as info:
        raise ValueError(f"failed with {secret}")
    assert TOKEN not in str(info.value)


def test_redact_text() -> None:
    text = f"error: token {TOKEN} rejected; url ?t={'s3cr3t-T0ken%2Fwith%2Bchars%3D%3D'}"
    out = redact_text(text, [TOKEN])
    assert TOKEN not in out
    assert "s3cr3t-T0ken%2Fwith%2Bchars%3D%3D" not in out
    assert out.count(MASK) == 2


def test_redact_text_longest_first_and_ignores_empty() -> None:
    out = redact_text("abc abcdef", ["abc", "abcdef", "", None])
    assert out == f"{MASK} {MASK}"
    assert redact_text("nothing here", []) == "nothing here"
    assert redact_text("x hunter2 y", [Secret("hunter2")]) == f"x {MASK} y"


def test_redact_headers() -> None:
    headers = {
        "Authorization": "Bearer abc.def.ghi",
        "proxy-authorization": "Basic Ym9iOnB3",
        "Cookie": "session=1",
        "Location": "https://s3.example.com/b?sig=zzz&digest=sha256:1",
        "Link": '</v2/a/tags/list?n=2&last=b&token=qq>; rel="next"',
        "Content-Type": "application/json",
    }
    out = redact_headers(headers)
    assert out["Authorization"] == f"Bearer {MASK}"
    assert out["proxy-authorization"] == f"Basic {MASK}"
    assert out["Cookie"] == MASK
    assert out["Location"] == f"https://s3.example.com/b?sig={MASK}&digest=sha256:1"
    assert out["Link"] == f'</v2/a/tags/list?n=2&last=b&token={MASK}>; rel="next"'
    assert out["Content-Type"] == "application/json"
    joined = json.dumps(out)
    for secret in ("abc.def.ghi", "Ym9iOnB3", "session=1", "zzz", "qq"):
        assert secret not in joined
    assert redact_headers([("authorization", "opaque")]) == {"authorization": MASK}
