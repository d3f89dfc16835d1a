"""A pause in a blue/green deployment, as a thread reply with Continue and Roll back.

The buttons carry the operation and the hook, so any replica can answer a press, and a reply
posted before a restart keeps working after it.
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

from bot.domain.records import GateEntry, OperationRecord
from bot.domain.text import Text, mrkdwn, text
from bot.report.view import gate_line

CONTINUE_ACTION = "tugboat_gate_continue"
ROLLBACK_ACTION = "tugboat_gate_rollback"


def gate_value(record: OperationRecord, gate: GateEntry) -> str:
    return f"{record.id}|{gate.hook_id}"


def parse_gate_value(value: str) -> tuple[str, str] | None:
    """(operation id, hook id) from a button's value; None for anything else."""
    op_id, sep, hook_id = value.partition("|")
    return (op_id, hook_id) if sep and op_id and hook_id else None


def gate_blocks(
    record: OperationRecord, gate: GateEntry, outcome: Text | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """The pause (stage, traffic, expiry), then its buttons while it awaits, or what became of it."""
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=mrkdwn(gate_line(gate))))]
    if outcome is not None:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=mrkdwn(outcome))]))
    else:
        value = gate_value(record, gate)
        blocks.append(
            ActionsBlock(
                block_id=f"gate:{gate.hook_id}",
                elements=[
                    ButtonElement(text="Continue", action_id=CONTINUE_ACTION, value=value, style="primary"),
                    ButtonElement(
                        text="Roll back",
                        action_id=ROLLBACK_ACTION,
                        value=value,
                        style="danger",
                        confirm=ConfirmObject(
                            title="Roll back?",
                            text=f"ECS moves all traffic of {record.app} {record.env} back to the"
                            " revision it ran before.",
                            confirm="Roll back",
                            deny="Keep waiting",
                            style="danger",
                        ),
                    ),
                ],
            )
        )
    summary = text(f"{record.app} {record.env} paused at {gate.stage}")
    return mrkdwn(summary), [b.to_dict() for b in blocks]
