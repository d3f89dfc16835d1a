"""Slack wiring: thin Bolt listeners that ack first, then hand the work to a tracked task.

Listeners are declared where they are wired, and everything they need is passed in. What a
command means lives in commands/; what it does lives in bot/dispatch.py.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.dispatch import Dispatcher
from bot.operations import Origin

log = logging.getLogger(__name__)

SLASH_COMMANDS = ("/deploy", "/rollback", "/run-task", "/ecs-status", "/tugboat")


def build_app(client: AsyncWebClient, dispatcher: Dispatcher) -> AsyncApp:
    """The Bolt app with every listener Tugboat has."""
    app = AsyncApp(client=client, process_before_response=False)

    async def slash(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()

        async def reply(text: str) -> None:
            await respond(text=text, response_type="ephemeral")

        origin = Origin(actor=str(command["user_id"]), channel=str(command["channel_id"]))
        dispatcher.submit_slash(
            str(command["command"]), str(command.get("text", "")), origin, reply
        )

    for name in SLASH_COMMANDS:
        app.command(name)(slash)

    return app
