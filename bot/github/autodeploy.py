"""Auto-deploys: a push (or a workflow run that passed) ships its commit to its environments.

Per target the latest push wins: an older one that is still waiting for its image or for its
turn is skipped, with a note in its thread, and ends failed. Once a deploy holds the target
and starts changing ECS it runs to its end; a newer push then waits for it to finish.
Every step goes through the one lifecycle, so auto-deploys are recorded, claimed,
reported and shut down exactly like manual ones. Where the environment needs approval, the
latest push's card is the one that counts: posting it closes the older pushes' open cards.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from bot.change_control import freeze_of, frozen_text, plan_lines
from bot.domain.approvals import Approval, ApprovalRule
from bot.domain.aws import AwsError
from bot.domain.events import Emit, Failed, Started
from bot.domain.records import Lock, OperationRecord, Phase, Target
from bot.domain.text import Text, bold, code, emoji, italic, link, mention, text
from bot.lifecycle import Origin, Reporter, first, locked_text
from bot.operations import Front, Operations
from commands import deploy as deploy_action
from commands.grammar import DeployRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PushEvent:
    """One commit GitHub says may ship: from a push, or from a workflow run that passed."""

    repo: str
    ref: str
    branch: str
    sha: str
    pusher: str
    head_line: str
    compare_url: str | None = None
    trigger: str = "push"
    run_url: str | None = None
    delivery: str = ""
    committed_at: float | None = None
    """When the commit was made (epoch seconds): replays of older commits never deploy."""

    @property
    def short_sha(self) -> str:
        return self.sha[:7]


def asked_by_a_push(approval: Approval) -> bool:
    """Whether an approval request is an auto-deploy's (its trigger is a `PushEvent.trigger`)."""
    return approval.action == "deploy" and (
        approval.trigger == "push" or approval.trigger.startswith("workflow ")
    )


def superseded_text(newest: Approval) -> Text:
    """An older push's card, once a newer push to the same target asked instead."""
    short = newest.subject[:7]  # an auto-deploy's tag is its commit sha (`tag_format`)
    return text(
        emoji("fast_forward"),
        " Superseded by ",
        code(short),
        ", a newer push: its card counts now. Nothing ran.",
    )


def tag_for(tag_format: str, sha: str) -> str:
    """The image tag CI builds for `sha`, per the app's `tag_format` ({sha} or {short_sha})."""
    return tag_format.format(sha=sha, short_sha=sha[:7])


def intro_lines(push: PushEvent) -> list[Text]:
    """The first thread replies: who pushed what, where to see the change, what triggered it."""
    message = text(push.head_line) if push.head_line else italic_none()
    lines = [
        text(bold(push.pusher), " pushed ", code(push.short_sha), " to ", code(push.branch))
        + text(f" of {push.repo}: ", message)
    ]
    trigger = text(f"Auto-deploy triggered by {push.trigger}")
    if push.compare_url:
        trigger = trigger + text(" · ", link(push.compare_url, "compare changes"))
    if push.run_url:
        trigger = trigger + text(" · ", link(push.run_url, "workflow run"))
    lines.append(trigger)
    return lines


def italic_none() -> Text:
    return italic("(no commit message)")


@dataclass
class _Job:
    """One push on its way to one target, and whether a newer push has replaced it."""

    target: Target
    push: PushEvent
    record: OperationRecord
    image_wait_s: int
    superseded: asyncio.Event = field(default_factory=asyncio.Event)
    superseded_by: str | None = None
    committed: bool = False
    """Set once the job holds the target and is about to change ECS: no longer skippable."""

    def supersede(self, newer: PushEvent) -> None:
        if not self.committed and not self.superseded.is_set():
            self.superseded_by = newer.short_sha
            self.superseded.set()


