"""Waiting for a rollout, and the rule that decides how it ended.

The rule (SPEC, deploy semantics 5): success only when our deployment is COMPLETED and is the
only deployment, with running = desired. Failure when it is FAILED, when the PRIMARY
deployment's id or task definition changes (ECS's circuit breaker rolled it back), or on
timeout. The `services-stable` waiter calls a circuit-breaker rollback a success; we never do.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bot.domain.aws import Deployment, ServiceRef, ServiceSnapshot, revision_of
from bot.domain.events import Emit, RolloutProgress, StoppedTasks
from bot.domain.ports import Ecs, Watcher

MAX_STOPPED_REASONS = 5


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str
    ecs_rollback: Deployment | None = None


@dataclass(frozen=True)
class RolloutOutcome(Verdict):
    """The verdict on a rollout, with the last snapshot seen (None if ECS never answered)."""

    snapshot: ServiceSnapshot | None = None
    settled_by_ecs: bool = False
    """ECS already took the service back itself (a blue/green rollback): never update it again."""


def judge(snapshot: ServiceSnapshot, deployment_id: str, task_definition: str) -> Verdict | None:
    """How the rollout of `deployment_id` ended, or None while it is still going."""
    ours = snapshot.deployment(deployment_id)
    primary = snapshot.primary
    if primary is not None and primary.id != deployment_id:
        reason = ours.rollout_reason if ours is not None and ours.rollout_reason else None
        if primary.task_definition != task_definition:
            why = reason or "the PRIMARY deployment changed to another task definition"
            return Verdict(
                False,
                f"{why} ECS rolled back to revision {revision_of(primary.task_definition)}"
                f" (deployment {primary.id}).",
                ecs_rollback=primary,
            )
        return Verdict(False, reason or f"deployment {deployment_id} was replaced by {primary.id}")
    if ours is None:
        return Verdict(False, f"deployment {deployment_id} is no longer on the service")
    if ours.rollout_state == "FAILED":
        return Verdict(False, ours.rollout_reason or f"deployment {deployment_id} FAILED")
    settled = ours.rollout_state in ("COMPLETED", None) and len(snapshot.deployments) == 1
    if settled and ours.running == ours.desired and snapshot.running == snapshot.desired:
        return Verdict(True, f"{ours.running}/{ours.desired} tasks running")
    return None


async def wait_for_rollout(
    watcher: Watcher,
    ref: ServiceRef,
    deployment_id: str,
    task_definition: str,
    timeout_s: float,
    emit: Emit,
    *,
    seen_events: set[str] | None = None,
    cancel: asyncio.Event | None = None,
    expected_s: float | None = None,
    known: ServiceSnapshot | None = None,
    service: str | None = None,
) -> RolloutOutcome:
    """Follow one deployment until the rule above decides, emitting progress as it moves.

    `known` is update_service's answer: it paces the first look, which then needs no hurry.
    `service` labels the progress when the operation watches several services.
    """
    deadline = time.monotonic() + timeout_s
    seen = set(seen_events or ())
    last: tuple[int, int, int, int] | None = None
    snapshot: ServiceSnapshot | None = None
    async with watcher.watch(ref, known=known) as subscription:
        if expected_s is not None:
            subscription.expect_end_in(expected_s)
        while (remaining := deadline - time.monotonic()) > 0:
            if cancel is not None and cancel.is_set():
                return RolloutOutcome(False, "Cancelled from Slack during the rollout.", snapshot=snapshot)
            fresh = await subscription.next(min(remaining, 1.0))
            if fresh is None:
                continue
            snapshot = fresh
            new_events = tuple(e.message for e in reversed(snapshot.events) if e.id not in seen)
            seen.update(e.id for e in snapshot.events)
            ours = snapshot.deployment(deployment_id)
            counts = (
                (ours.running, ours.desired, ours.pending, ours.failed_tasks)
                if ours is not None
                else (snapshot.running, snapshot.desired, snapshot.pending, 0)
            )
            if counts != last or new_events:
                last = counts
                await emit(RolloutProgress(*counts, new_events=new_events, service=service))
            verdict = judge(snapshot, deployment_id, task_definition)
            if verdict is not None:
                return RolloutOutcome(verdict.ok, verdict.reason, verdict.ecs_rollback, snapshot)
    running = f"{last[0]}/{last[1]} running" if last else "no answer from ECS"
    return RolloutOutcome(False, f"timed out after {int(timeout_s)} s ({running})", snapshot=snapshot)


async def stopped_task_reasons(ecs: Ecs, ref: ServiceRef, deployment_id: str) -> StoppedTasks:
    """Why the deployment's tasks stopped: ECS's stop code, reason and each container's reason."""
    tasks = await ecs.stopped_tasks(ref)
    ours = [t for t in tasks if t.get("startedBy") == deployment_id]
    if not ours:
        ours = [t for t in tasks if t.get("group") == f"service:{ref.service}"]
    reasons: list[str] = []
    for task in ours:
        task_id = str(task.get("taskArn", "")).rsplit("/", 1)[-1][:12]
        parts = [p for p in (task.get("stopCode"), task.get("stoppedReason")) if p]
        for container in task.get("containers", []):
            detail = container.get("reason")
            code = container.get("exitCode")
            if detail or (code not in (None, 0)):
                extra = f" (exit {code})" if code is not None else ""
                parts.append(f"{container.get('name')}: {detail or 'exited'}{extra}")
        reasons.append(f"task {task_id}: " + " — ".join(str(p) for p in parts))
        if len(reasons) >= MAX_STOPPED_REASONS:
            break
    return StoppedTasks(tuple(reasons))
