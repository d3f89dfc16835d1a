"""EcsEventQueue: ECS's own events, read from the SQS queue an EventBridge rule feeds.

One consumer long-polls `TUGBOAT_EVENTS_QUEUE` (ReceiveMessage in the gateway's thread pool,
never on the event loop), parses each EventBridge envelope into an `EcsEvent`, hands the batch
to the watcher (which makes the matching watch due at once) and then deletes the batch. An
event never decides anything: the watcher's describe does. So a duplicated, reordered, late
or foreign event costs at most one batched describe, and a lost one costs the safety net.

When is the feed trusted (`FeedHealth.flowing`)? ECS sends events only on change, so a quiet
queue is normal. The feed counts as flowing while the last ReceiveMessage succeeded, less
than `stale_after_s` ago, and brought no message older than `lag_limit_s` (an empty answer
means we are caught up). Each watch adds its own test (see `bot.aws.watcher`): a watch whose
describe showed a change that no event announced within `event_grace_s` is *silent* and
polls by phase again until an event about it arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from bot import metrics
from bot.aws.ecs import EcsGateway
from bot.backoff import full_jitter
from bot.domain.aws import AwsError

log = logging.getLogger(__name__)

DEPLOYMENT = "ECS Deployment State Change"
SERVICE_ACTION = "ECS Service Action"
TASK = "ECS Task State Change"
HOOK = "ECS Hook State Change"
DETAIL_TYPES = (DEPLOYMENT, SERVICE_ACTION, TASK, HOOK)

# Events after which a describe may find an outcome (or a pause to show): they wake a watch.
# The others (a deployment starting, a task moving to RUNNING) only prove that events flow.
DECISIVE_DEPLOYMENT_EVENTS = frozenset({"SERVICE_DEPLOYMENT_COMPLETED", "SERVICE_DEPLOYMENT_FAILED"})
DECISIVE_SERVICE_ACTIONS = frozenset({"SERVICE_STEADY_STATE"})

_ARN = re.compile(r"^arn:[^:]+:ecs:(?P<region>[^:]*):[^:]*:(?P<kind>service|task)/(?P<path>.+)$")
_QUEUE_REGION = re.compile(
    r"^https://(?:sqs(?:-fips)?\.(?P<region>[a-z0-9-]+)|(?P<legacy>[a-z0-9-]+)\.queue)\."
)


@dataclass(frozen=True)
class EcsEvent:
    """One ECS event, reduced to what finds its watch: a service, or a task by its id."""

    id: str
    kind: str
    name: str
    region: str
    cluster: str | None
    service: str | None
    task_id: str | None
    decisive: bool
    time: datetime | None


def parse_event(body: str) -> EcsEvent | None:
    """The ECS event in an SQS message body (an EventBridge envelope); None for anything else."""
    try:
        envelope = json.loads(body)
    except ValueError:
        return None
    if not isinstance(envelope, dict) or envelope.get("source") != "aws.ecs":
        return None
    kind = envelope.get("detail-type")
    detail = envelope.get("detail")
    if kind not in DETAIL_TYPES or not isinstance(detail, dict):
        return None
    resources = [r for r in envelope.get("resources") or [] if isinstance(r, str)]
    event_id, when = str(envelope.get("id", "")), _when(envelope.get("time"))
    if kind == TASK:
        return _task_event(event_id, when, detail, resources, str(envelope.get("region", "")))
    for resource in resources:
        arn = _ARN.match(resource)
        if arn is None or arn["kind"] != "service":
            continue
        cluster, _, service = arn["path"].rpartition("/")
        name = str(detail.get("eventName", ""))
        decisive = kind == HOOK or name in DECISIVE_DEPLOYMENT_EVENTS or name in DECISIVE_SERVICE_ACTIONS
        if not cluster:  # the old ARN format names no cluster; detail may
            cluster = _last(detail.get("clusterArn")) or ""
        return EcsEvent(
            id=event_id,
            kind=str(kind),
            time=when,
            name=name,
            region=arn["region"],
            cluster=cluster or None,
            service=service,
            task_id=None,
            decisive=decisive,
        )
    return None


def _task_event(
    event_id: str, when: datetime | None, detail: dict[str, Any], resources: list[str], region: str
) -> EcsEvent | None:
    task_arn = str(detail.get("taskArn") or next((r for r in resources if ":task/" in r), ""))
    arn = _ARN.match(task_arn)
    if arn is None or arn["kind"] != "task":
        return None
    group = str(detail.get("group") or "")
    status = str(detail.get("lastStatus") or "")
    return EcsEvent(
        id=event_id,
        kind=TASK,
        time=when,
        name=status,
        region=arn["region"] or region,
        cluster=_last(detail.get("clusterArn")),
        service=group.removeprefix("service:") if group.startswith("service:") else None,
        task_id=task_arn.rsplit("/", 1)[-1],
        decisive=status == "STOPPED",
    )


def _last(arn: object) -> str | None:
    return arn.rsplit("/", 1)[-1] if isinstance(arn, str) and "/" in arn else None


def _when(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


def queue_region(url: str, default: str) -> str:
    """The Region in an SQS queue URL (`https://sqs.REGION.amazonaws.com/…`), else `default`.

    The sandbox's queue (moto's URL) names none: the catalog's Region is used.
    """
    match = _QUEUE_REGION.match(url)
    return (match["region"] or match["legacy"]) if match else default


class EventSink(Protocol):
    """Where parsed events go: the watcher, which wakes the watches they are about."""

    def on_events(self, events: Sequence[EcsEvent]) -> None: ...


@dataclass
class FeedHealth:
    """Whether the queue can be trusted now; shared by the consumer (writes) and the watcher (reads)."""

    stale_after_s: float = 45.0
    lag_limit_s: float = 30.0
    last_ok: float | None = None
    failing: bool = False
    lagging: bool = False

    def received(self, now: float, oldest_age_s: float | None) -> None:
        self.last_ok = now
        self.failing = False
        self.lagging = oldest_age_s is not None and oldest_age_s > self.lag_limit_s

    def failed(self) -> None:
        self.failing = True

    def flowing(self, now: float) -> bool:
        if self.last_ok is None or self.failing or self.lagging:
            return False
        return now - self.last_ok <= self.stale_after_s


class EcsEventQueue:
    """The single consumer of the events queue. Start it once; stop it on shutdown."""

    def __init__(
        self,
        ecs: EcsGateway,
        url: str,
        region: str,
        sink: EventSink,
        health: FeedHealth,
        *,
        wait_s: int = 10,
        max_backoff_s: float = 30.0,
    ) -> None:
        self._ecs = ecs
        self._url = url
        self._region = region
        self._sink = sink
        self._health = health
        self._wait_s = wait_s
        self._max_backoff_s = max_backoff_s
        self._task: asyncio.Task[None] | None = None
        self._failures = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="ecs-events")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                answer = await self._ecs.call(
                    "sqs",
                    self._region,
                    "receive_message",
                    retry=False,
                    QueueUrl=self._url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=self._wait_s,
                )
            except AwsError as exc:
                await self._failed(exc)
                continue
            self._failures = 0
            messages = [m for m in answer.get("Messages") or [] if isinstance(m, dict)]
            self._handle(messages)
            if messages:
                await self._delete(messages)

    def _handle(self, messages: list[dict[str, Any]]) -> None:
        """Parse a batch, tell the feed's health how fresh it was, and wake the watches."""
        events = [e for e in (parse_event(str(m.get("Body", ""))) for m in messages) if e is not None]
        now = datetime.now(UTC)
        ages = [(now - e.time).total_seconds() for e in events if e.time is not None]
        self._health.received(time.monotonic(), max(ages) if ages else None)
        for event in events:
            metrics.ECS_EVENTS.labels(kind=event.kind).inc()
        if len(events) < len(messages):
            metrics.ECS_EVENTS.labels(kind="unknown").inc(len(messages) - len(events))
        if events:
            self._sink.on_events(events)

    async def _delete(self, messages: list[dict[str, Any]]) -> None:
        entries = [{"Id": str(i), "ReceiptHandle": str(m["ReceiptHandle"])} for i, m in enumerate(messages)]
        try:
            answer = await self._ecs.call(
                "sqs", self._region, "delete_message_batch", QueueUrl=self._url, Entries=entries
            )
        except AwsError as exc:  # they come back after the visibility timeout: harmless
            log.warning("could not delete ECS events", extra={"code": exc.code, "count": len(entries)})
            return
        if answer.get("Failed"):
            log.warning("some ECS events were not deleted", extra={"count": len(answer["Failed"])})

    async def _failed(self, exc: AwsError) -> None:
        """The queue is unreachable: polling takes over until a receive succeeds again."""
        self._health.failed()
        self._failures += 1
        if self._failures == 1:
            log.warning("ECS events queue unreachable; polling by phase", extra={"code": exc.code})
        metrics.BACKGROUND_FAILURES.labels(what="events_queue").inc()
        await asyncio.sleep(full_jitter(self._failures, base_s=1.0, cap_s=self._max_backoff_s, floor_s=0.5))
