"""Deeply nested JSON, and images carrying it pushed to the real registry.

The registry (Go's encoding/json, nesting limit 10000) stores a manifest with a deeply
nested unknown field as it is, and a config blob is never parsed at all: both reach a
client exactly as a hostile registry would send them.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from .images import Blob, build_image, canonical_json
from .pusher import HttpPusher

if TYPE_CHECKING:
    from .registry import Registry

DEPTH = 5000  # beyond any Python parser's recursion limit, within the registry's
NESTED = "[" * DEPTH + "]" * DEPTH


def nested_doc(**fields: object) -> bytes:
    """A JSON object with ``fields`` and a field ``x`` nested DEPTH deep."""
    body = json.dumps(fields)[:-1] + (", " if fields else "") + f'"x": {NESTED}' + "}"
    return body.encode()


def push_nested_images(registry: Registry) -> dict[str, str]:
    """Push ``hostile/manifest:1`` (an image manifest with a nested extra field) and
    ``hostile/config:1`` (an image whose config blob is nested); their references:
    ``manifest``, ``pinned`` (the first by digest) and ``config``."""
    image = build_image("hostile")
    with HttpPusher.for_registry(registry) as pusher:
        for blob in image.blobs:
            pusher.push_blob("hostile/manifest", blob)
        manifest = json.loads(image.manifest.data)
        raw = canonical_json(manifest)[:-1] + f', "x": {NESTED}}}'.encode()
        digest = pusher.put_manifest("hostile/manifest", "1", Blob(image.manifest.media_type, raw))

        config = Blob(image.config.media_type, nested_doc(architecture="amd64", os="linux"))
        for blob in (config, *image.layers):
            pusher.push_blob("hostile/config", blob)
        manifest["config"] = config.descriptor()
        pusher.put_manifest(
            "hostile/config", "1", Blob(image.manifest.media_type, canonical_json(manifest))
        )
    return {
        "manifest": f"{registry.host}/hostile/manifest:1",
        "pinned": f"{registry.host}/hostile/manifest@{digest}",
        "config": f"{registry.host}/hostile/config:1",
    }
