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
from commands.deploy import DeployPlan, ServicePlan, short_digest
from commands.rollback import RollbackPlan
from commands.run_task import TaskPlan
from commands.taskdef import tag_of


def deploy_plan_lines(plan: DeployPlan, lock: Lock | None, freeze: FreezeWindow | None = None) -> list[Text]:
    """The image (tag and digest), the revision of each service it replaces, tasks run first,
    commits, and any lock or freeze the deploy is forced through."""
    lines = [
        text("Image: ", code(_image_name(plan.current_image)), " → ", code(_image_name(plan.image))),
        text(
            "Exactly this image: ",
            code(short_digest(plan.digest)),
            " (the press ships this digest or nothing)",
        ),
    ]
    if plan.is_release:
        lines.append(text(f"One release of {len(plan.services)} services, all or nothing:"))
        lines.extend(_service_line(plan, service) for service in plan.services)
    else:
        lines.append(text("Task definition: ", _revision_change(plan.first)))
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


def _image_name(image: str | None) -> str:
    return image.rsplit("/", 1)[-1] if image else "unknown"


def _revision_change(service: ServicePlan) -> Text:
    """`rev 1 → new revision, only `web` changes`: what a deploy does to one service."""
    changed = join((code(c) for c in service.containers), ", ")
    verb = "change" if len(service.containers) > 1 else "changes"
    return text(f"rev {service.current_revision} → new revision, only ", changed, f" {verb}")


def _service_line(plan: DeployPlan, service: ServicePlan) -> Text:
    """One service of a release, and its image when it differs from the first service's."""
    line = text("• ", code(service.name), ": ", _revision_change(service))
    if service.current_image != plan.current_image:
        return text(line, " (runs ", code(_image_name(service.current_image)), " now)")
    return line


def rollback_plan_lines(plan: RollbackPlan) -> list[Text]:
    """Where each service goes back to, and why (in a release, a service already there stays)."""
    if plan.release:
        lines = [text(f"Every service back at once, to {plan.why}:")]
        for service in plan.services:
            back = f": rev {revision_of(service.current_task_definition)} → rev {service.revision} ("
            lines.append(text("• ", code(service.name), back, code(_last_part(service.task_definition)), ")"))
        return lines
    return [
        text(f"Revision: rev {revision_of(plan.current_task_definition)} → rev {plan.revision} ({plan.why})"),
        text("Task definition: ", code(_last_part(plan.task_definition))),
    ]


def _last_part(arn: str) -> str:
    """`api-production:3` from a task definition's ARN."""
    return arn.rsplit("/", 1)[-1]


def task_plan_lines(plan: TaskPlan) -> list[Text]:
    return [
        text("Command: ", code(" ".join(plan.command))),
        text("From task definition ", code(_last_part(plan.task_definition))),
    ]
