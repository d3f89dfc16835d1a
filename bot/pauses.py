"""Answering a pause in a blue/green deployment: the Continue and Roll back buttons.

A press is checked like any change (the right to act; an approver, never the requester,
where the environment has `approval`), judged against ECS as it is now, and claimed in the
shared store, so each pause gets at most one ContinueServiceDeployment whoever presses,
however often, on whichever replica.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.change_control import ApprovalDesk
from bot.domain.aws import AwsError, ServiceRef
from bot.domain.catalog import Catalog
from bot.domain.gates import CONTINUE, ROLLBACK, answer_claim
from bot.domain.ports import Ecs
from bot.domain.records import GateEntry, OperationRecord
from bot.domain.text import Text, code, emoji, mention, text
from bot.lifecycle import Lifecycle, Origin
from bot.operations import Authorizer, Reply

CLAIM_TTL_S = 7 * 86_400


@dataclass(frozen=True)
class Answered:
    """What became of a press: the pause as shown, and the line its reply now ends with."""

    record: OperationRecord
    gate: GateEntry
    outcome: Text


@dataclass(eq=False, kw_only=True)
class PauseDesk:
    """Checks and carries out presses on pauses. Everything it needs is passed in."""

    catalog: Catalog
    ecs: Ecs
    lifecycle: Lifecycle
    authorizer: Authorizer
    approvals: ApprovalDesk

    async def answer(
        self, op_id: str, hook_id: str, action: str, origin: Origin, reply: Reply
    ) -> Answered | None:
        """Continue or roll back the deployment held at `hook_id`; None when the press changed
        nothing that its reply should show (the presser is told why)."""
        record = await self.lifecycle.store.get(op_id)
        gate = record.gate(hook_id) if record is not None else None
        if record is None or gate is None or not self.catalog.has(record.app, record.env):
            await reply(text("That pause is not one Tugboat knows about; nothing changed."))
            return None
        what = "continue" if action == CONTINUE else "roll back"
        refusal = await self._refusal(record, origin)
        if refusal is not None:
            await reply(refusal)
            await self.lifecycle.audit.write(
                origin, f"pause {what}", record.target, text("refused: ", refusal)
            )
            return None
        ref = self._ref(record, gate)
        state = await self.ecs.describe_service_deployment(ref, gate.service_deployment)
        hook = state.hook(hook_id) if state is not None else None
        if state is None or hook is None or not hook.awaiting:
            now = f"hook {hook.status}" if hook is not None else "no such hook"
            status = state.status if state is not None else "unknown"
            why = text(f"This pause is no longer waiting (ECS: {now}, deployment {status}); nothing changed.")
            await reply(why)
            await self.lifecycle.audit.write(
                origin, f"pause {what}", record.target, text("nothing to do: ", why)
            )
            return Answered(record, gate, why)
        if not await self.lifecycle.store.first_delivery(
            answer_claim(gate.service_deployment, hook_id), CLAIM_TTL_S
        ):
            await reply(text("Someone already answered this pause; nothing changed."))
            return None
        try:
            await self.ecs.continue_service_deployment(ref, gate.service_deployment, hook_id, action)
        except AwsError as exc:
            why = text(f"ECS refused to {what}: {exc.aws_message}. Its timeout still applies.")
            await reply(why)
            await self.lifecycle.audit.write(origin, f"pause {what}", record.target, text("failed: ", why))
            return Answered(
                record, gate, text(emoji("warning"), " ", mention(origin.actor), " pressed: ", why)
            )
        self.lifecycle.pause_answered(record.id, hook_id)
        await self.lifecycle.audit.write(
            origin, f"pause {what}", record.target, f"{gate.stage}: ContinueServiceDeployment {action}"
        )
        return Answered(record, gate, _done(origin, action))

    async def _refusal(self, record: OperationRecord, origin: Origin) -> Text | None:
        """The right to act; with `approval`, an approver other than whoever asked for the change."""
        target = record.target
        rule = self.approvals.rule(target, record.action)
        if rule is None:
            return await self.authorizer.check(target, origin.actor, origin.channel, write=True)
        if origin.actor == record.actor:
            return text(
                f"{target} needs approval: a pause in your own {record.action} is answered by"
                " another approver."
            )
        return await self.authorizer.may_approve(target, origin.actor, origin.channel, rule.groups)

    def _ref(self, record: OperationRecord, gate: GateEntry) -> ServiceRef:
        refs = self.catalog.release_refs(record.app, record.env)
        named = [ref for entry, ref in refs if entry.name == gate.service]
        return named[0] if named else refs[0][1]


def _done(origin: Origin, action: str) -> Text:
    if action == ROLLBACK:
        return text(
            emoji("rewind"), " ", mention(origin.actor), " pressed ", code("Roll back"), ": ECS rolls back."
        )
    return text(
        emoji("arrow_forward"), " ", mention(origin.actor), " pressed ", code("Continue"), ": ECS goes on."
    )
