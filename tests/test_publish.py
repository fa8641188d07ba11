"""Tags from versions, and publishing to real registries: skip, resume, all-or-nothing."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

import portside.publish as publish
from harness.dockerconfig import write_docker_config
from harness.proxy import FaultProxy
from harness.registry import Registry, RegistryFactory
from harness.seed import build_image, push_image
from harness.skopeo import Skopeo
from portside.build.layers import make_layer
from portside.build.layout import Layout, canonical
from portside.publish import PublishError, compute_tags, run_push
from portside.registry import mediatypes as mt


@pytest.mark.parametrize(
    ("version", "existing", "expected"),
    [
        ("1.4.2", [], ["1.4.2", "1.4", "1", "latest"]),
        ("1.4.2", ["1.4.1", "1.3.0"], ["1.4.2", "1.4", "1", "latest"]),
        ("1.3.9", ["1.4.2", "1.4", "1", "latest"], ["1.3.9", "1.3"]),  # a backport
        ("1.4.2", ["1.4.3", "2.0.0"], ["1.4.2"]),
        ("1.5.0", ["1.4.3", "2.0.0"], ["1.5.0", "1.5", "1"]),
        ("2.0.0rc1", ["1.4.2"], ["2.0.0rc1", "next"]),
        ("1.4.2", ["1.5.0rc1"], ["1.4.2", "1.4", "1", "latest"]),  # pre-releases never count
    ],
)
def test_tags(version: str, existing: list[str], expected: list[str]) -> None:
    assert compute_tags(version, existing=existing, channel="next") == expected


def test_dev_and_local_versions_get_only_dev_tags() -> None:
    assert compute_tags("1.5.0.dev3", sha="abc1234") == ["dev-abc1234"]
    assert compute_tags("1.4.2+local.7", sha="abc1234", extra=["sha-{sha}"]) == [
        "dev-abc1234",
        "sha-abc1234",
    ]
    with pytest.raises(Exception, match="dev-<sha>"):
        compute_tags("1.5.0.dev3")


def make_layout(root: Path, big: int = 0, tag: str = "x") -> Layout:
    """A real single-platform OCI layout; ``big`` adds an incompressible layer of that size."""
    layout = Layout.create(root)
    files = {"app/hello.txt": (f"hello {tag}\n".encode(), False)}
    if big:
        files["app/blob.bin"] = (os.urandom(big), False)
    layer = make_layer(files)
    layout.add_blob(layer.data)
    config = canonical(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [str(layer.diff_id)]},
            "config": {"Cmd": ["/bin/sh"]},
        }
    )
    config_digest = layout.add_blob(config)
    manifest = canonical(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {
                "mediaType": mt.OCI_CONFIG,
                "digest": str(config_digest),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": mt.OCI_LAYER_GZIP,
                    "digest": str(layer.digest),
                    "size": len(layer.data),
                }
            ],
        }
    )
    layout.set_top(mt.OCI_MANIFEST, layout.add_blob(manifest), len(manifest))
    return layout


async def test_publish_respects_newer_releases_and_republish_is_free(
    plain_registry: Registry, tmp_path: Path
) -> None:
    repo = "team/app"
    for version in ("1.3.0", "1.4.3", "2.0.0"):
        push_image(plain_registry, repo, build_image(f"app-{version}"), [version])
    push_image(plain_registry, repo, build_image("app-2.0.0"), ["2.0", "2", "latest"])
    skopeo = Skopeo.for_registry(plain_registry)
    latest_before = skopeo.digest(plain_registry.ref(repo, "latest"))
    layout = make_layout(tmp_path / "l")
    dest = plain_registry.ref(repo)
    tags = compute_tags("1.4.2", existing=skopeo.list_tags(dest))
    assert tags == ["1.4.2"]  # 1.4.3 exists: 1.4 stays; 2.0.0 exists: 1 and latest stay
    first = await run_push(f"oci:{layout.root}", {dest: tags})
    assert first.destinations[0].blobs_uploaded == 2 and first.destinations[0].tags_set == tags
    assert skopeo.digest(plain_registry.ref(repo, "1.4.2")) == first.digest
    assert skopeo.digest(plain_registry.ref(repo, "latest")) == latest_before
    # Publishing the same image again uploads nothing and writes no manifest.
    again = await run_push(f"oci:{layout.root}", {dest: tags})
    assert again.destinations[0].bytes_uploaded == 0
    assert again.destinations[0].blobs_skipped == 2
    assert again.destinations[0].manifests_written == 0
    # A dry run says what it would do and changes nothing.
    plan = await run_push(
        f"oci:{layout.root}", {plain_registry.ref("team/new"): ["1"]}, dry_run=True
    )
    assert plan.dry_run and plan.destinations[0].blobs_uploaded == 2
    assert "team/new" not in plain_registry.repositories_on_disk()


async def test_big_blob_resumes_after_a_dropped_connection(
    plain_registry: Registry,
    proxy_factory: Callable[..., FaultProxy],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(publish, "CHUNK_SIZE", 1 << 20)
    layout = make_layout(tmp_path / "l", big=3 << 20)
    proxy = proxy_factory(plain_registry)
    # A chunk reaches the registry, but the answer is lost (turned into a 503): the
    # client's resend then conflicts with what the registry holds, and must resume.
    proxy.transform("PATCH", r"/blobs/uploads/", lambda _s, h, b: (503, h, b), times=1)
    dest = f"127.0.0.1:{proxy.port}/team/big"
    report = await run_push(f"oci:{layout.root}", {dest: ["1.0.0"]})
    patches = [r for r in proxy.requests if r.method == "PATCH"]
    assert len(patches) >= 4  # 3+ chunks, one of them sent again or resumed
    # distribution invalidates the session's state token once the answer is lost, so the
    # resend is refused; the client then starts one fresh session for that blob.
    posts = [r for r in proxy.requests if r.method == "POST" and "/blobs/uploads/" in r.path]
    assert len(posts) >= 3  # layer, config, and the restarted layer
    skopeo = Skopeo.for_registry(plain_registry)
    assert skopeo.digest(plain_registry.ref("team/big", "1.0.0")) == report.digest
    # All bytes arrived intact: skopeo copies the image out, verifying every digest.
    skopeo.run(
        "copy", "--src-tls-verify=false", f"docker://{plain_registry.ref('team/big', '1.0.0')}",
        f"oci:{tmp_path}/copy",
    )  # fmt: skip


async def test_failed_destination_moves_no_tag_anywhere(
    registry_factory: RegistryFactory,
    proxy_factory: Callable[..., FaultProxy],
    tmp_path: Path,
) -> None:
    good = registry_factory()
    bad = registry_factory()
    proxy = proxy_factory(bad)
    proxy.fail("PUT", r"/manifests/", 500, times=None)  # the bad one never takes manifests
    layout = make_layout(tmp_path / "l")
    ok_dest, bad_dest = good.ref("team/app"), f"127.0.0.1:{proxy.port}/team/app"
    with pytest.raises(PublishError) as caught:
        await run_push(f"oci:{layout.root}", {ok_dest: ["1.0.0", "latest"], bad_dest: ["1.0.0"]})
    report = caught.value.report
    assert not report.ok and report.tags_moved == []
    assert "no tag was moved" in str(caught.value)
    skopeo = Skopeo.for_registry(good)
    with pytest.raises(Exception, match=r"404|not found|unknown"):
        skopeo.list_tags(ok_dest)
    # Retrying once the registry behaves: the good one skips everything, both get tags.
    proxy.clear_rules()
    report = await run_push(
        f"oci:{layout.root}", {ok_dest: ["1.0.0", "latest"], bad_dest: ["1.0.0"]}
    )
    assert report.destinations[0].bytes_uploaded == 0
    assert sorted(skopeo.list_tags(ok_dest)) == ["1.0.0", "latest"]


async def test_same_registry_destinations_mount(
    token_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = (token_registry.username, token_registry.password)
    write_docker_config(tmp_path / "dc", auths={token_registry.host: auth})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dc"))
    layout = make_layout(tmp_path / "l", big=64 << 10)
    a, b = token_registry.ref("one/app"), token_registry.ref("two/app")
    report = await run_push(f"oci:{layout.root}", {a: ["1.0.0"], b: ["1.0.0"]})
    first, second = report.destinations
    assert first.blobs_uploaded == 2 and second.blobs_mounted == 2 and second.bytes_uploaded == 0
    skopeo = Skopeo.for_registry(token_registry)
    assert skopeo.digest(f"{b}:1.0.0") == skopeo.digest(f"{a}:1.0.0") == report.digest
