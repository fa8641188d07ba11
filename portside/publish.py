"""Tags, annotations, and pushing an image to many repositories without half-releasing.

The order is what makes a publish safe to retry and all-or-nothing per image:

1. every destination gets every blob (skipped when present, mounted from another
   repository of the same registry, else uploaded; big ones chunked and resumable),
2. then the platform manifests and the index, *by digest* (untagged: invisible),
3. and only when every destination has all of that, the tags, one by one.

A failure in 1 or 2 moves no tag anywhere. A failure in 3 (rare: a tag PUT of a
manifest the registry already holds) is reported with exactly the tags that moved, and
the publish fails. Rerunning skips every blob and manifest already there (HEAD) and
re-puts the tags: cheap.

Tags come from a PEP 440 version: ``1.4.2`` -> ``1.4.2``, and ``1.4``, ``1``, ``latest``
only when no newer final release of that line is already in the repository (so a
backport never steals ``latest``); pre-releases only their own tag (plus a channel tag);
dev and local versions only ``dev-<sha>``.
"""

from __future__ import annotations

import abc
import asyncio
import datetime as dt
import errno
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from portside import errors
from portside.build.base import (
    BuildError,
    BuildRequest,
    BuildResult,
    Progress,
    created_timestamp,
    no_progress,
    source_date_epoch,
)
from portside.build.layout import Layout, canonical, platform_key
from portside.gate import GateConfig, GateReport, parse_gate
from portside.progress import PlainReporter, Reporter
from portside.reference import Digest, Reference
from portside.registry.client import RegistryClient, UploadResult
from portside.registry.credentials import CredentialStore
from portside.registry.manifest import Descriptor, Manifest
from portside.registry.transport import ClientOptions

__all__ = [
    "DestinationReport",
    "GitInfo",
    "ImageConfigTable",
    "PublishError",
    "PublishReport",
    "Version",
    "build_for_release",
    "check_release_version",
    "compute_tags",
    "git_info",
    "image_annotations",
    "load_image_config",
    "parse_version",
    "publish_built",
    "push_image",
    "run_build",
    "run_publish",
    "run_push",
]

# Blobs above this go in resumable chunks of this size; smaller ones in one PUT.
CHUNK_SIZE = 16 * 1024 * 1024
CONCURRENCY = 6
# Times a registry-to-registry blob copy is started when a connection breaks mid-copy.
COPY_ATTEMPTS = 3

# -- versions and tags -----------------------------------------------------------------

_PEP440 = re.compile(
    r"^v?(?:(?P<epoch>\d+)!)?(?P<release>\d+(?:\.\d+)*)"
    r"(?:[-_.]?(?P<pre_l>a|alpha|b|beta|rc|c|pre|preview)[-_.]?(?P<pre_n>\d*))?"
    r"(?:(?:-(?P<post_n1>\d+))|(?:[-_.]?(?:post|rev|r)[-_.]?(?P<post_n2>\d*)))?"
    r"(?:[-_.]?dev[-_.]?(?P<dev>\d*))?"
    r"(?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?$",
    re.IGNORECASE,
)
_PRE = {"alpha": "a", "beta": "b", "c": "rc", "pre": "rc", "preview": "rc"}


@dataclass(frozen=True)
class Version:
    """The parts of a PEP 440 version that tagging needs."""

    release: tuple[int, ...]
    pre: tuple[str, int] | None = None
    post: int | None = None
    dev: int | None = None
    local: str | None = None

    @property
    def is_final(self) -> bool:
        return self.pre is None and self.dev is None and self.local is None

    def __str__(self) -> str:
        text = ".".join(map(str, self.release))
        if self.pre:
            text += f"{self.pre[0]}{self.pre[1]}"
        if self.post is not None:
            text += f".post{self.post}"
        if self.dev is not None:
            text += f".dev{self.dev}"
        if self.local:
            text += f"+{self.local}"
        return text


def parse_version(text: str) -> Version:
    match = _PEP440.match(text.strip())
    if not match:
        raise errors.UsageError(f"{text!r} is not a PEP 440 version")
    pre = None
    if match["pre_l"]:
        label = match["pre_l"].lower()
        pre = (_PRE.get(label, label), int(match["pre_n"] or 0))
    post_text = match["post_n1"] or match["post_n2"]
    has_post = match["post_n1"] is not None or match["post_n2"] is not None
    return Version(
        release=tuple(int(p) for p in match["release"].split(".")),
        pre=pre,
        post=int(post_text or 0) if has_post else None,
        dev=int(match["dev"] or 0) if match["dev"] is not None else None,
        local=match["local"],
    )


def _final_tag_version(tag: str) -> tuple[int, ...] | None:
    """The release numbers of a tag that is a final release (``1.4.2``, ``v1.4.2``)."""
    if not re.fullmatch(r"v?\d+(?:\.\d+)*(?:\.post\d+)?", tag):
        return None
    version = parse_version(tag)
    return (*version.release, version.post or 0)


def check_release_version(text: str, *, allow_dev: bool = False) -> Version:
    """``text`` parsed, refusing development and local versions unless ``allow_dev``:
    what a build plugin asks before publishing, since builds also run for
    ``pip install`` from a checkout."""
    version = parse_version(text)
    if (version.dev is not None or version.local is not None) and not allow_dev:
        raise errors.UsageError(
            f"{text} is a development or local version: not publishing its image",
            hint="release a final or pre-release version, or set allow-dev = true",
        )
    return version


def _sanitise(text: str) -> str:
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip(".-")[:128]
    return tag or "unknown"


