"""RolloutWatcher: one poller for every in-flight rollout, batched and gentle on ECS.

Each watched service has its own due time. On each tick the watcher describes every due
service, ten per call per cluster, and wakes the waiters of each. Waiters on the same
service share one entry, so 10 deploys of 10 services cost one describe_services per tick,
and two waiters on one service cost nothing extra. Throttling backs the whole poller off
with full jitter.

The watcher has no rate limit of its own: each describe takes its turn in the gateway's
CallBudget with every other ECS call, in arrival order. The poller sends one call at a time,
so it holds at most one place in that queue: it cannot crowd deploys out, nor they it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from bot import metrics
from bot.aws.ecs import EcsGateway
from bot.backoff import full_jitter
from bot.domain.aws import AwsError, ServiceNotFound, ServiceRef, ServiceSnapshot

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollTiming:
    """How often to look, by how near the end of the rollout looks.

    ECS cannot finish while the new tasks are still starting, and finishes within moments of
    the last old task stopping: so look rarely at the first and closely at the last.
    """

    fast_s: float = 0.5
    """A fresh describe was asked for, or an end expected from earlier deploys is near."""
    launching_s: float = 4.0
    """The new deployment's tasks are not all running yet."""
    draining_s: float = 2.5
    """The new tasks run; the old deployment's tasks are still draining."""
    finishing_s: float = 1.0
    """No old task is left: ECS marks the rollout COMPLETED any moment now."""
    finishing_for_s: float = 20.0
    """After this long finishing, look at the draining pace again."""
    slow_s: float = 6.0
    """Launching or draining in a rollout older than `slow_after_s`."""
    slow_after_s: float = 60.0
    near_end_s: float = 8.0
    tick_s: float = 0.1
    max_backoff_s: float = 30.0

    @classmethod
    def brisk(cls, seconds: float) -> PollTiming:
        """Every phase looked at every `seconds` (tests and the sandbox, where rollouts take seconds)."""
        return cls(
            fast_s=seconds,
            launching_s=seconds,
            draining_s=seconds,
            finishing_s=seconds,
            slow_s=seconds,
            tick_s=min(0.1, seconds / 4),
            max_backoff_s=max(2.0, seconds * 4),
        )


@dataclass
class _Entry:
    ref: ServiceRef
    waiters: int = 0
    since: float = field(default_factory=time.monotonic)
    expected_end: float | None = None
    finishing_since: float | None = None
    due: float = 0.0
    version: int = 0
    polled_at: float = 0.0
    snapshot: ServiceSnapshot | None = None
    error: AwsError | None = None
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)


class Subscription:
    """A waiter's view of one service: await `next()` for each newer snapshot.

    Only snapshots from describes that started after subscribing count, so a waiter that
    subscribes right after update_service never sees the service as it was before.
    """

    def __init__(self, entry: _Entry, not_before: float) -> None:
        self._entry = entry
        self._seen = 0
        self._not_before = not_before

    def _fresh(self) -> bool:
        return self._entry.version > self._seen and self._entry.polled_at >= self._not_before

    async def next(self, timeout: float) -> ServiceSnapshot | None:
        """The next snapshot newer than the last one seen, or None after `timeout` seconds."""
        entry = self._entry
        async with entry.changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(entry.changed.wait_for(self._fresh), timeout)
            if not self._fresh():
                return None
            self._seen = entry.version
            if entry.error is not None and not entry.error.throttled:
                raise entry.error
            return entry.snapshot

    def expect_end_in(self, seconds: float) -> None:
        """When this rollout should end (from earlier deploys): poll fast around then."""
        self._entry.expected_end = time.monotonic() + seconds


