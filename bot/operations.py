"""Operations: an understood request becomes one checked, claimed, recorded, tracked operation.

Each verb reads top-down: check (rights, lock, busy), prepare (read ECS, change nothing),
claim and open the story, then hand the action to the lifecycle. Where the story is told
(a Slack thread, a terminal) is the `Front` an adapter passes in; nothing here knows Slack.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import time
from dataclasses import dataclass, field
from typing import Protocol

from bot.domain.aws import AwsError
from bot.domain.catalog import Catalog
from bot.domain.events import Emit, Note, Started
from bot.domain.ports import Ecs, Schedules, Watcher
from bot.domain.records import Lock, OperationRecord, Phase, Target
from bot.domain.text import Text, code, emoji, mention, text
from bot.lifecycle import Lifecycle, Origin, Reporter, busy_text, locked_text, until
from commands import deploy as deploy_action
from commands import rollback as rollback_action
from commands import run_task as run_task_action
from commands.deploy import Pin
from commands.grammar import (
    DeployRequest,
    HistoryRequest,
    LockRequest,
    RollbackRequest,
    RunTaskRequest,
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


@dataclass(frozen=True)
class Confirmation:
    """A press on a confirmation card: the pending request, what it pinned, who pressed."""

    pending: OperationRecord
    pin: Pin
    by: str


class Authorizer(Protocol):
    async def check(self, target: Target, actor: str, channel: str | None, *, write: bool) -> Text | None: ...


@dataclass(eq=False, kw_only=True)
class Operations:
    """The verbs, over the one lifecycle. Everything it needs is passed in."""

    catalog: Catalog
    ecs: Ecs
    watcher: Watcher
    schedules: Schedules
    lifecycle: Lifecycle
    authorizer: Authorizer
    accepting: bool = field(default=True, init=False)

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
        if refusal is not None or plan is None:
            why = refusal or text("nothing to deploy")
            if confirmation is not None:
                await front.settle_confirmation(confirmation.pending, text("not run: ", why))
            await self.refuse(reply, origin, "deploy", target, why)
            return None
        if plan.env.confirm and confirmation is None and ask_to_confirm:
            await self._ask_to_confirm(request, plan, origin, reply, front, lock)
            return None
        record = self.new_record("deploy", target, origin, plan.tag)
        record.previous_task_definition = plan.current_task_definition
        record.channel = plan.env.channel or origin.channel
        reporter = await self._claim_and_open(record, origin, reply, front)
        if confirmation is not None:
            verdict = text("confirmed by ", mention(confirmation.by))
            await front.settle_confirmation(
                confirmation.pending, verdict if reporter else text(verdict, "; busy, not run")
            )
        if reporter is None:
            return None
        await reply(text(f"Deploying {target} ", code(plan.tag), ": ", record.permalink or ""))
        if lock is not None:
            await self.lifecycle.audit.write(
                origin, "force", target, f"deployed through lock by {lock.holder}"
            )
        if confirmation is not None:
            reporter.say(text("Confirmed by ", mention(confirmation.by), "."))
        expected = await self.expected_duration(target)

        async def body(emit: Emit, cancel: asyncio.Event) -> None:
            await emit(Started("deploy", record.app, record.env, record.actor, plan.tag, record.trigger))
            if lock is not None:
                holder = text(mention(lock.holder), ": ", lock.reason)
                await emit(Note(text("Forced through the lock held by ", holder), loud=True))
            await deploy_action.execute(
                plan, self.deploy_deps, emit, actor=record.actor, cancel=cancel, expected_s=expected
            )

        self.lifecycle.launch(record, reporter, body, origin)
        return record

    async def _plan_deploy(
        self, request: DeployRequest, origin: Origin, confirmation: Confirmation | None
    ) -> tuple[Text | None, deploy_action.DeployPlan | None, Lock | None]:
        """The refusal, or the plan (and the lock a forced deploy goes through)."""
        target = request.target
        refused = await self.authorize(target, origin)
        if refused is not None:
            return refused, None, None
        refusal, lock = await self.lifecycle.obstacle(target, force=request.force, forcible=True)
        if refusal is not None:
            return refusal, None, lock
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
        pending.extra = {"ref": request.ref, "force": request.force, "pin": Pin.of(plan).to_dict()}
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
        request = DeployRequest(target, pin.tag, bool(pending.extra.get("force")))
        requester = Origin(pending.actor, pending.channel or origin.channel, pending.trigger)
        await self.deploy(
            request, requester, reply, front, confirmation=Confirmation(pending, pin, origin.actor)
        )

    # -- rollback --------------------------------------------------------------------------

    async def rollback(
        self,
        request: RollbackRequest,
        origin: Origin,
        reply: Reply,
        front: Front,
        *,
        to_task_definition: str | None = None,
    ) -> OperationRecord | None:
        """Check, find the revision to go back to, claim, and roll back."""
        target = request.target
        refusal = await self.authorize(target, origin) or (await self.lifecycle.obstacle(target))[0]
        if refusal is not None:
            await self.refuse(reply, origin, "rollback", target, refusal)
            return None
        history = await self.lifecycle.store.history(target.app, target.env, 50)
        try:
            plan = await rollback_action.prepare(
                request, self.ecs, self.catalog, history, to_task_definition=to_task_definition
            )
        except (rollback_action.RollbackRefused, AwsError) as exc:
            await self.refuse(reply, origin, "rollback", target, text(f"Not rolling back {target}: {exc}"))
            return None
        record = self.new_record("rollback", target, origin, f"rev {plan.revision}")
        record.previous_task_definition = plan.current_task_definition
        record.channel = plan.env.channel or origin.channel
        reporter = await self._claim_and_open(record, origin, reply, front)
        if reporter is None:
            return None
        await reply(text(f"Rolling back {target} to revision {plan.revision}: ", record.permalink or ""))

        async def body(emit: Emit, cancel: asyncio.Event) -> None:
            await emit(
                Started("rollback", target.app, target.env, origin.actor, record.subject, record.trigger)
            )
            await rollback_action.execute(plan, self.deploy_deps, emit, cancel)

        self.lifecycle.launch(record, reporter, body, origin)
        return record

    # -- run-task --------------------------------------------------------------------------

    async def run_task(
        self, request: RunTaskRequest, origin: Origin, reply: Reply, front: Front
    ) -> OperationRecord | None:
        """Run a catalog task as a one-off ECS task, in its own story. Locks do not apply."""
        target = request.target
        if not await self._permitted(target, origin, reply):
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
        record = self.new_record("run-task", target, origin, subject)
        record.channel = env.channel or origin.channel
        record.task_definition = plan.task_definition
        reporter = await self.lifecycle.lease_and_open(record, front.open)
        await self.lifecycle.audit.write(origin, "run-task", target, f"started: {subject}")
        await reply(text("Running ", code(subject), f" on {target}: ", record.permalink or ""))

        async def body(emit: Emit, cancel: asyncio.Event) -> None:
            await emit(Started("run-task", target.app, target.env, origin.actor, subject, record.trigger))
            await run_task_action.execute(plan, self.ecs, emit, cancel)

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
        """The last 10 deploys and rollbacks, or the refusal."""
        refusal = await self.authorize(request.target, origin, write=False)
        if refusal is not None:
            return refusal
        records = await self.lifecycle.store.history(request.target.app, request.target.env, 50)
        shown = ("running", "succeeded", "failed")
        return [r for r in records if r.action in ("deploy", "rollback") and r.state in shown][:10]

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
        await self.lifecycle.stop(timeout)
