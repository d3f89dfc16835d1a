"""Private replies in Slack: ephemeral messages, through a response_url or chat.postEphemeral."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bot.domain.text import Text, mrkdwn

Send = Callable[[str, list[dict[str, Any]] | None], Awaitable[None]]


class SlackReply:
    """The `Reply` of a Slack request: rich text rendered as mrkdwn, escaped on the way."""

    def __init__(self, send: Send) -> None:
        self._send = send

    async def __call__(self, line: Text) -> None:
        await self._send(mrkdwn(line), None)

    async def with_blocks(self, summary: str, blocks: list[dict[str, Any]]) -> None:
        """A card sent privately (a confirmation that could not be posted in the channel)."""
        await self._send(summary, blocks)