class AutoDeployer:
    """Runs auto-deploys over the operations' lifecycle, one at a time per target, latest first."""

    def __init__(self, ops: Operations, front: Front) -> None:
        self.ops = ops
        self.lifecycle = ops.lifecycle
        self.front = front
        self._newest: dict[Target, _Job] = {}

    def submit(self, target: Target, push: PushEvent) -> OperationRecord:
        """Queue `push` for `target` now, so arrival order decides who wins; work runs later.

        Synchronous on purpose: the webhook answers 202 right after, and no other push can
        slip in between the supersede and the registration.
        """
        app, env = self.ops.catalog.target(target.app, target.env)
        assert env.auto_deploy is not None and env.channel is not None
        record = OperationRecord(
            action="deploy",
            app=target.app,
            env=target.env,
            actor=push.pusher,
            subject=tag_for(app.tag_format, push.sha),
            trigger=push.trigger,
            owner=self.lifecycle.owner,
            channel=env.channel,
            phase=Phase.QUEUED,
            extra={
                "auto_deploy": True,
                "repository": push.repo,
                "branch": push.branch,
                "sha": push.sha,
                "committed_at": push.committed_at,
                "delivery": push.delivery,
            },
        )
        job = _Job(target, push, record, env.auto_deploy.image_wait)
        older = self._newest.get(target)
        if older is not None:
            older.supersede(push)
        self._newest[target] = job
        self.lifecycle.tracker.spawn(self._run(job), f"autodeploy-{record.id}")
        return record

    # -- one job, top-down -----------------------------------------------------------------

    async def _run(self, job: _Job) -> None:
        """Skip a locked target; else open the thread and run the deploy through the lifecycle."""
        try:
            lock = await self.lifecycle.store.get_lock(job.target.app, job.target.env)
            if lock is not None:
                await self._report_locked(job, lock)
                return
            freeze = freeze_of(self.ops.catalog, job.target)
            if freeze is not None:
                await self._report_skipped(job, frozen_text(self.ops.catalog, job.target, freeze))
                return
            rule = self.ops.approvals.rule(job.target, "deploy")
            if rule is not None:
                await self._ask_for_approval(job, rule)
                return
            reporter = await self.lifecycle.lease_and_open(job.record, self.front.open)
            for line in intro_lines(job.push):
                reporter.say(line)
            origin = Origin(job.record.actor, job.record.channel or "", job.record.trigger)

            async def body(emit: Emit, cancel: asyncio.Event) -> None:
                await self._deploy(job, reporter, emit, cancel)

            await self.lifecycle.run(job.record, reporter, body, origin)
        finally:
            if self._newest.get(job.target) is job:
                del self._newest[job.target]

    async def _deploy(self, job: _Job, reporter: Reporter, emit: Emit, cancel: asyncio.Event) -> None:
        """Wait for the image and the target (skippable), then ship (not skippable)."""
        record = job.record
        await emit(Started("deploy", record.app, record.env, record.actor, record.subject, record.trigger))
        try:
            plan = await self._ready(job, reporter, emit)
        except deploy_action.DeployRefused as exc:
            await emit(Failed(str(exc)))
            return
        if plan is None:
            await emit(Failed(f"Skipped: superseded by {job.superseded_by}."))
            return
        await deploy_action.execute(plan, self.ops.deploy_deps, emit, actor=record.actor, cancel=cancel)

    async def _ready(self, job: _Job, reporter: Reporter, emit: Emit) -> deploy_action.DeployPlan | None:
        """The image exists and this job holds the target; None if it was superseded first."""
        request = DeployRequest(job.target, job.record.subject)
        deps = self.ops.deploy_deps
        # Waiting for CI happens before the claim, so manual deploys and rollbacks are not
        # locked out for as long as `image_wait`.
        waiting = deploy_action.prepare(request, deps, image_wait_s=job.image_wait_s, emit=emit)
        if not await first(waiting, unless=job.superseded):
            return None

        def queued(holder: OperationRecord) -> None:
            reporter.say(queued_text(holder))

        if not await self.lifecycle.claim_in_turn(job.record, unless=job.superseded, queued=queued):
            return None
        job.committed = True
        lock = await self.lifecycle.store.get_lock(job.target.app, job.target.env)
        if lock is not None:
            raise deploy_action.DeployRefused(str(locked_text(job.target, lock)))
        # Plan again under the claim: another deploy may have changed the service meanwhile.
        plan = await deploy_action.prepare(request, deps)
        job.record.previous_task_definition = plan.current_task_definition
        await self.lifecycle.save(job.record)
        return plan

    async def _ask_for_approval(self, job: _Job, rule: ApprovalRule) -> None:
        """An environment with `approval`: once the image exists, an approval card, no deploy."""
        request = DeployRequest(job.target, job.record.subject)
        waiting = asyncio.ensure_future(
            deploy_action.prepare(request, self.ops.deploy_deps, image_wait_s=job.image_wait_s)
        )
        try:
            if not await first(waiting, unless=job.superseded):
                return  # a newer push asks instead
        except (deploy_action.DeployRefused, AwsError) as exc:
            await self._report_skipped(job, text(str(exc)))
            return
        plan = waiting.result()
        origin = Origin(job.push.pusher, job.record.channel or "", job.push.trigger)

        async def reply(line: Text) -> None:
            log.info("auto-deploy approval", extra={"target": str(job.target), "said": str(line)})

        plan = await self.ops.with_commits(plan)
        await self.ops.ask_to_approve_deploy(rule, request, plan, origin, reply, self.front, None)
        for older, outcome in await self.ops.approvals.supersede(
            job.target, asked_by_a_push, superseded_text
        ):
            await self.front.show_approval(older, plan_lines(older), outcome)

    async def _report_skipped(self, job: _Job, why: Text) -> None:
        """One line in the environment's channel: this push was not deployed, and why."""
        push = job.push
        assert job.record.channel is not None
        line = text("Not auto-deploying ", code(push.short_sha), f" ({push.trigger} by {push.pusher}): ", why)
        log.info("auto-deploy skipped", extra={"app": job.target.app, "env": job.target.env, "sha": push.sha})
        await self.front.announce(job.record.channel, line)

    async def _report_locked(self, job: _Job, lock: Lock) -> None:
        """One line in the environment's channel; no thread, nothing recorded as a deploy."""
        push = job.push
        assert job.record.channel is not None
        line = text(
            emoji("lock"),
            " Not auto-deploying ",
            code(push.short_sha),
            f" ({push.trigger} by {push.pusher}): ",
        ) + locked_text(job.target, lock, icon=False)
        log.info(
            "auto-deploy skipped: locked",
            extra={"app": job.target.app, "env": job.target.env, "sha": push.sha},
        )
        await self.front.announce(job.record.channel, line)


def queued_text(holder: OperationRecord) -> Text:
    thread = text(" ", link(holder.permalink, "See its thread.")) if holder.permalink else text()
    return text(
        emoji("hourglass"),
        f" Queued behind the running {holder.action} of ",
        code(holder.subject),
        " by ",
        mention(holder.actor),
        "; this deploy starts when it ends.",
        thread,
    )
