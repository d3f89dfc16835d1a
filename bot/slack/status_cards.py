"""Status cards, the overview and the Home tab: short lines that read well on a phone."""

from __future__ import annotations

import time
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.domain.aws import revision_of
from bot.domain.catalog import who
from bot.domain.records import OperationRecord
from bot.report.view import STATE_EMOJI as RESULT_EMOJI
from bot.slack.blocks import MAX_BLOCKS, SECTION_LIMIT
from commands.status import ServiceStatus

STATE_EMOJI = {
    "steady": ":large_green_circle:",
    "deploying": ":large_blue_circle:",
    "degraded": ":large_orange_circle:",
    "failed": ":red_circle:",
    "missing": ":black_circle:",
}
REFRESH_ACTION = "tugboat_status_refresh"
MAX_EVENTS = 5


def card_blocks(status: ServiceStatus, now: float | None = None) -> list[dict[str, Any]]:
    """One service, at most ~15 short lines, with a Refresh button."""
    lines = [f"{STATE_EMOJI[status.state]} *{status.target}* — {status.state}"]
    snap = status.snapshot
    if snap is None:
        lines.append(f":warning: {status.problem}")
    else:
        tag = f" · `{status.image_tag}`" if status.image_tag else ""
        lines.append(
            f"{snap.running}/{snap.desired} running · {snap.pending} pending · rev {status.revision}{tag}"
        )
        for dep in snap.deployments:
            rollout = f" {dep.rollout_state}" if dep.rollout_state else ""
            revision = revision_of(dep.task_definition)
            lines.append(f"• {dep.status}{rollout}: rev {revision} {dep.running}/{dep.desired}")
        events = [e.message for e in snap.events[:MAX_EVENTS]]
        if events:
            lines.append("*Recent events:*")
            lines.extend(f"  • {_short(m, 110)}" for m in events)
        if status.stopped:
            lines.append("*Stopped in the last hour:*")
            lines.extend(f"  • {_short(r, 110)}" for r in status.stopped)
    if status.lock is not None:
        lines.append(f":lock: locked by <@{status.lock.holder}>: {_short(status.lock.reason, 80)}")
    if status.last is not None:
        lines.append("Last: " + last_deploy(status.last, now))
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text="\n".join(lines))),
        ActionsBlock(
            elements=[
                ButtonElement(
                    text="Refresh",
                    action_id=REFRESH_ACTION,
                    value=f"{status.target.app} {status.target.env}",
                )
            ]
        ),
    ]
    return [b.to_dict() for b in blocks]


def overview_line(status: ServiceStatus, now: float | None = None) -> str:
    snap = status.snapshot
    counts = f"{snap.running}/{snap.desired} · rev {status.revision}" if snap else str(status.problem)
    lock = " :lock:" if status.lock else ""
    last = f" · last {last_deploy(status.last, now)}" if status.last else ""
    return f"{STATE_EMOJI[status.state]} *{status.target}*{lock} · {counts}{last}"


def overview_blocks(statuses: list[ServiceStatus], now: float | None = None) -> list[dict[str, Any]]:
    """One line per app and environment, grouped into sections of at most 3000 characters."""
    return [b.to_dict() for b in _overview_sections(statuses, now)]


def home_view(statuses: list[ServiceStatus], now: float | None = None) -> dict[str, Any]:
    updated = "Updated " + time.strftime("%H:%M UTC", time.gmtime(now))
    blocks: list[Block] = [
        HeaderBlock(text="Tugboat: every service"),
        *_overview_sections(statuses, now),
        ContextBlock(elements=[MarkdownTextObject(text=updated)]),
    ]
    return View(type="home", blocks=blocks).to_dict()


def _overview_sections(statuses: list[ServiceStatus], now: float | None) -> list[Block]:
    sections: list[Block] = []
    chunk: list[str] = []
    for status in statuses:
        line = overview_line(status, now)
        if sum(len(x) + 1 for x in chunk) + len(line) > SECTION_LIMIT:
            sections.append(SectionBlock(text=MarkdownTextObject(text="\n".join(chunk))))
            chunk = []
        chunk.append(line)
    if chunk:
        sections.append(SectionBlock(text=MarkdownTextObject(text="\n".join(chunk))))
    return sections[:MAX_BLOCKS]


def last_deploy(record: OperationRecord, now: float | None = None) -> str:
    emoji = RESULT_EMOJI.get(record.state, "")
    ago = _ago((now or time.time()) - record.created_at)
    link = f" <{record.permalink}|thread>" if record.permalink else ""
    return f"{record.action} `{record.subject}` by {who(record.actor)} {ago} ago {emoji}{link}"


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 5400:
        return f"{seconds // 60}m"
    if seconds < 172_800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86_400}d"


def _short(text: str, limit: int) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"
