"""Status cards, the overview and the Home tab in Block Kit; the lines are `bot.report.status`'s."""

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

from bot.domain.text import code, mrkdwn, text
from bot.report.status import card_lines, overview_line
from bot.slack.blocks import MAX_BLOCKS, SECTION_LIMIT
from commands.status import ServiceStatus

REFRESH_ACTION = "tugboat_status_refresh"
NOTHING_READABLE = text(
    "There is no service you may read. Who may read an environment is set in the catalog by its ",
    code("read_users"),
    " and ",
    code("read_groups"),
    ", and everyone who may act on it may read it.",
)


def card_blocks(status: ServiceStatus, now: float | None = None) -> list[dict[str, Any]]:
    """One service, at most ~15 short lines, with a Refresh button."""
    lines = [mrkdwn(line) for line in card_lines(status, now)]
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


def overview_blocks(statuses: list[ServiceStatus], now: float | None = None) -> list[dict[str, Any]]:
    """One line per app and environment, grouped into sections of at most 3000 characters."""
    return [b.to_dict() for b in _overview_sections(statuses, now)]


def home_view(statuses: list[ServiceStatus], now: float | None = None) -> dict[str, Any]:
    """The overview of the services this user may read; with none, why the tab is empty."""
    updated = "Updated " + time.strftime("%H:%M UTC", time.gmtime(now))
    sections = _overview_sections(statuses, now) or [
        SectionBlock(text=MarkdownTextObject(text=mrkdwn(NOTHING_READABLE)))
    ]
    blocks: list[Block] = [
        HeaderBlock(text="Tugboat: every service you may read"),
        *sections,
        ContextBlock(elements=[MarkdownTextObject(text=updated)]),
    ]
    return View(type="home", blocks=blocks).to_dict()


def _overview_sections(statuses: list[ServiceStatus], now: float | None) -> list[Block]:
    sections: list[Block] = []
    chunk: list[str] = []
    for status in statuses:
        line = mrkdwn(overview_line(status, now))
        if sum(len(x) + 1 for x in chunk) + len(line) > SECTION_LIMIT:
            sections.append(SectionBlock(text=MarkdownTextObject(text="\n".join(chunk))))
            chunk = []
        chunk.append(line)
    if chunk:
        sections.append(SectionBlock(text=MarkdownTextObject(text="\n".join(chunk))))
    return sections[:MAX_BLOCKS]
