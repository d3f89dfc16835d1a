"""ThreadView: what a progress thread shows, read from the operation's record.

The record holds the state: `bot.domain.progress.fold` folds each event into it before any
renderer sees the event. The view only reads it: the parent line tells the current state at a
glance (what, where, who, state, elapsed), and each event becomes the detail lines of a thread
reply. Lines are `Text`, so each renderer (Slack, the terminal) writes them its own way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bot.domain import events, progress
from bot.domain.aws import family_of, revision_of
from bot.domain.gates import ROLLBACK, stage_words
from bot.domain.progress import phase_text
from bot.domain.records import GateEntry, OperationRecord, Phase, ServiceProgress
from bot.domain.text import Text, bold, code, date, emoji, join, mention, text

STATE_EMOJI = {
    "running": "hourglass_flowing_sand",
    "succeeded": "white_check_mark",
    "failed": "x",
}
"""An operation's state as an emoji name (`text.emoji`)."""
STATE_WORDS = {"running": "In progress", "succeeded": "Succeeded", "failed": "Failed"}
VERBS = {
    "deploy": "Deploy",
    "rollback": "Rollback",
    "run-task": "Run task",
    "scale": "Scale",
    "restart": "Restart",
}
SERVICE_EMOJI = {
    "waiting": "white_circle",
    "registered": "white_circle",
    "rolling out": "hourglass_flowing_sand",
    "succeeded": "white_check_mark",
    "failed": "x",
    "rolling back": "rewind",
    "rolled back": "leftwards_arrow_with_hook",
    "rollback incomplete": "warning",
}
"""One service's state in a release, at a glance on the parent (`api ✅ 2/2`)."""
MAX_EVENT_LINES = 8
LABELLED = (*progress.LABELLED, events.StoppedTasks, events.StageReached)
"""Events that may be about one service of several: their lines then start with its name."""


@dataclass(frozen=True)
class Detail:
    """One thread reply's worth of content: rich text and an optional code block (a log tail)."""

    text: Text
    code: str | None = None


def words(value: Text | str) -> Text:
    """An event's words: a `Text` as built, a string as plain words (escaped in Slack)."""
    return value if isinstance(value, Text) else text(value)


