"""RolloutWatcher: one poller for every in-flight rollout and one-off task, batched and gentle on ECS.

Each watched service (and each followed one-off task) has its own due time. On each tick the
watcher describes everything due, ten services or a hundred tasks per call per cluster, and
wakes the waiters of each. Waiters on the same service share one entry, so 10 deploys of 10
services cost one describe_services per tick, and two waiters on one service cost nothing
extra. Throttling backs the whole poller off with full jitter.

The watcher has no rate limit of its own: each describe takes its turn in the gateway's
CallBudget with every other ECS call, in arrival order. The poller sends one call at a time,
so it holds at most one place in that queue: it cannot crowd deploys out, nor they it.

With an events queue (`bot.aws.ecs_events`), a decisive ECS event makes its watch due at
once; the verdict still comes from the describe that follows. A watch trusts events while
the feed flows (`FeedHealth.flowing`) and it is not *silent*: a describe that shows a change
(deployments, their counts, a task's status) with no event about the watch since the look
before makes it silent, and it polls by phase until an event about it arrives. Trusting
events, a watch is looked at only when woken, or every `safety_net_s`. When the feed stops
flowing, every watch is looked at once and phase polling resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bot import metrics
from bot.aws.ecs import EcsGateway
from bot.aws.ecs_events import EcsEvent, FeedHealth
from bot.backoff import full_jitter
from bot.domain.aws import AwsError, ServiceNotFound, ServiceRef, ServiceSnapshot
from bot.domain.gates import ServiceDeploymentState

log = logging.getLogger(__name__)

SERVICES_PER_CALL = 10
TASKS_PER_CALL = 100
DEPLOYMENTS_PER_CALL = 20
RECHECKS = 2
"""After a decisive event, describes that show nothing new are repeated this often, fast."""


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
    safety_net_s: float = 30.0
    """While ECS events flow, each watch is still described this often, in case one was lost."""
    task_s: float = 1.0
    """A one-off task is looked at this long after the last look, 1.3 times longer each time…"""
    task_max_s: float = 10.0
    """…up to this."""

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
            safety_net_s=seconds * 4,
            task_s=seconds,
            task_max_s=seconds,
        )


@dataclass(kw_only=True)
class _Watch:
    """What the poller keeps of one watched thing, whatever it is."""

    ref: ServiceRef
    waiters: int = 0
    since: float = field(default_factory=time.monotonic)
    due: float = 0.0
    version: int = 0
    polled_at: float = 0.0
    error: AwsError | None = None
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    shape: tuple[object, ...] | None = None
    """What an ECS event would announce a change of, as of the last describe."""
    event_at: float = 0.0
    silent: bool = False
    rechecks: int = 0

    def looked(self, shape: tuple[object, ...]) -> None:
        """Note a describe's answer; a change no event announced since the last look makes it silent."""
        if self.shape is not None and shape != self.shape:
            self.rechecks = 0
            if self.event_at < self.polled_at:
                self.silent = True
        elif self.rechecks:
            self.rechecks -= 1
        self.shape = shape

    def heard(self, now: float, decisive: bool) -> None:
        self.event_at = now
        self.silent = False
        if decisive:
            self.rechecks = RECHECKS
            self.due = min(self.due, now)


W = TypeVar("W", bound=_Watch)


@dataclass(kw_only=True)
class _Entry(_Watch):
    expected_end: float | None = None
    finishing_since: float | None = None
    snapshot: ServiceSnapshot | None = None


@dataclass(kw_only=True)
class _TaskEntry(_Watch):
    arn: str
    task: dict[str, Any] | None = None
    interval_s: float = 0.0


@dataclass(kw_only=True)
class _DeploymentEntry(_Watch):
    arn: str
    state: ServiceDeploymentState | None = None
    interval_s: float = 0.0


class _Follower:
    """A waiter's place in one watch: only describes that started after it joined count."""

    def __init__(self, entry: _Watch, not_before: float) -> None:
        self._watch = entry
        self._seen = 0
        self._not_before = not_before

    def _fresh(self) -> bool:
        return self._watch.version > self._seen and self._watch.polled_at >= self._not_before

    async def _next(self, timeout: float) -> bool:
        """True once a describe newer than the last one seen has answered (raising its error)."""
        watch = self._watch
        async with watch.changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watch.changed.wait_for(self._fresh), timeout)
            if not self._fresh():
                return False
            self._seen = watch.version
            if watch.error is not None and not watch.error.throttled:
                raise watch.error
            return True


