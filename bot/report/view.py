"""ThreadView: what a progress thread shows, folded from progress events.

The parent line tells the current state at a glance (what, where, who, state, elapsed);
detail lines go to thread replies. Both the Slack and the terminal renderer read this.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from bot.domain.catalog import who
from bot.domain.events import (
    Failed,
    ImageVerified,
    Note,
    ProgressEvent,
    RolledBack,
    RollingBack,
    RolloutProgress,
    ServiceUpdated,
    Started,
    StoppedTasks,
    Succeeded,
    TaskDefinitionRegistered,
    TaskStarted,
    TaskStopped,
    WaitingForImage,
)

STATE_EMOJI = {
    "running": ":hourglass_flowing_sand:",
    "succeeded": ":white_check_mark:",
    "failed": ":x:",
}
MAX_EVENT_LINES = 8


@dataclass(frozen=True)
class Detail:
    """One thread reply's worth of content: mrkdwn text and an optional code block."""

    text: str
    code: str | None = None


@dataclass
class ThreadView:
    action: str
    app: str
    env: str
    actor: str
    subject: str
    op_id: str = ""
    state: str = "running"
    phase: str = "starting"
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    revision: int | None = None
    previous_revision: int | None = None
    running: int | None = None
    desired: int | None = None
    pending: int | None = None
    outcome: str | None = None
    forced: bool = False
    service_changed: bool = False

    @property
    def finished(self) -> bool:
        return self.state != "running"

    def elapsed(self, now: float | None = None) -> str:
        seconds = int((self.ended_at or now or time.time()) - self.started_at)
        return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"

    def headline(self) -> str:
        verb = {"deploy": "Deploy", "rollback": "Rollback", "run-task": "Run task"}.get(
            self.action, self.action.title()
        )
        return f"{verb} {self.app} {self.env}: {self.subject}"

    def status_line(self, now: float | None = None) -> str:
        emoji = STATE_EMOJI.get(self.state, "")
        parts = [f"{emoji} *{self.state_word()}*", self.phase]
        if self.revision is not None and self.previous_revision is not None:
            parts.append(f"rev {self.previous_revision} → {self.revision}")
        if self.running is not None and self.desired is not None and not self.finished:
            parts.append(f"{self.running}/{self.desired} running")
        parts.append(f"by {who(self.actor)}")
        parts.append(self.elapsed(now))
        return " · ".join(p for p in parts if p)

    def state_word(self) -> str:
        return {"running": "In progress", "succeeded": "Succeeded", "failed": "Failed"}[self.state]

    def apply(self, event: ProgressEvent) -> list[Detail]:
        """Fold one event into the view; return the thread replies it calls for."""
        match event:
            case Started():
                self.phase = "checking"
                return []
            case WaitingForImage(image=image, timeout_s=timeout):
                self.phase = "waiting for image"
                return [Detail(f":hourglass: Waiting for image `{_short(image)}` (up to {timeout} s).")]
            case ImageVerified(image=image, previous_image=previous):
                self.phase = "image found"
                was = f" (running now: `{_short(previous)}`)" if previous else ""
                return [Detail(f"Image `{_short(image)}` is in ECR{was}.")]
            case TaskDefinitionRegistered(family=family, revision=rev, previous_revision=prev):
                self.revision, self.previous_revision = rev, prev
                self.phase = "registered"
                return [Detail(f"Registered task definition `{family}:{rev}` (from `{family}:{prev}`).")]
            case TaskStarted(name=name, task_arn=arn, revision=rev):
                self.phase = f"running task {name}"
                return [Detail(f"Started task `{name}` from revision {rev}: `{arn.rsplit('/', 1)[-1]}`.")]
            case TaskStopped():
                return [_task_stopped(event)]
            case ServiceUpdated(deployment_id=dep):
                self.service_changed = True
                self.revision, self.previous_revision = event.revision, event.previous_revision
                self.phase = "rolling out"
                return [Detail(f"Service updated to revision {event.revision}: deployment `{dep}`.")]
            case RolloutProgress():
                self.running, self.desired, self.pending = (
                    event.running,
                    event.desired,
                    event.pending,
                )
                if not event.new_events:
                    return []
                lines = [f"• {_event_text(m)}" for m in event.new_events[-MAX_EVENT_LINES:]]
                return [Detail("*ECS:*\n" + "\n".join(lines))]
            case StoppedTasks(reasons=reasons):
                if not reasons:
                    return []
                return [Detail("*Stopped tasks:*\n" + "\n".join(f"• {r}" for r in reasons))]
            case RollingBack(to_revision=rev, reason=reason, by_ecs=by_ecs):
                self.phase = f"rolling back to rev {rev}"
                who = "ECS is rolling back" if by_ecs else "Rolling back"
                return [Detail(f":rewind: {who} to revision {rev}: {reason}")]
            case RolledBack(to_revision=rev, completed=completed):
                self.phase = f"rolled back to rev {rev}" if completed else "rollback did not complete"
                if completed:
                    return [Detail(f"Service is back on revision {rev}.")]
                return [
                    Detail(f":warning: The rollback to revision {rev} did not complete. Check the service.")
                ]
            case Note(text=text, loud=loud):
                return [Detail(f":rotating_light: *{text}*" if loud else text)]
            case Succeeded(summary=summary):
                self.state, self.phase, self.outcome = "succeeded", "done", summary
                self.ended_at = time.time()
                return [Detail(f":white_check_mark: {summary}")]
            case Failed(reason=reason):
                self.state, self.outcome = "failed", reason
                if not self.phase.startswith("rolled back"):
                    self.phase = "stopped"
                self.ended_at = time.time()
                return [Detail(f":x: *Failed:* {reason}")]
        return []


def _short(image: str) -> str:
    return image.rsplit("/", 1)[-1]


def _event_text(message: str) -> str:
    return message if len(message) <= 300 else message[:299] + "…"


def _task_stopped(event: TaskStopped) -> Detail:
    codes = ", ".join(f"{name}={code}" for name, code in event.exit_codes.items()) or "none"
    head = ":white_check_mark:" if event.succeeded else ":x:"
    lines = [f"{head} Task `{event.name}` stopped: exit code {codes}"]
    if event.stop_code or event.reason:
        lines.append(f"{event.stop_code or ''} {event.reason or ''}".strip())
    if event.log_location:
        lines.append(f"Logs: `{event.log_location}`")
    code = "\n".join(event.log_tail) if event.log_tail else None
    return Detail("\n".join(lines), code)
