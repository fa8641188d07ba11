"""Unit tests of portside/registry/manifest.py: parsing, validation, platform matching."""

from __future__ import annotations

import json
from typing import Any

import pytest

from portside import errors
from portside.reference import Digest
from portside.registry import mediatypes as mt
from portside.registry.manifest import (
    Descriptor,
    Platform,
    PlatformNotFound,
    parse_config,
    parse_manifest,
)

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


def raw(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def parse(doc: dict[str, Any] | bytes, content_type: str | None = None) -> Any:
    data = doc if isinstance(doc, bytes) else raw(doc)
    return parse_manifest(data, digest=Digest.of(data), content_type=content_type, where="r/x")


def image_doc(media_type: str | None = mt.OCI_MANIFEST, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": D1, "size": 10},
        "layers": [
            {"mediaType": mt.OCI_LAYER_GZIP, "digest": D2, "size": 100},
            {"mediaType": mt.OCI_LAYER_GZIP, "digest": D3, "size": 200},
        ],
        **extra,
    }
    if media_type is not None:
        doc["mediaType"] = media_type
    return doc


def entry(platform: dict[str, str] | None, digest: str = D1, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"mediaType": mt.OCI_MANIFEST, "digest": digest, "size": 500, **extra}
    if platform is not None:
        out["platform"] = platform
    return out


def index_doc(*entries: dict[str, Any], media_type: str | None = mt.OCI_INDEX) -> dict[str, Any]:
    doc: dict[str, Any] = {"schemaVersion": 2, "manifests": list(entries)}
    if media_type is not None:
        doc["mediaType"] = media_type
    return doc


# -- parsing ---------------------------------------------------------------------------


def test_image_manifest() -> None:
    data = raw(image_doc(annotations={"a": "b"}))
    manifest = parse_manifest(data, digest=Digest.of(data), content_type=mt.OCI_MANIFEST, where="x")
    assert manifest.media_type == mt.OCI_MANIFEST and not manifest.is_index
    assert manifest.config is not None and str(manifest.config.digest) == D1
    assert [str(layer.digest) for layer in manifest.layers] == [D2, D3]
    assert manifest.compressed_size == 310
    assert manifest.raw == data and manifest.digest == Digest.of(data)
    assert manifest.descriptor == Descriptor(mt.OCI_MANIFEST, Digest.of(data), len(data))
    assert manifest.annotations == {"a": "b"}


def test_docker_manifest_and_list() -> None:
    assert parse(image_doc(mt.DOCKER_MANIFEST), mt.DOCKER_MANIFEST).media_type == mt.DOCKER_MANIFEST
    listed = parse(
        index_doc(
            entry({"os": "linux", "architecture": "amd64"}), media_type=mt.DOCKER_MANIFEST_LIST
        ),
        f"{mt.DOCKER_MANIFEST_LIST}; charset=utf-8",
    )
    assert listed.is_index and listed.platforms == (Platform("linux", "amd64"),)


def test_media_type_absent_is_inferred_from_shape_or_header() -> None:
    assert parse(image_doc(None)).media_type == mt.OCI_MANIFEST
    assert parse(index_doc(entry(None), media_type=None)).media_type == mt.OCI_INDEX
    assert parse(image_doc(None), mt.DOCKER_MANIFEST).media_type == mt.DOCKER_MANIFEST
    assert parse(image_doc(None), "application/json").media_type == mt.OCI_MANIFEST


def test_schema1_is_unsupported() -> None:
    doc = {"schemaVersion": 1, "name": "x", "tag": "1", "fsLayers": []}
    for content_type in (None, mt.DOCKER_SCHEMA1, mt.DOCKER_SCHEMA1_SIGNED):
        with pytest.raises(errors.UnsupportedMediaType, match="schema 1"):
            parse(doc, content_type)
    with pytest.raises(errors.UnsupportedMediaType, match="schema 1"):
        parse(image_doc(mt.DOCKER_SCHEMA1_SIGNED))


def test_content_type_disagreeing_with_media_type_is_rejected() -> None:
    with pytest.raises(errors.InvalidResponse, match="served as"):
        parse(image_doc(mt.OCI_MANIFEST), mt.DOCKER_MANIFEST)
    with pytest.raises(errors.InvalidResponse, match="served as"):
        parse(index_doc(entry(None)), mt.OCI_MANIFEST)
    # Parameters and case in the header do not count as disagreement.
    assert parse(image_doc(), "Application/VND.oci.image.manifest.v1+json; x=y").media_type


@pytest.mark.parametrize(
    "doc",
    [
        index_doc(entry(None)) | {"layers": []},
        image_doc() | {"manifests": []},
        index_doc(entry(None)) | {"config": {"mediaType": mt.OCI_CONFIG, "digest": D1, "size": 1}},
        image_doc(None) | {"manifests": [entry(None)]},
    ],
)
def test_ambiguous_manifest_is_rejected(doc: dict[str, Any]) -> None:
    with pytest.raises(errors.InvalidResponse, match="ambiguous"):
        parse(doc)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (raw({"schemaVersion": 2, "mediaType": 5}), "not a string"),
        (raw(index_doc(media_type=mt.OCI_INDEX) | {"manifests": "x"}), "no 'manifests'"),
        (raw({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "layers": []}), "lacks"),
        (raw(image_doc() | {"layers": {}}), "lacks"),
        (raw(image_doc() | {"config": "x"}), "not a JSON object"),
        (raw(image_doc() | {"config": {"mediaType": mt.OCI_CONFIG, "size": 1}}), "lacks"),
    ],
)
def test_malformed_manifests(data: bytes, match: str) -> None:
    with pytest.raises(errors.InvalidResponse, match=match):
        parse(data)