class Subscription(_Follower):
    """A waiter's view of one service: await `next()` for each newer snapshot.

    Only snapshots from describes that started after subscribing count, so a waiter that
    subscribes right after update_service never sees the service as it was before.
    """

    def __init__(self, entry: _Entry, not_before: float) -> None:
        super().__init__(entry, not_before)
        self._entry = entry

    async def next(self, timeout: float) -> ServiceSnapshot | None:
        """The next snapshot newer than the last one seen, or None after `timeout` seconds."""
        return self._entry.snapshot if await self._next(timeout) else None

    def expect_end_in(self, seconds: float) -> None:
        """When this rollout should end (from earlier deploys): poll fast around then."""
        self._entry.expected_end = time.monotonic() + seconds


class TaskSubscription(_Follower):
    """A waiter's view of one one-off task: await `next()` for each newer describe of it."""

    def __init__(self, entry: _TaskEntry, not_before: float) -> None:
        super().__init__(entry, not_before)
        self._entry = entry

    async def next(self, timeout: float) -> dict[str, Any] | None:
        """The task as last described ({} if ECS no longer knows it), or None after `timeout`."""
        return dict(self._entry.task or {}) if await self._next(timeout) else None


class DeploymentSubscription(_Follower):
    """A waiter's view of one blue/green, linear or canary deployment."""

    def __init__(self, entry: _DeploymentEntry, not_before: float, wake: asyncio.Event) -> None:
        super().__init__(entry, not_before)
        self._entry = entry
        self._wake = wake

    async def next(self, timeout: float) -> ServiceDeploymentState | None:
        """The deployment as last described, or None after `timeout` (or if ECS forgot it)."""
        return self._entry.state if await self._next(timeout) else None

    def look_now(self) -> None:
        self._entry.due = time.monotonic()
        self._entry.interval_s = 0.0
        self._wake.set()