class ThreadView:
    """The parent line and the thread replies of one operation, from its (already folded) record."""

    def __init__(self, record: OperationRecord) -> None:
        self.record = record

    @property
    def finished(self) -> bool:
        return self.record.finished

    def elapsed(self, now: float | None = None) -> str:
        record = self.record
        seconds = int((record.ended_at or now or time.time()) - record.created_at)
        return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"

    def headline(self) -> Text:
        """`Deploy api staging: v2`; the subject is the requester's words."""
        record = self.record
        verb = VERBS.get(record.action, record.action.title())
        return text(f"{verb} {record.app} {record.env}: ", record.subject)

    def state_word(self) -> str:
        state = self.record.state
        if state == "succeeded" and self.record.warnings:
            return "Succeeded with warnings"
        return STATE_WORDS.get(state, state.title())

    def revisions(self) -> tuple[int, int] | None:
        """(from, to) once the operation has a new task definition and knows the one before."""
        record = self.record
        if record.task_definition is None or record.previous_task_definition is None:
            return None
        return revision_of(record.previous_task_definition), revision_of(record.task_definition)

    def status_line(self, now: float | None = None) -> Text:
        """`⏳ *In progress* · rolling out · rev 1 → 2 · 1/2 running · by @someone · 42s`."""
        record = self.record
        state = (
            "warning" if record.warnings and record.state == "succeeded" else STATE_EMOJI.get(record.state)
        )
        parts: list[Text] = [
            text(emoji(state) if state else "", " ", bold(self.state_word())),
            text(phase_text(record)),
        ]
        if record.phase == Phase.PAUSED and not self.finished:
            parts[1] = paused_glance(record)
        if record.services:
            parts.extend(_glance(entry) for entry in record.services)
        else:
            revisions = self.revisions()
            if revisions is not None and record.action != "restart":
                parts.append(text(f"rev {revisions[0]} → {revisions[1]}"))
            if record.running is not None and record.desired is not None and not self.finished:
                parts.append(text(f"{record.running}/{record.desired} running"))
        parts.append(text("by ", mention(record.actor)))
        parts.append(text(self.elapsed(now)))
        return join((p for p in parts if p), " · ")

    @property
    def outcome(self) -> Text | None:
        """How it ended (the final event's words), once it has."""
        reason = self.record.reason
        return text(reason) if reason and self.finished else None

    @property
    def service_changed(self) -> bool:
        """ECS accepted an update_service: from here on, a Rollback button makes sense."""
        return self.record.deployment_id is not None

    def details(self, event: events.ProgressEvent) -> list[Detail]:
        """The thread replies `event` calls for. The record is already folded; nothing changes here.

        In an operation over several services, each line about one service starts with its name.
        """
        found = self._details(event)
        if not isinstance(event, LABELLED) or event.service is None:
            return found
        return [Detail(text(bold(event.service), ": ", detail.text), detail.code) for detail in found]

    def _details(self, event: events.ProgressEvent) -> list[Detail]:
        match event:
            case events.WaitingForImage(image=image, timeout_s=timeout):
                return [
                    Detail(
                        text(
                            emoji("hourglass"),
                            " Waiting for image ",
                            code(_short(image)),
                            f" (up to {timeout} s).",
                        )
                    )
                ]
            case events.ImageVerified(image=image, previous_image=previous):
                was = text(" (running now: ", code(_short(previous)), ")") if previous else text()
                return [Detail(text("Image ", code(_short(image)), " is in ECR", was, "."))]
            case events.TaskDefinitionRegistered(family=family, revision=rev, previous_revision=prev):
                return [
                    Detail(
                        text(
                            "Registered task definition ",
                            code(f"{family}:{rev}"),
                            " (from ",
                            code(f"{family}:{prev}"),
                            ").",
                        )
                    )
                ]
            case events.TaskStarted(name=name, task_arn=arn, revision=rev):
                task_id = arn.rsplit("/", 1)[-1]
                return [
                    Detail(text("Started task ", code(name), f" from revision {rev}: ", code(task_id), "."))
                ]
            case events.TaskStopped():
                return [_task_stopped(event)]
            case events.ServiceUpdated(deployment_id=deployment) if self.record.action == "restart":
                return [
                    Detail(
                        text(
                            f"New deployment of revision {event.revision}: deployment ",
                            code(deployment),
                            ".",
                        )
                    )
                ]
            case events.ServiceUpdated(deployment_id=deployment):
                return [
                    Detail(
                        text(
                            f"Service updated to revision {event.revision}: deployment ",
                            code(deployment),
                            ".",
                        )
                    )
                ]
            case events.StageReached(stage=stage, traffic=traffic, bake_left_s=bake):
                baking = text(f" · {bake // 60} min of bake time") if bake else text()
                return [
                    Detail(
                        text(
                            emoji("fast_forward"),
                            " ",
                            code(stage),
                            f": {stage_words(stage)} ({traffic})",
                            baking,
                            ".",
                        )
                    )
                ]
            case events.GatePaused(hook_id=hook_id):
                gate = self.record.gate(hook_id)
                return [Detail(gate_line(gate))] if gate is not None else []
            case events.GateAnswered(hook_id=hook_id, outcome=outcome):
                gate = self.record.gate(hook_id)
                where = text(" at ", code(gate.stage)) if gate is not None else text()
                return [Detail(text(emoji("arrow_forward"), " The pause", where, f" ended: {outcome}."))]
            case events.RolloutProgress(new_events=messages):
                if not messages:
                    return []
                lines = (text("• ", _event_text(m)) for m in messages[-MAX_EVENT_LINES:])
                return [Detail(text(bold("ECS:"), "\n", join(lines, "\n")))]
            case events.StoppedTasks(reasons=reasons):
                if not reasons:
                    return []
                lines = (text("• ", r) for r in reasons)
                return [Detail(text(bold("Stopped tasks:"), "\n", join(lines, "\n")))]
            case events.RollingBack(to_revision=rev, reason=reason, by_ecs=by_ecs):
                who = "ECS is rolling back" if by_ecs else "Rolling back"
                return [Detail(text(emoji("rewind"), f" {who} to revision {rev}: ", words(reason)))]
            case events.RolledBack(to_revision=rev, completed=completed):
                if completed:
                    return [Detail(text(f"Service is back on revision {rev}."))]
                return [
                    Detail(
                        text(
                            emoji("warning"),
                            f" The rollback to revision {rev} did not complete. Check the service.",
                        )
                    )
                ]
            case events.ReleasePlanned(services=planned):
                listed = join((text(code(name), f" (rev {revision_of(arn)})") for name, arn in planned), ", ")
                return [Detail(text(f"{len(planned)} services, as one operation: ", listed, "."))]
            case events.ServiceSettled(service=name, ok=True, reason=reason):
                return [Detail(text(emoji("white_check_mark"), " ", bold(name), ": ", reason, "."))]
            case events.ServiceSettled(service=name, ok=False, reason=reason):
                return [Detail(text(emoji("x"), " ", bold(name), ": ", reason))]
            case events.ScaleRequested(service=name, previous=previous, desired=desired):
                return [Detail(text("Desired count of ", code(name), f": {previous} → {desired}."))]
            case events.Note(text=note, loud=loud):
                return [
                    Detail(text(emoji("rotating_light"), " ", bold(words(note))) if loud else words(note))
                ]
            case events.MovingSchedules(task_definition=arn, count=count):
                plural = "s" if count != 1 else ""
                return [Detail(text(f"Moving {count} schedule{plural} to revision {revision_of(arn)}."))]
            case events.ScheduleMoved(name=name, previous_task_definition=before, task_definition=after):
                return [Detail(_schedule_moved(name, before, after))]
            case events.ScheduleNotMoved(name=name, reason=reason):
                return [Detail(text(emoji("warning"), " Schedule ", code(name), " was not moved: ", reason))]
            case events.Succeeded(summary=summary, warnings=warnings) if warnings:
                lines = (text("• ", w) for w in warnings)
                head = text(emoji("warning"), " ", bold("Succeeded with warnings:"), " ", words(summary))
                return [Detail(text(head, "\n", join(lines, "\n")))]
            case events.Succeeded(summary=summary):
                return [Detail(text(emoji("white_check_mark"), " ", words(summary)))]
            case events.Failed(reason=reason):
                return [Detail(text(emoji("x"), " ", bold("Failed:"), " ", words(reason)))]
        return []


