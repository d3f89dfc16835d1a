"""Per-bucket ECS call budgets: Tugboat's share of each of ECS's token buckets, paced in turn.

ECS throttles per account, Region and group of actions (`bot.aws.ecs_limits`). One budget per
bucket means a queue of task-definition registrations (1 a second at ECS) never holds back a
describe or an update. A throttle from ECS (another tool spent more than its share) shrinks
that bucket's rate at once and lets it grow back slowly: AIMD, as TCP does for congestion.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

from bot.aws.ecs_limits import BucketLimit, EcsLimits

log = logging.getLogger(__name__)

DECREASE = 0.5
"""A throttle multiplies the bucket's rate by this."""
FLOOR = 0.05
"""The rate never falls below this fraction of the configured one, so a caller always gets on."""
RECOVERY_S = 10.0
"""Seconds for the additive recovery to climb from nothing back to the configured rate."""


class BucketBudget:
    """One token bucket, Tugboat's side of it: callers take a token in arrival order.

    Tokens refill at `rate`, which starts at the configured rate; `throttled` halves it and
    empties the bucket (ECS just said it is empty), then the rate climbs back linearly.
    """

    def __init__(
        self,
        limit: BucketLimit,
        *,
        recovery_s: float = RECOVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self._recovery_per_s = limit.refill_per_s / recovery_s
        self._clock = clock
        self._tokens = limit.burst
        self._rate = limit.refill_per_s
        self._updated = clock()
        self._decreased_at = float("-inf")
        self._state = threading.Lock()  # try_take and throttled may be called from any thread
        self._turn: asyncio.Lock | None = None

    @property
    def rate(self) -> float:
        with self._state:
            self._refill(self._clock())
            return self._rate

    def try_take(self) -> float:
        """Take a token: 0.0 when taken, otherwise the seconds until one will be there."""
        with self._state:
            now = self._clock()
            self._refill(now)
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self._rate

    async def take(self) -> float:
        """Wait for a token, behind every earlier caller of this bucket; returns when it came."""
        if self._turn is None:
            self._turn = asyncio.Lock()  # FIFO: the longest waiter goes first
        async with self._turn:
            while True:
                wait = self.try_take()
                if wait <= 0:
                    return self._clock()
                await asyncio.sleep(wait)

    def throttled(self, sent_at: float) -> None:
        """ECS refused a call sent at `sent_at` (a `take()` result): slow down, once per episode.

        Calls already on their way when the rate was cut come back throttled too; they are the
        same episode, so only a call sent after the last cut cuts again.
        """
        with self._state:
            if sent_at < self._decreased_at:
                return
            now = self._clock()
            self._refill(now)
            self._rate = max(self.limit.refill_per_s * FLOOR, self._rate * DECREASE)
            self._tokens = 0.0
            self._decreased_at = now
            rate = self._rate
        log.info("ecs bucket throttled", extra={"rate_per_s": round(rate, 3)})

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        before = self._rate
        self._rate = min(self.limit.refill_per_s, before + self._recovery_per_s * elapsed)
        self._tokens = min(self.limit.burst, self._tokens + elapsed * (before + self._rate) / 2)
        self._updated = now


class EcsBuckets:
    """Tugboat's budgets: `share` of each ECS bucket, per Region and account (role)."""

    def __init__(
        self, limits: EcsLimits, share: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not 0.0 < share <= 1.0:
            raise ValueError(f"share must be in (0, 1], not {share}")
        self.limits = limits
        self.share = share
        self._clock = clock
        self._budgets: dict[tuple[str, str, str], BucketBudget] = {}

    def budget(self, region: str, role_arn: str | None, operation: str) -> BucketBudget:
        """The budget `operation` draws from, made on first use."""
        bucket = self.limits.bucket_of(operation)
        key = (region, account_of(role_arn), bucket)
        budget = self._budgets.get(key)
        if budget is None:
            limit = self.limits.limit(bucket).share(self.share)
            budget = BucketBudget(limit, recovery_s=RECOVERY_S / self.limits.speed, clock=self._clock)
            self._budgets[key] = budget
        return budget


def account_of(role_arn: str | None) -> str:
    """The account a role belongs to (ECS's buckets are per account); '' for our own."""
    if role_arn is None:
        return ""
    parts = role_arn.split(":")
    return parts[4] if len(parts) > 4 else role_arn
