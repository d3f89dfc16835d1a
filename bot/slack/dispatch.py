"""Dispatcher: from command text (or a press) to the operation that carries it out.

Slash commands, mentions, buttons and the sandbox all come through here, so every entry
point gets the same parsing, the same permission checks and the same tracking.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from bot.domain.aws import revision_of
from bot.domain.catalog import Catalog
from bot.domain.ports import Ecs
from bot.domain.records import Target
from bot.domain.text import Text, bold, code, join, text
from bot.lifecycle import Origin, TaskTracker
from bot.operations import Operations, Reply
from bot.pauses import PauseDesk
from bot.report.freezes import freeze_lines
from bot.report.status import action_by, thread_link
from bot.slack import status_cards as status_view
from bot.slack.api import SlackApi
from bot.slack.front import SlackFront
from bot.slack.gates import parse_gate_value
from bot.slack.replies import SlackReply
from bot.state import StateStore
from commands import stats as stats_action
from commands import status as status_action
from commands.grammar import (
    DeployRequest,
    FreezesRequest,
    HelpRequest,
    HistoryRequest,
    LockRequest,
    Request,
    RestartRequest,
    RollbackRequest,
    RunTaskRequest,
    ScaleRequest,
    StatsRequest,
    StatusRequest,
    UnlockRequest,
    UsageError,
    help_text,
    parse_mention,
    parse_slash,
)

log = logging.getLogger(__name__)

RESTARTING = text("Tugboat is restarting; try again in a minute.")

OVERVIEW_FRESH_S = 15.0
"""An overview or Home tab reuses service snapshots this recent: with hundreds of services,
each look costs dozens of describes from the bucket the rollout watcher needs too."""

Post = Callable[[str, list[dict[str, Any]]], Awaitable[None]]
"""Posts a visible message where the request came from (the channel, or the mention's thread)."""


@dataclass(eq=False, kw_only=True)
class Dispatcher:
    """Parses, checks and routes each request, in a task the tracker keeps."""

    operations: Operations
    front: SlackFront
    slack: SlackApi
    store: StateStore
    catalog: Catalog
    ecs: Ecs
    tracker: TaskTracker
    received: int = field(default=0, init=False)

    # -- entry points ----------------------------------------------------------------------

    def submit(self, work: Awaitable[None], name: str) -> None:
        self.received += 1

        async def run() -> None:
            await work

        # A coroutine runs as the task itself: cancelled at shutdown before it started, it is
        # closed with the task, not left never awaited inside a wrapper.
        self.tracker.spawn(work if isinstance(work, Coroutine) else run(), name)

    def submit_slash(self, command: str, words: str, origin: Origin, reply: Reply) -> None:
        self.submit(self.slash(command, words, origin, reply), f"slash-{command}")

    def submit_mention(self, words: str, origin: Origin, event_id: str | None) -> None:
        self.submit(self.mention(words, origin, event_id), "mention")

    async def slash(self, command: str, words: str, origin: Origin, reply: Reply) -> None:
        if not self.operations.accepting:
            await reply(RESTARTING)
            return
        try:
            request = parse_slash(command, words, self.catalog)
        except UsageError as exc:
            await reply(usage(exc))
            return
        await self.handle(request, origin, reply, self._poster(origin))

    async def mention(self, words: str, origin: Origin, event_id: str | None) -> None:
        """`@Tugboat …`, in a channel or a thread; Slack's retries of one event act once."""
        if event_id is not None and not await self.store.first_delivery(f"slack-event:{event_id}"):
            return
        reply = self.ephemeral(origin)
        if not self.operations.accepting:
            await reply(RESTARTING)
            return
        try:
            request = parse_mention(words, self.catalog)
        except UsageError as exc:
            await reply(usage(exc))
            return
        await self.handle(request, origin, reply, self._poster(origin))

    # -- routing ---------------------------------------------------------------------------

    async def handle(self, request: Request, origin: Origin, reply: Reply, post: Post) -> None:
        log.info("request", extra={"verb": request.verb, "actor": origin.actor, "channel": origin.channel})
        ops, front = self.operations, self.front
        match request:
            case DeployRequest():
                await ops.deploy(request, origin, reply, front)
            case RollbackRequest():
                await ops.rollback(request, origin, reply, front)
            case RunTaskRequest():
                await ops.run_task(request, origin, reply, front)
            case ScaleRequest():
                await ops.scale(request, origin, reply, front)
            case RestartRequest():
                await ops.restart(request, origin, reply, front)
            case StatusRequest():
                await self.status(request, origin, reply, post)
            case LockRequest():
                await ops.lock(request, origin, reply, front)
            case UnlockRequest():
                await ops.unlock(request, origin, reply, front)
            case FreezesRequest():
                await self.freezes(request, origin, reply)
            case HistoryRequest():
                await self.history(request, origin, reply)
            case StatsRequest():
                await self.stats(request, origin, reply)
            case HelpRequest():
                await reply(text(help_text()))

    async def may_act(self, target: Target, origin: Origin) -> bool:
        """Whether the card shows Restart and Scale: only to people who may act (each press is
        checked again, like every action)."""
        return await self.operations.authorize(target, origin, audit=False) is None

    async def readable(self, targets: list[Target], origin: Origin) -> list[Target]:
        """The targets `origin` may read: every status and overview goes through this one check.

        Asking for one target is a request (a refusal is audited); an overview only filters.
        """
        asked = len(targets) == 1
        return [
            t for t in targets if await self.operations.authorize(t, origin, write=False, audit=asked) is None
        ]

    async def status(self, request: StatusRequest, origin: Origin, reply: Reply, post: Post) -> None:
        targets = status_action.targets_for(self.catalog, request.app, request.env)
        allowed = await self.readable(targets, origin)
        if not allowed:
            await reply(text("You may not read the status of " + ", ".join(map(str, targets)) + "."))
            return
        single = request.env is not None
        statuses = await status_action.describe(
            allowed,
            self.ecs,
            self.catalog,
            self.store,
            detail=single,
            schedules=self.operations.schedules,
            fresh_within_s=0.0 if single else OVERVIEW_FRESH_S,
        )
        if single:
            may_act = await self.may_act(statuses[0].target, origin)
            blocks = status_view.card_blocks(statuses[0], may_act=may_act)
            await post(f"{statuses[0].target}: {statuses[0].state}", blocks)
        else:
            messages = status_view.overview_messages(statuses)
            for number, blocks in enumerate(messages, start=1):
                part = f" ({number}/{len(messages)})" if len(messages) > 1 else ""
                await post(f"Service status{part}", blocks)

    async def freezes(self, request: FreezesRequest, origin: Origin, reply: Reply) -> None:
        """`/tugboat freezes [APP [ENV]]`: current and next windows of each environment one may read."""
        targets = status_action.targets_for(self.catalog, request.app, request.env)
        allowed = await self.readable(targets, origin)
        if not allowed:
            await reply(text("You may not read " + ", ".join(map(str, targets)) + "."))
            return
        await reply(join([bold("Freeze windows"), *freeze_lines(self.catalog, allowed)], "\n"))

    async def history(self, request: HistoryRequest, origin: Origin, reply: Reply) -> None:
        records = await self.operations.history(request, origin)
        if isinstance(records, Text):
            await reply(records)
            return
        if not records:
            await reply(text(f"No deploys of {request.target} are recorded yet."))
            return
        lines = [bold(f"Last {len(records)} deploys and rollbacks of {request.target}:")]
        for record in records:
            revs = ""
            if record.previous_task_definition and record.task_definition:
                before = revision_of(record.previous_task_definition)
                revs = f" rev {before}→{revision_of(record.task_definition)}"
            took = f" in {int(record.ended_at - record.created_at)}s" if record.ended_at else ""
            lines.append(text("• ", action_by(record), f"{revs}: {record.state}{took}", thread_link(record)))
        await reply(join(lines, "\n"))

    async def stats(self, request: StatsRequest, origin: Origin, reply: Reply) -> None:
        """The DORA figures of one target, from its recorded history (for whoever may read it)."""
        refusal = await self.operations.authorize(request.target, origin, write=False)
        if refusal is not None:
            await reply(refusal)
            return
        target = request.target
        history = await self.store.history(target.app, target.env, stats_action.HISTORY_LIMIT)
        found = stats_action.figures(history, now=time.time(), days=request.days)
        await reply(join(stats_action.lines(target, found), "\n"))

    async def refresh_status(self, target: Target, origin: Origin, channel: str, ts: str) -> None:
        """The Refresh button: the same card, updated in place."""
        if await self.operations.authorize(target, origin, write=False) is not None:
            return
        statuses = await status_action.describe(
            [target], self.ecs, self.catalog, self.store, detail=True, schedules=self.operations.schedules
        )
        may_act = await self.may_act(target, origin)
        await self.slack.update(
            channel,
            ts,
            f"{target}: {statuses[0].state}",
            status_view.card_blocks(statuses[0], may_act=may_act),
        )

    async def answer_pause(self, value: str, action: str, origin: Origin, reply: Reply, ts: str) -> None:
        """Continue or Roll back on a pause's reply: answered once, then the reply says by whom."""
        parsed = parse_gate_value(value)
        if parsed is None:
            await reply(text("That button is not one Tugboat knows; nothing changed."))
            return
        answered = await self.pauses.answer(parsed[0], parsed[1], action, origin, reply)
        if answered is not None:
            answered.gate.ts = ts or answered.gate.ts
            await self.front.settle_pause(answered.record, answered.gate, answered.outcome)

    @functools.cached_property
    def pauses(self) -> PauseDesk:
        ops = self.operations
        return PauseDesk(
            catalog=self.catalog,
            ecs=self.ecs,
            lifecycle=ops.lifecycle,
            authorizer=ops.authorizer,
            approvals=ops.approvals,
        )

    async def home(self, user: str) -> None:
        """The Home tab: every app and environment this user may read, with state and last deploy.

        The Home tab is in no channel: an environment with `allowed_channels` is left out, as it is
        from an `/ecs-status` typed outside those channels."""
        origin = Origin(actor=user, channel="", trigger="home tab")
        targets = await self.readable(status_action.targets_for(self.catalog, None, None), origin)
        statuses = await status_action.describe(
            targets, self.ecs, self.catalog, self.store, detail=False, fresh_within_s=OVERVIEW_FRESH_S
        )
        await self.slack.call("views.publish", user_id=user, view=status_view.home_view(statuses))

    # -- replies ---------------------------------------------------------------------------

    def ephemeral(self, origin: Origin) -> SlackReply:
        slack = self.slack

        async def send(summary: str, blocks: list[dict[str, Any]] | None) -> None:
            await slack.ephemeral(origin.channel, origin.actor, summary, blocks, thread_ts=origin.thread_ts)

        return SlackReply(send)

    def _poster(self, origin: Origin) -> Post:
        slack = self.slack

        async def post(summary: str, blocks: list[dict[str, Any]]) -> None:
            await slack.post(origin.channel, summary, blocks, thread_ts=origin.thread_ts)

        return post


def usage(exc: UsageError) -> Text:
    """The grammar's refusal as Slack shows it: the problem, then the usage in code."""
    if exc.usage:
        return text(exc.problem, "\nUsage: ", code(exc.usage))
    return text(exc.problem)