def _schedule_moved(name: str, before: str, after: str) -> Text:
    """`Schedule nightly-report: api-production:41 → :42` (the family once, when it stays)."""
    old, new = before.rsplit("/", 1)[-1], after.rsplit("/", 1)[-1]
    if old == new:
        return text("Schedule ", code(name), ": already on ", code(new), ".")
    if family_of(old) == family_of(new):
        new = f":{revision_of(new)}"
    return text("Schedule ", code(name), ": ", code(old), " → ", code(new))


def _short(image: str) -> str:
    return image.rsplit("/", 1)[-1]


def _event_text(message: str) -> str:
    return message if len(message) <= 300 else message[:299] + "…"


def _task_stopped(event: events.TaskStopped) -> Detail:
    codes = ", ".join(f"{name}={value}" for name, value in event.exit_codes.items()) or "none"
    head = emoji("white_check_mark" if event.succeeded else "x")
    lines = [text(head, " Task ", code(event.name), f" stopped: exit code {codes}")]
    if event.stop_code or event.reason:
        lines.append(text(f"{event.stop_code or ''} {event.reason or ''}".strip()))
    if event.log_location:
        lines.append(text("Logs: ", code(event.log_location)))
    log_tail = "\n".join(event.log_tail) if event.log_tail else None
    return Detail(join(lines, "\n"), log_tail)


def gate_line(gate: GateEntry) -> Text:
    """`⏸ Paused at POST_TEST_TRAFFIC_SHIFT: test traffic is on the new revision (…). Expires
    12:40; then ECS rolls back.` What a pause's reply says above its buttons."""
    who = text(bold(gate.service), ": ") if gate.service else text()
    head = text(who, emoji("double_vertical_bar"), " ", bold("Paused at "), code(gate.stage))
    lines = [text(head, f": {stage_words(gate.stage)} ({gate.traffic}).")]
    if gate.expires_at is not None:
        then = "rolls back" if gate.timeout_action == ROLLBACK else "continues"
        lines.append(text("Expires ", date(gate.expires_at), f"; then ECS {then} by itself."))
    return join(lines, "\n")


def paused_glance(record: OperationRecord) -> Text:
    """`⏸ paused at POST_TEST_TRAFFIC_SHIFT · expires 12:40`: the parent line while a pause waits."""
    waiting = next((g for g in record.gates if g.awaiting), None)
    if waiting is None:
        return text(phase_text(record))
    expiry = text(" · expires ", date(waiting.expires_at)) if waiting.expires_at else text()
    return text(emoji("double_vertical_bar"), f" paused at {waiting.stage}", expiry)


def _glance(entry: ServiceProgress) -> Text:
    """`api ✅ 2/2`, `api-worker ⏳ 1/3`, `api ↩ rev 3`: one service of a release on the parent."""
    mark = emoji(SERVICE_EMOJI.get(entry.state, "white_circle"))
    if entry.state in ("rolled back", "rollback incomplete") and entry.rollback_to is not None:
        return text(entry.name, " ", mark, f" rev {entry.rollback_to}")
    if entry.running is not None and entry.desired is not None:
        return text(entry.name, " ", mark, f" {entry.running}/{entry.desired}")
    return text(entry.name, " ", mark)
