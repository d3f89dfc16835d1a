"""Operations: an understood request becomes one checked, claimed, recorded, tracked operation.

Each verb reads top-down: check (rights, lock, busy), prepare (read ECS, change nothing),
claim and open the story, then hand the action to the lifecycle. Where the story is told
(a Slack thread, a terminal) is the `Front` an adapter passes in; nothing here knows Slack.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import shlex
import time
from dataclasses import dataclass, field, replace
from typing import Protocol

from bot.change_control import ApprovalDesk, freeze_of, frozen_text, plan_lines
from bot.domain.approvals import Approval, ApprovalRule
from bot.domain.aws import AwsError, ServiceRef, ServiceSnapshot, revision_of
from bot.domain.catalog import Catalog
from bot.domain.code import CodeHost
from bot.domain.events import Emit, Note, Started
from bot.domain.freezes import FreezeWindow, when
from bot.domain.gates import answer_claim
from bot.domain.ports import Ecs, Schedules, Watcher
from bot.domain.records import ROLLOUT_ACTIONS, GateEntry, Lock, OperationRecord, Phase, Target
from bot.domain.text import Text, code, emoji, join, link, mention, text
from bot.lifecycle import Lifecycle, Origin, Reporter, busy_text, locked_text, until
from bot.report.plans import deploy_plan_lines, rollback_plan_lines, task_plan_lines
from commands import code as code_action
from commands import deploy as deploy_action
from commands import gated as gated_action
from commands import restart as restart_action
from commands import rollback as rollback_action
from commands import run_task as run_task_action
from commands import scale as scale_action
from commands.deploy import Pin
from commands.grammar import (
    DeployRequest,
    HistoryRequest,
    LockRequest,
    RestartRequest,
    RollbackRequest,
    RunTaskRequest,
    ScaleRequest,
    UnlockRequest,
)

log = logging.getLogger(__name__)

CONFIRM_TTL_S = 600.0


class Reply(Protocol):
    """Tells the requester something privately (an ephemeral message, stderr)."""

    async def __call__(self, line: Text) -> None: ...


class Front(Protocol):
    """Where operations are told: Slack threads and cards, or a terminal."""

    async def open(self, record: OperationRecord) -> Reporter:
        """Start the story of a claimed record (post its parent); set `record.ts`/`permalink`."""
        ...

    async def reopen(self, record: OperationRecord) -> Reporter:
        """The same story again after a restart."""
        ...

    async def announce(self, channel: str, line: Text) -> None:
        """One line where a target's people look (a lock taken, an auto-deploy skipped)."""
        ...

    async def ask_to_confirm(
        self, pending: OperationRecord, plan: deploy_action.DeployPlan, lock: Lock | None, reply: Reply
    ) -> str | None:
        """Show the plan with Deploy/Cancel; the card's ts, or None when nobody can confirm here."""
        ...

    async def settle_confirmation(self, pending: OperationRecord, outcome: Text) -> None: ...

    async def ask_to_approve(self, approval: Approval, lines: list[Text], reply: Reply) -> str | None:
        """Post the approval card (plan `lines`, Approve/Cancel); its ts, or None when it cannot."""
        ...

    async def show_approval(self, approval: Approval, lines: list[Text], outcome: Text | None) -> None:
        """Draw the card again: who approved so far, or (with `outcome`) what became of it."""
        ...

    async def settle_pause(self, record: OperationRecord, gate: GateEntry, outcome: Text) -> None:
        """A pause was answered: its reply says how (who pressed, what ECS did) and loses its buttons."""
        ...


@dataclass(frozen=True)
class Confirmation:
    """A press that lets a pinned deploy run: a confirmation card's, or an approval's last."""

    pending: OperationRecord | None
    pin: Pin
    by: str
    approval: Approval | None = None
    """Set when the plan runs because enough people approved it."""


class Authorizer(Protocol):
    async def check(self, target: Target, actor: str, channel: str | None, *, write: bool) -> Text | None: ...

    async def may_approve(
        self, target: Target, actor: str, channel: str | None, groups: list[str]
    ) -> Text | None: ...


class ApprovedRunner(Protocol):
    """Runs an approved request's pinned plan: `approver` pressed last, `reply` tells them."""

    async def __call__(self, approval: Approval, approver: Origin, reply: Reply, front: Front) -> None: ...


NEEDS_SLACK_APPROVAL = (
    "needs approval (the catalog's `approval`): request it from Slack, where others can approve it."
)


