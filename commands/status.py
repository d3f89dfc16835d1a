"""Status: what a service is doing now, for on-call on a phone.

Describes many services in as few calls as possible (ten per describe_services), and adds
detail (image tag, recent stopped tasks) only for the card of a single environment.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.domain.aws import AwsError, ServiceRef, ServiceSnapshot, revision_of
from bot.domain.catalog import Catalog
from bot.domain.freezes import FreezeWindow, active
from bot.domain.gates import ServiceDeploymentState, gated
from bot.domain.ports import Ecs, Records, Schedules
from bot.domain.records import Lock, OperationRecord, Target
from bot.domain.schedules import ScheduleMissing, next_run
from commands.taskdef import container_image, tag_of

STOPPED_WINDOW_S = 3600
SERVICE_CHANGES = ("deploy", "rollback", "restart", "scale")
"""What "Last:" on a status card means: the last change to the service, not a one-off task."""
LAST_LOOKBACK = 20
MAX_STOPPED = 3


@dataclass(frozen=True)
class ScheduleStatus:
    """One scheduled task on the card: when it runs, what it runs, and whether it drifted."""

    name: str
    expression: str
    timezone: str | None = None
    enabled: bool = True
    next_run: datetime | None = None
    task_definition: str | None = None
    image_tag: str | None = None
    drift: str | None = None
    """Why this schedule does not run what the service runs (another image), or None."""
    problem: str | None = None
    """Why it could not be read (deleted, no access)."""


STATES = ("failed", "missing", "degraded", "deploying", "steady")
"""Worst first: a release is as well as its worst service."""


def state_of(snap: ServiceSnapshot | None) -> str:
    """One word for one service: steady, deploying, degraded, failed or missing."""
    if snap is None:
        return "missing"
    if any(d.rollout_state == "FAILED" for d in snap.deployments):
        return "failed"
    if len(snap.deployments) > 1 or any(d.rollout_state == "IN_PROGRESS" for d in snap.deployments):
        return "deploying"
    if snap.running < snap.desired:
        return "degraded"
    return "steady"


@dataclass(frozen=True)
class MemberStatus:
    """One service of a release, on its environment's card."""

    name: str
    snapshot: ServiceSnapshot | None

    @property
    def state(self) -> str:
        return state_of(self.snapshot)


@dataclass(frozen=True)
class ServiceStatus:
    target: Target
    snapshot: ServiceSnapshot | None
    """The first (or only) service's."""
    problem: str | None = None
    image_tag: str | None = None
    stopped: tuple[str, ...] = ()
    lock: Lock | None = None
    last: OperationRecord | None = None
    schedules: tuple[ScheduleStatus, ...] = ()
    freeze: FreezeWindow | None = None
    """The freeze window holding now, if any (shown as `❄ frozen until …`)."""
    timezone: str = "UTC"
    """The environment's, for the times a card shows."""
    members: tuple[MemberStatus, ...] = ()
    """Every service of a release, the first included; empty for one service."""
    deployment: ServiceDeploymentState | None = None
    """A blue/green, linear or canary deployment under way: its stage, traffic and pauses."""

    @property
    def revision(self) -> int | None:
        return revision_of(self.snapshot.task_definition) if self.snapshot else None

    @property
    def state(self) -> str:
        """One word: steady, deploying, degraded, failed or missing (a release: its worst service's)."""
        if self.members:
            return min((m.state for m in self.members), key=STATES.index)
        return state_of(self.snapshot)


def frozen_now(catalog: Catalog, target: Target) -> FreezeWindow | None:
    _, env = catalog.target(target.app, target.env)
    return active(env.freeze, env.timezone) if env.freeze else None


def targets_for(catalog: Catalog, app: str | None, env: str | None) -> list[Target]:
    return [
        Target(a, e) for a, e in catalog.targets() if (app is None or a == app) and (env is None or e == env)
    ]


async def describe(
    targets: Sequence[Target],
    ecs: Ecs,
    catalog: Catalog,
    store: Records,
    *,
    detail: bool,
    schedules: Schedules | None = None,
    fresh_within_s: float = 0.0,
) -> list[ServiceStatus]:
    """Status of each target, in order. `detail` adds the image tag and stopped tasks;
    `fresh_within_s` lets an overview use snapshots described that recently."""
    refs = {t: catalog.service_ref(t.app, t.env) for t in targets}
    releases = {
        t: catalog.release_refs(t.app, t.env) for t in targets if catalog.target(t.app, t.env)[1].is_release
    }
    every = list(refs.values()) + [ref for found in releases.values() for _, ref in found[1:]]
    try:
        snapshots = await ecs.describe_services(every, fresh_within_s=fresh_within_s)
        problem = None
    except AwsError as exc:
        snapshots, problem = {}, f"{exc.code}: {exc.aws_message}"

    async def one(target: Target, ref: ServiceRef) -> ServiceStatus:
        snapshot = snapshots.get(ref.key)
        lock, history = await asyncio.gather(
            store.get_lock(target.app, target.env), store.history(target.app, target.env, LAST_LOOKBACK)
        )
        status = ServiceStatus(
            target,
            snapshot,
            problem or (None if snapshot else f"service {ref.service} not found in cluster {ref.cluster}"),
            lock=lock,
            freeze=frozen_now(catalog, target),
            timezone=catalog.target(target.app, target.env)[1].timezone,
            last=next((r for r in history if r.action in SERVICE_CHANGES), None),
            members=tuple(
                MemberStatus(entry.name, snapshots.get(member.key))
                for entry, member in releases.get(target, [])
            ),
        )
        if detail and snapshot is not None:
            status = await _detailed(status, snapshot, ecs, catalog, schedules)
        return status

    # The store's reads for every target at once: the overview lists them all.
    return list(await asyncio.gather(*(one(target, ref) for target, ref in refs.items())))


