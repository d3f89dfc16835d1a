"""Resume: finish what a previous process (or a dead replica) started, in the same thread.

An operation that had already updated the service is watched to its true end. One that was
interrupted before `update_service` is marked failed and never silently re-run: production
is only touched by a command someone is around to see.
"""

from __future__ import annotations

import asyncio
import logging
import time

from bot.domain.aws import ServiceRef, ServiceSnapshot, revision_of
from bot.domain.events import Emit, Failed, Note, RolledBack, ServiceUpdated, Succeeded
from bot.domain.records import OperationRecord, Phase, ServiceProgress
from bot.lifecycle import Origin
from bot.operations import Front, Operations
from commands import deploy as deploy_action
from commands import schedules as schedules_action
from commands.rollout import (
    Change,
    fail_release,
    first_failure,
    follow,
    release_summary,
    roll_back,
    watch_all,
)
from commands.run_task import execute_stopped, plan_to_follow, wait_one_off
from commands.scale import wait_for_count
from commands.wait import RolloutOutcome, wait_for_rollout

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
        if record.services or record.action == "restart":
            await _follow_services(ops, record, emit)
        elif record.action in ("deploy", "rollback"):
            await _follow_service(ops, record, emit)
        elif record.action == "scale":
            await _follow_scale(ops, record, emit)
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
    if record.service_deployment is not None:  # blue/green: its pauses' replies are in the thread
        previous = record.previous_task_definition or task_definition
        change = Change(None, ref, previous, task_definition, deployment_id, None, record.service_deployment)
        shown = [gate.hook_id for gate in record.gates if gate.ts is not None and gate.awaiting]
        outcome = await follow(
            change,
            ops.ecs,
            ops.watcher,
            _remaining(ops, record),
            emit,
            announced=shown,
            roll_back_when_stopped=env.rollback_on_failure,
        )
    else:
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


async def _follow_scale(ops: Operations, record: OperationRecord, emit: Emit) -> None:
    """A scale whose count was set: watch until that many run. One interrupted before: not re-run."""
    service, desired = record.extra.get("service"), record.extra.get("desired")
    refs = {entry.name: ref for entry, ref in ops.catalog.release_refs(record.app, record.env)}
    if record.phase != Phase.SCALING or not isinstance(desired, int) or service not in refs:
        await emit(Failed(f"Tugboat restarted before the count was set (step: {record.phase}). {NOT_RERUN}"))
        return
    await wait_for_count(
        refs[str(service)], str(service), desired, _remaining(ops, record), ops.watcher, emit
    )


