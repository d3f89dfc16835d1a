"""The confirmation card shown before a deploy to an environment with `confirm: true`."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, MarkdownTextObject, SectionBlock

from bot.domain.records import Lock
from bot.domain.text import bold, code, emoji, italic, join, link, mention, mrkdwn, text
from commands.deploy import DeployPlan, short_digest
from commands.taskdef import tag_of

CONFIRM_ACTION = "tugboat_confirm"
DECLINE_ACTION = "tugboat_decline"


def confirmation_blocks(
    pending_id: str, plan: DeployPlan, lock: Lock | None, ttl_s: float
) -> tuple[str, list[dict[str, Any]]]:
    """What will change, and Deploy/Cancel buttons for the requester (or an allowed user)."""
    current = plan.current_image.rsplit("/", 1)[-1] if plan.current_image else "unknown"
    lines = [
        bold(f"Deploy {plan.target}?"),
        text("Image: ", code(current), " → ", code(plan.image.rsplit("/", 1)[-1])),
        text(
            "Exactly this image: ",
            code(short_digest(plan.digest)),
            " (the press ships this digest or nothing)",
        ),
        text(
            f"Task definition: rev {plan.current_revision} → new revision, only ",
            code(plan.app.container),
            " changes",
        ),
    ]
    if plan.promoted_from:
        lines.append(text(f"Promoting what {plan.promoted_from} runs."))
    old_tag = tag_of(plan.current_image)
    if plan.app.repository and old_tag and old_tag != plan.tag:
        url = f"https://github.com/{plan.app.repository}/compare/{old_tag}...{plan.tag}"
        lines.append(link(url, f"Compare {old_tag[:12]}…{plan.tag[:12]} on GitHub"))
    if plan.env.before_deploy:
        lines.append(text("Runs first: ", join((code(t) for t in plan.env.before_deploy), ", ")))
    if lock is not None:
        lines.append(
            text(
                emoji("lock"),
                " Locked by ",
                mention(lock.holder),
                ": ",
                lock.reason,
                " (this deploy is forced)",
            )
        )
    else:
        lines.append(text("Not locked."))
    lines.append(italic(f"This request expires in {int(ttl_s // 60)} minutes."))
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