def test_unknown_media_type_is_unsupported() -> None:
    with pytest.raises(errors.UnsupportedMediaType, match="unsupported"):
        parse(image_doc("application/vnd.example.thing+json"))


@pytest.mark.parametrize("size", [-1, "10", 1.5, True, None])
def test_descriptor_size_must_be_a_non_negative_integer(size: Any) -> None:
    doc = image_doc()
    doc["layers"][0]["size"] = size
    with pytest.raises(errors.InvalidResponse, match="invalid size"):
        parse(doc)


@pytest.mark.parametrize(
    "digest",
    ["sha256:../../etc/passwd", "sha256:" + "A" * 64, "sha256:abc", "md5:" + "0" * 32, "x", ""],
)
def test_invalid_descriptor_digests_are_protocol_errors(digest: str) -> None:
    doc = image_doc()
    doc["layers"][1]["digest"] = digest
    with pytest.raises(errors.InvalidResponse, match="invalid digest") as info:
        parse(doc)
    assert not isinstance(info.value, errors.UsageError)
    with pytest.raises(errors.InvalidResponse):
        parse(index_doc(entry(None, digest=digest)))


def test_descriptor_extras_and_round_trip() -> None:
    data = {
        "mediaType": mt.OCI_MANIFEST,
        "digest": D1,
        "size": 3,
        "platform": {
            "os": "windows",
            "architecture": "amd64",
            "os.version": "10.0.20348.4052",
        },
        "annotations": {"k": "v"},
        "artifactType": "application/vnd.example.sbom",
        "urls": ["https://example.com/layer", 5],
    }
    descriptor = Descriptor.from_json(data, where="x")
    assert descriptor.platform == Platform("windows", "amd64", None, "10.0.20348.4052")
    assert descriptor.urls == ("https://example.com/layer",)
    data["urls"] = ["https://example.com/layer"]
    assert descriptor.to_json() == data
    assert Descriptor.from_json(descriptor.to_json(), where="x") == descriptor


def test_subject_and_artifact_type() -> None:
    doc = image_doc(
        subject={"mediaType": mt.OCI_MANIFEST, "digest": D3, "size": 9},
        artifactType="application/vnd.example.sig",
    )
    manifest = parse(doc)
    assert manifest.subject is not None and str(manifest.subject.digest) == D3
    assert manifest.artifact_type == "application/vnd.example.sig"


# -- platforms -------------------------------------------------------------------------


def test_platform_parse() -> None:
    assert Platform.parse("linux/amd64") == Platform("linux", "amd64")
    assert Platform.parse("linux/arm64/v8") == Platform("linux", "arm64", "v8")
    assert Platform.parse("Linux/x86_64") == Platform("linux", "amd64")
    assert Platform.parse("linux/aarch64") == Platform("linux", "arm64")
    assert Platform.parse("linux/armhf") == Platform("linux", "arm", "v7")
    assert str(Platform.parse("linux/arm/v6")) == "linux/arm/v6"
    for bad in ("linux", "linux/", "/amd64", "a/b/c/d", ""):
        with pytest.raises(errors.InvalidReference):
            Platform.parse(bad)


def test_platform_from_json() -> None:
    assert Platform.from_json({"os": "linux", "architecture": "arm", "variant": "v7"}) == Platform(
        "linux", "arm", "v7"
    )
    assert Platform.from_json({"os": "linux", "architecture": "amd64", "variant": ""}) == Platform(
        "linux", "amd64"
    )
    assert Platform.from_json({"os": "linux"}) is None
    assert Platform.from_json("linux/amd64") is None


def test_arm64_v8_variant_matching() -> None:
    bare = Platform("linux", "arm64")
    v8 = Platform("linux", "arm64", "v8")
    assert bare.matches(v8)  # arm64 images usually omit v8
    assert v8.matches(bare)
    assert v8.matches(v8)
    assert not Platform("linux", "arm64", "v9").matches(v8)
    assert not Platform("linux", "arm", "v7").matches(Platform("linux", "arm", "v6"))
    assert not Platform("linux", "arm").matches(Platform("linux", "arm", "v7"))
    assert not Platform("linux", "amd64").matches(Platform("windows", "amd64"))