@dataclass(eq=False, kw_only=True)
class Operations:
    """The verbs, over the one lifecycle. Everything it needs is passed in."""

    catalog: Catalog
    ecs: Ecs
    watcher: Watcher
    schedules: Schedules
    lifecycle: Lifecycle
    authorizer: Authorizer
    code: CodeHost | None = None
    """GitHub (with GITHUB_TOKEN): the CI gate and the commits a card lists."""
    accepting: bool = field(default=True, init=False)
    approvals: ApprovalDesk = field(init=False)
    on_approved: dict[str, ApprovedRunner] = field(init=False)
    """Per action, what runs an approved request (scale and restart add theirs)."""

    def __post_init__(self) -> None:
        self.approvals = ApprovalDesk(
            catalog=self.catalog,
            store=self.lifecycle.store,
            audit=self.lifecycle.audit,
            approvers=self.authorizer,
        )
        self.on_approved = {
            "deploy": self._run_approved_deploy,
            "rollback": self._run_approved_rollback,
            "run-task": self._run_approved_task,
            "scale": self._run_approved_scale,
            "restart": self._run_approved_restart,
        }

    @property
    def deploy_deps(self) -> deploy_action.DeployDeps:
        return deploy_action.DeployDeps(self.ecs, self.watcher, self.catalog, self.schedules)

    def in_flight(self) -> int:
        return self.lifecycle.in_flight()

    def new_record(self, action: str, target: Target, origin: Origin, subject: str) -> OperationRecord:
        return OperationRecord(
            action=action,
            app=target.app,
            env=target.env,
            actor=origin.actor,
            subject=subject,
            trigger=origin.trigger,
            owner=self.lifecycle.owner,
        )

    # -- checks ----------------------------------------------------------------------------

    async def authorize(
        self, target: Target, origin: Origin, *, write: bool = True, audit: bool = True
    ) -> Text | None:
        """Why `origin` may not act on (or read) `target`, or None; refusals are audited.

        `audit=False` for overviews that only leave out what a user may not read.
        """
        refusal = await self.authorizer.check(target, origin.actor, origin.channel, write=write)
        if refusal is not None and audit:
            await self.lifecycle.audit.write(origin, "refused", target, refusal)
        return refusal

    async def _permitted(self, target: Target, origin: Origin, reply: Reply) -> bool:
        """Whether `origin` may act on `target`; if not, the requester is told why."""
        refusal = await self.authorize(target, origin)
        if refusal is not None:
            await reply(refusal)
        return refusal is None

    async def refuse(self, reply: Reply, origin: Origin, what: str, target: Target, why: Text) -> None:
        """Nothing was changed: tell the requester why, and audit it."""
        await reply(why)
        await self.lifecycle.audit.write(origin, what, target, text("refused: ", why))

    async def refuse_approved(
        self,
        reply: Reply,
        origin: Origin,
        what: str,
        target: Target,
        why: Text,
        front: Front,
        approval: Approval | None,
    ) -> None:
        """`refuse`, and when an approved request was being run, its card says it did not run."""
        if approval is not None:
            await self.settle_approval(front, approval, text("not run: ", why))
        await self.refuse(reply, origin, what, target, why)

    # -- deploy ----------------------------------------------------------------------------

    async def deploy(
        self,
        request: DeployRequest,
        origin: Origin,
        reply: Reply,
        front: Front,
        *,
        confirmation: Confirmation | None = None,
        ask_to_confirm: bool = True,
    ) -> OperationRecord | None:
        """Check, prepare, (ask to confirm,) claim, open the story and start the rollout."""
        target = request.target
        refusal, plan, lock = await self._plan_deploy(request, origin, confirmation)
        ci = await code_action.gate(self.code, plan, forced=request.force)  # require_ci
        refusal = refusal or ci.refusal
        if refusal is not None or plan is None:
            why = refusal or text("nothing to deploy")
            if confirmation is not None:
                await self._settle(front, confirmation, text("not run: ", why))
            await self.refuse(reply, origin, "deploy", target, why)
            return None
        rule = self.approvals.rule(target, "deploy")
        if rule is not None and (confirmation is None or confirmation.approval is None):
            if not ask_to_confirm:
                await self.refuse(reply, origin, "deploy", target, text(f"{target} ", NEEDS_SLACK_APPROVAL))
                return None
            plan = await self.with_commits(plan)
            await self.ask_to_approve_deploy(rule, request, plan, origin, reply, front, lock)
            return None
        if plan.env.confirm and confirmation is None and ask_to_confirm:
            plan = await self.with_commits(plan)
            await self._ask_to_confirm(request, plan, origin, reply, front, lock)
            return None
        record = self.new_record("deploy", target, origin, plan.tag)
        record.previous_task_definition = plan.current_task_definition
        record.channel = plan.env.channel or origin.channel
        reporter = await self._claim_and_open(record, origin, reply, front)
        if confirmation is not None:
            verdict = approved_by(confirmation) or text("confirmed by ", mention(confirmation.by))
            where = text(": ", record.permalink) if reporter and record.permalink else text()
            await self._settle(
                front, confirmation, text(verdict, where) if reporter else text(verdict, "; busy, not run")
            )
        if reporter is None:
            return None
        await reply(text(f"Deploying {target} ", code(plan.tag), ": ", record.permalink or ""))
        if lock is not None:
            await self.lifecycle.audit.write(
                origin, "force", target, f"deployed through lock by {lock.holder}"
            )
        if ci.forced_past is not None:
            await self.lifecycle.audit.write(origin, "force", target, f"deployed past CI: {ci.forced_past}")
        freeze = freeze_of(self.catalog, target) if request.force_reason is not None else None
        if request.force_reason is not None:
            passed = f"{'lock, ' if lock else ''}{'freeze, ' if freeze else ''}".rstrip(", ") or "nothing"
            await self.lifecycle.audit.write(
                origin, "force", target, f"reason: {request.force_reason} (passed: {passed})"
            )
        if confirmation is not None:
            by = approved_by(confirmation)
            reporter.say(text(by, ".") if by else text("Confirmed by ", mention(confirmation.by), "."))
        expected = await self.expected_duration(target)

        async def body(emit: Emit, cancel: asyncio.Event) -> None:
            await emit(Started("deploy", record.app, record.env, record.actor, plan.tag, record.trigger))
            if request.force_reason is not None:
                await emit(
                    Note(text("Forced by ", mention(origin.actor), ": ", request.force_reason), loud=True)
                )
            if lock is not None:
                holder = text(mention(lock.holder), ": ", lock.reason)
                await emit(Note(text("Forced through the lock held by ", holder), loud=True))
            if freeze is not None:
                await emit(Note(forced_through_freeze(plan.env.timezone, freeze), loud=True))
            for note in ci.notes:
                await emit(Note(note, loud=True))
            await deploy_action.execute(
                plan, self.deploy_deps, emit, actor=record.actor, cancel=cancel, expected_s=expected
            )

        self.lifecycle.launch(record, reporter, body, origin)
        return record

    async def with_commits(self, plan: deploy_action.DeployPlan) -> deploy_action.DeployPlan:
        """The plan with the commits it ships, for a card (asked of GitHub, within its timeout)."""
        return replace(plan, commits=await code_action.commits(self.code, plan))

    async def _plan_deploy(
        self, request: DeployRequest, origin: Origin, confirmation: Confirmation | None
    ) -> tuple[Text | None, deploy_action.DeployPlan | None, Lock | None]:
        """The refusal, or the plan (and the lock a forced deploy goes through)."""
        target = request.target
        # An approved request: its requester's rights were checked when asked, each approver's on their press.
        approved = confirmation is not None and confirmation.approval is not None
        refused = None if approved else await self.authorize(target, origin)
        if refused is not None:
            return refused, None, None
        refusal, lock = await self.lifecycle.obstacle(target, force=request.force, forcible=True)
        if refusal is not None:
            return refusal, None, lock
        freeze = freeze_of(self.catalog, target)
        if freeze is not None and not request.force:
            return frozen_text(self.catalog, target, freeze, forcible=True), None, lock
        try:
            plan = await deploy_action.prepare(request, self.deploy_deps)
        except (deploy_action.DeployRefused, AwsError) as exc:
            return text(f"Not deploying {target}: {exc}"), None, lock
        if confirmation is not None:
            changes = confirmation.pin.changes(plan)
            if changes:
                why = text(
                    f"Not deploying {target}: the target changed since the card was posted",
                    f" ({'; '.join(changes)}). Nothing ran; run the command again to see the new plan.",
                )
                return why, None, lock
        return None, plan, lock

    async def _claim_and_open(
        self, record: OperationRecord, origin: Origin, reply: Reply, front: Front
    ) -> Reporter | None:
        taken = await self.lifecycle.claim_and_open(record, front.open)
        if isinstance(taken, OperationRecord):
            await self.refuse(reply, origin, record.action, record.target, busy_text(record.target, taken))
            return None
        reporter = taken
        await self.lifecycle.audit.write(origin, record.action, record.target, f"started: {record.subject}")
        return reporter

    async def _ask_to_confirm(
        self,
        request: DeployRequest,
        plan: deploy_action.DeployPlan,
        origin: Origin,
        reply: Reply,
        front: Front,
        lock: Lock | None,
    ) -> None:
        pending = self.new_record("deploy", request.target, origin, plan.tag)
        pending.state, pending.phase, pending.channel = "pending", Phase.AWAITING_CONFIRMATION, origin.channel
        pending.extra = {
            "ref": request.ref,
            "force": request.force,
            "force_reason": request.force_reason,
            "pin": Pin.of(plan).to_dict(),
        }
        await self.lifecycle.save(pending)
        await self.lifecycle.audit.write(origin, "deploy requested", request.target, "awaiting confirmation")
        pending.ts = await front.ask_to_confirm(pending, plan, lock, reply)
        if pending.ts is not None:
            await self.lifecycle.save(pending)

    async def confirm(
        self, pending_id: str, origin: Origin, reply: Reply, front: Front, *, accept: bool
    ) -> None:
        """A Deploy or Cancel press on a confirmation: only the requester or an allowed user."""
        pending = await self.lifecycle.store.get(pending_id)
        if pending is None or pending.state != "pending":
            await reply(text("That confirmation was already used or cancelled; nothing changed."))
            return
        target = pending.target
        if origin.actor != pending.actor:
            refusal = await self.authorize(target, origin)
            if refusal is not None:
                only = text("Only ", mention(pending.actor), f" or someone allowed on {target} can confirm. ")
                await reply(text(only, refusal))
                return
        if time.time() - pending.created_at > CONFIRM_TTL_S:
            pending.state, pending.reason = "expired", "not confirmed within 10 minutes"
            await self.lifecycle.save(pending)
            await self.lifecycle.audit.write(origin, "confirm", target, "expired")
            await front.settle_confirmation(pending, text("expired, nothing changed."))
            await reply(
                text("That confirmation expired after 10 minutes; nothing changed. Run the command again.")
            )
            return
        pending.state = "confirmed" if accept else "cancelled"
        pending.ended_at = time.time()
        await self.lifecycle.save(pending)
        await self.lifecycle.audit.write(origin, "confirm" if accept else "cancel", target, pending.state)
        if not accept:
            await front.settle_confirmation(
                pending, text("cancelled, nothing changed. by ", mention(origin.actor))
            )
            await reply(
                text("Cancelled the deploy of ", code(pending.subject), f" to {target}; nothing changed.")
            )
            return
        pin = Pin.from_dict(pending.extra.get("pin") or {})
        if pin is None:
            await front.settle_confirmation(pending, text("not run: this card is from an older Tugboat."))
            await reply(
                text("That confirmation does not say exactly what it would ship; run the command again.")
            )
            return
        reason = pending.extra.get("force_reason")
        request = DeployRequest(target, pin.tag, str(reason) if reason is not None else None)
        requester = Origin(pending.actor, pending.channel or origin.channel, pending.trigger)
        await self.deploy(
            request, requester, reply, front, confirmation=Confirmation(pending, pin, origin.actor)
        )

    # -- approvals -------------------------------------------------------------------------

    async def _settle(self, front: Front, confirmation: Confirmation, outcome: Text) -> None:
        """Say on the card that let the plan run (a confirmation or an approval) what became of it."""
        if confirmation.approval is not None:
            await self.settle_approval(front, confirmation.approval, outcome)
        elif confirmation.pending is not None:
            await front.settle_confirmation(confirmation.pending, outcome)

    async def settle_approval(self, front: Front, approval: Approval, outcome: Text) -> None:
        """Record what an approved request led to, and show it on its card."""
        await self.approvals.record_outcome(approval, str(outcome))
        await front.show_approval(approval, plan_lines(approval), outcome)

    async def held_for_approval(
        self,
        action: str,
        target: Target,
        origin: Origin,
        reply: Reply,
        front: Front,
        *,
        subject: str,
        plan: dict[str, object],
        lines: list[Text],
        approval: Approval | None,
    ) -> bool:
        """The gate every changing verb passes: True when the caller must stop here, because an
        approval card was posted instead (or, away from Slack, the request was refused).

        `plan` is what the runner in `on_approved[action]` needs to run exactly this later;
        `approval` is the approved request the verb is running now, if it is.
        """
        rule = self.approvals.rule(target, action)
        if rule is None or approval is not None:
            return False
        await self._ask_to_approve(rule, action, target, origin, reply, front, subject, plan, lines)
        return True

    async def _ask_to_approve(
        self,
        rule: ApprovalRule,
        action: str,
        target: Target,
        origin: Origin,
        reply: Reply,
        front: Front,
        subject: str,
        plan: dict[str, object],
        lines: list[Text],
    ) -> None:
        approval = await self.approvals.open(
            rule, action, target, origin, subject=subject, plan=plan, lines=lines
        )
        ts = await front.ask_to_approve(approval, lines, reply)
        if ts is None:
            await self.approvals.settle(approval, "cancelled", "the card could not be posted")
            await self.refuse(reply, origin, action, target, text(f"{target} ", NEEDS_SLACK_APPROVAL))
            return
        await self.approvals.placed(approval, ts)
        self.approvals.expire_later(approval, functools.partial(self.show_expired, front))
        awaiting = f"{rule.required} approval{'s' if rule.required > 1 else ''}"
        await reply(text(f"{action.capitalize()} of {target} ", code(subject), f" awaits {awaiting}."))

    async def ask_to_approve_deploy(
        self,
        rule: ApprovalRule,
        request: DeployRequest,
        plan: deploy_action.DeployPlan,
        origin: Origin,
        reply: Reply,
        front: Front,
        lock: Lock | None,
    ) -> None:
        freeze = freeze_of(self.catalog, request.target) if request.force else None
        lines = deploy_plan_lines(plan, lock, freeze)
        if request.force_reason is not None:
            lines.append(text(emoji("rotating_light"), " Forced: ", request.force_reason))
        pinned: dict[str, object] = {
            "pin": Pin.of(plan).to_dict(),
            "ref": request.ref,
            "force_reason": request.force_reason,
        }
        await self._ask_to_approve(
            rule, "deploy", request.target, origin, reply, front, plan.tag, pinned, lines
        )

    async def show_expired(self, front: Front, approval: Approval) -> None:
        """A request that expired by itself, whichever replica posted it: its card says so."""
        await front.show_approval(approval, plan_lines(approval), expired_text(approval))

    async def approve(self, approval_id: str, origin: Origin, reply: Reply, front: Front) -> None:
        """An Approve press: counted once, by a distinct allowed user other than the requester;
        the last one needed runs the pinned plan."""
        pressed = await self.approvals.press(approval_id, origin)
        approval = pressed.approval
        if approval is None:
            await reply(text("I have no record of that approval request; nothing changed."))
            return
        lines = plan_lines(approval)
        match pressed.verdict:
            case "denied":
                await reply(pressed.refusal or text("You may not approve this."))
            case "own":
                await reply(text("You asked for this change: someone else has to approve it."))
            case "twice":
                await reply(text(f"You already approved this; it awaits {approval.awaiting} more."))
            case "closed":
                await reply(text(f"That request is {approval.state}; nothing changed. {approval.outcome}"))
            case "expired":
                await front.show_approval(approval, lines, expired_text(approval))
                await reply(text("That request expired; nothing changed. Ask again to see the current plan."))
            case "counted":
                await front.show_approval(approval, lines, None)
                await reply(text(f"Approved; it awaits {approval.awaiting} more."))
            case "approved":
                await front.show_approval(
                    approval, lines, text(emoji("hourglass_flowing_sand"), " Approved; starting…")
                )
                runner = self.on_approved.get(approval.action)
                if runner is None:
                    await self.settle_approval(
                        front, approval, text(f"not run: Tugboat cannot run {approval.action} here")
                    )
                    return
                await runner(approval, origin, reply, front)

    async def withdraw(self, approval_id: str, origin: Origin, reply: Reply, front: Front) -> None:
        """A Cancel press on an approval card: the requester, or someone who may approve."""
        approval = await self.approvals.store.get_approval(approval_id)
        if approval is None or approval.state != "open":
            await reply(text("That request was already settled; nothing changed."))
            return
        if origin.actor != approval.requester:
            refusal = await self.authorizer.may_approve(
                approval.target, origin.actor, origin.channel, approval.groups
            )
            if refusal is not None:
                await reply(text("Only the requester or someone who may approve can cancel. ", refusal))
                return
        outcome = text("Cancelled by ", mention(origin.actor), "; nothing ran.")
        if not await self.approvals.settle(approval, "cancelled", str(outcome)):
            await reply(text("That request was already settled; nothing changed."))
            return
        await self.lifecycle.audit.write(origin, "approval cancelled", approval.target, approval.id)
        await front.show_approval(approval, plan_lines(approval), outcome)
        await reply(text(f"Cancelled the {approval.action} of {approval.target}; nothing changed."))

    async def _approved_and_started(
        self, front: Front, approval: Approval, record: OperationRecord, reporter: Reporter | None
    ) -> None:
        """An approved request's card and thread say who approved; the card links the thread."""
        verdict = text("Approved by ", join((mention(user) for user in approval.approvers), ", "))
        if reporter is None:
            await self.settle_approval(front, approval, text(verdict, "; busy, not run"))
            return
        where = text(": ", record.permalink) if record.permalink else text()
        await self.settle_approval(front, approval, text(verdict, where))
        reporter.say(text(verdict, "."))

    def _requester(self, approval: Approval, approver: Origin) -> Origin:
        return Origin(approval.requester, approval.origin_channel or approver.channel, approval.trigger)

    async def _run_approved_deploy(
        self, approval: Approval, approver: Origin, reply: Reply, front: Front
    ) -> None:
        pin = Pin.from_dict(dict(approval.plan.get("pin") or {}))
        if pin is None:
            await self.settle_approval(
                front, approval, text("not run: the request does not say what it ships")
            )
            return
        reason = approval.plan.get("force_reason")
        request = DeployRequest(approval.target, pin.tag, str(reason) if reason is not None else None)
        confirmation = Confirmation(None, pin, approver.actor, approval)
        await self.deploy(
            request, self._requester(approval, approver), reply, front, confirmation=confirmation
        )

    async def _run_approved_rollback(
        self, approval: Approval, approver: Origin, reply: Reply, front: Front
    ) -> None:
        to = str(approval.plan.get("to") or "")
        services = approval.plan.get("to_services")
        await self.rollback(
            RollbackRequest(approval.target),
            self._requester(approval, approver),
            reply,
            front,
            to_task_definition=to or None,
            to_services={str(k): str(v) for k, v in services.items()} if isinstance(services, dict) else None,
            approval=approval,
        )

    async def _run_approved_task(
        self, approval: Approval, approver: Origin, reply: Reply, front: Front
    ) -> None:
        args = approval.plan.get("args")
        request = RunTaskRequest(
            approval.target,
            str(approval.plan.get("task")),
            tuple(str(a) for a in args) if isinstance(args, list) else (),
            schedule=bool(approval.plan.get("schedule")),
        )
        await self.run_task(request, self._requester(approval, approver), reply, front, approval=approval)

    async def _run_approved_scale(
        self, approval: Approval, approver: Origin, reply: Reply, front: Front
    ) -> None:
        count = approval.plan.get("count")
        request = ScaleRequest(
            approval.target, int(count) if isinstance(count, int) else -1, str(approval.plan.get("service"))
        )
        await self.scale(request, self._requester(approval, approver), reply, front, approval=approval)

    async def _run_approved_restart(
        self, approval: Approval, approver: Origin, reply: Reply, front: Front
    ) -> None:
        service = approval.plan.get("service")
        request = RestartRequest(approval.target, str(service) if service is not None else None)
        await self.restart(request, self._requester(approval, approver), reply, front, approval=approval)

    # -- rollback --------------------------------------------------------------------------

    async def rollback(
        self,
        request: RollbackRequest,
        origin: Origin,
        reply: Reply,
        front: Front,
        *,
        to_task_definition: str | None = None,
        to_services: dict[str, str] | None = None,
        approval: Approval | None = None,
    ) -> OperationRecord | None:
        """Check, find the revision to go back to, (ask for approval,) claim, and roll back.

        `to_task_definition` (one service) or `to_services` (a release): the revisions before a
        given operation, as its thread's Rollback button asks."""
        target = request.target
        rights = None if approval is not None else await self.authorize(target, origin)
        plain = rights is None and approval is None and request.revision is None
        described: dict[str, ServiceSnapshot] | None = None
        if plain and self.approvals.rule(target, "rollback") is None:
            refs = [ref for _, ref in self.catalog.release_refs(target.app, target.env)]
            described = await self.ecs.describe_services(refs)
            if await self._roll_back_natively(target, refs, described, origin, reply, front):
                return None
        refusal = rights or (await self.lifecycle.obstacle(target))[0]
        if refusal is not None:
            await self.refuse_approved(reply, origin, "rollback", target, refusal, front, approval)
            return None
        history = await self.lifecycle.store.history(target.app, target.env, 50)
        try:
            plan = await rollback_action.prepare(
                request,
                self.ecs,
                self.catalog,
                history,
                to_task_definition=to_task_definition,
                to_services=to_services,
                described=described,
            )
        except (rollback_action.RollbackRefused, AwsError) as exc:
            why = text(f"Not rolling back {target}: {exc}")
            await self.refuse_approved(reply, origin, "rollback", target, why, front, approval)
            return None
        changed = plan.changes(approval.plan) if approval is not None else []
        if changed:
            why = text(
                f"Not rolling back {target}: the target changed since the card was posted",
                f" ({'; '.join(changed)}). Nothing ran; ask again.",
            )
            await self.refuse_approved(reply, origin, "rollback", target, why, front, approval)
            return None
        if await self.held_for_approval(
            "rollback",
            target,
            origin,
            reply,
            front,
            subject=plan.subject,
            plan=plan.pin(),
            lines=rollback_plan_lines(plan),
            approval=approval,
        ):
            return None
        record = self.new_record("rollback", target, origin, plan.subject)
        record.previous_task_definition = plan.current_task_definition
        record.channel = plan.env.channel or origin.channel
        reporter = await self._claim_and_open(record, origin, reply, front)
        if approval is not None:
            await self._approved_and_started(front, approval, record, reporter)
        if reporter is None:
            return None
        to = f"revision {plan.revision}" if not plan.release else plan.subject
        await reply(text(f"Rolling back {target} to {to}: ", record.permalink or ""))

        async def body(emit: Emit, cancel: asyncio.Event) -> None:
            await emit(
                Started("rollback", target.app, target.env, origin.actor, record.subject, record.trigger)
            )
            await rollback_action.execute(plan, self.deploy_deps, emit, cancel)

        self.lifecycle.launch(record, reporter, body, origin)
        return record

    async def _roll_back_natively(
        self,
        target: Target,
        refs: list[ServiceRef],
        snapshots: dict[str, ServiceSnapshot],
        origin: Origin,
        reply: Reply,
        front: Front,
    ) -> bool:
        """A blue/green deployment paused or baking goes back the way ECS does it (SPEC part two):
        no new update. False when no service of `target` has one (roll back as usual)."""
        found = []
        for ref in refs:
            snapshot = snapshots.get(ref.key)
            state = await gated_action.rollback_candidate(self.ecs, snapshot) if snapshot else None
            if state is not None:
                found.append((ref, state))
        lock = await self.lifecycle.store.get_lock(target.app, target.env)
        if not found or lock is not None:
            return False
        calls = []
        for ref, state in found:
            hook = state.awaiting
            claim = answer_claim(state.arn, hook.hook_id) if hook is not None else None
            if claim is not None and not await self.lifecycle.store.first_delivery(claim):
                continue  # a Roll back or Continue press answered it just now
            try:
                calls.append(await gated_action.roll_back_natively(self.ecs, ref, state))
            except AwsError as exc:
                why = text(f"Not rolling back {target}: ECS refused its own rollback: {exc.aws_message}")
                await self.refuse(reply, origin, "rollback", target, why)
                return True
        await self.lifecycle.audit.write(origin, "rollback", target, "native: " + "; ".join(calls))
        running = await self.lifecycle.store.active_on(target.app, target.env)
        asked = text(
            emoji("rewind"),
            " ",
            mention(origin.actor),
            " ran ",
            code(f"/rollback {target}"),
            ": ECS rolls back.",
        )
        answered = {state.awaiting.hook_id for _, state in found if state.awaiting is not None}
        for gate in running.gates if running is not None else []:
            if running is not None and gate.hook_id in answered:
                self.lifecycle.pause_answered(running.id, gate.hook_id)
                await front.settle_pause(running, gate, asked)
        follow = (
            text(" Its thread follows it: ", link(running.permalink, "see the thread"))
            if (running is not None and running.permalink)
            else text(" ", code(f"/ecs-status {target}"), " shows it.")
        )
        line = text(
            emoji("rewind"),
            " ",
            mention(origin.actor),
            f" asked ECS to roll {target} back (blue/green:",
            " the previous revision still serves, so ECS moves traffic back instead of a new deployment).",
        )
        await self._announce(target, origin, front, line)
        await reply(text(f"ECS is rolling {target} back.", follow))
        return True

    # -- run-task --------------------------------------------------------------------------

    async def run_task(
        self,
        request: RunTaskRequest,
        origin: Origin,
        reply: Reply,
        front: Front,
        *,
        approval: Approval | None = None,
    ) -> OperationRecord | None:
        """Run a catalog task as a one-off ECS task, in its own story. Locks and freezes do not apply."""
        target = request.target
        if approval is None and not await self._permitted(target, origin, reply):
            return None
        try:
            plan = await run_task_action.prepare(
                request, self.ecs, self.catalog, origin.actor, self.schedules
            )
        except AwsError as exc:
            why = text("Not running ", code(request.task), f" on {target}: {exc}")
            await self.refuse(reply, origin, "run-task", target, why)
            return None
        except run_task_action.RunTaskRefused as exc:
            await self.refuse(reply, origin, "run-task", target, text(str(exc)))
            return None
        _, env = self.catalog.target(target.app, target.env)
        subject = shlex.join((request.task, *request.args))  # as typed: copyable, one word per argument
        if approval is not None and plan.task_definition != approval.plan.get("task_definition"):
            why = text(
                f"Not running {subject} on {target}: the service changed since the card was posted",
                f" (it now runs revision {revision_of(plan.task_definition)}). Nothing ran; ask again.",
            )
            await self.refuse_approved(reply, origin, "run-task", target, why, front, approval)
            return None
        pinned: dict[str, object] = {
            "task": request.task,
            "args": list(request.args),
            "schedule": request.schedule,
            "task_definition": plan.task_definition,
        }
        if await self.held_for_approval(
            "run-task",
            target,
            origin,
            reply,
            front,
            subject=subject,
            plan=pinned,
            lines=task_plan_lines(plan),
            approval=approval,
        ):
            return None
        record = self.new_record("run-task", target, origin, subject)
        record.channel = env.channel or origin.channel
        record.task_definition = plan.task_definition
        reporter = await self.lifecycle.lease_and_open(record, front.open)
        if approval is not None:
            await self._approved_and_started(front, approval, record, reporter)
        await self.lifecycle.audit.write(origin, "run-task", target, f"started: {subject}")
        await reply(text("Running ", code(subject), f" on {target}: ", record.permalink or ""))

        async def body(emit: Emit, cancel: asyncio.Event) -> None:
            await emit(Started("run-task", target.app, target.env, origin.actor, subject, record.trigger))
            await run_task_action.execute(plan, self.ecs, emit, cancel)

        self.lifecycle.launch(record, reporter, body, origin)
        return record

    # -- on-call: scale and restart ---------------------------------------------------------

    async def _remedy_refusal(
        self, target: Target, origin: Origin, approval: Approval | None = None
    ) -> Text | None:
        """Why `origin` may not scale or restart `target` now: the right to act (an approved
        request was judged when it was asked), and no deploy or rollback running there. A lock
        or a freeze does not stop a remedy (SPEC, like `/run-task`)."""
        refusal = await self.authorize(target, origin) if approval is None else None
        if refusal is not None:
            return refusal
        running = await self.lifecycle.store.active_on(target.app, target.env)
        return busy_text(target, running) if running is not None else None

    async def scale(
        self,
        request: ScaleRequest,
        origin: Origin,
        reply: Reply,
        front: Front,
        *,
        approval: Approval | None = None,
    ) -> OperationRecord | None:
        """Set one service's desired count, in its own thread, watched until that many run."""
        target = request.target
        refusal = await self._remedy_refusal(target, origin, approval)
        if refusal is None:
            try:
                plan = await scale_action.prepare(request, self.watcher, self.catalog)
            except AwsError as exc:
                refusal = text(f"Not scaling {target}: {exc}")
        if refusal is None and approval is not None and plan.previous != approval.plan.get("previous"):
            refusal = text(
                f"Not scaling {target}: {plan.service} runs {plan.previous} tasks now, not"
                f" {approval.plan.get('previous')} as the card showed. Nothing changed; ask again."
            )
        if refusal is not None:
            await self.refuse_approved(reply, origin, "scale", target, refusal, front, approval)
            return None
        pinned: dict[str, object] = {
            "service": plan.service,
            "count": plan.desired,
            "previous": plan.previous,
        }
        lines = [text("Scale ", code(plan.service), f" from {plan.previous} to {plan.desired} tasks.")]
        if await self.held_for_approval(
            "scale",
            target,
            origin,
            reply,
            front,
            subject=plan.subject,
            plan=pinned,
            lines=lines,
            approval=approval,
        ):
            return None
        record = self.new_record("scale", target, origin, plan.subject)
        record.channel = plan.env.channel or origin.channel
        record.extra = {"service": plan.service, "desired": plan.desired, "previous": plan.previous}
        reporter = await self.lifecycle.lease_and_open(record, front.open)
        if approval is not None:
            await self._approved_and_started(front, approval, record, reporter)
        await self.lifecycle.audit.write(origin, "scale", target, f"started: {plan.subject}")
        await reply(text(f"Scaling {target} {plan.subject}: ", record.permalink or ""))

        async def body(emit: Emit, cancel: asyncio.Event) -> None:
            await emit(Started("scale", target.app, target.env, origin.actor, plan.subject, record.trigger))
            await scale_action.execute(plan, self.ecs, self.watcher, emit, cancel)

        self.lifecycle.launch(record, reporter, body, origin)
        return record

    async def restart(
        self,
        request: RestartRequest,
        origin: Origin,
        reply: Reply,
        front: Front,
        *,
        approval: Approval | None = None,
    ) -> OperationRecord | None:
        """A new deployment of the running revision, of one service or the whole release; it
        holds the target like a rollout, so no deploy lands in the middle of it."""
        target = request.target
        refusal = await self._remedy_refusal(target, origin, approval)
        if refusal is None:
            try:
                plan = await restart_action.prepare(request, self.ecs, self.catalog)
            except (restart_action.RestartRefused, AwsError) as exc:
                refusal = text(f"Not restarting {target}: {exc}")
        running = [str(service[2]) for service in plan.services] if refusal is None else []
        if refusal is None and approval is not None and running != approval.plan.get("running"):
            refusal = text(
                f"Not restarting {target}: it runs other revisions than the card showed."
                " Nothing changed; ask again."
            )
        if refusal is not None:
            await self.refuse_approved(reply, origin, "restart", target, refusal, front, approval)
            return None
        pinned: dict[str, object] = {"service": request.service, "running": running}
        lines = [text("Restart ", code(plan.subject), ": a new deployment of the revision it runs now.")]
        if await self.held_for_approval(
            "restart",
            target,
            origin,
            reply,
            front,
            subject=plan.subject,
            plan=pinned,
            lines=lines,
            approval=approval,
        ):
            return None
        record = self.new_record("restart", target, origin, plan.subject)
        record.previous_task_definition = plan.services[0][2]
        record.channel = plan.env.channel or origin.channel
        reporter = await self._claim_and_open(record, origin, reply, front)
        if approval is not None:
            await self._approved_and_started(front, approval, record, reporter)
        if reporter is None:
            return None
        await reply(text(f"Restarting {target} ", code(plan.subject), ": ", record.permalink or ""))

        async def body(emit: Emit, cancel: asyncio.Event) -> None:
            await emit(Started("restart", target.app, target.env, origin.actor, plan.subject, record.trigger))
            await restart_action.execute(plan, self.ecs, self.watcher, emit, cancel)

        self.lifecycle.launch(record, reporter, body, origin)
        return record

    # -- cancel, locks, history ------------------------------------------------------------

    async def cancel(self, op_id: str, origin: Origin, reply: Reply) -> None:
        """The Cancel button: stop a one-off task, or stop a rollout and roll it back."""
        record = await self.lifecycle.store.get(op_id)
        if record is None or record.finished:
            await reply(text("That operation has already finished; there is nothing to cancel."))
            return
        if not await self._permitted(record.target, origin, reply):
            return
        if not self.lifecycle.cancel(op_id):
            await reply(text("That operation is not running on this replica; try again in a moment."))
            return
        what = text(
            f"Cancelling the {record.action} of ", code(record.subject), f" on {record.app} {record.env}."
        )
        await reply(what)

    async def lock(self, request: LockRequest, origin: Origin, reply: Reply, front: Front) -> None:
        """Hold a target: deploys, rollbacks and auto-deploys are refused until unlock."""
        target = request.target
        if not await self._permitted(target, origin, reply):
            return
        now = time.time()
        expires = now + request.seconds if request.seconds else None
        lock = Lock(target.app, target.env, origin.actor, request.reason, now, expires)
        existing = await self.lifecycle.store.lock(lock)
        if existing is not None:
            await reply(locked_text(target, existing))
            return
        await self.lifecycle.audit.write(origin, "lock", target, request.reason)
        line = text(
            emoji("lock"),
            " ",
            mention(origin.actor),
            f" locked {target}",
            until(expires),
            ": ",
            request.reason,
        )
        await self._announce(target, origin, front, line)
        await reply(text(f"Locked {target}."))

    async def unlock(self, request: UnlockRequest, origin: Origin, reply: Reply, front: Front) -> None:
        target = request.target
        if not await self._permitted(target, origin, reply):
            return
        removed = await self.lifecycle.store.unlock(target.app, target.env)
        if removed is None:
            await reply(text(f"{target} was not locked."))
            return
        await self.lifecycle.audit.write(
            origin, "unlock", target, f"was locked by {removed.holder}: {removed.reason}"
        )
        await self._announce(
            target, origin, front, text(emoji("unlock"), " ", mention(origin.actor), f" unlocked {target}.")
        )
        await reply(text(f"Unlocked {target}."))

    async def _announce(self, target: Target, origin: Origin, front: Front, line: Text) -> None:
        _, env = self.catalog.target(target.app, target.env)
        try:
            await front.announce(env.channel or origin.channel, line)
        except Exception:
            log.warning("could not announce", extra={"target": str(target)})

    async def history(self, request: HistoryRequest, origin: Origin) -> list[OperationRecord] | Text:
        """The last 10 changes to the services (deploys, rollbacks, restarts, scales), or the refusal."""
        refusal = await self.authorize(request.target, origin, write=False)
        if refusal is not None:
            return refusal
        records = await self.lifecycle.store.history(request.target.app, request.target.env, 50)
        shown = ("running", "succeeded", "failed")
        return [r for r in records if r.action in ROLLOUT_ACTIONS and r.state in shown][:10]

    async def expected_duration(self, target: Target) -> float | None:
        """The median length of the last few successful deploys of a target, if any."""
        records = await self.lifecycle.store.history(target.app, target.env, 20)
        recent = [
            r.ended_at - r.created_at
            for r in records
            if r.action == "deploy" and r.state == "succeeded" and r.ended_at is not None
        ][:5]
        took = sorted(recent)
        return took[len(took) // 2] if took else None

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop taking work; interrupt running operations, which stay recorded for resume."""
        self.accepting = False
        await self.approvals.stop()
        await self.lifecycle.stop(timeout)


def approved_by(confirmation: Confirmation) -> Text | None:
    """`Approved by @a, @b` when the plan runs by approval."""
    approval = confirmation.approval
    if approval is None:
        return None
    return text("Approved by ", join((mention(user) for user in approval.approvers), ", "))


def forced_through_freeze(timezone: str, freeze: FreezeWindow) -> Text:
    return text(f"Forced through the freeze until {when(freeze.ends, timezone)}: ", freeze.reason)


def expired_text(approval: Approval) -> Text:
    seconds = max(1, round(approval.expires_at - approval.created_at))
    took = f"{seconds} second{'s' * (seconds != 1)}" if seconds < 120 else f"{round(seconds / 60)} minutes"
    return text(emoji("hourglass"), f" Expired: not approved within {took}. Nothing ran.")
