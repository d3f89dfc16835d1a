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
    fast_window_s: float = 6.0
    tick_s: float = 0.1
    max_backoff_s: float = 30.0


@dataclass
class _Entry:
    ref: ServiceRef
    waiters: int = 0
    fast_until: float = 0.0
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
                due = [e for e in self._entries.values() if e.due <= now]
                if due:
                    await self._poll(self._fill_batches(due, now))
            await self._sleep_until_next()

    def _fill_batches(self, due: list[_Entry], now: float) -> list[_Entry]:
        """Add services that are nearly due in the same cluster: their call is free."""
        clusters = {(e.ref.region, e.ref.cluster, e.ref.role_arn) for e in due}
        soon = now + self._timing.normal_s / 2
        extra = [
            e
            for e in self._entries.values()
            if e not in due and e.due <= soon and (e.ref.region, e.ref.cluster, e.ref.role_arn) in clusters
        ]
        return due + extra

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
        for entry in entries:
            snapshot = found.get(entry.ref.key)
            error = None
            if snapshot is None:
                error = AwsError("DescribeServices", "ServiceNotFoundException", f"{entry.ref.key} is gone")
            await self._publish(entry, snapshot, error)
            fast = now < entry.fast_until
            interval = self._timing.fast_s if fast else self._timing.normal_s
            entry.due = now + interval * random.uniform(0.9, 1.1)

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
