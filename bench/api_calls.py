"""AWS calls per deploy, counted by the world's server, for 1 and 10 concurrent deploys.

Target (issue #2): with 10 concurrent deploys, no more than one describe_services per poll
interval for all of them together: the watcher batches every in-flight service.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import fleet_catalog, running_bot, world_and_slack
from bot.sandbox.fake_slack import wait_for


async def measure(concurrent: int, rollout_seconds: float) -> dict[str, object]:
    with world_and_slack(concurrent, rollout_seconds) as (world, fake):
        async with running_bot(fake, fleet_catalog(concurrent)) as bot:
            world.reset_calls()
            slack_before = len(fake.calls)
            began = time.monotonic()
            for i in range(concurrent):
                fake.slash_command("/deploy", f"svc{i} prod v2", user="U0BENCH", channel="C0BENCH")
            await wait_for(lambda: bot.dispatcher.received >= concurrent, timeout=30)
            await bot.idle()
            elapsed = time.monotonic() - began
            calls = world.calls()
            updates = [t for t, op in world.call_log() if op == "ecs:UpdateService"]
            log = [(t, op) for t, op in world.call_log() if op == "ecs:DescribeServices"]
            watching = [t for t, _ in log if updates and t > max(updates)]
            slack_calls = len(fake.calls) - slack_before
            ok = sum(
                "*Succeeded*" in m.flat
                for i in range(concurrent)
                for m in fake.channel_messages(f"C0FLEET{i}")
            )
    ecs = {op: n for op, n in calls.items() if op.startswith("ecs:")}
    total_ecs = sum(ecs.values())
    interval = bot.tuning.poll.normal_s
    windows = _max_per_window(watching, interval)
    per_tick = _max_per_window(watching, 0.3)
    print(f"{concurrent} concurrent deploy(s), {ok} succeeded, {elapsed:.1f} s:")
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
        "seconds": elapsed,
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
