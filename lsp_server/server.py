"""The pygls server: protocol plumbing around the core and :mod:`lsp_server.features`.

Every request handler is wrapped by :func:`_safe`: a feature that raises is logged (type
and redacted message, never the document or a credential) and answers an empty result,
so one broken feature never fails a request. Cancellation is not an error: a cancelled
request's task is cancelled and pygls answers it with ``RequestCancelled`` (-32800).

Network rule: no handler waits on a registry longer than ``networkBudgetMs``; fetches
go on in the background (the cache shares one fetch per key) and later answers are
served from the cache. Diagnostics run in a per-document task, debounced, and are only
published for a document that is still open at the version they were computed for.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from portside import errors, images
from portside.cache import CacheStore, NeedsNetwork
from portside.config import PolicyConfig, find_config_file, load_config
from portside.dockerfile import Dockerfile, ImageUse, Position, Range, parse
from portside.images import ImageInfo
from portside.redact import redact_url
from portside.reference import Digest, Reference
from portside.registry.manifest import Platform

if TYPE_CHECKING:
    # Start-up budget: the first ``initialize`` needs none of these. The policy rules
    # (~45 ms with their regexes) load with the first document, the network stack
    # (httpx, ~85 ms) with the first registry fetch.
    from portside import policy
    from portside.registry.transport import ClientOptions

from . import features
from .gate import GatedRegistry
from .positions import Codec
from .settings import Settings, resolve_settings

__version__ = "0.1.0"
log = logging.getLogger("portside.lsp")
T = TypeVar("T")


def _describe(exc: BaseException) -> str:
    """An exception for a log line or a message: its type and its (redacted) message."""
    if isinstance(exc, errors.PortsideError):
        return exc.message
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {redact_url(text)[:200]}" if text else type(exc).__name__


F = TypeVar("F", bound=Callable[..., Coroutine[Any, Any, Any]])


def _safe(default: Callable[[], Any]) -> Callable[[F], F]:
    """Run a request handler so that its failure is a logged empty answer, not an error."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        async def run(*args: Any) -> Any:
            try:
                return await fn(*args)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("%s failed: %s", fn.__name__, _describe(exc))
                log.debug("traceback", exc_info=True)
                return default()

        return cast(F, run)

    return wrap


@dataclass
class Snapshot:
    uri: str
    version: int | None
    text: str
    doc: Dockerfile
    codec: Codec
    path: Path | None
    too_large: bool = False


@dataclass
class Published:
    version: int | None
    findings: list[policy.Finding] = field(default_factory=list)
    diagnostics: list[lsp.Diagnostic] = field(default_factory=list)


_EMPTY = parse("")


def _flagged_images(
    doc: Dockerfile, findings: list[policy.Finding], kinds: tuple[str, ...]
) -> list[tuple[tuple[int, int], ImageUse, Reference]]:
    """The images a finding of one of ``kinds`` is about, with their key (see
    :func:`features.image_key`) and parsed reference; one that does not parse is left
    out (it has no fix to offer)."""
    starts = {features.image_key(f.range) for f in findings if f.kind in kinds}
    out = []
    for use in doc.images:
        key = features.image_key(use.range)
        if key not in starts or use.resolved is None:
            continue
        try:
            out.append((key, use, Reference.parse(use.resolved)))
        except errors.InvalidReference:
            continue
    return out


class PortsideLanguageServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__(
            "portside-lsp",
            __version__,
            text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental,
        )
        self.settings = Settings()
        self.init_options: object = None
        self.client_config: object = None
        self.setting_problems: list[str] = []
        self.store = CacheStore()
        self._registry: GatedRegistry | None = None
        self._parsed: dict[str, tuple[str, Dockerfile]] = {}
        self._pending: dict[str, asyncio.Task[None]] = {}
        self.published: dict[str, Published] = {}
        self.infos: dict[tuple[str, str | None], ImageInfo] = {}
        self.details: dict[str, dict[str, str]] = {}
        self._ordered: dict[tuple[str, str | None], tuple[int, list[str]]] = {}
        self._configs: dict[str, tuple[float, PolicyConfig]] = {}
        self.workspace_images: set[str] = set()
        self._recent: list[str] | None = None
        self._background: set[asyncio.Future[Any]] = set()
        self._recheck: asyncio.Task[None] | None = None

    # -- set-up ----------------------------------------------------------------------

    @property
    def root(self) -> Path | None:
        try:
            root = self.workspace.root_path
        except RuntimeError:
            return None
        return Path(root) if root else None

    @property
    def registry(self) -> GatedRegistry:
        if self._registry is None:
            self._registry = self._make_registry(refresh=False)
        return self._registry

    def _make_registry(self, *, refresh: bool) -> GatedRegistry:
        return GatedRegistry(
            store=self.store,
            options=self.client_options(),
            trusted=self.settings.trusted,
            allow=self.settings.trusted_registries,
            tags_ttl=self.settings.tags_ttl_s,
            refresh=refresh,
        )

    def client_options(self) -> ClientOptions:
        from portside.registry.transport import ClientOptions

        insecure = set(self.settings.insecure_registries)
        insecure.update(
            h.strip()
            for h in os.environ.get("PORTSIDE_INSECURE_REGISTRIES", "").split(",")
            if h.strip()
        )
        # An editor does not sit out a long Retry-After: beyond 2 s the request fails
        # at once (served from the cache where it can) and a 429 host is paused until
        # its reset, so the periodic re-checks do not ask it again before then.
        return ClientOptions(
            insecure=frozenset(insecure),
            timeout=15.0,
            max_retries=2,
            backoff_cap=2.0,
            retry_after_cap=2.0,
        )

    def apply_settings(self) -> None:
        problems: list[str] = []
        old = self.settings
        self.settings = resolve_settings(self.init_options, self.client_config, self.root, problems)
        for problem in problems:
            if problem not in self.setting_problems:
                log.warning("%s", problem)
        self.setting_problems = problems
        logging.getLogger("portside").setLevel(
            self.settings.log_level.upper()
            if self.settings.log_level.upper() in ("DEBUG", "INFO", "WARNING", "ERROR")
            else "WARNING"
        )
        network = ("trusted", "trusted_registries", "insecure_registries", "tags_ttl_s")
        if self._registry is not None and any(
            getattr(old, n) != getattr(self.settings, n) for n in network
        ):
            old_registry, self._registry = self._registry, None
            self.spawn(old_registry.aclose(cancel_pending=True))

    def spawn(self, coro: Awaitable[Any], *, quiet: bool = False) -> asyncio.Future[Any]:
        """Run ``coro`` in the background; a failure is logged (``quiet``: at debug)."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)

        def done(t: asyncio.Future[Any]) -> None:
            self._background.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.log(
                    logging.DEBUG if quiet else logging.WARNING,
                    "background task failed: %s",
                    _describe(t.exception()),  # type: ignore[arg-type]
                )

        task.add_done_callback(done)
        return task

    async def budget(self, coro: Awaitable[T], seconds: float | None = None) -> T:
        """``coro``'s answer within the network budget, else ``TimeoutError``.

        Two ways of giving up, two outcomes. Out of time: the work goes on in the
        background (its fetches land in the cache and the next request is answered from
        there). Cancelled (``$/cancelRequest``): the work is cancelled with the request,
        and the cache cancels a fetch nobody else waits for, which aborts its HTTP
        request.
        """
        limit = self.settings.network_budget_ms / 1000 if seconds is None else seconds
        task = asyncio.ensure_future(coro)
        try:
            done, _ = await asyncio.wait({task}, timeout=limit)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not done:
            self.spawn(task, quiet=True)  # kept until it ends; its caller gave up
            raise TimeoutError
        return task.result()

    async def keep(self, coro: Awaitable[T]) -> T:
        """``coro``'s answer; cancelling the caller does not cancel ``coro``.

        For work others will want too (a document's registry checks): an edit that
        restarts the diagnostics must not abort the fetches the next run will need.
        """
        task = self.spawn(coro, quiet=True)  # its caller sees a failure
        result: T = await asyncio.shield(task)
        return result

    # -- documents -------------------------------------------------------------------

    def snapshot(self, uri: str) -> Snapshot | None:
        """The open document ``uri`` parsed (cached per text); ``None`` if not open."""
        document = self.workspace.text_documents.get(uri)
        if document is None:
            return None
        text = document.source
        encoding = str(self.workspace.position_encoding or "utf-16")
        path_text = to_fs_path(uri)
        path = Path(path_text) if path_text else None
        if len(text) > self.settings.max_document_bytes:
            return Snapshot(
                uri, document.version, text, _EMPTY, Codec(_EMPTY.document, encoding), path, True
            )
        cached = self._parsed.get(uri)
        if cached is not None and cached[0] == text:
            doc = cached[1]
        else:
            doc = parse(text)
            self._parsed[uri] = (text, doc)
            self._remember_images(doc)
        return Snapshot(uri, document.version, text, doc, Codec(doc.document, encoding), path)

    def analysable(self, uri: str) -> Snapshot | None:
        """The open document ``uri``; None when it is not open or is too large to analyse
        (requests about it then answer empty, and its diagnostic says why)."""
        snap = self.snapshot(uri)
        return None if snap is None or snap.too_large else snap

    def _remember_images(self, doc: Dockerfile) -> None:
        self.workspace_images |= features.literal_image_names(doc)

    def policy_config(self, path: Path | None) -> tuple[PolicyConfig, str | None]:
        start = path.parent if path is not None else self.root
        config, problem = PolicyConfig(), None
        if start is not None:
            try:
                found = find_config_file(start)
                if found is not None:
                    mtime = found.stat().st_mtime
                    hit = self._configs.get(str(found))
                    if hit is not None and hit[0] == mtime:
                        config = hit[1]
                    else:
                        config = load_config(start)
                        self._configs[str(found)] = (mtime, config)
            except (errors.ConfigError, OSError) as exc:
                problem = _describe(exc)
        if self.settings.severity:
            config = dataclasses.replace(
                config, severity={**self.settings.severity, **config.severity}
            )
        return config, problem

    # -- diagnostics -----------------------------------------------------------------

    def schedule(self, uri: str, delay: float) -> None:
        old = self._pending.pop(uri, None)
        if old is not None:
            old.cancel()
        task = asyncio.ensure_future(self._diagnose(uri, delay))
        self._pending[uri] = task

        def done(t: asyncio.Task[None]) -> None:
            if self._pending.get(uri) is t:
                del self._pending[uri]
            if not t.cancelled() and t.exception() is not None:
                log.error("diagnostics failed: %s", _describe(t.exception()))  # type: ignore[arg-type]

        task.add_done_callback(done)

    def close(self, uri: str) -> None:
        task = self._pending.pop(uri, None)
        if task is not None:
            task.cancel()
        self._parsed.pop(uri, None)
        self.published.pop(uri, None)
        # Clearing is the last word on a closed document; nothing is published after it.
        self.text_document_publish_diagnostics(
            lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[])
        )

    def publish(
        self, snap: Snapshot, findings: list[policy.Finding], extra: list[lsp.Diagnostic]
    ) -> bool:
        """Publish unless the document closed or changed meanwhile; True if sent."""
        from portside import policy

        current = self.workspace.text_documents.get(snap.uri)
        if current is None or current.version != snap.version or current.source != snap.text:
            return False
        shown = policy.group_unreachable(findings, snap.doc)
        diagnostics = extra + features.to_diagnostics(shown, snap.codec)
        before = self.published.get(snap.uri)
        self.published[snap.uri] = Published(snap.version, findings, diagnostics)
        if (
            before is not None
            and before.version == snap.version
            and before.diagnostics == diagnostics
        ):
            return False
        self.text_document_publish_diagnostics(
            lsp.PublishDiagnosticsParams(
                uri=snap.uri, version=snap.version, diagnostics=diagnostics
            )
        )
        return True

    async def _diagnose(self, uri: str, delay: float) -> None:
        from portside import policy

        if delay > 0:
            await asyncio.sleep(delay)
        snap = self.snapshot(uri)
        if snap is None:
            return
        if snap.too_large:
            self.publish(
                snap,
                [],
                [
                    self._note(
                        snap,
                        f"portside: the document is larger than "
                        f"{self.settings.max_document_bytes} characters and is not analysed",
                    )
                ],
            )
            return
        config, problem = self.policy_config(snap.path)
        extra = features.problem_diagnostics(snap.doc, snap.codec)
        if problem:
            extra.append(
                self._note(
                    snap, f"portside configuration: {problem}", lsp.DiagnosticSeverity.Warning
                )
            )
        file = str(snap.path) if snap.path else uri
        local, remote = policy.local_findings(snap.doc, file=file, text=snap.text, config=config)
        before = self.published.get(uri)
        if before is None or before.version != snap.version:
            # Local findings at once after an edit. A re-check of an unchanged version
            # keeps what is shown until the new answer (no flicker of the registry's
            # findings every recheckIntervalS).
            self.publish(snap, policy.sort_findings(local), extra)
        if not remote or not self.settings.remote_checks:
            # Plugin findings (hadolint) need no registry but may take a moment: the
            # core runs them in worker threads; cached=None keeps the registry out.
            findings = await policy.check_document(
                snap.doc, file=file, text=snap.text, config=config, cached=None
            )
            self.publish(snap, findings, extra)
            return
        registry = self.registry
        findings = await self.keep(
            policy.check_document(
                snap.doc, file=file, text=snap.text, config=config, cached=registry
            )
        )
        self.publish(snap, findings, extra)
        self._warm_infos(snap, registry)
        # Stale answers are being refreshed in the background: when they land, check
        # again and publish if the answer changed. (shield: a new edit cancels this
        # task, not the cache's refreshes.)
        await asyncio.shield(registry.drain())
        again = await self.keep(
            policy.check_document(
                snap.doc, file=file, text=snap.text, config=config, cached=registry
            )
        )
        if again != findings:
            self.publish(snap, again, extra)

    def _note(
        self,
        snap: Snapshot,
        message: str,
        severity: lsp.DiagnosticSeverity = lsp.DiagnosticSeverity.Information,
    ) -> lsp.Diagnostic:
        zero = lsp.Position(line=0, character=0)
        return lsp.Diagnostic(
            range=lsp.Range(start=zero, end=zero),
            message=message,
            severity=severity,
            source=features.SOURCE,
        )

    # -- image information -------------------------------------------------------------

    @staticmethod
    def _platform(use: ImageUse) -> Platform | None:
        if not use.platform_resolved or "$" in use.platform_resolved:
            return None
        try:
            return Platform.parse(use.platform_resolved)
        except errors.PortsideError:
            return None

    def _store_info(self, ref: Reference, platform: Platform | None, info: ImageInfo) -> None:
        self.infos[(str(ref), str(platform) if platform else None)] = info
        if ref.tag:
            self.details.setdefault(ref.name, {})[ref.tag] = features.info_detail(info)
        self.remember_image(ref.familiar_name)

    @property
    def recent_images(self) -> list[str]:
        """Image names seen resolving (this session and earlier ones), newest first."""
        if self._recent is None:
            self._recent = self.store.recent_images()
        return self._recent

    def remember_image(self, name: str) -> None:
        recent = self.recent_images
        if not recent or recent[0] != name:
            self._recent = self.store.remember_images([name])

    def cached_info(self, ref: Reference, platform: Platform | None) -> ImageInfo | None:
        """What the cache knows about ``ref`` now, without the network."""
        key = (str(ref), str(platform) if platform else None)
        info = self.infos.get(key)
        if info is not None:
            return info
        try:
            info = self.registry.run_from_cache(images.inspect(self.registry, ref, platform))
        except (NeedsNetwork, errors.PortsideError):
            return None
        self._store_info(ref, platform, info)
        return info

    async def image_info(
        self, ref: Reference, platform: Platform | None, seconds: float | None = None
    ) -> ImageInfo:
        info = self.cached_info(ref, platform)
        if info is not None:
            return info
        info = await self.budget(images.inspect(self.registry, ref, platform), seconds)
        self._store_info(ref, platform, info)
        return info

    def _warm_infos(self, snap: Snapshot, registry: GatedRegistry) -> None:
        """Fetch what hover and inlay hints show for the document's images, quietly."""
        wanted = []
        for _, use, ref in features.image_refs(snap.doc.images[:30]):
            if not registry.permitted(ref.registry):
                continue
            platform = self._platform(use)
            if (str(ref), str(platform) if platform else None) not in self.infos:
                wanted.append((ref, platform))
        if not wanted:
            return

        async def fetch() -> None:
            got = False
            for ref, platform in wanted:
                try:
                    info = await images.inspect(registry, ref, platform)
                except errors.PortsideError:
                    continue
                self._store_info(ref, platform, info)
                got = True
            if got and self._client_supports_inlay_refresh():
                try:
                    await self.budget(self.workspace_inlay_hint_refresh_async(None), 5.0)
                except Exception as exc:  # a client that cannot refresh: hints come later
                    log.info("inlay hint refresh: %s", _describe(exc))

        self.spawn(fetch())

    def _client_supports_inlay_refresh(self) -> bool:
        caps = self.client_capabilities
        inlay = caps.workspace.inlay_hint if caps.workspace else None
        return bool(inlay and inlay.refresh_support)

    # -- commands --------------------------------------------------------------------

    async def pin_all(self, uri: str) -> dict[str, Any]:
        from portside.pin import plan_pin

        snap = self.analysable(uri)
        if snap is None:
            return {"changed": 0, "problems": ["the document is not open"]}
        config, _ = self.policy_config(snap.path)
        plan = await plan_pin(
            snap.text, file=str(snap.path or uri), cached=self.registry, config=config
        )
        if plan.problems:
            self.window_show_message(
                lsp.ShowMessageParams(
                    type=lsp.MessageType.Warning,
                    message="portside pin: " + "; ".join(plan.problems)[:500],
                )
            )
        if plan.changed and plan.new_text is not None:
            lines = snap.doc.document.lines
            end = snap.codec.position(Position(len(lines) - 1, len(lines[-1])))
            edit = lsp.WorkspaceEdit(
                document_changes=[
                    lsp.TextDocumentEdit(
                        text_document=lsp.OptionalVersionedTextDocumentIdentifier(
                            uri=uri, version=snap.version
                        ),
                        edits=[
                            lsp.TextEdit(
                                range=lsp.Range(start=lsp.Position(line=0, character=0), end=end),
                                new_text=plan.new_text,
                            )
                        ],
                    )
                ]
            )
            result = await self.workspace_apply_edit_async(
                lsp.ApplyWorkspaceEditParams(edit=edit, label="Pin all images")
            )
            if not result.applied:
                return {
                    "changed": 0,
                    "problems": [result.failure_reason or "the editor refused the edit"],
                }
        return {"changed": len(plan.changes) if plan.changed else 0, "problems": plan.problems}

    def _project(self, folder: str | None) -> Path | None:
        if folder and folder.startswith("file:"):
            return Path(to_fs_path(folder) or "")
        if folder:
            return Path(folder)
        return self.root

    async def release(self, folder: str | None, *, action: str) -> dict[str, Any]:
        """``portside build``, ``publish`` or ``publish --dry-run`` for a workspace folder.

        Each step goes to the log; the outcome (the tags set, or would set) to a message.
        """
        from portside.publish import load_image_config, run_build, run_publish

        title = {"build": "build", "publish": "publish", "dry-run": "publish (dry run)"}[action]
        if not self.settings.trusted:
            # Building runs the project's builder and asks its registries.
            problem = f"portside {title} is not run in an untrusted workspace"
            self.window_show_message(
                lsp.ShowMessageParams(type=lsp.MessageType.Warning, message=f"portside: {problem}")
            )
            return {"ok": False, "error": problem, "plan": []}
        project = self._project(folder)
        if project is None:
            return {"ok": False, "error": "no workspace folder", "plan": []}
        plan: list[str] = []

        def progress(step: str, message: str) -> None:
            line = redact_url(f"[{step}] {message}")
            plan.append(line)
            self.window_log_message(
                lsp.LogMessageParams(type=lsp.MessageType.Info, message=f"portside {title}: {line}")
            )

        def show(kind: lsp.MessageType, text: str) -> None:
            self.window_show_message(
                lsp.ShowMessageParams(type=kind, message=f"portside {title}: {text}"[:1000])
            )

        try:
            if action == "build":
                result = await run_build(
                    load_image_config(project),
                    progress=progress,
                    client_options=self.client_options(),
                )
                show(lsp.MessageType.Info, f"built {result.digest}")
                return {"ok": True, "plan": plan, "result": result.to_json()}
            report = await run_publish(
                project,
                dry_run=action == "dry-run",
                progress=progress,
                client_options=self.client_options(),
            )
        except errors.PortsideError as exc:
            message = _describe(exc)
            show(lsp.MessageType.Error, message)
            return {"ok": False, "error": message, "plan": plan}
        summary = "; ".join(f"{d.repository}: {', '.join(d.tags)}" for d in report.destinations)
        verb = "would tag" if action == "dry-run" else "tagged"
        show(lsp.MessageType.Info, f"{verb} {summary}")
        return {"ok": True, "plan": plan, "report": report.to_json()}

    async def check_now(self, uris: list[str]) -> dict[str, Any]:
        """Check open documents against the registries now, whatever the cache's age."""
        from portside import policy

        fresh = self._make_registry(refresh=True)
        counts: dict[str, int] = {}
        try:
            for uri in uris:
                snap = self.analysable(uri)
                if snap is None:
                    continue
                config, _ = self.policy_config(snap.path)
                findings = await policy.check_document(
                    snap.doc,
                    file=str(snap.path or uri),
                    text=snap.text,
                    config=config,
                    cached=fresh,
                )
                self.publish(snap, findings, features.problem_diagnostics(snap.doc, snap.codec))
                counts[uri] = len(findings)
        finally:
            await fresh.aclose()
        return {"checked": len(counts), "findings": counts}

    async def pin_edits(
        self, snap: Snapshot, findings: list[policy.Finding]
    ) -> dict[tuple[int, int], tuple[Range, str, str]]:
        """Per unpinned image: the edit pinning it to the digest its tag has now."""
        from portside import policy

        out: dict[tuple[int, int], tuple[Range, str, str]] = {}
        for key, use, ref in _flagged_images(snap.doc, findings, ("unpinned", "latest")):
            tag = ref.tag or "latest"
            try:
                descriptor = await self.budget(self.registry.resolve(ref.with_tag(tag)), 0.5)
            except (errors.PortsideError, TimeoutError):
                continue
            edit = policy.retarget(use, ref, tag, descriptor.digest)
            if edit is None and ref.tag is None and "$" not in use.text:
                edit = policy.Edit(use.range, f"{use.text}:latest@{descriptor.digest}")
            if edit is not None:
                out[key] = (
                    edit.range,
                    edit.new_text,
                    f"{ref.familiar_name}:{tag}@{descriptor.digest}",
                )
        return out

    def update_options(
        self, snap: Snapshot, findings: list[policy.Finding]
    ) -> dict[tuple[int, int], list[policy.UpdateOption]]:
        """Per image with a ``stale`` or ``variant-update`` finding: the core's update
        options (newest patch / minor / major, variant), from cached data only."""
        from portside import policy
        from portside.updates import without_same_image

        flagged = _flagged_images(snap.doc, findings, ("stale", "variant-update"))
        if not flagged:
            return {}
        offline = self.registry.cache_only
        config, _ = self.policy_config(snap.path)
        out: dict[tuple[int, int], list[policy.UpdateOption]] = {}
        for key, use, ref in flagged:
            try:
                tags = offline.run_from_cache(offline.tags(ref.repository_ref()))
            except (NeedsNetwork, errors.PortsideError):
                continue
            # The check that flagged it asked for these digests: the cache has them.
            scheme = policy.image_scheme(ref, config.for_image(ref.name, ref.familiar_name))
            with contextlib.suppress(NeedsNetwork, errors.PortsideError):
                tags = offline.run_from_cache(without_same_image(offline, ref, tags, scheme))

            def digest_for(tag: str, ref: Reference = ref) -> Digest | None:
                try:
                    found = offline.run_from_cache(offline.resolve(ref.with_tag(tag)))
                except (NeedsNetwork, errors.PortsideError):
                    return None
                return found.digest

            options = policy.update_options(use, tags, config=config, digest_for=digest_for)
            if options:
                out[key] = options
        return out

    # -- periodic re-check ----------------------------------------------------------

    async def recheck_loop(self) -> None:
        while True:
            interval = self.settings.recheck_interval_s
            await asyncio.sleep(interval if interval > 0 else 3600)
            if interval > 0:
                for uri in list(self.workspace.text_documents):
                    self.schedule(uri, 0)

    async def scan_workspace(self) -> None:
        root = self.root
        if root is None:
            return
        from portside.discover import find_dockerfiles

        def scan() -> set[str]:
            names: set[str] = set()
            started = time.monotonic()
            for path in find_dockerfiles([root])[:200]:
                if time.monotonic() - started > 5:
                    break
                try:
                    text = path.read_text(encoding="utf-8", errors="replace")
                except OSError:
                    continue
                if len(text) > 500_000:
                    continue
                names |= features.literal_image_names(parse(text))
            return names

        self.workspace_images |= await asyncio.to_thread(scan)

    def report_server_error(self, error: Exception, source: Any) -> None:
        log.error("server error: %s", _describe(error))
