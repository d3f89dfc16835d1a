"""Resume: finish what a previous process (or a dead replica) started, in the same thread.

An operation that had already updated the service is watched to its true end. One that was
interrupted before `update_service` is marked failed and never silently re-run: production
is only touched by a command someone is around to see.
"""

from __future__ import annotations

import logging
import time

from bot.domain.aws import ServiceRef, revision_of
from bot.domain.events import Emit, Failed, Note, Succeeded
from bot.domain.records import OperationRecord, Target
from bot.operations import OperationRunner, view_of
from bot.slack.thread import ThreadReporter
from commands import deploy as deploy_action
from commands.run_task import TaskPlan, execute_stopped, wait_one_off
from commands.wait import wait_for_rollout

log = logging.getLogger(__name__)

MIN_REMAINING_S = 60.0


async def resume_unfinished(runner: OperationRunner) -> int:
    """Adopt every unfinished operation whose owner is gone (or is us), and carry it on."""
    adopted = 0
    for record in await runner.store.unfinished():
        if runner.is_running(record.id):
            continue
        if not await runner.store.adopt(record, runner.owner, runner.lease_s):
            continue
        adopted += 1
        log.info(
            "resuming operation", extra={"op": record.id, "action": record.action, "phase": record.phase}
        )
        runner.tracker.spawn(_resume(runner, record), f"resume-{record.id}")
    return adopted


async def _resume(runner: OperationRunner, record: OperationRecord) -> None:
    if record.channel is None or record.ts is None:
        record.state, record.reason, record.ended_at = (
            "failed",
            "interrupted before its thread existed",
            time.time(),
        )
        await runner.store.save(record)
        await runner.store.release_target(record)
        return
    view = view_of(record)
    if record.task_definition and record.previous_task_definition:
        view.revision = revision_of(record.task_definition)
        view.previous_revision = revision_of(record.previous_task_definition)
    reporter = ThreadReporter(
        runner.slack, record.channel, view, ts=record.ts, min_interval_s=runner.thread_interval_s
    )
    await reporter.open()
    emit = runner.emitter(record, reporter)

    async def body() -> None:
        await emit(Note("Tugboat restarted and picked this up again."))
        if not runner.catalog.has(record.app, record.env):
            await emit(Failed(f"{record.app} {record.env} is no longer in the catalog; stopped watching."))
            return
        if record.action in ("deploy", "rollback") and record.deployment_id and record.phase == "updated":
            await _follow_rollout(runner, record, emit)
        elif record.action in ("deploy", "rollback") and record.phase == "rolling back":
            await _follow_rollback(runner, record, emit)
        elif record.action == "run-task" and record.task_arn:
            await _follow_task(runner, record, emit)
        else:
            await emit(
                Failed(
                    f"Tugboat restarted before the service was changed (step: {record.phase}). "
                    "Nothing was changed, and it was not re-run: run the command again."
                )
            )

    await runner.run(record, reporter, body)


def _ref(runner: OperationRunner, record: OperationRecord) -> ServiceRef:
    return runner.catalog.service_ref(record.app, record.env)


def _remaining(runner: OperationRunner, record: OperationRecord) -> float:
    _, env = runner.catalog.target(record.app, record.env)
    return max(MIN_REMAINING_S, env.timeout - (time.time() - record.created_at))


async def _follow_rollout(runner: OperationRunner, record: OperationRecord, emit: Emit) -> None:
    assert record.deployment_id is not None and record.task_definition is not None
    ref = _ref(runner, record)
    _, env = runner.catalog.target(record.app, record.env)
    outcome = await wait_for_rollout(
        runner.watcher, ref, record.deployment_id, record.task_definition, _remaining(runner, record), emit
    )
    if record.action == "rollback":
        if outcome.ok:
            await emit(
                Succeeded(f"Back on revision {revision_of(record.task_definition)}: {outcome.reason}.")
            )
        else:
            await emit(Failed(f"The rollback did not complete: {outcome.reason}"))
        return
    previous = record.previous_task_definition or record.task_definition
    await deploy_action.finish(
        env, previous, record.deployment_id, record.task_definition, outcome, runner.deploy_deps, emit
    )


async def _follow_rollback(runner: OperationRunner, record: OperationRecord, emit: Emit) -> None:
    """The deploy had failed and was going back; see the service settle, then report the failure."""
    ref = _ref(runner, record)
    snapshot = await runner.ecs.describe_service(ref)
    primary = snapshot.primary
    if primary is not None:
        await wait_for_rollout(
            runner.watcher, ref, primary.id, primary.task_definition, _remaining(runner, record), emit
        )
    revision = revision_of(primary.task_definition) if primary else "?"
    await emit(Failed(f"The deploy failed; the service went back to revision {revision}."))


async def _follow_task(runner: OperationRunner, record: OperationRecord, emit: Emit) -> None:
    assert record.task_arn is not None
    app, _ = runner.catalog.target(record.app, record.env)
    name = record.subject.split(" ", 1)[0]
    if name not in app.tasks:
        await emit(Failed(f"Task `{name}` is no longer in the catalog; stopped watching it."))
        return
    plan = TaskPlan(
        target=Target(record.app, record.env),
        service=_ref(runner, record),
        name=name,
        spec=app.tasks[name],
        command=tuple(record.subject.split(" ")),
        container=app.container,
        task_definition=record.task_definition or "",
        placement={},
        actor=record.actor,
    )
    deadline = time.monotonic() + max(MIN_REMAINING_S, plan.spec.timeout - (time.time() - record.created_at))
    stopped = await wait_one_off(
        plan, record.task_arn, runner.ecs, emit, runner.cancel_event(record), deadline
    )
    await execute_stopped(plan, stopped, emit)
