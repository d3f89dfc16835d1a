"""Dispatcher: from command text (or a click) to the operation that carries it out.

Slash commands, mentions, buttons and the sandbox all come through here, so every entry
point gets the same parsing, the same permission checks and the same tracking.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bot.domain.aws import revision_of
from bot.domain.catalog import who
from bot.domain.records import Target
from bot.operations import OperationRunner, Origin, Reply
from bot.slack import status_cards as status_view
from commands import status as status_action
from commands.grammar import (
    DeployRequest,
    HelpRequest,
    HistoryRequest,
    LockRequest,
    Request,
    RollbackRequest,
    RunTaskRequest,
    StatusRequest,
    UnlockRequest,
    UsageError,
    help_text,
    parse_mention,
    parse_slash,
)

log = logging.getLogger(__name__)

RESTARTING = "Tugboat is restarting; try again in a minute."

Post = Callable[[str, list[dict[str, Any]]], Awaitable[None]]
"""Posts a visible message where the request came from (the channel, or the mention's thread)."""


class Dispatcher:
    """Parses, checks and routes each request, in a task the runner tracks."""

    def __init__(self, runner: OperationRunner) -> None:
        self.runner = runner
        self.received = 0

    # -- entry points ----------------------------------------------------------------------

    def submit_slash(self, command: str, text: str, origin: Origin, reply: Reply) -> None:
        self.received += 1
        self.runner.submit(self.slash(command, text, origin, reply), f"slash-{command}")

    def submit_mention(self, text: str, origin: Origin, event_id: str | None) -> None:
        self.received += 1
        self.runner.submit(self.mention(text, origin, event_id), "mention")

    def submit(self, work: Awaitable[None], name: str) -> None:
        self.received += 1

        async def run() -> None:
            await work

        self.runner.submit(run(), name)

    async def slash(self, command: str, text: str, origin: Origin, reply: Reply) -> None:
        if not self.runner.accepting:
            await reply(RESTARTING)
            return
        try:
            request = parse_slash(command, text, self.runner.catalog)
        except UsageError as exc:
            await reply(str(exc))
            return
        await self.handle(request, origin, reply, self._poster(origin))

    async def mention(self, text: str, origin: Origin, event_id: str | None) -> None:
        """`@Tugboat …`, in a channel or a thread; Slack's retries of one event act once."""
        if event_id is not None and not await self.runner.store.first_delivery(f"slack-event:{event_id}"):
            return
        reply = self._ephemeral(origin)
        if not self.runner.accepting:
            await reply(RESTARTING)
            return
        try:
            request = parse_mention(text, self.runner.catalog)
        except UsageError as exc:
            await reply(str(exc))
            return
        await self.handle(request, origin, reply, self._poster(origin))

    # -- routing ---------------------------------------------------------------------------

    async def handle(self, request: Request, origin: Origin, reply: Reply, post: Post) -> None:
        log.info(
            "request",
            extra={"verb": request.verb, "actor": origin.actor, "channel": origin.channel},
        )
        runner = self.runner
        match request:
            case DeployRequest():
                await runner.deploy(request, origin, reply)
            case RollbackRequest():
                await runner.rollback(request, origin, reply)
            case RunTaskRequest():
                await runner.run_task(request, origin, reply)
            case StatusRequest():
                await self.status(request, origin, reply, post)
            case LockRequest():
                await runner.lock(request, origin, reply)
            case UnlockRequest():
                await runner.unlock(request, origin, reply)
            case HistoryRequest():
                await self.history(request, origin, reply)
            case HelpRequest():
                await reply(help_text())

    async def status(self, request: StatusRequest, origin: Origin, reply: Reply, post: Post) -> None:
        runner = self.runner
        targets = status_action.targets_for(runner.catalog, request.app, request.env)
        allowed = [t for t in targets if await runner.authorize(t, origin, write=False) is None]
        if not allowed:
            await reply("You may not read the status of " + ", ".join(map(str, targets)) + ".")
            return
        single = request.env is not None
        statuses = await status_action.describe(
            allowed, runner.ecs, runner.catalog, runner.store, detail=single
        )
        if single:
            await post(f"{statuses[0].target}: {statuses[0].state}", status_view.card_blocks(statuses[0]))
        else:
            await post("Service status", status_view.overview_blocks(statuses))

    async def history(self, request: HistoryRequest, origin: Origin, reply: Reply) -> None:
        records = await self.runner.history(request, origin)
        if isinstance(records, str):
            await reply(records)
            return
        if not records:
            await reply(f"No deploys of {request.target} are recorded yet.")
            return
        lines = [f"*Last {len(records)} deploys and rollbacks of {request.target}:*"]
        for record in records:
            revs = ""
            if record.previous_task_definition and record.task_definition:
                before = revision_of(record.previous_task_definition)
                revs = f" rev {before}→{revision_of(record.task_definition)}"
            took = f" in {int(record.ended_at - record.created_at)}s" if record.ended_at else ""
            link = f" <{record.permalink}|thread>" if record.permalink else ""
            lines.append(
                f"• {record.action} `{record.subject}` by {who(record.actor)}{revs}:"
                f" {record.state}{took}{link}"
            )
        await reply("\n".join(lines))

    async def refresh_status(self, target: Target, origin: Origin, channel: str, ts: str) -> None:
        """The Refresh button: the same card, updated in place."""
        runner = self.runner
        if await runner.authorize(target, origin, write=False) is not None:
            return
        statuses = await status_action.describe(
            [target], runner.ecs, runner.catalog, runner.store, detail=True
        )
        await runner.slack.update(
            channel, ts, f"{target}: {statuses[0].state}", status_view.card_blocks(statuses[0])
        )

    async def home(self, user: str) -> None:
        """The Home tab: every app and environment with its state and last deploy."""
        runner = self.runner
        targets = status_action.targets_for(runner.catalog, None, None)
        statuses = await status_action.describe(
            targets, runner.ecs, runner.catalog, runner.store, detail=False
        )
        await runner.slack.call("views.publish", user_id=user, view=status_view.home_view(statuses))

    # -- replies ---------------------------------------------------------------------------

    def _ephemeral(self, origin: Origin) -> Reply:
        slack = self.runner.slack

        async def reply(text: str, blocks: list[dict[str, Any]] | None = None) -> None:
            await slack.ephemeral(origin.channel, origin.actor, text, blocks, thread_ts=origin.thread_ts)

        return reply

    def _poster(self, origin: Origin) -> Post:
        slack = self.runner.slack

        async def post(text: str, blocks: list[dict[str, Any]]) -> None:
            await slack.post(origin.channel, text, blocks, thread_ts=origin.thread_ts)

        return post
