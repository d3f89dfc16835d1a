"""What GitHub says about a deploy, read before it runs: the commits it ships and the CI gate.

Both only read, and quickly: GitHub being slow or down never refuses a deploy by itself (the
thread says so instead). A red commit is refused on an environment with `require_ci: true`.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain.code import CodeHost, CodeHostError, commit_of
from bot.domain.commits import CommitList
from bot.domain.text import Text, code, join, text
from commands.deploy import DeployPlan
from commands.taskdef import tag_of


@dataclass(frozen=True)
class Gate:
    """The CI gate's verdict: a refusal, or notes for the thread (forced past red, CI not checked)."""

    refusal: Text | None = None
    notes: tuple[Text, ...] = ()
    forced_past: str | None = None
    """What was red when `--force` shipped it anyway, for the audit trail."""


async def commits(host: CodeHost | None, plan: DeployPlan) -> CommitList | None:
    """The commits between the running image's commit and the new one; None when unknown."""
    repo = plan.app.repository
    base, head = commit_of(tag_of(plan.current_image)), commit_of(plan.tag)
    if host is None or repo is None or base is None or head is None:
        return None
    try:
        return await host.compare(repo, base, head)
    except CodeHostError:
        return None  # counted by the client; the card simply shows no commits


async def gate(host: CodeHost | None, plan: DeployPlan | None, *, forced: bool) -> Gate:
    """With `require_ci: true`: refuse a commit whose checks or statuses are not all green."""
    if plan is None or not plan.env.require_ci:
        return Gate()
    target, ref = plan.target, commit_of(plan.tag) or plan.tag
    force_hint = text(" (", code("--force"), " deploys anyway.)")
    if host is None or plan.app.repository is None:
        why = text(
            f"Not deploying {target}: it requires green CI (`require_ci`), and GitHub cannot be asked here"
            " (the bot has no GITHUB_TOKEN, or this is a CLI run, which never asks GitHub)."
        )
        return Gate(notes=(text("CI not checked: no GITHUB_TOKEN."),)) if forced else Gate(why + force_hint)
    try:
        report = await host.ci(plan.app.repository, ref)
    except CodeHostError as exc:
        if exc.unknown_ref:
            why = text(
                f"Not deploying {target}: GitHub knows no commit ", code(ref), f" in {plan.app.repository}"
            )
            if forced:
                return Gate(notes=(text("Forced without CI: ", why),), forced_past="unknown commit")
            return Gate(why + text(", so its CI cannot be checked.") + force_hint)
        return Gate(notes=(text("CI not checked: ", str(exc), "; deploying without the CI gate."),))
    failing = report.failing
    if not failing:
        return Gate()
    named = join((text(code(check.name), f" ({check.state})") for check in failing), ", ")
    if forced:
        listed = ", ".join(f"{check.name} ({check.state})" for check in failing)
        return Gate(notes=(text("Forced past red CI: ", named),), forced_past=listed)
    return Gate(
        text(f"Not deploying {target}: CI is not green for ", code(ref[:12]), ": ", named, ".") + force_hint
    )