async def _follow_services(ops: Operations, record: OperationRecord, emit: Emit) -> None:
    """A release (or a restart) of several services, or a one-service restart, picked up again.

    ECS decides, not the recorded phase: each service's deployment is looked for on the service.
    A release that was going back goes on going back, service by service; one that was rolling
    out is watched to its end and judged as a whole, or put back as a whole. A service the
    release never reached means it cannot succeed: the ones it did change go back.
    """
    several = bool(record.services)
    entries = record.services or [
        ServiceProgress(
            ops.catalog.service_ref(record.app, record.env).service,
            record.previous_task_definition,
            record.task_definition,
            record.deployment_id,
            "rolling out",
        )
    ]
    refs = {entry.name: ref for entry, ref in ops.catalog.release_refs(record.app, record.env)}
    _, env = ops.catalog.target(record.app, record.env)
    missing = [entry.name for entry in entries if entry.name not in refs]
    if missing:
        await emit(Failed(f"{', '.join(missing)} left the catalog of {record.target}; stopped watching."))
        return
    snapshots = await ops.ecs.describe_services([refs[entry.name] for entry in entries])
    if record.phase in ROLLED_BACK_PHASES and record.action == "deploy":
        await _go_back(ops, record, entries, snapshots, emit)
        return
    changes: list[Change] = []
    settled: dict[str, RolloutOutcome] = {}
    unreached: list[str] = []
    for entry in entries:
        ref = refs[entry.name]
        snapshot = snapshots.get(ref.key)
        label = entry.name if several else None
        if entry.state == "succeeded":
            settled[entry.name] = RolloutOutcome(True, entry.reason or "succeeded before the restart")
        ours = None
        if snapshot is not None and entry.task_definition is not None:
            ours = snapshot.deployment(entry.deployment_id or "") or next(
                (d for d in snapshot.deployments if d.task_definition == entry.task_definition), None
            )
        if ours is None or entry.task_definition is None or entry.previous_task_definition is None:
            if entry.name not in settled:
                unreached.append(entry.name)
            continue
        if entry.deployment_id != ours.id:
            await emit(
                ServiceUpdated(ours.id, entry.task_definition, entry.previous_task_definition, service=label)
            )
        changes.append(
            Change(label, ref, entry.previous_task_definition, entry.task_definition, ours.id, snapshot)
        )
    if not changes and not settled:
        await emit(
            Failed(f"Tugboat restarted before any service was changed (step: {record.phase}). {NOT_RERUN}")
        )
        return
    watching = [c for c in changes if c.name not in settled]
    watched = await watch_all(watching, ops.ecs, ops.watcher, _remaining(ops, record), emit)
    outcomes = [settled.get(c.name) or watched[watching.index(c)] for c in changes]
    if unreached:
        were = "was" if len(unreached) == 1 else "were"
        why = f"Tugboat restarted before {', '.join(unreached)} {were} changed"
        if record.action == "deploy":
            await fail_release(env, changes, outcomes, ops.deploy_deps, emit, reason=f"{why}; {NOT_RERUN}")
        else:
            await emit(Failed(f"{why}. {NOT_RERUN}"))
        return
    ok = all(outcome.ok for outcome in outcomes)
    if record.action == "deploy":
        await deploy_action.finish_release(record.target, env, changes, outcomes, ops.deploy_deps, emit)
    elif ok and record.action == "rollback":
        deps = ops.deploy_deps
        summary = release_summary(changes, outcomes, "Release is back")
        first = changes[0].task_definition
        await schedules_action.succeed(
            ops.catalog, record.target, first, summary, deps.ecs, deps.schedules, emit
        )
    elif ok:
        revision = revision_of(changes[0].task_definition)
        summary = (
            release_summary(changes, outcomes, "Restarted")
            if several
            else f"Restarted on revision {revision}."
        )
        await emit(Succeeded(summary))
    else:
        change, outcome = first_failure(changes, outcomes)
        where = f"{change.label}: " if change.label else ""
        await emit(Failed(f"The {record.action} did not complete: {where}{outcome.reason}"))


async def _go_back(
    ops: Operations,
    record: OperationRecord,
    entries: list[ServiceProgress],
    snapshots: dict[str, ServiceSnapshot],
    emit: Emit,
) -> None:
    """A failed release was going back: every service it changed ends on its previous revision."""
    _, env = ops.catalog.target(record.app, record.env)
    refs = {entry.name: ref for entry, ref in ops.catalog.release_refs(record.app, record.env)}
    for entry in entries:
        if (
            entry.deployment_id is None
            or entry.previous_task_definition is None
            or entry.state == "rolled back"
        ):
            continue
        ref = refs[entry.name]
        snapshot = snapshots.get(ref.key)
        if snapshot is not None and snapshot.task_definition != entry.previous_task_definition:
            await roll_back(
                env,
                ref,
                entry.previous_task_definition,
                "the release failed",
                ops.deploy_deps,
                emit,
                service=entry.name,
            )
            continue
        primary = snapshot.primary if snapshot else None
        if primary is not None:
            after = await wait_for_rollout(
                ops.watcher,
                ref,
                primary.id,
                primary.task_definition,
                _remaining(ops, record),
                emit,
                service=entry.name,
            )
            await emit(
                RolledBack(revision_of(primary.task_definition), completed=after.ok, service=entry.name)
            )
    await emit(
        Failed(record.reason or "The release failed; its services went back to their previous revisions.")
    )
