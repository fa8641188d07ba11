"""Diagnostics made and converted once per document (lsp_server.features.DiagnosticCache,
lsp_server.json_forms): what is sent is what pygls's own converter sends, and nothing
outlives the findings it was made for."""

from __future__ import annotations

from pygls.protocol import default_converter

from lsp_server import features, json_forms
from lsp_server.positions import Codec
from portside import policy
from portside.config import PolicyConfig
from portside.dockerfile import parse


def findings_of(text: str) -> tuple[list[policy.Finding], Codec]:
    doc = parse(text)
    local, _ = policy.local_findings(doc, file="Dockerfile", text=text, config=PolicyConfig())
    return local, Codec(doc.document, "utf-16")


def test_unchanged_findings_are_sent_as_first_converted_and_changed_ones_anew() -> None:
    plain = default_converter()  # type: ignore[no-untyped-call]
    ours = json_forms.converter()
    cache = features.DiagnosticCache()
    before = len(json_forms._FORMS)
    text = "FROM alpine:3.21\nFROM python:3.12\n"
    found, codec = findings_of(text)
    first = cache.diagnostics(found, codec)
    assert len(first) == 2
    # A line typed between the two images: the second one moves down.
    found, codec = findings_of("FROM alpine:3.21\n# 😀\nFROM python:3.12\n")
    second = cache.diagnostics(found, codec)
    assert second[0] is first[0]  # line 0 untouched: the same diagnostic, not made again
    assert second[1] is not first[1] and second[1].range.start.line == 2
    for diagnostic in second:
        assert ours.unstructure(diagnostic) == plain.unstructure(diagnostic)
    assert len(json_forms._FORMS) == before + 2  # the first line-1 diagnostic was dropped
    cache.clear()
    assert len(json_forms._FORMS) == before
    # A diagnostic the cache never made is converted as usual.
    other = features.to_diagnostics(found, codec)[0]
    assert ours.unstructure(other) == plain.unstructure(other)
