"""Status cards, the overview and the Home tab in Block Kit; the lines are `bot.report.status`'s."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.domain.records import Target
from bot.domain.text import Text, bold, code, mrkdwn, text
from bot.report.status import card_lines, overview_line
from bot.slack.blocks import MAX_BLOCKS, SECTION_LIMIT
from commands.status import ServiceStatus

REFRESH_ACTION = "tugboat_status_refresh"
RESTART_ACTION = "tugboat_restart"
SCALE_ACTION = "tugboat_scale"
SCALE_VIEW = "tugboat_scale_view"
"""The modal that asks how many tasks; its private_metadata is `APP ENV CHANNEL`."""
COUNT_INPUT, SERVICE_INPUT = "count", "service"
MESSAGE_CHARS = 11_000
"""Serialized blocks per overview message: Slack refuses a message past about 12,000."""
HOME_BLOCKS = 100
"""Slack's limit on the blocks of a Home tab view."""
NOTHING_READABLE = text(
    "There is no service you may read. Who may read an environment is set in the catalog by its ",
    code("read_users"),
    " and ",
    code("read_groups"),
    ", and everyone who may act on it may read it.",
)


def card_blocks(
    status: ServiceStatus, now: float | None = None, *, may_act: bool = False
) -> list[dict[str, Any]]:
    """One service, at most ~15 short lines, with a Refresh button; for people who may act on
    it, Restart and Scale too (the on-call remedies, each press checked again)."""
    lines = [mrkdwn(line) for line in card_lines(status, now)]
    where = f"{status.target.app} {status.target.env}"
    buttons = [ButtonElement(text="Refresh", action_id=REFRESH_ACTION, value=where)]
    if may_act:
        buttons.append(
            ButtonElement(
                text="Restart",
                action_id=RESTART_ACTION,
                value=where,
                confirm=ConfirmObject(
                    title="Restart?",
                    text=f"Start fresh tasks of the revision {status.target} runs now (every service)?",
                    confirm="Restart",
                    deny="Keep them",
                    style="danger",
                ),
            )
        )
        buttons.append(ButtonElement(text="Scale", action_id=SCALE_ACTION, value=where))
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text="\n".join(lines))),
        ActionsBlock(elements=buttons),
    ]
    return [b.to_dict() for b in blocks]


def scale_modal(target: Target, services: list[str], max_tasks: int, channel: str) -> dict[str, Any]:
    """The small modal behind Scale: how many tasks (and, in a release, of which service)."""
    blocks: list[Block] = [
        SectionBlock(
            text=MarkdownTextObject(text=mrkdwn(text("How many tasks should ", bold(str(target)), " run?")))
        ),
        InputBlock(
            block_id=COUNT_INPUT,
            label=f"Tasks (0 to {max_tasks})",
            element=PlainTextInputElement(action_id=COUNT_INPUT, placeholder="3"),
        ),
    ]
    if len(services) > 1:
        options = [Option(text=name, value=name) for name in services]
        blocks.append(
            InputBlock(
                block_id=SERVICE_INPUT,
                label="Service",
                element=StaticSelectElement(
                    action_id=SERVICE_INPUT, options=options, initial_option=options[0]
                ),
            )
        )
    return View(
        type="modal",
        callback_id=SCALE_VIEW,
        title="Scale",
        submit="Scale",
        close="Cancel",
        private_metadata=f"{target.app} {target.env} {channel}",
        blocks=blocks,
    ).to_dict()


def overview_blocks(statuses: list[ServiceStatus], now: float | None = None) -> list[dict[str, Any]]:
    """One line per app and environment, grouped into sections of at most 3000 characters."""
    return [b.to_dict() for b in _overview_sections(statuses, now)]


def overview_messages(statuses: list[ServiceStatus], now: float | None = None) -> list[list[dict[str, Any]]]:
    """The overview as as many messages as Slack's limits need: each within its block count
    and size, every line in one of them. With more than one, the first opens with the tally."""
    sections = [b.to_dict() for b in _overview_sections(statuses, now, limit=None)]
    messages = _packed(sections)
    if len(messages) > 1:
        tally = SectionBlock(text=MarkdownTextObject(text=mrkdwn(_tally(statuses)))).to_dict()
        messages = _packed([tally, *sections])
    return messages


def _packed(blocks: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Blocks in order, as few messages as MAX_BLOCKS and MESSAGE_CHARS allow."""
    messages: list[list[dict[str, Any]]] = []
    size = 0
    for block in blocks:
        cost = len(json.dumps(block, separators=(",", ":"), ensure_ascii=False)) + 1
        if not messages or len(messages[-1]) >= MAX_BLOCKS or size + cost > MESSAGE_CHARS:
            messages.append([])
            size = 0
        messages[-1].append(block)
        size += cost
    return messages


def _tally(statuses: list[ServiceStatus]) -> Text:
    """`*500 services*: 497 steady · 3 deploying`, the worst states first."""
    counts = Counter(status.state for status in statuses)
    order = ("failed", "missing", "degraded", "deploying", "steady")
    parts = [f"{counts[state]} {state}" for state in order if counts[state]]
    return text(bold(f"{len(statuses)} services"), ": ", " · ".join(parts))


def home_view(statuses: list[ServiceStatus], now: float | None = None) -> dict[str, Any]:
    """The overview of the services this user may read; with none, why the tab is empty."""
    updated = "Updated " + time.strftime("%H:%M UTC", time.gmtime(now))
    sections = _overview_sections(statuses, now, limit=HOME_BLOCKS - 2) or [
        SectionBlock(text=MarkdownTextObject(text=mrkdwn(NOTHING_READABLE)))
    ]
    blocks: list[Block] = [
        HeaderBlock(text="Tugboat: every service you may read"),
        *sections,
        ContextBlock(elements=[MarkdownTextObject(text=updated)]),
    ]
    return View(type="home", blocks=blocks).to_dict()


def _overview_sections(
    statuses: list[ServiceStatus], now: float | None, *, limit: int | None = MAX_BLOCKS
) -> list[Block]:
    """Sections of whole lines; past `limit` sections, the last one says how many are left out."""
    chunks: list[list[str]] = []
    size = 0
    for status in statuses:
        line = mrkdwn(overview_line(status, now))
        if not chunks or size + len(line) + 1 > SECTION_LIMIT:
            chunks.append([])
            size = 0
        chunks[-1].append(line)
        size += len(line) + 1
    if limit is not None and len(chunks) > limit:
        left_out = sum(len(chunk) for chunk in chunks[limit - 1 :])
        more = text(f"… and {left_out} more: ", code("/ecs-status APP"), " shows them.")
        chunks = [*chunks[: limit - 1], [mrkdwn(more)]]
    return [SectionBlock(text=MarkdownTextObject(text="\n".join(chunk))) for chunk in chunks]
