"""Block Kit for progress threads, built with slack_sdk.models.blocks (which checks limits).

Every line comes from the view as `Text` and is written with `text.mrkdwn`, the one escape.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.domain.text import bold, mrkdwn, text
from bot.report.view import Detail, ThreadView

SECTION_LIMIT = 2900
MAX_BLOCKS = 45
ROLLBACK_ACTION = "tugboat_rollback"
CANCEL_ACTION = "tugboat_cancel"


def parent_blocks(view: ThreadView, now: float | None = None) -> list[dict[str, Any]]:
    """The parent message: the whole state at a glance, plus its buttons."""
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=mrkdwn(bold(view.headline())))),
        ContextBlock(elements=[MarkdownTextObject(text=mrkdwn(view.status_line(now)))]),
    ]
    outcome = view.outcome
    if outcome:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=_clip(mrkdwn(outcome)))))
    buttons = _buttons(view)
    if buttons:
        blocks.append(ActionsBlock(block_id=f"op:{view.record.id}", elements=buttons))
    return [b.to_dict() for b in blocks]


def parent_text(view: ThreadView) -> str:
    """The notification text (and the fallback where blocks do not render)."""
    return mrkdwn(text(view.headline(), f" — {view.state_word()}"))


def _buttons(view: ThreadView) -> list[ButtonElement]:
    record = view.record
    buttons: list[ButtonElement] = []
    if record.action in ("deploy", "rollback") and record.id and view.service_changed:
        buttons.append(
            ButtonElement(
                text="Rollback",
                action_id=ROLLBACK_ACTION,
                value=record.id,
                confirm=ConfirmObject(
                    title="Roll back?",
                    text=f"Put {record.app} {record.env} back on the revision before this one?",
                    confirm="Roll back",
                    deny="Keep it",
                    style="danger",
                ),
            )
        )
    if not view.finished and record.id:
        buttons.append(ButtonElement(text="Cancel", action_id=CANCEL_ACTION, value=record.id, style="danger"))
    return buttons


def detail_blocks(details: list[Detail]) -> list[dict[str, Any]]:
    """Several thread lines as one reply: fewer Slack calls, same information."""
    blocks: list[Block] = []
    for detail in details:
        for chunk in _split(mrkdwn(detail.text), SECTION_LIMIT):
            blocks.append(SectionBlock(text=MarkdownTextObject(text=chunk)))
        if detail.code:
            code = mrkdwn(text(detail.code.replace("```", "'''")))  # a log tail: anyone's words
            blocks.append(
                SectionBlock(text=MarkdownTextObject(text=f"```{_clip(code, SECTION_LIMIT - 8)}```"))
            )
    if len(blocks) > MAX_BLOCKS:
        dropped = len(blocks) - MAX_BLOCKS + 1
        blocks = [
            *blocks[: MAX_BLOCKS - 1],
            SectionBlock(text=f"_…{dropped} more lines not shown_"),
        ]
    return [b.to_dict() for b in blocks]


def detail_text(details: list[Detail]) -> str:
    return _clip("\n".join(mrkdwn(d.text) for d in details), 3000)


def _clip(text: str, limit: int = SECTION_LIMIT) -> str:
    if len(text) <= limit:
        return text
    return "…" + text[-(limit - 1) :]


def _split(text: str, limit: int) -> list[str]:
    if len(text) <= limit:
        return [text]
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        line = line if len(line) <= limit else line[: limit - 1] + "…"
        if current and len(current) + len(line) + 1 > limit:
            parts.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    if current:
        parts.append(current)
    return parts
