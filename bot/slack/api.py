"""SlackApi: Web API calls that survive 429s, 5xx answers and dropped connections.

slack_sdk retries a 429 once at most; a progress thread must never lose its final state, so
every call here honours `Retry-After` and retries transient failures with jittered backoff
until its deadline. That loop is the only retry layer for these calls: the client under it
has no slack_sdk retry handlers, so each attempt is one HTTP request, counted for /metrics.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot import metrics
from bot.backoff import full_jitter

log = logging.getLogger(__name__)


def slack_clients(token: str, base_url: str) -> tuple[AsyncWebClient, SlackApi]:
    """Bolt's client and ours, so every HTTP call passes through exactly one retry layer.

    Bolt's own calls (auth.test on the first envelope) retry in slack_sdk's handlers; SlackApi's
    client has none, since SlackApi.call retries longer and honours Retry-After itself.
    """
    bolt = AsyncWebClient(
        token=token,
        base_url=base_url,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(),
            AsyncRateLimitErrorRetryHandler(max_retry_count=5),
            AsyncServerErrorRetryHandler(max_retry_count=3),
        ],
    )
    ours = AsyncWebClient(token=token, base_url=base_url, retry_handlers=[])
    return bolt, SlackApi(ours)


class SlackApi:
    """A thin, resilient layer over AsyncWebClient.api_call; give it a client without retries."""

    def __init__(self, client: AsyncWebClient, *, deadline_s: float = 300.0) -> None:
        self.client = client
        self._deadline_s = deadline_s
        self.team_url = "https://slack.com/"

    async def call(self, method: str, *, deadline_s: float | None = None, **params: Any) -> dict[str, Any]:
        """Call `method` until it succeeds, fails for good, or the deadline passes."""
        deadline = time.monotonic() + (deadline_s if deadline_s is not None else self._deadline_s)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self.client.api_call(method, json=params)
                metrics.SLACK_CALLS.labels(method=method, status="ok").inc()
                return dict(response.data) if isinstance(response.data, dict) else {}
            except SlackApiError as exc:
                status = exc.response.status_code
                metrics.SLACK_CALLS.labels(method=method, status=str(status)).inc()
                if status == 429:
                    delay = float(exc.response.headers.get("Retry-After", "1") or 1) + random.uniform(0, 0.5)
                elif status >= 500:
                    delay = full_jitter(attempt, base_s=0.5, cap_s=30.0)
                else:
                    raise
            except (aiohttp.ClientError, TimeoutError) as exc:
                metrics.SLACK_CALLS.labels(method=method, status="connection").inc()
                log.info(
                    "slack call failed, retrying",
                    extra={"method": method, "error": type(exc).__name__},
                )
                delay = full_jitter(attempt, base_s=0.5, cap_s=30.0)
            if time.monotonic() + delay > deadline:
                raise TimeoutError(f"Slack {method} did not succeed before its deadline")
            await asyncio.sleep(delay)

    async def learn_team_url(self) -> None:
        """Remember the workspace URL once, so thread links cost no extra call per deploy."""
        answer = await self.call("auth.test", deadline_s=30)
        self.team_url = str(answer.get("url") or self.team_url)

    def permalink(self, channel: str, ts: str) -> str:
        return f"{self.team_url.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}"

    async def post(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> str:
        params: dict[str, Any] = {"channel": channel, "text": text, "unfurl_links": False}
        if blocks is not None:
            params["blocks"] = blocks
        if thread_ts is not None:
            params["thread_ts"] = thread_ts
        answer = await self.call("chat.postMessage", **params)
        return str(answer["ts"])

    async def update(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        await self.call("chat.update", channel=channel, ts=ts, text=text, blocks=blocks)

    async def ephemeral(
        self,
        channel: str,
        user: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> None:
        params: dict[str, Any] = {"channel": channel, "user": user, "text": text}
        if blocks is not None:
            params["blocks"] = blocks
        if thread_ts is not None:
            params["thread_ts"] = thread_ts
        await self.call("chat.postEphemeral", deadline_s=30, **params)
