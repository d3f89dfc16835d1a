"""SlackFront: operations told in Slack: a thread per operation, confirmation cards, announcements.

The adapter between the Slack-free operations and the Web API; the thread itself (coalesced
edits, 429-safe) is `ThreadReporter`.
"""

from __future__ import annotations

import logging
from dataclasses import KW_ONLY, dataclass
from typing import Any

from bot.domain.approvals import Approval
from bot.domain.records import GateEntry, Lock, OperationRecord
from bot.domain.text import Text, code, mention, mrkdwn, text
from bot.lifecycle import Reporter
from bot.operations import CONFIRM_TTL_S, Reply
from bot.report.view import ThreadView
from bot.slack.api import SlackApi
from bot.slack.confirm import approval_blocks, confirmation_blocks
from bot.slack.gates import gate_blocks
from bot.slack.replies import SlackReply
from bot.slack.thread import ThreadReporter
from commands.deploy import DeployPlan

log = logging.getLogger(__name__)


@dataclass(eq=False)
class SlackFront:
    """The `Front` of every operation started from Slack, GitHub or a resume."""

    slack: SlackApi
    _: KW_ONLY
    thread_interval_s: float = 3.0

    async def open(self, record: OperationRecord) -> Reporter:
        reporter = self._reporter(record)
        record.ts = await reporter.open()
        record.permalink = reporter.permalink
        return reporter

    async def reopen(self, record: OperationRecord) -> Reporter:
        assert record.ts is not None
        reporter = self._reporter(record, ts=record.ts)
        await reporter.open()
        return reporter

    def _reporter(self, record: OperationRecord, ts: str | None = None) -> ThreadReporter:
        """The record's thread; `ts` is its parent message when it already has one."""
        assert record.channel is not None
        view = ThreadView(record)
        return ThreadReporter(self.slack, record.channel, view, ts=ts, min_interval_s=self.thread_interval_s)

    async def announce(self, channel: str, line: Text) -> None:
        await self.slack.post(channel, mrkdwn(line))

    async def ask_to_confirm(
        self, pending: OperationRecord, plan: DeployPlan, lock: Lock | None, reply: Reply
    ) -> str | None:
        summary, blocks = confirmation_blocks(pending.id, plan, lock, CONFIRM_TTL_S)
        assert pending.channel is not None
        try:
            return await self.slack.post(pending.channel, summary, blocks)
        except Exception:
            log.info(
                "confirmation not postable in channel; sent privately", extra={"channel": pending.channel}
            )
            if isinstance(reply, SlackReply):
                await reply.with_blocks(summary, blocks)
            return None

    async def ask_to_approve(self, approval: Approval, lines: list[Text], reply: Reply) -> str | None:
        """The approval card, where the environment's people look (they approve, not the requester)."""
        summary, blocks = approval_blocks(approval, lines)
        try:
            return await self.slack.post(approval.channel, summary, blocks)
        except Exception:
            log.warning("could not post an approval card", extra={"channel": approval.channel})
            return None

    async def show_approval(self, approval: Approval, lines: list[Text], outcome: Text | None) -> None:
        """Draw the approval card again: approvers so far, or what became of the request."""
        if approval.ts is None:
            return
        summary, blocks = approval_blocks(approval, lines, outcome)
        await self._redraw(approval.channel, approval.ts, summary, blocks, "an approval card")

    async def settle_pause(self, record: OperationRecord, gate: GateEntry, outcome: Text) -> None:
        if gate.ts is None or record.channel is None:
            return
        summary, blocks = gate_blocks(record, gate, outcome)
        await self._redraw(record.channel, gate.ts, summary, blocks, "a pause's reply")

    async def _redraw(
        self, channel: str, ts: str, summary: str, blocks: list[dict[str, Any]], what: str
    ) -> None:
        """Edit a card or reply in place; a failed edit is logged, never raised into the work."""
        try:
            await self.slack.update(channel, ts, summary, blocks)
        except Exception:
            log.warning("could not update %s", what, extra={"channel": channel, "ts": ts})

    async def settle_confirmation(self, pending: OperationRecord, outcome: Text) -> None:
        """Replace the confirmation's buttons with what became of it."""
        if pending.ts is None or pending.channel is None:
            return
        line = mrkdwn(
            text(f"Deploy {pending.app} {pending.env} ", code(pending.subject), " requested by ")
            + mention(pending.actor)
            + text(": ", outcome)
        )
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": line}}]
        try:
            await self.slack.update(pending.channel, pending.ts, line, blocks)
        except Exception:
            log.warning("could not settle a confirmation card", extra={"op": pending.id})
