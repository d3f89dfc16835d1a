"""Dispatcher: from command text to the operation that carries it out.

Slack listeners, mentions and the sandbox all come through here, so every entry point gets
the same parsing, the same refusals and the same tracking.
"""

from __future__ import annotations

import logging

from bot.operations import OperationRunner, Origin, Reply
from commands.grammar import (
    DeployRequest,
    HelpRequest,
    Request,
    UsageError,
    help_text,
    parse_slash,
)

log = logging.getLogger(__name__)

RESTARTING = "Tugboat is restarting; try again in a minute."


class Dispatcher:
    """Parses, then routes each request to the runner in a tracked task."""

    def __init__(self, runner: OperationRunner) -> None:
        self.runner = runner
        self.received = 0

    def submit_slash(self, command: str, text: str, origin: Origin, reply: Reply) -> None:
        self.received += 1
        self.runner.submit(self.slash(command, text, origin, reply), f"slash-{command}")

    async def slash(self, command: str, text: str, origin: Origin, reply: Reply) -> None:
        if not self.runner.accepting:
            await reply(RESTARTING)
            return
        try:
            request = parse_slash(command, text, self.runner.catalog)
        except UsageError as exc:
            await reply(str(exc))
            return
        await self.handle(request, origin, reply)

    async def handle(self, request: Request, origin: Origin, reply: Reply) -> None:
        log.info(
            "request",
            extra={"verb": request.verb, "actor": origin.actor, "channel": origin.channel},
        )
        match request:
            case DeployRequest():
                await self.runner.deploy(request, origin, reply)
            case HelpRequest():
                await reply(help_text())
            case _:
                await reply(f"`{request.verb}` is not available yet.")