def test_windows_os_version_matching() -> None:
    ltsc2022 = Platform("windows", "amd64", None, "10.0.20348.4052")
    ltsc2025 = Platform("windows", "amd64", None, "10.0.26100.4946")
    assert ltsc2022.matches(Platform("windows", "amd64"))
    assert ltsc2022.matches(Platform("windows", "amd64", None, "10.0.20348"))
    assert ltsc2022.matches(Platform("windows", "amd64", None, "10.0.20348.4052"))
    assert not ltsc2022.matches(Platform("windows", "amd64", None, "10.0.2034"))
    assert not ltsc2025.matches(Platform("windows", "amd64", None, "10.0.20348"))

    index = parse(
        index_doc(
            entry({"os": "linux", "architecture": "amd64"}, D1),
            entry({"os": "windows", "architecture": "amd64", "os.version": "10.0.20348.4052"}, D2),
            entry({"os": "windows", "architecture": "amd64", "os.version": "10.0.26100.4946"}, D3),
        )
    )
    assert str(index.select(Platform("windows", "amd64")).digest) == D2
    assert str(index.select(Platform("windows", "amd64", None, "10.0.26100")).digest) == D3
    assert str(index.select(Platform("linux", "amd64")).digest) == D1


def test_select_never_chooses_attestations() -> None:
    attestation = entry(
        {"os": "unknown", "architecture": "unknown"},
        D3,
        annotations={
            "vnd.docker.reference.type": "attestation-manifest",
            "vnd.docker.reference.digest": D1,
        },
    )
    index = parse(
        index_doc(
            attestation,
            entry({"os": "linux", "architecture": "arm64", "variant": "v8"}, D2),
            entry({"os": "linux", "architecture": "amd64"}, D1),
        )
    )
    assert str(index.select(Platform("linux", "arm64")).digest) == D2
    assert str(index.select(Platform("linux", "arm64", "v8")).digest) == D2
    assert str(index.select(Platform("linux", "amd64")).digest) == D1
    with pytest.raises(PlatformNotFound) as info:
        index.select(Platform("unknown", "unknown"))
    assert "unknown" not in (info.value.hint or "")
    assert info.value.available == "linux/arm64/v8, linux/amd64"
    # Annotated as an attestation but with a real-looking platform: still never chosen.
    only = parse(
        index_doc(
            entry(
                {"os": "linux", "architecture": "amd64"},
                D3,
                annotations={"vnd.docker.reference.type": "attestation-manifest"},
            )
        )
    )
    with pytest.raises(PlatformNotFound) as none:
        only.select(Platform("linux", "amd64"))
    assert none.value.available == "none"


def test_select_error_names_what_is_available() -> None:
    index = parse(
        index_doc(
            entry({"os": "linux", "architecture": "amd64"}),
            entry({"os": "linux", "architecture": "s390x"}, D2),
            entry(None, D3),
        )
    )
    with pytest.raises(PlatformNotFound) as info:
        index.select(Platform("linux", "riscv64"))
    assert "linux/riscv64" in str(info.value)
    assert "linux/amd64, linux/s390x" in (info.value.hint or "")
    assert isinstance(info.value, errors.InvalidReference)


# -- image configs ---------------------------------------------------------------------


def test_parse_config() -> None:
    doc = {
        "created": "2024-01-01T00:00:00Z",
        "architecture": "arm64",
        "variant": "v8",
        "os": "linux",
        "config": {
            "Labels": {"org.opencontainers.image.version": "1.2", "n": 3},
            "Entrypoint": ["/bin/app"],
            "Cmd": ["--serve"],
            "Env": ["A=1"],
            "User": "app",
            "WorkingDir": "/srv",
        },
        "history": [{"created_by": "a"}, {"created_by": "b"}],
    }
    data = raw(doc)
    config = parse_config(data, digest=Digest.of(data), where="x")
    assert config.platform == Platform("linux", "arm64", "v8")
    assert config.labels == {"org.opencontainers.image.version": "1.2", "n": "3"}
    assert config.entrypoint == ("/bin/app",) and config.cmd == ("--serve",)
    assert config.env == ("A=1",) and config.user == "app" and config.workdir == "/srv"
    assert config.history_length == 2 and config.created == "2024-01-01T00:00:00Z"


def test_parse_config_tolerates_odd_shapes_and_rejects_non_objects() -> None:
    data = raw({"config": None, "history": "x", "created": 5, "Entrypoint": 1})
    config = parse_config(data, digest=Digest.of(data), where="x")
    assert config.labels == {} and config.history_length == 0 and config.created is None
    assert config.platform is None and config.entrypoint is None
    for bad in (b"nope", b"[1]"):
        with pytest.raises(errors.InvalidResponse):
            parse_config(bad, digest=Digest.of(bad), where="x")
