"""What a confirmation or approval card says will run, as `Text` lines (SPEC: "The plan is pinned").

The lines are Slack-free: an approval request keeps them, so whichever replica takes a press
can draw the card again.
"""

from __future__ import annotations

from bot.domain.aws import revision_of
from bot.domain.freezes import FreezeWindow, when
from bot.domain.records import Lock
from bot.domain.text import Text, code, emoji, join, link, mention, text
from bot.report.commits import commit_lines
from commands.deploy import DeployPlan, short_digest
from commands.rollback import RollbackPlan
from commands.run_task import TaskPlan
from commands.taskdef import tag_of


def deploy_plan_lines(plan: DeployPlan, lock: Lock | None, freeze: FreezeWindow | None = None) -> list[Text]:
    """The image (tag and digest), the revision it replaces, tasks run first, commits, and any
    lock or freeze the deploy is forced through."""
    current = plan.current_image.rsplit("/", 1)[-1] if plan.current_image else "unknown"
    lines = [
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
    lines.extend(commit_lines(plan.commits))
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
    if freeze is not None:
        lines.append(
            text(
                emoji("snowflake"),
                f" Frozen until {when(freeze.ends, plan.env.timezone)}: ",
                freeze.reason,
                " (this deploy is forced)",
            )
        )
    return lines


def rollback_plan_lines(plan: RollbackPlan) -> list[Text]:
    return [
        text(f"Revision: rev {revision_of(plan.current_task_definition)} → rev {plan.revision} ({plan.why})"),
        text("Task definition: ", code(plan.task_definition.rsplit("/", 1)[-1])),
    ]


def task_plan_lines(plan: TaskPlan) -> list[Text]:
    return [
        text("Command: ", code(" ".join(plan.command))),
        text("From task definition ", code(plan.task_definition.rsplit("/", 1)[-1])),
    ]
