"""A service's status as `Text` lines: the card of one environment, the overview's one line each.

Short lines that read well on a phone. Slack writes them with `text.mrkdwn` into blocks, the
terminal with `text.plain`; neither parses the other's output.
"""

from __future__ import annotations

import time

from bot.domain.aws import revision_of
from bot.domain.freezes import when
from bot.domain.gates import ROLLBACK, ServiceDeploymentState, traffic_words
from bot.domain.records import OperationRecord
from bot.domain.text import Text, bold, code, date, emoji, join, link, mention, text
from bot.report.view import STATE_EMOJI as RESULT_EMOJI
from commands.status import MemberStatus, ScheduleStatus, ServiceStatus

STATE_EMOJI = {
    "steady": "large_green_circle",
    "deploying": "large_blue_circle",
    "degraded": "large_orange_circle",
    "failed": "red_circle",
    "missing": "black_circle",
}
"""A service's state as an emoji name (`text.emoji`)."""
MAX_EVENTS = 5


def card_lines(status: ServiceStatus, now: float | None = None) -> list[Text]:
    """One service, at most ~15 short lines."""
    lines = [text(emoji(STATE_EMOJI[status.state]), " ", bold(str(status.target)), f" — {status.state}")]
    snap = status.snapshot
    if snap is None:
        lines.append(text(emoji("warning"), " ", str(status.problem)))
    else:
        tag = text(" · ", code(status.image_tag)) if status.image_tag else text()
        counts = f"{snap.running}/{snap.desired} running · {snap.pending} pending · rev {status.revision}"
        lines.append(text(_member_head(status.members[0]) if status.members else "", counts, tag))
        for dep in snap.deployments:
            rollout = f" {dep.rollout_state}" if dep.rollout_state else ""
            revision = revision_of(dep.task_definition)
            lines.append(text(f"• {dep.status}{rollout}: rev {revision} {dep.running}/{dep.desired}"))
        if status.deployment is not None:
            lines.append(deployment_line(status.deployment))
        for member in status.members[1:]:
            lines.extend(member_lines(member))
        events = [e.message for e in snap.events[:MAX_EVENTS]]
        if events:
            lines.append(bold("Recent events:"))
            lines.extend(text("  • ", _short(m, 110)) for m in events)
        if status.stopped:
            lines.append(bold("Stopped in the last hour:"))
            lines.extend(text("  • ", _short(r, 110)) for r in status.stopped)
    if status.schedules:
        lines.append(bold("Schedules:"))
        lines.extend(text("  • ", schedule_line(schedule)) for schedule in status.schedules)
    if status.lock is not None:
        lock = status.lock
        lines.append(text(emoji("lock"), " locked by ", mention(lock.holder), ": ", _short(lock.reason, 80)))
    if status.freeze is not None:
        lines.append(text(frozen_until(status), ": ", _short(status.freeze.reason, 80)))
    if status.last is not None:
        lines.append(text("Last: ", last_deploy(status.last, now)))
    return lines


def deployment_line(state: ServiceDeploymentState) -> Text:
    """`Canary: PRODUCTION_TRAFFIC_SHIFT (production 10%) · ⏸ paused, expires 12:40, then rolls back`."""
    strategy = state.strategy.replace("_", "/").lower().capitalize()
    line = text(f"{strategy}: ", code(state.stage or state.status), f" ({traffic_words(state)})")
    hook = state.awaiting
    if hook is not None:
        then = "rolls back" if hook.timeout_action == ROLLBACK else "continues"
        expiry = (
            text(", expires ", date(hook.expires_at), f", then ECS {then}") if hook.expires_at else text()
        )
        line = text(line, " · ", emoji("double_vertical_bar"), " paused", expiry)
    return line


