"""AWS calls per deploy, counted by the world's server, for 1 and 10 concurrent deploys.

Target (issue #2): with 10 concurrent deploys, no more than one describe_services per poll
interval for all of them together: the watcher batches every in-flight service.

`deploy_wave` is also the Tugboat side of `bench/peer.py` (issue #7).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import fleet_catalog, fleet_channel, running_bot, world_and_slack
from bot.runtime import Tugboat
from bot.sandbox.fake_slack import ApiCall, Change, FakeSlack, Message, wait_for
from bot.sandbox.world import SandboxWorld
from tests.slackview import is_final

SUCCEEDED = "*Succeeded*"


@dataclass
class Wave:
    """What one wave of concurrent deploys through Tugboat cost and when each was reported."""

    count: int
    began: float  # time.monotonic() just before the first /deploy
    elapsed: float  # until every operation and reply had finished
    calls: collections.Counter[str]  # per AWS operation, counted by the world's server
    call_log: list[tuple[float, str]]
    slack_calls: list[ApiCall]  # Web API and response_url requests, as the fake Slack saw them
    reported_at: dict[int, float]  # service index -> when the parent's "Succeeded" edit landed

    @property
    def ecs_calls(self) -> int:
        return sum(n for op, n in self.calls.items() if op.startswith("ecs:"))


async def deploy_wave(world: SandboxWorld, fake: FakeSlack, bot: Tugboat, count: int, tag: str) -> Wave:
    """`/deploy svc{i} prod {tag}` for i < count, all at once; wait until all have finished."""
    channels = {fleet_channel(i): i for i in range(count)}
    reported: dict[int, float] = {}

    def on_change(change: Change) -> None:  # runs on the fake's loop, right after the edit
        message = change.message
        if (
            change.kind == "updated"
            and isinstance(message, Message)
            and message.thread_ts is None
            and message.channel in channels
            and SUCCEEDED in message.flat
        ):
            reported.setdefault(channels[message.channel], time.monotonic())

    await warm_up(fake, bot)
    unsubscribe = fake.subscribe(on_change)
    try:
        world.reset_calls()
        slack_before = len(fake.calls)
        received = bot.dispatcher.received + count
        began = time.monotonic()
        for i in range(count):
            fake.slash_command("/deploy", f"svc{i} prod {tag}", user="U0BENCH", channel="C0BENCH")
        await wait_for(lambda: bot.dispatcher.received >= received, timeout=60, what="commands received")
        await bot.idle()
        await wait_for(lambda: finished(fake, count) >= count, timeout=900, what="every thread's final state")
        await bot.idle()
        elapsed = time.monotonic() - began
        calls, log = world.calls(), world.call_log()
        succeeded = sum(SUCCEEDED in m.flat for channel in channels for m in fake.channel_messages(channel))
        await wait_for(lambda: len(reported) >= succeeded, timeout=5, what="edits seen by the subscriber")
        slack_calls = fake.calls[slack_before:]
    finally:
        unsubscribe()
    return Wave(count, began, elapsed, calls, log, slack_calls, dict(reported))


def finished(fake: FakeSlack, count: int) -> int:
    """Threads of the fleet whose parent shows a final state."""
    return sum(is_final(m) for i in range(count) for m in fake.channel_messages(fleet_channel(i)))


async def warm_up(fake: FakeSlack, bot: Tugboat) -> None:
    """One `/tugboat help` first, not counted: a bot that has been up a while has answered one.

    Bolt's single-team authorization caches `auth.test` only once the first answer is back,
    so a cold bot that receives N commands at once calls `auth.test` N times.
    """
    envelope = fake.slash_command("/tugboat", "help", user="U0BENCH", channel="C0BENCH")
    await wait_for(lambda: fake.ack_for(envelope), timeout=10, what="warm-up ack")
    await bot.idle()
    await quiet(lambda: len(fake.calls), 0.2, timeout=5, what="warm-up replies")


async def quiet(count: Callable[[], int], quiet_s: float, *, timeout: float, what: str) -> None:
    """Wait until `count()` has stayed the same for `quiet_s` seconds (at most `timeout`)."""
    last, since = count(), time.monotonic()

    def settled() -> bool:
        nonlocal last, since
        now, current = time.monotonic(), count()
        if current != last:
            last, since = current, now
        return now - since >= quiet_s

    await wait_for(settled, timeout=timeout, what=what)


async def measure(concurrent: int, rollout_seconds: float) -> dict[str, object]:
    with world_and_slack(concurrent, rollout_seconds) as (world, fake):
        async with running_bot(fake, fleet_catalog(concurrent)) as bot:
            wave = await deploy_wave(world, fake, bot, concurrent, "v2")
    calls = wave.calls
    updates = [t for t, op in wave.call_log if op == "ecs:UpdateService"]
    log = [(t, op) for t, op in wave.call_log if op == "ecs:DescribeServices"]
    watching = [t for t, _ in log if updates and t > max(updates)]
    ecs = {op: n for op, n in calls.items() if op.startswith("ecs:")}
    total_ecs = sum(ecs.values())
    interval = bot.tuning.poll.finishing_s
    windows = _max_per_window(watching, interval)
    per_tick = _max_per_window(watching, 0.3)
    ok = len(wave.reported_at)
    slack_calls = len(wave.slack_calls)
    print(f"{concurrent} concurrent deploy(s), {ok} succeeded, {wave.elapsed:.1f} s:")
    print(
        f"  ECS calls per deploy: {total_ecs / concurrent:.1f}"
        f"  (all AWS: {sum(calls.values()) / concurrent:.1f})"
    )
    print("  by operation: " + ", ".join(f"{op.split(':')[1]}={n}" for op, n in sorted(ecs.items())))
    print(
        f"  describe_services: {len(log)} in all; once all were rolling out, at most {windows}"
        f" in any {interval:.1f} s, and at most {per_tick} per watcher poll (0.3 s window)"
    )
    print(f"  Slack Web API calls per deploy: {slack_calls / concurrent:.1f}")
    return {
        "concurrent": concurrent,
        "ecs_per_deploy": total_ecs / concurrent,
        "aws_per_deploy": sum(calls.values()) / concurrent,
        "describe_services_total": len(log),
        "describe_services_max_per_interval": windows,
        "describe_services_max_per_poll": per_tick,
        "poll_interval_s": interval,
        "slack_per_deploy": slack_calls / concurrent,
        "succeeded": ok,
        "seconds": wave.elapsed,
    }


def _max_per_window(times: list[float], window: float) -> int:
    best, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", default="1,10")
    parser.add_argument("--rollout-seconds", type=float, default=20.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = [await measure(int(n), args.rollout_seconds) for n in args.concurrency.split(",")]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