class RolloutWatcher:
    """The shared poller. Start it once; waiters subscribe with `watch(ref)`."""

    def __init__(self, ecs: EcsGateway, timing: PollTiming | None = None) -> None:
        self._ecs = ecs
        self._timing = timing or PollTiming()
        self._entries: dict[str, _Entry] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._backoff_until = 0.0
        self._throttle_streak = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="rollout-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @contextlib.asynccontextmanager
    async def watch(
        self, ref: ServiceRef, *, known: ServiceSnapshot | None = None
    ) -> AsyncIterator[Subscription]:
        """Subscribe to a service for the duration of the block.

        `known` is a snapshot the caller already holds (update_service's answer): the first
        look then waits its turn by phase instead of coming at once.
        """
        now = time.monotonic()
        entry = self._entries.get(ref.key)
        if entry is None:
            entry = _Entry(ref)
            self._entries[ref.key] = entry
        entry.waiters += 1
        if known is None:
            self._look_now(entry)
        elif not entry.due:
            entry.due = now + self._interval(entry, known, now)
            self._wake.set()
        metrics.WATCHED_SERVICES.set(len(self._entries))
        try:
            yield Subscription(entry, now)
        finally:
            entry.waiters -= 1
            if entry.waiters == 0 and self._entries.get(ref.key) is entry:
                del self._entries[ref.key]
            metrics.WATCHED_SERVICES.set(len(self._entries))

    async def describe(self, ref: ServiceRef, timeout: float = 60.0) -> ServiceSnapshot:
        """A fresh snapshot of one service, in the next batch of its cluster.

        Ten deploys that start together cost one describe_services between them, and a
        throttled ECS is waited out by the watcher's own backoff.
        """
        async with self.watch(ref) as subscription:
            snapshot = await subscription.next(timeout)
        if snapshot is None:
            raise AwsError(
                "DescribeServices", "Timeout", f"no answer about {ref.key} within {int(timeout)} s"
            )
        return snapshot

    def _look_now(self, entry: _Entry) -> None:
        """Describe this service in the next tick."""
        entry.due = time.monotonic()
        self._wake.set()

    async def _run(self) -> None:
        while True:
            if not self._entries:
                self._wake.clear()
                await self._wake.wait()
            now = time.monotonic()
            if now >= self._backoff_until:
                for batch in self._batches(now):
                    await self._poll(batch)
                    if time.monotonic() < self._backoff_until:
                        break  # throttled: the rest wait out the backoff too
            await self._sleep_until_next()

    def _batches(self, now: float) -> list[list[_Entry]]:
        """Due services, grouped ten per call per cluster, most overdue first.

        A call for one due service may carry nine more of its cluster for free, so batches
        are filled with the services that would be due next. Pacing is the gateway's budget.
        """
        by_cluster: dict[tuple[str, str, str | None], list[_Entry]] = {}
        for entry in sorted(self._entries.values(), key=lambda e: e.due):
            by_cluster.setdefault((entry.ref.region, entry.ref.cluster, entry.ref.role_arn), []).append(entry)
        batches: list[list[_Entry]] = []
        for members in by_cluster.values():
            due = sum(1 for e in members if e.due <= now)
            if due:
                take = min(len(members), -(-due // 10) * 10)
                batches.extend(members[i : i + 10] for i in range(0, take, 10))
        batches.sort(key=lambda batch: batch[0].due)
        return batches

    async def _sleep_until_next(self) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._timing.tick_s)

    async def _poll(self, entries: list[_Entry]) -> None:
        refs = [e.ref for e in entries]
        started = time.monotonic()
        try:
            found = await self._ecs.describe_services(refs, retry=False)
        except AwsError as exc:
            await self._failed(entries, exc, started)
            return
        self._throttle_streak = 0
        now = time.monotonic()
        jitter = random.uniform(0.9, 1.1)  # one per batch, so a batch stays together
        for entry in entries:
            snapshot = found.get(entry.ref.key)
            error = None if snapshot is not None else ServiceNotFound.of(entry.ref)
            await self._publish(entry, snapshot, error, started)
            entry.due = now + self._interval(entry, snapshot, now) * jitter

    def _interval(self, entry: _Entry, snapshot: ServiceSnapshot | None, now: float) -> float:
        """How long until the next look, from the phase the rollout is in (see PollTiming)."""
        timing = self._timing
        if entry.expected_end is not None and abs(now - entry.expected_end) <= timing.near_end_s:
            return timing.fast_s
        long_running = now - entry.since > timing.slow_after_s
        phase = rollout_phase(snapshot)
        if phase == "finishing":
            entry.finishing_since = entry.finishing_since or now
            if now - entry.finishing_since <= timing.finishing_for_s:
                return timing.finishing_s
        else:
            entry.finishing_since = None
        if long_running:
            return timing.slow_s
        return timing.launching_s if phase == "launching" else timing.draining_s

    async def _failed(self, entries: list[_Entry], exc: AwsError, started: float) -> None:
        if exc.throttled or exc.code == "ConnectionError":
            self._throttle_streak += 1
            timing = self._timing
            delay = full_jitter(
                self._throttle_streak,
                base_s=timing.draining_s,
                cap_s=timing.max_backoff_s,
                floor_s=timing.fast_s,
            )
            self._backoff_until = time.monotonic() + delay
            metrics.AWS_RETRIES.labels(operation="describe_services").inc()
            log.info("watcher backing off", extra={"code": exc.code, "streak": self._throttle_streak})
            return
        for entry in entries:
            await self._publish(entry, entry.snapshot, exc, started)
            entry.due = time.monotonic() + self._timing.draining_s

    async def _publish(
        self, entry: _Entry, snapshot: ServiceSnapshot | None, error: AwsError | None, polled_at: float
    ) -> None:
        async with entry.changed:
            entry.snapshot = snapshot
            entry.error = error
            entry.polled_at = polled_at
            entry.version += 1
            entry.changed.notify_all()


def rollout_phase(snapshot: ServiceSnapshot | None) -> str:
    """`launching` while new tasks start, `draining` while old ones stop, then `finishing`."""
    primary = snapshot.primary if snapshot is not None else None
    if snapshot is None or primary is None:
        return "draining"
    if primary.running < primary.desired or primary.pending > 0:
        return "launching"
    if any(d.running > 0 for d in snapshot.deployments if d is not primary):
        return "draining"
    return "finishing"