def member_lines(member: MemberStatus) -> list[Text]:
    """Another service of a release on the card: its counts and revision, and its deployments
    while there is more than one."""
    head = _member_head(member)
    snap = member.snapshot
    if snap is None:
        return [text(head, emoji("warning"), f" service {member.name} not found")]
    revision = revision_of(snap.task_definition)
    lines = [text(head, f"{snap.running}/{snap.desired} running · {snap.pending} pending · rev {revision}")]
    if len(snap.deployments) > 1:
        for dep in snap.deployments:
            rollout = f" {dep.rollout_state}" if dep.rollout_state else ""
            revision = revision_of(dep.task_definition)
            lines.append(text(f"• {dep.status}{rollout}: rev {revision} {dep.running}/{dep.desired}"))
    return lines


def _member_head(member: MemberStatus) -> Text:
    """`*api-worker* 🟢 `: a service of a release, named, with its own state."""
    return text(bold(member.name), " ", emoji(STATE_EMOJI[member.state]), " ")


def schedule_line(schedule: ScheduleStatus) -> Text:
    """`nightly-report` · cron(0 3 * * ? *) Europe/Berlin · next … · api-production:42, ⚠ on drift."""
    if schedule.problem is not None:
        return text(emoji("warning"), " ", code(schedule.name), " · ", _short(schedule.problem, 100))
    when = text(code(schedule.expression), f" {schedule.timezone}" if schedule.timezone else "")
    parts = [text(code(schedule.name)), when]
    if not schedule.enabled:
        parts.append(text("disabled"))
    elif schedule.next_run is not None:
        parts.append(text("next ", date(schedule.next_run.timestamp())))
    parts.append(text(schedule.task_definition or "?"))
    line = join(parts, " · ")
    if schedule.drift is not None:
        return text(emoji("warning"), " ", line, " · ", schedule.drift)
    return line


def overview_line(status: ServiceStatus, now: float | None = None) -> Text:
    """`🟢 *api staging* 🔒 · 2/2 · rev 3 · last deploy `v3` by @dev 5m ago ✅ thread`."""
    snap = status.snapshot
    counts = f"{snap.running}/{snap.desired} · rev {status.revision}" if snap else str(status.problem)
    if status.members:
        found = [m.snapshot for m in status.members if m.snapshot is not None]
        running, desired = sum(s.running for s in found), sum(s.desired for s in found)
        counts = f"{running}/{desired} · {len(status.members)} services"
    lock = text(" ", emoji("lock")) if status.lock else text()
    last = text(" · last ", last_deploy(status.last, now)) if status.last else text()
    frozen = text(" · ", frozen_until(status)) if status.freeze else text()
    return text(
        emoji(STATE_EMOJI[status.state]), " ", bold(str(status.target)), lock, f" · {counts}", frozen, last
    )


def frozen_until(status: ServiceStatus) -> Text:
    """`❄ frozen until Mon 5 Jan 2027 09:00 Europe/Berlin`, in the environment's timezone."""
    ends = status.freeze.ends if status.freeze else None
    return text(emoji("snowflake"), f" frozen until {when(ends, status.timezone)}")


def last_deploy(record: OperationRecord, now: float | None = None) -> Text:
    """`deploy `v3` by @dev 5m ago ✅` and a link to its thread."""
    state = RESULT_EMOJI.get(record.state)
    ago = _ago((now or time.time()) - record.created_at)
    return text(action_by(record), f" {ago} ago ", emoji(state) if state else text(), thread_link(record))


def action_by(record: OperationRecord) -> Text:
    """`deploy `v3` by @dev`: what was done, and who asked."""
    return text(f"{record.action} ", code(record.subject), " by ", mention(record.actor))


def thread_link(record: OperationRecord) -> Text:
    """` thread`, linked to the operation's thread; nothing when it has none."""
    return text(" ", link(record.permalink, "thread")) if record.permalink else text()


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 5400:
        return f"{seconds // 60}m"
    if seconds < 172_800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86_400}d"


def _short(line: str, limit: int) -> str:
    line = line.replace("\n", " ")
    return line if len(line) <= limit else line[: limit - 1] + "…"
