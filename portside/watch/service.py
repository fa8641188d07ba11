"""``portside watch``: ``--once`` for cron and CI, or a long-running service.

The service starts a round every ``interval`` seconds (or joins one another watcher
sharing the state has begun), delivers what the outbox holds after each round, and,
with ``--listen``, checks a repository as soon as its registry's webhook names it. On
SIGTERM or SIGINT the round in flight gets a grace period to finish; what it has not
checked stays for the next round (every target's result is its own transaction, so
nothing is half-written).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from portside.errors import UsageError
from portside.notify import Notifier, NotifySettings, load_notify_settings, notifiers_for
from portside.registry.client import RegistryClient
from portside.registry.transport import ClientOptions
from portside.watch.attached import DEFAULT_SEVERITY
from portside.watch.listener import Listener, RepositoryEvent, match_repositories
from portside.watch.state import open_store
from portside.watch.store import Store
from portside.watch.targets import Target, collect_targets
from portside.watch.watcher import DEFAULT_CONCURRENCY, DEFAULT_TAGS_EVERY, RoundReport, Watcher

log = logging.getLogger("portside.watch")

GRACE = 10.0  # seconds the round in flight may take to finish after SIGTERM
ONCE_JOIN = 60.0  # an unfinished round begun this recently is joined, not restarted


@dataclass
class WatchOptions:
    paths: Sequence[str] = ()
    state: str | None = None
    once: bool = False
    interval: float = 300.0
    tags_every: float = DEFAULT_TAGS_EVERY
    concurrency: int = DEFAULT_CONCURRENCY
    severity: str = DEFAULT_SEVERITY  # `vulnerable`: at or above this
    listen: str | None = None
    listen_secret: str | None = None
    client_options: ClientOptions = field(default_factory=ClientOptions)
    notify: NotifySettings | None = None
    console: bool = True
    jsonl: Path | None = None
    webhooks: Sequence[str] = ()
    webhook_secret: str | None = None
    editor: bool = False


def _settings(options: WatchOptions) -> NotifySettings:
    from dataclasses import replace

    from portside.notify import WebhookSettings

    base = options.notify
    if base is None:
        first = Path(options.paths[0]) if options.paths else Path(".")
        base = load_notify_settings(first if first.is_dir() else first.parent)
    hooks = tuple(WebhookSettings(url, secret=options.webhook_secret) for url in options.webhooks)
    return replace(
        base,
        console=base.console and options.console,
        jsonl=options.jsonl or base.jsonl,
        webhooks=base.webhooks + hooks,
        editor=base.editor or options.editor,
    )


def prepare(options: WatchOptions) -> tuple[list[Target], list[str], list[Notifier], Store]:
    targets, problems = collect_targets(options.paths)
    if not targets:
        raise UsageError(
            "nothing to watch: no Dockerfile, compose file or [tool.portside.watch] images "
            f"under {', '.join(options.paths) or '.'}"
        )
    notifiers = notifiers_for(_settings(options))
    return targets, problems, notifiers, open_store(options.state)


def _watcher(
    options: WatchOptions,
    store: Store,
    targets: list[Target],
    client: RegistryClient,
    notifiers: list[Notifier],
) -> Watcher:
    return Watcher(
        store,
        targets,
        client,
        notifiers,
        concurrency=options.concurrency,
        tags_every=options.tags_every,
        severity=options.severity,
    )


async def run_once(options: WatchOptions) -> tuple[RoundReport, list[str]]:
    """One round (joining one in progress), then deliveries. (report, delivery failures)."""
    targets, problems, notifiers, store = prepare(options)
    try:
        async with RegistryClient(options.client_options) as client:
            watcher = _watcher(options, store, targets, client, notifiers)
            round_id = store.begin_round(new_after=None, join_within=ONCE_JOIN)
            assert round_id is not None  # new_after=None always gives a round
            report = await watcher.run_round(round_id)
            report.problems[:0] = problems
            failures = await watcher.deliver()
            _log_round(report)
            return report, failures
    finally:
        store.close()


def _log_round(report: RoundReport) -> None:
    log.info(
        "%s: checked %d image(s) in %.2f s, %d change(s), %d problem(s)%s",
        f"round {report.round_id}" if report.round_id is not None else "webhook check",
        report.checked,
        report.seconds,
        len(report.changes),
        len(report.problems),
        f", {report.deferred} deferred" if report.deferred else "",
    )
    for problem in report.problems:
        log.warning("%s", problem)


async def run_service(options: WatchOptions) -> int:
    targets, problems, notifiers, store = prepare(options)
    for problem in problems:
        log.warning("%s", problem)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    pending: asyncio.Queue[list[RepositoryEvent]] = asyncio.Queue()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    listener: Listener | None = None
    try:
        async with RegistryClient(options.client_options) as client:
            watcher = _watcher(options, store, targets, client, notifiers)
            if options.listen:

                def on_event(events: list[RepositoryEvent]) -> None:
                    loop.call_soon_threadsafe(pending.put_nowait, events)

                listener = Listener(options.listen, on_event, secret=options.listen_secret)
                listener.start()
                log.info("listening for registry webhooks on %s", listener.address)
            log.info(
                "watching %d image(s) in %d repositories, a round every %g s",
                len(targets),
                len(watcher.by_repository),
                options.interval,
            )
            await _serve(watcher, store, options, stop, pending)
    finally:
        if listener is not None:
            listener.stop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        store.close()
    log.info("stopped")
    return 0


async def _finish_or_abandon(
    task: asyncio.Task[RoundReport], stop: asyncio.Event
) -> RoundReport | None:
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            log.info("stopping: the round in flight has %g s to finish", GRACE)
            done, _ = await asyncio.wait({task}, timeout=GRACE)
            if not done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                log.info("round abandoned; its unchecked images are checked next time")
                return None
        return task.result()
    finally:
        stopping.cancel()


async def _serve(
    watcher: Watcher,
    store: Store,
    options: WatchOptions,
    stop: asyncio.Event,
    pending: asyncio.Queue[list[RepositoryEvent]],
) -> None:
    watched = list(watcher.by_repository)
    loop = asyncio.get_running_loop()
    tries: dict[RepositoryEvent, int] = {}
    while not stop.is_set():
        round_id = store.begin_round(new_after=options.interval, join_within=options.interval)
        if round_id is not None:
            report = await _finish_or_abandon(
                asyncio.ensure_future(watcher.run_round(round_id)), stop
            )
            if report is not None:
                _log_round(report)
            await watcher.deliver()
            if stop.is_set():
                break
        wait = store.next_round_due(options.interval)
        waiter = asyncio.ensure_future(pending.get())
        stopper = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait(
            {waiter, stopper}, timeout=max(wait, 0.5), return_when=asyncio.FIRST_COMPLETED
        )
        stopper.cancel()
        if waiter not in done:
            waiter.cancel()
            continue
        events = waiter.result()
        while not pending.empty():
            events += pending.get_nowait()
        repositories = match_repositories(events, watched)
        if not repositories:
            log.info("webhook: nothing watched in %s", ", ".join(sorted({e[1] for e in events})))
            continue
        log.info("webhook: checking %s now", ", ".join(sorted(repositories)))
        report = await watcher.check_repositories(repositories)
        _log_round(report)
        await watcher.deliver()
        for late in _not_yet_visible(watcher, events):
            # distribution posts a tag's push just before the tag moves: look again soon.
            tries[late] = tries.get(late, 0) + 1
            if tries[late] <= RECHECKS:
                loop.call_later(0.1 * 2 ** tries[late], pending.put_nowait, [late])


RECHECKS = 5


def _not_yet_visible(watcher: Watcher, events: list[RepositoryEvent]) -> list[RepositoryEvent]:
    """Events naming a tag and digest that our watched tag does not point at yet."""
    late: list[RepositoryEvent] = []
    for event in events:
        _, path, tag, digest = event
        if tag is None or digest is None:
            continue
        keys = [
            t.key
            for name, targets in watcher.by_repository.items()
            if name.endswith(f"/{path}")
            for t in targets
            if t.ref.tag == tag
        ]
        states = watcher.store.peek(keys)
        if any(s.digest != digest for s in states.values()):
            late.append(event)
    return late
