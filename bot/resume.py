"""Resume: finish what a previous process (or a dead replica) started, in the same thread.

An operation that had already updated the service is watched to its true end. One that was
interrupted before `update_service` is marked failed and never silently re-run: production
is only touched by a command someone is around to see.
"""

from __future__ import annotations

import asyncio
import logging
import time

from bot.domain.aws import ServiceRef, revision_of
from bot.domain.events import Emit, Failed, Note, ServiceUpdated
from bot.domain.records import OperationRecord, Phase
from bot.lifecycle import Origin
from bot.operations import Front, Operations
from commands import deploy as deploy_action
from commands import schedules as schedules_action
from commands.run_task import execute_stopped, plan_to_follow, wait_one_off
from commands.wait import wait_for_rollout

log = logging.getLogger(__name__)

MIN_REMAINING_S = 60.0
ROLLED_BACK_PHASES = (Phase.ROLLING_BACK, Phase.ROLLED_BACK, Phase.ROLLBACK_INCOMPLETE)
NOT_RERUN = "Nothing was changed, and it was not re-run: run the command again."


async def resume_unfinished(ops: Operations, front: Front) -> int:
    """Adopt every unfinished operation whose owner is gone (or is us), and carry it on."""
    adopted = await ops.lifecycle.adopt_unfinished()
    for record in adopted:
        log.info(
            "resuming operation", extra={"op": record.id, "action": record.action, "phase": record.phase}
        )
        ops.lifecycle.tracker.spawn(_resume(ops, front, record), f"resume-{record.id}")
    return len(adopted)


async def _resume(ops: Operations, front: Front, record: OperationRecord) -> None:
    lifecycle = ops.lifecycle
    if record.channel is None or record.ts is None:
        await lifecycle.end_unopened(record, "interrupted before its thread existed")
        return
    reporter = await front.reopen(record)

    async def body(emit: Emit, cancel: asyncio.Event) -> None:
        await emit(Note("Tugboat restarted and picked this up again."))
        if not ops.catalog.has(record.app, record.env):
            await emit(Failed(f"{record.app} {record.env} is no longer in the catalog; stopped watching."))
            return
        if record.action in ("deploy", "rollback"):
            await _follow_service(ops, record, emit)
        elif record.action == "run-task" and record.task_arn:
            await _follow_task(ops, record, emit, cancel)
        else:
            await emit(
                Failed(f"Tugboat restarted before the task started (step: {record.phase}). {NOT_RERUN}")
            )

    origin = Origin(actor=record.actor, channel=record.channel, trigger="resume")
    await lifecycle.run(record, reporter, body, origin)


def _ref(ops: Operations, record: OperationRecord) -> ServiceRef:
    return ops.catalog.service_ref(record.app, record.env)


def _remaining(ops: Operations, record: OperationRecord) -> float:
    _, env = ops.catalog.target(record.app, record.env)
    return max(MIN_REMAINING_S, env.timeout - (time.time() - record.created_at))


async def _follow_service(ops: Operations, record: OperationRecord, emit: Emit) -> None:
    """Ask ECS what the service runs now, rather than trusting the recorded phase.

    A record can lag behind ECS (a store write failed just after update_service), so the
    service's deployments decide: ours is still there (watch it), the service went back
    (report the failure), or nothing of ours ever reached it (nothing changed).
    """
    ref = _ref(ops, record)
    snapshot = await ops.watcher.describe(ref)
    ours = snapshot.deployment(record.deployment_id) if record.deployment_id else None
    if ours is None and record.task_definition:
        ours = next((d for d in snapshot.deployments if d.task_definition == record.task_definition), None)
    if record.phase in ROLLED_BACK_PHASES:
        await _follow_rollback(ops, record, emit)
    elif ours is not None and record.task_definition is not None:
        if record.deployment_id != ours.id:
            previous = record.previous_task_definition or snapshot.task_definition
            await emit(ServiceUpdated(ours.id, record.task_definition, previous))
        await _follow_rollout(ops, record, emit, ours.id, record.task_definition)
    elif record.task_definition and snapshot.task_definition != record.previous_task_definition:
        await emit(
            Failed(
                "Tugboat restarted and found the service on revision"
                f" {revision_of(snapshot.task_definition)},"
                f" which this {record.action} did not set. It was not re-run: check the service."
            )
        )
    else:
        await emit(
            Failed(f"Tugboat restarted before the service was changed (step: {record.phase}). {NOT_RERUN}")
        )


async def _follow_rollout(
    ops: Operations, record: OperationRecord, emit: Emit, deployment_id: str, task_definition: str
) -> None:
    ref = _ref(ops, record)
    _, env = ops.catalog.target(record.app, record.env)
    outcome = await wait_for_rollout(
        ops.watcher, ref, deployment_id, task_definition, _remaining(ops, record), emit
    )
    if record.action == "rollback":
        if outcome.ok:
            summary = f"Back on revision {revision_of(task_definition)}: {outcome.reason}."
            deps = ops.deploy_deps
            await schedules_action.succeed(
                ops.catalog, record.target, task_definition, summary, deps.ecs, deps.schedules, emit
            )
        else:
            await emit(Failed(f"The rollback did not complete: {outcome.reason}"))
        return
    previous = record.previous_task_definition or task_definition
    await deploy_action.finish(
        record.target, env, previous, deployment_id, task_definition, outcome, ops.deploy_deps, emit
    )


async def _follow_rollback(ops: Operations, record: OperationRecord, emit: Emit) -> None:
    """The deploy had failed and was going back; see the service settle, then report the failure."""
    ref = _ref(ops, record)
    snapshot = await ops.watcher.describe(ref)
    primary = snapshot.primary
    if primary is not None:
        await wait_for_rollout(
            ops.watcher, ref, primary.id, primary.task_definition, _remaining(ops, record), emit
        )
    revision = revision_of(primary.task_definition) if primary else "?"
    await emit(Failed(f"The deploy failed; the service went back to revision {revision}."))


async def _follow_task(ops: Operations, record: OperationRecord, emit: Emit, cancel: asyncio.Event) -> None:
    assert record.task_arn is not None
    try:
        plan = plan_to_follow(
            ops.catalog, record.target, record.subject, record.task_definition or "", record.actor
        )
    except KeyError:
        name = record.subject.split(" ", 1)[0]
        await emit(Failed(f"Task `{name}` is no longer in the catalog; stopped watching it."))
        return
    deadline = time.monotonic() + max(MIN_REMAINING_S, plan.spec.timeout - (time.time() - record.created_at))
    stopped = await wait_one_off(plan, record.task_arn, ops.ecs, emit, cancel, deadline)
    await execute_stopped(plan, stopped, emit)