async def _detailed(
    status: ServiceStatus,
    snapshot: ServiceSnapshot,
    ecs: Ecs,
    catalog: Catalog,
    schedules: Schedules | None,
) -> ServiceStatus:
    app, _ = catalog.target(status.target.app, status.target.env)
    definition = await ecs.describe_task_definition(snapshot.ref, snapshot.task_definition)
    image = container_image(definition, app.container)
    tasks = await ecs.stopped_tasks(snapshot.ref)
    since = time.time() - STOPPED_WINDOW_S
    recent = [
        t for t in tasks if _stopped_at(t) >= since and t.get("group") == f"service:{snapshot.ref.service}"
    ]
    recent.sort(key=_stopped_at, reverse=True)
    reasons = tuple(
        f"{str(t.get('taskArn', '')).rsplit('/', 1)[-1][:8]}: {t.get('stoppedReason') or t.get('stopCode')}"
        for t in recent[:MAX_STOPPED]
    )
    found: tuple[ScheduleStatus, ...] = ()
    if schedules is not None:
        known = {snapshot.task_definition: definition}
        found = await _schedules(
            status.target, snapshot.ref, image, app.container, ecs, catalog, schedules, known
        )
    return dataclasses.replace(
        status,
        problem=None,
        image_tag=tag_of(image),
        stopped=reasons,
        schedules=found,
        deployment=await _under_way(ecs, snapshot),
    )


async def _under_way(ecs: Ecs, snapshot: ServiceSnapshot) -> ServiceDeploymentState | None:
    """The blue/green deployment the service is in the middle of, if any (one more call, only then)."""
    current = snapshot.raw.get("currentServiceDeployment")
    if (
        not current
        or not gated(snapshot.raw.get("deploymentConfiguration"))
        or state_of(snapshot) == "steady"
    ):
        return None
    try:
        found = await ecs.describe_service_deployment(snapshot.ref, str(current))
    except AwsError:
        return None
    return found if found is not None and not found.ended else None


async def _schedules(
    target: Target,
    ref: ServiceRef,
    image: str | None,
    container: str,
    ecs: Ecs,
    catalog: Catalog,
    schedules: Schedules,
    known: dict[str, dict[str, Any]],
) -> tuple[ScheduleStatus, ...]:
    """Each schedule of the environment, flagged when it runs another image than the service."""
    found: list[ScheduleStatus] = []
    now = datetime.now(UTC)
    for entry, schedule_ref in catalog.schedule_refs(target.app, target.env):
        try:
            tasks = await schedules.read(schedule_ref)
        except ScheduleMissing as exc:
            found.append(ScheduleStatus(entry.name, "", problem=str(exc)))
            continue
        except AwsError as exc:
            found.append(ScheduleStatus(entry.name, "", problem=f"{exc.code}: {exc.aws_message}"))
            continue
        for task in tasks:
            theirs: str | None = None
            try:
                if task.task_definition not in known:
                    known[task.task_definition] = await ecs.describe_task_definition(
                        ref, task.task_definition
                    )
                theirs = container_image(known[task.task_definition], container)
            except AwsError as exc:
                drift: str | None = f"its task definition cannot be read: {exc.aws_message}"
            else:
                drift = _drift(theirs, image, container)
            found.append(
                ScheduleStatus(
                    name=task.label,
                    expression=task.expression,
                    timezone=task.timezone,
                    enabled=task.enabled,
                    next_run=next_run(task.expression, task.timezone, now) if task.enabled else None,
                    task_definition=f"{task.family}:{task.revision}",
                    image_tag=tag_of(theirs),
                    drift=drift,
                )
            )
    return tuple(found)


def _drift(theirs: str | None, image: str | None, container: str) -> str | None:
    if theirs is None:
        return f"its task definition has no container `{container}`"
    if image is not None and theirs != image:
        return f"runs `{tag_of(theirs) or theirs}`, not the service's `{tag_of(image) or image}`"
    return None


def _stopped_at(task: dict[str, object]) -> float:
    value = task.get("stoppedAt")
    timestamp = getattr(value, "timestamp", None)
    return float(timestamp()) if callable(timestamp) else 0.0