def compute_tags(
    version: str,
    *,
    existing: Iterable[str] = (),
    sha: str | None = None,
    branch: str | None = None,
    channel: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The tags this version gets in a repository that already holds ``existing``.

    ``extra`` are templates (``sha-{sha}``, ``{branch}``, ``{major}.{minor}-slim``) added
    for every version kind; a template whose field is unknown is skipped.
    """
    parsed = parse_version(version)
    fields = {
        "version": _sanitise(str(parsed)),
        "major": str(parsed.release[0]),
        "minor": str(parsed.release[1] if len(parsed.release) > 1 else 0),
        "patch": str(parsed.release[2] if len(parsed.release) > 2 else 0),
        "sha": sha or "",
        "branch": _sanitise(branch) if branch else "",
    }
    tags: list[str] = []
    if parsed.dev is not None or parsed.local is not None:
        if not sha:
            raise errors.UsageError(
                f"{version} is a development version: its tag is dev-<sha>, and there is no "
                "git commit here",
                hint="publish from a git checkout, or release a final version",
            )
        tags.append(f"dev-{sha}")
    elif parsed.pre is not None:
        tags.append(_sanitise(str(parsed)))
        if channel:
            tags.append(_sanitise(channel))
    else:
        tags.append(_sanitise(str(parsed)))
        mine = (*parsed.release, parsed.post or 0)
        released = [v for v in (_final_tag_version(t) for t in existing) if v is not None]
        # 1.4 moves when nothing newer in 1.4.x is there; 1 likewise; latest over all.
        for depth in range(len(parsed.release) - 1, 0, -1):
            prefix = parsed.release[:depth]
            line = [v for v in released if v[:depth] == prefix and len(v) > depth + 1]
            if all(v <= mine for v in line):
                tags.append(".".join(map(str, prefix)))
        if all(v <= mine for v in released if len(v) > 2):
            tags.append("latest")
    for template in extra:
        try:
            value = template.format(**fields)
        except (KeyError, IndexError, ValueError):
            continue
        if value and not value.endswith("-") and value not in tags:
            tags.append(_sanitise(value))
    return list(dict.fromkeys(tags))


# -- git and annotations -----------------------------------------------------------------


@dataclass(frozen=True)
class GitInfo:
    sha: str | None = None
    short: str | None = None
    branch: str | None = None
    source: str | None = None
    dirty: bool = False


def git_info(directory: Path) -> GitInfo:
    """What git says about ``directory``; empty when it is not a checkout."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(directory), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    if not sha:
        return GitInfo()
    branch = git("rev-parse", "--abbrev-ref", "HEAD")
    source = git("config", "--get", "remote.origin.url")
    status = git("status", "--porcelain", "--untracked-files=no")
    return GitInfo(
        sha=sha,
        short=sha[:7],
        branch=None if branch == "HEAD" else branch,
        source=source or None,
        dirty=bool(status),
    )


def image_annotations(
    *,
    version: str | None,
    git: GitInfo,
    epoch: int | None,
    base_name: str | None = None,
    base_digest: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """OCI annotations (also used as labels) saying what an image was built from."""
    out = {"org.opencontainers.image.created": created_timestamp(epoch)}
    if version:
        out["org.opencontainers.image.version"] = version
    if git.sha:
        out["org.opencontainers.image.revision"] = git.sha
    if git.source:
        out["org.opencontainers.image.source"] = git.source
    if base_name:
        out["org.opencontainers.image.base.name"] = base_name
    if base_digest:
        out["org.opencontainers.image.base.digest"] = base_digest
    out.update(extra or {})
    return out


# -- sources: where the image's bytes come from -------------------------------------------


class _Source(abc.ABC):
    """An image to push: its manifests, and a way to get each blob to a destination."""

    top: Manifest
    children: dict[Digest, Manifest]
    registry: str | None = None
    repository: str | None = None

    def images(self) -> list[Manifest]:
        return list(self.children.values()) if self.top.is_index else [self.top]

    def blobs(self) -> dict[Digest, Descriptor]:
        found: dict[Digest, Descriptor] = {}
        for image in self.images():
            assert image.config is not None
            for desc in (image.config, *image.layers):
                found.setdefault(desc.digest, desc)
        return found

    @abc.abstractmethod
    async def send_blob(
        self,
        client: RegistryClient,
        dest: Reference,
        desc: Descriptor,
        mount_from: str | None,
        progress: Callable[[int], None] | None,
    ) -> UploadResult:
        """Put one blob of this image into ``dest``."""


class _LayoutSource(_Source):
    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.top = layout.top()
        self.children = {
            d.digest: layout.manifest(d.digest, d.media_type) for d in self.top.manifests
        }

    async def send_blob(
        self,
        client: RegistryClient,
        dest: Reference,
        desc: Descriptor,
        mount_from: str | None,
        progress: Callable[[int], None] | None,
    ) -> UploadResult:
        return await client.upload_blob_file(
            dest,
            self.layout.blob_path(desc.digest),
            digest=desc.digest,
            mount_from=mount_from,
            chunk_size=CHUNK_SIZE,
            progress=progress,
        )


class _RegistrySource(_Source):
    def __init__(self, ref: Reference, top: Manifest, children: dict[Digest, Manifest]) -> None:
        self.ref = ref
        self.top = top
        self.children = children
        self.registry = ref.registry
        self.repository = ref.repository

    @classmethod
    async def load(cls, client: RegistryClient, ref: Reference) -> _RegistrySource:
        top = await client.get_manifest(ref)
        children = {
            d.digest: await client.get_manifest(ref.with_digest(d.digest)) for d in top.manifests
        }
        return cls(ref, top, children)

    async def send_blob(
        self,
        client: RegistryClient,
        dest: Reference,
        desc: Descriptor,
        mount_from: str | None,
        progress: Callable[[int], None] | None,
    ) -> UploadResult:
        if (
            mount_from
            and await client.blob_exists(dest, desc.digest) is None
            and await client.mount_blob(dest, desc.digest, mount_from)
        ):
            return UploadResult(desc.digest, desc.size, mounted=True)
        # A stream from another registry cannot be rewound: when either side drops the
        # connection mid-copy (and the upload could not resume), start the blob over.
        for attempt in range(COPY_ATTEMPTS):
            try:
                return await client.copy_blob(
                    self.ref,
                    dest,
                    desc.digest,
                    size=desc.size,
                    chunk_size=CHUNK_SIZE,
                    progress=progress,
                )
            except (errors.RegistryUnreachable, errors.ServerError):
                if attempt + 1 == COPY_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


async def open_source(client: RegistryClient, source: str | BuildResult) -> _Source:
    """A build result, ``oci:DIR`` (an OCI layout) or a registry reference."""
    if isinstance(source, BuildResult):
        if source.kind == "oci-layout":
            assert source.layout is not None
            return _LayoutSource(Layout(source.layout))
        assert source.reference is not None
        source = source.reference
    if source.startswith("oci:"):
        return _LayoutSource(Layout(Path(source[4:])))
    return await _RegistrySource.load(client, Reference.parse(source))


def annotate_layout(layout: Layout, annotations: Mapping[str, str]) -> Manifest:
    """Add annotations to every manifest of a layout (new digests); returns the new top."""
    top = layout.top()

    def rewrite(manifest: Manifest) -> tuple[bytes, Digest]:
        doc = json.loads(manifest.raw)
        doc.setdefault("mediaType", manifest.media_type)
        doc["annotations"] = {**doc.get("annotations", {}), **annotations}
        raw = canonical(doc)
        return raw, layout.add_blob(raw)

    if not top.is_index:
        raw, digest = rewrite(top)
        layout.set_top(top.media_type, digest, len(raw))
        return layout.top()
    entries = []
    for desc in top.manifests:
        raw, digest = rewrite(layout.manifest(desc.digest, desc.media_type))
        entry = desc.to_json()
        entry.update(digest=str(digest), size=len(raw))
        entries.append(entry)
    doc = json.loads(top.raw)
    doc["manifests"] = entries
    doc["annotations"] = {**doc.get("annotations", {}), **annotations}
    raw = canonical(doc)
    layout.set_top(top.media_type, layout.add_blob(raw), len(raw))
    return layout.top()


# -- push ---------------------------------------------------------------------------------


class PublishError(errors.PortsideError):
    """A publish failed; ``report`` says what happened at every destination."""

    def __init__(
        self,
        message: str,
        report: PublishReport,
        *,
        cause: BaseException | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.report = report
        # Exit as the underlying failure would (4 for refused credentials, 5 for a
        # registry that failed, ...), so scripts can tell them apart.
        if isinstance(cause, errors.PortsideError):
            self.exit_code = cause.exit_code


@dataclass
class DestinationReport:
    repository: str
    tags: list[str]
    digest: str | None = None
    platform_digests: dict[str, str] = field(default_factory=dict)
    tags_set: list[str] = field(default_factory=list)
    bytes_uploaded: int = 0
    bytes_skipped: int = 0
    bytes_mounted: int = 0
    blobs_uploaded: int = 0
    blobs_skipped: int = 0
    blobs_mounted: int = 0
    manifests_written: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def summary(self, *, dry_run: bool) -> str:
        """One line for a person: the tags and the blobs of this destination."""
        from portside.images import human_size

        if self.error is not None:
            return f"{self.repository}: failed: {self.error}"
        if dry_run:
            tags = f"would tag {', '.join(self.tags)}" if self.tags else "no tag"
            upload = "would upload"
        else:
            tags = f"tagged {', '.join(self.tags_set)}" if self.tags_set else "no tag moved"
            upload = "uploaded"
        blobs = (
            f"{upload} {self.blobs_uploaded} blob(s) ({human_size(self.bytes_uploaded)}), "
            f"{self.blobs_skipped} already there, {self.blobs_mounted} mounted"
        )
        return f"{self.repository}: {tags}; {blobs}"


@dataclass
class PublishReport:
    digest: str
    platform_digests: dict[str, str]
    destinations: list[DestinationReport]
    dry_run: bool = False
    ok: bool = True
    error: str | None = None
    gate: GateReport | None = None
    retired: list[dict[str, str]] = field(default_factory=list)  # digests tags moved away from

    @property
    def tags_moved(self) -> list[str]:
        return [f"{d.repository}:{t}" for d in self.destinations for t in d.tags_set]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "digest": self.digest,
            "platform_digests": self.platform_digests,
            "tags_moved": self.tags_moved,
            "error": self.error,
            "destinations": [d.to_json() for d in self.destinations],
            "gate": self.gate.to_json() if self.gate is not None else None,
            "retired": self.retired,
        }

    def summary(self) -> list[str]:
        """What ``portside push`` and ``publish`` tell a person (``--json``: :meth:`to_json`)."""
        if self.dry_run:
            head = f"dry run: would push {self.digest or 'the image'}; nothing was written"
        elif self.ok:
            head = f"pushed {self.digest}"
        else:
            head = f"failed; tags moved: {', '.join(self.tags_moved) or 'none'}"
        lines = [head]
        lines += [f"  {d.summary(dry_run=self.dry_run)}" for d in self.destinations]
        lines += [f"  retired {r['repository']}@{r['digest']}: {r['reason']}" for r in self.retired]
        if self.gate is not None:
            lines += [f"  gate: {warning}" for warning in self.gate.warnings]
            lines += [
                f"  gate: {a['id']} in {a['image']} allowed: {a['reason']}"
                for a in self.gate.allowed
            ]
        return lines


def _platform_digests(source: _Source) -> dict[str, str]:
    if not source.top.is_index:
        return {}
    return {
        platform_key(d.to_json()["platform"]): str(d.digest)
        for d in source.top.manifests
        if d.platform is not None
    }


async def _push_content(
    client: RegistryClient,
    source: _Source,
    dest: Reference,
    report: DestinationReport,
    gate: asyncio.Semaphore,
    mount_from: str | None,
    progress: Progress,
) -> None:
    """Blobs, then child manifests, then the top manifest, all by digest (no tags)."""
    where = f"{dest.registry}/{dest.repository}"

    async def one(desc: Descriptor) -> None:
        label = f"{where} {desc.digest.short}"
        bar = progress.transfer(label, desc.size) if isinstance(progress, Reporter) else None
        try:
            async with gate:
                result = await source.send_blob(client, dest, desc, mount_from, bar)
        except BaseException:
            if isinstance(progress, Reporter):
                progress.done(label, ok=False)
            raise
        if isinstance(progress, Reporter):
            progress.done(label)
        if result.existed:
            report.blobs_skipped += 1
            report.bytes_skipped += desc.size
            how = "present"
        elif result.mounted:
            report.blobs_mounted += 1
            report.bytes_mounted += desc.size
            how = "mounted"
        else:
            report.blobs_uploaded += 1
            report.bytes_uploaded += desc.size
            how = "uploaded"
        progress(f"blob {where}", f"{desc.digest.short} {how} ({desc.size} bytes)")

    await asyncio.gather(*(one(desc) for desc in source.blobs().values()))
    for child in source.children.values():
        await _put_if_missing(client, dest, child, report)
    await _put_if_missing(client, dest, source.top, report)
    report.digest = str(source.top.digest)
    report.platform_digests = _platform_digests(source)
    progress(f"manifest {where}", f"{source.top.digest} in place (untagged)")


async def _put_if_missing(
    client: RegistryClient, dest: Reference, manifest: Manifest, report: DestinationReport
) -> None:
    ref = Reference(dest.registry, dest.repository, None, manifest.digest)
    try:
        await client.head_manifest(ref)
        return
    except errors.NotFound:
        pass
    await client.put_manifest(ref, manifest.raw, manifest.media_type)
    report.manifests_written += 1


async def _plan(
    client: RegistryClient,
    source: _Source,
    dests: Mapping[str, Reference],
    destinations: Mapping[str, Sequence[str]],
    reports: Mapping[str, DestinationReport],
    progress: Progress,
) -> None:
    """Say every blob, manifest and tag a push would write, asking only HEAD questions."""
    blobs = source.blobs()
    manifests = [*source.children.values(), source.top]
    for name, ref in dests.items():
        report = reports[name]
        where = report.repository
        mount = (
            source.repository
            if source.registry == ref.registry and source.repository != ref.repository
            else None
        )
        progress("plan", f"push {source.top.digest} to {where}")
        for desc in blobs.values():
            if await client.blob_exists(ref, desc.digest) is not None:
                report.blobs_skipped += 1
                report.bytes_skipped += desc.size
                progress("plan", f"  blob {desc.digest.short} ({desc.size} bytes): already there")
            elif mount:
                report.blobs_mounted += 1
                report.bytes_mounted += desc.size
                progress(
                    "plan",
                    f"  blob {desc.digest.short} ({desc.size} bytes): would mount from {mount}",
                )
            else:
                report.blobs_uploaded += 1
                report.bytes_uploaded += desc.size
                progress("plan", f"  blob {desc.digest.short} ({desc.size} bytes): would upload")
        for manifest in manifests:
            try:
                await client.head_manifest(
                    Reference(ref.registry, ref.repository, None, manifest.digest)
                )
                progress("plan", f"  manifest {manifest.digest}: already there")
            except errors.NotFound:
                progress("plan", f"  manifest {manifest.digest}: would write (untagged)")
        report.digest = str(source.top.digest)
        report.platform_digests = _platform_digests(source)
    for name in dests:
        for tag in destinations[name]:
            progress("plan", f"would tag {reports[name].repository}:{tag} -> {source.top.digest}")
    progress("plan", "dry run: nothing was written")


async def push_image(
    client: RegistryClient,
    source: _Source,
    destinations: Mapping[str, Sequence[str]],
    *,
    dry_run: bool = False,
    concurrency: int = CONCURRENCY,
    progress: Progress = no_progress,
    retire_superseded: Sequence[str] = (),
) -> PublishReport:
    """Push ``source`` to every ``{repository: tags}``; tags only once all have it all.

    ``retire_superseded``: tags (the moving ones) whose previous image is retired once
    they moved away from it. Raises ``PublishError`` (carrying the report) when
    anything failed.
    """
    dests = {name: Reference.parse(name) for name in destinations}
    reports = {
        name: DestinationReport(f"{ref.registry}/{ref.repository}", list(destinations[name]))
        for name, ref in dests.items()
    }
    report = PublishReport(
        digest=str(source.top.digest),
        platform_digests=_platform_digests(source),
        destinations=list(reports.values()),
        dry_run=dry_run,
    )
    if dry_run:
        await _plan(client, source, dests, destinations, reports, progress)
        return report
    gate = asyncio.Semaphore(concurrency)
    # Destinations on one registry: the first gets the bytes, the others mount from it.
    by_registry: dict[str, list[str]] = {}
    for name, ref in dests.items():
        by_registry.setdefault(ref.registry, []).append(name)

    async def registry_group(names: list[str]) -> None:
        first, rest = names[0], names[1:]
        ref = dests[first]
        mount = source.repository if source.registry == ref.registry else None
        ok = await guarded(first, mount)
        mount_from = ref.repository if ok else mount
        await asyncio.gather(*(guarded(name, mount_from) for name in rest))

    causes: list[BaseException] = []

    async def guarded(name: str, mount_from: str | None) -> bool:
        try:
            await _push_content(
                client, source, dests[name], reports[name], gate, mount_from, progress
            )
            return True
        except (errors.PortsideError, OSError) as exc:
            text = exc.message if isinstance(exc, errors.PortsideError) else str(exc)
            message = f"push to {reports[name].repository}: {text}"
            reports[name].error = message
            causes.append(exc)
            progress("error", message)
            return False

    await asyncio.gather(*(registry_group(names) for names in by_registry.values()))
    failed = [r for r in reports.values() if r.error]
    if failed:
        report.ok = False
        report.error = (
            f"{len(failed)} of {len(reports)} destinations failed; no tag was moved: "
            + "; ".join(r.error or "" for r in failed)
        )
        raise PublishError(report.error, report, cause=causes[0] if causes else None)
    # Tags last: every destination holds every blob and manifest by now.
    left = await _tag_targets(client, dests, destinations, retire_superseded, source.top.digest)
    for name, ref in dests.items():
        for tag in destinations[name]:
            try:
                await client.put_manifest(
                    Reference(ref.registry, ref.repository, tag, None),
                    source.top.raw,
                    source.top.media_type,
                )
            except errors.PortsideError as exc:
                reports[name].error = f"tag {reports[name].repository}:{tag}: {exc}"
                report.ok = False
                moved = report.tags_moved
                report.error = (
                    f"tagging failed at {reports[name].repository}:{tag} ({exc}); tags already "
                    f"moved to {source.top.digest}: {', '.join(moved) if moved else 'none'}"
                )
                raise PublishError(report.error, report, cause=exc) from exc
            reports[name].tags_set.append(tag)
            progress("tag", f"{reports[name].repository}:{tag} -> {source.top.digest}")
    await _retire_left(client, left, source.top.digest, report, progress)
    return report


async def _tag_targets(
    client: RegistryClient,
    dests: Mapping[str, Reference],
    destinations: Mapping[str, Sequence[str]],
    moving: Sequence[str],
    new: Digest,
) -> dict[tuple[str, Digest], list[str]]:
    """(repository, digest) -> the moving tags that point there now and will move."""
    left: dict[tuple[str, Digest], list[str]] = {}
    for name, ref in dests.items():
        for tag in destinations[name]:
            if tag not in moving:
                continue
            try:
                now = await client.head_manifest(Reference(ref.registry, ref.repository, tag))
            except errors.NotFound:
                continue
            if now.digest != new:
                left.setdefault((name, now.digest), []).append(tag)
    return left


async def _retire_left(
    client: RegistryClient,
    left: Mapping[tuple[str, Digest], Sequence[str]],
    new: Digest,
    report: PublishReport,
    progress: Progress,
) -> None:
    """Retire what the moving tags left: consumers pinned to it learn they must move."""
    from portside.lifecycle import retire

    for (name, old), tags in left.items():
        ref = Reference.parse(name).repository_ref().with_digest(old)
        reason = f"superseded by {new} (tags {', '.join(tags)} moved)"
        await retire(client, ref, date=dt.datetime.now(dt.timezone.utc), reason=reason)
        report.retired.append({"repository": ref.name, "digest": str(old), "reason": reason})
        progress("retire", f"{ref.name}@{old.short}: {reason}")


# -- configuration and the command-line entry points ----------------------------------------


@dataclass(frozen=True)
class ImageConfigTable:
    """``[tool.portside.image]`` in ``pyproject.toml`` (or ``portside.toml``)."""

    project_dir: Path
    builder: str = "native"
    base: str | None = None
    context: Path | None = None
    dockerfile: Path | None = None
    platforms: tuple[str, ...] = ()
    destinations: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()  # extra tag templates: "sha-{sha}", "{branch}"
    channel: str | None = None
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None
    workdir: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    pip_args: tuple[str, ...] = ()
    version: str | None = None
    # When a moving tag (1.4, 1, latest) moves, retire the digest it leaves (opt-in).
    retire_superseded: bool = False
    gate: GateConfig = field(default_factory=GateConfig)


_KEYS = {
    "builder", "base", "context", "dockerfile", "platforms", "destinations", "tags",
    "channel", "entrypoint", "cmd", "env", "user", "workdir", "labels", "pip-args", "version",
    "retire-superseded", "gate",
}  # fmt: skip


def load_image_config(project_dir: Path) -> ImageConfigTable:
    """Read and check ``[tool.portside.image]``; the version comes from ``[project]``."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]
    path = project_dir / "pyproject.toml"
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise errors.ConfigError(f"cannot read {path}: {exc}") from exc
    table = doc.get("tool", {}).get("portside", {}).get("image", {})
    unknown = set(table) - _KEYS
    if unknown:
        raise errors.ConfigError(
            f"{path}: unknown setting(s) {', '.join(sorted(unknown))} in [tool.portside.image]",
            hint=f"known: {', '.join(sorted(_KEYS))}",
        )

    def strings(key: str) -> tuple[str, ...] | None:
        value = table.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise errors.ConfigError(f"{path}: [tool.portside.image] {key} must be strings")
        return tuple(value)

    def text(key: str) -> str | None:
        value = table.get(key)
        if value is not None and not isinstance(value, str):
            raise errors.ConfigError(f"{path}: [tool.portside.image] {key} must be a string")
        return value

    def mapping(key: str) -> dict[str, str]:
        value = table.get(key, {})
        if not isinstance(value, dict):
            raise errors.ConfigError(f"{path}: [tool.portside.image] {key} must be a table")
        return {str(k): str(v) for k, v in value.items()}

    context = text("context")
    dockerfile = text("dockerfile")
    retire_superseded = table.get("retire-superseded", False)
    if not isinstance(retire_superseded, bool):
        raise errors.ConfigError(
            f"{path}: [tool.portside.image] retire-superseded must be true or false"
        )
    return ImageConfigTable(
        project_dir=project_dir,
        builder=text("builder") or "native",
        base=text("base"),
        context=project_dir / context if context else None,
        dockerfile=project_dir / dockerfile if dockerfile else None,
        platforms=strings("platforms") or (),
        destinations=strings("destinations") or (),
        tags=strings("tags") or (),
        channel=text("channel"),
        entrypoint=strings("entrypoint"),
        cmd=strings("cmd"),
        env=mapping("env"),
        user=text("user"),
        workdir=text("workdir"),
        labels=mapping("labels"),
        pip_args=strings("pip-args") or (),
        version=text("version") or doc.get("project", {}).get("version"),
        retire_superseded=retire_superseded,
        gate=parse_gate(table.get("gate"), f"{path}: [tool.portside.image.gate]"),
    )


def console_progress(step: str, message: str) -> None:
    """One line per event on stderr (piped output stays grep-able)."""
    PlainReporter()(step, message)


def _dockerfile_check(config: ImageConfigTable) -> None:
    """A Dockerfile builder needs a readable Dockerfile: say so before any tool starts."""
    if config.builder == "native":
        return
    path = config.dockerfile or (config.context or config.project_dir) / "Dockerfile"
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise BuildError(
            f"{config.builder}: cannot read the Dockerfile {path}: {reason}",
            hint="set [tool.portside.image] dockerfile to a readable file",
        ) from exc


async def run_build(
    config: ImageConfigTable,
    *,
    annotations: Mapping[str, str] | None = None,
    client_options: ClientOptions | None = None,
    credentials: CredentialStore | None = None,
    work_dir: Path | None = None,
    wheel: Path | None = None,
    progress: Progress = no_progress,
) -> BuildResult:
    """Build the configured image with the configured builder.

    Every failure is a ``PortsideError`` naming the builder: an unknown or unavailable
    builder (``BuilderUnavailable``), an unreadable Dockerfile, a full disk
    (``BuildError``), or the registry's own error for a native build.
    """
    from portside.build import get_builder

    builder = get_builder(config.builder)
    epoch = source_date_epoch()
    if config.builder == "native" and not config.destinations:
        raise errors.ConfigError(
            "the native builder writes to a registry: set [tool.portside.image] destinations"
        )
    _dockerfile_check(config)
    request = BuildRequest(
        context=config.context or config.project_dir,
        dockerfile=config.dockerfile,
        target=config.destinations[0] if config.builder == "native" else "localhost/portside-build",
        platforms=config.platforms,
        labels={**(annotations or {}), **config.labels},
        annotations=annotations or {},
        base=config.base,
        entrypoint=config.entrypoint,
        cmd=config.cmd,
        env=config.env,
        user=config.user,
        workdir=config.workdir,
        pip_args=config.pip_args,
        wheel=wheel,
        source_date_epoch=epoch,
        work_dir=work_dir,
        client_options=client_options,
        credentials=credentials,
    )
    try:
        return await builder.build(request, progress)
    except OSError as exc:
        # The builder's own writes (layouts, layers): most often a full disk.
        where = f" ({exc.filename})" if exc.filename else ""
        raise BuildError(
            f"{config.builder}: {exc.strerror or type(exc).__name__}{where}",
            hint="free some space, or point TMPDIR at a bigger disk"
            if exc.errno == errno.ENOSPC
            else None,
        ) from exc


async def run_push(
    source: str | BuildResult,
    destinations: Mapping[str, Sequence[str]],
    *,
    dry_run: bool = False,
    annotations: Mapping[str, str] | None = None,
    client_options: ClientOptions | None = None,
    credentials: CredentialStore | None = None,
    progress: Progress = no_progress,
    retire_superseded: Sequence[str] = (),
) -> PublishReport:
    """``portside push SRC DEST...``: SRC is ``oci:DIR``, a registry reference or a build."""
    async with RegistryClient(client_options, credentials=credentials) as client:
        image = await open_source(client, source)
        if annotations and isinstance(image, _LayoutSource):
            annotate_layout(image.layout, annotations)
            image = _LayoutSource(image.layout)
        return await push_image(
            client,
            image,
            destinations,
            dry_run=dry_run,
            progress=progress,
            retire_superseded=retire_superseded,
        )


def _failed(
    step: str,
    tags: Mapping[str, Sequence[str]],
    exc: BaseException,
    json_path: Path | None,
    *,
    digest: str = "",
    gate_report: GateReport | None = None,
) -> PublishError:
    """A publish that stopped at ``step`` before any push: no destination got a tag."""
    text = exc.message if isinstance(exc, errors.PortsideError) else str(exc)
    hint = exc.hint if isinstance(exc, errors.PortsideError) else None
    report = PublishReport(digest, {}, [DestinationReport(n, list(t)) for n, t in tags.items()])
    report.ok = False
    report.error = f"{step}: {text}; nothing was pushed and no tag was moved"
    report.gate = gate_report
    _write_report(report, json_path)
    return PublishError(report.error, report, cause=exc, hint=hint)


async def run_publish(
    project_dir: Path,
    *,
    dry_run: bool = False,
    json_path: Path | None = None,
    client_options: ClientOptions | None = None,
    credentials: CredentialStore | None = None,
    work_dir: Path | None = None,
    version: str | None = None,
    wheel: Path | None = None,
    progress: Progress = console_progress,
) -> PublishReport:
    """``portside publish``: build, compute tags per destination, push, tag last.

    ``version`` overrides the configured one (a build plugin passes the project's
    metadata version, dynamic ones included); ``wheel`` is the project's wheel already
    built, which the native builder then uses instead of building its own.

    Writes the JSON report to ``json_path`` (also when the publish failed) and raises
    ``PublishError`` on failure, so the command exits non-zero. A failure before the push
    (builder, tags, build) names its step; one during the push names the destination.
    """
    from portside.build import get_builder

    config = _release_config(project_dir, version)
    try:
        get_builder(config.builder)  # before any registry is asked anything
    except errors.PortsideError as exc:
        raise _failed("build", {n: [] for n in config.destinations}, exc, json_path) from exc
    git = git_info(project_dir)
    epoch = source_date_epoch()
    annotations = image_annotations(
        version=config.version, git=git, epoch=epoch, base_name=config.base
    )
    async with RegistryClient(client_options, credentials=credentials) as client:
        tags = await _release_tags(client, config, git, json_path, progress)
        gate_report = await _gate(client, config, tags, json_path, progress)
        if dry_run and config.builder == "native":
            # A native build writes blobs to the registry: a dry run must not build.
            return await _plan_native(client, config, tags, json_path, progress)
    try:
        result = await run_build(
            config,
            annotations=annotations,
            client_options=client_options,
            credentials=credentials,
            work_dir=work_dir,
            wheel=wheel,
            progress=progress,
        )
    except errors.PortsideError as exc:
        progress("error", f"build: {exc.message}")
        raise _failed("build", tags, exc, json_path) from exc
    try:
        return await _push_release(
            result,
            tags,
            config,
            annotations=annotations,
            gate_report=gate_report,
            dry_run=dry_run,
            json_path=json_path,
            client_options=client_options,
            credentials=credentials,
            progress=progress,
        )
    finally:
        if result.layout is not None:
            Layout(result.layout).remove()


async def _push_release(
    result: BuildResult,
    tags: Mapping[str, Sequence[str]],
    config: ImageConfigTable,
    *,
    annotations: Mapping[str, str],
    gate_report: GateReport,
    dry_run: bool,
    json_path: Path | None,
    client_options: ClientOptions | None,
    credentials: CredentialStore | None,
    progress: Progress,
) -> PublishReport:
    """Push a release build and tag it (all or nothing), write the report, tell the
    consumers: the part ``run_publish`` and ``publish_built`` share."""
    try:
        report = await run_push(
            result,
            tags,
            dry_run=dry_run,
            annotations=annotations if result.kind == "oci-layout" else None,
            client_options=client_options,
            credentials=credentials,
            progress=progress,
            retire_superseded=_moving(tags) if config.retire_superseded else (),
        )
        report.gate = gate_report
    except PublishError as exc:
        _write_report(exc.report, json_path)
        raise
    except errors.PortsideError as exc:
        # Reading the build back (its layout or the registry) failed before any push.
        raise _failed("push", tags, exc, json_path, digest=str(result.digest)) from exc
    _write_report(report, json_path)
    if not dry_run:
        from portside.notify.published import notify_published

        # Consumers hear of the release; a notifier failing does not fail the publish.
        try:
            await notify_published(config.project_dir, report.destinations)
        except errors.PortsideError as exc:
            progress("warning", f"published, but nobody was notified: {exc.message}")
    return report


async def _release_tags(
    client: RegistryClient,
    config: ImageConfigTable,
    git: GitInfo,
    json_path: Path | None,
    progress: Progress,
) -> dict[str, list[str]]:
    """The tags of ``config.version`` at every destination, given what each holds."""
    assert config.version is not None
    tags: dict[str, list[str]] = {}
    for name in config.destinations:
        ref = Reference.parse(name)
        try:
            existing = await client.list_tags(Reference(ref.registry, ref.repository, None, None))
        except errors.NotFound:
            existing = []
        except errors.PortsideError as exc:
            raise _failed(f"tags of {name}", tags, exc, json_path) from exc
        tags[name] = compute_tags(
            config.version,
            existing=existing,
            sha=git.short,
            branch=git.branch,
            channel=config.channel,
            extra=config.tags,
        )
        progress("tags", f"{name}: {', '.join(tags[name])}")
    return tags


# -- build now, publish later (a build plugin's build, its publisher's push) ---------------

# What a build plugin writes beside the artifacts (and its clean step removes).
RELEASE_REPORT = "portside-publish.json"  # the publish report
BUILD_RECORD = "portside-build.json"  # an image built now, published later
BUILD_WORK = "portside-image"  # beside the record: a layout builder's image until pushed
RELEASE_FILES = (RELEASE_REPORT, BUILD_RECORD, BUILD_WORK)


def _release_config(project_dir: Path, version: str | None) -> ImageConfigTable:
    config = load_image_config(project_dir)
    if version is not None:
        config = replace(config, version=version)
    if not config.destinations:
        raise errors.ConfigError("no [tool.portside.image] destinations to publish to")
    if not config.version:
        raise errors.ConfigError("no version: set [project] version")
    return config


async def build_for_release(
    project_dir: Path,
    out_dir: Path,
    *,
    version: str | None = None,
    wheel: Path | None = None,
    client_options: ClientOptions | None = None,
    credentials: CredentialStore | None = None,
    progress: Progress = console_progress,
) -> BuildResult:
    """Build the configured image now and record it in ``out_dir/portside-build.json``
    for :func:`publish_built`. Nothing is tagged: a native build is on the registry by
    digest only (invisible), a layout build stays in ``out_dir/portside-image``."""
    config = _release_config(project_dir, version)
    annotations = image_annotations(
        version=config.version,
        git=git_info(project_dir),
        epoch=source_date_epoch(),
        base_name=config.base,
    )
    work = out_dir / BUILD_WORK
    work.mkdir(parents=True, exist_ok=True)
    result = await run_build(
        config,
        annotations=annotations,
        client_options=client_options,
        credentials=credentials,
        work_dir=work,
        wheel=wheel,
        progress=progress,
    )
    record = {"version": config.version, "annotations": annotations, "build": result.to_json()}
    (out_dir / BUILD_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return result


async def publish_built(
    project_dir: Path,
    record_path: Path,
    *,
    dry_run: bool = False,
    json_path: Path | None = None,
    client_options: ClientOptions | None = None,
    credentials: CredentialStore | None = None,
    progress: Progress = console_progress,
) -> PublishReport:
    """Tag and push the image :func:`build_for_release` recorded, as ``run_publish``
    would have (same tags, same all-or-nothing order, same report)."""
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        result = BuildResult.from_json(record["build"])
        version = str(record["version"])
        annotations = {str(k): str(v) for k, v in record["annotations"].items()}
    except FileNotFoundError:
        raise errors.UsageError(
            f"no image was built for release ({record_path} is missing)",
            hint="build it first: HATCH_BUILD_HOOK_ENABLE_PORTSIDE=1 hatch build, with "
            "publish = false in [tool.hatch.build.hooks.portside]",
        ) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise errors.UsageError(f"{record_path} is not a build record: {exc}") from None
    config = _release_config(project_dir, version)
    async with RegistryClient(client_options, credentials=credentials) as client:
        tags = await _release_tags(client, config, git_info(project_dir), json_path, progress)
        gate_report = await _gate(client, config, tags, json_path, progress)
    return await _push_release(
        result,
        tags,
        config,
        annotations=annotations,
        gate_report=gate_report,
        dry_run=dry_run,
        json_path=json_path,
        client_options=client_options,
        credentials=credentials,
        progress=progress,
    )


def _moving(tags: Mapping[str, Sequence[str]]) -> list[str]:
    # The first tag is the version itself; the others (1.4, 1, latest, a channel) move.
    return sorted({tag for names in tags.values() for tag in names[1:]})


async def _gate(
    client: RegistryClient,
    config: ImageConfigTable,
    tags: Mapping[str, Sequence[str]],
    json_path: Path | None,
    progress: Progress,
) -> GateReport:
    """The base images' lifecycle and vulnerabilities, before anything is built."""
    from portside import gate

    dockerfile = config.dockerfile or (config.context or config.project_dir) / "Dockerfile"
    bases = gate.base_images(base=config.base, dockerfile=dockerfile, builder=config.builder)
    try:
        found = await gate.check(client, bases, config.gate)
    except errors.PortsideError as exc:
        raise _failed("gate", tags, exc, json_path) from exc
    for warning in found.warnings:
        progress("warning", warning)
    for allowed in found.allowed:
        progress("gate", f"{allowed['id']} in {allowed['image']} allowed: {allowed['reason']}")
    if found.refused:
        failure = _failed("gate", tags, gate.refusal(found), json_path, gate_report=found)
        raise failure
    progress("gate", f"base images checked: {', '.join(found.base_images) or 'none'}")
    return found


async def _plan_native(
    client: RegistryClient,
    config: ImageConfigTable,
    tags: Mapping[str, Sequence[str]],
    json_path: Path | None,
    progress: Progress,
) -> PublishReport:
    """What a native publish would do, read-only: the base is resolved, nothing built."""
    if not config.base:
        raise BuildError("native: no base image; set [tool.portside.image] base")
    base = Reference.parse(config.base)
    try:
        base_digest = (await client.head_manifest(base)).digest
    except errors.NotFound as exc:
        raise _failed(
            "build", tags, BuildError(f"native: base image {base} not found"), json_path
        ) from exc
    except errors.PortsideError as exc:
        raise _failed("build", tags, exc, json_path) from exc
    first = config.destinations[0]
    platforms = ", ".join(config.platforms) if config.platforms else "every platform of the base"
    progress(
        "plan",
        f"would build {config.project_dir} {config.version} with the native builder from "
        f"{base}@{base_digest} ({platforms}), writing it to {first} untagged",
    )
    for name in config.destinations[1:]:
        progress("plan", f"would push the image to {name} (mounting or copying from {first})")
    for name, names in tags.items():
        for tag in names:
            progress("plan", f"would tag {name}:{tag}")
    progress("plan", "dry run: nothing was built or written")
    report = PublishReport(
        digest="(not built)",
        platform_digests={},
        destinations=[DestinationReport(n, list(t)) for n, t in tags.items()],
        dry_run=True,
    )
    _write_report(report, json_path)
    return report


def _write_report(report: PublishReport, path: Path | None) -> None:
    if path is not None:
        path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
