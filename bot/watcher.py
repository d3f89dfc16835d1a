"""RolloutWatcher: one poller for every in-flight rollout, batched and gentle on ECS.

Each watched service has its own due time. On each tick the watcher describes every due
service, ten per call per cluster, and wakes the waiters of each. Waiters on the same
service share one entry, so 10 deploys of 10 services cost one describe_services per tick,
and two waiters on one service cost nothing extra. Throttling backs the whole poller off
with full jitter.
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
from bot.ecs import AwsError, EcsGateway, ServiceRef, ServiceSnapshot

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollTiming:
    """How often to look. Fast right after a change and when the end looks near; slow between."""

    fast_s: float = 0.5
    normal_s: float = 1.5
    slow_s: float = 3.0
    fast_window_s: float = 3.0
    slow_after_s: float = 60.0
    near_end_s: float = 8.0
    tick_s: float = 0.1
    max_backoff_s: float = 30.0
    max_calls_per_s: float = 4.0


@dataclass
class _Entry:
    ref: ServiceRef
    waiters: int = 0
    fast_until: float = 0.0
    since: float = field(default_factory=time.monotonic)
    expected_end: float | None = None
    due: float = 0.0
    version: int = 0
    snapshot: ServiceSnapshot | None = None
    error: AwsError | None = None
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)


class Subscription:
    """A waiter's view of one service: await `next()` for each newer snapshot."""

    def __init__(self, watcher: RolloutWatcher, entry: _Entry) -> None:
        self._watcher = watcher
        self._entry = entry
        self._seen = 0

    async def next(self, timeout: float) -> ServiceSnapshot | None:
        """The next snapshot newer than the last one seen, or None after `timeout` seconds."""
        entry = self._entry
        async with entry.changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(entry.changed.wait_for(lambda: entry.version > self._seen), timeout)
            if entry.version <= self._seen:
                return None
            self._seen = entry.version
            if entry.error is not None and not entry.error.throttled:
                raise entry.error
            return entry.snapshot

    def hurry(self, seconds: float | None = None) -> None:
        """Poll fast for a while: something is expected to change soon."""
        self._watcher.hurry(self._entry.ref, seconds)

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
        self._tokens = self._timing.max_calls_per_s
        self._refilled_at = time.monotonic()
        self.polls = 0

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
    async def watch(self, ref: ServiceRef) -> AsyncIterator[Subscription]:
        """Subscribe to a service for the duration of the block."""
        entry = self._entries.get(ref.key)
        if entry is None:
            entry = _Entry(ref)
            self._entries[ref.key] = entry
        entry.waiters += 1
        self.hurry(ref)
        metrics.WATCHED_SERVICES.set(len(self._entries))
        try:
            yield Subscription(self, entry)
        finally:
            entry.waiters -= 1
            if entry.waiters == 0 and self._entries.get(ref.key) is entry:
                del self._entries[ref.key]
            metrics.WATCHED_SERVICES.set(len(self._entries))

    def hurry(self, ref: ServiceRef, seconds: float | None = None) -> None:
        entry = self._entries.get(ref.key)
        if entry is None:
            return
        now = time.monotonic()
        entry.fast_until = max(entry.fast_until, now + (seconds or self._timing.fast_window_s))
        entry.due = min(entry.due, now + self._timing.fast_s) if entry.due else now
        self._wake.set()

    async def _run(self) -> None:
        while True:
            if not self._entries:
                self._wake.clear()
                await self._wake.wait()
            now = time.monotonic()
            if now >= self._backoff_until:
                self._refill(now)
                for batch in self._batches(now):
                    await self._poll(batch)
            await self._sleep_until_next()

    def _refill(self, now: float) -> None:
        rate = self._timing.max_calls_per_s
        self._tokens = min(rate, self._tokens + (now - self._refilled_at) * rate)
        self._refilled_at = now

    def _batches(self, now: float) -> list[list[_Entry]]:
        """Due services, grouped ten per call per cluster, most overdue first, within budget.

        A call for one due service may carry nine more of its cluster for free, so batches
        are filled with the services that would be due next.
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
        allowed = int(self._tokens)
        self._tokens -= min(allowed, len(batches))
        return batches[:allowed]

    async def _sleep_until_next(self) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._timing.tick_s)

    async def _poll(self, entries: list[_Entry]) -> None:
        self.polls += 1
        refs = [e.ref for e in entries]
        try:
            found = await self._ecs.describe_services(refs, retry=False)
        except AwsError as exc:
            await self._failed(entries, exc)
            return
        self._throttle_streak = 0
        now = time.monotonic()
        jitter = random.uniform(0.9, 1.1)  # one per batch, so a batch stays together
        for entry in entries:
            snapshot = found.get(entry.ref.key)
            error = None
            if snapshot is None:
                error = AwsError("DescribeServices", "ServiceNotFoundException", f"{entry.ref.key} is gone")
            await self._publish(entry, snapshot, error)
            entry.due = now + self._interval(entry, now) * jitter

    def _interval(self, entry: _Entry, now: float) -> float:
        """Fast just after a change and near the expected end; slower in the middle of long rollouts."""
        timing = self._timing
        if now < entry.fast_until:
            return timing.fast_s
        if entry.expected_end is not None and now >= entry.expected_end - timing.near_end_s:
            return timing.fast_s
        if now - entry.since > timing.slow_after_s:
            return timing.slow_s
        return timing.normal_s

    async def _failed(self, entries: list[_Entry], exc: AwsError) -> None:
        if exc.throttled or exc.code == "ConnectionError":
            self._throttle_streak += 1
            cap = min(self._timing.max_backoff_s, self._timing.normal_s * 2**self._throttle_streak)
            self._backoff_until = time.monotonic() + random.uniform(self._timing.fast_s, cap)
            metrics.AWS_RETRIES.labels(operation="describe_services").inc()
            log.info("watcher backing off", extra={"code": exc.code, "streak": self._throttle_streak})
            return
        for entry in entries:
            await self._publish(entry, entry.snapshot, exc)
            entry.due = time.monotonic() + self._timing.normal_s

    async def _publish(self, entry: _Entry, snapshot: ServiceSnapshot | None, error: AwsError | None) -> None:
        async with entry.changed:
            entry.snapshot = snapshot
            entry.error = error
            entry.version += 1
            entry.changed.notify_all()
