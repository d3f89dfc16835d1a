"""The one fold from progress events to an operation's state.

The record (what a resume needs) and the thread's view (what people see) both read the
state this fold leaves, so the two can never disagree about where an operation is.
"""

from __future__ import annotations

import time

from bot.domain import events
from bot.domain.records import OperationRecord, Phase


def fold(record: OperationRecord, event: events.ProgressEvent, *, now: float | None = None) -> bool:
    """Apply `event` to `record`; True when something a resume needs changed (save it then)."""
    match event:
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
    return str(record.phase)
