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

Blocks = list[dict[str, Any]]
"""A message's Block Kit blocks, as the Web API takes them."""

# Slack's answers to a token it will never accept: retrying cannot help, a person must act.
REJECTED_TOKEN_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "not_allowed_token_type",
        "missing_scope",
        "team_access_not_granted",
        "ekm_access_denied",
    }
)
_WHAT_TO_DO = {
    "SLACK_BOT_TOKEN": (
        "copy the Bot User OAuth Token (xoxb-…) again from your app's OAuth & Permissions page at "
        "https://api.slack.com/apps, reinstalling the app if it was removed, and restart Tugboat"
    ),
    "SLACK_APP_TOKEN": (
        "generate an app-level token (xapp-…) with the connections:write scope under Basic "
        "Information → App-Level Tokens at https://api.slack.com/apps, and restart Tugboat"
    ),
}


class TokenRejected(Exception):
    """Slack refused a token for good; the message names the variable and what to do, never the value."""

    def __init__(self, variable: str, method: str, error: str) -> None:
        super().__init__(f"{variable} was rejected by Slack ({method}: {error}): {_WHAT_TO_DO[variable]}")
        self.variable = variable
        self.error = error


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
        """Remember the workspace URL once, so thread links cost no extra call per deploy.

        This auth.test is also the bot token's check: a token Slack rejects raises TokenRejected.
        """
        try:
            answer = await self.call("auth.test", deadline_s=30)
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "")
            if error in REJECTED_TOKEN_ERRORS:
                raise TokenRejected("SLACK_BOT_TOKEN", "auth.test", error) from None
            raise
        self.team_url = str(answer.get("url") or self.team_url)

    async def check_app_token(self, app_token: str) -> None:
        """Raise TokenRejected if Slack refuses the app-level token, before Socket Mode starts.

        slack_sdk's Socket Mode client retries a refused token forever; one apps.connections.open
        here turns that into a clear stop. Anything else (429, 5xx, no network) is left to it.
        """
        method = "apps.connections.open"
        try:
            await self.client.apps_connections_open(app_token=app_token)
            metrics.SLACK_CALLS.labels(method=method, status="ok").inc()
        except SlackApiError as exc:
            metrics.SLACK_CALLS.labels(method=method, status=str(exc.response.status_code)).inc()
            error = str(exc.response.get("error") or "")
            if error in REJECTED_TOKEN_ERRORS:
                raise TokenRejected("SLACK_APP_TOKEN", method, error) from None
            log.info("slack call failed, retrying", extra={"method": method, "error": error})
        except (aiohttp.ClientError, TimeoutError) as exc:
            metrics.SLACK_CALLS.labels(method=method, status="connection").inc()
            log.info("slack call failed, retrying", extra={"method": method, "error": type(exc).__name__})

    def permalink(self, channel: str, ts: str) -> str:
        return f"{self.team_url.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}"

    async def post(
        self, channel: str, text: str, blocks: Blocks | None = None, thread_ts: str | None = None
    ) -> str:
        options = _options(blocks, thread_ts)
        answer = await self.call(
            "chat.postMessage", channel=channel, text=text, unfurl_links=False, **options
        )
        return str(answer["ts"])

    async def update(self, channel: str, ts: str, text: str, blocks: Blocks) -> None:
        await self.call("chat.update", channel=channel, ts=ts, text=text, blocks=blocks)

    async def ephemeral(
        self, channel: str, user: str, text: str, blocks: Blocks | None = None, thread_ts: str | None = None
    ) -> None:
        options = _options(blocks, thread_ts)
        await self.call("chat.postEphemeral", deadline_s=30, channel=channel, user=user, text=text, **options)


def _options(blocks: Blocks | None, thread_ts: str | None) -> dict[str, Any]:
    """A message's optional parameters: one not given is left out, never sent as null."""
    given = {"blocks": blocks, "thread_ts": thread_ts}
    return {name: value for name, value in given.items() if value is not None}