def _task_id(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


class RolloutWatcher:
    """The shared poller. Start it once; waiters subscribe with `watch(ref)` or `follow_task`."""

    def __init__(
        self, ecs: EcsGateway, timing: PollTiming | None = None, *, feed: FeedHealth | None = None
    ) -> None:
        self._ecs = ecs
        self._timing = timing or PollTiming()
        self._feed = feed
        self._entries: dict[str, _Entry] = {}
        self._tasks: dict[str, _TaskEntry] = {}
        self._deployments: dict[str, _DeploymentEntry] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._backoff_until = 0.0
        self._throttle_streak = 0
        self._flowing = False

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
            entry = _Entry(ref=ref)
            self._entries[ref.key] = entry
        entry.waiters += 1
        if known is None:
            self._look_now(entry)
        elif not entry.due:
            entry.shape = _service_shape(known)
            entry.polled_at = now
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

    @contextlib.asynccontextmanager
    async def follow_task(self, ref: ServiceRef, arn: str) -> AsyncIterator[TaskSubscription]:
        """Follow a one-off task (in `ref`'s cluster) for the duration of the block; look at once."""
        now = time.monotonic()
        async with self._joined(self._tasks, _task_id(arn), lambda: _TaskEntry(ref=ref, arn=arn)) as entry:
            yield TaskSubscription(entry, now)

    @contextlib.asynccontextmanager
    async def follow_deployment(self, ref: ServiceRef, arn: str) -> AsyncIterator[DeploymentSubscription]:
        """Follow a service deployment for the duration of the block; look at once."""
        now = time.monotonic()
        async with self._joined(self._deployments, arn, lambda: _DeploymentEntry(ref=ref, arn=arn)) as entry:
            yield DeploymentSubscription(entry, now, self._wake)

    @contextlib.asynccontextmanager
    async def _joined(self, table: dict[str, W], key: str, new: Callable[[], W]) -> AsyncIterator[W]:
        """One entry per followed thing, shared by its waiters, looked at once when joined."""
        entry = table.get(key)
        if entry is None:
            entry = table[key] = new()
        entry.waiters += 1
        self._look_now(entry)
        try:
            yield entry
        finally:
            entry.waiters -= 1
            if entry.waiters == 0 and table.get(key) is entry:
                del table[key]

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

    def on_events(self, events: Sequence[EcsEvent]) -> None:
        """ECS events (from the queue): each is news of its watch; decisive ones make it due now."""
        now = time.monotonic()
        for event in events:
            for watch, decisive in self._watches_for(event):
                watch.heard(now, decisive)
        self._wake.set()

    def _watches_for(self, event: EcsEvent) -> list[tuple[_Watch, bool]]:
        """The watches an event is about, and whether it may decide them (worth a describe now)."""
        found: list[tuple[_Watch, bool]] = []
        if event.task_id is not None and event.task_id in self._tasks:
            found.append((self._tasks[event.task_id], event.decisive))
        if event.service is not None:
            service_decides = event.decisive and event.task_id is None  # a service's task: news only
            if event.cluster is not None:
                entry = self._entries.get(f"{event.region}/{event.cluster}/{event.service}")
                found.extend([(entry, service_decides)] if entry is not None else [])
            else:
                found.extend(
                    (e, service_decides)
                    for e in self._entries.values()
                    if e.ref.service == event.service and e.ref.region == event.region
                )
            found.extend(
                (d, service_decides)
                for d in self._deployments.values()
                if d.ref.service == event.service
                and d.ref.region == event.region
                and event.cluster in (None, d.ref.cluster)
            )
        return found

    def _look_now(self, entry: _Watch) -> None:
        """Describe this service (or task) in the next tick."""
        entry.due = time.monotonic()
        self._wake.set()

    def _trusts_events(self, entry: _Watch, now: float) -> bool:
        return self._feed is not None and self._feed.flowing(now) and not entry.silent

    def _watches(self) -> list[_Watch]:
        return [*self._entries.values(), *self._tasks.values(), *self._deployments.values()]

    async def _run(self) -> None:
        while True:
            if not self._entries and not self._tasks and not self._deployments:
                self._count_modes(time.monotonic())
                self._wake.clear()
                await self._wake.wait()
            now = time.monotonic()
            self._review_feed(now)
            if now >= self._backoff_until:
                for batch in self._batches(now):
                    await self._poll(batch)
                    if time.monotonic() < self._backoff_until:
                        break  # throttled: the rest wait out the backoff too
            await self._sleep_until_next()

    def _review_feed(self, now: float) -> None:
        """When the events feed stops flowing, look at everything now, then poll by phase."""
        flowing = self._feed is not None and self._feed.flowing(now)
        if self._flowing and not flowing:
            log.info("ECS events stopped flowing; polling by phase", extra={"watches": len(self._watches())})
            for watch in self._watches():
                watch.due = min(watch.due, now)
        self._flowing = flowing
        self._count_modes(now)

    def _count_modes(self, now: float) -> None:
        trusting = sum(1 for w in self._watches() if self._trusts_events(w, now))
        metrics.WATCHES_BY_MODE.labels(mode="events").set(trusting)
        metrics.WATCHES_BY_MODE.labels(mode="polling").set(len(self._watches()) - trusting)

    def _batches(self, now: float) -> list[list[_Watch]]:
        """Due services and tasks, grouped per call per cluster, most overdue first.

        A call for one due service may carry nine more of its cluster for free, so batches
        are filled with the services that would be due next. Pacing is the gateway's budget.
        """
        batches: list[list[_Watch]] = []
        for watches, size in (
            (self._entries.values(), SERVICES_PER_CALL),
            (self._tasks.values(), TASKS_PER_CALL),
            (self._deployments.values(), DEPLOYMENTS_PER_CALL),
        ):
            by_cluster: dict[tuple[str, str, str | None], list[_Watch]] = {}
            for entry in sorted(watches, key=lambda e: e.due):
                by_cluster.setdefault((entry.ref.region, entry.ref.cluster, entry.ref.role_arn), []).append(
                    entry
                )
            for members in by_cluster.values():
                due = sum(1 for e in members if e.due <= now)
                if due:
                    take = min(len(members), -(-due // size) * size)
                    batches.extend(members[i : i + size] for i in range(0, take, size))
        batches.sort(key=lambda batch: batch[0].due)
        return batches

    async def _sleep_until_next(self) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._timing.tick_s)

    async def _poll(self, batch: list[_Watch]) -> None:
        started = time.monotonic()
        services = [e for e in batch if isinstance(e, _Entry)]
        tasks = [e for e in batch if isinstance(e, _TaskEntry)]
        deployments = [e for e in batch if isinstance(e, _DeploymentEntry)]
        try:
            if services:
                await self._describe_services(services, started)
            if tasks:
                await self._describe_tasks(tasks, started)
            if deployments:
                await self._describe_deployments(deployments, started)
        except AwsError as exc:
            await self._failed(batch, exc, started)
            return
        self._throttle_streak = 0

    async def _describe_services(self, entries: list[_Entry], started: float) -> None:
        found = await self._ecs.describe_services([e.ref for e in entries], retry=False)
        now = time.monotonic()
        jitter = random.uniform(0.9, 1.1)  # one per batch, so a batch stays together
        for entry in entries:
            snapshot = found.get(entry.ref.key)
            error = None if snapshot is not None else ServiceNotFound.of(entry.ref)
            if snapshot is not None:
                entry.looked(_service_shape(snapshot))
            entry.snapshot = snapshot
            await self._publish(entry, error, started)
            entry.due = now + self._interval(entry, snapshot, now) * jitter

    async def _describe_tasks(self, entries: list[_TaskEntry], started: float) -> None:
        ref = entries[0].ref
        answer = await self._ecs.ecs(
            ref, "describe_tasks", retry=False, cluster=ref.cluster, tasks=[e.arn for e in entries]
        )
        by_id = {_task_id(str(t.get("taskArn", ""))): t for t in answer.get("tasks") or []}
        now = time.monotonic()
        for entry in entries:
            task = by_id.get(_task_id(entry.arn), {})
            entry.looked((task.get("lastStatus"), task.get("desiredStatus")))
            entry.task = task
            await self._publish(entry, None, started)
            entry.due = now + self._task_interval(entry, now)

    async def _describe_deployments(self, entries: list[_DeploymentEntry], started: float) -> None:
        found = await self._ecs.describe_service_deployments(entries[0].ref, [e.arn for e in entries])
        now = time.monotonic()
        for entry in entries:
            state = found.get(entry.arn)
            if state is not None:
                hooks = tuple((h.hook_id, h.status) for h in state.hooks)
                shape = (state.status, state.stage, state.production_weight, hooks)
                if shape != entry.shape:
                    entry.interval_s = 0.0  # it moves: look closely again
                entry.looked(shape)
            entry.state = state
            await self._publish(entry, None, started)
            entry.due = now + self._deployment_interval(entry)

    def _interval(self, entry: _Entry, snapshot: ServiceSnapshot | None, now: float) -> float:
        """How long until the next look: the safety net while events are trusted, else by phase."""
        timing = self._timing
        if self._trusts_events(entry, now):
            return timing.fast_s if entry.rechecks else timing.safety_net_s
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

    def _deployment_interval(self, entry: _DeploymentEntry) -> float:
        """A service deployment: ECS announces its pauses but not its stages or traffic steps,
        so it is looked at like a task without events, the pause growing while nothing moves."""
        timing = self._timing
        if entry.rechecks:
            return timing.fast_s
        entry.interval_s = (
            min(entry.interval_s * 1.3, timing.task_max_s) if entry.interval_s else timing.task_s
        )
        return entry.interval_s

    def _task_interval(self, entry: _TaskEntry, now: float) -> float:
        """A one-off task: the safety net while events are trusted, else a slowly growing pause."""
        timing = self._timing
        if self._trusts_events(entry, now):
            return timing.fast_s if entry.rechecks else timing.safety_net_s
        entry.interval_s = (
            min(entry.interval_s * 1.3, timing.task_max_s) if entry.interval_s else timing.task_s
        )
        return entry.interval_s

    async def _failed(self, entries: list[_Watch], exc: AwsError, started: float) -> None:
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
            metrics.AWS_RETRIES.labels(operation=exc.operation).inc()
            log.info("watcher backing off", extra={"code": exc.code, "streak": self._throttle_streak})
            return
        for entry in entries:
            await self._publish(entry, exc, started)
            entry.due = time.monotonic() + self._timing.draining_s

    async def _publish(self, entry: _Watch, error: AwsError | None, polled_at: float) -> None:
        async with entry.changed:
            entry.error = error
            entry.polled_at = polled_at
            entry.version += 1
            entry.changed.notify_all()


def _service_shape(snapshot: ServiceSnapshot) -> tuple[object, ...]:
    """What ECS announces by events: deployments coming and going, their state, their tasks."""
    return tuple((d.id, d.rollout_state, d.running, d.pending) for d in snapshot.deployments)


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
