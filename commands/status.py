"""Status: what a service is doing now, for on-call on a phone.

Describes many services in as few calls as possible (ten per describe_services), and adds
detail (image tag, recent stopped tasks) only for the card of a single environment.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bot.domain.aws import AwsError, ServiceRef, ServiceSnapshot, revision_of
from bot.domain.catalog import Catalog
from bot.domain.ports import Ecs, Records
from bot.domain.records import Lock, OperationRecord, Target
from commands.deploy import container_image, tag_of

STOPPED_WINDOW_S = 3600
MAX_STOPPED = 3


@dataclass(frozen=True)
class ServiceStatus:
    target: Target
    snapshot: ServiceSnapshot | None
    problem: str | None = None
    image_tag: str | None = None
    stopped: tuple[str, ...] = ()
    lock: Lock | None = None
    last: OperationRecord | None = None

    @property
    def revision(self) -> int | None:
        return revision_of(self.snapshot.task_definition) if self.snapshot else None

    @property
    def state(self) -> str:
        """One word: steady, deploying, degraded, failed or missing."""
        snap = self.snapshot
        if snap is None:
            return "missing"
        if any(d.rollout_state == "FAILED" for d in snap.deployments):
            return "failed"
        if len(snap.deployments) > 1 or any(d.rollout_state == "IN_PROGRESS" for d in snap.deployments):
            return "deploying"
        if snap.running < snap.desired:
            return "degraded"
        return "steady"


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
) -> list[ServiceStatus]:
    """Status of each target, in order. `detail` adds the image tag and stopped tasks."""
    refs = {t: catalog.service_ref(t.app, t.env) for t in targets}
    try:
        snapshots = await ecs.describe_services(list(refs.values()))
        problem = None
    except AwsError as exc:
        snapshots, problem = {}, f"{exc.code}: {exc.aws_message}"

    async def one(target: Target, ref: ServiceRef) -> ServiceStatus:
        snapshot = snapshots.get(ref.key)
        lock, history = await asyncio.gather(
            store.get_lock(target.app, target.env), store.history(target.app, target.env, 1)
        )
        status = ServiceStatus(
            target,
            snapshot,
            problem or (None if snapshot else f"service {ref.service} not found in cluster {ref.cluster}"),
            lock=lock,
            last=history[0] if history else None,
        )
        if detail and snapshot is not None:
            status = await _detailed(status, snapshot, ecs, catalog)
        return status

    # The store's reads for every target at once: the overview lists them all.
    return list(await asyncio.gather(*(one(target, ref) for target, ref in refs.items())))


async def _detailed(
    status: ServiceStatus, snapshot: ServiceSnapshot, ecs: Ecs, catalog: Catalog
) -> ServiceStatus:
    app, _ = catalog.target(status.target.app, status.target.env)
    definition = await ecs.describe_task_definition(snapshot.ref, snapshot.task_definition)
    tag = tag_of(container_image(definition, app.container))
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
    return ServiceStatus(status.target, snapshot, None, tag, reasons, status.lock, status.last)


def _stopped_at(task: dict[str, object]) -> float:
    value = task.get("stoppedAt")
    timestamp = getattr(value, "timestamp", None)
    return float(timestamp()) if callable(timestamp) else 0.0
