"""One round of checks, and checks of single repositories when a registry says it changed.

Per target: a HEAD on its tag; a manifest GET only when the digest moved and the tag is
an index (to compare the watched platform's own manifest, so a rebuild of another
platform does not fire). Per repository: its tag list, at most every ``tags_every``
seconds, sooner when a digest in it moved or a webhook named it; with it, what is
attached to each of its targets (end of life, vulnerability reports:
:mod:`portside.watch.attached`), and to a target whose digest moved or is new. Every
registry has its own worker loop with its own concurrency bound, so one slow or failing
registry delays nothing else; a registry at its rate limit is left alone until its reset
(the transport fails fast without sending) and its unchecked targets are given back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from portside import errors, lifecycle
from portside.notify.base import Notification, Notifier, NotifyError
from portside.reference import Digest, Reference
from portside.registry.client import RegistryClient
from portside.registry.manifest import Manifest, Platform, PlatformNotFound
from portside.registry.mediatypes import INDEX_TYPES
from portside.watch import attached
from portside.watch.detect import (
    Observation,
    after_attached,
    after_end_of_life_passed,
    after_head,
    after_tags,
    end_of_life_passing,
)
from portside.watch.store import Delivery, NewEvent, Store, TargetState
from portside.watch.targets import Target

log = logging.getLogger("portside.watch")

DEFAULT_CONCURRENCY = 8
DEFAULT_TAGS_EVERY = 3600.0


@dataclass
class RoundReport:
    round_id: int | None = None
    checked: int = 0
    changes: list[Notification] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    deferred: int = 0  # rate-limited: left for a later round
    seconds: float = 0.0

    def merge(self, other: RoundReport) -> None:
        self.checked += other.checked
        self.changes.extend(other.changes)
        self.problems.extend(other.problems)
        self.deferred += other.deferred


class Watcher:
    def __init__(
        self,
        store: Store,
        targets: Sequence[Target],
        client: RegistryClient,
        notifiers: Sequence[Notifier],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        tags_every: float = DEFAULT_TAGS_EVERY,
        severity: str = attached.DEFAULT_SEVERITY,
    ) -> None:
        self.store = store
        self.targets = {t.key: t for t in targets}
        self.by_repository: dict[str, list[Target]] = {}
        for target in targets:
            self.by_repository.setdefault(target.repository, []).append(target)
        self.client = client
        self.notifiers = {n.name: n for n in notifiers}
        self.concurrency = concurrency
        self.tags_every = tags_every
        self.severity = severity
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._manifests: dict[Digest, Manifest] = {}  # by digest: they never change
        # This round's: targets looked at (key, digests), targets checked, repositories
        # whose attachments are due (their tags were listed).
        self._looked: set[tuple[str, str | None, str | None]] = set()
        self._checked: set[str] = set()
        self._attach_due: set[str] = set()
        store.declare([(t.key, t.ref.registry, t.repository) for t in targets])

    def _new_round(self) -> None:
        self._looked.clear()
        self._checked.clear()
        self._attach_due.clear()

    def _gate(self, registry: str) -> asyncio.Semaphore:
        if registry not in self._semaphores:
            self._semaphores[registry] = asyncio.Semaphore(self.concurrency)
        return self._semaphores[registry]

    # -- rounds ----------------------------------------------------------------------

    async def run_round(self, round_id: int) -> RoundReport:
        started = time.monotonic()
        report = RoundReport(round_id)
        self._new_round()
        listed: set[str] = set()
        not_due: set[str] = set()
        registries = sorted({t.ref.registry for t in self.targets.values()})
        results = await asyncio.gather(
            *(self._registry_loop(r, round_id, listed, not_due) for r in registries)
        )
        for result in results:
            report.merge(result)
        report.seconds = time.monotonic() - started
        return report

    async def _registry_loop(
        self, registry: str, round_id: int, listed: set[str], not_due: set[str]
    ) -> RoundReport:
        report = RoundReport(round_id)
        probe = True
        while True:
            if self._quota_used_up(registry):
                report.problems.append(
                    f"{registry}: its rate limit is used up ({self._quota(registry)}); "
                    "the rest waits for a later round"
                )
                break
            batch = [
                s
                for s in self.store.claim(registry, round_id, self.concurrency * 4)
                if s.key in self.targets
            ]
            if not batch:
                break

            def check(state: TargetState) -> Awaitable[RoundReport | object]:
                target = self.targets[state.key]
                return self._check(target, state, listed, not_due, force_tags=False)

            outcomes: list[RoundReport | object] = []
            if probe:
                # The round's first request to a registry goes alone: one at its rate
                # limit hears one request, not a burst of them.
                probe = False
                outcomes.append(await check(batch[0]))
                if outcomes[0] is _LIMITED or self._quota_used_up(registry):
                    outcomes += [_LIMITED] * (len(batch) - 1)
            outcomes += await asyncio.gather(*(check(s) for s in batch[len(outcomes) :]))
            limited = [s.key for s, o in zip(batch, outcomes, strict=True) if o is _LIMITED]
            for outcome in outcomes:
                if isinstance(outcome, RoundReport):
                    report.merge(outcome)
            if limited:
                self.store.release(limited, round_id)
                report.deferred += len(limited)
                report.problems.append(
                    f"{registry}: rate-limited ({self._quota(registry)}); "
                    f"{len(limited)} image(s) left for a later round"
                )
                break
        return report

    def _quota(self, registry: str) -> str:
        limit = self.client.rate_limit(registry)
        return limit.describe() if limit is not None else "no quota headers"

    def _quota_used_up(self, registry: str) -> bool:
        """The registry's quota headers say nothing is left (absent headers: unknown)."""
        limit = self.client.rate_limit(registry)
        return limit is not None and limit.remaining == 0

    async def check_repositories(self, repositories: Iterable[str]) -> RoundReport:
        """Check every target of these repositories now (a registry said they changed)."""
        report = RoundReport()
        self._new_round()
        wanted = [t for r in repositories for t in self.by_repository.get(r, ())]
        states = self.store.peek([t.key for t in wanted])
        for repository in {t.repository for t in wanted}:
            self.store.mark_dirty(repository)  # listed next round if listing now fails
        listed: set[str] = set()
        outcomes = await asyncio.gather(
            *(
                self._check(
                    t, states.get(t.key) or TargetState(t.key), listed, set(), force_tags=True
                )
                for t in wanted
            )
        )
        for outcome in outcomes:
            if isinstance(outcome, RoundReport):
                report.merge(outcome)
            elif outcome is _LIMITED:
                report.deferred += 1
        return report

    # -- one target ------------------------------------------------------------------

    async def _check(
        self,
        target: Target,
        stored: TargetState,
        listed: set[str],
        not_due: set[str],
        *,
        force_tags: bool,
    ) -> RoundReport | object:
        report = RoundReport()
        ref = target.ref
        async with self._gate(ref.registry):
            try:
                observed = await self._observe(target, stored)
            except errors.RateLimited:
                return _LIMITED
            except errors.PortsideError as exc:
                report.problems.append(f"{ref.familiar}: {exc.message}")
                log.warning("could not check %s: %s", ref.familiar, exc.message)
                return report
            except Exception as exc:  # a bug must cost one image's check, not the round
                report.problems.append(f"{ref.familiar}: unexpected {type(exc).__name__}")
                log.error("could not check %s: unexpected %s", ref.familiar, type(exc).__name__)
                log.debug("traceback", exc_info=True)
                return report
            report.checked = 1
            moved = (
                observed.present and stored.digest is not None and observed.digest != stored.digest
            )
            events: list[NewEvent] = []
            if not (observed.inherited and stored.present and stored.last_checked is not None):
                # (Unchanged since the claim read it: nothing to write, no transaction.)
                events = self.store.update_target(
                    target.key, lambda s: after_head(target, s, observed), list(self.notifiers)
                )
            report.changes.extend(_notes(events))
            self._checked.add(target.key)
            # Tag lists: when due, and at once when a digest moved (it often comes with a
            # release); at most once per repository and round. Attachments go with them.
            repository = target.repository
            force = force_tags or moved
            if repository not in listed and (force or repository not in not_due):
                listed.add(repository)
                # What is attached to every target of the repository goes with the tag
                # list when it is due or a webhook named it; a moved digest alone makes
                # only its own target's due (below), not the whole repository's.
                if self.store.claim_tags(repository, every=self.tags_every):
                    report.merge(await self._check_tags(repository, attachments=True))
                elif force and self.store.claim_tags(repository, every=0, force=True):
                    report.merge(await self._check_tags(repository, attachments=force_tags))
                else:
                    listed.discard(repository)
                    not_due.add(repository)
            due = moved or stored.attached is None or repository in self._attach_due
            if observed.present and due:
                report.merge(await self._look([target]))  # (not twice in a round)
            if observed.present and end_of_life_passing(stored, lifecycle.utc_now()):
                report.merge(await self._end_of_life_passed(target))
        for event in events:
            log.info("%s", event.payload.get("message"))
        return report

    async def _observe(self, target: Target, stored: TargetState) -> Observation:
        ref = target.ref
        try:
            head = await self.client.head_manifest(ref)
        except errors.NotFound:
            return Observation(present=False)
        digest = str(head.digest)
        if digest == stored.digest and stored.platform_digest is not None:
            return Observation(
                True, digest, head.media_type, stored.platform_digest, inherited=True
            )
        if head.media_type not in INDEX_TYPES:
            return Observation(True, digest, head.media_type, digest)
        index = await self.client.get_manifest(ref.with_digest(head.digest))
        try:
            child = str(index.select(Platform.parse(target.platform)).digest)
        except PlatformNotFound:
            child = None  # the watched platform is not (or no longer) built
        return Observation(True, digest, head.media_type, child)

    async def _check_tags(self, repository: str, *, attachments: bool) -> RoundReport:
        report = RoundReport()
        some = self.by_repository[repository][0].ref
        try:
            tags = await self.client.list_tags(
                Reference(some.registry, some.repository, None, None)
            )
        except errors.PortsideError as exc:
            report.problems.append(f"{repository}: tags: {exc.message}")
            self.store.mark_dirty(repository)
            return report

        def decider(target: Target) -> Callable[[TargetState], tuple[TargetState, list[NewEvent]]]:
            return lambda stored: after_tags(target, stored, tags)

        # One transaction for the repository: rows are locked in key order, as claims do.
        targets = sorted(self.by_repository[repository], key=lambda t: t.key)
        events = self.store.update_targets(
            [(t.key, decider(t)) for t in targets], list(self.notifiers)
        )
        report.changes.extend(_notes(events))
        if attachments:
            # Targets checked in this round are looked at now, the others when their
            # check comes (their stored digest may be old until then).
            self._attach_due.add(repository)
            checked = [t for t in targets if t.key in self._checked]
            report.merge(await self._look(checked, tags))
        return report

    async def _end_of_life_passed(self, target: Target) -> RoundReport:
        """A coming end of life told before has passed: tell it again, with the fix."""
        report = RoundReport()
        state = self.store.peek([target.key]).get(target.key)
        if state is None or not end_of_life_passing(state, lifecycle.utc_now()):
            return report  # told meanwhile (this round's look, or another watcher)
        try:
            fix = await attached.fix_for(self.client, target, self._manifests)
        except errors.PortsideError as exc:
            fix = None  # the notice matters more than its suggestion
            log.warning("no fix for %s: %s", target.ref.familiar, exc.message)
        events = self.store.update_target(
            target.key, lambda s: after_end_of_life_passed(target, s, fix), list(self.notifiers)
        )
        report.changes.extend(_notes(events))
        return report

    async def _look(
        self, targets: Sequence[Target], tags: Sequence[str] | None = None
    ) -> RoundReport:
        """What is attached to these targets' images (each once per round and digest)."""
        report = RoundReport()
        states = self.store.peek([t.key for t in targets])
        todo = []
        for target in targets:
            state = states.get(target.key)
            if state is None or state.digest is None or not state.present:
                continue
            seen = (target.key, state.digest, state.platform_digest)
            if seen not in self._looked:
                self._looked.add(seen)
                todo.append((target, state))

        async def one(target: Target, state: TargetState) -> None:
            # On failure the repository is marked: its next round looks again.
            try:
                look = await attached.look(
                    self.client,
                    target,
                    state,
                    self._manifests,
                    severity=self.severity,
                    tags=tags,
                )
            except errors.PortsideError as exc:
                report.problems.append(f"{target.ref.familiar}: attachments: {exc.message}")
                self.store.mark_dirty(target.repository)
                log.warning("could not read what is attached to %s: %s", target.ref.familiar,
                            exc.message)  # fmt: skip
                return
            except Exception as exc:  # a bug (or a plugin's) costs this look, not the round
                problem = f"unexpected {type(exc).__name__}"
                report.problems.append(f"{target.ref.familiar}: attachments: {problem}")
                self.store.mark_dirty(target.repository)
                log.error("could not read what is attached to %s: %s", target.ref.familiar,
                          problem)  # fmt: skip
                log.debug("traceback", exc_info=True)
                return
            if look is None:
                return
            for warning in look.warnings:
                log.warning("%s", warning)
            events = self.store.update_target(
                target.key, lambda s: after_attached(target, s, look), list(self.notifiers)
            )
            report.changes.extend(_notes(events))
            for event in events:
                log.info("%s", event.payload.get("message"))

        await asyncio.gather(*(one(t, s) for t, s in todo))
        return report

    # -- delivery --------------------------------------------------------------------

    async def deliver(self) -> list[str]:
        """Send what the outbox holds for our notifiers; the failures, as messages."""
        failures: list[str] = []
        while True:
            batch = self.store.claim_deliveries(list(self.notifiers))
            if not batch:
                return failures
            groups: dict[str, list[Delivery]] = {}
            for delivery in batch:
                groups.setdefault(delivery.notifier, []).append(delivery)
            results = await asyncio.gather(*(self._deliver_to(n, g) for n, g in groups.items()))
            for result in results:
                failures.extend(result)
            if any(result for result in results):
                return failures  # failed rows wait for the next round, not this loop

    async def _deliver_to(self, name: str, deliveries: list[Delivery]) -> list[str]:
        notifier = self.notifiers[name]
        failures: list[str] = []
        for delivery in deliveries:
            if delivery.recovered and not notifier.idempotent:
                # Sent, maybe, before a crash: a second message is worse than none.
                self.store.finish_delivery(
                    delivery, status="uncertain", error="the watcher stopped while sending"
                )
                continue
            try:
                await notifier.send(Notification.from_json(delivery.payload))
            except NotifyError as exc:
                problem = exc.message
            except Exception as exc:  # a plugin's bug is recorded, not raised
                problem = f"{type(exc).__name__} in notifier {name}"
            else:
                self.store.finish_delivery(delivery, status="sent")
                continue
            failures.append(f"{name}: {problem}")
            log.warning("notification %s not delivered by %s: %s", delivery.event_id, name, problem)
            self.store.finish_delivery(delivery, status="failed", error=problem)
        return failures


_LIMITED = object()


def _notes(events: Sequence[NewEvent]) -> list[Notification]:
    return [Notification.from_json(e.payload) for e in events]
