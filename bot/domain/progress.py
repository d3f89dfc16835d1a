"""The one fold from progress events to an operation's state.

The record (what a resume needs) and the thread's view (what people see) both read the
state this fold leaves, so the two can never disagree about where an operation is.
"""

from __future__ import annotations

import time

from bot.domain import events
from bot.domain.records import GateEntry, OperationRecord, Phase, ServiceProgress

LABELLED = (
    events.TaskDefinitionRegistered,
    events.ServiceUpdated,
    events.RolloutProgress,
    events.RollingBack,
    events.RolledBack,
)


def fold(record: OperationRecord, event: events.ProgressEvent, *, now: float | None = None) -> bool:
    """Apply `event` to `record`; True when something a resume needs changed (save it then)."""
    if isinstance(event, LABELLED) and event.service is not None:
        entry = record.service(event.service)
        if entry is not None:
            return _fold_service(record, entry, event)
    match event:
        case events.ReleasePlanned(services=planned):
            record.services = [ServiceProgress(name, previous_task_definition=arn) for name, arn in planned]
            if planned:
                record.previous_task_definition = record.previous_task_definition or planned[0][1]
            return True
        case events.ServiceSettled(service=name, ok=ok, reason=reason):
            settled = record.service(name)
            if settled is not None:
                settled.state, settled.reason = ("succeeded" if ok else "failed"), reason
            return True
        case events.ScaleRequested(desired=desired):
            record.phase, record.desired = Phase.SCALING, desired
            return True
        case events.Started():
            record.phase = Phase.CHECKING
        case events.WaitingForImage():
            record.phase = Phase.WAITING_FOR_IMAGE
        case events.ImageVerified():
            record.phase = Phase.IMAGE_FOUND
        case events.TaskDefinitionRegistered(arn=arn):
            record.task_definition, record.phase = arn, Phase.REGISTERED
            return True
        case events.TaskStarted(name=name, task_arn=arn):
            record.task_arn, record.task_name, record.phase = arn, name, Phase.RUNNING_TASK
            return True
        case events.ServiceUpdated(
            deployment_id=deployment, task_definition=arn, previous_task_definition=prev
        ):
            record.deployment_id, record.task_definition = deployment, arn
            record.previous_task_definition = record.previous_task_definition or prev
            record.service_deployment = event.service_deployment or record.service_deployment
            record.phase = Phase.ROLLING_OUT
            return True
        case events.StageReached(stage=stage):
            record.stage = stage
        case events.GatePaused():
            gate = record.gate(event.hook_id)
            if gate is None:
                gate = GateEntry(event.hook_id, event.service_deployment, event.stage, event.traffic)
                record.gates.append(gate)
            gate.expires_at, gate.timeout_action = event.expires_at, event.timeout_action
            gate.state, gate.service, record.stage = "awaiting", event.service, event.stage
            record.phase = Phase.PAUSED
            return True
        case events.GateAnswered(hook_id=hook_id, outcome=outcome):
            answered = record.gate(hook_id)
            if answered is not None:
                answered.state = outcome
            if record.phase == Phase.PAUSED and not any(g.awaiting for g in record.gates):
                record.phase = Phase.ROLLING_OUT
            return True
        case events.RolloutProgress(running=running, desired=desired, pending=pending):
            record.running, record.desired, record.pending = running, desired, pending
        case events.RollingBack(to_revision=revision):
            record.rollback_to, record.phase = revision, Phase.ROLLING_BACK
            return True
        case events.RolledBack(to_revision=revision, completed=completed):
            record.rollback_to = revision
            record.phase = Phase.ROLLED_BACK if completed else Phase.ROLLBACK_INCOMPLETE
            return True
        case events.MovingSchedules():
            record.phase = Phase.MOVING_SCHEDULES
            return True
        case events.Succeeded(summary=summary, warnings=warnings):
            record.state, record.phase, record.reason = "succeeded", Phase.DONE, summary
            record.warnings = list(warnings)
            record.ended_at = time.time() if now is None else now
            return True
        case events.Failed(reason=reason):
            record.state, record.reason = "failed", reason
            if record.phase != Phase.ROLLED_BACK:
                record.phase = Phase.STOPPED
            record.ended_at = time.time() if now is None else now
            return True
    return False


def phase_text(record: OperationRecord) -> str:
    """The phase as the parent line says it: `running task migrate`, `rolled back to rev 3`."""
    match record.phase:
        case Phase.RUNNING_TASK if record.task_name:
            return f"running task {record.task_name}"
        case Phase.ROLLING_BACK if record.rollback_to is not None:
            return f"rolling back to rev {record.rollback_to}"
        case Phase.ROLLED_BACK if record.rollback_to is not None:
            return f"rolled back to rev {record.rollback_to}"
        case Phase.SCALING if record.desired is not None:
            return f"scaling to {record.desired}"
        case Phase.PAUSED if record.stage:
            return f"paused at {record.stage}"
        case Phase.ROLLING_OUT if record.stage:
            return f"rolling out: {record.stage}"
    return str(record.phase)


def _fold_service(record: OperationRecord, entry: ServiceProgress, event: events.ProgressEvent) -> bool:
    """An event about one service of several: its entry moves; the record's phase follows.

    The first service stands for the release in the record's own fields (history's `rev a→b`,
    the schedules, which follow the app's image); `deployment_id` is set once any service changed.
    """
    first = record.services[0] is entry
    match event:
        case events.TaskDefinitionRegistered(arn=arn):
            entry.task_definition, entry.state, record.phase = arn, "registered", Phase.REGISTERED
            if first:
                record.task_definition = arn
        case events.ServiceUpdated(
            deployment_id=deployment, task_definition=arn, previous_task_definition=prev
        ):
            entry.deployment_id, entry.task_definition, entry.state = deployment, arn, "rolling out"
            entry.service_deployment = event.service_deployment or entry.service_deployment
            entry.previous_task_definition = entry.previous_task_definition or prev
            record.deployment_id = record.deployment_id or deployment
            if first:
                record.task_definition = arn
                record.previous_task_definition = record.previous_task_definition or prev
            record.phase = Phase.ROLLING_OUT
        case events.RolloutProgress(running=running, desired=desired):
            entry.running, entry.desired = running, desired
            return False
        case events.RollingBack(to_revision=revision):
            entry.state, entry.rollback_to, record.phase = "rolling back", revision, Phase.ROLLING_BACK
        case events.RolledBack(to_revision=revision, completed=completed):
            entry.rollback_to = revision
            entry.state = "rolled back" if completed else "rollback incomplete"
            states = {e.state for e in record.services}
            if "rolling back" not in states:
                incomplete = "rollback incomplete" in states
                record.phase = Phase.ROLLBACK_INCOMPLETE if incomplete else Phase.ROLLED_BACK
    return True
