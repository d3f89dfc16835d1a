"""The cards shown before a change: a confirmation (`confirm: true`) or an approval (`approval:`).

Both show the pinned plan (`bot.report.plans`); a press runs that plan or nothing.
"""

from __future__ import annotations

import time
from typing import Any

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, MarkdownTextObject, SectionBlock

from bot.domain.approvals import Approval
from bot.domain.records import Lock
from bot.domain.text import Text, bold, code, date, italic, join, mention, mrkdwn, text
from bot.report.plans import deploy_plan_lines
from commands.deploy import DeployPlan

CONFIRM_ACTION = "tugboat_confirm"
DECLINE_ACTION = "tugboat_decline"
APPROVE_ACTION = "tugboat_approve"
WITHDRAW_ACTION = "tugboat_withdraw"


def confirmation_blocks(
    pending_id: str, plan: DeployPlan, lock: Lock | None, ttl_s: float
) -> tuple[str, list[dict[str, Any]]]:
    """What will change, and Deploy/Cancel buttons for the requester (or an allowed user)."""
    lines = [
        bold(f"Deploy {plan.target}?"),
        *deploy_plan_lines(plan, lock),
        italic(f"This request expires in {int(ttl_s // 60)} minutes."),
    ]
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=mrkdwn(join(lines, "\n")))),
        ActionsBlock(
            block_id=f"confirm:{pending_id}",
            elements=[
                ButtonElement(text="Deploy", action_id=CONFIRM_ACTION, value=pending_id, style="primary"),
                ButtonElement(text="Cancel", action_id=DECLINE_ACTION, value=pending_id),
            ],
        ),
    ]
    summary = text(f"Deploy {plan.target} ", code(plan.tag), "? Confirm or cancel.")
    return mrkdwn(summary), [b.to_dict() for b in blocks]


def who_may_approve(approval: Approval) -> Text:
    if approval.groups:
        groups = join((code(group) for group in approval.groups), ", ")
        return text("May approve: members of ", groups, ", except ", mention(approval.requester))
    return text(
        f"May approve: anyone allowed to act on {approval.target}, except ", mention(approval.requester)
    )


def approval_headline(approval: Approval) -> Text:
    return text(f"{approval.action.capitalize()} {approval.target} ", code(approval.subject))


def approval_blocks(
    approval: Approval, plan_lines: list[Text], outcome: Text | None = None, now: float | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """The request, the pinned plan, who asked, who may approve, who has; Approve/Cancel while open."""
    so_far = (
        join((mention(user) for user in approval.approvers), ", ")
        if approval.approvers
        else text("nobody yet")
    )
    still = f" · {approval.awaiting} more needed" if approval.state == "open" else ""
    lines = [
        bold("Approval needed: ", approval_headline(approval)),
        *plan_lines,
        text("Asked by ", mention(approval.requester), f" ({approval.trigger})"),
        who_may_approve(approval),
        text(f"Approved by ({len(approval.approvers)}/{approval.required}): ", so_far, still),
    ]
    if approval.state == "open" and outcome is None:
        lines.append(
            italic("Expires ", date(approval.expires_at), "; the requester's own press does not count.")
        )
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=mrkdwn(join(lines, "\n"))))]
    if outcome is not None:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=mrkdwn(outcome))))
    elif approval.state == "open" and not approval.expired(now if now is not None else time.time()):
        blocks.append(
            ActionsBlock(
                block_id=f"approval:{approval.id}",
                elements=[
                    ButtonElement(
                        text="Approve", action_id=APPROVE_ACTION, value=approval.id, style="primary"
                    ),
                    ButtonElement(text="Cancel", action_id=WITHDRAW_ACTION, value=approval.id),
                ],
            )
        )
    summary = text(
        "Approval needed: ", approval_headline(approval), " requested by ", mention(approval.requester)
    )
    return mrkdwn(summary), [b.to_dict() for b in blocks]
