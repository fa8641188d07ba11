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
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from portside import errors
from portside.cache import CachedRegistry, CacheStore, NeedsNetwork
from portside.config import PolicyConfig, find_config_file, load_config
from portside.reference import Digest, Reference

from . import json_forms
from .gate import GatedRegistry
from .lazy import lazy
from .settings import Settings, resolve_settings

if TYPE_CHECKING:
    from portside import dockerfile, images, redact
    from portside.dockerfile import Dockerfile, ImageUse, Range
    from portside.images import ImageInfo
    from portside.registry import manifest
    from portside.registry.manifest import Platform

    from . import carry, features, positions
else:  # start-up: loaded with the first document (see lazy)
    dockerfile = lazy("portside.dockerfile")
    images = lazy("portside.images")
    redact = lazy("portside.redact")
    manifest = lazy("portside.registry.manifest")
    carry = lazy("lsp_server.carry")
    features = lazy("lsp_server.features")
    positions = lazy("lsp_server.positions")

if TYPE_CHECKING:
    # Start-up budget: the first ``initialize`` needs none of these. The policy rules
    # (~45 ms with their regexes) load with the first document, the network stack
    # (httpx, ~85 ms) with the first registry fetch.
    from portside import policy
    from portside.registry.transport import ClientOptions


__version__ = "0.1.0"
log = logging.getLogger("portside.lsp")
T = TypeVar("T")


def _describe(exc: BaseException) -> str:
    """An exception for a log line or a message: its type and its (redacted) message."""
    if isinstance(exc, errors.PortsideError):
        return exc.message
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {redact.redact_url(text)[:200]}" if text else type(exc).__name__


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
    codec: positions.Codec
    path: Path | None
    too_large: bool = False


@dataclass
class Analysis:
    """One version of a document as analysed: what is shown is built from it."""

    snap: Snapshot
    extra: list[lsp.Diagnostic]  # the parser's problems and configuration notes
    local: list[policy.Finding]
    items: dict[carry.Key, policy.Judged]  # the images to ask the registry about
    # Per image: the registry's answer for this version, or the last one carried over.
    checks: dict[carry.Key, policy.ImageCheck]
    file: str
    config: PolicyConfig
    # Per image whose check is the registry's answer as the cache was when it was asked
    # (carried over the edits that left the image and its rules alone): see Answer.
    answered: dict[carry.Key, Answer] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    """When an image was checked: by which registry object, how many fetches it had
    made by then (``CachedRegistry.fetched``) and at what ``time.monotonic()``. While
    that registry has fetched nothing since, checking again would answer the same."""

    registry: CachedRegistry
    fetched: int
    at: float


# Seconds a document stays unchanged before plugins (hadolint) run on it.
PLUGIN_QUIET = 0.3
# Seconds an image's answer is reused across edits without reading the cache again:
# reading it is what notices an entry past its TTL (and refreshes it), so not forever.
REUSE_ANSWERS = 30.0
# Added to the note of a registry that could not be reached by portside.checkNow.
_CACHED_NOTE = "; showing what the last check found"


@dataclass
class Published:
    version: int | None
    findings: list[policy.Finding] = field(default_factory=list)
    diagnostics: list[lsp.Diagnostic] = field(default_factory=list)


_EMPTY: list[Dockerfile] = []


