"""The confirmation card shown before a deploy to an environment with `confirm: true`."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, MarkdownTextObject, SectionBlock

from bot.domain.records import Lock
from commands.deploy import DeployPlan, tag_of

CONFIRM_ACTION = "tugboat_confirm"
DECLINE_ACTION = "tugboat_decline"


def confirmation_blocks(
    pending_id: str, plan: DeployPlan, lock: Lock | None, ttl_s: float
) -> tuple[str, list[dict[str, Any]]]:
    """What will change, and Deploy/Cancel buttons for the requester (or an allowed user)."""
    current = plan.current_image.rsplit("/", 1)[-1] if plan.current_image else "unknown"
    lines = [
        f"*Deploy {plan.target}?*",
        f"Image: `{current}` → `{plan.image.rsplit('/', 1)[-1]}`",
        f"Task definition: rev {plan.current_revision} → new revision, only `{plan.app.container}` changes",
    ]
    if plan.promoted_from:
        lines.append(f"Promoting what {plan.promoted_from} runs.")
    old_tag = tag_of(plan.current_image)
    if plan.app.repository and old_tag and old_tag != plan.tag:
        url = f"https://github.com/{plan.app.repository}/compare/{old_tag}...{plan.tag}"
        lines.append(f"<{url}|Compare {old_tag[:12]}…{plan.tag[:12]} on GitHub>")
    if plan.env.before_deploy:
        lines.append("Runs first: " + ", ".join(f"`{t}`" for t in plan.env.before_deploy))
    if lock is not None:
        lines.append(f":lock: Locked by <@{lock.holder}>: {lock.reason} (this deploy is forced)")
    else:
        lines.append("Not locked.")
    lines.append(f"_This request expires in {int(ttl_s // 60)} minutes._")
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text="\n".join(lines))),
        ActionsBlock(
            block_id=f"confirm:{pending_id}",
            elements=[
                ButtonElement(text="Deploy", action_id=CONFIRM_ACTION, value=pending_id, style="primary"),
                ButtonElement(text="Cancel", action_id=DECLINE_ACTION, value=pending_id),
            ],
        ),
    ]
    return f"Deploy {plan.target} `{plan.tag}`? Confirm or cancel.", [b.to_dict() for b in blocks]