def _empty() -> Dockerfile:
    """The model of an empty document (what a too large one is analysed as)."""
    if not _EMPTY:
        _EMPTY.append(dockerfile.parse(""))
    return _EMPTY[0]


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
            converter_factory=json_forms.converter,
        )
        self.settings = Settings()
        self.init_options: object = None
        self.client_config: object = None
        self.client_config_source = "workspace/configuration"
        self.setting_problems: list[str] = []
        self.store = CacheStore()
        self._registry: GatedRegistry | None = None
        self._parsed: dict[str, tuple[str, Dockerfile]] = {}
        self._pending: dict[str, asyncio.Task[None]] = {}
        self.published: dict[str, Published] = {}
        self._made: dict[str, features.DiagnosticCache] = {}
        self.analyses: dict[str, Analysis] = {}
        # Per document: the plugins' last findings and the lines they were made for.
        self.plugin_found: dict[str, tuple[list[str], list[policy.Finding]]] = {}
        self._plugin_runs: dict[str, asyncio.Task[None]] = {}
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
        from portside.registry.options import insecure_hosts
        from portside.registry.transport import ClientOptions

        insecure = insecure_hosts(self.settings.insecure_registries)
        # An editor does not sit out a long Retry-After: beyond 2 s the request fails
        # at once (served from the cache where it can) and a 429 host is paused until
        # its reset, so the periodic re-checks do not ask it again before then.
        return ClientOptions(
            insecure=insecure,
            timeout=15.0,
            max_retries=2,
            backoff_cap=2.0,
            retry_after_cap=2.0,
        )

    def apply_settings(self) -> None:
        problems: list[str] = []
        old = self.settings
        self.settings = resolve_settings(
            self.init_options,
            self.client_config,
            self.root,
            problems,
            client_source=self.client_config_source,
        )
        new = [p for p in problems if p not in self.setting_problems]
        self.setting_problems = problems
        if new:
            # Said once to the user (stderr is where editors file errors, not notes).
            log.info("settings: %s", "; ".join(new))
            self.window_show_message(
                lsp.ShowMessageParams(
                    type=lsp.MessageType.Warning,
                    message="portside settings: " + "; ".join(new)[:900],
                )
            )
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
                uri,
                document.version,
                text,
                _empty(),
                positions.Codec(_empty().document, encoding),
                path,
                True,
            )
        cached = self._parsed.get(uri)
        if cached is not None and cached[0] == text:
            doc = cached[1]
        else:
            # The lines an edit left alone are not read again.
            doc = dockerfile.parse(text, previous=cached[1] if cached is not None else None)
            self._parsed[uri] = (text, doc)
        return Snapshot(
            uri, document.version, text, doc, positions.Codec(doc.document, encoding), path
        )

    def analysable(self, uri: str) -> Snapshot | None:
        """The open document ``uri``; None when it is not open or is too large to analyse
        (requests about it then answer empty, and its diagnostic says why)."""
        snap = self.snapshot(uri)
        return None if snap is None or snap.too_large else snap

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

    def schedule(self, uri: str, delay: float, *, reuse: bool = False) -> None:
        """Diagnose ``uri`` after ``delay`` seconds. ``reuse`` (an edit): images whose
        answer is still what the cache would say are not checked again."""
        old = self._pending.pop(uri, None)
        if old is not None:
            old.cancel()
        task = asyncio.ensure_future(self._diagnose(uri, delay, reuse))
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
        run = self._plugin_runs.pop(uri, None)
        if run is not None:
            run.cancel()
        self._parsed.pop(uri, None)
        self.published.pop(uri, None)
        made = self._made.pop(uri, None)
        if made is not None:
            made.clear()
        self.analyses.pop(uri, None)
        self.plugin_found.pop(uri, None)
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
        made = self._made.get(snap.uri)
        if made is None:
            made = self._made[snap.uri] = features.DiagnosticCache()
        diagnostics = extra + made.diagnostics(shown, snap.codec)
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

    def show(self, analysis: Analysis) -> bool:
        """Publish what is known of ``analysis``'s version: its local findings, each
        image's registry answer (fresh, or the last one carried over the edit) and the
        plugins' last findings moved with their lines."""
        from portside import policy

        snap = analysis.snap
        findings = list(analysis.local)
        for check in analysis.checks.values():
            findings += check.findings
        plugin = self.plugin_found.get(snap.uri)
        if plugin is not None:
            findings += carry.carry_line_findings(plugin[1], plugin[0], snap.doc.document.lines)
        return self.publish(snap, policy.sort_findings(findings), analysis.extra)

    def analyse(self, uri: str, *, register: bool = True) -> Analysis | None:
        """The open document's current version analysed locally, with the registry's
        last answers carried over from the version before (shown until fresh ones land).
        """
        from portside import policy

        snap = self.snapshot(uri)
        if snap is None:
            return None
        if snap.too_large:
            note = self._note(
                snap,
                f"portside: the document is larger than "
                f"{self.settings.max_document_bytes} characters and is not analysed",
            )
            return Analysis(snap, [note], [], {}, {}, str(snap.path or uri), PolicyConfig())
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
        wanted = remote if self.settings.remote_checks else []
        items = {carry.use_key(item.use): item for item in wanted}
        checks: dict[carry.Key, policy.ImageCheck] = {}
        answered: dict[carry.Key, Answer] = {}
        old = self.analyses.get(uri)
        if old is not None and items:
            moved = carry.carry_checks(old.snap.doc.images, old.checks, snap.doc.images)
            origin = carry.origins(old.snap.doc.images, snap.doc.images) if old.answered else {}
            same_config = old.config is config or old.config == config
            for key, check in moved.items():
                item = items.get(key)
                if item is None:
                    continue
                # kinds an ignore comment now silences go at once
                kept = [f for f in check.findings if not item.silenced(f.kind)]
                if len(kept) != len(check.findings):
                    check = dataclasses.replace(check, findings=kept)
                checks[key] = check
                was = origin.get(key)
                before = old.items.get(was) if was is not None else None
                if (
                    was in old.answered
                    and before is not None
                    and same_config
                    and (before.ignore, before.policy) == (item.ignore, item.policy)
                ):
                    answered[key] = old.answered[was]
        analysis = Analysis(snap, extra, local, items, checks, file, config, answered)
        if register:
            self.analyses[uri] = analysis
        return analysis

    def findings_now(self, uri: str) -> list[policy.Finding]:
        """Everything known about the document's current version, at once: what was
        published for it, or (an edit not yet analysed) its local findings with the last
        registry and plugin answers carried over, as the next publish will show."""
        from portside import policy

        snap = self.analysable(uri)
        published = self.published.get(uri)
        if snap is None or (published is not None and published.version == snap.version):
            return published.findings if published is not None else []
        analysis = self.analyse(uri, register=False)
        if analysis is None:
            return []
        findings = list(analysis.local)
        for check in analysis.checks.values():
            findings += check.findings
        return policy.sort_findings(findings)

    async def _diagnose(self, uri: str, delay: float, reuse: bool = False) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        analysis = self.analyse(uri)
        if analysis is None:
            return
        # At once: the local findings and the last known answers of the rest. Nothing
        # here waits for a plugin (hadolint) or a registry.
        self.show(analysis)
        if analysis.snap.too_large:
            return
        self.run_plugins(uri)
        if not analysis.items:
            return
        registry = self.registry
        fetched = registry.fetched
        await self.check_images(analysis, registry, reuse=reuse)
        self._warm_infos(analysis.snap, registry)
        # Stale answers are being refreshed in the background: when they land, check
        # again and publish what changed. (shield: a new edit cancels this task, not
        # the cache's refreshes.) Nothing fetched meanwhile: the same answers again.
        await asyncio.shield(registry.drain())
        if registry.fetched != fetched:
            await self.check_images(analysis, registry)

    async def check_images(
        self,
        analysis: Analysis,
        registry: CachedRegistry,
        fallback: CachedRegistry | None = None,
        *,
        reuse: bool = False,
    ) -> None:
        """Ask about every image of ``analysis`` at once; each answer is shown as it
        lands, so a slow registry holds back only its own images. ``fallback``: where
        an image whose registry cannot be reached is answered from instead (the cache),
        with one note saying so. ``reuse``: an image answered by ``registry`` less than
        ``REUSE_ANSWERS`` seconds ago, with nothing fetched since, keeps its answer."""
        from portside import policy

        fetched, now = registry.fetched, time.monotonic()

        def current(key: carry.Key) -> bool:
            answer = analysis.answered.get(key)
            return (
                answer is not None
                and answer.registry is registry
                and answer.fetched == fetched
                and now - answer.at < REUSE_ANSWERS
            )

        async def one(item: policy.Judged) -> policy.ImageCheck:
            check = await policy.check_image(
                analysis.snap.doc,
                item,
                file=analysis.file,
                config=analysis.config,
                cached=registry,
            )
            if fallback is None or check.status != "unreachable":
                return check
            old = await policy.check_image(
                analysis.snap.doc, item, file=analysis.file, config=analysis.config, cached=fallback
            )
            if old.status == "unreachable":
                return check
            notes = [
                dataclasses.replace(f, message=f"{f.message}{_CACHED_NOTE}")
                for f in check.findings
                if f.kind == "unreachable"
            ]
            return dataclasses.replace(old, findings=old.findings + notes)

        # The same image written the same way (a base used by many stages) is asked
        # about once; its answer is moved to the other places.
        groups: dict[tuple[Any, ...], list[policy.Judged]] = {}
        for key, item in analysis.items.items():
            if reuse and current(key):
                continue
            use = item.use
            same = (use.text, use.resolved, use.platform_resolved, item.ignore)
            groups.setdefault(same, []).append(item)
        # Spawned, not awaited directly: an edit cancels the waiting, not the checks
        # (their fetches land in the cache for the next version).
        tasks = {self.spawn(one(items[0])): items for items in groups.values()}
        pending: set[asyncio.Future[Any]] = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            learned = []
            for task in done:
                if task.cancelled() or task.exception() is not None:
                    continue
                check: policy.ImageCheck = task.result()
                first = tasks[task][0]
                analysis.checks[carry.use_key(first.use)] = check
                # Only an image the registry knows is answered for good: a missing or
                # unreachable one is asked again on the next edit.
                answer = Answer(registry, fetched, now) if check.status == "known" else None
                for item in tasks[task]:
                    if item is not first:
                        moved = carry.move_check(check, first.use, item.use)
                        analysis.checks[carry.use_key(item.use)] = moved
                    if answer is not None:
                        analysis.answered[carry.use_key(item.use)] = answer
                    else:
                        analysis.answered.pop(carry.use_key(item.use), None)
                if check.status == "known" and "$" not in check.use.text:
                    learned.append(check.ref.familiar_name)
            self.learn(learned)
            if self.analyses.get(analysis.snap.uri) is analysis:
                self.show(analysis)

    def learn(self, names: list[str]) -> None:
        """Images a document names whole and the registry knows (or, offline, a saved
        document names): completion offers them as this workspace's, and recent."""
        if not names:
            return
        self.workspace_images.update(names)
        fresh = list(dict.fromkeys(names))
        # Rewritten only for a name not near the top already: documents are re-checked
        # on every edit, and their images need not be reordered each time.
        head = self.recent_images[: max(len(fresh), 10)]
        if any(name not in head for name in fresh):
            self._recent = self.store.remember_images(fresh)

    def learn_saved(self, uri: str) -> None:
        """A saved document: its written-out images count as used unless the registry
        said they do not exist (offline, or not contacted, a save is the user's word)."""
        analysis = self.analyses.get(uri)
        snap = self.analysable(uri)
        if snap is None:
            return
        missing = set()
        if analysis is not None and analysis.snap.text == snap.text:
            missing = {
                c.ref.familiar_name for c in analysis.checks.values() if c.status == "missing"
            }
        names = [n for n in sorted(features.literal_image_names(snap.doc)) if n not in missing]
        self.learn(names)

    def run_plugins(self, uri: str) -> None:
        """Plugin findings (hadolint) for the document's newest version, one run at a
        time: a run that ends on an outdated version starts again on the newest, so
        edits in a row never pile up processes."""
        if uri in self._plugin_runs:
            return
        task = asyncio.ensure_future(self._plugins(uri))
        self._plugin_runs[uri] = task

        def done(t: asyncio.Task[None]) -> None:
            if self._plugin_runs.get(uri) is t:
                del self._plugin_runs[uri]
            if not t.cancelled() and t.exception() is not None:
                log.error("plugin findings failed: %s", _describe(t.exception()))  # type: ignore[arg-type]

        task.add_done_callback(done)

    async def _plugins(self, uri: str) -> None:
        from portside import policy

        while True:
            analysis = self.analyses.get(uri)
            if analysis is None or analysis.snap.too_large:
                return
            # Plugins run when typing pauses: a process per keystroke would compete with
            # the editor for the CPU, and their last findings stay shown meanwhile.
            await asyncio.sleep(PLUGIN_QUIET)
            document = self.workspace.text_documents.get(uri)
            if self.analyses.get(uri) is not analysis or (
                # an edit received, not yet analysed: the document is still changing
                document is not None and document.version != analysis.snap.version
            ):
                continue
            snap = analysis.snap
            found = await policy.plugin_findings_async(
                snap.doc,
                file=analysis.file,
                text=snap.text,
                config=analysis.config,
                background=True,  # at a lower CPU priority than the server's answers
            )
            if uri not in self.analyses:
                return  # closed meanwhile
            self.plugin_found[uri] = (list(snap.doc.document.lines), found)
            current = self.analyses[uri]
            self.show(current)
            if current.snap.text == snap.text:
                return

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
            return manifest.Platform.parse(use.platform_resolved)
        except errors.PortsideError:
            return None

    def _store_info(self, ref: Reference, platform: Platform | None, info: ImageInfo) -> None:
        self.infos[(str(ref), str(platform) if platform else None)] = info
        if ref.tag:
            self.details.setdefault(ref.name, {})[ref.tag] = features.info_detail(info)

    @property
    def recent_images(self) -> list[str]:
        """Image names seen resolving (this session and earlier ones), newest first."""
        if self._recent is None:
            self._recent = self.store.recent_images()
        return self._recent

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
            end = snap.codec.position(dockerfile.Position(len(lines) - 1, len(lines[-1])))
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
            line = redact.redact_url(f"[{step}] {message}")
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
        """Check open documents against the registries now, whatever the cache's age.

        A registry that cannot be reached keeps its images' findings from the cache,
        with one note per registry saying the check could not be made."""
        fresh = self._make_registry(refresh=True)
        counts: dict[str, int] = {}
        try:
            for uri in uris:
                analysis = self.analyse(uri)
                if analysis is None or analysis.snap.too_large:
                    continue
                await self.check_images(analysis, fresh, fallback=self.registry.cache_only)
                current = self.analyses.get(uri)
                if current is not analysis and current is not None:
                    # An edit's analysis of the same text started meanwhile and took the
                    # document over: this answer promises the findings were published
                    # first, so this (complete) check is published now, and carried on.
                    if current.snap.text == analysis.snap.text:
                        current.checks.update(analysis.checks)
                    self.show(analysis)
                published = self.published.get(uri)
                counts[uri] = len(published.findings) if published is not None else 0
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
                names |= features.literal_image_names(dockerfile.parse(text))
            return names

        self.workspace_images |= await asyncio.to_thread(scan)

    def report_server_error(self, error: Exception, source: Any) -> None:
        from pygls.exceptions import JsonRpcMethodNotFound

        if isinstance(error, JsonRpcMethodNotFound):
            # A request this server does not offer: answered with MethodNotFound, as
            # the protocol says; not an error of the server's.
            log.debug("unsupported request: %s", _describe(error))
            return
        log.error("server error: %s", _describe(error))
